// Package ingest is the one place that accepts, deletes and re-ingests a
// document. It owns each use case's writes and their undo: the upload's
// bytes go to the object store first, then one transaction records the
// document, its job, its callback and its idempotency record; a failure
// after the bytes are stored removes them. Tasks recorded in the outbox are
// handed to the queue at once, the outbox relay covering a failed hand-off.
// The HTTP API calls it; so can a CLI or an MCP server.
package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"github.com/ragpipe/ragpipe/pkg/extract"
	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// Store records documents and jobs.
type Store interface {
	CreateDocument(ctx context.Context, d *ragpipe.Document, j *ragpipe.Job, opts ragpipe.CreateOptions) (*ragpipe.Document, error)
	IdempotentResponse(ctx context.Context, tenantID, key string) (*ragpipe.IdempotencyRecord, error)
	Reingest(ctx context.Context, tenantID, documentID string, j *ragpipe.Job) error
	DeleteDocument(ctx context.Context, tenantID, documentID string, t ragpipe.Task) error
	MarkSent(ctx context.Context, taskID string) error
}

// Blobs stores uploaded bytes.
type Blobs interface {
	Upload(ctx context.Context, key string, r io.Reader) error
	Delete(ctx context.Context, key string) error
}

// Enqueuer puts a task on the queue.
type Enqueuer interface {
	Enqueue(ctx context.Context, t ragpipe.Task) error
}

// Params are the service's dependencies and settings.
type Params struct {
	Store        Store
	Blobs        Blobs
	Queue        Enqueuer
	Logger       *slog.Logger
	NewSecret    func() string // a tenant's first callback secret (webhook.NewSecret)
	ChunkSize    int           // defaults of a job's chunking
	ChunkOverlap int
}

// Service accepts, deletes and re-ingests documents.
type Service struct {
	p Params
}

// New returns a Service.
func New(p Params) *Service { return &Service{p: p} }

// File is an upload's bytes, stored under Key for the document DocumentID and
// waiting for Accept or Discard.
type File struct {
	DocumentID string
	TenantID   string
	Key        string
	Filename   string
	Format     extract.Format // sniffed from the content, never the client's claim
	Size       int64
	SHA256     string
}

// Upload sniffs the first bytes of r, refuses content of no supported
// format before storing anything, then streams r to the object store through
// a cap of limit bytes, hashing it. Errors of r that are *ragpipe.Error (the
// caller's verdict on its request body) are returned as they are.
func (s *Service) Upload(ctx context.Context, tenantID, filename string, r io.Reader, limit int64) (*File, error) {
	head := make([]byte, extract.SniffLen)
	n, err := io.ReadFull(r, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return nil, err
	}
	head = head[:n]
	if n == 0 {
		return nil, ragpipe.Errorf(ragpipe.EUNPROCESSABLE, "the file is empty")
	}
	format, err := extract.Sniff(head)
	if err != nil {
		return nil, err
	}
	f := &File{DocumentID: uuid.NewString(), TenantID: tenantID, Filename: filename, Format: format}
	f.Key = ragpipe.RawKey(tenantID, f.DocumentID)
	lr := &limitedHashReader{r: io.MultiReader(bytes.NewReader(head), r), h: sha256.New(), limit: limit}
	if err := s.p.Blobs.Upload(ctx, f.Key, lr); err != nil {
		if lr.n > 0 {
			s.Discard(ctx, f)
		}
		var de *ragpipe.Error
		switch {
		case errors.As(err, &de) && de.Code == ragpipe.ETOOLARGE:
			return nil, de
		case ctx.Err() != nil:
			return nil, ragpipe.Errorf(ragpipe.EINCOMPLETE, "the upload was interrupted; nothing was stored")
		case errors.As(err, &de):
			return nil, de
		}
		return nil, ragpipe.Wrap(err, ragpipe.EUNAVAILABLE, "object store unavailable; retry later")
	}
	f.Size, f.SHA256 = lr.n, hex.EncodeToString(lr.h.Sum(nil))
	return f, nil
}

// TooLarge is the error of a file past the upload limit.
func TooLarge(limit int64) error {
	return ragpipe.Errorf(ragpipe.ETOOLARGE, "the file is larger than the limit of %d bytes", limit)
}

// limitedHashReader counts, hashes and caps what passes through it.
type limitedHashReader struct {
	r     io.Reader
	h     hash.Hash
	n     int64
	limit int64
}

func (l *limitedHashReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	l.n += int64(n)
	l.h.Write(p[:n])
	if l.n > l.limit {
		return n, TooLarge(l.limit)
	}
	return n, err
}

// Discard removes an uploaded file that will not be accepted.
func (s *Service) Discard(ctx context.Context, f *File) {
	if err := s.p.Blobs.Delete(context.WithoutCancel(ctx), f.Key); err != nil {
		s.p.Logger.Warn("discard upload", "key", f.Key, "err", err)
	}
}

// Request is what an upload asks besides its bytes.
type Request struct {
	RequestID   string
	Collection  string
	Language    string          // text search configuration of its text; ragpipe.DefaultLanguage when empty
	Metadata    json.RawMessage // a JSON object, or empty
	CallbackURL string          // checked by the caller against the URL guard
	Dedupe      bool            // answer with an earlier upload of the same bytes to the collection
	// Idempotency, when its Key is set, records the answer (Status and
	// Body) under the key with the document; Accept sets its Fingerprint.
	Idempotency *ragpipe.IdempotencyRecord
}

// Result is what Accept did.
type Result struct {
	Document *ragpipe.Document
	Job      *ragpipe.Job // nil when Deduplicated
	// Deduplicated says Document is an earlier upload of the same bytes to
	// the same collection, and nothing new was recorded.
	Deduplicated bool
	// Replay is the answer recorded for the request's Idempotency-Key by an
	// earlier request; nothing new was recorded.
	Replay *ragpipe.IdempotencyRecord
}

// Accept records an uploaded file as a document with its first job, which
// the dispatcher hands to the pipeline. The file is removed when nothing new
// is recorded: a failure, a duplicate, or a replayed answer.
func (s *Service) Accept(ctx context.Context, f *File, req Request) (*Result, error) {
	fingerprint := f.fingerprint(req)
	idem := req.Idempotency
	if idem != nil && idem.Key != "" {
		idem.Fingerprint = fingerprint
		rec, err := s.p.Store.IdempotentResponse(ctx, f.TenantID, idem.Key)
		if err != nil || rec != nil {
			s.Discard(ctx, f)
			if err != nil {
				return nil, err
			}
			return replay(rec, fingerprint)
		}
	} else {
		idem = nil
	}
	doc := &ragpipe.Document{ID: f.DocumentID, TenantID: f.TenantID, Collection: req.Collection, Language: req.Language, Filename: f.Filename,
		Format: string(f.Format), SizeBytes: f.Size, SHA256: f.SHA256, Metadata: req.Metadata,
		Status: ragpipe.DocProcessing, RawKey: f.Key}
	job := &ragpipe.Job{
		ID: uuid.NewString(), TenantID: f.TenantID, DocumentID: doc.ID, Kind: ragpipe.JobIngest,
		Status: ragpipe.JobQueued, Stage: ragpipe.StageExtract, RequestID: req.RequestID,
		ChunkSize: s.p.ChunkSize, ChunkOverlap: s.p.ChunkOverlap, Trace: traceContext(ctx),
	}
	opts := ragpipe.CreateOptions{Dedupe: req.Dedupe, Idempotency: idem}
	if req.CallbackURL != "" {
		opts.Callback = &ragpipe.Callback{URL: req.CallbackURL, NewSecret: s.p.NewSecret()}
	}
	existing, err := s.p.Store.CreateDocument(ctx, doc, job, opts)
	switch {
	case errors.Is(err, ragpipe.ErrIdempotencyConflict):
		s.Discard(ctx, f)
		rec, err := s.p.Store.IdempotentResponse(ctx, f.TenantID, idem.Key)
		if err != nil || rec == nil {
			return nil, ragpipe.Errorf(ragpipe.ECONFLICT, "a request with this Idempotency-Key is in progress; retry")
		}
		return replay(rec, fingerprint)
	case err != nil:
		s.Discard(ctx, f)
		return nil, err
	case existing != nil:
		s.Discard(ctx, f)
		return &Result{Document: existing, Deduplicated: true}, nil
	}
	return &Result{Document: doc, Job: job}, nil
}

// fingerprint identifies what an upload asked for, so a retry with the same
// Idempotency-Key but a different request can be told apart.
func (f *File) fingerprint(req Request) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%t", f.SHA256, req.Collection, req.Metadata, req.CallbackURL, req.Dedupe)
	if req.Language != "" { // so that keys recorded before languages existed still match
		fmt.Fprintf(h, "\x00%s", req.Language)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// replay returns the recorded answer, or refuses a key reused for a
// different request.
func replay(rec *ragpipe.IdempotencyRecord, fingerprint string) (*Result, error) {
	if rec.Fingerprint != fingerprint {
		return nil, ragpipe.Errorf(ragpipe.EUNPROCESSABLE, "this Idempotency-Key was used for a different request")
	}
	return &Result{Replay: rec}, nil
}

// Chunking is how a job splits its document.
type Chunking struct {
	Size    int
	Overlap int
}

// Chunking returns the chunking a request asks for, the defaults standing in
// for what it leaves out.
func (s *Service) Chunking(size, overlap *int) (Chunking, error) {
	c := Chunking{Size: s.p.ChunkSize, Overlap: s.p.ChunkOverlap}
	if size != nil {
		c.Size = *size
	}
	if overlap != nil {
		c.Overlap = *overlap
	}
	if c.Size < 1 || c.Size > 100_000 || c.Overlap < 0 || c.Overlap >= c.Size {
		return c, ragpipe.Errorf(ragpipe.EUNPROCESSABLE, "chunk_size must be 1..100000 and chunk_overlap 0..chunk_size-1")
	}
	return c, nil
}

// Reingest starts a new job over the tenant's document with chunking c. The
// document keeps serving its current chunks until the job swaps in new ones
// in one transaction. A document with a job in progress is a conflict.
func (s *Service) Reingest(ctx context.Context, tenantID, documentID, requestID string, c Chunking) (*ragpipe.Job, error) {
	j := &ragpipe.Job{ID: uuid.NewString(), Status: ragpipe.JobQueued, Stage: ragpipe.StageExtract,
		RequestID: requestID, ChunkSize: c.Size, ChunkOverlap: c.Overlap, Trace: traceContext(ctx)}
	if err := s.p.Store.Reingest(ctx, tenantID, documentID, j); err != nil {
		return nil, err
	}
	return j, nil
}

// Delete removes the tenant's document from search at once and records the
// task that removes its data, which it hands to the queue. Deleting twice
// is harmless.
func (s *Service) Delete(ctx context.Context, tenantID, documentID, requestID string) error {
	t := ragpipe.NewTask(ragpipe.TaskDelete, ragpipe.TaskPayload{DocumentID: documentID, RequestID: requestID, Trace: traceContext(ctx)})
	if err := s.p.Store.DeleteDocument(ctx, tenantID, documentID, t); err != nil {
		return err
	}
	s.Handoff(ctx, t)
	return nil
}

// Handoff enqueues a task its writer also recorded in the outbox, and marks
// it sent. The outbox row guarantees the task; handing it over now only
// saves the relay's delay, so a failure is logged, not returned.
func (s *Service) Handoff(ctx context.Context, t ragpipe.Task) {
	if err := s.p.Queue.Enqueue(ctx, t); err != nil {
		s.p.Logger.Warn("enqueue failed; outbox relay will retry", "task_id", t.ID, "err", err)
	} else if err := s.p.Store.MarkSent(ctx, t.ID); err != nil {
		s.p.Logger.Warn("mark outbox sent", "task_id", t.ID, "err", err)
	}
}

// traceContext is the trace context of ctx's span, for the work a request
// leaves to the workers to carry on its trace; nil when there is none to
// pass on (tracing is off).
func traceContext(ctx context.Context) map[string]string {
	c := propagation.MapCarrier{}
	otel.GetTextMapPropagator().Inject(ctx, c)
	if len(c) == 0 {
		return nil
	}
	return c
}
