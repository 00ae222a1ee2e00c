package platform_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/ragpipe/ragpipe/internal/testenv"
	"github.com/ragpipe/ragpipe/internal/teststack"
	"github.com/ragpipe/ragpipe/pkg/config"
	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// tracedProvider is a fake embedding provider that keeps the traceparent
// header of every request.
type tracedProvider struct {
	url     string
	mu      sync.Mutex
	parents []string // guarded by mu
}

func newTracedProvider(t *testing.T) *tracedProvider {
	t.Helper()
	p := &tracedProvider{}
	p.url = fakeProvider(t, func(_ http.ResponseWriter, r *http.Request) bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.parents = append(p.parents, r.Header.Get("traceparent"))
		return false
	})
	return p
}

// headers returns the traceparent headers received so far.
func (p *tracedProvider) headers() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.parents)
}

// reactorText is about 80 KiB of text: past the inline size, so its
// document goes through every stage.
func reactorText() []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < 80<<10; i++ {
		fmt.Fprintf(&b, "Paragraph %d tells how reactor %d cools its core with water drawn from river %d.\n\n", i, i%37, i%11)
	}
	return b.Bytes()
}

// tracedStack is a stack on provider p, with embed batches of 32 chunks
// (the PDF's chunks fit one, the text's take several) and webhooks to local
// receivers allowed.
func tracedStack(t *testing.T, p *tracedProvider) *stack {
	return startStack(t, func(c *config.Config) {
		useProvider(c, p.url)
		c.EmbedBatchSize = 32
		c.WebhookAllowHTTP, c.WebhookAllowPrivate = true, true
	})
}

// accepted uploads content and waits until its job has succeeded; it
// returns the upload's answer and the job.
func accepted(t *testing.T, s *stack, key, name string, content []byte) (teststack.Response, *ragpipe.Job) {
	t.Helper()
	r := s.Upload(t, key, name, content, nil)
	if r.Status != http.StatusAccepted {
		t.Fatalf("upload %s: %d %s", name, r.Status, r.Raw)
	}
	if j := s.WaitJob(t, key, r.Body["job_id"].(string)); j["status"] != "succeeded" {
		t.Fatalf("job of %s: %v", name, j)
	}
	j, _, err := s.DB.JobWithDocument(context.Background(), r.Body["job_id"].(string))
	if err != nil {
		t.Fatal(err)
	}
	return r, j
}

// completedPayloads returns the payloads of the tasks of job jobID that
// the queue retains as completed.
func completedPayloads(t *testing.T, cfg config.Config, jobID string) map[string]map[string]any {
	t.Helper()
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: cfg.RedisAddr, Password: cfg.RedisPassword, DB: cfg.RedisDB})
	defer insp.Close()
	out := map[string]map[string]any{}
	for _, q := range ragpipe.Queues {
		tasks, err := insp.ListCompletedTasks(q, asynq.PageSize(1000))
		if errors.Is(err, asynq.ErrQueueNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, ti := range tasks {
			var p map[string]any
			if err := json.Unmarshal(ti.Payload, &p); err != nil {
				t.Fatal(err)
			}
			if p["job_id"] == jobID {
				out[ti.ID] = p
			}
		}
	}
	return out
}

// requestTrace is the recorded trace of one request: its server span and
// every span of its trace, by name.
type requestTrace struct {
	root  sdktrace.ReadOnlySpan
	named map[string][]sdktrace.ReadOnlySpan
}

// traceOf waits (up to 10 seconds) until the trace of the request answered
// by r holds as many spans as want counts, then checks it holds those spans
// exactly: want maps span names to how many.
func traceOf(t *testing.T, rec *tracetest.SpanRecorder, r teststack.Response, want map[string]int) requestTrace {
	t.Helper()
	requestID := r.Header.Get("X-Request-ID")
	total := 0
	for _, n := range want {
		total += n
	}
	var tr requestTrace
	collect := func() bool {
		tr = requestTrace{named: map[string][]sdktrace.ReadOnlySpan{}}
		spans := rec.Ended()
		for _, s := range spans {
			for _, kv := range s.Attributes() {
				if kv.Key == "ragpipe.request_id" && kv.Value.AsString() == requestID {
					tr.root = s
				}
			}
		}
		if tr.root == nil {
			return false
		}
		n := 0
		for _, s := range spans {
			if s.SpanContext().TraceID() == tr.root.SpanContext().TraceID() {
				tr.named[s.Name()] = append(tr.named[s.Name()], s)
				n++
			}
		}
		return n >= total
	}
	for deadline := time.Now().Add(10 * time.Second); !collect() && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if tr.root == nil {
		t.Fatalf("no span of request %s", requestID)
	}
	got := map[string]int{}
	for name, spans := range tr.named {
		got[name] = len(spans)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("spans of request %s (-want +got):\n%s", requestID, diff)
	}
	if tr.root.Parent().IsValid() || tr.root.SpanKind() != trace.SpanKindServer {
		t.Errorf("request span %q: parent %v, kind %v; want a root server span", tr.root.Name(), tr.root.Parent(), tr.root.SpanKind())
	}
	return tr
}

// parentOf checks that every span named child is the child of a span named
// parent, a different one each when oneEach.
func (tr requestTrace) parentOf(t *testing.T, child, parent string, oneEach bool) {
	t.Helper()
	parents := map[trace.SpanID]bool{}
	for _, p := range tr.named[parent] {
		parents[p.SpanContext().SpanID()] = true
	}
	seen := map[trace.SpanID]bool{}
	for _, c := range tr.named[child] {
		id := c.Parent().SpanID()
		if !parents[id] || (oneEach && seen[id]) {
			t.Errorf("span %q has parent %s; want a span %q (one each: %v)", child, id, parent, oneEach)
		}
		seen[id] = true
	}
}

func attr(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

// TestTracing follows two documents through the API and a worker with
// tracing on: a text document past the inline size through every stage,
// and a PDF that its extract task indexes by itself. Each upload's trace
// holds its request, every task of its job, the provider calls and the
// webhook delivery, each task a child of the request; the trace context
// goes to the provider and is kept with the job and in every task's
// payload. A search is a trace of its own, with its query's embedding.
// With tracing off nothing is recorded or passed on.
func TestTracing(t *testing.T) {
	var rec *tracetest.SpanRecorder
	t.Run("on", func(t *testing.T) {
		rec = testenv.Tracing(t, 1)
		p := newTracedProvider(t)
		s := tracedStack(t, p)
		key := s.Key(t, "acme")
		s.subscribe(t, key, "document.ready")

		big, bigJob := accepted(t, s, key, "reactor.txt", reactorText())
		small, smallJob := accepted(t, s, key, "lppl.pdf", mustRead(t, "../../testdata/lppl.pdf"))
		if bigJob.TotalBatches < 2 {
			t.Fatalf("the text took %d embed batches; want several", bigJob.TotalBatches)
		}
		batches := bigJob.TotalBatches
		bt := traceOf(t, rec, big, map[string]int{
			"POST /v1/documents": 1, "task doc:extract": 1, "task doc:chunk": 1, "task doc:embed": batches,
			"POST /v1/embeddings": batches, "task doc:upsert": 1, "upsert chunks": 1, "task webhook:deliver": 1,
		})
		// Its 8 pages are one pdftotext run.
		st := traceOf(t, rec, small, map[string]int{
			"POST /v1/documents": 1, "task doc:extract": 1, "pdftotext": 1,
			"POST /v1/embeddings": 1, "upsert chunks": 1, "task webhook:deliver": 1,
		})

		for _, c := range []struct {
			tr  requestTrace
			job *ragpipe.Job
		}{{bt, bigJob}, {st, smallJob}} {
			root := c.tr.root
			if attr(root, "http.route") != "/v1/documents" || attr(root, "http.response.status_code") != "202" ||
				attr(root, "ragpipe.tenant.id") != c.job.TenantID {
				t.Errorf("upload span attributes %v", root.Attributes())
			}
			for name, spans := range c.tr.named {
				if !strings.HasPrefix(name, "task ") {
					continue
				}
				c.tr.parentOf(t, name, "POST /v1/documents", false)
				for _, sp := range spans {
					if name != "task webhook:deliver" && (attr(sp, "ragpipe.job.id") != c.job.ID ||
						attr(sp, "ragpipe.document.id") != c.job.DocumentID || attr(sp, "ragpipe.tenant.id") != c.job.TenantID) {
						t.Errorf("span %q attributes %v", name, sp.Attributes())
					}
					if sp.Status().Code != 0 {
						t.Errorf("span %q status %v", name, sp.Status())
					}
				}
			}
			sc := root.SpanContext()
			if want := fmt.Sprintf("00-%s-%s-01", sc.TraceID(), sc.SpanID()); c.job.Trace["traceparent"] != want {
				t.Errorf("job's trace context %v; want traceparent %s", c.job.Trace, want)
			}
			payloads := completedPayloads(t, s.Config, c.job.ID)
			if len(payloads) == 0 {
				t.Errorf("no completed task of job %s", c.job.ID)
			}
			for id, p := range payloads {
				if tc, _ := p["trace"].(map[string]any); tc["traceparent"] != c.job.Trace["traceparent"] {
					t.Errorf("task %s carries trace %v; want the job's %v", id, p["trace"], c.job.Trace)
				}
			}
		}
		bt.parentOf(t, "POST /v1/embeddings", "task doc:embed", true)
		bt.parentOf(t, "upsert chunks", "task doc:upsert", true)
		var got []string
		for _, sp := range bt.named["task doc:embed"] {
			got = append(got, attr(sp, "ragpipe.batch"))
		}
		slices.Sort(got)
		var want []string
		for i := range batches {
			want = append(want, fmt.Sprint(i))
		}
		if !slices.Equal(got, want) {
			t.Errorf("embed tasks' batches %v; want %v", got, want)
		}
		st.parentOf(t, "pdftotext", "task doc:extract", false)
		st.parentOf(t, "POST /v1/embeddings", "task doc:extract", true)
		st.parentOf(t, "upsert chunks", "task doc:extract", true)

		search := s.JSON(t, key, http.MethodPost, "/v1/search", map[string]any{"query": "how does reactor 7 cool its core"})
		if search.Status != http.StatusOK {
			t.Fatalf("search: %d %s", search.Status, search.Raw)
		}
		qt := traceOf(t, rec, search, map[string]int{"POST /v1/search": 1, "POST /v1/embeddings": 1})
		qt.parentOf(t, "POST /v1/embeddings", "POST /v1/search", true)

		// The provider heard of each call's trace: the text's batches, the
		// PDF's one batch, the query.
		traces := map[string]int{}
		for _, h := range p.headers() {
			if f := strings.Split(h, "-"); len(f) == 4 {
				traces[f[1]]++
			}
		}
		wantTraces := map[string]int{bt.root.SpanContext().TraceID().String(): batches,
			st.root.SpanContext().TraceID().String(): 1, qt.root.SpanContext().TraceID().String(): 1}
		if diff := cmp.Diff(wantTraces, traces); diff != "" {
			t.Errorf("traces of the provider's requests (-want +got):\n%s", diff)
		}
	})

	t.Run("off", func(t *testing.T) {
		recorded := len(rec.Ended())
		p := newTracedProvider(t)
		s := tracedStack(t, p)
		key := s.Key(t, "acme")
		_, j := accepted(t, s, key, "reactor.txt", reactorText())
		if r := s.JSON(t, key, http.MethodPost, "/v1/search", map[string]any{"query": "reactor"}); r.Status != http.StatusOK {
			t.Fatalf("search: %d %s", r.Status, r.Raw)
		}
		if j.Trace != nil {
			t.Errorf("job's trace context %v; want none", j.Trace)
		}
		payloads := completedPayloads(t, s.Config, j.ID)
		if len(payloads) < 4 {
			t.Errorf("%d completed tasks of job %s; want every stage's", len(payloads), j.ID)
		}
		for id, p := range payloads {
			if _, ok := p["trace"]; ok {
				t.Errorf("task %s carries trace %v", id, p["trace"])
			}
		}
		for _, h := range p.headers() {
			if h != "" {
				t.Errorf("provider got traceparent %q", h)
			}
		}
		if n := len(rec.Ended()); n != recorded {
			t.Errorf("%d spans recorded with tracing off", n-recorded)
		}
	})
}
