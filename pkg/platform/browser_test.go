package platform_test

import (
	"bytes"
	"mime/multipart"
	"net/http"
	"regexp"
	"testing"

	"github.com/ragpipe/ragpipe/pkg/config"
)

// A browser app on a configured origin passes its preflight without a key
// and reads the API's headers; other origins get no CORS headers; every
// response says how long it took.
func TestCORSAndResponseTime(t *testing.T) {
	s := startStack(t, func(c *config.Config) { c.CORSOrigins = []string{"https://app.example.com"} })
	key := s.Key(t, "acme")
	timing := regexp.MustCompile(`^\d+\.\dms$`)

	pre, _ := http.NewRequest(http.MethodOptions, s.URL+"/v1/search", nil)
	pre.Header.Set("Origin", "https://app.example.com")
	pre.Header.Set("Access-Control-Request-Method", "POST")
	pre.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
	resp, err := http.DefaultClient.Do(pre)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		resp.Header.Get("Access-Control-Allow-Headers") == "" || !timing.MatchString(resp.Header.Get("X-Response-Time")) {
		t.Errorf("preflight: %d %v", resp.StatusCode, resp.Header)
	}

	get, _ := http.NewRequest(http.MethodGet, s.URL+"/v1/collections", nil)
	get.Header.Set("Origin", "https://app.example.com")
	get.Header.Set("Authorization", "Bearer "+key)
	resp, err = http.DefaultClient.Do(get)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		resp.Header.Get("Access-Control-Expose-Headers") == "" {
		t.Errorf("request from the origin: %d %v", resp.StatusCode, resp.Header)
	}

	pre.Header.Set("Origin", "https://evil.example.net")
	resp, err = http.DefaultClient.Do(pre)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("another origin was allowed: %v", resp.Header)
	}

	for _, path := range []string{"/healthz", "/v1/nowhere", "/v1/collections"} {
		if r := s.JSON(t, key, http.MethodGet, path, nil); !timing.MatchString(r.Header.Get("X-Response-Time")) {
			t.Errorf("%s: X-Response-Time %q", path, r.Header.Get("X-Response-Time"))
		}
	}
}

// multipartFiles builds a form of file parts (name → content) in order, and
// a collection field.
func multipartFiles(t *testing.T, collection string, files ...[2]string) (string, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if err := mw.WriteField("collection", collection); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		w, err := mw.CreateFormFile("file", f[0])
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(f[1]))
	}
	mw.Close()
	return mw.FormDataContentType(), &buf
}

// Several files in one upload: each gets its document and job, or its own
// error; the others are not sunk; more than the configured count is 422.
func TestUploadSeveralFiles(t *testing.T) {
	s := startStack(t, func(c *config.Config) { c.MaxFilesPerUpload = 3 })
	key := s.Key(t, "acme")
	pdf := string(mustRead(t, "../../testdata/lppl.pdf"))
	ctype, body := multipartFiles(t, "batch", [2]string{"lppl.pdf", pdf}, [2]string{"image.png", "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"},
		[2]string{"notes.txt", "Plain notes about the zebra budget."})
	r := s.Do(t, key, http.MethodPost, "/v1/documents", ctype, body)
	docs, _ := r.Body["documents"].([]any)
	if r.Status != http.StatusAccepted || len(docs) != 3 {
		t.Fatalf("upload of three: %d %s", r.Status, r.Raw)
	}
	pdfDoc, png, txt := docs[0].(map[string]any), docs[1].(map[string]any), docs[2].(map[string]any)
	if pdfDoc["filename"] != "lppl.pdf" || pdfDoc["status"] != "queued" || png["error"].(map[string]any)["code"] != "unsupported_media_type" ||
		png["document_id"] != nil || txt["filename"] != "notes.txt" {
		t.Errorf("entries: %s", r.Raw)
	}
	for _, d := range []map[string]any{pdfDoc, txt} {
		if job := s.WaitJob(t, key, d["job_id"].(string)); job["status"] != "succeeded" {
			t.Errorf("%s: job %v", d["filename"], job)
		}
	}
	if list := s.JSON(t, key, http.MethodGet, "/v1/documents?collection=batch", nil); len(list.Body["documents"].([]any)) != 2 {
		t.Errorf("collection batch: %s", list.Raw)
	}

	ctype, body = multipartFiles(t, "batch", [2]string{"a.txt", "a"}, [2]string{"b.txt", "b"}, [2]string{"c.txt", "c"}, [2]string{"d.txt", "d"})
	if r := s.Do(t, key, http.MethodPost, "/v1/documents", ctype, body); r.Status != 422 || r.ErrorCode() != "invalid_file" {
		t.Errorf("four files past a limit of three: %d %s", r.Status, r.Raw)
	}
	ctype, body = multipartFiles(t, "batch", [2]string{"a.txt", "alpha"}, [2]string{"b.txt", "beta"})
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/v1/documents", body)
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Idempotency-Key", "two-files")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("Idempotency-Key with two files: %d", resp.StatusCode)
	}
	if list := s.JSON(t, key, http.MethodGet, "/v1/documents?collection=batch", nil); len(list.Body["documents"].([]any)) != 2 {
		t.Errorf("a refused upload left documents: %s", list.Raw)
	}
}
