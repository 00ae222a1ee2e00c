package platform_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ragpipe/ragpipe/internal/fakeopenai"
	"github.com/ragpipe/ragpipe/internal/teststack"
	"github.com/ragpipe/ragpipe/pkg/config"
	"github.com/ragpipe/ragpipe/pkg/embed"
	"github.com/ragpipe/ragpipe/pkg/platform"
)

// reembedDocs are the documents of TestReembedOnModelChange, each with a
// query that finds it by vector search alone.
var reembedDocs = []struct{ name, text, query string }{
	{"volcano.txt", "Volcanoes erupt molten basalt lava from magma chambers deep below the crust.", "basalt lava magma"},
	{"orchard.txt", "The orchard grows apples, pears and quinces along the southern terraces.", "apples pears quinces"},
	{"harbour.txt", "Container ships dock at the harbour cranes to unload steel and timber cargo.", "harbour cranes cargo"},
}

// TestReembedOnModelChange ingests documents with the default embedder,
// restarts the API and a worker with another provider and dimensions, and
// follows the background re-embedding: searches stay on the old space until
// it is done, a worker restart mid-way resumes it, a document ingested
// meanwhile lands in the new space, and vector search then runs on the new
// vectors.
func TestReembedOnModelChange(t *testing.T) {
	s := startStack(t, func(c *config.Config) { c.EmbedBatchSize = 1 })
	key := s.Key(t, "acme")
	for _, d := range reembedDocs {
		r := s.Upload(t, key, d.name, []byte(d.text), nil)
		if r.Status != http.StatusAccepted {
			t.Fatalf("upload %s: %d %s", d.name, r.Status, r.Raw)
		}
		s.WaitJob(t, key, r.Body["job_id"].(string))
	}
	top := func(st *teststack.Stack, query, mode string) string {
		t.Helper()
		r := st.JSON(t, key, "POST", "/v1/search", map[string]any{"query": query, "mode": mode, "top_k": 1})
		if r.Status != http.StatusOK {
			t.Fatalf("search %q: %d %s", query, r.Status, r.Raw)
		}
		res := r.Body["results"].([]any)
		if len(res) == 0 {
			return ""
		}
		return res[0].(map[string]any)["text"].(string)
	}
	status := func(st *teststack.Stack) map[string]any {
		t.Helper()
		r := st.JSON(t, key, "GET", "/v1/embedding", nil)
		if r.Status != http.StatusOK {
			t.Fatalf("GET /v1/embedding: %d %s", r.Status, r.Raw)
		}
		return r.Body
	}
	if sp := status(s.Stack)["space"].(map[string]any); sp["provider"] != "hashing" || sp["dimensions"] != 384.0 {
		t.Fatalf("space before the change: %v", sp)
	}
	s.stopWorker()

	// The new provider: 64-dimensional hashing vectors over HTTP, each
	// request held until the test lets one through.
	h := embed.NewHashing(64)
	pass := make(chan struct{}, 100)
	var served atomic.Int64
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Input []string `json:"input"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if len(req.Input) > 1 || req.Input[0] != "harbour cranes cargo" { // queries pass at once
			select {
			case <-pass:
			case <-r.Context().Done():
				return
			}
		}
		served.Add(1)
		vecs, _ := h.Embed(r.Context(), req.Input)
		fakeopenai.WriteEmbeddings(w, "fake-64", vecs, len(req.Input))
	}))
	t.Cleanup(provider.Close)
	next := *s.Stack
	next.Config.EmbedProvider, next.Config.OpenAIBaseURL, next.Config.OpenAIAPIKey = "openai", provider.URL+"/v1", "test"
	next.Config.OpenAIModel, next.Config.EmbedDimensions = "fake-64", 64
	ctx, cancel := context.WithCancel(context.Background())
	api, err := platform.NewAPI(ctx, next.Config, s.Log)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(func() {
		cancel()
		srv.Close()
		api.Close()
	})
	next.URL = srv.URL

	stop := next.StartWorker(t)
	pass <- struct{}{} // one chunk re-embedded
	waitFor(t, "one chunk re-embedded", func() bool {
		m, _ := status(&next)["migration"].(map[string]any)
		return m != nil && m["embedded_chunks"] == 1.0
	})
	m := status(&next)["migration"].(map[string]any)
	if m["state"] != "running" || m["total_chunks"] != 3.0 || m["target"].(map[string]any)["dimensions"] != 64.0 {
		t.Fatalf("migration mid-way: %v", m)
	}
	// Until the switch, searches embed queries with the old space's embedder.
	for _, d := range reembedDocs {
		if got := top(&next, d.query, "vector"); got != d.text {
			t.Errorf("vector search %q mid-way = %q; want %q", d.query, got, d.text)
		}
	}
	stop() // a restart mid-way
	stop = next.StartWorker(t)

	// A document ingested meanwhile is embedded in the new space: keyword
	// search finds it at once, vector search after the switch.
	up := next.Upload(t, key, "glacier.txt", []byte("Glaciers carve fjords as compacted ice flows slowly downhill."), nil)
	if up.Status != http.StatusAccepted {
		t.Fatalf("upload during the migration: %d %s", up.Status, up.Raw)
	}
	for range 3 {
		pass <- struct{}{} // the two chunks left, and the new document
	}
	next.WaitJob(t, key, up.Body["job_id"].(string))
	waitFor(t, "the switch", func() bool {
		m, _ := status(&next)["migration"].(map[string]any)
		return m["state"] == "succeeded"
	})
	st := status(&next)
	if sp := st["space"].(map[string]any); sp["provider"] != "openai" || sp["dimensions"] != 64.0 || sp["model"] != "fake-64" {
		t.Errorf("space after the switch: %v", sp)
	}
	if m := st["migration"].(map[string]any); m["progress"] != 1.0 || m["finished_at"] == nil || m["error"] != nil {
		t.Errorf("migration at the end: %v", m)
	}
	before := served.Load()
	if got := top(&next, "harbour cranes cargo", "vector"); got != reembedDocs[2].text {
		t.Errorf("vector search after the switch = %q", got)
	}
	if served.Load() != before+1 {
		t.Errorf("the query was not embedded by the new provider (%d requests before, %d after)", before, served.Load())
	}
	if got := top(&next, "fjords glaciers", "keyword"); got == "" {
		t.Error("keyword search misses the document ingested during the migration")
	}
	conn, err := pgx.Connect(context.Background(), s.Config.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var left int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM chunks c JOIN tenants t ON t.id = c.tenant_id
		WHERE c.space_id <> t.embedding_space_id`).Scan(&left); err != nil || left != 0 {
		t.Errorf("chunks outside their tenant's space: %d, %v", left, err)
	}
	stop()
}

// waitFor polls cond for up to 30 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
