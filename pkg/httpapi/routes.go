package httpapi

import (
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/ragpipe/ragpipe/pkg/webui"
)

// addRoutes maps the whole API. docs/openapi.yaml describes every route
// registered here; a test keeps the two in step.
func addRoutes(e *echo.Echo, p Params) {
	m := newMetrics(p.Admin, p.WaitingJobs)
	if p.ReplicaReads != nil {
		m.countReplicaReads(p.ReplicaReads)
	}
	if p.VectorIndexes != nil {
		m.countVectorIndexes(p.VectorIndexes)
	}
	e.Pre(cleanRequestID())
	e.Pre(responseTime())
	if len(p.CORSOrigins) > 0 {
		// Before routing and authentication: a preflight carries no key.
		e.Pre(middleware.CORSWithConfig(middleware.CORSConfig{
			AllowOrigins: p.CORSOrigins,
			AllowMethods: []string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete},
			AllowHeaders: []string{echo.HeaderAuthorization, echo.HeaderContentType, echo.HeaderAccept, "Idempotency-Key",
				echo.HeaderXRequestID, "Last-Event-ID", "Mcp-Protocol-Version"},
			ExposeHeaders: []string{echo.HeaderXRequestID, "X-Response-Time", "Retry-After", "Location",
				"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"},
			MaxAge: 600,
		}))
	}
	e.Use(middleware.RequestID())
	e.Use(traceRequests())
	e.Use(logRequests(p.Logger, m))
	e.Use(middleware.Recover())
	e.Use(deadlines(p.Deadlines))
	e.Use(bodyLimit(maxJSONBody))

	e.GET("/healthz", handleHealthz())
	e.GET("/readyz", handleReadyz(p.Checks))
	e.GET("/openapi.yaml", handleOpenAPI(p.OpenAPI))
	console := handleAssets(webui.Console(), map[string]string{"Content-Security-Policy": consoleCSP,
		"Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"})
	e.GET("/console", console)
	e.GET("/console/:file", console)
	docs := handleAssets(webui.Docs(), map[string]string{"Referrer-Policy": "no-referrer"})
	e.GET("/docs", docs)
	e.GET("/docs/:file", docs)
	e.GET("/metrics", m.handler(), metricsAuth(p.MetricsToken))

	admin := e.Group("/admin", adminOnly(p.AdminToken))
	admin.GET("/queues", handleQueueStats(p.Admin))
	admin.GET("/tasks/archived", handleListArchived(p.Admin))
	admin.POST("/tasks/archived/retry", handleRetryAllArchived(p.Admin))
	admin.POST("/tasks/archived/:id/retry", handleRetryArchived(p.Admin))

	e.POST("/mcp", handleMCP(p.MCP), authenticate(p.Store), rateLimit(p.Limiter, p.RateLimit))

	v1 := e.Group("/v1", authenticate(p.Store), rateLimit(p.Limiter, p.RateLimit))
	v1.POST("/documents", handleUpload(p))
	v1.GET("/documents", handleListDocuments(p.Store))
	v1.GET("/documents/:id", handleGetDocument(p.Store))
	v1.GET("/documents/:id/chunks", handleListChunks(p.Store))
	v1.DELETE("/documents/:id", handleDeleteDocument(p))
	v1.POST("/documents/:id/reingest", handleReingest(p))
	v1.GET("/jobs/:id", handleGetJob(p.Store))
	v1.GET("/jobs/:id/events", handleJobEvents(p.Store, p.Events, p.Draining))
	v1.POST("/jobs/:id/cancel", handleCancelJob(p.Store))
	v1.POST("/search", handleSearch(p.Store, p.Embedder, p.SearchWeights, p.Rerank, p.Logger))
	v1.GET("/collections", handleListCollections(p.Store))
	v1.GET("/embedding", handleEmbeddingStatus(p.Store))
	ask := &asker{s: p.Store, emb: p.Embedder, weights: p.SearchWeights, o: p.Ask, log: p.Logger, metrics: m.chat}
	v1.POST("/ask", handleAsk(ask))
	v1.POST("/ask/batch", handleAskBatch(ask))
	v1.GET("/conversations", handleListConversations(p.Store))
	v1.GET("/conversations/:id", handleGetConversation(p.Store))
	v1.DELETE("/conversations/:id", handleDeleteConversation(p.Store))
	v1.GET("/usage", handleUsage(p.Store))

	v1.POST("/webhooks", handleCreateWebhook(p))
	v1.GET("/webhooks", handleListWebhooks(p.Webhooks))
	v1.GET("/webhooks/callback-secret", handleGetCallbackSecret(p))
	v1.POST("/webhooks/callback-secret/rotate", handleRotateCallbackSecret(p))
	v1.GET("/webhooks/:id", handleGetWebhook(p.Webhooks))
	v1.PATCH("/webhooks/:id", handleUpdateWebhook(p))
	v1.DELETE("/webhooks/:id", handleDeleteWebhook(p.Webhooks))
	v1.POST("/webhooks/:id/rotate-secret", handleRotateWebhookSecret(p))
	v1.POST("/webhooks/:id/test", handleTestWebhook(p))
	v1.GET("/webhooks/:id/deliveries", handleListDeliveries(p.Webhooks))
	v1.POST("/webhooks/:id/deliveries/:delivery_id/redeliver", handleRedeliver(p))
}
