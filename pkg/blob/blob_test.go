package blob_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"sync"
	"testing"
	"testing/iotest"

	"github.com/ragpipe/ragpipe/internal/testenv"
	"github.com/ragpipe/ragpipe/pkg/blob"
)

// payloadHashes holds the x-amz-content-sha256 header of every PUT and POST
// that passed the proxy in front of the object store.
type payloadHashes struct {
	mu     sync.Mutex
	hashes []string
}

func (p *payloadHashes) seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.hashes)
}

// proxiedStore is a store on a fresh bucket whose requests pass through a
// recording proxy (the signature covers the proxy's host, which the proxy
// passes on).
func proxiedStore(t *testing.T) (*blob.Store, *payloadHashes) {
	t.Helper()
	bucket, _ := testenv.Bucket(t)
	cfg := testenv.Config(t)
	target, err := url.Parse(cfg.S3Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	rec := &payloadHashes{}
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut || r.Method == http.MethodPost {
			rec.mu.Lock()
			rec.hashes = append(rec.hashes, r.Header.Get("X-Amz-Content-Sha256"))
			rec.mu.Unlock()
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return blob.New(blob.Config{Endpoint: srv.URL, Region: cfg.S3Region, Bucket: bucket,
		AccessKey: cfg.S3AccessKey, SecretKey: cfg.S3SecretKey}), rec
}

func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, 3))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestRoundTrip stores bodies on both of Upload's paths (one request, and a
// multipart upload past the 5 MiB part size) and through Put, reads each
// back byte for byte, and checks that no body was hashed for its signature.
func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, rec := proxiedStore(t)
	small, large, put := randomBytes(1000, 1), randomBytes(12<<20+17, 2), randomBytes(300, 3)
	// Bodies that can only be read, as a request's is: no Seek, no ReadAt.
	if err := s.Upload(ctx, "a/small", struct{ io.Reader }{bytes.NewReader(small)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Upload(ctx, "a/large", struct{ io.Reader }{bytes.NewReader(large)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "b/put", put); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string][]byte{"a/small": small, "a/large": large, "b/put": put} {
		got, err := s.Get(ctx, key)
		if err != nil {
			t.Fatalf("get %s: %v", key, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: read back %d bytes that differ from the %d stored", key, len(got), len(want))
		}
	}
	// small: 1 PUT; large: create, 3 parts, complete; put: 1 PUT.
	hashes := rec.seen()
	if len(hashes) != 7 {
		t.Fatalf("%d requests with a body, want 7: %q", len(hashes), hashes)
	}
	for i, h := range hashes {
		if h != "UNSIGNED-PAYLOAD" {
			t.Errorf("request %d signed its body as %q, want UNSIGNED-PAYLOAD", i, h)
		}
	}
}

// TestUploadBrokenBody checks that a body failing after the first part
// leaves no object behind (the multipart upload is aborted) and returns
// the body's error.
func TestUploadBrokenBody(t *testing.T) {
	ctx := context.Background()
	s, _ := proxiedStore(t)
	boom := errors.New("client went away")
	body := io.MultiReader(bytes.NewReader(randomBytes(6<<20, 4)), iotest.ErrReader(boom))
	if err := s.Upload(ctx, "broken", body); !errors.Is(err, boom) {
		t.Fatalf("upload of a broken body: %v, want %v", err, boom)
	}
	if _, err := s.Get(ctx, "broken"); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("get after a broken upload: %v, want ErrNotFound", err)
	}
}
