package chaos

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ragpipe/ragpipe/internal/fakeopenai"
)

// Fault modes of the fake embedding provider.
const (
	embedOK   = ""
	embed500  = "500"
	embed429  = "429"
	embedHang = "hang"
)

// retryAfter is what the fake sends with a 429.
const retryAfter = 2 * time.Second

// embedLatency is how long the fake takes to answer a good request. Real
// providers take tens to hundreds of milliseconds; without it the embed
// stage would be over before a fault could reach it.
const embedLatency = 40 * time.Millisecond

// fakeEmbedder speaks OpenAI's POST /v1/embeddings. Each text's vector is a
// pure function of the text (vectorFor), so any run of the same documents
// stores the same vectors. A fault mode, while set, applies to every request.
type fakeEmbedder struct {
	dim int

	mu       sync.Mutex
	mode     string                 // guarded by mu
	release  chan struct{}          // guarded by mu; closed when a hang window ends
	counts   map[string]int         // guarded by mu; answers by kind
	told429  map[[32]byte]time.Time // guarded by mu; when a request was told to come back
	early429 int                    // guarded by mu; repeats of a 429'd request before Retry-After
	waits    []time.Duration        // guarded by mu; how long after a 429 the request came back
	seen     map[[32]byte]int       // guarded by mu; requests by content, until freeze
	unique   map[[32]byte]bool      // guarded by mu; contents one document alone sends
}

// freeze marks the request contents seen exactly once so far as unique. Only
// a 429 to such a request is followed up: copies of one PDF send identical
// batches, and one copy's request is not another's retry.
func (f *fakeEmbedder) freeze() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unique = map[[32]byte]bool{}
	for k, n := range f.seen {
		if n == 1 {
			f.unique[k] = true
		}
	}
	f.seen = nil
}

func newFakeEmbedder(dim int) *fakeEmbedder {
	return &fakeEmbedder{dim: dim, counts: map[string]int{}, told429: map[[32]byte]time.Time{},
		seen: map[[32]byte]int{}, release: make(chan struct{})}
}

// setMode switches the fault mode; embedOK ends any fault.
func (f *fakeEmbedder) setMode(mode string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mode == embedHang && mode != embedHang {
		close(f.release)
		f.release = make(chan struct{})
	}
	f.mode = mode
}

// vectorFor is the embedding of text: unit length, seeded by its SHA-256.
func vectorFor(text string, dim int) []float32 {
	h := sha256.Sum256([]byte(text))
	r := rand.New(rand.NewPCG(binary.LittleEndian.Uint64(h[:8]), binary.LittleEndian.Uint64(h[8:16])))
	v := make([]float32, dim)
	var n float64
	for i := range v {
		x := r.Float64()*2 - 1
		v[i] = float32(x)
		n += x * x
	}
	n = math.Sqrt(n)
	for i := range v {
		v[i] = float32(float64(v[i]) / n)
	}
	return v
}

func (f *fakeEmbedder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/embeddings") {
		http.NotFound(w, r)
		return
	}
	var req struct {
		Model string   `json:"model"`
		Input []string `json:"input"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, `{"error":{"message":"bad json"}}`, http.StatusBadRequest)
		return
	}
	key := sha256.Sum256([]byte(strings.Join(req.Input, "\x00")))
	f.mu.Lock()
	mode, release := f.mode, f.release
	if f.seen != nil {
		f.seen[key]++
	}
	if at, ok := f.told429[key]; ok {
		wait := time.Since(at)
		f.waits = append(f.waits, wait)
		if wait < retryAfter {
			f.early429++
		}
		delete(f.told429, key)
	}
	if mode == embed429 && f.unique[key] {
		f.told429[key] = time.Now()
	}
	f.counts[map[string]string{embedOK: "ok", embed500: "500", embed429: "429", embedHang: "hang"}[mode]]++
	f.mu.Unlock()

	switch mode {
	case embed500:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		w.Write([]byte(`{"error":{"message":"chaos: internal error","type":"server_error"}}`))
		return
	case embed429:
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", strconv.Itoa(int(retryAfter/time.Second)))
		w.WriteHeader(http.StatusTooManyRequests)
		w.Write([]byte(`{"error":{"message":"chaos: rate limited","type":"rate_limit_error"}}`))
		return
	case embedHang:
		select {
		case <-r.Context().Done():
			return
		case <-release:
		}
	default:
		select {
		case <-r.Context().Done():
			return
		case <-time.After(embedLatency):
		}
	}
	vecs := make([][]float32, len(req.Input))
	for i, in := range req.Input {
		vecs[i] = vectorFor(in, f.dim)
	}
	fakeopenai.WriteEmbeddings(w, req.Model, vecs, 1)
}

// stats returns the answers by kind and the 429 follow-up figures.
func (f *fakeEmbedder) stats() (counts map[string]int, early429 int, waits []time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	counts = map[string]int{}
	for k, v := range f.counts {
		counts[k] = v
	}
	return counts, f.early429, append([]time.Duration(nil), f.waits...)
}
