package ragpipe

import (
	"encoding/json"
	"time"
)

// DocumentJSON is a document as clients see it: in API answers and in
// webhook bodies alike.
type DocumentJSON struct {
	ID         string          `json:"id"`
	Collection string          `json:"collection"`
	Filename   string          `json:"filename"`
	Format     string          `json:"format"`
	Language   string          `json:"language"`
	SizeBytes  int64           `json:"size_bytes"`
	SHA256     string          `json:"sha256"`
	Metadata   json.RawMessage `json:"metadata"`
	Status     string          `json:"status"`
	Pages      int             `json:"pages"`
	ChunkCount int             `json:"chunk_count"`
	LastJobID  string          `json:"last_job_id"`
	CreatedAt  time.Time       `json:"created_at"`
	UpdatedAt  time.Time       `json:"updated_at"`
}

// JSON returns the document as clients see it; metadata is {} when unset.
func (d *Document) JSON() DocumentJSON {
	md := d.Metadata
	if len(md) == 0 {
		md = json.RawMessage(`{}`)
	}
	return DocumentJSON{
		ID: d.ID, Collection: d.Collection, Filename: d.Filename, Format: d.Format, Language: d.Language, SizeBytes: d.SizeBytes,
		SHA256: d.SHA256, Metadata: md, Status: d.Status, Pages: d.Pages, ChunkCount: d.ChunkCount,
		LastJobID: d.LastJobID, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt,
	}
}

// JobErrorJSON is why a job failed.
type JobErrorJSON struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// JobJSON is a job as clients see it: in API answers and in webhook bodies
// alike.
type JobJSON struct {
	ID             string        `json:"id"`
	Kind           string        `json:"kind"`
	DocumentID     string        `json:"document_id"`
	Status         string        `json:"status"`
	Stage          string        `json:"stage"`
	Progress       float64       `json:"progress"`
	Attempts       int           `json:"attempts"`
	Error          *JobErrorJSON `json:"error"`
	TotalChunks    int           `json:"total_chunks"`
	EmbeddedChunks int           `json:"embedded_chunks"`
	RequestID      string        `json:"request_id,omitempty"`
	CreatedAt      time.Time     `json:"created_at"`
	StartedAt      *time.Time    `json:"started_at"`
	FinishedAt     *time.Time    `json:"finished_at"`
	UpdatedAt      time.Time     `json:"updated_at"`
}

// JSON returns the job as clients see it.
func (j *Job) JSON() JobJSON {
	out := JobJSON{
		ID: j.ID, Kind: j.Kind, DocumentID: j.DocumentID, Status: j.Status, Stage: j.Stage, Progress: j.Progress,
		Attempts: j.Attempts, TotalChunks: j.TotalChunks, EmbeddedChunks: j.EmbeddedChunks, RequestID: j.RequestID,
		CreatedAt: j.CreatedAt, StartedAt: j.StartedAt, FinishedAt: j.FinishedAt, UpdatedAt: j.UpdatedAt,
	}
	if j.ErrorCode != "" {
		out.Error = &JobErrorJSON{Code: j.ErrorCode, Message: j.ErrorMessage}
	}
	return out
}
