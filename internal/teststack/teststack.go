// Package teststack runs ragpipe in-process for end-to-end tests: the API
// behind an httptest server and workers on demand, on a fresh database,
// Redis database and bucket from testenv, driven over HTTP.
package teststack

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
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
	"github.com/ragpipe/ragpipe/pkg/webhook"
)

// Stack is the API of one test, served over HTTP, with the services it
// runs on. It starts no worker by itself (see StartWorker). Every helper
// reports to the t it is given, so a stack can serve its test's subtests.
type Stack struct {
	URL    string        // the API's base URL
	Config config.Config // what the API runs with and StartWorker uses
	DB     *postgres.DB  // the API's database, for setting up and checking state directly
	Log    *slog.Logger  // what StartWorker's workers log to
	Blobs  *blob.Store   // the API's bucket
}

// Start runs the API on a fresh database, bucket and Redis database redisDB
// (the calling package's own; see testenv.Redis), with the services'
// configuration changed by tune when it is not nil. The test's cleanup stops
// it, after the workers started since. A tune that points the stack at a
// Redis of its own passes a negative redisDB; one that sets another
// database URL gets Stack.DB on that database.
func Start(t testing.TB, redisDB int, tune func(*config.Config)) *Stack {
	t.Helper()
	db, dbURL := testenv.DB(t)
	if redisDB >= 0 {
		testenv.Redis(t, redisDB)
	}
	bucket, blobs := testenv.Bucket(t)
	cfg := testenv.Config(t)
	cfg.DatabaseURL, cfg.RedisDB, cfg.S3Bucket = dbURL, max(redisDB, 0), bucket
	cfg.ShutdownGrace = 5 * time.Second
	if tune != nil {
		tune(&cfg)
	}
	if cfg.DatabaseURL != dbURL {
		db = openOwn(t, cfg.DatabaseURL)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithCancel(context.Background())
	api, err := platform.NewAPI(ctx, cfg, log)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	events := make(chan struct{})
	go func() {
		defer close(events)
		api.RunEvents(ctx)
	}()
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(func() {
		cancel()
		<-events
		srv.Close()
		api.Close()
	})
	return &Stack{URL: srv.URL, Config: cfg, DB: db, Log: log, Blobs: blobs}
}

// openOwn migrates and opens the database at dbURL, closed on cleanup.
func openOwn(t testing.TB, dbURL string) *postgres.DB {
	t.Helper()
	ctx := context.Background()
	if err := postgres.Migrate(ctx, dbURL); err != nil {
		t.Fatal(err)
	}
	db, err := postgres.Open(ctx, dbURL, webhook.EncodeEvent)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db
}

// StartWorker runs a worker with s.Config, logging to s.Log, until the
// returned function (or the test's cleanup) stops it; stopping again does
// nothing. For a worker configured otherwise than the API, call it on a copy
// of s with another Config or Log.
func (s *Stack) StartWorker(t testing.TB) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w, err := platform.NewWorker(ctx, s.Config, s.Log)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	stop = func() {
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

// Key creates an API key for tenant.
func (s *Stack) Key(t testing.TB, tenant string) string {
	t.Helper()
	key, hash := apikey.New()
	if _, err := s.DB.CreateKey(context.Background(), tenant, apikey.Display(key), hash); err != nil {
		t.Fatal(err)
	}
	return key
}

// Response is an API answer, read whole.
type Response struct {
	Status int
	Header http.Header
	Body   map[string]any // the body decoded, when it is a JSON object
	Raw    []byte
}

// ErrorCode is the code of the error body, or "".
func (r Response) ErrorCode() string {
	e, _ := r.Body["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

// Do sends a request to path, authorized by key unless it is "", with body
// of contentType unless that is "".
func (s *Stack) Do(t testing.TB, key, method, path, contentType string, body io.Reader) Response {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return s.send(t, key, req)
}

func (s *Stack) send(t testing.TB, key string, req *http.Request) Response {
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
	r := Response{Status: res.StatusCode, Header: res.Header, Raw: raw}
	_ = json.Unmarshal(raw, &r.Body)
	return r
}

// JSON sends v encoded as JSON (no body when v is nil), as Do does.
func (s *Stack) JSON(t testing.TB, key, method, path string, v any) Response {
	t.Helper()
	var body io.Reader
	if v != nil {
		b, _ := json.Marshal(v)
		body = bytes.NewReader(b)
	}
	return s.Do(t, key, method, path, "application/json", body)
}

// Upload posts content to /v1/documents as a multipart file with the given
// extra fields.
func (s *Stack) Upload(t testing.TB, key, filename string, content []byte, fields map[string]string) Response {
	t.Helper()
	return s.UploadTo(t, key, "/v1/documents", filename, content, fields, nil)
}

// UploadTo posts a multipart upload to path with extra headers.
func (s *Stack) UploadTo(t testing.TB, key, path, filename string, content []byte, fields, headers map[string]string) Response {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	fw, _ := mw.CreateFormFile("file", filename)
	fw.Write(content)
	mw.Close()
	req, err := http.NewRequest(http.MethodPost, s.URL+path, &buf)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return s.send(t, key, req)
}

// WaitJob polls the job until it ends, for at most 90 seconds, and returns
// its last state.
func (s *Stack) WaitJob(t testing.TB, key, jobID string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		r := s.JSON(t, key, http.MethodGet, "/v1/jobs/"+jobID, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("GET job: %d %s", r.Status, r.Raw)
		}
		switch r.Body["status"] {
		case "succeeded", "failed", "canceled":
			return r.Body
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("job %s did not end within 90s", jobID)
	return nil
}

// Event is a server-sent event, its data decoded.
type Event struct {
	Event string
	Data  map[string]any
}

// Stream is an answer of server-sent events, read whole: FirstToken is when
// its first "token" event arrived, Total when it ended, both from the
// request's start.
type Stream struct {
	Status            int
	Header            http.Header
	Events            []Event
	FirstToken, Total time.Duration
}

// AskStream posts body to /v1/ask asking for events, and reads them all.
func (s *Stack) AskStream(t testing.TB, key string, body any) Stream {
	t.Helper()
	b, _ := json.Marshal(body)
	req, err := http.NewRequest(http.MethodPost, s.URL+"/v1/ask", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := Stream{Status: resp.StatusCode, Header: resp.Header}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	var cur Event
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			cur.Event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &cur.Data); err != nil {
				t.Fatalf("event data %q: %v", line, err)
			}
		case line == "" && cur.Event != "":
			if cur.Event == "token" && out.FirstToken == 0 {
				out.FirstToken = time.Since(start)
			}
			out.Events = append(out.Events, cur)
			cur = Event{}
		}
	}
	out.Total = time.Since(start)
	return out
}
