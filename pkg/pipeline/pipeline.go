// Package pipeline runs ingestion as a chain of queued tasks:
// extract → chunk → embed (one task per batch) → upsert. Each stage reads its
// input from the object store, writes its output there as an artifact, records
// progress in Postgres and enqueues the next stage with a deterministic task
// ID. Every stage can run twice without harm.
package pipeline

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/semaphore"

	"github.com/ragpipe/ragpipe/pkg/chunk"
	"github.com/ragpipe/ragpipe/pkg/embed"
	"github.com/ragpipe/ragpipe/pkg/extract"
	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// tracerName names the pipeline's spans' instrumentation scope.
const tracerName = "github.com/ragpipe/ragpipe/pkg/pipeline"

// Store is the state the pipeline reads and advances.
type Store interface {
	JobWithDocument(ctx context.Context, jobID string) (*ragpipe.Job, *ragpipe.Document, error)
	BeginStage(ctx context.Context, jobID, stage string, attempt int) (*ragpipe.Job, error)
	SetPages(ctx context.Context, documentID string, pages int) error
	SetProgress(ctx context.Context, jobID string, progress float64) error
	PrepareEmbed(ctx context.Context, jobID string, batchSizes []int) error
	CompleteBatch(ctx context.Context, jobID string, batch int) (bool, error)
	FinishJob(ctx context.Context, jobID string, chunks []ragpipe.Chunk, vectors [][]float32) (bool, error)
	FailJob(ctx context.Context, jobID, code, message string) error
	DeletingDocument(ctx context.Context, documentID string) (string, error)
	PurgeDocument(ctx context.Context, documentID string) (string, error)
}

// Blobs holds raw uploads and artifacts.
type Blobs interface {
	Open(ctx context.Context, key string) (io.ReadCloser, error)
	Get(ctx context.Context, key string) ([]byte, error)
	Put(ctx context.Context, key string, b []byte) error
	DeletePrefix(ctx context.Context, prefix string) error
}

// Extractor turns a stored file into pages of text.
type Extractor interface {
	ExtractProgress(ctx context.Context, f extract.Format, path string, progress extract.Progress) ([]ragpipe.Page, error)
}

// Enqueuer puts the next stage's task on the queue.
type Enqueuer interface {
	Enqueue(ctx context.Context, t ragpipe.Task) error
}

// Params are the pipeline's dependencies and settings.
type Params struct {
	Store     Store
	Blobs     Blobs
	Extractor Extractor
	Embedder  embed.Embedder // of chunks, in the configured embedding space
	Space     int            // the ID of Embedder's space, recorded with each batch of vectors
	Queue     Enqueuer
	Logger    *slog.Logger
	BatchSize int // chunks per embed task
	// InlineText is the most text a document may have for its extract task
	// to chunk, embed and store it too (0: never): a small document's chunks
	// fit one embed batch, and three more tasks with their artifacts would
	// cost more than the work itself. A crash repeats the whole task.
	InlineText int
	TempDir    string // where raw files are staged for extraction; "" for the OS default
	// MemoryBudget bounds the memory the chunk and upsert stages of all
	// jobs hold at once, by estimate (see hold); 0 for no bound. Those
	// stages hold a document whole, so without it a worker running four
	// of the largest documents at once would need four times the memory.
	MemoryBudget int64
	// ProgressEvery is the least time between two progress records of one
	// extraction (0: a second), so a document extracted faster writes none.
	ProgressEvery time.Duration
}

// Pipeline holds the task handlers.
type Pipeline struct {
	p      Params
	budget *semaphore.Weighted
}

// New returns a Pipeline.
func New(p Params) *Pipeline {
	if p.ProgressEvery == 0 {
		p.ProgressEvery = time.Second
	}
	pl := &Pipeline{p: p}
	if p.MemoryBudget > 0 {
		pl.budget = semaphore.NewWeighted(p.MemoryBudget)
	}
	return pl
}

// hold takes bytes of the memory budget (all of it at most, so that the
// largest document runs alone) until release is called.
func (pl *Pipeline) hold(ctx context.Context, bytes int64) (release func(), err error) {
	if pl.budget == nil {
		return func() {}, nil
	}
	w := min(max(bytes, 1), pl.p.MemoryBudget)
	if err := pl.budget.Acquire(ctx, w); err != nil {
		return nil, err
	}
	return func() { pl.budget.Release(w) }, nil
}

// Handlers returns the pipeline's task handlers, by task type.
func (pl *Pipeline) Handlers() map[ragpipe.TaskType]ragpipe.TaskHandler {
	return map[ragpipe.TaskType]ragpipe.TaskHandler{
		ragpipe.TaskExtract: pl.stage(ragpipe.StageExtract, pl.extract),
		ragpipe.TaskChunk:   pl.stage(ragpipe.StageChunk, pl.chunk),
		ragpipe.TaskEmbed:   pl.stage(ragpipe.StageEmbed, pl.embed),
		ragpipe.TaskUpsert:  pl.stage(ragpipe.StageUpsert, pl.upsert),
		ragpipe.TaskDelete:  pl.delete,
		ragpipe.TaskSweep:   pl.sweep,
	}
}

// sweep removes what is left under a purged document's prefix: artifacts a
// stage already running at the deletion wrote after the cleanup.
func (pl *Pipeline) sweep(ctx context.Context, t ragpipe.TaskRun) error {
	p, err := ragpipe.DecodeTask(t.Type, t.Payload)
	if err != nil {
		return err
	}
	if p.TenantID == "" {
		return ragpipe.Permanent(errors.New("sweep without tenant_id"))
	}
	return pl.p.Blobs.DeletePrefix(ctx, ragpipe.DocumentPrefix(p.TenantID, p.DocumentID))
}

// delete removes everything a deleted document left in the object store, then
// its rows. Either step may run again after a crash.
func (pl *Pipeline) delete(ctx context.Context, t ragpipe.TaskRun) error {
	p, err := ragpipe.DecodeTask(t.Type, t.Payload)
	if err != nil {
		return err
	}
	tenantID, err := pl.p.Store.DeletingDocument(ctx, p.DocumentID)
	if ragpipe.ErrorCode(err) == ragpipe.ENOTFOUND {
		return nil // purged already
	}
	if err != nil {
		return err
	}
	if err := pl.p.Blobs.DeletePrefix(ctx, ragpipe.DocumentPrefix(tenantID, p.DocumentID)); err != nil {
		return err
	}
	// Before the purge, so a failed enqueue retries the whole cleanup.
	if err := pl.next(ctx, ragpipe.TaskSweep, ragpipe.TaskPayload{DocumentID: p.DocumentID, TenantID: tenantID, Trace: p.Trace}); err != nil {
		return err
	}
	if _, err := pl.p.Store.PurgeDocument(ctx, p.DocumentID); err != nil {
		return err
	}
	pl.p.Logger.Info("document purged", "document_id", p.DocumentID, "request_id", p.RequestID)
	return nil
}

func artifactKey(j *ragpipe.Job, name string) string {
	return ragpipe.DocumentPrefix(j.TenantID, j.DocumentID) + "jobs/" + j.ID + "/" + name
}

type stageFunc func(ctx context.Context, log *slog.Logger, p ragpipe.TaskPayload, j *ragpipe.Job, d *ragpipe.Document) error

// stage wraps a stage: it decodes the payload, records the attempt, skips
// jobs that already ended, and ends the job at once on a permanent error.
func (pl *Pipeline) stage(name string, fn stageFunc) ragpipe.TaskHandler {
	return func(ctx context.Context, t ragpipe.TaskRun) error {
		p, err := ragpipe.DecodeTask(t.Type, t.Payload)
		if err != nil {
			return err
		}
		log := pl.p.Logger.With("task", t.Type, "job_id", p.JobID, "request_id", p.RequestID)
		if name != ragpipe.StageEmbed {
			if _, err := pl.p.Store.BeginStage(ctx, p.JobID, name, t.Retried+1); err != nil {
				return pl.missingJob(err)
			}
		}
		j, d, err := pl.p.Store.JobWithDocument(ctx, p.JobID)
		if err != nil {
			return pl.missingJob(err)
		}
		trace.SpanFromContext(ctx).SetAttributes(attribute.String("ragpipe.document.id", j.DocumentID),
			attribute.String("ragpipe.tenant.id", j.TenantID))
		if j.Terminal() {
			log.Info("job already ended; nothing to do", "status", j.Status)
			return nil
		}
		err = fn(ctx, log, p, j, d)
		if err == nil {
			return nil
		}
		if permanent(err) {
			log.Warn("job failed", "code", ragpipe.ErrorCode(err), "err", err)
			if ferr := pl.p.Store.FailJob(ctx, j.ID, ragpipe.ErrorCode(err), ragpipe.ErrorMessage(err)); ferr != nil {
				return ferr
			}
			return ragpipe.Permanent(err)
		}
		return err
	}
}

// missingJob makes a task whose job is gone (deleted) end without retries.
func (pl *Pipeline) missingJob(err error) error {
	if ragpipe.ErrorCode(err) == ragpipe.ENOTFOUND {
		return ragpipe.Permanent(err)
	}
	return err
}

// permanent reports whether err is a verdict on the document rather than a
// passing failure of something the pipeline depends on.
func permanent(err error) bool {
	var e *ragpipe.Error
	if !errors.As(err, &e) {
		return false
	}
	return e.Code != ragpipe.EUNAVAILABLE && e.Code != ragpipe.EINTERNAL
}

// HandleError is the worker's error handler: when a task has spent its
// retries, its job fails with the last error.
func (pl *Pipeline) HandleError(ctx context.Context, t ragpipe.TaskRun, err error) {
	p, derr := ragpipe.DecodeTask(t.Type, t.Payload)
	if derr != nil || p.JobID == "" {
		return // not a job's task (a document deletion retries by itself)
	}
	log := pl.p.Logger.With("task", t.Type, "job_id", p.JobID, "request_id", p.RequestID)
	if errors.Is(err, ragpipe.ErrPermanent) {
		log.Warn("task failed for good", "err", err)
		return
	}
	if t.Retried < t.MaxRetry {
		log.Warn("task failed; will retry", "attempt", t.Retried+1, "max_retry", t.MaxRetry, "err", err)
		return
	}
	msg := fmt.Sprintf("%s failed after %d attempts: %s", t.Type, t.Retried+1, ragpipe.ErrorMessage(err))
	log.Error("task out of retries; failing job", "err", err)
	if ferr := pl.p.Store.FailJob(context.WithoutCancel(ctx), p.JobID, ragpipe.CodeRetriesSpent, msg); ferr != nil {
		log.Error("record job failure", "err", ferr)
	}
}

func (pl *Pipeline) next(ctx context.Context, typ ragpipe.TaskType, p ragpipe.TaskPayload) error {
	return pl.p.Queue.Enqueue(ctx, ragpipe.NewTask(typ, p))
}

func (pl *Pipeline) extract(ctx context.Context, log *slog.Logger, p ragpipe.TaskPayload, j *ragpipe.Job, d *ragpipe.Document) error {
	path, err := pl.stageRaw(ctx, d)
	if err != nil {
		return err
	}
	defer os.Remove(path)
	if extract.Format(d.Format) != extract.PDF {
		// Parsed in this process: the file, its text and the pages' JSON.
		// PDF text comes from pdftotext, a page at a time, into the limit
		// on text; a bound on it here would serialise large PDFs.
		release, err := pl.hold(ctx, 3*d.SizeBytes)
		if err != nil {
			return err
		}
		defer release()
	}
	last := time.Now()
	pages, err := pl.p.Extractor.ExtractProgress(ctx, extract.Format(d.Format), path, func(done, total int) {
		// Progress is for people and the reaper: a write a second will do.
		if total == 0 || time.Since(last) < pl.p.ProgressEvery {
			return
		}
		last = time.Now()
		if err := pl.p.Store.SetProgress(ctx, j.ID, float64(done)/float64(total)); err != nil {
			log.Warn("record extraction progress", "err", err)
		}
	})
	if err != nil {
		return err
	}
	text := 0
	for _, pg := range pages {
		text += len(pg.Text)
	}
	if text == 0 {
		return ragpipe.Errorf(ragpipe.CodeNoText, "the document contains no extractable text")
	}
	n := 0
	for _, pg := range pages {
		n = max(n, pg.Number)
	}
	if err := pl.p.Store.SetPages(ctx, d.ID, n); err != nil {
		return err
	}
	log.Info("extracted", "pages", n, "bytes", text)
	if text <= pl.p.InlineText {
		return pl.index(ctx, log, p, j, d, pages)
	}
	b, err := json.Marshal(pages)
	if err != nil {
		return err
	}
	if err := pl.p.Blobs.Put(ctx, artifactKey(j, "pages.json"), b); err != nil {
		return unavailable(err, "object store")
	}
	return pl.next(ctx, ragpipe.TaskChunk, ragpipe.TaskPayload{JobID: j.ID, RequestID: p.RequestID, Trace: p.Trace})
}

// index chunks the extracted pages of a small document; when the chunks fit
// one embed batch it embeds and stores them at once, otherwise it hands them
// to embed tasks as the chunk stage does. So does a passing failure of the
// embedding provider: the embed task's retries outlast an outage.
func (pl *Pipeline) index(ctx context.Context, log *slog.Logger, p ragpipe.TaskPayload, j *ragpipe.Job, d *ragpipe.Document, pages []ragpipe.Page) error {
	chunks, err := pl.split(j, d, pages)
	if err != nil {
		return err
	}
	if len(chunks) > pl.p.BatchSize {
		return pl.batch(ctx, log, p, j, chunks)
	}
	texts := make([]string, len(chunks))
	for i, c := range chunks {
		texts[i] = c.Text
	}
	vecs, err := pl.embedTexts(ctx, texts)
	if err != nil && !permanent(err) && ctx.Err() == nil {
		log.Warn("embedding failed; handing the chunks to an embed task", "err", err)
		return pl.batch(ctx, log, p, j, chunks)
	}
	if err != nil {
		return err
	}
	// The job stays in stage extract until it succeeds: after a crash the
	// reaper, or Asynq, runs this task again, as no artifact of a later stage
	// exists.
	out := make([]ragpipe.Chunk, len(chunks))
	for i, c := range chunks {
		out[i] = ragpipe.Chunk{DocumentID: j.DocumentID, Index: c.Index, Text: c.Text, PageStart: c.PageStart, PageEnd: c.PageEnd,
			Section: c.Section, OCR: c.OCR}
	}
	ok, err := pl.finish(ctx, j, out, vecs)
	if ok {
		log.Info("document ready", "document_id", j.DocumentID, "chunks", len(out), "inline", true)
	}
	return err
}

// stageRaw copies the raw upload to a local file for the extractor.
func (pl *Pipeline) stageRaw(ctx context.Context, d *ragpipe.Document) (string, error) {
	rc, err := pl.p.Blobs.Open(ctx, d.RawKey)
	if err != nil {
		return "", unavailable(err, "object store")
	}
	defer rc.Close()
	f, err := os.CreateTemp(pl.p.TempDir, "ragpipe-raw-*")
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(f, rc); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", unavailable(err, "object store")
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// storedChunk is a chunk as kept in a batch artifact.
type storedChunk struct {
	Index     int    `json:"index"`
	Text      string `json:"text"`
	PageStart int    `json:"page_start"`
	PageEnd   int    `json:"page_end"`
	Section   string `json:"section,omitempty"`
	OCR       bool   `json:"ocr,omitempty"`
}

func (pl *Pipeline) chunk(ctx context.Context, log *slog.Logger, p ragpipe.TaskPayload, j *ragpipe.Job, d *ragpipe.Document) error {
	b, err := pl.p.Blobs.Get(ctx, artifactKey(j, "pages.json"))
	if err != nil {
		return unavailable(err, "object store")
	}
	// Decoded pages, the chunks and their batches' JSON: about four times the artifact.
	release, err := pl.hold(ctx, 4*int64(len(b)))
	if err != nil {
		return err
	}
	defer release()
	var pages []ragpipe.Page
	if err := json.Unmarshal(b, &pages); err != nil {
		return fmt.Errorf("decode pages artifact: %w", err)
	}
	chunks, err := pl.split(j, d, pages)
	if err != nil {
		return err
	}
	return pl.batch(ctx, log, p, j, chunks)
}

// split chunks a document's pages with its job's settings.
func (pl *Pipeline) split(j *ragpipe.Job, d *ragpipe.Document, pages []ragpipe.Page) ([]chunk.Chunk, error) {
	chunks, err := chunk.Split(pages, chunk.Options{Size: j.ChunkSize, Overlap: j.ChunkOverlap, Unit: chunk.Tokens,
		Markdown: extract.Format(d.Format).Markdown()})
	if err != nil {
		return nil, err
	}
	if len(chunks) == 0 {
		return nil, ragpipe.Errorf(ragpipe.CodeNoText, "the document contains no text to index")
	}
	return chunks, nil
}

// batch stores the chunks in embed batches, records them and enqueues a
// task per batch.
func (pl *Pipeline) batch(ctx context.Context, log *slog.Logger, p ragpipe.TaskPayload, j *ragpipe.Job, chunks []chunk.Chunk) error {
	var sizes []int
	for start := 0; start < len(chunks); start += pl.p.BatchSize {
		batch := chunks[start:min(start+pl.p.BatchSize, len(chunks))]
		out := make([]storedChunk, len(batch))
		for i, c := range batch {
			out[i] = storedChunk{Index: c.Index, Text: c.Text, PageStart: c.PageStart, PageEnd: c.PageEnd, Section: c.Section, OCR: c.OCR}
		}
		b, err := json.Marshal(out)
		if err != nil {
			return err
		}
		if err := pl.p.Blobs.Put(ctx, artifactKey(j, fmt.Sprintf("batches/%d.json", len(sizes))), b); err != nil {
			return unavailable(err, "object store")
		}
		sizes = append(sizes, len(batch))
	}
	if err := pl.p.Store.PrepareEmbed(ctx, j.ID, sizes); err != nil {
		return err
	}
	log.Info("chunked", "chunks", len(chunks), "batches", len(sizes))
	for i := range sizes {
		if err := pl.next(ctx, ragpipe.TaskEmbed, ragpipe.TaskPayload{JobID: j.ID, Batch: i, RequestID: p.RequestID, Trace: p.Trace}); err != nil {
			return err
		}
	}
	return nil
}

// embedTexts embeds chunk texts in the configured space; a request the
// provider refuses is the document's failure.
func (pl *Pipeline) embedTexts(ctx context.Context, texts []string) ([][]float32, error) {
	vecs, err := pl.p.Embedder.Embed(ctx, texts)
	if err != nil {
		if embed.IsPermanent(err) {
			return nil, ragpipe.Wrap(err, ragpipe.CodeEmbedRejected, "the embedding provider rejected the request")
		}
		return nil, err
	}
	if len(vecs) != len(texts) {
		return nil, fmt.Errorf("embedder returned %d vectors for %d texts", len(vecs), len(texts))
	}
	return vecs, nil
}

func (pl *Pipeline) embed(ctx context.Context, log *slog.Logger, p ragpipe.TaskPayload, j *ragpipe.Job, _ *ragpipe.Document) error {
	chunks, err := pl.readBatch(ctx, j, p.Batch)
	if err != nil {
		return err
	}
	texts := make([]string, len(chunks))
	for i, c := range chunks {
		texts[i] = c.Text
	}
	vecs, err := pl.embedTexts(ctx, texts)
	if err != nil {
		return err
	}
	if err := pl.p.Blobs.Put(ctx, artifactKey(j, fmt.Sprintf("batches/%d.vec", p.Batch)), encodeVectors(pl.p.Space, vecs)); err != nil {
		return unavailable(err, "object store")
	}
	done, err := pl.p.Store.CompleteBatch(ctx, j.ID, p.Batch)
	if err != nil {
		return err
	}
	log.Debug("embedded batch", "batch", p.Batch, "chunks", len(chunks), "all_done", done)
	if !done {
		return nil
	}
	return pl.next(ctx, ragpipe.TaskUpsert, ragpipe.TaskPayload{JobID: j.ID, RequestID: p.RequestID, Trace: p.Trace})
}

func (pl *Pipeline) readBatch(ctx context.Context, j *ragpipe.Job, batch int) ([]storedChunk, error) {
	b, err := pl.p.Blobs.Get(ctx, artifactKey(j, fmt.Sprintf("batches/%d.json", batch)))
	if err != nil {
		return nil, unavailable(err, "object store")
	}
	var chunks []storedChunk
	if err := json.Unmarshal(b, &chunks); err != nil {
		return nil, fmt.Errorf("decode batch %d: %w", batch, err)
	}
	return chunks, nil
}

// upsertBytesPerToken is what the upsert stage holds per token of a chunk,
// by estimate: the text (about 4 bytes a token) in the batch's JSON and in
// the chunk, and the rows the database driver encodes.
const upsertBytesPerToken = 12

func (pl *Pipeline) upsert(ctx context.Context, log *slog.Logger, _ ragpipe.TaskPayload, j *ragpipe.Job, _ *ragpipe.Document) error {
	perChunk := int64(upsertBytesPerToken*j.ChunkSize + 8*pl.p.Embedder.Dimensions()) // vectors decoded and encoded
	release, err := pl.hold(ctx, int64(j.TotalBatches*pl.p.BatchSize)*perChunk)
	if err != nil {
		return err
	}
	defer release()
	var chunks []ragpipe.Chunk
	var vectors [][]float32
	for batch := range j.TotalBatches {
		cs, err := pl.readBatch(ctx, j, batch)
		if err != nil {
			return err
		}
		b, err := pl.p.Blobs.Get(ctx, artifactKey(j, fmt.Sprintf("batches/%d.vec", batch)))
		if err != nil {
			return unavailable(err, "object store")
		}
		space, vs := decodeVectors(b, pl.p.Embedder.Dimensions())
		if space != pl.p.Space {
			// Embedded before the configured space changed: embed it again.
			log.Info("embedding again a batch of another embedding space", "batch", batch, "space", space)
			texts := make([]string, len(cs))
			for i, c := range cs {
				texts[i] = c.Text
			}
			if vs, err = pl.embedTexts(ctx, texts); err != nil {
				return err
			}
		}
		if len(vs) != len(cs) {
			return fmt.Errorf("batch %d: %d chunks, %d vectors", batch, len(cs), len(vs))
		}
		for _, c := range cs {
			chunks = append(chunks, ragpipe.Chunk{DocumentID: j.DocumentID, Index: c.Index, Text: c.Text,
				PageStart: c.PageStart, PageEnd: c.PageEnd, Section: c.Section, OCR: c.OCR})
		}
		vectors = append(vectors, vs...)
	}
	ok, err := pl.finish(ctx, j, chunks, vectors)
	if err != nil {
		return err
	}
	if ok {
		log.Info("document ready", "document_id", j.DocumentID, "chunks", len(chunks))
	}
	return nil
}

// finish stores a document's chunks and ends its job, in a span of its own:
// the one write of a whole document.
func (pl *Pipeline) finish(ctx context.Context, j *ragpipe.Job, chunks []ragpipe.Chunk, vectors [][]float32) (bool, error) {
	ctx, span := otel.Tracer(tracerName).Start(ctx, "upsert chunks", trace.WithAttributes(attribute.Int("ragpipe.chunks", len(chunks))))
	defer span.End()
	ok, err := pl.p.Store.FinishJob(ctx, j.ID, chunks, vectors)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	return ok, err
}

// unavailable marks err as a passing failure of a dependency, to be retried.
func unavailable(err error, what string) error {
	return ragpipe.Wrap(err, ragpipe.EUNAVAILABLE, what+" unavailable")
}

// vectorsMagic starts a batch's vector artifact, followed by the ID of the
// embedding space the vectors are in.
const vectorsMagic = "RPV1"

// encodeVectors packs the vectors of space as little-endian float32s, one
// after another, after the magic and the space.
func encodeVectors(space int, vs [][]float32) []byte {
	var n int
	for _, v := range vs {
		n += len(v)
	}
	b := make([]byte, 0, 8+4*n)
	b = binary.LittleEndian.AppendUint32(append(b, vectorsMagic...), uint32(space))
	for _, v := range vs {
		for _, x := range v {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
		}
	}
	return b
}

// decodeVectors unpacks what encodeVectors packed, of dim dimensions. It
// reports space -1 for an artifact that holds no such vectors (of another
// size, or written before spaces were recorded), for the caller to embed
// the batch again.
func decodeVectors(b []byte, dim int) (space int, vs [][]float32) {
	if len(b) < 8 || string(b[:4]) != vectorsMagic {
		return -1, nil
	}
	space, b = int(binary.LittleEndian.Uint32(b[4:])), b[8:]
	if dim <= 0 || len(b)%(4*dim) != 0 {
		return -1, nil
	}
	vs = make([][]float32, len(b)/(4*dim))
	for i := range vs {
		v := make([]float32, dim)
		for k := range v {
			v[k] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*(i*dim+k):]))
		}
		vs[i] = v
	}
	return space, vs
}
