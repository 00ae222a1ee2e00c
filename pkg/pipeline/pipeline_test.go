package pipeline_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"github.com/ragpipe/ragpipe/internal/testenv"
	"github.com/ragpipe/ragpipe/pkg/apikey"
	"github.com/ragpipe/ragpipe/pkg/blob"
	"github.com/ragpipe/ragpipe/pkg/embed"
	"github.com/ragpipe/ragpipe/pkg/extract"
	"github.com/ragpipe/ragpipe/pkg/pipeline"
	"github.com/ragpipe/ragpipe/pkg/postgres"
	"github.com/ragpipe/ragpipe/pkg/queue"
	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// redisDB is this package's Redis database (see testenv.Redis).
const redisDB = 2

type fixture struct {
	queue     *queue.Client
	db        *postgres.DB
	blobs     *blob.Store
	handlers  map[ragpipe.TaskType]ragpipe.TaskHandler
	inspector *asynq.Inspector // the pipeline's tests look into Redis as Asynq keeps it
	tenant    string
}

// newFixture runs the pipeline with batchSize chunks per embed task and
// its other parameters changed by tune.
func newFixture(t *testing.T, batchSize int, tune ...func(*pipeline.Params)) *fixture {
	t.Helper()
	db, _ := testenv.DB(t)
	testenv.Redis(t, redisDB)
	_, blobs := testenv.Bucket(t)
	cfg := testenv.Config(t)
	opt := asynq.RedisClientOpt{Addr: cfg.RedisAddr, Password: cfg.RedisPassword, DB: redisDB}
	q := queue.NewClient(opt)
	t.Cleanup(func() { q.Close() })
	ins := asynq.NewInspector(opt)
	t.Cleanup(func() { ins.Close() })
	params := pipeline.Params{
		Store: db, Blobs: blobs, Extractor: extract.New(extract.Limits{}), Embedder: embed.NewHashing(384),
		Queue: q, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), BatchSize: batchSize,
	}
	for _, fn := range tune {
		fn(&params)
	}
	pl := pipeline.New(params)
	_, hash := apikey.New()
	tenant, err := db.CreateKey(context.Background(), "t", "rp_x", hash)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{db: db, blobs: blobs, handlers: pl.Handlers(), inspector: ins, tenant: tenant, queue: q}
}

// newJob stores raw as a document of format and records its queued job.
func (f *fixture) newJob(t *testing.T, format string, raw []byte) *ragpipe.Job {
	t.Helper()
	ctx := context.Background()
	d := &ragpipe.Document{ID: uuid.NewString(), TenantID: f.tenant, Filename: "f", Format: format,
		SizeBytes: int64(len(raw)), SHA256: "x", Status: ragpipe.DocProcessing}
	d.RawKey = ragpipe.RawKey(f.tenant, d.ID)
	if err := f.blobs.Put(ctx, d.RawKey, raw); err != nil {
		t.Fatal(err)
	}
	j := &ragpipe.Job{ID: uuid.NewString(), TenantID: f.tenant, DocumentID: d.ID, Status: ragpipe.JobQueued,
		Stage: ragpipe.StageExtract, ChunkSize: 500, ChunkOverlap: 50}
	if _, err := f.db.CreateDocument(ctx, d, j, ragpipe.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return j
}

// run runs the task of type typ for p, on its first attempt.
func (f *fixture) run(t *testing.T, typ ragpipe.TaskType, p ragpipe.TaskPayload) error {
	t.Helper()
	task := ragpipe.NewTask(typ, p)
	return f.handlers[typ](context.Background(), ragpipe.TaskRun{Type: typ, ID: task.ID, Payload: task.Payload})
}

// pending lists the IDs of tasks waiting in the pipeline's queues, sorted.
func (f *fixture) pending(t *testing.T) []string {
	t.Helper()
	var ids []string
	for _, q := range f.queues(t) {
		tasks, err := f.inspector.ListPendingTasks(q, asynq.PageSize(1000))
		if err != nil {
			t.Fatal(err)
		}
		for _, ti := range tasks {
			ids = append(ids, ti.ID)
		}
	}
	sort.Strings(ids)
	return ids
}

// queues returns the pipeline's queues that exist (Asynq makes a queue on
// its first task).
func (f *fixture) queues(t *testing.T) []string {
	t.Helper()
	all, err := f.inspector.Queues()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, q := range ragpipe.PipelineQueues {
		if slices.Contains(all, q) {
			out = append(out, q)
		}
	}
	return out
}

func (f *fixture) drain(t *testing.T) {
	t.Helper()
	for _, q := range f.queues(t) {
		if _, err := f.inspector.DeleteAllPendingTasks(q); err != nil {
			t.Fatal(err)
		}
	}
}

func (f *fixture) job(t *testing.T, id string) *ragpipe.Job {
	t.Helper()
	j, err := f.db.Job(context.Background(), f.tenant, id)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// TestStagesTwice runs every stage of a real PDF twice over, as at-least-once
// delivery may, and checks that each enqueues its successors exactly once and
// that the document ends with the right chunks, once.
func TestStagesTwice(t *testing.T) {
	f := newFixture(t, 4)
	pdf, err := os.ReadFile("../../testdata/lppl.pdf")
	if err != nil {
		t.Fatal(err)
	}
	j := f.newJob(t, "pdf", pdf)
	p := ragpipe.TaskPayload{JobID: j.ID}

	for range 2 {
		if err := f.run(t, ragpipe.TaskExtract, p); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff([]string{"doc:chunk:" + j.ID}, f.pending(t)); diff != "" {
		t.Errorf("after extract (-want +got):\n%s", diff)
	}
	f.drain(t)

	for range 2 {
		if err := f.run(t, ragpipe.TaskChunk, p); err != nil {
			t.Fatal(err)
		}
	}
	got := f.job(t, j.ID)
	if got.Stage != ragpipe.StageEmbed || got.TotalBatches < 2 {
		t.Fatalf("after chunk: stage %s, %d batches", got.Stage, got.TotalBatches)
	}
	batches := got.TotalBatches
	if n := len(f.pending(t)); n != batches {
		t.Errorf("after chunk twice: %d embed tasks pending, want %d", n, batches)
	}
	f.drain(t)

	for b := range batches {
		for range 2 {
			if err := f.run(t, ragpipe.TaskEmbed, ragpipe.TaskPayload{JobID: j.ID, Batch: b}); err != nil {
				t.Fatal(err)
			}
		}
		want := []string(nil)
		if b == batches-1 {
			want = []string{"doc:upsert:" + j.ID}
		}
		if diff := cmp.Diff(want, f.pending(t)); diff != "" {
			t.Errorf("after embed batch %d (-want +got):\n%s", b, diff)
		}
	}
	got = f.job(t, j.ID)
	if got.Progress != 1 || got.EmbeddedChunks != got.TotalChunks {
		t.Errorf("after embed: progress %v, %d/%d chunks", got.Progress, got.EmbeddedChunks, got.TotalChunks)
	}

	for range 2 {
		if err := f.run(t, ragpipe.TaskUpsert, p); err != nil {
			t.Fatal(err)
		}
	}
	got = f.job(t, j.ID)
	doc, err := f.db.Document(context.Background(), f.tenant, j.DocumentID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != ragpipe.JobSucceeded || doc.Status != ragpipe.DocReady || doc.Pages != 8 || doc.ChunkCount != got.TotalChunks {
		t.Errorf("end: job %s, document %s with %d pages and %d chunks (job counted %d)",
			got.Status, doc.Status, doc.Pages, doc.ChunkCount, got.TotalChunks)
	}
	chunks, err := f.db.Chunks(context.Background(), f.tenant, j.DocumentID, -1, 10000)
	if err != nil {
		t.Fatal(err)
	}
	if len(chunks) != got.TotalChunks {
		t.Errorf("%d chunks stored, want %d", len(chunks), got.TotalChunks)
	}
	for i, c := range chunks {
		if c.Index != i {
			t.Fatalf("chunk %d has index %d", i, c.Index)
		}
	}
	// A late redelivery of the first stage changes nothing.
	if err := f.run(t, ragpipe.TaskExtract, p); err != nil {
		t.Fatal(err)
	}
	if after := f.job(t, j.ID); after.Status != ragpipe.JobSucceeded || after.Stage != ragpipe.StageUpsert {
		t.Errorf("after a late extract: %s/%s", after.Status, after.Stage)
	}
}

// failingEmbedder fails every call, as a provider having an outage does.
type failingEmbedder struct{ embed.Embedder }

func (failingEmbedder) Embed(context.Context, []string) ([][]float32, error) {
	return nil, errors.New("provider overloaded")
}

// inline has the extract task index documents of up to 32 KiB of text.
func inline(p *pipeline.Params) { p.InlineText = 32 << 10 }

// TestInlineSmallDocument runs the extract task of a small document twice:
// it chunks, embeds and stores the document itself, once, and enqueues
// nothing. A document with more chunks than a batch, or whose embedding
// fails for a while, goes on to embed tasks.
func TestInlineSmallDocument(t *testing.T) {
	f := newFixture(t, 64, inline)
	text := []byte(strings.Repeat("Small documents are indexed by their extract task alone. ", 150))
	j := f.newJob(t, "text", text)
	for range 2 {
		if err := f.run(t, ragpipe.TaskExtract, ragpipe.TaskPayload{JobID: j.ID}); err != nil {
			t.Fatal(err)
		}
	}
	if p := f.pending(t); len(p) != 0 {
		t.Errorf("tasks enqueued by an inline extract: %v", p)
	}
	got := f.job(t, j.ID)
	chunks, err := f.db.Chunks(context.Background(), f.tenant, j.DocumentID, -1, 100)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != ragpipe.JobSucceeded || got.TotalChunks != len(chunks) || got.EmbeddedChunks != len(chunks) || len(chunks) < 2 {
		t.Errorf("job %s with %d/%d chunks embedded; %d stored", got.Status, got.EmbeddedChunks, got.TotalChunks, len(chunks))
	}
	events, err := f.db.JobEvents(context.Background(), f.tenant, j.ID, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range events {
		if e.Type != ragpipe.JobProgressEvent {
			types = append(types, string(e.Type))
		}
	}
	if diff := cmp.Diff([]string{"job.queued", "job.stage", "job.succeeded"}, types); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}

	small := newFixture(t, 2, inline)
	j = small.newJob(t, "text", text)
	if err := small.run(t, ragpipe.TaskExtract, ragpipe.TaskPayload{JobID: j.ID}); err != nil {
		t.Fatal(err)
	}
	if p := small.pending(t); len(p) < 2 || !strings.HasPrefix(p[0], "doc:embed:") {
		t.Errorf("a document of more than one batch: pending %v, want its embed tasks", p)
	}

	down := newFixture(t, 64, inline, func(p *pipeline.Params) { p.Embedder = failingEmbedder{p.Embedder} })
	j = down.newJob(t, "text", text)
	if err := down.run(t, ragpipe.TaskExtract, ragpipe.TaskPayload{JobID: j.ID}); err != nil {
		t.Fatalf("extract with the provider down: %v", err)
	}
	if p := down.pending(t); len(p) != 1 || p[0] != "doc:embed:"+j.ID+":0" {
		t.Errorf("with the provider down: pending %v, want the embed task", p)
	}
	if got := down.job(t, j.ID); got.Stage != ragpipe.StageEmbed || got.TotalBatches != 1 {
		t.Errorf("with the provider down: job in %s with %d batches", got.Stage, got.TotalBatches)
	}
}

// countingEmbedder counts the texts it embeds.
type countingEmbedder struct {
	embed.Embedder
	texts atomic.Int64
}

func (c *countingEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	c.texts.Add(int64(len(texts)))
	return c.Embedder.Embed(ctx, texts)
}

// TestUpsertEmbedsAgainAnotherSpace finishes a job whose batches were
// embedded before the configured embedding space changed: the upsert embeds
// them again, in the space it is configured with.
func TestUpsertEmbedsAgainAnotherSpace(t *testing.T) {
	f := newFixture(t, 4)
	pdf, err := os.ReadFile("../../testdata/lppl.pdf")
	if err != nil {
		t.Fatal(err)
	}
	j := f.newJob(t, "pdf", pdf)
	p := ragpipe.TaskPayload{JobID: j.ID}
	for _, typ := range []ragpipe.TaskType{ragpipe.TaskExtract, ragpipe.TaskChunk} {
		if err := f.run(t, typ, p); err != nil {
			t.Fatal(err)
		}
	}
	batches := f.job(t, j.ID).TotalBatches
	for b := range batches {
		if err := f.run(t, ragpipe.TaskEmbed, ragpipe.TaskPayload{JobID: j.ID, Batch: b}); err != nil {
			t.Fatal(err)
		}
	}
	counter := &countingEmbedder{Embedder: embed.NewHashing(384)}
	moved := pipeline.New(pipeline.Params{Store: f.db, Blobs: f.blobs, Extractor: extract.New(extract.Limits{}),
		Embedder: counter, Space: 7, Queue: f.queue, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), BatchSize: 4})
	upsert := moved.Handlers()[ragpipe.TaskUpsert]
	task := ragpipe.NewTask(ragpipe.TaskUpsert, p)
	if err := upsert(context.Background(), ragpipe.TaskRun{Type: task.Type, ID: task.ID, Payload: task.Payload}); err != nil {
		t.Fatal(err)
	}
	got := f.job(t, j.ID)
	if got.Status != ragpipe.JobSucceeded || counter.texts.Load() != int64(got.TotalChunks) {
		t.Errorf("job %s; %d texts embedded again for %d chunks", got.Status, counter.texts.Load(), got.TotalChunks)
	}
}

func TestPermanentFailures(t *testing.T) {
	f := newFixture(t, 64)
	corrupt, err := os.ReadFile("../../testdata/corrupt.pdf")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		format string
		raw    []byte
		code   string
	}{
		{"corrupt pdf", "pdf", corrupt, ragpipe.CodePDFCorrupt},
		{"whitespace only", "text", []byte("   \n\n\t  \n"), ragpipe.CodeNoText},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			j := f.newJob(t, tc.format, tc.raw)
			err := f.run(t, ragpipe.TaskExtract, ragpipe.TaskPayload{JobID: j.ID})
			if !errors.Is(err, ragpipe.ErrPermanent) {
				t.Errorf("error %v does not skip retries", err)
			}
			got := f.job(t, j.ID)
			if got.Status != ragpipe.JobFailed || got.ErrorCode != tc.code || got.ErrorMessage == "" {
				t.Errorf("job %s %q %q; want failed %s", got.Status, got.ErrorCode, got.ErrorMessage, tc.code)
			}
			if n := len(f.pending(t)); n != 0 {
				t.Errorf("%d tasks enqueued after a permanent failure", n)
			}
		})
	}
}

func TestMissingJobIsNotRetried(t *testing.T) {
	f := newFixture(t, 64)
	err := f.run(t, ragpipe.TaskChunk, ragpipe.TaskPayload{JobID: uuid.NewString()})
	if !errors.Is(err, ragpipe.ErrPermanent) {
		t.Errorf("task of a missing job: %v, want a permanent failure", err)
	}
}

// progressStore records the extraction progress the pipeline reports.
type progressStore struct {
	*postgres.DB
	mu       sync.Mutex
	progress []float64
}

func (s *progressStore) SetProgress(ctx context.Context, jobID string, p float64) error {
	s.mu.Lock()
	s.progress = append(s.progress, p)
	s.mu.Unlock()
	return s.DB.SetProgress(ctx, jobID, p)
}

// TestExtractProgress extracts a 240-page PDF (testdata/lppl.pdf joined 30
// times) and checks that progress was reported during extraction (as often
// as the pipeline may: a quiet machine extracts it within the default
// second between two records).
func TestExtractProgress(t *testing.T) {
	f := newFixture(t, 64)
	dir := t.TempDir()
	args := make([]string, 0, 31)
	for range 30 {
		args = append(args, "../../testdata/lppl.pdf")
	}
	big := filepath.Join(dir, "big.pdf")
	if out, err := exec.Command("pdfunite", append(args, big)...).CombinedOutput(); err != nil {
		t.Fatalf("pdfunite: %v %s", err, out)
	}
	raw, err := os.ReadFile(big)
	if err != nil {
		t.Fatal(err)
	}
	store := &progressStore{DB: f.db}
	pl := pipeline.New(pipeline.Params{
		Store: store, Blobs: f.blobs, Extractor: extract.New(extract.Limits{}, extract.WithRangePages(20)),
		Embedder: embed.NewHashing(384), Queue: f.queue, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), BatchSize: 64,
		ProgressEvery: time.Nanosecond,
	})
	j := f.newJob(t, "pdf", raw)
	task := ragpipe.NewTask(ragpipe.TaskExtract, ragpipe.TaskPayload{JobID: j.ID})
	if err := pl.Handlers()[ragpipe.TaskExtract](context.Background(), ragpipe.TaskRun{Type: task.Type, ID: task.ID, Payload: task.Payload}); err != nil {
		t.Fatal(err)
	}
	doc, err := f.db.Document(context.Background(), f.tenant, j.DocumentID)
	if err != nil || doc.Pages != 240 {
		t.Fatalf("document pages %d, %v; want 240", doc.Pages, err)
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	if len(store.progress) == 0 || store.progress[0] <= 0 || store.progress[0] >= 1 {
		t.Errorf("progress during extraction: %v; want reports between 0 and 1", store.progress)
	}
	if !slices.IsSorted(store.progress) {
		t.Errorf("progress went backwards: %v", store.progress)
	}
}

// TestDeleteThenSweep purges a deleted document, then sweeps away an artifact
// written after the purge, as a stage still running at the deletion would.
func TestDeleteThenSweep(t *testing.T) {
	f := newFixture(t, 64)
	ctx := context.Background()
	j := f.newJob(t, "text", []byte("some words to index"))
	prefix := ragpipe.DocumentPrefix(f.tenant, j.DocumentID)
	del := ragpipe.TaskPayload{DocumentID: j.DocumentID}
	if err := f.db.DeleteDocument(ctx, f.tenant, j.DocumentID, ragpipe.NewTask(ragpipe.TaskDelete, del)); err != nil {
		t.Fatal(err)
	}
	if err := f.run(t, ragpipe.TaskDelete, del); err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.Document(ctx, f.tenant, j.DocumentID); ragpipe.ErrorCode(err) != ragpipe.ENOTFOUND {
		t.Errorf("document after cleanup: %v", err)
	}
	if keys, err := f.blobs.List(ctx, prefix); err != nil || len(keys) != 0 {
		t.Errorf("objects after cleanup: %v %v", keys, err)
	}
	scheduled, err := f.inspector.ListScheduledTasks(ragpipe.QueueEmbed)
	if err != nil || len(scheduled) != 1 || scheduled[0].ID != "doc:sweep:"+j.DocumentID ||
		time.Until(scheduled[0].NextProcessAt) < 10*time.Minute {
		t.Fatalf("scheduled sweep: %+v %v", scheduled, err)
	}
	if err := f.blobs.Put(ctx, prefix+"jobs/"+j.ID+"/pages.json", []byte(`[]`)); err != nil {
		t.Fatal(err)
	}
	if err := f.handlers[ragpipe.TaskSweep](ctx, ragpipe.TaskRun{Type: ragpipe.TaskSweep, Payload: scheduled[0].Payload}); err != nil {
		t.Fatal(err)
	}
	if keys, err := f.blobs.List(ctx, prefix); err != nil || len(keys) != 0 {
		t.Errorf("objects after the sweep: %v %v", keys, err)
	}
}
