package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/ragpipe/ragpipe/internal/testenv"
	"github.com/ragpipe/ragpipe/pkg/apikey"
	"github.com/ragpipe/ragpipe/pkg/blob"
	"github.com/ragpipe/ragpipe/pkg/ingest"
	"github.com/ragpipe/ragpipe/pkg/postgres"
	"github.com/ragpipe/ragpipe/pkg/queue"
	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// redisDB is this package's Redis database (see testenv.Redis).
const redisDB = 4

// fixture is the service on a fresh database and bucket, with a direct
// connection to the database for checking what it wrote.
type fixture struct {
	svc    *ingest.Service
	db     *postgres.DB
	conn   *pgx.Conn
	blobs  *blob.Store
	admin  *queue.Admin
	tenant string
}

// newFixture builds the service; its queue is on Redis database redisDB of
// the Redis at redisAddr ("" for the services'). Only TestDelete reads the
// queue, and flushes the database first.
func newFixture(t *testing.T, redisAddr string) *fixture {
	t.Helper()
	ctx := context.Background()
	db, dbURL := testenv.DB(t)
	_, blobs := testenv.Bucket(t)
	cfg := testenv.Config(t)
	if redisAddr == "" {
		redisAddr = cfg.RedisAddr
	}
	opt := queue.Redis{Addr: redisAddr, Password: cfg.RedisPassword, DB: redisDB}.Asynq()
	q := queue.NewClient(opt)
	t.Cleanup(func() { q.Close() })
	admin := queue.NewAdmin(opt, db.ReviveJob)
	t.Cleanup(func() { admin.Close() })
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	_, hash := apikey.New()
	tenant, err := db.CreateKey(ctx, "t", "rp_x", hash)
	if err != nil {
		t.Fatal(err)
	}
	svc := ingest.New(ingest.Params{Store: db, Blobs: blobs, Queue: q, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		NewSecret: func() string { return "whsec_test" }, ChunkSize: 300, ChunkOverlap: 30})
	return &fixture{svc: svc, db: db, conn: conn, blobs: blobs, admin: admin, tenant: tenant}
}

// objects lists every key in the bucket.
func (f *fixture) objects(t *testing.T) []string {
	t.Helper()
	keys, err := f.blobs.List(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func (f *fixture) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := f.conn.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func (f *fixture) upload(t *testing.T, text string) *ingest.File {
	t.Helper()
	file, err := f.svc.Upload(context.Background(), f.tenant, "notes.txt", strings.NewReader(text), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return file
}

func TestAccept(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "")
	ctx := context.Background()
	file := f.upload(t, "Minutes of the meeting.\n\nWe agreed to ship on Friday.\n")
	if file.Format != "text" || file.Size != 54 || file.Filename != "notes.txt" {
		t.Fatalf("file %+v", file)
	}
	res, err := f.svc.Accept(ctx, file, ingest.Request{RequestID: "req-1", Collection: "c", Metadata: json.RawMessage(`{"a":1}`),
		CallbackURL: "https://example.com/hook", Dedupe: true})
	if err != nil {
		t.Fatal(err)
	}
	d, j := res.Document, res.Job
	if res.Deduplicated || res.Replay != nil || d.Status != ragpipe.DocProcessing || d.LastJobID != j.ID ||
		j.Status != ragpipe.JobQueued || j.ChunkSize != 300 || j.ChunkOverlap != 30 || j.RequestID != "req-1" {
		t.Fatalf("result: %+v, document %+v, job %+v", res, d, j)
	}
	stored, err := f.db.Document(ctx, f.tenant, d.ID)
	if err != nil || stored.Collection != "c" || stored.SHA256 != file.SHA256 || string(stored.Metadata) != `{"a": 1}` {
		t.Fatalf("stored document %+v, %v", stored, err)
	}
	if diff := cmp.Diff([]string{ragpipe.RawKey(f.tenant, d.ID)}, f.objects(t)); diff != "" {
		t.Errorf("objects (-want +got):\n%s", diff)
	}
	if n := f.count(t, `SELECT count(*) FROM document_callbacks WHERE document_id = $1 AND url = 'https://example.com/hook'`, d.ID); n != 1 {
		t.Errorf("%d callbacks recorded", n)
	}
	if n := f.count(t, `SELECT count(*) FROM webhook_callback_secrets WHERE tenant_id = $1 AND secret = 'whsec_test'`, f.tenant); n != 1 {
		t.Errorf("tenant has %d callback secrets", n)
	}

	// The same bytes again: the first document, and the second copy removed.
	again, err := f.svc.Accept(ctx, f.upload(t, "Minutes of the meeting.\n\nWe agreed to ship on Friday.\n"),
		ingest.Request{Collection: "c", Dedupe: true})
	if err != nil || !again.Deduplicated || again.Document.ID != d.ID || again.Job != nil {
		t.Fatalf("duplicate: %+v, %v", again, err)
	}
	if n := len(f.objects(t)); n != 1 {
		t.Errorf("%d objects after a duplicate, want 1", n)
	}
	if n := f.count(t, `SELECT count(*) FROM documents`); n != 1 {
		t.Errorf("%d documents after a duplicate", n)
	}
}

func TestAcceptIdempotent(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "")
	ctx := context.Background()
	record := func() *ragpipe.IdempotencyRecord {
		return &ragpipe.IdempotencyRecord{Key: "k1", Status: 202, Body: func(d *ragpipe.Document, j *ragpipe.Job) ([]byte, error) {
			return []byte(`{"document_id":"` + d.ID + `","job_id":"` + j.ID + `"}`), nil
		}}
	}
	first := record()
	res, err := f.svc.Accept(ctx, f.upload(t, "one"), ingest.Request{Idempotency: first})
	if err != nil || res.Replay != nil {
		t.Fatalf("first: %+v, %v", res, err)
	}
	want := `{"document_id":"` + res.Document.ID + `","job_id":"` + res.Job.ID + `"}`
	if string(first.RawBody) != want {
		t.Errorf("recorded body %s, want %s", first.RawBody, want)
	}

	replayed, err := f.svc.Accept(ctx, f.upload(t, "one"), ingest.Request{Idempotency: record()})
	if err != nil || replayed.Replay == nil || string(replayed.Replay.RawBody) != want || replayed.Replay.Status != 202 {
		t.Fatalf("retry: %+v, %v", replayed, err)
	}
	_, err = f.svc.Accept(ctx, f.upload(t, "two"), ingest.Request{Idempotency: record()})
	if ragpipe.ErrorCode(err) != ragpipe.EUNPROCESSABLE {
		t.Errorf("the key reused for other bytes: %v, want %s", err, ragpipe.EUNPROCESSABLE)
	}
	if n := len(f.objects(t)); n != 1 {
		t.Errorf("%d objects after a replay and a refusal, want 1", n)
	}
	if n := f.count(t, `SELECT count(*) FROM documents`); n != 1 {
		t.Errorf("%d documents, want 1", n)
	}
}

func TestUploadRefusals(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "")
	tests := []struct {
		name  string
		body  []byte
		limit int64
		code  string
	}{
		{"empty", nil, 1 << 20, ragpipe.EUNPROCESSABLE},
		{"binary", append([]byte("\x7fELF\x02\x01\x01"), bytes.Repeat([]byte{0}, 600)...), 1 << 20, ragpipe.EUNSUPPORTED},
		{"too large", bytes.Repeat([]byte("word "), 4000), 10_000, ragpipe.ETOOLARGE},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.svc.Upload(context.Background(), f.tenant, "f", bytes.NewReader(tc.body), tc.limit)
			if ragpipe.ErrorCode(err) != tc.code {
				t.Errorf("error %v, want %s", err, tc.code)
			}
			if keys := f.objects(t); len(keys) != 0 {
				t.Errorf("objects left: %v", keys)
			}
		})
	}
}

// TestAcceptUndo makes the transaction fail (an unknown tenant) and checks
// that the uploaded bytes went with it.
func TestAcceptUndo(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "")
	file, err := f.svc.Upload(context.Background(), "00000000-0000-0000-0000-000000000000", "f", strings.NewReader("text"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Accept(context.Background(), file, ingest.Request{CallbackURL: "https://example.com/"}); err == nil {
		t.Fatal("a document of an unknown tenant was accepted")
	}
	if keys := f.objects(t); len(keys) != 0 {
		t.Errorf("objects left: %v", keys)
	}
	if n := f.count(t, `SELECT count(*) FROM document_callbacks`); n != 0 {
		t.Errorf("%d callbacks left", n)
	}
}

func TestDelete(t *testing.T) {
	t.Parallel()
	testenv.Redis(t, redisDB)
	f := newFixture(t, "")
	ctx := context.Background()
	res, err := f.svc.Accept(ctx, f.upload(t, "to be deleted"), ingest.Request{})
	if err != nil {
		t.Fatal(err)
	}
	id := res.Document.ID
	for range 2 { // deleting twice is harmless
		if err := f.svc.Delete(ctx, f.tenant, id, "req-9"); err != nil {
			t.Fatal(err)
		}
	}
	d, err := f.db.Document(ctx, f.tenant, id)
	if err != nil || d.Status != ragpipe.DocDeleting {
		t.Fatalf("document after delete: %+v, %v", d, err)
	}
	if n := f.count(t, `SELECT count(*) FROM outbox WHERE task_id = $1 AND sent_at IS NOT NULL`, "doc:delete:"+id); n != 1 {
		t.Errorf("%d sent outbox rows for the cleanup, want 1", n)
	}
	stats, err := f.admin.Stats()
	if err != nil || len(stats) != 3 || stats[1].Queue != ragpipe.QueueEmbed || stats[1].Pending != 1 || stats[0].Pending != 0 {
		t.Errorf("queues %+v, %v; want the cleanup pending", stats, err)
	}
	if err := f.svc.Delete(ctx, f.tenant, "00000000-0000-0000-0000-000000000000", ""); ragpipe.ErrorCode(err) != ragpipe.ENOTFOUND {
		t.Errorf("delete of an unknown document: %v", err)
	}
}

// TestDeleteWithoutRedis deletes while the queue is unreachable: the
// deletion stands and its task waits in the outbox for the relay.
func TestDeleteWithoutRedis(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "127.0.0.1:1")
	ctx := context.Background()
	res, err := f.svc.Accept(ctx, f.upload(t, "to be deleted"), ingest.Request{})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Delete(ctx, f.tenant, res.Document.ID, ""); err != nil {
		t.Fatal(err)
	}
	if n := f.count(t, `SELECT count(*) FROM outbox WHERE task_id = $1 AND sent_at IS NULL`, "doc:delete:"+res.Document.ID); n != 1 {
		t.Errorf("%d unsent outbox rows for the cleanup, want 1", n)
	}
}

func TestReingest(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "")
	ctx := context.Background()
	size, overlap, bad := 120, 10, 0
	c, err := f.svc.Chunking(&size, nil)
	if err != nil || c != (ingest.Chunking{Size: 120, Overlap: 30}) {
		t.Errorf("chunking with a size: %+v, %v", c, err)
	}
	if _, err := f.svc.Chunking(nil, &bad); err != nil {
		t.Errorf("overlap 0: %v", err)
	}
	if _, err := f.svc.Chunking(&bad, nil); ragpipe.ErrorCode(err) != ragpipe.EUNPROCESSABLE {
		t.Errorf("size 0: %v", err)
	}
	res, err := f.svc.Accept(ctx, f.upload(t, "some text"), ingest.Request{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.Reingest(ctx, f.tenant, res.Document.ID, "", ingest.Chunking{Size: size, Overlap: overlap})
	if ragpipe.ErrorCode(err) != ragpipe.ECONFLICT {
		t.Errorf("re-ingest while the first job waits: %v, want %s", err, ragpipe.ECONFLICT)
	}
	if _, err := f.db.CancelJob(ctx, f.tenant, res.Job.ID); err != nil {
		t.Fatal(err)
	}
	j, err := f.svc.Reingest(ctx, f.tenant, res.Document.ID, "req-2", ingest.Chunking{Size: size, Overlap: overlap})
	if err != nil || j.Kind != ragpipe.JobReingest || j.ChunkSize != size || j.ChunkOverlap != overlap || j.RequestID != "req-2" {
		t.Fatalf("re-ingest: %+v, %v", j, err)
	}
	if d, err := f.db.Document(ctx, f.tenant, res.Document.ID); err != nil || d.LastJobID != j.ID {
		t.Errorf("document's last job %v, %v; want %s", d, err, j.ID)
	}
}
