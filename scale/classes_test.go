package scale

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ragpipe/ragpipe/internal/teststack"
	"github.com/ragpipe/ragpipe/pkg/config"
)

// queueStats returns /admin/queues by queue name.
func queueStats(t *testing.T, s *teststack.Stack) map[string]map[string]any {
	t.Helper()
	r := s.JSON(t, "operator-secret", http.MethodGet, "/admin/queues", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("queue stats: %d %s", r.Status, r.Raw)
	}
	out := map[string]map[string]any{}
	for _, q := range r.Body["queues"].([]any) {
		m := q.(map[string]any)
		out[m["queue"].(string)] = m
	}
	return out
}

// TestWorkerClasses runs each class of work on a worker of its own: an
// extract worker alone extracts and chunks a big document, which then waits
// in the embed queue (its depth and age visible to an autoscaler) until an
// embed worker starts; a small document is finished by its extract task
// alone; the webhook the document's readiness raises waits in the webhooks
// queue until a webhooks worker starts and delivers it.
func TestWorkerClasses(t *testing.T) {
	var delivered atomic.Int32
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if strings.Contains(string(b), "document.ready") {
			delivered.Add(1)
		}
	}))
	t.Cleanup(receiver.Close)
	s := teststack.Start(t, redisDB, func(c *config.Config) {
		c.AdminToken = "operator-secret"
		c.WebhookAllowHTTP, c.WebhookAllowPrivate = true, true
	})
	class := func(queues ...string) {
		w := *s
		w.Config.WorkerQueues = queues
		w.StartWorker(t)
	}
	key := s.Key(t, "acme")
	if r := s.JSON(t, key, http.MethodPost, "/v1/webhooks", map[string]any{"url": receiver.URL, "events": []string{"document.ready"}}); r.Status != http.StatusCreated {
		t.Fatalf("create webhook: %d %s", r.Status, r.Raw)
	}
	c := newClient(s, key)

	class("extract")
	small, err := c.upload("small.md", doc(0, false))
	if err != nil {
		t.Fatal(err)
	}
	big, err := c.upload("big.md", doc(1, true))
	if err != nil {
		t.Fatal(err)
	}
	if st := c.waitAll(t, []string{small}, time.Minute)[small]; st != "succeeded" {
		t.Fatalf("small document with an extract worker only: %s", st)
	}
	var embed map[string]any
	deadline := time.Now().Add(time.Minute)
	for {
		embed = queueStats(t, s)["embed"]
		if embed["pending"].(float64) > 0 && embed["oldest_pending_seconds"].(float64) >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no embed task waiting a second with no embed worker: %v", embed)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var job struct{ Status, Stage string }
	if err := c.get("/v1/jobs/"+big, &job); err != nil || job.Status != "running" || job.Stage != "embed" {
		t.Errorf("big document with an extract worker only: %+v %v", job, err)
	}

	class("embed")
	if st := c.waitAll(t, []string{big}, time.Minute)[big]; st != "succeeded" {
		t.Fatalf("big document once an embed worker runs: %s", st)
	}
	if !c.searchFinds(t, 0) || !c.searchFinds(t, 1) {
		t.Error("documents not found by search")
	}
	deadline = time.Now().Add(30 * time.Second)
	for queueStats(t, s)["webhooks"]["pending"].(float64) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the two document.ready deliveries are not waiting in the webhooks queue: %v", queueStats(t, s)["webhooks"])
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n := delivered.Load(); n != 0 {
		t.Fatalf("%d deliveries with no webhooks worker", n)
	}

	class("webhooks")
	deadline = time.Now().Add(30 * time.Second)
	for delivered.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of 2 deliveries once a webhooks worker runs", delivered.Load())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
