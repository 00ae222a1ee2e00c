package platform_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ragpipe/ragpipe/pkg/config"
)

// smallDoc is a made-up text of 1-2 KB, different for each n.
func smallDoc(n int) []byte {
	r := rand.New(rand.NewPCG(uint64(n), 9))
	words := []string{"cell", "protein", "binding", "receptor", "signal", "pathway", "expression", "tumour", "mouse",
		"clinical", "trial", "dose", "response", "gene", "variant", "patients", "cohort", "risk", "marker", "assay"}
	var b strings.Builder
	fmt.Fprintf(&b, "Document %d.\n\n", n)
	for b.Len() < 1024+r.IntN(1024) {
		b.WriteString(words[r.IntN(len(words))])
		if r.IntN(12) == 0 {
			b.WriteString(". ")
		} else {
			b.WriteByte(' ')
		}
	}
	return []byte(b.String())
}

// waitIdle waits until no job is queued or running.
func waitIdle(b *testing.B, conn *pgx.Conn) {
	b.Helper()
	for {
		var pending int
		if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')`).Scan(&pending); err != nil {
			b.Fatal(err)
		}
		if pending == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// BenchmarkSmallDocuments measures ingestion of small text documents as a
// bulk client sees it: 8 client threads upload 1-2 KB texts to one tenant
// (the per-key rate limit raised), one worker with the defaults; from the
// first upload to the last document ready. It reports documents/s and the
// server's upload time (X-Response-Time) at the median and p99.
func BenchmarkSmallDocuments(b *testing.B) {
	const docs, clients = 1000, 8
	s := startStack(b, func(c *config.Config) { c.RateLimitPerMin = 1_000_000 })
	key := s.Key(b, "bulk")
	conn, err := pgx.Connect(context.Background(), s.Config.DatabaseURL)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(context.Background())
	var server []time.Duration
	var mu sync.Mutex
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		var wg sync.WaitGroup
		for c := range clients {
			wg.Go(func() {
				for n := c; n < docs; n += clients {
					r := s.UploadTo(b, key, "/v1/documents?dedupe=false", fmt.Sprintf("d%d-%d.txt", i, n), smallDoc(i*docs+n), nil, nil)
					if r.Status != http.StatusAccepted {
						b.Errorf("upload: %d %s", r.Status, r.Raw)
						return
					}
					d, _ := time.ParseDuration(r.Header.Get("X-Response-Time"))
					mu.Lock()
					server = append(server, d)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		waitIdle(b, conn)
		b.ReportMetric(float64(docs)/time.Since(start).Seconds(), "docs/s")
	}
	var failed int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM jobs WHERE status <> 'succeeded'`).Scan(&failed); err != nil || failed != 0 {
		b.Fatalf("%d jobs did not succeed (%v)", failed, err)
	}
	slices.Sort(server)
	b.ReportMetric(float64(server[len(server)/2].Microseconds())/1000, "upload-p50-ms")
	b.ReportMetric(float64(server[len(server)*99/100].Microseconds())/1000, "upload-p99-ms")
}

// BenchmarkScaleOut measures how ingestion scales with worker processes
// when the embedding provider takes a fixed 50 ms per request (a local fake
// of OpenAI's API): 400 small documents are uploaded first, then 1, 2 and 4
// workers (each its own Worker, as a separate process would be, with the
// default concurrency) work through them. It reports documents/s for each
// and the speed-ups over one worker.
func BenchmarkScaleOut(b *testing.B) {
	const docs = 400
	provider := fakeProvider(b, func(http.ResponseWriter, *http.Request) bool {
		time.Sleep(50 * time.Millisecond)
		return false
	})
	rate := map[int]float64{}
	for range b.N {
		for _, workers := range []int{1, 2, 4} {
			s := startStack(b, func(c *config.Config) {
				useProvider(c, provider)
				c.RateLimitPerMin = 1_000_000
			})
			s.stopWorker()
			key := s.Key(b, "bulk")
			for n := range docs {
				if r := s.UploadTo(b, key, "/v1/documents?dedupe=false", fmt.Sprintf("d%d.txt", n), smallDoc(n), nil, nil); r.Status != http.StatusAccepted {
					b.Fatalf("upload: %d %s", r.Status, r.Raw)
				}
			}
			conn, err := pgx.Connect(context.Background(), s.Config.DatabaseURL)
			if err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			var stops []func()
			for range workers {
				stops = append(stops, s.StartWorker(b))
			}
			waitIdle(b, conn)
			rate[workers] = docs / time.Since(start).Seconds()
			conn.Close(context.Background())
			for _, stop := range stops {
				stop()
			}
		}
	}
	b.ReportMetric(rate[1], "docs/s-1w")
	b.ReportMetric(rate[2], "docs/s-2w")
	b.ReportMetric(rate[4], "docs/s-4w")
	b.ReportMetric(rate[2]/rate[1], "x-2w")
	b.ReportMetric(rate[4]/rate[1], "x-4w")
}
