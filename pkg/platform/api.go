package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/ragpipe/ragpipe/docs"
	"github.com/ragpipe/ragpipe/pkg/answer"
	"github.com/ragpipe/ragpipe/pkg/blob"
	"github.com/ragpipe/ragpipe/pkg/config"
	"github.com/ragpipe/ragpipe/pkg/embed"
	"github.com/ragpipe/ragpipe/pkg/httpapi"
	"github.com/ragpipe/ragpipe/pkg/ingest"
	"github.com/ragpipe/ragpipe/pkg/mcpserver"
	"github.com/ragpipe/ragpipe/pkg/postgres"
	"github.com/ragpipe/ragpipe/pkg/queue"
	"github.com/ragpipe/ragpipe/pkg/ragpipe"
	"github.com/ragpipe/ragpipe/pkg/rerank"
	"github.com/ragpipe/ragpipe/pkg/webhook"
)

// API is the HTTP API process.
type API struct {
	cfg     config.Config
	log     *slog.Logger
	db      *postgres.DB
	rdb     redis.UniversalClient
	blobs   *blob.Store
	queue   *queue.Client
	events  *postgres.Broker
	handler http.Handler
	// draining closes when shutdown begins, ending event streams, which
	// would otherwise hold the shutdown for its whole grace period.
	draining chan struct{}
	admin    *queue.Admin
}

// NewAPI connects to every dependency (migrating the schema when
// RAGPIPE_AUTO_MIGRATE is on) and builds the handler.
func NewAPI(ctx context.Context, cfg config.Config, log *slog.Logger) (*API, error) {
	db, space, err := openDB(ctx, cfg, cfg.AutoMigrate)
	if err != nil {
		return nil, err
	}
	if cfg.DatabaseReadURL != "" {
		if err := db.UseReplica(ctx, cfg.DatabaseReadURL, cfg.DatabaseMaxReplicaLag); err != nil {
			db.Close()
			return nil, err
		}
	}
	rdb := newRedis(cfg, log)
	spaces := newSpaces(cfg, rdb, db)
	// The configured space's embedder is built now, so a bad setting stops
	// the start rather than the first search.
	if _, err := spaces.embedder(space); err != nil {
		db.Close()
		return nil, err
	}
	vectorWeight, _ := cfg.VectorWeight() // validated by config.Load
	rerankOptions := httpapi.RerankOptions{TopN: cfg.RerankTopN, Timeout: cfg.RerankTimeout}
	if cfg.RerankURL != "" {
		rr, err := rerank.New(rerank.Config{BaseURL: cfg.RerankURL, API: cfg.RerankAPI, Model: cfg.RerankModel,
			APIKey: cfg.RerankAPIKey, HTTPClient: &http.Client{}})
		if err != nil {
			db.Close()
			return nil, err
		}
		rerankOptions.Reranker = rr
	}
	answerer, err := newAnswerer(cfg, rdb, log)
	if err != nil {
		db.Close()
		return nil, err
	}
	a := &API{cfg: cfg, log: log, db: db, rdb: rdb, blobs: newBlobs(cfg), queue: queue.NewClient(redisOpt(cfg)),
		events: postgres.NewBroker(cfg.DatabaseURL, log), draining: make(chan struct{}),
		admin: queue.NewAdmin(redisOpt(cfg), db.ReviveJob)}
	if err := a.blobs.EnsureBucket(ctx); err != nil {
		log.Warn("object store not ready; uploads will fail until it is", "err", err)
	}
	a.handler = httpapi.New(httpapi.Params{
		Store: db,
		Ingest: ingest.New(ingest.Params{Store: db, Blobs: a.blobs, Queue: a.queue, Logger: log,
			NewSecret: webhook.NewSecret, ChunkSize: cfg.ChunkSize, ChunkOverlap: cfg.ChunkOverlap}),
		Embedder:  spaces,
		Limiter:   redis_rate.NewLimiter(a.rdb),
		RateLimit: redis_rate.PerMinute(cfg.RateLimitPerMin),
		Logger:    log,
		Checks: map[string]httpapi.Check{
			"postgres": db.Ping,
			"redis":    func(ctx context.Context) error { return a.rdb.Ping(ctx).Err() },
			"s3":       a.blobs.Ping,
		},
		Unavailable:    postgres.IsUnavailable,
		InvalidInput:   postgres.IsInvalidInput,
		Deadlines:      httpapi.Deadlines{BodyIdle: cfg.HTTPBodyTimeout, Write: cfg.HTTPWriteTimeout},
		MaxUploadBytes: cfg.MaxUploadBytes, MaxFilesPerUpload: cfg.MaxFilesPerUpload,
		CORSOrigins:   cfg.CORSOrigins,
		SearchWeights: ragpipe.SearchWeights{Keyword: 1, Vector: vectorWeight},
		Rerank:        rerankOptions,
		// Each link of the chain bounds its own first token; this bounds them all.
		MCP: mcpserver.HTTPHandler(func() http.Handler { return a.handler }),
		Ask: httpapi.AskOptions{Answerer: answerer, FirstToken: answerer.MaxFirstToken() + time.Second, Idle: cfg.ChatIdleTimeout,
			MaxQuestionTokens: cfg.AskMaxQuestionTokens, BatchMax: cfg.AskBatchMax, BatchConcurrency: cfg.AskBatchConcurrency},
		OpenAPI:      docs.OpenAPI,
		Backpressure: &httpapi.Backpressure{Limit: cfg.MaxQueuedJobs, RetryAfter: 30 * time.Second, Count: db.QueuedJobs},
		Events:       a.events,
		Draining:     a.draining,
		Admin:        a.admin,
		AdminToken:   cfg.AdminToken,
		MetricsToken: cfg.MetricsToken,
		WaitingJobs:  db.QueuedJobs,
		ReplicaReads: replicaReads(cfg, db),
		VectorIndexes: func(ctx context.Context) (int, int, error) {
			return db.VectorIndexCounts(ctx, cfg.VectorIndexMinChunks)
		},

		Webhooks:             db,
		WebhookGuard:         newWebhookGuard(cfg),
		WebhookSecretOverlap: cfg.WebhookSecretOverlap,
		NewSecret:            webhook.NewSecret,
	})
	return a, nil
}

// Handler is the API's HTTP handler. Event streams need RunEvents running.
func (a *API) Handler() http.Handler { return a.handler }

// RunEvents feeds job event streams from Postgres notifications until ctx
// ends. Serve runs it; tests that mount Handler themselves run it too.
func (a *API) RunEvents(ctx context.Context) { a.events.Run(ctx) }

// Serve answers requests on ln until ctx ends, then lets requests in flight
// finish within the shutdown grace period.
func (a *API) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    64 << 10,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	srv.RegisterOnShutdown(func() { close(a.draining) })
	evctx, stopEvents := context.WithCancel(ctx)
	defer stopEvents()
	go a.RunEvents(evctx)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	a.log.Info("api listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	a.log.Info("api shutting down", "grace", a.cfg.ShutdownGrace)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.ShutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Close releases the API's connections. Call it after Serve returns.
func (a *API) Close() {
	a.admin.Close()
	a.queue.Close()
	a.rdb.Close()
	a.db.Close()
}

// replicaReads is the replica's read counts, for the metrics; nil without one.
func replicaReads(cfg config.Config, db *postgres.DB) func() (int64, int64) {
	if cfg.DatabaseReadURL == "" {
		return nil
	}
	return db.ReplicaReads
}

// newAnswerer returns the chain of answerers RAGPIPE_CHAT_PROVIDER and
// RAGPIPE_CHAT_FALLBACK name, each remote one behind shared budgets and a
// breaker (the embedding side's CallGuard, under keys of its own).
func newAnswerer(cfg config.Config, rdb redis.UniversalClient, log *slog.Logger) (*answer.Chain, error) {
	var links []answer.Link
	for _, p := range cfg.ChatProviders() {
		if p.Name == "extractive" {
			links = append(links, answer.Link{Name: p.Name, Answerer: answer.Extractive{}})
			continue
		}
		newLLM := map[string]func(answer.ChatConfig) (*answer.LLM, error){
			"openai": answer.NewOpenAI, "anthropic": answer.NewAnthropic, "ollama": answer.NewOllama}[p.Name]
		llm, err := newLLM(answer.ChatConfig{BaseURL: p.BaseURL, APIKey: p.APIKey, Model: p.Model})
		if err != nil {
			return nil, fmt.Errorf("chat provider %s: %w", p.Name, err)
		}
		links = append(links, answer.Link{Name: p.Name, Answerer: llm, Guard: embed.NewCallGuard(embed.GuardOptions{
			Name: "chat-" + p.Name, Budget: redisBudget{redis_rate.NewLimiter(rdb)},
			RequestsPerMinute: cfg.ChatRequestsPerMin, TokensPerMinute: cfg.ChatTokensPerMin,
			BreakerFailures: cfg.ChatBreakerFailures, BreakerCooldown: cfg.ChatBreakerCooldown,
		})})
	}
	return answer.NewChain(answer.ChainOptions{FirstToken: cfg.ChatFirstTokenTimeout, Retries: cfg.ChatRetries,
		Backoff: 250 * time.Millisecond, MaxWait: 5 * time.Second, Logger: log}, links...), nil
}
