package ragpipe

import (
	"encoding/json"
	"fmt"
	"time"
)

// Tenant owns documents, jobs and API keys. Nothing crosses tenants.
type Tenant struct {
	ID        string
	Name      string
	CreatedAt time.Time
}

// Document states.
const (
	DocProcessing = "processing"
	DocReady      = "ready"
	DocFailed     = "failed"
	DocDeleting   = "deleting"
)

// Document is one uploaded file and what ingestion made of it.
type Document struct {
	ID         string
	TenantID   string
	Collection string
	Filename   string
	Format     string // sniffed from content: pdf, text, markdown, html, docx
	Language   string // text search configuration its text is analysed with (DefaultLanguage when empty)
	SizeBytes  int64
	SHA256     string
	Metadata   json.RawMessage
	Status     string
	Pages      int
	ChunkCount int
	RawKey     string // object-store key of the uploaded bytes
	LastJobID  string
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// RawKey is the object-store key of a document's uploaded bytes. Everything
// stored for a document lives under DocumentPrefix.
func RawKey(tenantID, documentID string) string {
	return DocumentPrefix(tenantID, documentID) + "raw"
}

// DocumentPrefix is the object-store prefix of everything kept for a document.
func DocumentPrefix(tenantID, documentID string) string {
	return fmt.Sprintf("tenants/%s/documents/%s/", tenantID, documentID)
}

// Job states.
const (
	JobQueued    = "queued"
	JobRunning   = "running"
	JobSucceeded = "succeeded"
	JobFailed    = "failed"
	JobCanceled  = "canceled"
)

// Pipeline stages, in order.
const (
	StageExtract = "extract"
	StageChunk   = "chunk"
	StageEmbed   = "embed"
	StageUpsert  = "upsert"
)

// StageOrder gives each stage's place in the pipeline, from 1; 0 for unknown.
func StageOrder(stage string) int {
	switch stage {
	case StageExtract:
		return 1
	case StageChunk:
		return 2
	case StageEmbed:
		return 3
	case StageUpsert:
		return 4
	}
	return 0
}

// Job kinds: the first ingestion of a document, or a later one that replaces
// its chunks.
const (
	JobIngest   = "ingest"
	JobReingest = "reingest"
)

// Job is one run of the pipeline over a document.
type Job struct {
	ID             string
	Kind           string
	TenantID       string
	DocumentID     string
	Status         string
	Stage          string
	Progress       float64
	Attempts       int
	ErrorCode      string
	ErrorMessage   string
	RequestID      string
	ChunkSize      int
	ChunkOverlap   int
	TotalChunks    int
	EmbeddedChunks int
	TotalBatches   int
	CreatedAt      time.Time
	StartedAt      *time.Time
	FinishedAt     *time.Time
	UpdatedAt      time.Time
	// Trace is the trace context of the request that created the job, which
	// every task of the job carries (TaskPayload.Trace). Nil when tracing is
	// off.
	Trace map[string]string
}

// Terminal reports whether the job has reached an end state.
func (j *Job) Terminal() bool {
	return j.Status == JobSucceeded || j.Status == JobFailed || j.Status == JobCanceled
}

// JobEvent is one entry of a job's append-only log. IDs grow with time.
type JobEvent struct {
	ID        int64
	JobID     string
	Type      JobEventType
	Status    string
	Stage     string
	Progress  float64
	Data      json.RawMessage
	CreatedAt time.Time
}

// Final reports whether the event ends its job.
func (e JobEvent) Final() bool {
	return e.Type == JobSucceededEvent || e.Type == JobFailedEvent || e.Type == JobCanceledEvent
}

// Chunk is a searchable piece of a document with the pages it came from.
type Chunk struct {
	DocumentID string
	Index      int
	Text       string
	PageStart  int
	PageEnd    int
	Section    string // heading path, outermost first, " > "-joined; "" if none
	OCR        bool   // some of the text was recognised from an image
}

// Search modes.
const (
	SearchHybrid  = "hybrid"
	SearchVector  = "vector"
	SearchKeyword = "keyword"
)

// SearchQuery asks for the chunks of one tenant that best match a query.
type SearchQuery struct {
	TenantID string
	Query    string
	Vector   []float32 // embedding of Query; unused in keyword mode
	Space    int       // the embedding space of Vector: the vector leg compares it with that space's chunks only
	TopK     int
	Mode     string
	Language string // text search configuration the query is analysed with; DefaultLanguage when empty
	Weights  SearchWeights
	Explain  bool
	SearchFilter
}

// SearchFilter narrows a search to some of a tenant's chunks. Every field
// left empty matches everything.
type SearchFilter struct {
	Collection  string
	DocumentIDs []string
	// Metadata maps a document metadata field to the values it may have:
	// one value means equality, several mean any of them.
	Metadata      map[string][]any
	CreatedAfter  *time.Time // documents created at or after
	CreatedBefore *time.Time // documents created before
}

// SearchWeights weigh each retriever's ranks in hybrid fusion.
type SearchWeights struct {
	Keyword float64
	Vector  float64
}

// DefaultLanguage is the text search configuration of documents and queries
// that name none.
const DefaultLanguage = "english"

// Languages are the text search configurations a document or a query may
// name: PostgreSQL's built-in ones ("simple" only lowercases, without
// stemming or stop words).
var Languages = []string{"simple", "arabic", "armenian", "basque", "catalan", "danish", "dutch", "english",
	"finnish", "french", "german", "greek", "hindi", "hungarian", "indonesian", "irish", "italian", "lithuanian",
	"nepali", "norwegian", "portuguese", "romanian", "russian", "serbian", "spanish", "swedish", "tamil",
	"turkish", "yiddish"}

// SearchResult is one chunk that matched, with its score (higher is better;
// comparable only within one mode).
type SearchResult struct {
	DocumentID string
	ChunkIndex int
	Text       string
	PageStart  int
	PageEnd    int
	Section    string
	OCR        bool
	Score      float64
	Explain    *SearchExplain // with SearchQuery.Explain
}

// SearchExplain says where a result stood in each retriever: its rank (from
// 1) and score there, nil where that retriever did not return it. Keyword
// scores are BM25; vector scores are cosine similarity.
type SearchExplain struct {
	KeywordRank  *int
	KeywordScore *float64
	VectorRank   *int
	VectorScore  *float64
}

// Collection is a tenant's collection and what it holds.
type Collection struct {
	Name          string
	DocumentCount int
	ChunkCount    int
}
