package platform_test

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/ragpipe/ragpipe/internal/teststack"
	"github.com/ragpipe/ragpipe/pkg/config"
)

// redisDB is this package's Redis database (see testenv.Redis).
const redisDB = 1

// stack is the API (over HTTP) and one worker, in-process, on fresh
// services.
type stack struct {
	*teststack.Stack
	stopWorker func() // stops the worker startStack started
}

func startStack(t testing.TB, tune func(*config.Config)) *stack {
	t.Helper()
	return startStackOn(t, redisDB, tune)
}

// startStackOn is startStack on Redis database db: tests that run in
// parallel (search_test.go, limits_test.go, hostile_test.go) take one each,
// 6 to 10, since Asynq's keys have no prefix.
func startStackOn(t testing.TB, db int, tune func(*config.Config)) *stack {
	t.Helper()
	s := teststack.Start(t, db, tune)
	return &stack{Stack: s, stopWorker: s.StartWorker(t)}
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
	key := s.Key(t, "acme")
	pdf := mustRead(t, "../../testdata/lppl.pdf")

	r := s.Upload(t, key, "lppl.pdf", pdf, map[string]string{"metadata": `{"source":"debian"}`, "collection": "licences"})
	if r.Status != http.StatusAccepted {
		t.Fatalf("upload: %d %s", r.Status, r.Raw)
	}
	jobID, docID := r.Body["job_id"].(string), r.Body["document_id"].(string)
	if loc := r.Header.Get("Location"); loc != "/v1/jobs/"+jobID {
		t.Errorf("Location = %q, want /v1/jobs/%s", loc, jobID)
	}
	if r.Body["status"] != "queued" || r.Header.Get("X-Request-ID") == "" {
		t.Errorf("upload answer: status %v, request id %q", r.Body["status"], r.Header.Get("X-Request-ID"))
	}

	job := s.WaitJob(t, key, jobID)
	if job["status"] != "succeeded" || job["progress"] != 1.0 || job["error"] != nil {
		t.Fatalf("job ended %v", job)
	}

	doc := s.JSON(t, key, http.MethodGet, "/v1/documents/"+docID, nil).Body
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
		r := s.JSON(t, key, http.MethodGet, "/v1/documents/"+docID+"/chunks?limit=7&cursor="+cursor, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("chunks: %d %s", r.Status, r.Raw)
		}
		for _, c := range r.Body["chunks"].([]any) {
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
		cursor, _ = r.Body["next_cursor"].(string)
		if cursor == "" {
			break
		}
	}
	if seen != chunkCount {
		t.Errorf("listed %d chunks, document says %d", seen, chunkCount)
	}

	for _, mode := range []string{"hybrid", "keyword", "vector"} {
		t.Run("search "+mode, func(t *testing.T) {
			r := s.JSON(t, key, http.MethodPost, "/v1/search", map[string]any{"query": page4Sentence, "mode": mode, "top_k": 3})
			if r.Status != http.StatusOK {
				t.Fatalf("search: %d %s", r.Status, r.Raw)
			}
			results := r.Body["results"].([]any)
			if len(results) == 0 {
				t.Fatal("no results")
			}
			first := results[0].(map[string]any)
			if first["document_id"] != docID || first["page_start"].(float64) > 4 || first["page_end"].(float64) < 4 {
				t.Errorf("first result is not from page 4: %v", first)
			}
		})
	}

	list := s.JSON(t, key, http.MethodGet, "/v1/documents?collection=licences", nil)
	if docs := list.Body["documents"].([]any); len(docs) != 1 {
		t.Errorf("listing: %d documents, want 1", len(docs))
	}
}

func TestUploadErrors(t *testing.T) {
	s := startStack(t, func(c *config.Config) { c.MaxUploadBytes = 64 << 10 })
	key := s.Key(t, "acme")
	other := s.Key(t, "globex")
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
			r := s.Upload(t, tc.key, "f.bin", tc.file, tc.fields)
			if r.Status != tc.status || r.ErrorCode() != tc.code {
				t.Fatalf("got %d %s, want %d %s", r.Status, r.Raw, tc.status, tc.code)
			}
			e := r.Body["error"].(map[string]any)
			if e["message"] == "" || e["request_id"] != r.Header.Get("X-Request-ID") {
				t.Errorf("error body %v lacks message or matching request_id", e)
			}
		})
	}

	t.Run("nothing was recorded", func(t *testing.T) {
		r := s.JSON(t, key, http.MethodGet, "/v1/documents", nil)
		if docs := r.Body["documents"].([]any); len(docs) != 0 {
			t.Errorf("%d documents recorded by refused uploads", len(docs))
		}
	})

	t.Run("not multipart", func(t *testing.T) {
		r := s.Do(t, key, http.MethodPost, "/v1/documents", "application/pdf", bytes.NewReader([]byte("%PDF-1.4")))
		if r.Status != http.StatusUnsupportedMediaType {
			t.Errorf("got %d %s", r.Status, r.Raw)
		}
	})

	t.Run("corrupt pdf fails the job with a code", func(t *testing.T) {
		r := s.Upload(t, key, "bad.pdf", mustRead(t, "../../testdata/corrupt.pdf"), nil)
		if r.Status != http.StatusAccepted {
			t.Fatalf("upload: %d %s", r.Status, r.Raw)
		}
		job := s.WaitJob(t, key, r.Body["job_id"].(string))
		e, _ := job["error"].(map[string]any)
		if job["status"] != "failed" || e["code"] != "pdf_corrupt" || job["attempts"] != 1.0 {
			t.Errorf("job = %v; want failed with pdf_corrupt after 1 attempt", job)
		}
		doc := s.JSON(t, key, http.MethodGet, "/v1/documents/"+r.Body["document_id"].(string), nil).Body
		if doc["status"] != "failed" {
			t.Errorf("document status %v, want failed", doc["status"])
		}
	})

	t.Run("another tenant's document and job are not found", func(t *testing.T) {
		r := s.Upload(t, key, "note.md", []byte("# Title\n\nSome *markdown* text.\n"), nil)
		if r.Status != http.StatusAccepted {
			t.Fatalf("upload: %d %s", r.Status, r.Raw)
		}
		docID, jobID := r.Body["document_id"].(string), r.Body["job_id"].(string)
		for _, path := range []string{"/v1/documents/" + docID, "/v1/jobs/" + jobID, "/v1/documents/" + docID + "/chunks"} {
			if r := s.JSON(t, other, http.MethodGet, path, nil); r.Status != http.StatusNotFound || r.ErrorCode() != "not_found" {
				t.Errorf("GET %s as another tenant: %d %s", path, r.Status, r.Raw)
			}
		}
		s.WaitJob(t, key, jobID)
		r = s.JSON(t, other, http.MethodPost, "/v1/search", map[string]any{"query": "markdown text"})
		if results := r.Body["results"].([]any); len(results) != 0 {
			t.Errorf("another tenant's search found %d results", len(results))
		}
	})
}

func TestRateLimit(t *testing.T) {
	s := startStack(t, func(c *config.Config) { c.RateLimitPerMin = 3 })
	key := s.Key(t, "acme")
	for i := range 3 {
		if r := s.JSON(t, key, http.MethodGet, "/v1/documents", nil); r.Status != http.StatusOK {
			t.Fatalf("request %d: %d", i, r.Status)
		}
	}
	r := s.JSON(t, key, http.MethodGet, "/v1/documents", nil)
	if r.Status != http.StatusTooManyRequests || r.ErrorCode() != "rate_limited" || r.Header.Get("Retry-After") == "" {
		t.Errorf("4th request: %d %s Retry-After=%q", r.Status, r.Raw, r.Header.Get("Retry-After"))
	}
}

// TestMetricsToken: /metrics is open without RAGPIPE_METRICS_TOKEN and wants
// it as a bearer token with.
func TestMetricsToken(t *testing.T) {
	open := startStack(t, nil)
	if r := open.Do(t, "", http.MethodGet, "/metrics", "", nil); r.Status != http.StatusOK || !strings.Contains(string(r.Raw), "ragpipe_jobs_waiting") {
		t.Errorf("metrics without a token set: %d %.80s", r.Status, r.Raw)
	}
	s := startStack(t, func(c *config.Config) { c.MetricsToken = "scrape-secret" })
	for _, key := range []string{"", "wrong", s.Key(t, "acme")} {
		if r := s.Do(t, key, http.MethodGet, "/metrics", "", nil); r.Status != http.StatusUnauthorized || r.ErrorCode() != "unauthorized" {
			t.Errorf("metrics with key %q: %d %s", key, r.Status, r.Raw)
		}
	}
	if r := s.Do(t, "scrape-secret", http.MethodGet, "/metrics", "", nil); r.Status != http.StatusOK || !strings.Contains(string(r.Raw), "ragpipe_jobs_waiting") {
		t.Errorf("metrics with the token: %d %.80s", r.Status, r.Raw)
	}
}

func TestHealth(t *testing.T) {
	s := startStack(t, nil)
	if r := s.JSON(t, "", http.MethodGet, "/healthz", nil); r.Status != http.StatusOK {
		t.Errorf("healthz: %d", r.Status)
	}
	if r := s.JSON(t, "", http.MethodGet, "/readyz", nil); r.Status != http.StatusOK {
		t.Errorf("readyz: %d %s", r.Status, r.Raw)
	}
	broken := startStack(t, func(c *config.Config) { c.S3Endpoint = "http://127.0.0.1:1" })
	r := broken.JSON(t, "", http.MethodGet, "/readyz", nil)
	if r.Status != http.StatusServiceUnavailable || !strings.Contains(fmt.Sprint(r.Body["error"]), "s3") {
		t.Errorf("readyz with S3 down: %d %s", r.Status, r.Raw)
	}
	if r := s.JSON(t, "", http.MethodGet, "/openapi.yaml", nil); r.Status != http.StatusOK || !bytes.HasPrefix(r.Raw, []byte("openapi: 3.1")) {
		t.Errorf("openapi.yaml: %d %.40s", r.Status, r.Raw)
	}
}
