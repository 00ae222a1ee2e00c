package platform_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ragpipe/ragpipe/internal/fakeopenai"
	"github.com/ragpipe/ragpipe/internal/teststack"
	"github.com/ragpipe/ragpipe/pkg/config"
	"github.com/ragpipe/ragpipe/pkg/embed"
	"github.com/ragpipe/ragpipe/pkg/platform"
	"github.com/ragpipe/ragpipe/pkg/queue"
	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// fakeProvider starts an OpenAI-compatible embeddings server whose vectors
// are the hashing embedder's, so results do not depend on the provider's
// mood. Before answering it calls before, which may answer instead (and
// returns true) to stall, fail or gate the request. It returns the base URL.
func fakeProvider(t testing.TB, before func(w http.ResponseWriter, r *http.Request) bool) string {
	t.Helper()
	h := embed.NewHashing(384)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Read the body first: only then does the server notice a client
		// that gives up.
		var req struct {
			Input []string `json:"input"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if before != nil && before(w, r) {
			return
		}
		vecs, _ := h.Embed(r.Context(), req.Input)
		fakeopenai.WriteEmbeddings(w, "fake", vecs, len(req.Input))
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/v1"
}

// useProvider points the configuration at a fake provider.
func useProvider(c *config.Config, url string) {
	c.EmbedProvider, c.OpenAIBaseURL, c.OpenAIAPIKey, c.OpenAIModel = "openai", url, "test", "fake"
}

// gatedProvider is a fake provider whose answers wait until the gate opens
// (or the request is abandoned).
type gatedProvider struct {
	url      string
	open     chan struct{}
	once     sync.Once
	requests atomic.Int64
}

func newGatedProvider(t *testing.T) *gatedProvider {
	t.Helper()
	g := &gatedProvider{open: make(chan struct{})}
	g.url = fakeProvider(t, func(w http.ResponseWriter, r *http.Request) bool {
		g.requests.Add(1)
		select {
		case <-g.open:
			return false
		case <-r.Context().Done():
			return true
		}
	})
	t.Cleanup(g.release)
	return g
}

func (g *gatedProvider) release() { g.once.Do(func() { close(g.open) }) }

// waitRequest waits until the provider holds a request at its gate.
func (g *gatedProvider) waitRequest(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for g.requests.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no embedding request reached the provider")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (g *gatedProvider) tune(c *config.Config) { useProvider(c, g.url) }

// subscribe starts a webhook receiver, subscribes it to events for the key's
// tenant (the stack must allow private http targets) and returns what it gets.
func (s *stack) subscribe(t *testing.T, key string, events ...string) <-chan map[string]any {
	t.Helper()
	got := make(chan map[string]any, 10)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev map[string]any
		json.NewDecoder(r.Body).Decode(&ev)
		got <- ev
	}))
	t.Cleanup(receiver.Close)
	if r := s.JSON(t, key, http.MethodPost, "/v1/webhooks", map[string]any{"url": receiver.URL, "events": events}); r.Status != http.StatusCreated {
		t.Fatalf("subscribe: %d %s", r.Status, r.Raw)
	}
	return got
}

func textDoc(n int) []byte {
	return fmt.Appendf(nil, "# Document %d\n\nThe quick brown fox number %d jumps over the lazy dog. "+
		"Striped zebras graze near acacia trees in document %d.\n", n, n, n)
}

// largeDoc is a document with more text than a worker embeds in its extract
// task, so that it passes through every stage's task.
func largeDoc(n int) []byte {
	return bytes.Repeat(textDoc(n), 300)
}

func TestDedupeAndIdempotency(t *testing.T) {
	s := startStack(t, nil)
	key := s.Key(t, "acme")
	body := textDoc(1)

	first := s.Upload(t, key, "a.md", body, map[string]string{"collection": "c1"})
	if first.Status != http.StatusAccepted || first.Body["deduplicated"] != false {
		t.Fatalf("first upload: %d %s", first.Status, first.Raw)
	}
	docID := first.Body["document_id"]
	again := s.Upload(t, key, "b.md", body, map[string]string{"collection": "c1"})
	if again.Status != http.StatusOK || again.Body["deduplicated"] != true || again.Body["document_id"] != docID {
		t.Errorf("same bytes again: %d %s", again.Status, again.Raw)
	}
	other := s.Upload(t, key, "a.md", body, map[string]string{"collection": "c2"})
	if other.Status != http.StatusAccepted || other.Body["document_id"] == docID {
		t.Errorf("same bytes, other collection: %d %s", other.Status, other.Raw)
	}
	forced := s.UploadTo(t, key, "/v1/documents?dedupe=false", "a.md", body, map[string]string{"collection": "c1"}, nil)
	if forced.Status != http.StatusAccepted || forced.Body["document_id"] == docID {
		t.Errorf("dedupe=false: %d %s", forced.Status, forced.Raw)
	}

	hdr := map[string]string{"Idempotency-Key": "retry-42"}
	r1 := s.UploadTo(t, key, "/v1/documents", "x.md", textDoc(2), nil, hdr)
	r2 := s.UploadTo(t, key, "/v1/documents", "x.md", textDoc(2), nil, hdr)
	if r1.Status != http.StatusAccepted || r2.Status != http.StatusAccepted || string(r1.Raw) != string(r2.Raw) ||
		r2.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("retried POST: %d %s / %d %s replayed=%q", r1.Status, r1.Raw, r2.Status, r2.Raw, r2.Header.Get("Idempotent-Replayed"))
	}
	r3 := s.UploadTo(t, key, "/v1/documents", "x.md", textDoc(3), nil, hdr)
	if r3.Status != http.StatusUnprocessableEntity {
		t.Errorf("same key, different body: %d %s", r3.Status, r3.Raw)
	}
	docs := s.JSON(t, key, http.MethodGet, "/v1/documents?limit=100", nil).Body["documents"].([]any)
	if len(docs) != 4 {
		t.Errorf("%d documents recorded, want 4 (first, other collection, dedupe=false, idempotent)", len(docs))
	}
}

func TestCancel(t *testing.T) {
	g := newGatedProvider(t)
	s := startStack(t, func(c *config.Config) {
		g.tune(c)
		c.WebhookAllowHTTP, c.WebhookAllowPrivate = true, true
	})
	key := s.Key(t, "acme")
	events := s.subscribe(t, key, "*")
	r := s.Upload(t, key, "a.md", textDoc(1), nil)
	jobID := r.Body["job_id"].(string)
	g.waitRequest(t)

	c := s.JSON(t, key, http.MethodPost, "/v1/jobs/"+jobID+"/cancel", nil)
	if c.Status != http.StatusAccepted || c.Body["status"] != "canceled" {
		t.Fatalf("cancel: %d %s", c.Status, c.Raw)
	}
	g.release()
	s.WaitJob(t, key, jobID)
	time.Sleep(500 * time.Millisecond) // let the released embed task finish its stage
	job := s.JSON(t, key, http.MethodGet, "/v1/jobs/"+jobID, nil).Body
	doc := s.JSON(t, key, http.MethodGet, "/v1/documents/"+r.Body["document_id"].(string), nil).Body
	if job["status"] != "canceled" || doc["status"] != "failed" || doc["chunk_count"] != 0.0 {
		t.Errorf("after cancel: job %v, document %v", job["status"], doc)
	}
	if again := s.JSON(t, key, http.MethodPost, "/v1/jobs/"+jobID+"/cancel", nil); again.Status != http.StatusConflict || again.ErrorCode() != "conflict" {
		t.Errorf("second cancel: %d %s", again.Status, again.Raw)
	}
	select {
	case ev := <-events:
		job := ev["data"].(map[string]any)["job"].(map[string]any)
		if ev["type"] != "document.failed" || job["status"] != "canceled" {
			t.Errorf("webhook after cancel: %v", ev)
		}
	case <-time.After(20 * time.Second):
		t.Error("no document.failed webhook after cancel")
	}
}

func TestDeleteDocument(t *testing.T) {
	s := startStack(t, func(c *config.Config) { c.WebhookAllowHTTP, c.WebhookAllowPrivate = true, true })
	key := s.Key(t, "acme")
	events := s.subscribe(t, key, "document.deleted")
	r := s.Upload(t, key, "a.md", textDoc(7), nil)
	docID := r.Body["document_id"].(string)
	s.WaitJob(t, key, r.Body["job_id"].(string))
	search := func() int {
		res := s.JSON(t, key, http.MethodPost, "/v1/search", map[string]any{"query": "striped zebras acacia", "mode": "keyword"})
		return len(res.Body["results"].([]any))
	}
	if n := search(); n == 0 {
		t.Fatal("document not searchable before delete")
	}
	d := s.JSON(t, key, http.MethodDelete, "/v1/documents/"+docID, nil)
	if d.Status != http.StatusAccepted {
		t.Fatalf("delete: %d %s", d.Status, d.Raw)
	}
	if n := search(); n != 0 {
		t.Errorf("search still finds %d chunks right after delete was accepted", n)
	}
	deadline := time.Now().Add(20 * time.Second)
	for s.JSON(t, key, http.MethodGet, "/v1/documents/"+docID, nil).Status != http.StatusNotFound {
		if time.Now().After(deadline) {
			t.Fatal("document not purged within 20s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	objects, err := s.Blobs.List(context.Background(), "tenants/")
	if err != nil || len(objects) != 0 {
		t.Errorf("objects left after purge: %v %v", objects, err)
	}
	if again := s.JSON(t, key, http.MethodDelete, "/v1/documents/"+docID, nil); again.Status != http.StatusNotFound {
		t.Errorf("delete of a purged document: %d", again.Status)
	}
	select {
	case ev := <-events:
		if ev["type"] != "document.deleted" {
			t.Errorf("webhook event %v, want document.deleted", ev["type"])
		}
	case <-time.After(20 * time.Second):
		t.Error("no document.deleted webhook within 20s")
	}
}

// TestReingestIsAtomic searches without pause while a document is
// re-ingested with other chunk sizes: every answer holds the old chunks or
// the new ones, never both and never neither.
func TestReingestIsAtomic(t *testing.T) {
	s := startStack(t, func(c *config.Config) { c.RateLimitPerMin = 1_000_000 })
	key := s.Key(t, "acme")
	text := strings.Repeat("Alpaca wool keeps herders warm in the high Andes. ", 120)
	r := s.Upload(t, key, "alpaca.txt", []byte(text), nil)
	docID := r.Body["document_id"].(string)
	s.WaitJob(t, key, r.Body["job_id"].(string))
	chunkTexts := func() []string {
		var out []string
		for _, c := range s.JSON(t, key, http.MethodGet, "/v1/documents/"+docID+"/chunks?limit=500", nil).Body["chunks"].([]any) {
			out = append(out, c.(map[string]any)["text"].(string))
		}
		return out
	}
	old := chunkTexts()

	var answers [][]string
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			res := s.JSON(t, key, http.MethodPost, "/v1/search", map[string]any{"query": "alpaca wool", "mode": "keyword", "top_k": 100})
			if res.Status != http.StatusOK {
				t.Errorf("search during re-ingest: %d %s", res.Status, res.Raw)
				return
			}
			var texts []string
			for _, x := range res.Body["results"].([]any) {
				texts = append(texts, x.(map[string]any)["text"].(string))
			}
			answers = append(answers, texts)
		}
	}()
	re := s.JSON(t, key, http.MethodPost, "/v1/documents/"+docID+"/reingest", map[string]any{"chunk_size": 64, "chunk_overlap": 0})
	if re.Status != http.StatusAccepted || re.Body["kind"] != "reingest" {
		t.Fatalf("reingest: %d %s", re.Status, re.Raw)
	}
	if busy := s.JSON(t, key, http.MethodPost, "/v1/documents/"+docID+"/reingest", nil); busy.Status != http.StatusConflict {
		t.Errorf("reingest while one runs: %d %s", busy.Status, busy.Raw)
	}
	s.WaitJob(t, key, re.Body["id"].(string))
	time.Sleep(200 * time.Millisecond)
	close(stop)
	<-done
	fresh := chunkTexts()
	if len(fresh) <= len(old) {
		t.Fatalf("re-ingest with smaller chunks gave %d chunks, before %d", len(fresh), len(old))
	}
	sawOld, sawNew := 0, 0
	for i, a := range answers {
		switch {
		case len(a) == len(old) && subset(a, old):
			sawOld++
		case len(a) == len(fresh) && subset(a, fresh):
			sawNew++
		default:
			t.Fatalf("answer %d mixes versions or is empty: %d results (old %d, new %d)", i, len(a), len(old), len(fresh))
		}
	}
	t.Logf("%d searches during re-ingest: %d saw the old version, %d the new", len(answers), sawOld, sawNew)
	if sawNew == 0 {
		t.Error("no search saw the new version")
	}
}

func subset(a, of []string) bool {
	for _, x := range a {
		if !slices.Contains(of, x) {
			return false
		}
	}
	return true
}

type sseEvent struct {
	id   int64
	typ  string
	data map[string]any
}

// recoveries returns the job.recovered events of a job that has ended: the
// reaper's re-enqueues and rescues.
func (s *stack) recoveries(t *testing.T, key, jobID string) []sseEvent {
	t.Helper()
	var out []sseEvent
	for _, e := range s.readEvents(t, key, jobID, 0) {
		if e.typ == "job.recovered" {
			out = append(out, e)
		}
	}
	return out
}

// readEvents reads a job's event stream until it ends.
func (s *stack) readEvents(t *testing.T, key, jobID string, lastID int64) []sseEvent {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/v1/jobs/"+jobID+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	if lastID > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(lastID, 10))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	var out []sseEvent
	var cur sseEvent
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "id: "):
			cur.id, _ = strconv.ParseInt(line[4:], 10, 64)
		case strings.HasPrefix(line, "event: "):
			cur.typ = line[7:]
		case strings.HasPrefix(line, "data: "):
			json.Unmarshal([]byte(line[6:]), &cur.data)
		case line == "" && cur.typ != "":
			out = append(out, cur)
			cur = sseEvent{}
		}
	}
	return out
}

func TestJobEventsStream(t *testing.T) {
	g := newGatedProvider(t)
	s := startStack(t, g.tune)
	key := s.Key(t, "acme")
	r := s.Upload(t, key, "a.md", largeDoc(3), nil)
	jobID := r.Body["job_id"].(string)
	got := make(chan []sseEvent)
	go func() { got <- s.readEvents(t, key, jobID, 0) }()
	time.Sleep(300 * time.Millisecond) // the stream is open and waiting on the gate
	g.release()
	events := <-got
	var types []string
	for i, e := range events {
		types = append(types, e.typ)
		if i > 0 && e.id <= events[i-1].id {
			t.Errorf("event ids not increasing: %d after %d", e.id, events[i-1].id)
		}
	}
	if len(types) < 5 || types[0] != "job.queued" || types[len(types)-1] != "job.succeeded" ||
		!slices.Contains(types, "job.progress") {
		t.Fatalf("event types %v", types)
	}
	if last := events[len(events)-1].data; last["status"] != "succeeded" || last["progress"] != 1.0 {
		t.Errorf("final event %v", last)
	}
	resumed := s.readEvents(t, key, jobID, events[1].id)
	if len(resumed) != len(events)-2 || resumed[0].id != events[2].id {
		t.Errorf("resume after event 2: got %d events starting %v, want %d starting %d", len(resumed), resumed[0].id, len(events)-2, events[2].id)
	}
	other := s.Key(t, "globex")
	if r := s.JSON(t, other, http.MethodGet, "/v1/jobs/"+jobID+"/events", nil); r.Status != http.StatusNotFound {
		t.Errorf("another tenant's stream: %d", r.Status)
	}
}

func TestBackpressure(t *testing.T) {
	s := startStack(t, func(c *config.Config) { c.MaxQueuedJobs = 2 })
	s.stopWorker() // nothing leaves the queue
	key := s.Key(t, "acme")
	for i := range 2 {
		if r := s.Upload(t, key, "a.md", textDoc(i), nil); r.Status != http.StatusAccepted {
			t.Fatalf("upload %d: %d %s", i, r.Status, r.Raw)
		}
	}
	time.Sleep(1100 * time.Millisecond) // the depth is read at most once a second
	r := s.Upload(t, key, "a.md", textDoc(9), nil)
	if r.Status != http.StatusServiceUnavailable || r.ErrorCode() != "unavailable" || r.Header.Get("Retry-After") == "" {
		t.Errorf("upload past the limit: %d %s Retry-After=%q", r.Status, r.Raw, r.Header.Get("Retry-After"))
	}
}

// TestReaperRecoversLostTasks loses every task in Redis while a job is in
// the embed stage and checks that the reaper drives it to success.
func TestReaperRecoversLostTasks(t *testing.T) {
	g := newGatedProvider(t)
	s := startStack(t, func(c *config.Config) {
		g.tune(c)
		c.ShutdownGrace = 500 * time.Millisecond
		c.ReaperInterval, c.ReaperStaleAfter = 200*time.Millisecond, time.Second
	})
	key := s.Key(t, "acme")
	r := s.Upload(t, key, "a.md", textDoc(5), nil)
	jobID := r.Body["job_id"].(string)
	g.waitRequest(t)
	s.stopWorker()
	rdb := redis.NewClient(&redis.Options{Addr: s.Config.RedisAddr, DB: s.Config.RedisDB})
	defer rdb.Close()
	if err := rdb.FlushDB(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	lost := time.Now()
	g.release()
	s.StartWorker(t)
	job := s.WaitJob(t, key, jobID)
	if job["status"] != "succeeded" {
		t.Fatalf("job after losing its tasks: %v", job)
	}
	recs := s.recoveries(t, key, jobID)
	if len(recs) == 0 {
		t.Fatal("no job.recovered event")
	}
	recovered, _ := time.Parse(time.RFC3339Nano, recs[0].data["created_at"].(string))
	t.Logf("reaper noticed the lost job %.1fs after its tasks vanished (stale-after %s, interval %s)",
		recovered.Sub(lost).Seconds(), s.Config.ReaperStaleAfter, s.Config.ReaperInterval)
}

// TestFairness measures a tenant's single document's time to ready, first on
// an idle system, then while another tenant floods the queue with
// RAGPIPE_FAIRNESS_FLOOD documents (150 by default; the figure in
// docs/performance.md used 10,000).
func TestFairness(t *testing.T) {
	flood := 150
	if v := os.Getenv("RAGPIPE_FAIRNESS_FLOOD"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("RAGPIPE_FAIRNESS_FLOOD: %v", err)
		}
		flood = n
	}
	s := startStack(t, func(c *config.Config) { c.TenantMaxInflight, c.RateLimitPerMin = 2, 1_000_000 })
	flooder, single := s.Key(t, "flood"), s.Key(t, "single")
	timeToReady := func(n int) time.Duration {
		start := time.Now()
		r := s.Upload(t, single, "s.md", textDoc(n), nil)
		s.WaitJob(t, single, r.Body["job_id"].(string))
		return time.Since(start)
	}
	idle := timeToReady(-1)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < flood; i += 4 {
				if r := s.Upload(t, flooder, "f.md", textDoc(i), nil); r.Status != http.StatusAccepted {
					t.Errorf("flood upload: %d", r.Status)
				}
			}
		})
	}
	wg.Wait()
	busy := timeToReady(-2)
	queued := s.JSON(t, flooder, http.MethodGet, "/v1/documents?status=processing&limit=100", nil).Body["documents"].([]any)
	t.Logf("single document to ready: idle %s, during a %d-document flood %s (%d of the flood still processing)",
		idle.Round(time.Millisecond), flood, busy.Round(time.Millisecond), len(queued))
	if busy > 5*idle+2*time.Second {
		t.Errorf("starved: %s during the flood vs %s idle", busy, idle)
	}
}

// TestArchivedTaskRetry spends a task's retries against a failing provider,
// then retries it through the admin API once the provider is back.
func TestArchivedTaskRetry(t *testing.T) {
	pol := queue.Policies[ragpipe.TaskEmbed]
	queue.Policies[ragpipe.TaskEmbed] = queue.Policy{MaxRetry: 1, Timeout: pol.Timeout}
	t.Cleanup(func() { queue.Policies[ragpipe.TaskEmbed] = pol })
	var failures atomic.Int32 // the provider's next answers that fail
	failures.Store(2)         // both attempts the policy allows
	provider := fakeProvider(t, func(w http.ResponseWriter, _ *http.Request) bool {
		if failures.Add(-1) < 0 {
			return false
		}
		http.Error(w, `{"error":{"message":"overloaded"}}`, http.StatusInternalServerError)
		return true
	})
	s := startStack(t, func(c *config.Config) {
		useProvider(c, provider)
		c.AdminToken = "operator-secret"
	})
	key := s.Key(t, "acme")
	r := s.Upload(t, key, "a.md", largeDoc(4), nil)
	jobID := r.Body["job_id"].(string)
	job := s.WaitJob(t, key, jobID)
	if e, _ := job["error"].(map[string]any); job["status"] != "failed" || e["code"] != "retries_exhausted" {
		t.Fatalf("job against a failing provider: %v", job)
	}
	if r := s.JSON(t, key, http.MethodGet, "/admin/tasks/archived", nil); r.Status != http.StatusUnauthorized {
		t.Errorf("admin API with a tenant key: %d", r.Status)
	}
	list := s.JSON(t, "operator-secret", http.MethodGet, "/admin/tasks/archived?queue=embed", nil)
	tasks, _ := list.Body["tasks"].([]any)
	if list.Status != http.StatusOK || len(tasks) != 1 || tasks[0].(map[string]any)["job_id"] != jobID {
		t.Fatalf("archived tasks: %d %s", list.Status, list.Raw)
	}
	// The retried task fails once more: with its retry budget spent, as
	// Asynq would leave it, that would archive it again; afresh, it retries.
	failures.Store(1)
	id := tasks[0].(map[string]any)["id"].(string)
	if rr := s.JSON(t, "operator-secret", http.MethodPost, "/admin/tasks/archived/"+id+"/retry", nil); rr.Status != http.StatusAccepted {
		t.Fatalf("retry: %d %s", rr.Status, rr.Raw)
	}
	job = s.WaitJob(t, key, jobID)
	if job["status"] != "succeeded" {
		t.Errorf("job after retrying its archived task: %v", job)
	}
	if rr := s.JSON(t, "operator-secret", http.MethodPost, "/admin/tasks/archived/"+id+"/retry", nil); rr.Status != http.StatusNotFound && rr.Status != http.StatusConflict {
		t.Errorf("retrying a task no longer archived: %d %s", rr.Status, rr.Raw)
	}
	m := s.Do(t, "", http.MethodGet, "/metrics", "", nil)
	if m.Status != http.StatusOK || !strings.Contains(string(m.Raw), `ragpipe_queue_oldest_pending_seconds{queue="embed"}`) {
		t.Errorf("metrics: %d, no queue depth", m.Status)
	}
}

// TestGracefulShutdown stops a worker while a task runs: a task that ends
// within the grace period finishes there; one that does not is handed back
// and finished by the next worker, with no reaper needed.
func TestGracefulShutdown(t *testing.T) {
	t.Run("finishes within grace", func(t *testing.T) {
		g := newGatedProvider(t)
		s := startStack(t, func(c *config.Config) { g.tune(c); c.ShutdownGrace = 5 * time.Second })
		key := s.Key(t, "acme")
		jobID := s.Upload(t, key, "a.md", textDoc(1), nil).Body["job_id"].(string)
		g.waitRequest(t)
		time.AfterFunc(300*time.Millisecond, g.release)
		start := time.Now()
		s.stopWorker()
		took := time.Since(start)
		job := s.JSON(t, key, http.MethodGet, "/v1/jobs/"+jobID, nil).Body
		if job["embedded_chunks"] != job["total_chunks"] || took > 4*time.Second {
			t.Errorf("after stop (%s): %v of %v chunks embedded", took, job["embedded_chunks"], job["total_chunks"])
		}
		s.StartWorker(t)
		if job := s.WaitJob(t, key, jobID); job["status"] != "succeeded" {
			t.Errorf("job: %v", job)
		}
	})
	t.Run("handed back after grace", func(t *testing.T) {
		g := newGatedProvider(t)
		s := startStack(t, func(c *config.Config) { g.tune(c); c.ShutdownGrace = 500 * time.Millisecond })
		key := s.Key(t, "acme")
		jobID := s.Upload(t, key, "a.md", textDoc(2), nil).Body["job_id"].(string)
		g.waitRequest(t)
		s.stopWorker()
		g.release()
		s.StartWorker(t)
		job := s.WaitJob(t, key, jobID)
		if job["status"] != "succeeded" {
			t.Errorf("job: %v", job)
		}
		if recs := s.recoveries(t, key, jobID); len(recs) > 0 {
			t.Errorf("the reaper was needed: %v", recs[0].data)
		}
	})
}

// TestAPIShutdown stops an API process serving an open event stream: the
// stream ends and the server returns well within its grace period.
func TestAPIShutdown(t *testing.T) {
	s := startStack(t, nil)
	s.stopWorker() // the job stays queued, so its stream stays open
	key := s.Key(t, "acme")
	jobID := s.Upload(t, key, "a.md", textDoc(1), nil).Body["job_id"].(string)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	api, err := platform.NewAPI(ctx, s.Config, s.Log)
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- api.Serve(ctx, ln) }()

	req, _ := http.NewRequest(http.MethodGet, "http://"+ln.Addr().String()+"/v1/jobs/"+jobID+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	first, err := bufio.NewReader(res.Body).ReadString('\n')
	if err != nil || !strings.HasPrefix(first, "id: ") {
		t.Fatalf("stream start %q, %v", first, err)
	}
	start := time.Now()
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(s.Config.ShutdownGrace):
		t.Fatal("Serve did not return within the grace period")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("shutdown with an open stream took %s", took)
	}
	if _, err := io.ReadAll(res.Body); err != nil {
		t.Errorf("stream did not end cleanly: %v", err)
	}
}

// TestSearchProviderFailures covers a remote embedding provider that stalls
// (504), fails until the circuit breaker opens (503 without calling it), and
// the shared per-provider request budget (503 with Retry-After).
func TestSearchProviderFailures(t *testing.T) {
	var mode atomic.Value // "hang", "fail" or "ok"
	var calls atomic.Int64
	provider := fakeProvider(t, func(w http.ResponseWriter, r *http.Request) bool {
		calls.Add(1)
		switch mode.Load() {
		case "hang":
			<-r.Context().Done()
			return true
		case "fail":
			http.Error(w, `{"error":{"message":"overloaded"}}`, http.StatusInternalServerError)
			return true
		}
		return false
	})
	s := startStack(t, func(c *config.Config) {
		useProvider(c, provider)
		c.EmbedTimeout = 300 * time.Millisecond
		c.EmbedBreakerFailures, c.EmbedBreakerCooldown = 2, time.Minute
		c.EmbedRequestsPerMin = 4
	})
	key := s.Key(t, "acme")
	search := func() teststack.Response {
		return s.JSON(t, key, http.MethodPost, "/v1/search", map[string]any{"query": "anything", "mode": "vector"})
	}
	mode.Store("ok")
	if r := search(); r.Status != http.StatusOK {
		t.Fatalf("healthy provider: %d %s", r.Status, r.Raw)
	}
	mode.Store("hang")
	if r := search(); r.Status != http.StatusGatewayTimeout || r.ErrorCode() != "provider_timeout" {
		t.Errorf("stalled provider: %d %s", r.Status, r.Raw)
	}
	mode.Store("fail")
	search() // the second consecutive failure opens the breaker
	before := calls.Load()
	r := search()
	if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") != "60" || calls.Load() != before {
		t.Errorf("open breaker: %d %s Retry-After=%q, provider called %d more times", r.Status, r.Raw, r.Header.Get("Retry-After"), calls.Load()-before)
	}
	r = search() // the 5th request this minute: over the shared budget of 4
	if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" || !strings.Contains(string(r.Raw), "unavailable") {
		t.Errorf("over the provider budget: %d %s", r.Status, r.Raw)
	}
}
