package httpapi

import (
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// addRoutes maps the whole API. docs/openapi.yaml describes every route
// registered here; a test keeps the two in step.
func addRoutes(e *echo.Echo, p Params) {
	e.Use(middleware.RequestID())
	e.Use(logRequests(p.Logger))
	e.Use(middleware.Recover())

	e.GET("/healthz", handleHealthz())
	e.GET("/readyz", handleReadyz(p.Checks))
	e.GET("/openapi.yaml", handleOpenAPI(p.OpenAPI))

	v1 := e.Group("/v1", authenticate(p.Store), rateLimit(p.Limiter, p.RateLimit))
	v1.POST("/documents", handleUpload(p))
	v1.GET("/documents", handleListDocuments(p.Store))
	v1.GET("/documents/:id", handleGetDocument(p.Store))
	v1.GET("/documents/:id/chunks", handleListChunks(p.Store))
	v1.GET("/jobs/:id", handleGetJob(p.Store))
	v1.POST("/search", handleSearch(p.Store, p.Embedder))
}
