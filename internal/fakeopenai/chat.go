package fakeopenai

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// ChatReplay answers a chat request with a recorded stream, event by
// event, with the Faults set: OpenAI's chat completions or Anthropic's
// Messages as server-sent events (testdata/chat-stream.sse,
// anthropic-stream.sse), Ollama's /api/chat as NDJSON (ollama-chat.ndjson).
// It records each request's body and when the client went away.
type ChatReplay struct {
	Transcript []byte // the body: SSE events separated by blank lines, or NDJSON lines
	NDJSON     bool   // the transcript is NDJSON (Ollama), one event a line
	// JSON answers requests that do not ask to stream (testdata/chat-completion.json).
	JSON []byte

	mu       sync.Mutex
	faults   Faults
	requests []Seen
	gone     chan struct{}
}

// Seen is a request a ChatReplay answered.
type Seen struct {
	Path   string
	Header http.Header
	Body   map[string]any
}

// Faults are what a ChatReplay does instead of answering well.
type Faults struct {
	Status     int           // non-zero: answer this status instead (429, 500…)
	RetryAfter int           // seconds, sent with Status
	HangAfter  int           // with Hang: events sent before hanging (0: hang before the first)
	Hang       time.Duration // how long to hang at HangAfter; 0: never
	BreakAfter int           // non-zero: drop the connection after this many events
	Count      int           // the faults hit this many requests, then none; 0: every request
}

// SetFaults sets the faults of the requests that follow.
func (c *ChatReplay) SetFaults(f Faults) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.faults = f
}

// Requests returns the requests answered so far, in order.
func (c *ChatReplay) Requests() []Seen {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Seen(nil), c.requests...)
}

// Events splits an SSE transcript into its events, each with its ending
// blank line.
func Events(transcript []byte) [][]byte {
	var out [][]byte
	for _, e := range bytes.SplitAfter(transcript, []byte("\n\n")) {
		if len(bytes.TrimSpace(e)) > 0 {
			out = append(out, e)
		}
	}
	return out
}

// Gone is closed when a client hangs up on a request while it hangs (see
// Faults.Hang); call it before the request.
func (c *ChatReplay) Gone() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gone = make(chan struct{})
	return c.gone
}

func (c *ChatReplay) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	b, _ := io.ReadAll(r.Body)
	_ = json.Unmarshal(b, &body)
	c.mu.Lock()
	c.requests = append(c.requests, Seen{Path: r.URL.Path, Header: r.Header.Clone(), Body: body})
	gone, f := c.gone, c.faults
	if c.faults.Count > 0 {
		if c.faults.Count--; c.faults.Count == 0 {
			c.faults = Faults{}
		}
	}
	c.mu.Unlock()
	if f.Status != 0 {
		if f.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(f.Status)
		_, _ = w.Write([]byte(`{"error":{"message":"replayed failure","type":"server_error"}}`))
		return
	}
	if body["stream"] != true && c.JSON != nil {
		if f.Hang > 0 && f.HangAfter == 0 {
			select {
			case <-time.After(f.Hang):
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(c.JSON)
		return
	}
	events := Events(c.Transcript)
	w.Header().Set("Content-Type", "text/event-stream")
	if c.NDJSON {
		w.Header().Set("Content-Type", "application/x-ndjson")
		events = bytes.SplitAfter(bytes.TrimSpace(c.Transcript), []byte("\n"))
	}
	flusher := w.(http.Flusher)
	hang := func() bool {
		select {
		case <-time.After(f.Hang):
			return true
		case <-r.Context().Done():
			c.mu.Lock()
			if gone != nil && c.gone == gone {
				close(gone)
				c.gone = nil
			}
			c.mu.Unlock()
			return false
		}
	}
	for i, e := range events {
		if f.Hang > 0 && i == f.HangAfter && !hang() {
			return
		}
		if f.BreakAfter > 0 && i == f.BreakAfter {
			panic(http.ErrAbortHandler) // the server drops the connection mid-stream
		}
		if _, err := w.Write(e); err != nil {
			return
		}
		flusher.Flush()
	}
}
