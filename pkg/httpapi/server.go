// Package httpapi is ragpipe's HTTP API: a thin layer that validates
// requests, stores uploads, records jobs and answers from Postgres. Heavy work
// happens in the workers.
package httpapi

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/labstack/echo/v4"

	"github.com/ragpipe/ragpipe/pkg/postgres"
	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// Store is the state the API reads and writes.
type Store interface {
	TenantByKeyHash(ctx context.Context, hash []byte) (string, error)
	CreateDocument(ctx context.Context, d *ragpipe.Document, j *ragpipe.Job, opts postgres.CreateOptions) (*ragpipe.Document, error)
	IdempotentResponse(ctx context.Context, tenantID, key string) (*postgres.IdempotencyRecord, error)
	MarkSent(ctx context.Context, taskID string) error
	CancelJob(ctx context.Context, tenantID, jobID string) (*ragpipe.Job, error)
	Reingest(ctx context.Context, tenantID, documentID string, j *ragpipe.Job) error
	DeleteDocument(ctx context.Context, tenantID, documentID string, t postgres.OutboxTask) error
	JobEvents(ctx context.Context, tenantID, jobID string, after int64, limit int) ([]ragpipe.JobEvent, error)
	Document(ctx context.Context, tenantID, id string) (*ragpipe.Document, error)
	Documents(ctx context.Context, tenantID string, f postgres.DocumentFilter, cursor string, limit int) ([]*ragpipe.Document, string, error)
	Chunks(ctx context.Context, tenantID, documentID string, after, limit int) ([]ragpipe.Chunk, error)
	Job(ctx context.Context, tenantID, id string) (*ragpipe.Job, error)
	Search(ctx context.Context, q ragpipe.SearchQuery) ([]ragpipe.SearchResult, error)
}

// Blobs stores uploads.
type Blobs interface {
	Upload(ctx context.Context, key string, r io.Reader) error
	Delete(ctx context.Context, key string) error
}

// Enqueuer puts a task on the queue.
type Enqueuer interface {
	Enqueue(ctx context.Context, typ string, payload []byte) error
}

// QueryEmbedder turns a search query into a vector.
type QueryEmbedder interface {
	Embed(ctx context.Context, texts []string) ([][]float32, error)
}

// Check reports whether one dependency is reachable.
type Check func(ctx context.Context) error

// Params are the API's dependencies and settings.
type Params struct {
	Store          Store
	Blobs          Blobs
	Queue          Enqueuer
	Embedder       QueryEmbedder
	Limiter        *redis_rate.Limiter
	RateLimit      redis_rate.Limit
	Logger         *slog.Logger
	Checks         map[string]Check // for /readyz, by name
	MaxUploadBytes int64
	ChunkSize      int
	ChunkOverlap   int
	OpenAPI        []byte
	Backpressure   *Backpressure
	Events         Subscriber
	Draining       <-chan struct{} // closed when the server shuts down
	Admin          QueueAdmin
	AdminToken     string // enables /admin; empty turns it off
	MetricsToken   string // required by /metrics when set
	WaitingJobs    func(ctx context.Context) (int, error)

	// Webhooks, per-upload callbacks and the targets they may reach.
	Webhooks             WebhookStore
	WebhookGuard         URLGuard
	WebhookSecretOverlap time.Duration // default overlap of a secret rotation
}

// New returns the API's handler.
func New(p Params) http.Handler {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler(p.Logger)
	addRoutes(e, p)
	return e
}
