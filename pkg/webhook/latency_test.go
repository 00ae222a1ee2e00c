package webhook_test

import (
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ragpipe/ragpipe/pkg/config"
)

// TestDeliveryLatency uploads RAGPIPE_WEBHOOK_BENCH_DOCS documents (default
// 100) to a subscriber that answers 503 for its first
// RAGPIPE_WEBHOOK_BENCH_DOWN (default 20s), and half as many again once it
// is up, then prints the delivery latency
// after ready (receipt of the first 2xx minus the event's timestamp, which
// is taken in the transaction that makes the document ready) and the
// attempts recorded. The retry schedule is the default one scaled from
// minutes to seconds (5s,1m,5m,... becomes 1s,2s,4s,8s,...).
// Run: RAGPIPE_WEBHOOK_BENCH=1 go test -run TestDeliveryLatency -v ./pkg/webhook/
func TestDeliveryLatency(t *testing.T) {
	if os.Getenv("RAGPIPE_WEBHOOK_BENCH") == "" {
		t.Skip("set RAGPIPE_WEBHOOK_BENCH=1 to run")
	}
	docs, down := 100, 20*time.Second
	if v, err := strconv.Atoi(os.Getenv("RAGPIPE_WEBHOOK_BENCH_DOCS")); err == nil {
		docs = v
	}
	if v, err := time.ParseDuration(os.Getenv("RAGPIPE_WEBHOOK_BENCH_DOWN")); err == nil {
		down = v
	}
	s := startStack(t, true, func(c *config.Config) {
		c.WebhookRetrySchedule = []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second,
			16 * time.Second, 32 * time.Second, 64 * time.Second}
	})
	key := s.key("acme")
	var up atomic.Bool
	start := time.Now()
	rc := newReceiver(t, func(n int, h hit, w http.ResponseWriter) int {
		if !up.Load() {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	id, secret := s.subscribe(key, rc.URL, "document.ready")
	go func() { time.Sleep(down); up.Store(true) }()
	for i := range docs {
		r := s.upload(key, fmt.Sprintf("n%d.md", i), []byte(fmt.Sprintf("%s\nDocument number %d.\n", note, i)), nil)
		if r.status != http.StatusAccepted {
			t.Fatalf("upload %d: %d %s", i, r.status, r.raw)
		}
	}
	delivered := func() map[string]hit {
		out := map[string]hit{}
		for _, h := range rc.got() {
			if h.answered == 200 {
				if _, seen := out[h.id]; !seen {
					out[h.id] = h
				}
			}
		}
		return out
	}
	// A second wave once the receiver is up measures the steady state.
	time.Sleep(time.Until(start.Add(down + time.Second)))
	for i := range docs / 2 {
		r := s.upload(key, fmt.Sprintf("m%d.md", i), []byte(fmt.Sprintf("%s\nLater document %d.\n", note, i)), nil)
		if r.status != http.StatusAccepted {
			t.Fatalf("upload %d: %d %s", i, r.status, r.raw)
		}
	}
	total := docs + docs/2
	waitFor(t, "every event delivered", down+5*time.Minute, func() bool { return len(delivered()) == total })

	var during, after []time.Duration
	for _, h := range delivered() {
		if !verify(secret, h.id, h.ts, h.body, h.sig) {
			t.Fatalf("delivery %s does not verify", h.id)
		}
		ready, err := time.Parse(time.RFC3339Nano, h.event["timestamp"].(string))
		if err != nil {
			t.Fatal(err)
		}
		if ready.Before(start.Add(down)) {
			during = append(during, h.at.Sub(ready))
		} else {
			after = append(after, h.at.Sub(ready))
		}
	}
	attempts := 0
	for _, d := range s.deliveries(key, id, "") {
		attempts += int(d["attempts"].(float64))
	}
	dup := 0
	for _, h := range rc.got() {
		if h.answered == 200 {
			dup++
		}
	}
	t.Logf("%d+%d documents, receiver down for %s: %d delivered (%d 2xx answers), %d attempts recorded (%d requests seen)",
		docs, docs/2, down, len(delivered()), dup, attempts, len(rc.got()))
	t.Logf("ready while receiver down (%d): %s", len(during), pcts(during))
	t.Logf("ready after receiver up (%d): %s", len(after), pcts(after))
}

func pcts(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	slices.Sort(ds)
	p := func(q float64) time.Duration {
		return ds[min(len(ds)-1, int(q*float64(len(ds))))].Round(time.Millisecond)
	}
	return fmt.Sprintf("p50 %s p99 %s max %s", p(0.50), p(0.99), ds[len(ds)-1].Round(time.Millisecond))
}
