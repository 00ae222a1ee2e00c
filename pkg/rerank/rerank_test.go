package rerank

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// server answers as TEI or a Cohere-style API would, scoring each text by
// how many of the query's words it holds, and records what it was sent.
func server(t *testing.T, api string, got *map[string]any) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		want := map[string]string{TEI: "/rerank", Cohere: "/v1/rerank"}[api]
		if r.URL.Path != want || r.Header.Get("Authorization") != "Bearer k" {
			t.Errorf("%s request to %s, auth %q", api, r.URL.Path, r.Header.Get("Authorization"))
		}
		var req map[string]any
		json.NewDecoder(r.Body).Decode(&req)
		*got = req
		key := map[string]string{TEI: "texts", Cohere: "documents"}[api]
		var out []map[string]any
		for i, text := range req[key].([]any) {
			n := 0
			for _, w := range strings.Fields(req["query"].(string)) {
				if strings.Contains(text.(string), w) {
					n++
				}
			}
			out = append(out, map[string]any{"index": i, map[string]string{TEI: "score", Cohere: "relevance_score"}[api]: float64(n)})
		}
		slices.Reverse(out) // servers answer best first, not in input order
		if api == Cohere {
			json.NewEncoder(w).Encode(map[string]any{"id": "x", "results": out, "meta": map[string]any{}})
			return
		}
		json.NewEncoder(w).Encode(out)
	}))
}

func TestRerank(t *testing.T) {
	t.Parallel()
	for _, api := range []string{TEI, Cohere} {
		var got map[string]any
		srv := server(t, api, &got)
		defer srv.Close()
		c, err := New(Config{BaseURL: srv.URL + "/", API: api, Model: "rerank-v3", APIKey: "k"})
		if err != nil {
			t.Fatal(err)
		}
		scores, err := c.Rerank(context.Background(), "red fox", []string{"a red fox", "a dog", "red"})
		if err != nil {
			t.Fatalf("%s: %v", api, err)
		}
		if !slices.Equal(scores, []float64{2, 0, 1}) {
			t.Errorf("%s: scores %v", api, scores)
		}
		if api == Cohere && (got["model"] != "rerank-v3" || got["top_n"] != 3.0) {
			t.Errorf("cohere request %v", got)
		}
	}
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode([]map[string]any{{"index": 0, "score": 1}})
	}))
	defer bad.Close()
	c, _ := New(Config{BaseURL: bad.URL, API: TEI})
	if _, err := c.Rerank(context.Background(), "q", []string{"a", "b"}); err == nil {
		t.Error("an answer missing a score was accepted")
	}
	if _, err := New(Config{API: "magic"}); err == nil {
		t.Error("an unknown API was accepted")
	}
}
