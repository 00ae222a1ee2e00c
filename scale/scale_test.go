// Package scale tests ragpipe on the engines operators scale out on, for
// real, on loopback: a Redis Sentinel group through a failover and a
// primary's crash, a Redis Cluster, and a streaming Postgres replica (see
// internal/testenv/topology.go). Each test runs the real API and worker
// in-process against them.
package scale

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ragpipe/ragpipe/internal/teststack"
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

// client uploads and polls like a user does: it retries what the API
// answers with 503 (a dependency failing over) or cannot answer at all.
type client struct {
	url, key string
	http     *http.Client
}

func newClient(s *teststack.Stack, key string) *client {
	return &client{url: s.URL, key: key, http: &http.Client{Timeout: 10 * time.Second}}
}

func (c *client) do(req func() (*http.Request, error)) (int, map[string]any, error) {
	var last error
	for attempt := 0; attempt < 300; attempt++ {
		r, err := req()
		if err != nil {
			return 0, nil, err
		}
		r.Header.Set("Authorization", "Bearer "+c.key)
		res, err := c.http.Do(r)
		if err != nil {
			last = err
			time.Sleep(100 * time.Millisecond)
			continue
		}
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode == http.StatusServiceUnavailable || res.StatusCode == http.StatusGatewayTimeout {
			last = fmt.Errorf("%d %s", res.StatusCode, raw)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		var body map[string]any
		_ = json.Unmarshal(raw, &body)
		return res.StatusCode, body, nil
	}
	return 0, nil, fmt.Errorf("no answer after 300 attempts: %v", last)
}

// upload sends a document and returns its job ID.
func (c *client) upload(name string, content []byte) (string, error) {
	status, body, err := c.do(func() (*http.Request, error) {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		fw, _ := mw.CreateFormFile("file", name)
		fw.Write(content)
		mw.Close()
		r, err := http.NewRequest(http.MethodPost, c.url+"/v1/documents", &buf)
		if err == nil {
			r.Header.Set("Content-Type", mw.FormDataContentType())
		}
		return r, err
	})
	if err != nil {
		return "", err
	}
	if status != http.StatusAccepted {
		return "", fmt.Errorf("upload %s: %d %v", name, status, body)
	}
	return body["job_id"].(string), nil
}

func (c *client) get(path string) (int, map[string]any, error) {
	return c.do(func() (*http.Request, error) { return http.NewRequest(http.MethodGet, c.url+path, nil) })
}

// waitAll polls every job until it ends or limit passes, and returns the
// statuses by job.
func (c *client) waitAll(t *testing.T, jobs []string, limit time.Duration) map[string]string {
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
			code, body, err := c.get("/v1/jobs/" + id)
			if err != nil || code != http.StatusOK {
				t.Fatalf("GET job %s: %d %v %v", id, code, body, err)
			}
			status[id], _ = body["status"].(string)
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
func (c *client) uploadAll(t *testing.T, first int, docs [][]byte) []string {
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
func (c *client) searchFinds(t *testing.T, i int) bool {
	t.Helper()
	status, body, err := c.do(func() (*http.Request, error) {
		b, _ := json.Marshal(map[string]any{"query": fmt.Sprintf("zq%dmarker", i), "mode": "keyword", "top_k": 5})
		r, err := http.NewRequest(http.MethodPost, c.url+"/v1/search", bytes.NewReader(b))
		if err == nil {
			r.Header.Set("Content-Type", "application/json")
		}
		return r, err
	})
	if err != nil || status != http.StatusOK {
		t.Fatalf("search: %d %v %v", status, body, err)
	}
	results, _ := body["results"].([]any)
	return len(results) == 1
}
