package platform_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ragpipe/ragpipe/internal/testenv"
	"github.com/ragpipe/ragpipe/pkg/apikey"
	"github.com/ragpipe/ragpipe/pkg/blob"
	"github.com/ragpipe/ragpipe/pkg/config"
	"github.com/ragpipe/ragpipe/pkg/platform"
	"github.com/ragpipe/ragpipe/pkg/postgres"
)

// redisDB is this package's Redis database (see testenv.Redis).
const redisDB = 1

// stack is the API (over HTTP) and one worker, in-process, on fresh
// services.
type stack struct {
	url        string
	cfg        config.Config
	db         *postgres.DB
	log        *slog.Logger
	blobs      *blob.Store
	stopWorker func() // stops the worker startStack started
}

func startStack(t testing.TB, tune func(*config.Config)) *stack {
	t.Helper()
	db, dbURL := testenv.DB(t)
	testenv.Redis(t, redisDB)
	bucket, blobs := testenv.Bucket(t)
	cfg := testenv.Config(t)
	cfg.DatabaseURL, cfg.RedisDB, cfg.S3Bucket = dbURL, redisDB, bucket
	cfg.ShutdownGrace = 5 * time.Second
	if tune != nil {
		tune(&cfg)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithCancel(context.Background())
	api, err := platform.NewAPI(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	go api.RunEvents(ctx)
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(func() {
		cancel()
		srv.Close()
		api.Close()
	})
	s := &stack{url: srv.URL, cfg: cfg, db: db, log: log, blobs: blobs}
	s.stopWorker = s.startWorker(t)
	return s
}

// startWorker runs a worker until the returned function (or the test's
// cleanup) stops it.
func (s *stack) startWorker(t testing.TB) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w, err := platform.NewWorker(ctx, s.cfg, s.log)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("worker: %v", err)
			}
			w.Close()
		})
	}
	t.Cleanup(stop)
	return stop
}

func (s *stack) key(t testing.TB, tenant string) string {
	t.Helper()
	key, hash := apikey.New()
	if _, err := s.db.CreateKey(context.Background(), tenant, apikey.Display(key), hash); err != nil {
		t.Fatal(err)
	}
	return key
}

type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    []byte
}

func (s *stack) do(t testing.TB, key, method, path, contentType string, body io.Reader) response {
	t.Helper()
	req, err := http.NewRequest(method, s.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return s.send(t, key, req)
}

func (s *stack) send(t testing.TB, key string, req *http.Request) response {
	t.Helper()
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := response{status: res.StatusCode, header: res.Header, raw: raw}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

func (s *stack) json(t testing.TB, key, method, path string, v any) response {
	t.Helper()
	var body io.Reader
	if v != nil {
		b, _ := json.Marshal(v)
		body = bytes.NewReader(b)
	}
	return s.do(t, key, method, path, "application/json", body)
}

// upload posts content as a multipart file with the given extra fields.
func (s *stack) upload(t testing.TB, key, filename string, content []byte, fields map[string]string) response {
	t.Helper()
	return s.uploadTo(t, key, "/v1/documents", filename, content, fields, nil)
}

// uploadTo posts a multipart upload to path with extra headers.
func (s *stack) uploadTo(t testing.TB, key, path, filename string, content []byte, fields, headers map[string]string) response {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	fw, _ := mw.CreateFormFile("file", filename)
	fw.Write(content)
	mw.Close()
	req, err := http.NewRequest(http.MethodPost, s.url+path, &buf)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return s.send(t, key, req)
}

// waitJob polls the job until it ends and returns its last state.
func (s *stack) waitJob(t testing.TB, key, jobID string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		r := s.json(t, key, http.MethodGet, "/v1/jobs/"+jobID, nil)
		if r.status != http.StatusOK {
			t.Fatalf("GET job: %d %s", r.status, r.raw)
		}
		switch r.body["status"] {
		case "succeeded", "failed", "canceled":
			return r.body
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("job %s did not end within 90s", jobID)
	return nil
}

func errorCode(r response) string {
	e, _ := r.body["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// page4Sentence is printed on page 4 of testdata/lppl.pdf and nowhere else.
const page4Sentence = "This license places no restrictions on works that are unrelated to the Work, nor does this license place any restrictions on aggregating such works with the Work by any means."

// TestIngestPDFEndToEnd uploads a real 8-page PDF, follows the job to
// success, and finds a sentence of page 4 on page 4 by search.
func TestIngestPDFEndToEnd(t *testing.T) {
	s := startStack(t, nil)
	key := s.key(t, "acme")
	pdf := mustRead(t, "../../testdata/lppl.pdf")

	r := s.upload(t, key, "lppl.pdf", pdf, map[string]string{"metadata": `{"source":"debian"}`, "collection": "licences"})
	if r.status != http.StatusAccepted {
		t.Fatalf("upload: %d %s", r.status, r.raw)
	}
	jobID, docID := r.body["job_id"].(string), r.body["document_id"].(string)
	if loc := r.header.Get("Location"); loc != "/v1/jobs/"+jobID {
		t.Errorf("Location = %q, want /v1/jobs/%s", loc, jobID)
	}
	if r.body["status"] != "queued" || r.header.Get("X-Request-ID") == "" {
		t.Errorf("upload answer: status %v, request id %q", r.body["status"], r.header.Get("X-Request-ID"))
	}

	job := s.waitJob(t, key, jobID)
	if job["status"] != "succeeded" || job["progress"] != 1.0 || job["error"] != nil {
		t.Fatalf("job ended %v", job)
	}

	doc := s.json(t, key, http.MethodGet, "/v1/documents/"+docID, nil).body
	if doc["status"] != "ready" || doc["pages"] != 8.0 || doc["format"] != "pdf" || doc["collection"] != "licences" {
		t.Errorf("document = %v", doc)
	}
	if md, _ := doc["metadata"].(map[string]any); md["source"] != "debian" {
		t.Errorf("metadata = %v", doc["metadata"])
	}
	chunkCount := int(doc["chunk_count"].(float64))
	if chunkCount < 8 {
		t.Errorf("chunk_count = %d, want at least one per page", chunkCount)
	}

	// Page through the chunks: indexes 0..n-1, pages within 1..8.
	seen, cursor := 0, ""
	for {
		r := s.json(t, key, http.MethodGet, "/v1/documents/"+docID+"/chunks?limit=7&cursor="+cursor, nil)
		if r.status != http.StatusOK {
			t.Fatalf("chunks: %d %s", r.status, r.raw)
		}
		for _, c := range r.body["chunks"].([]any) {
			c := c.(map[string]any)
			if int(c["index"].(float64)) != seen {
				t.Fatalf("chunk index %v, want %d", c["index"], seen)
			}
			if ps, pe := c["page_start"].(float64), c["page_end"].(float64); ps < 1 || pe > 8 || ps > pe {
				t.Errorf("chunk %d pages %v-%v", seen, ps, pe)
			}
			if c["section"] != "" {
				t.Errorf("chunk %d has section %q; the PDF has no outline", seen, c["section"])
			}
			seen++
		}
		cursor, _ = r.body["next_cursor"].(string)
		if cursor == "" {
			break
		}
	}
	if seen != chunkCount {
		t.Errorf("listed %d chunks, document says %d", seen, chunkCount)
	}

	for _, mode := range []string{"hybrid", "keyword", "vector"} {
		t.Run("search "+mode, func(t *testing.T) {
			r := s.json(t, key, http.MethodPost, "/v1/search", map[string]any{"query": page4Sentence, "mode": mode, "top_k": 3})
			if r.status != http.StatusOK {
				t.Fatalf("search: %d %s", r.status, r.raw)
			}
			results := r.body["results"].([]any)
			if len(results) == 0 {
				t.Fatal("no results")
			}
			first := results[0].(map[string]any)
			if first["document_id"] != docID || first["page_start"].(float64) > 4 || first["page_end"].(float64) < 4 {
				t.Errorf("first result is not from page 4: %v", first)
			}
		})
	}

	list := s.json(t, key, http.MethodGet, "/v1/documents?collection=licences", nil)
	if docs := list.body["documents"].([]any); len(docs) != 1 {
		t.Errorf("listing: %d documents, want 1", len(docs))
	}
}

func TestUploadErrors(t *testing.T) {
	s := startStack(t, func(c *config.Config) { c.MaxUploadBytes = 64 << 10 })
	key := s.key(t, "acme")
	other := s.key(t, "globex")
	png := append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), make([]byte, 64)...)
	big := bytes.Repeat([]byte("All work and no play makes Jack a dull boy.\n"), 2000) // 88 KB of text

	tests := []struct {
		name   string
		key    string
		file   []byte
		fields map[string]string
		status int
		code   string
	}{
		{"png is unsupported", key, png, nil, http.StatusUnsupportedMediaType, "unsupported_media_type"},
		{"over the size limit", key, big, nil, http.StatusRequestEntityTooLarge, "payload_too_large"},
		{"empty file", key, nil, nil, http.StatusUnprocessableEntity, "unprocessable"},
		{"metadata not an object", key, []byte("hello world\n"), map[string]string{"metadata": `[1,2]`}, http.StatusUnprocessableEntity, "unprocessable"},
		{"bad collection", key, []byte("hello world\n"), map[string]string{"collection": "../etc"}, http.StatusUnprocessableEntity, "unprocessable"},
		{"missing key", "", []byte("hello world\n"), nil, http.StatusUnauthorized, "unauthorized"},
		{"wrong key", "rp_" + strings.Repeat("A", 43), []byte("hello world\n"), nil, http.StatusUnauthorized, "unauthorized"},
		{"malformed key", "not-a-key", []byte("hello world\n"), nil, http.StatusUnauthorized, "unauthorized"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := s.upload(t, tc.key, "f.bin", tc.file, tc.fields)
			if r.status != tc.status || errorCode(r) != tc.code {
				t.Fatalf("got %d %s, want %d %s", r.status, r.raw, tc.status, tc.code)
			}
			e := r.body["error"].(map[string]any)
			if e["message"] == "" || e["request_id"] != r.header.Get("X-Request-ID") {
				t.Errorf("error body %v lacks message or matching request_id", e)
			}
		})
	}

	t.Run("nothing was recorded", func(t *testing.T) {
		r := s.json(t, key, http.MethodGet, "/v1/documents", nil)
		if docs := r.body["documents"].([]any); len(docs) != 0 {
			t.Errorf("%d documents recorded by refused uploads", len(docs))
		}
	})

	t.Run("not multipart", func(t *testing.T) {
		r := s.do(t, key, http.MethodPost, "/v1/documents", "application/pdf", bytes.NewReader([]byte("%PDF-1.4")))
		if r.status != http.StatusUnsupportedMediaType {
			t.Errorf("got %d %s", r.status, r.raw)
		}
	})

	t.Run("corrupt pdf fails the job with a code", func(t *testing.T) {
		r := s.upload(t, key, "bad.pdf", mustRead(t, "../../testdata/corrupt.pdf"), nil)
		if r.status != http.StatusAccepted {
			t.Fatalf("upload: %d %s", r.status, r.raw)
		}
		job := s.waitJob(t, key, r.body["job_id"].(string))
		e, _ := job["error"].(map[string]any)
		if job["status"] != "failed" || e["code"] != "pdf_corrupt" || job["attempts"] != 1.0 {
			t.Errorf("job = %v; want failed with pdf_corrupt after 1 attempt", job)
		}
		doc := s.json(t, key, http.MethodGet, "/v1/documents/"+r.body["document_id"].(string), nil).body
		if doc["status"] != "failed" {
			t.Errorf("document status %v, want failed", doc["status"])
		}
	})

	t.Run("another tenant's document and job are not found", func(t *testing.T) {
		r := s.upload(t, key, "note.md", []byte("# Title\n\nSome *markdown* text.\n"), nil)
		if r.status != http.StatusAccepted {
			t.Fatalf("upload: %d %s", r.status, r.raw)
		}
		docID, jobID := r.body["document_id"].(string), r.body["job_id"].(string)
		for _, path := range []string{"/v1/documents/" + docID, "/v1/jobs/" + jobID, "/v1/documents/" + docID + "/chunks"} {
			if r := s.json(t, other, http.MethodGet, path, nil); r.status != http.StatusNotFound || errorCode(r) != "not_found" {
				t.Errorf("GET %s as another tenant: %d %s", path, r.status, r.raw)
			}
		}
		s.waitJob(t, key, jobID)
		r = s.json(t, other, http.MethodPost, "/v1/search", map[string]any{"query": "markdown text"})
		if results := r.body["results"].([]any); len(results) != 0 {
			t.Errorf("another tenant's search found %d results", len(results))
		}
	})
}

func TestRateLimit(t *testing.T) {
	s := startStack(t, func(c *config.Config) { c.RateLimitPerMin = 3 })
	key := s.key(t, "acme")
	for i := range 3 {
		if r := s.json(t, key, http.MethodGet, "/v1/documents", nil); r.status != http.StatusOK {
			t.Fatalf("request %d: %d", i, r.status)
		}
	}
	r := s.json(t, key, http.MethodGet, "/v1/documents", nil)
	if r.status != http.StatusTooManyRequests || errorCode(r) != "rate_limited" || r.header.Get("Retry-After") == "" {
		t.Errorf("4th request: %d %s Retry-After=%q", r.status, r.raw, r.header.Get("Retry-After"))
	}
}

func TestHealth(t *testing.T) {
	s := startStack(t, nil)
	if r := s.json(t, "", http.MethodGet, "/healthz", nil); r.status != http.StatusOK {
		t.Errorf("healthz: %d", r.status)
	}
	if r := s.json(t, "", http.MethodGet, "/readyz", nil); r.status != http.StatusOK {
		t.Errorf("readyz: %d %s", r.status, r.raw)
	}
	broken := startStack(t, func(c *config.Config) { c.S3Endpoint = "http://127.0.0.1:1" })
	r := broken.json(t, "", http.MethodGet, "/readyz", nil)
	if r.status != http.StatusServiceUnavailable || !strings.Contains(fmt.Sprint(r.body["error"]), "s3") {
		t.Errorf("readyz with S3 down: %d %s", r.status, r.raw)
	}
	if r := s.json(t, "", http.MethodGet, "/openapi.yaml", nil); r.status != http.StatusOK || !bytes.HasPrefix(r.raw, []byte("openapi: 3.1")) {
		t.Errorf("openapi.yaml: %d %.40s", r.status, r.raw)
	}
}
