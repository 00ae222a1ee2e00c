package platform_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ragpipe/ragpipe/internal/testenv"
)

// paddedPDF returns a one-page PDF whose page says text, padded to about
// size bytes by a stream no page uses (as embedded fonts and images pad
// real PDFs), with a correct cross-reference table.
func paddedPDF(text string, size int, seed uint64) []byte {
	pad := make([]byte, size)
	r := rand.New(rand.NewPCG(seed, 11))
	for i := range pad {
		pad[i] = byte(r.Uint32())
	}
	stream := func(data string) string {
		return fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", len(data), data)
	}
	objects := []string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
		stream("BT /F1 12 Tf 72 700 Td (" + text + ") Tj ET"),
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
		stream(string(pad)),
	}
	var b bytes.Buffer
	b.WriteString("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
	offsets := make([]int, len(objects))
	for i, o := range objects {
		offsets[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objects)+1)
	for _, o := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", o)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(objects)+1, xref)
	return b.Bytes()
}

// apiProcess builds cmd/api and runs it as a process of its own on the
// services of s, with the per-key rate limit raised, until the benchmark
// ends; it returns the API's base URL and its PID.
func apiProcess(b *testing.B, s *stack) (string, int) {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "api")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/api").CombinedOutput(); err != nil {
		b.Fatalf("build the API: %v\n%s", err, out)
	}
	addr := testenv.FreeAddr(b)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "RAGPIPE_HTTP_ADDR="+addr, "RAGPIPE_DATABASE_URL="+s.Config.DatabaseURL,
		"RAGPIPE_REDIS_DB="+strconv.Itoa(s.Config.RedisDB), "RAGPIPE_S3_BUCKET="+s.Config.S3Bucket,
		"RAGPIPE_RATE_LIMIT_PER_MINUTE=1000000", "RAGPIPE_LOG_LEVEL=warn", "RAGPIPE_AUTO_MIGRATE=false")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	url := "http://" + addr
	for deadline := time.Now().Add(30 * time.Second); ; {
		if r, err := http.Get(url + "/readyz"); err == nil {
			r.Body.Close()
			if r.StatusCode == http.StatusOK {
				return url, cmd.Process.Pid
			}
		}
		if time.Now().After(deadline) {
			b.Fatal("the API process is not ready after 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// peakRSS is the peak resident set (VmHWM) in MiB of the process pid.
func peakRSS(b *testing.B, pid int) float64 {
	b.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return float64(kb) / 1024
		}
	}
	b.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

// BenchmarkUploadsUnderLoad measures uploads as 50 clients see them when
// they all send 1 MB PDFs at once, 100 uploads in all, to one API process
// of its own with one worker (the defaults, the per-key rate limit raised):
// the time to the 202 at the median and p99, as the client and as the
// server (X-Response-Time) measure it, and the API process's peak RSS;
// every job must succeed and nothing be refused.
func BenchmarkUploadsUnderLoad(b *testing.B) {
	const clients, uploads, size = 50, 100, 1 << 20
	s := startStack(b, nil)
	api := *s.Stack
	var pid int
	api.URL, pid = apiProcess(b, s)
	key := s.Key(b, "bulk")
	conn, err := pgx.Connect(context.Background(), s.Config.DatabaseURL)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(context.Background())
	var client, server []time.Duration
	var mu sync.Mutex
	b.ResetTimer()
	for i := range b.N {
		pdfs := make([][]byte, uploads)
		for n := range pdfs {
			pdfs[n] = paddedPDF(fmt.Sprintf("Report %d of run %d on uploads under load.", n, i), size, uint64(i*uploads+n))
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for c := range clients {
			wg.Go(func() {
				<-start
				for n := c; n < uploads; n += clients {
					t0 := time.Now()
					r := api.UploadTo(b, key, "/v1/documents", fmt.Sprintf("r%d-%d.pdf", i, n), pdfs[n], nil, nil)
					took := time.Since(t0)
					if r.Status != http.StatusAccepted {
						b.Errorf("upload: %d %s", r.Status, r.Raw)
						return
					}
					d, _ := time.ParseDuration(r.Header.Get("X-Response-Time"))
					mu.Lock()
					client, server = append(client, took), append(server, d)
					mu.Unlock()
				}
			})
		}
		close(start)
		wg.Wait()
		waitIdle(b, conn)
	}
	b.StopTimer()
	var failed int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM jobs WHERE status <> 'succeeded'`).Scan(&failed); err != nil || failed != 0 {
		b.Fatalf("%d jobs did not succeed (%v)", failed, err)
	}
	ms := func(d []time.Duration, q int) float64 {
		slices.Sort(d)
		return float64(d[(len(d)-1)*q/100].Microseconds()) / 1000
	}
	b.ReportMetric(ms(client, 50), "p50-ms")
	b.ReportMetric(ms(client, 99), "p99-ms")
	b.ReportMetric(ms(server, 50), "server-p50-ms")
	b.ReportMetric(ms(server, 99), "server-p99-ms")
	b.ReportMetric(peakRSS(b, pid), "api-peak-rss-MiB")
}
