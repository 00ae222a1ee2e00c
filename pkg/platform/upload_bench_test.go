package platform_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ragpipe/ragpipe/pkg/config"
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

// peakRSS is the process's peak resident set (VmHWM) in MiB.
func peakRSS(b *testing.B) float64 {
	b.Helper()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return float64(kb) / 1024
		}
	}
	b.Fatal("no VmHWM in /proc/self/status")
	return 0
}

// BenchmarkUploadsUnderLoad measures uploads as 50 clients see them when
// they all send 1 MB PDFs at once, 100 uploads in all, to one API with one
// worker (the defaults, the per-key rate limit raised): the time to the 202
// at the median and p99, as the client and as the server (X-Response-Time)
// measure it; every job must succeed and nothing be refused. It also
// reports the peak RSS of the test process, which holds the API, the worker
// and the clients.
func BenchmarkUploadsUnderLoad(b *testing.B) {
	const clients, uploads, size = 50, 100, 1 << 20
	s := startStack(b, func(c *config.Config) { c.RateLimitPerMin = 1_000_000 })
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
					r := s.UploadTo(b, key, "/v1/documents", fmt.Sprintf("r%d-%d.pdf", i, n), pdfs[n], nil, nil)
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
	b.ReportMetric(peakRSS(b), "peak-rss-MiB")
}
