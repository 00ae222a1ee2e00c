package embed

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
)

// fakeOllama answers POST /api/embed as Ollama does: {"model", "input"} in,
// {"model", "embeddings": [[...]]} out, the vector derived from the input.
// status, when set, is answered instead, with Ollama's error body.
type fakeOllama struct {
	t      *testing.T
	dim    int
	status int

	mu     sync.Mutex
	inputs []string // guarded by mu
}

func (f *fakeOllama) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/api/embed" {
		f.t.Errorf("request %s %s, want POST /api/embed", r.Method, r.URL.Path)
		http.NotFound(w, r)
		return
	}
	var req struct {
		Model string `json:"model"`
		Input string `json:"input"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Model != "nomic-embed-text" {
		f.t.Errorf("request %+v, %v", req, err)
	}
	f.mu.Lock()
	f.inputs = append(f.inputs, req.Input)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	if f.status != 0 {
		w.WriteHeader(f.status)
		json.NewEncoder(w).Encode(map[string]string{"error": `model "nomic-embed-text" not found, try pulling it first`})
		return
	}
	json.NewEncoder(w).Encode(map[string]any{"model": req.Model, "embeddings": [][]float32{vectorFor(req.Input, f.dim)},
		"total_duration": 14143917, "load_duration": 1019500, "prompt_eval_count": 8})
}

func TestOllama(t *testing.T) {
	t.Parallel()
	newOllama := func(f *fakeOllama, dim int) (*Ollama, *fakeOllama) {
		srv := httptest.NewServer(f)
		t.Cleanup(srv.Close)
		o, err := NewOllama(OllamaConfig{BaseURL: srv.URL, Model: "nomic-embed-text", Dimensions: dim})
		if err != nil {
			t.Fatal(err)
		}
		return o, f
	}
	ctx := context.Background()

	o, f := newOllama(&fakeOllama{t: t, dim: 4}, 4)
	texts := []string{"a", "three", "fifteen letters"}
	vecs, err := WithPrefix(o, "passage: ").Embed(ctx, texts)
	if err != nil {
		t.Fatal(err)
	}
	for i, text := range texts {
		if !slices.Equal(vecs[i], vectorFor("passage: "+text, 4)) {
			t.Errorf("vector %d = %v, want that of %q", i, vecs[i], "passage: "+text)
		}
	}
	if want := []string{"passage: a", "passage: three", "passage: fifteen letters"}; !slices.Equal(f.inputs, want) {
		t.Errorf("inputs %q, want %q", f.inputs, want)
	}

	for _, tc := range []struct {
		name      string
		f         *fakeOllama
		dim       int
		status    int
		permanent bool
	}{
		{"model not pulled", &fakeOllama{t: t, dim: 4, status: http.StatusNotFound}, 4, http.StatusNotFound, true},
		{"server error", &fakeOllama{t: t, dim: 4, status: http.StatusInternalServerError}, 4, http.StatusInternalServerError, false},
		{"wrong dimensions", &fakeOllama{t: t, dim: 3}, 4, http.StatusOK, true},
	} {
		o, _ := newOllama(tc.f, tc.dim)
		_, err := o.Embed(ctx, []string{"x"})
		var pe *ProviderError
		if !errors.As(err, &pe) || pe.StatusCode != tc.status || pe.Permanent != tc.permanent {
			t.Errorf("%s: %v; want a ProviderError, HTTP %d, permanent %t", tc.name, err, tc.status, tc.permanent)
		}
	}
	down, err := NewOllama(OllamaConfig{BaseURL: "http://127.0.0.1:1", Model: "nomic-embed-text", Dimensions: 4})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := down.Embed(ctx, []string{"x"}); err == nil || IsPermanent(err) {
		t.Errorf("server down: %v; want a transient error", err)
	}
	if _, err := NewOllama(OllamaConfig{BaseURL: "http://x", Dimensions: 4}); err == nil {
		t.Error("no model accepted")
	}
}
