// Package httpapi is ragpipe's HTTP API: a thin layer that parses and
// validates requests, calls the services (pkg/ingest) and the store, and maps
// their results and errors to HTTP. It imports no adapter; heavy work
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

	"github.com/ragpipe/ragpipe/pkg/ingest"
	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// Store is the state the API reads, and the job cancellation it writes.
type Store interface {
	TenantByKeyHash(ctx context.Context, hash []byte) (string, error)
	CancelJob(ctx context.Context, tenantID, jobID string) (*ragpipe.Job, error)
	JobEvents(ctx context.Context, tenantID, jobID string, after int64, limit int) ([]ragpipe.JobEvent, error)
	Document(ctx context.Context, tenantID, id string) (*ragpipe.Document, error)
	Documents(ctx context.Context, tenantID string, f ragpipe.DocumentFilter, cursor string, limit int) ([]*ragpipe.Document, string, error)
	Chunks(ctx context.Context, tenantID, documentID string, after, limit int) ([]ragpipe.Chunk, error)
	Job(ctx context.Context, tenantID, id string) (*ragpipe.Job, error)
	Search(ctx context.Context, q ragpipe.SearchQuery) ([]ragpipe.SearchResult, error)
	Collections(ctx context.Context, tenantID string) ([]ragpipe.Collection, error)
	EmbeddingStatus(ctx context.Context, tenantID string) (*ragpipe.EmbeddingStatus, error)
	SaveTurn(ctx context.Context, tenantID, conversationID string, t ragpipe.Turn) (string, error)
	Conversation(ctx context.Context, tenantID, id string) (*ragpipe.Conversation, error)
	ConversationHistory(ctx context.Context, tenantID, id string, n int) ([][2]string, error)
	Conversations(ctx context.Context, tenantID, cursor string, limit int) ([]*ragpipe.Conversation, string, error)
	DeleteConversation(ctx context.Context, tenantID, id string) error
	ChatUsage(ctx context.Context, tenantID string, from, to time.Time) ([]ragpipe.UsageTotal, error)
}

// Ingest accepts, re-ingests and deletes documents (pkg/ingest's Service).
type Ingest interface {
	Upload(ctx context.Context, tenantID, filename string, r io.Reader, limit int64) (*ingest.File, error)
	Discard(ctx context.Context, f *ingest.File)
	Accept(ctx context.Context, f *ingest.File, req ingest.Request) (*ingest.Result, error)
	Chunking(size, overlap *int) (ingest.Chunking, error)
	Reingest(ctx context.Context, tenantID, documentID, requestID string, c ingest.Chunking) (*ragpipe.Job, error)
	Delete(ctx context.Context, tenantID, documentID, requestID string) error
	Handoff(ctx context.Context, t ragpipe.Task)
}

// QueryEmbedder turns a search query into a vector of the embedding space
// the tenant's chunks are in, and names that space.
type QueryEmbedder interface {
	EmbedQuery(ctx context.Context, tenantID, query string) (vector []float32, space int, err error)
}

// Check reports whether one dependency is reachable.
type Check func(ctx context.Context) error

// Params are the API's dependencies and settings.
type Params struct {
	Store          Store
	Ingest         Ingest
	Embedder       QueryEmbedder
	Limiter        *redis_rate.Limiter
	RateLimit      redis_rate.Limit
	Logger         *slog.Logger
	Checks         map[string]Check // for /readyz, by name
	Unavailable    func(error) bool // whether an error means a backing service is out of reach
	InvalidInput   func(error) bool // whether an error is the database refusing a value of the request
	MaxUploadBytes int64
	// MaxFilesPerUpload is the most "file" parts one upload may have.
	MaxFilesPerUpload int
	CORSOrigins       []string // origins browsers may call the API from; none: no CORS headers
	Deadlines         Deadlines
	SearchWeights     ragpipe.SearchWeights // of hybrid search, when a request names none
	Rerank            RerankOptions
	Ask               AskOptions
	MCP               http.Handler // the MCP server at /mcp (pkg/mcpserver), behind the API's authentication
	OpenAPI           []byte
	Backpressure      *Backpressure
	Events            Subscriber
	Draining          <-chan struct{} // closed when the server shuts down
	Admin             QueueAdmin
	AdminToken        string // enables /admin; empty turns it off
	MetricsToken      string // required by /metrics when set
	WaitingJobs       func(ctx context.Context) (int, error)
	// ReplicaReads counts the reads a read replica answered and those it
	// left to the primary; nil without a replica.
	ReplicaReads func() (replica, primary int64)
	// VectorIndexes counts the tenants with an HNSW index of their own and
	// those past the bound still without one; nil exports neither.
	VectorIndexes func(ctx context.Context) (ready, due int, err error)

	// Webhooks, per-upload callbacks and the targets they may reach.
	Webhooks             WebhookStore
	WebhookGuard         URLGuard
	WebhookSecretOverlap time.Duration // default overlap of a secret rotation
	NewSecret            func() string // a fresh signing secret (webhook.NewSecret)
}

// New returns the API's handler.
func New(p Params) http.Handler {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler(p.Logger, p.Unavailable, p.InvalidInput)
	addRoutes(e, p)
	return e
}
