// Package scale tests ragpipe on the engines operators scale out on, for
// real, on loopback: a Redis Sentinel group through a failover and a
// primary's crash, a Redis Cluster, and a streaming Postgres replica (see
// internal/testenv/topology.go). Each test runs the real API and worker
// in-process against them.
package scale

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ragpipe/ragpipe/internal/teststack"
	"github.com/ragpipe/ragpipe/pkg/client"
)

// doc is document i: text with a word found in no other document, so a
// search for it finds exactly that one. big ones are over the 32 KiB a
// small document's extract task embeds itself, so they take every stage.
func doc(i int, big bool) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# Report %d\n\nThe marker of this report is zq%dmarker.\n\n", i, i)
	n := 3
	if big {
		n = 400
	}
	for k := range n {
		fmt.Fprintf(&b, "Paragraph %d of report %d records sentinel failover drills, replica lag and cluster slots.\n\n", k, i)
	}
	return []byte(b.String())
}

// user uploads and polls through the Go client as a user does, and
// retries what the API answers with 503 or 504 (a dependency failing over)
// or cannot answer at all.
type user struct {
	api *client.Client
}

func newClient(s *teststack.Stack, key string) *user {
	return &user{api: &client.Client{BaseURL: s.URL, Key: key, HTTP: &http.Client{Timeout: 10 * time.Second}}}
}

// retry runs call until it succeeds or fails for another reason than a
// dependency being away, 300 times at most.
func retry(call func() error) error {
	var err error
	for range 300 {
		var apiErr *client.APIError
		if err = call(); err == nil || errors.As(err, &apiErr) && apiErr.Status != http.StatusServiceUnavailable &&
			apiErr.Status != http.StatusGatewayTimeout {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("no answer after 300 attempts: %w", err)
}

// upload sends a document and returns its job ID.
func (c *user) upload(name string, content []byte) (string, error) {
	var r struct {
		JobID string `json:"job_id"`
	}
	err := retry(func() error { return c.api.Upload(context.Background(), name, bytes.NewReader(content), nil, &r) })
	if err == nil && r.JobID == "" {
		err = fmt.Errorf("upload %s: no job", name)
	}
	return r.JobID, err
}

// get decodes the answer to GET path into out.
func (c *user) get(path string, out any) error {
	return retry(func() error { return c.api.Do(context.Background(), http.MethodGet, path, nil, out) })
}

// waitAll polls every job until it ends or limit passes, and returns the
// statuses by job.
func (c *user) waitAll(t *testing.T, jobs []string, limit time.Duration) map[string]string {
	t.Helper()
	status := map[string]string{}
	deadline := time.Now().Add(limit)
	for {
		pending := 0
		for _, id := range jobs {
			switch status[id] {
			case "succeeded", "failed", "canceled":
				continue
			}
			var job struct {
				Status string `json:"status"`
			}
			if err := c.get("/v1/jobs/"+id, &job); err != nil {
				t.Fatalf("GET job %s: %v", id, err)
			}
			status[id] = job.Status
			if s := status[id]; s != "succeeded" && s != "failed" && s != "canceled" {
				pending++
			}
		}
		if pending == 0 || time.Now().After(deadline) {
			return status
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// uploadAll sends docs from four clients at once and returns the job IDs
// in document order.
func (c *user) uploadAll(t *testing.T, first int, docs [][]byte) []string {
	t.Helper()
	jobs := make([]string, len(docs))
	errs := make([]error, len(docs))
	var wg sync.WaitGroup
	next := make(chan int)
	for range 4 {
		wg.Go(func() {
			for i := range next {
				jobs[i], errs[i] = c.upload(fmt.Sprintf("report-%d.md", first+i), docs[i])
			}
		})
	}
	for i := range docs {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return jobs
}

// searchFinds reports whether a keyword search for document i's marker
// returns exactly one result.
func (c *user) searchFinds(t *testing.T, i int) bool {
	t.Helper()
	var r struct {
		Results []any `json:"results"`
	}
	q := map[string]any{"query": fmt.Sprintf("zq%dmarker", i), "mode": "keyword", "top_k": 5}
	if err := retry(func() error { return c.api.Do(context.Background(), http.MethodPost, "/v1/search", q, &r) }); err != nil {
		t.Fatalf("search: %v", err)
	}
	return len(r.Results) == 1
}
