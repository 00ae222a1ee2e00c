package webhook_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/ragpipe/ragpipe/internal/teststack"
	"github.com/ragpipe/ragpipe/pkg/config"
)

// redisDB is this package's Redis database (see testenv.Redis).
const redisDB = 3

// stack is the API (over HTTP) and, when started, a worker, in-process on
// fresh services, with webhooks allowed to reach loopback receivers.
type stack struct {
	*teststack.Stack
}

func fastConfig(c *config.Config) {
	c.WebhookAllowHTTP, c.WebhookAllowPrivate = true, true
	c.WebhookRetrySchedule = []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond,
		400 * time.Millisecond, 500 * time.Millisecond}
	c.WebhookTimeout = 2 * time.Second
}

func startStack(t *testing.T, withWorker bool, tune func(*config.Config)) *stack {
	t.Helper()
	s := teststack.Start(t, redisDB, func(c *config.Config) {
		fastConfig(c)
		if tune != nil {
			tune(c)
		}
	})
	if withWorker {
		s.StartWorker(t)
	}
	return &stack{s}
}

// subscribe creates a webhook for events at url and returns its ID and secret.
func (s *stack) subscribe(t *testing.T, key, url string, events ...string) (id, secret string) {
	t.Helper()
	r := s.JSON(t, key, http.MethodPost, "/v1/webhooks", map[string]any{"url": url, "events": events})
	if r.Status != http.StatusCreated {
		t.Fatalf("create webhook: %d %s", r.Status, r.Raw)
	}
	return r.Body["id"].(string), r.Body["secret"].(string)
}

// deliveries lists a webhook's deliveries (all pages).
func (s *stack) deliveries(t *testing.T, key, id, query string) []map[string]any {
	t.Helper()
	var out []map[string]any
	cursor := ""
	for {
		r := s.JSON(t, key, http.MethodGet, "/v1/webhooks/"+id+"/deliveries?limit=100&cursor="+cursor+"&"+query, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("deliveries: %d %s", r.Status, r.Raw)
		}
		for _, d := range r.Body["deliveries"].([]any) {
			out = append(out, d.(map[string]any))
		}
		cursor, _ = r.Body["next_cursor"].(string)
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
