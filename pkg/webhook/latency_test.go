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
// attempts recorded. It fails unless every request verifies, every
// document's event got exactly one 2xx, and the attempts recorded are the
// requests the receiver saw.
// The retry schedule is RAGPIPE_WEBHOOK_BENCH_SCHEDULE: "scaled" (the
// default: the default schedule's steps scaled from minutes to seconds, so
// 5s,1m,5m,... becomes 1s,2s,4s,...,1024s), "default" (5s,1m,5m,30m,...) or
// a comma-separated list of durations.
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
	var environ []string
	sched := os.Getenv("RAGPIPE_WEBHOOK_BENCH_SCHEDULE")
	if sched != "" && sched != "scaled" && sched != "default" {
		environ = []string{config.Prefix + "WEBHOOK_RETRY_SCHEDULE=" + sched}
	}
	def, err := config.Load(environ)
	if err != nil {
		t.Fatalf("RAGPIPE_WEBHOOK_BENCH_SCHEDULE: %v", err)
	}
	schedule := def.WebhookRetrySchedule
	if sched == "" || sched == "scaled" {
		for i := range schedule {
			schedule[i] = time.Second << i
		}
	}
	s := startStack(t, true, func(c *config.Config) { c.WebhookRetrySchedule = schedule })
	key := s.Key(t, "acme")
	var up atomic.Bool
	start := time.Now()
	rc := newReceiver(t, func(n int, h hit, w http.ResponseWriter) int {
		if !up.Load() {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	id, secret := s.subscribe(t, key, rc.URL, "document.ready")
	go func() { time.Sleep(down); up.Store(true) }()
	var docIDs []string
	for i := range docs {
		r := s.Upload(t, key, fmt.Sprintf("n%d.md", i), []byte(fmt.Sprintf("%s\nDocument number %d.\n", note, i)), nil)
		if r.Status != http.StatusAccepted {
			t.Fatalf("upload %d: %d %s", i, r.Status, r.Raw)
		}
		docIDs = append(docIDs, r.Body["document_id"].(string))
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
		r := s.Upload(t, key, fmt.Sprintf("m%d.md", i), []byte(fmt.Sprintf("%s\nLater document %d.\n", note, i)), nil)
		if r.Status != http.StatusAccepted {
			t.Fatalf("upload %d: %d %s", i, r.Status, r.Raw)
		}
		docIDs = append(docIDs, r.Body["document_id"].(string))
	}
	total := docs + docs/2
	// An event ready at the start waits for the first retry after the
	// receiver is back: the schedule up to that step, with +20% jitter.
	wait := time.Duration(0)
	for _, d := range schedule {
		if wait*4/5 >= down {
			break
		}
		wait += d
	}
	waitFor(t, "every event delivered", wait*6/5+5*time.Minute, func() bool { return len(delivered()) == total })
	// The receiver has answered; the attempts' records commit just after.
	var ds []map[string]any
	waitFor(t, "every delivery recorded as succeeded", time.Minute, func() bool {
		ds = s.deliveries(t, key, id, "")
		return len(ds) == total && !slices.ContainsFunc(ds, func(d map[string]any) bool { return d["status"] != "succeeded" })
	})
	hits := rc.got()

	var during, after []time.Duration
	for _, h := range delivered() {
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
	for _, d := range ds {
		attempts += int(d["attempts"].(float64))
	}
	oks, events, n2xx := map[string]int{}, map[string]string{}, 0 // 2xx answers per event; event per document
	for _, h := range hits {
		if !verify(secret, h.id, h.ts, h.body, h.sig) {
			t.Fatalf("request for %s does not verify", h.id)
		}
		if h.answered == 200 {
			oks[h.id]++
			n2xx++
		}
		doc := h.event["data"].(map[string]any)["document"].(map[string]any)["id"].(string)
		if e, ok := events[doc]; ok && e != h.id {
			t.Errorf("document %s has two events, %s and %s", doc, e, h.id)
		}
		events[doc] = h.id
	}
	t.Logf("%d+%d documents, receiver down for %s, schedule %v: %d delivered (%d 2xx answers), %d attempts recorded (%d requests seen)",
		docs, docs/2, down, schedule, len(delivered()), n2xx, attempts, len(hits))
	t.Logf("ready while receiver down (%d): %s", len(during), pcts(during))
	t.Logf("ready after receiver up (%d): %s", len(after), pcts(after))
	for _, doc := range docIDs {
		if n := oks[events[doc]]; n != 1 {
			t.Errorf("document %s: event %q answered 2xx %d times, want once", doc, events[doc], n)
		}
	}
	if attempts != len(hits) {
		t.Errorf("%d attempts recorded, but the receiver saw %d requests", attempts, len(hits))
	}
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
