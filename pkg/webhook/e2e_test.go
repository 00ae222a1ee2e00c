package webhook_test

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
	"sync"
	"testing"
	"time"

	"github.com/ragpipe/ragpipe/internal/testenv"
	"github.com/ragpipe/ragpipe/pkg/apikey"
	"github.com/ragpipe/ragpipe/pkg/config"
	"github.com/ragpipe/ragpipe/pkg/platform"
	"github.com/ragpipe/ragpipe/pkg/postgres"
)

// redisDB is this package's Redis database (see testenv.Redis).
const redisDB = 3

// stack is the API (over HTTP) and, unless stopped, one worker, in-process
// on fresh services, with webhooks allowed to reach loopback receivers.
type stack struct {
	t      *testing.T
	url    string
	cfg    config.Config
	db     *postgres.DB
	log    *slog.Logger
	mu     sync.Mutex
	cancel context.CancelFunc // stops the running worker
	done   chan error
}

func fastConfig(c *config.Config) {
	c.WebhookAllowHTTP, c.WebhookAllowPrivate = true, true
	c.WebhookRetrySchedule = []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond,
		400 * time.Millisecond, 500 * time.Millisecond}
	c.WebhookTimeout = 2 * time.Second
}

func startStack(t *testing.T, withWorker bool, tune func(*config.Config)) *stack {
	t.Helper()
	db, dbURL := testenv.DB(t)
	testenv.Redis(t, redisDB)
	bucket, _ := testenv.Bucket(t)
	cfg := testenv.Config(t)
	cfg.DatabaseURL, cfg.RedisDB, cfg.S3Bucket = dbURL, redisDB, bucket
	cfg.ShutdownGrace = 5 * time.Second
	fastConfig(&cfg)
	if tune != nil {
		tune(&cfg)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	api, err := platform.NewAPI(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.Handler())
	s := &stack{t: t, url: srv.URL, cfg: cfg, db: db, log: log}
	t.Cleanup(func() {
		s.stopWorker()
		srv.Close()
		api.Close()
	})
	if withWorker {
		s.startWorker()
	}
	return s
}

func (s *stack) startWorker() {
	s.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w, err := platform.NewWorker(ctx, s.cfg, s.log)
	if err != nil {
		s.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		err := w.Run(ctx)
		w.Close()
		done <- err
	}()
	s.mu.Lock()
	s.cancel, s.done = cancel, done
	s.mu.Unlock()
}

func (s *stack) stopWorker() {
	s.mu.Lock()
	cancel, done := s.cancel, s.done
	s.cancel, s.done = nil, nil
	s.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	if err := <-done; err != nil {
		s.t.Errorf("worker: %v", err)
	}
}

func (s *stack) key(tenant string) string {
	s.t.Helper()
	key, hash := apikey.New()
	if _, err := s.db.CreateKey(context.Background(), tenant, apikey.Display(key), hash); err != nil {
		s.t.Fatal(err)
	}
	return key
}

type response struct {
	status int
	body   map[string]any
	raw    []byte
}

func (s *stack) do(key, method, path, contentType string, body io.Reader) response {
	s.t.Helper()
	req, err := http.NewRequest(method, s.url+path, body)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := response{status: res.StatusCode, raw: raw}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

func (s *stack) json(key, method, path string, v any) response {
	s.t.Helper()
	var body io.Reader
	if v != nil {
		b, _ := json.Marshal(v)
		body = bytes.NewReader(b)
	}
	return s.do(key, method, path, "application/json", body)
}

func (s *stack) upload(key, filename string, content []byte, fields map[string]string) response {
	s.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	fw, _ := mw.CreateFormFile("file", filename)
	fw.Write(content)
	mw.Close()
	return s.do(key, http.MethodPost, "/v1/documents", mw.FormDataContentType(), &buf)
}

// subscribe creates a webhook for events at url and returns its ID and secret.
func (s *stack) subscribe(key, url string, events ...string) (id, secret string) {
	s.t.Helper()
	r := s.json(key, http.MethodPost, "/v1/webhooks", map[string]any{"url": url, "events": events})
	if r.status != http.StatusCreated {
		s.t.Fatalf("create webhook: %d %s", r.status, r.raw)
	}
	return r.body["id"].(string), r.body["secret"].(string)
}

// deliveries lists a webhook's deliveries (all pages).
func (s *stack) deliveries(key, id, query string) []map[string]any {
	s.t.Helper()
	var out []map[string]any
	cursor := ""
	for {
		r := s.json(key, http.MethodGet, "/v1/webhooks/"+id+"/deliveries?limit=100&cursor="+cursor+"&"+query, nil)
		if r.status != http.StatusOK {
			s.t.Fatalf("deliveries: %d %s", r.status, r.raw)
		}
		for _, d := range r.body["deliveries"].([]any) {
			out = append(out, d.(map[string]any))
		}
		cursor, _ = r.body["next_cursor"].(string)
		if cursor == "" {
			return out
		}
	}
}

// hit is one request a receiver got.
type hit struct {
	at       time.Time
	path     string
	id, ts   string
	sig      string
	body     []byte
	event    map[string]any
	answered int
}

// receiver is a loopback webhook subscriber whose answers a test scripts.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	hits   []hit
	answer func(n int, h hit, w http.ResponseWriter) int // n counts hits on h.path from 1
}

func newReceiver(t *testing.T, answer func(n int, h hit, w http.ResponseWriter) int) *receiver {
	rc := &receiver{answer: answer}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h := hit{at: time.Now(), path: r.URL.Path, id: r.Header.Get("webhook-id"), ts: r.Header.Get("webhook-timestamp"),
			sig: r.Header.Get("webhook-signature"), body: body}
		_ = json.Unmarshal(body, &h.event)
		rc.mu.Lock()
		n := 1
		for _, o := range rc.hits {
			if o.path == h.path {
				n++
			}
		}
		i := len(rc.hits)
		rc.hits = append(rc.hits, h)
		rc.mu.Unlock()
		code := http.StatusOK
		if rc.answer != nil {
			code = rc.answer(n, h, w)
		}
		if code > 0 {
			w.WriteHeader(code)
			fmt.Fprintf(w, "answer %d to hit %d", code, n)
		}
		rc.mu.Lock()
		rc.hits[i].answered = code
		rc.mu.Unlock()
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) got() []hit {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]hit(nil), rc.hits...)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

const note = "# Webhooks\n\nA short markdown note about signed webhook deliveries.\n"
