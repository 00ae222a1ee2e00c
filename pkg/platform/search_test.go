package platform_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/ragpipe/ragpipe/pkg/config"
)

// TestSearchAPI searches over HTTP with filters, weights, explain and a
// language, lists collections, and checks that bad filters are refused with
// a code naming the field.
func TestSearchAPI(t *testing.T) {
	t.Parallel()
	s := startStackOn(t, 6, nil)
	key := s.Key(t, "searcher")
	upload := func(name, text string, fields map[string]string) string {
		t.Helper()
		r := s.Upload(t, key, name, []byte(text), fields)
		if r.Status != http.StatusAccepted {
			t.Fatalf("upload %s: %d %s", name, r.Status, r.Raw)
		}
		if job := s.WaitJob(t, key, r.Body["job_id"].(string)); job["status"] != "succeeded" {
			t.Fatalf("job of %s: %v", name, job)
		}
		return r.Body["document_id"].(string)
	}
	otters := upload("otters.txt", "Sea otters float on their backs and crack shellfish on their chests.",
		map[string]string{"collection": "animals", "metadata": `{"kind":"mammal","legs":4}`})
	upload("ferns.txt", "Ferns spread spores from the undersides of their fronds.",
		map[string]string{"collection": "plants", "metadata": `{"kind":"plant"}`})
	german := upload("haus.txt", "Die Häuser der Stadt stehen am Fluss.", map[string]string{"language": "german"})

	search := func(body map[string]any) []any {
		t.Helper()
		r := s.JSON(t, key, http.MethodPost, "/v1/search", body)
		if r.Status != http.StatusOK {
			t.Fatalf("search %v: %d %s", body, r.Status, r.Raw)
		}
		return r.Body["results"].([]any)
	}
	res := search(map[string]any{"query": "otters shellfish", "explain": true, "weights": map[string]any{"vector": 0.5}})
	first := res[0].(map[string]any)
	explain, _ := first["explain"].(map[string]any)
	if first["document_id"] != otters || explain == nil || explain["keyword_rank"] != 1.0 || explain["keyword_score"] == nil {
		t.Errorf("first result %v", first)
	}
	if got := search(map[string]any{"query": "their", "mode": "keyword"}); len(got) != 0 {
		t.Errorf("a stop word matched: %v", got)
	}
	for _, tc := range []struct {
		filter map[string]any
		want   int
	}{
		{map[string]any{"metadata": map[string]any{"kind": "mammal"}}, 1},
		{map[string]any{"metadata": map[string]any{"kind": []any{"mammal", "plant"}}}, 2},
		{map[string]any{"metadata": map[string]any{"legs": 4}}, 1},
		{map[string]any{"collection": "plants"}, 1},
		{map[string]any{"created_after": "2000-01-01T00:00:00Z", "created_before": "2999-01-01T00:00:00Z"}, 3},
		{map[string]any{"created_before": "2000-01-01T00:00:00Z"}, 0},
	} {
		body := map[string]any{"query": "otters ferns Häuser", "mode": "vector"}
		for k, v := range tc.filter {
			body[k] = v
		}
		if got := search(body); len(got) != tc.want {
			t.Errorf("filter %v: %d results, want %d", tc.filter, len(got), tc.want)
		}
	}
	// German stemming finds "Häuser" from "Haus".
	if got := search(map[string]any{"query": "Haus", "mode": "keyword", "language": "german"}); len(got) != 1 ||
		got[0].(map[string]any)["document_id"] != german {
		t.Errorf("german search: %v", got)
	}

	for _, tc := range []struct {
		body  map[string]any
		code  string
		field string
	}{
		{map[string]any{"query": "x", "metadata": map[string]any{"kind": map[string]any{"a": 1}}}, "invalid_metadata", "metadata.kind"},
		{map[string]any{"query": "x", "metadata": map[string]any{"kind": []any{}}}, "invalid_metadata", "metadata.kind"},
		{map[string]any{"query": "x", "created_after": "yesterday"}, "invalid_created_after", "created_after"},
		{map[string]any{"query": "x", "weights": map[string]any{"vector": -1}}, "invalid_weights", "weights.vector"},
		{map[string]any{"query": "x", "weights": map[string]any{"vector": 0, "keyword": 0}}, "invalid_weights", "weights"},
		{map[string]any{"query": "x", "language": "klingon"}, "invalid_language", "language"},
		{map[string]any{"query": "x", "collection": "no spaces"}, "invalid_collection", "collection"},
	} {
		r := s.JSON(t, key, http.MethodPost, "/v1/search", tc.body)
		e, _ := r.Body["error"].(map[string]any)
		if r.Status != http.StatusUnprocessableEntity || r.ErrorCode() != tc.code || e["field"] != tc.field {
			t.Errorf("search %v: %d %s; want 422 %s naming %s", tc.body, r.Status, r.Raw, tc.code, tc.field)
		}
	}
	if r := s.Upload(t, key, "x.txt", []byte("words"), map[string]string{"language": "klingon"}); r.Status != http.StatusUnprocessableEntity ||
		r.ErrorCode() != "invalid_language" {
		t.Errorf("upload in an unknown language: %d %s", r.Status, r.Raw)
	}

	r := s.JSON(t, key, http.MethodGet, "/v1/collections", nil)
	want := map[string]any{"collections": []any{
		map[string]any{"name": "", "document_count": 1.0, "chunk_count": 1.0},
		map[string]any{"name": "animals", "document_count": 1.0, "chunk_count": 1.0},
		map[string]any{"name": "plants", "document_count": 1.0, "chunk_count": 1.0},
	}}
	if diff := cmp.Diff(want, r.Body); r.Status != http.StatusOK || diff != "" {
		t.Errorf("collections: %d (-want +got):\n%s", r.Status, diff)
	}
	if r := s.JSON(t, s.Key(t, "other"), http.MethodGet, "/v1/collections", nil); string(r.Raw) != "{\"collections\":[]}\n" {
		t.Errorf("another tenant's collections: %s", r.Raw)
	}
}

// TestOllamaEmbeddingsWithPrefixes ingests and searches with embeddings from
// a server speaking Ollama's native API, and checks that chunks and queries
// reach it with their configured prefixes.
func TestOllamaEmbeddingsWithPrefixes(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var inputs []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Model string `json:"model"`
			Input string `json:"input"`
		}
		if r.URL.Path != "/api/embed" || json.NewDecoder(r.Body).Decode(&req) != nil || req.Model != "e5-small" {
			http.Error(w, `{"error":"bad request"}`, http.StatusBadRequest)
			return
		}
		mu.Lock()
		inputs = append(inputs, req.Input)
		mu.Unlock()
		v := make([]float32, 8)
		for _, c := range strings.ToLower(strings.TrimPrefix(strings.TrimPrefix(req.Input, "query: "), "passage: ")) {
			v[int(c)%8]++
		}
		v[0] += 0.5 // never the zero vector
		json.NewEncoder(w).Encode(map[string]any{"model": req.Model, "embeddings": [][]float32{v}})
	}))
	defer srv.Close()
	s := startStackOn(t, 7, func(c *config.Config) {
		c.EmbedProvider, c.OllamaBaseURL, c.OllamaModel, c.EmbedDimensions = "ollama", srv.URL, "e5-small", 8
		c.EmbedQueryPrefix, c.EmbedPassagePrefix = "query: ", "passage: "
	})
	key := s.Key(t, "ollama")
	r := s.Upload(t, key, "a.txt", []byte("Lighthouses guide ships."), nil)
	if r.Status != http.StatusAccepted {
		t.Fatalf("upload: %d %s", r.Status, r.Raw)
	}
	if job := s.WaitJob(t, key, r.Body["job_id"].(string)); job["status"] != "succeeded" {
		t.Fatalf("job: %v", job)
	}
	res := s.JSON(t, key, http.MethodPost, "/v1/search", map[string]any{"query": "ships", "mode": "vector"})
	if results, _ := res.Body["results"].([]any); res.Status != http.StatusOK || len(results) != 1 {
		t.Fatalf("search: %d %s", res.Status, res.Raw)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"passage: Lighthouses guide ships.", "query: ships"}; !slices.Equal(inputs, want) {
		t.Errorf("the server was asked %q, want %q", inputs, want)
	}
}

// TestRerank reranks the fused results with a server speaking TEI's
// /rerank, and answers the fused order, saying so, when it hangs past the
// timeout or fails.
func TestRerank(t *testing.T) {
	t.Parallel()
	var mode sync.Map // "hang" or "fail" when set
	release := make(chan struct{})
	defer close(release)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Query string   `json:"query"`
			Texts []string `json:"texts"`
		}
		if r.URL.Path != "/rerank" || json.NewDecoder(r.Body).Decode(&req) != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		if _, ok := mode.Load("hang"); ok {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		if _, ok := mode.Load("fail"); ok {
			http.Error(w, `{"error":"overloaded"}`, http.StatusServiceUnavailable)
			return
		}
		// Prefers the texts that mention "owls" the least: the reverse of BM25.
		var out []map[string]any
		for i, text := range req.Texts {
			out = append(out, map[string]any{"index": i, "score": 1 / float64(1+strings.Count(text, "owls"))})
		}
		json.NewEncoder(w).Encode(out)
	}))
	defer srv.Close()
	s := startStackOn(t, 8, func(c *config.Config) {
		c.RerankURL, c.RerankTopN, c.RerankTimeout = srv.URL, 10, 300*time.Millisecond
	})
	key := s.Key(t, "reranked")
	var ids []string
	for _, text := range []string{"owls owls owls hunt at night", "owls owls sleep by day", "owls and other birds of prey"} {
		r := s.Upload(t, key, "a.txt", []byte(text), nil)
		if r.Status != http.StatusAccepted {
			t.Fatalf("upload: %d %s", r.Status, r.Raw)
		}
		s.WaitJob(t, key, r.Body["job_id"].(string))
		ids = append(ids, r.Body["document_id"].(string))
	}
	search := func(body map[string]any) ([]string, map[string]any) {
		t.Helper()
		r := s.JSON(t, key, http.MethodPost, "/v1/search", body)
		if r.Status != http.StatusOK {
			t.Fatalf("search: %d %s", r.Status, r.Raw)
		}
		var got []string
		for _, x := range r.Body["results"].([]any) {
			got = append(got, x.(map[string]any)["document_id"].(string))
		}
		info, _ := r.Body["rerank"].(map[string]any)
		return got, info
	}
	q := map[string]any{"query": "owls", "mode": "keyword", "top_k": 2}
	fused, info := search(map[string]any{"query": "owls", "mode": "keyword", "top_k": 2, "rerank": false})
	if len(fused) != 2 || info != nil {
		t.Fatalf("rerank off: %v %v", fused, info)
	}
	got, info := search(q)
	if want := []string{ids[2], ids[1]}; !slices.Equal(got, want) || slices.Equal(got, fused) || info["applied"] != true {
		t.Errorf("reranked: %v %v; want %v (not the fused %v), applied", got, info, want, fused)
	}
	for _, m := range []string{"hang", "fail"} {
		mode.Store(m, true)
		start := time.Now()
		got, info = search(q)
		mode.Delete(m)
		want := map[string]string{"hang": "timeout", "fail": "provider_error"}[m]
		if !slices.Equal(got, fused) || info["applied"] != false || info["reason"] != want {
			t.Errorf("reranker %s: %v %v; want the fused order, reason %s", m, got, info, want)
		}
		if m == "hang" && time.Since(start) > 2*time.Second {
			t.Errorf("a hanging reranker held the search %s", time.Since(start))
		}
	}
}

// TestTenantVectorIndex checks that a worker gives a tenant past
// RAGPIPE_VECTOR_INDEX_MIN_CHUNKS an HNSW index of its own, and none to a
// smaller one, and that the tenant's searches find the same through it.
func TestTenantVectorIndex(t *testing.T) {
	s := startStack(t, func(c *config.Config) { c.VectorIndexMinChunks = 4 })
	big, small := s.Key(t, "big"), s.Key(t, "small")
	texts := []string{
		"Sea otters float on their backs and crack shellfish on their chests.",
		"Ferns spread spores from the undersides of their fronds.",
		"Glaciers carve valleys as they creep downhill under their own weight.",
		"Bees dance to tell the hive where the flowers are.",
	}
	for i, text := range texts {
		for _, key := range []string{big, small} {
			if key == small && i > 1 {
				continue
			}
			r := s.Upload(t, key, fmt.Sprintf("t%d.txt", i), []byte(text), nil)
			if r.Status != http.StatusAccepted {
				t.Fatalf("upload: %d %s", r.Status, r.Raw)
			}
			if job := s.WaitJob(t, key, r.Body["job_id"].(string)); job["status"] != "succeeded" {
				t.Fatalf("job: %v", job)
			}
		}
	}
	search := func(key string) []any {
		t.Helper()
		r := s.JSON(t, key, http.MethodPost, "/v1/search", map[string]any{"query": "otters crack shellfish", "mode": "vector", "top_k": 2})
		if r.Status != http.StatusOK {
			t.Fatalf("search: %d %s", r.Status, r.Raw)
		}
		return r.Body["results"].([]any)
	}
	before := search(big)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.Config.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var indexed []string
	waitFor(t, "a vector index", func() bool {
		rows, _ := conn.Query(ctx, `SELECT t.name FROM tenant_vector_indexes v JOIN tenants t ON t.id = v.tenant_id`)
		if indexed, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			t.Fatal(err)
		}
		return len(indexed) > 0
	})
	if !slices.Equal(indexed, []string{"big"}) {
		t.Errorf("tenants with a vector index: %v; want only big", indexed)
	}
	m := s.Do(t, "", http.MethodGet, "/metrics", "", nil)
	for _, line := range []string{`ragpipe_vector_indexes{state="ready"} 1`, `ragpipe_vector_indexes{state="due"} 0`} {
		if !strings.Contains(string(m.Raw), line+"\n") {
			t.Errorf("/metrics lacks %s", line)
		}
	}
	after := search(big)
	if len(after) != 2 || !cmp.Equal(before, after) {
		t.Errorf("search through the index: %v; before it: %v", after, before)
	}
	if got := search(small); len(got) != 2 {
		t.Errorf("small tenant's search: %v", got)
	}
}
