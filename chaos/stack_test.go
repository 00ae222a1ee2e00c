package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	s3Access = "chaos-access"
	s3Secret = "chaos-secret-key"
	embedDim = 32
)

// stack is everything the suite runs: its services, the fake provider, the
// API and the workers, each supervised (restarted when it exits, as an
// orchestrator would).
type stack struct {
	root    string
	bin     string
	pg      *pgServer
	redis   *redisServer
	s3      *s3Server
	s3proxy *proxy
	embed   *fakeEmbedder
	embedTS *httptest.Server
	apiURL  string
	api     *supervised
	workers []*supervised
	key     string
}

// supervised is a ragpipe process the suite keeps running: when it exits by
// itself, it is started again after a second (and the exit is counted); a
// kill by the suite is followed by a restart after the delay the suite asks.
type supervised struct {
	proc
	mu         sync.Mutex
	held       bool // guarded by mu; the suite holds it down (killed, restart pending)
	unexpected int  // guarded by mu; exits the suite did not cause
	stopping   bool // guarded by mu
	wg         sync.WaitGroup
}

func (s *supervised) run(t *testing.T) {
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
	s.wg.Go(func() {
		for {
			_, done := s.running()
			<-done
			err, killed := s.lastExit()
			s.mu.Lock()
			if s.stopping {
				s.mu.Unlock()
				return
			}
			if !killed {
				s.unexpected++
				t.Logf("chaos: %s exited by itself (%v); restarting", s.name, err)
			}
			s.mu.Unlock()
			time.Sleep(time.Second)
			for {
				s.mu.Lock()
				held, stopping := s.held, s.stopping
				s.mu.Unlock()
				if stopping {
					return
				}
				if !held {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if err := s.start(); err != nil {
				t.Errorf("restart %s: %v", s.name, err)
				return
			}
		}
	})
}

// killFor SIGKILLs the process, calls dead once it is gone, and keeps it
// down for d.
func (s *supervised) killFor(d time.Duration, dead func()) {
	s.mu.Lock()
	s.held = true
	s.mu.Unlock()
	s.kill()
	dead()
	time.Sleep(d)
	s.mu.Lock()
	s.held = false
	s.mu.Unlock()
}

func (s *supervised) shutdown() {
	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
	s.stop(syscall.SIGTERM, 15*time.Second)
	s.wg.Wait()
}

func (s *supervised) unexpectedExits() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unexpected
}

// buildBinaries builds api, worker and ragctl from src into dir.
func buildBinaries(t *testing.T, src, dir string) {
	t.Helper()
	start := time.Now()
	cmd := exec.Command("go", "build", "-trimpath", "-o", dir+"/", "./cmd/api", "./cmd/worker", "./cmd/ragctl")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build binaries from %s: %v\n%s", src, err, out)
	}
	t.Logf("chaos: built binaries from %s in %s", src, time.Since(start).Round(time.Millisecond))
}

// binPrefix names the suite's copies of the binaries, so that someone
// stopping their own `bin/worker` by name (pkill worker) leaves the suite's
// processes alone.
const binPrefix = "ragpipe-chaos-"

// installBinaries copies api, worker and ragctl from dir to dst under the
// suite's names.
func installBinaries(t *testing.T, dir, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"api", "worker", "ragctl"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("binaries: %v (RAGPIPE_CHAOS_BIN=%s)", err, dir)
		}
		if err := os.WriteFile(filepath.Join(dst, binPrefix+name), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// env is the environment of every ragpipe process: ours, without any
// RAGPIPE_ setting of the caller's, plus the suite's settings.
func (s *stack) env(httpAddr string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RAGPIPE_") {
			env = append(env, kv)
		}
	}
	return append(env,
		"RAGPIPE_HTTP_ADDR="+httpAddr,
		"RAGPIPE_LOG_FORMAT=json",
		"RAGPIPE_LOG_LEVEL=info",
		"RAGPIPE_DATABASE_URL="+s.pg.url,
		"RAGPIPE_REDIS_ADDR="+s.redis.addr,
		"RAGPIPE_S3_ENDPOINT=http://"+s.s3proxy.addr(),
		"RAGPIPE_S3_BUCKET=chaos",
		"RAGPIPE_S3_ACCESS_KEY="+s3Access,
		"RAGPIPE_S3_SECRET_KEY="+s3Secret,
		"RAGPIPE_RATE_LIMIT_PER_MINUTE=1000000",
		"RAGPIPE_SHUTDOWN_GRACE=2s",
		"RAGPIPE_WORKER_CONCURRENCY=4",
		// A killed worker's jobs wait about 30 s for the reaper's rescue;
		// with the default of 4, killing every worker would hold up all of
		// the one tenant's jobs meanwhile.
		"RAGPIPE_TENANT_MAX_INFLIGHT=16",
		"RAGPIPE_CHUNK_SIZE=100", // tokens (about 400 characters); as characters, still many chunks
		"RAGPIPE_CHUNK_OVERLAP=15",
		"RAGPIPE_EMBED_PROVIDER=openai",
		"RAGPIPE_OPENAI_BASE_URL="+s.embedTS.URL+"/v1",
		"RAGPIPE_OPENAI_EMBED_MODEL=chaos-embed",
		fmt.Sprintf("RAGPIPE_EMBED_DIMENSIONS=%d", embedDim),
		"RAGPIPE_EMBED_BATCH_SIZE=4",
		"RAGPIPE_EMBED_TIMEOUT=2s",
		"RAGPIPE_REAPER_INTERVAL=1s",
		"RAGPIPE_REAPER_STALE_AFTER=3s",
	)
}

// startStack starts the services, the API and n workers under root.
func startStack(t *testing.T, root, bin string, workers int) *stack {
	t.Helper()
	s := &stack{root: root, bin: bin}
	var err error
	if s.pg, err = startPostgres(root); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.pg.crash)
	if s.redis, err = startRedis(root); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.redis.kill() })
	if s.s3, err = startS3(root, s3Access, s3Secret); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.s3.kill() })
	if s.s3proxy, err = newProxy(s.s3.addr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.s3proxy.close)
	s.embed = newFakeEmbedder(embedDim)
	s.embedTS = httptest.NewServer(s.embed)
	t.Cleanup(func() { s.embed.setMode(embedOK); s.embedTS.Close() })

	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	s.apiURL = "http://" + addr
	s.api = &supervised{proc: proc{name: "api", path: filepath.Join(bin, binPrefix+"api"), env: s.env(addr),
		logPath: filepath.Join(root, "logs", "api.log")}}
	s.api.run(t)
	t.Cleanup(s.api.shutdown)
	if err := waitFor(60*time.Second, func() error {
		res, err := http.Get(s.apiURL + "/readyz")
		if err != nil {
			return err
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz: %s", res.Status)
		}
		return nil
	}); err != nil {
		t.Fatalf("api: %v (log %s)", err, s.api.logPath)
	}
	for i := range workers {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		w := &supervised{proc: proc{name: fmt.Sprintf("worker-%d", i+1), path: filepath.Join(bin, binPrefix+"worker"),
			env: s.env(fmt.Sprintf("127.0.0.1:%d", port)), logPath: filepath.Join(root, "logs", fmt.Sprintf("worker-%d.log", i+1))}}
		w.run(t)
		t.Cleanup(w.shutdown)
		s.workers = append(s.workers, w)
	}

	cmd := exec.Command(filepath.Join(bin, binPrefix+"ragctl"), "admin", "create-key", "--tenant", "chaos")
	cmd.Env = s.env("127.0.0.1:0")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ragctl admin create-key: %v\n%s", err, out)
	}
	lines := strings.Fields(strings.TrimSpace(string(out)))
	s.key = lines[len(lines)-1]
	return s
}

// apiDo sends one request with the suite's key.
func (s *stack) apiDo(ctx context.Context, method, path, contentType string, body []byte, header map[string]string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, s.apiURL+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+s.key)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, b, err
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

// getJSON GETs path into v, retrying transport errors and 5xx for up to a minute.
func (s *stack) getJSON(path string, v any) error {
	var last error
	for range 60 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		status, b, err := s.apiDo(ctx, http.MethodGet, path, "", nil, nil)
		cancel()
		switch {
		case err != nil:
			last = err
		case status >= 500 || status == http.StatusTooManyRequests:
			last = fmt.Errorf("GET %s: %d %s", path, status, b)
		case status != http.StatusOK:
			return fmt.Errorf("GET %s: %d %s", path, status, b)
		default:
			return json.Unmarshal(b, v)
		}
		time.Sleep(time.Second)
	}
	return last
}

// multipartBody is an upload of one file into collection.
func multipartBody(filename string, content []byte, collection string) ([]byte, string) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("collection", collection)
	fw, _ := mw.CreateFormFile("file", filename)
	fw.Write(content)
	mw.Close()
	return buf.Bytes(), mw.FormDataContentType()
}
