package platform_test

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ragpipe/ragpipe/pkg/config"
)

// cutProxy forwards TCP connections to a target until cut, which closes
// them all and refuses new ones: a process cut off from a service.
type cutProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn // guarded by mu
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln}
	t.Cleanup(p.cut)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { io.Copy(u, c); u.Close() }()
			go func() { io.Copy(c, u); c.Close() }()
		}
	}()
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) cut() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// TestReaperRescuesTasksOfDeadWorker cuts a worker off from Redis while it
// holds a job's embed task, so its lease is no longer renewed, as when the
// worker dies. Asynq would hand the task back 60-120 s later; the reaper of
// another worker enqueues a rescue once the lease has expired (about 30 s),
// and the job succeeds with its chunks once.
func TestReaperRescuesTasksOfDeadWorker(t *testing.T) {
	var first atomic.Bool
	held := make(chan struct{})
	t.Cleanup(func() { close(held) })
	provider := fakeProvider(t, func(w http.ResponseWriter, r *http.Request) bool {
		if first.CompareAndSwap(false, true) {
			select { // the doomed worker's request: never answered
			case <-held:
			case <-r.Context().Done():
			}
			return true
		}
		return false
	})
	s := startStack(t, func(c *config.Config) {
		useProvider(c, provider)
		c.ShutdownGrace = 500 * time.Millisecond
		c.ReaperInterval, c.ReaperStaleAfter = 200*time.Millisecond, time.Second
	})
	s.stopWorker()
	proxy := newCutProxy(t, s.Config.RedisAddr)
	doomed := *s.Stack
	doomed.Config.RedisAddr = proxy.addr()
	doomed.Log = slog.New(slog.DiscardHandler) // it can only complain about Redis
	doomed.StartWorker(t)

	key := s.Key(t, "acme")
	r := s.Upload(t, key, "a.md", textDoc(7), nil)
	jobID := r.Body["job_id"].(string)
	for deadline := time.Now().Add(30 * time.Second); !first.Load(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the doomed worker sent no embedding request")
		}
	}
	proxy.cut()
	cut := time.Now()
	s.StartWorker(t)

	if job := s.WaitJob(t, key, jobID); job["status"] != "succeeded" {
		t.Fatalf("job: %v", job)
	}
	recs := s.recoveries(t, key, jobID)
	if len(recs) != 1 {
		t.Fatalf("%d job.recovered events, want 1", len(recs))
	}
	rescued, _ := recs[0].data["data"].(map[string]any)["tasks"].([]any)
	at, _ := time.Parse(time.RFC3339Nano, recs[0].data["created_at"].(string))
	if len(rescued) != 1 || !strings.HasSuffix(rescued[0].(string), "~rescue1") {
		t.Fatalf("job.recovered tasks %v, want the embed task's first rescue", rescued)
	}
	t.Logf("rescued %s %.1fs after the worker was cut off", rescued[0], at.Sub(cut).Seconds())
	docID := r.Body["document_id"].(string)
	doc := s.JSON(t, key, http.MethodGet, "/v1/documents/"+docID, nil).Body
	chunks := s.JSON(t, key, http.MethodGet, "/v1/documents/"+docID+"/chunks", nil).Body["chunks"].([]any)
	if doc["chunk_count"] != float64(len(chunks)) || len(chunks) != 1 {
		t.Errorf("chunk_count %v, %d chunks listed; want 1", doc["chunk_count"], len(chunks))
	}
}
