package platform_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ragpipe/ragpipe/internal/fakeopenai"
	"github.com/ragpipe/ragpipe/pkg/answer"
	"github.com/ragpipe/ragpipe/pkg/config"
)

type sseMessage struct {
	Event string
	Data  map[string]any
}

// askStream posts body to /v1/ask asking for events and reads them all.
func askStream(t *testing.T, url, key string, body any) (int, http.Header, []sseMessage) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/ask", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []sseMessage
	sc := bufio.NewScanner(resp.Body)
	var cur sseMessage
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			cur.Event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &cur.Data); err != nil {
				t.Fatalf("event data %q: %v", line, err)
			}
		case line == "" && cur.Event != "":
			out = append(out, cur)
			cur = sseMessage{}
		}
	}
	return resp.StatusCode, resp.Header, out
}

var markerRe = regexp.MustCompile(`\[(\d+)\]`)

// checkCitations fails unless every marker of answer has its citation and
// every citation is cited, numbered 1..n in order of first appearance.
func checkCitations(t *testing.T, ans string, citations []any) {
	t.Helper()
	var order []string
	seen := map[string]bool{}
	for _, m := range markerRe.FindAllStringSubmatch(ans, -1) {
		if !seen[m[1]] {
			seen[m[1]] = true
			order = append(order, m[1])
		}
	}
	if len(order) != len(citations) {
		t.Fatalf("answer %q cites %v; %d citations", ans, order, len(citations))
	}
	for i, n := range order {
		if n != strconv.Itoa(i+1) || citations[i].(map[string]any)["n"] != float64(i+1) {
			t.Errorf("marker %d is [%s], citation n %v", i+1, n, citations[i].(map[string]any)["n"])
		}
	}
}

// TestAskExtractive asks about a real PDF with the offline answerer: the
// answer quotes page 4's sentence with its citation, streamed and not, says
// plainly when nothing matches, and refuses bad fields by name.
func TestAskExtractive(t *testing.T) {
	t.Parallel()
	s := startStackOn(t, 11, nil)
	key := s.Key(t, "acme")
	r := s.Upload(t, key, "lppl.pdf", mustRead(t, "../../testdata/lppl.pdf"), map[string]string{"collection": "licences"})
	if r.Status != http.StatusAccepted {
		t.Fatalf("upload: %d %s", r.Status, r.Raw)
	}
	docID := r.Body["document_id"].(string)
	if job := s.WaitJob(t, key, r.Body["job_id"].(string)); job["status"] != "succeeded" {
		t.Fatalf("job %v", job)
	}

	question := "Does the license place restrictions on aggregating other works with the Work?"
	a := s.JSON(t, key, http.MethodPost, "/v1/ask", map[string]any{"question": question, "collection": "licences"})
	if a.Status != http.StatusOK {
		t.Fatalf("ask: %d %s", a.Status, a.Raw)
	}
	ans := a.Body["answer"].(string)
	if !strings.HasPrefix(ans, page4Sentence+" [1]") {
		t.Errorf("answer = %q; want page 4's sentence first, cited [1]", ans)
	}
	citations := a.Body["citations"].([]any)
	checkCitations(t, ans, citations)
	first := citations[0].(map[string]any)
	if first["document_id"] != docID || first["page_start"].(float64) > 4 || first["page_end"].(float64) < 4 ||
		!strings.Contains(first["text"].(string), "aggregating such works") {
		t.Errorf("citation [1] = %v; want the chunk of page 4", first)
	}
	usage, timings := a.Body["usage"].(map[string]any), a.Body["timings"].(map[string]any)
	if a.Body["model"] != "extractive" || usage["completion_tokens"].(float64) < 10 || usage["prompt_tokens"].(float64) < 100 ||
		timings["retrieval_ms"] == nil || timings["generation_ms"] == nil {
		t.Errorf("model %v usage %v timings %v", a.Body["model"], usage, timings)
	}

	// Streamed: citations, then the same answer in deltas, then done.
	status, header, events := askStream(t, s.URL, key, map[string]any{"question": question, "collection": "licences"})
	if status != http.StatusOK || header.Get("Content-Type") != "text/event-stream" || len(events) < 3 {
		t.Fatalf("stream: %d %q %v", status, header.Get("Content-Type"), events)
	}
	if events[0].Event != "citations" || events[len(events)-1].Event != "done" {
		t.Fatalf("events %v; want citations first, done last", events)
	}
	var streamed strings.Builder
	for _, e := range events[1 : len(events)-1] {
		if e.Event != "token" {
			t.Fatalf("event %v between citations and done", e)
		}
		streamed.WriteString(e.Data["text"].(string))
	}
	passages := events[0].Data["citations"].([]any)
	cited, _ := answer.Cite(streamed.String(), len(passages))
	if cited != ans {
		t.Errorf("streamed answer %q; JSON answer %q", streamed.String(), ans)
	}
	done := events[len(events)-1].Data
	if done["model"] != "extractive" || len(done["cited"].([]any)) != len(citations) {
		t.Errorf("done = %v", done)
	}

	nothing := s.JSON(t, key, http.MethodPost, "/v1/ask", map[string]any{"question": "zebra marmalade quantum"})
	if nothing.Status != http.StatusOK || nothing.Body["answer"] != answer.NothingFound || len(nothing.Body["citations"].([]any)) != 0 {
		t.Errorf("unrelated question: %d %s", nothing.Status, nothing.Raw)
	}

	for _, tc := range []struct {
		body   map[string]any
		status int
		code   string
	}{
		{map[string]any{"top_k": 3}, 422, "invalid_question"},
		{map[string]any{"question": "x", "max_tokens": 0}, 422, "invalid_max_tokens"},
		{map[string]any{"question": "x", "max_tokens": 4001}, 422, "invalid_max_tokens"},
		{map[string]any{"question": "x", "temperature": 2.5}, 422, "invalid_temperature"},
		{map[string]any{"question": "x", "top_k": 101}, 422, "invalid_top_k"},
		{map[string]any{"question": "x", "mode": "fuzzy"}, 422, "invalid_mode"},
		{map[string]any{"question": "x", "created_after": "yesterday"}, 422, "invalid_created_after"},
		{map[string]any{"question": "x", "conversation_id": "c1"}, 422, "invalid_conversation_id"},
		{map[string]any{"question": strings.Repeat("aggregating works ", 400)}, 400, "token_limit_exceeded"},
	} {
		r := s.JSON(t, key, http.MethodPost, "/v1/ask", tc.body)
		e, _ := r.Body["error"].(map[string]any)
		if r.Status != tc.status || e["code"] != tc.code {
			t.Errorf("%v: %d %s; want %d %s", tc.body, r.Status, r.Raw, tc.status, tc.code)
		}
		if tc.code == "token_limit_exceeded" && (e["tokens"] != 1201.0 || e["limit"] != 512.0) {
			t.Errorf("token limit error %v; want tokens 1201, limit 512", e)
		}
	}
}

// TestAskOpenAIReplay answers through langchaingo's OpenAI client against
// a server replaying OpenAI's recorded stream, with its faults: a stall
// before the first token (504), a stall mid-stream (error event), a 500
// (503), a dropped connection, and a client that hangs up (the provider
// sees its connection closed at once).
func TestAskOpenAIReplay(t *testing.T) {
	t.Parallel()
	transcript, err := os.ReadFile("../../internal/fakeopenai/testdata/chat-stream.sse")
	if err != nil {
		t.Fatal(err)
	}
	replay := &fakeopenai.ChatReplay{Transcript: transcript}
	provider := httptest.NewServer(replay)
	t.Cleanup(provider.Close)
	s := startStackOn(t, 12, func(c *config.Config) {
		c.ChatProvider, c.ChatBaseURL, c.ChatModel = "openai", provider.URL+"/v1", "gpt-4o-mini"
		c.ChatFirstTokenTimeout, c.ChatIdleTimeout = 500*time.Millisecond, 500*time.Millisecond
	})
	key := s.Key(t, "acme")
	for i, text := range []string{"Work may be distributed unmodified.", "A modified work must be distributed with a notice of change."} {
		r := s.Upload(t, key, "note"+string(rune('a'+i))+".txt", []byte(text), nil)
		if job := s.WaitJob(t, key, r.Body["job_id"].(string)); job["status"] != "succeeded" {
			t.Fatalf("job %v", job)
		}
	}
	ask := map[string]any{"question": "When may a modified work be distributed?", "mode": "keyword", "temperature": 0.2, "max_tokens": 200}

	a := s.JSON(t, key, http.MethodPost, "/v1/ask", ask)
	if a.Status != http.StatusOK {
		t.Fatalf("ask: %d %s", a.Status, a.Raw)
	}
	// The model cited [2] then [2][1]: renumbered in order of appearance.
	if want := "A modified work must say it was changed [1]. It may then be distributed [1][2]."; a.Body["answer"] != want {
		t.Errorf("answer = %q; want %q", a.Body["answer"], want)
	}
	checkCitations(t, a.Body["answer"].(string), a.Body["citations"].([]any))
	if u := a.Body["usage"].(map[string]any); a.Body["model"] != "gpt-4o-mini" || u["prompt_tokens"] != 812.0 || u["completion_tokens"] != 17.0 {
		t.Errorf("model %v usage %v", a.Body["model"], u)
	}
	sent := replay.LastRequest()
	msgs := sent["messages"].([]any)
	if sent["stream"] != true || sent["model"] != "gpt-4o-mini" || sent["temperature"] != 0.2 || len(msgs) != 2 ||
		msgs[0].(map[string]any)["role"] != "system" || !strings.Contains(msgs[1].(map[string]any)["content"].(string), "Question: When may a modified work be distributed?") {
		t.Errorf("request to the provider: %v", sent)
	}

	status, _, events := askStream(t, s.URL, key, ask)
	var deltas []string
	for _, e := range events {
		if e.Event == "token" {
			deltas = append(deltas, e.Data["text"].(string))
		}
	}
	if status != http.StatusOK || events[0].Event != "citations" || events[len(events)-1].Event != "done" ||
		strings.Join(deltas, "|") != "A modified work| must say it was changed [2].| It may then be distributed [2][1]." {
		t.Errorf("stream: %d %v", status, events)
	}
	if done := events[len(events)-1].Data; done["model"] != "gpt-4o-mini" || done["usage"].(map[string]any)["completion_tokens"] != 17.0 {
		t.Errorf("done = %v", done)
	}

	t.Run("stall before the first token", func(t *testing.T) {
		replay.SetFaults(fakeopenai.Faults{Hang: 5 * time.Second})
		defer replay.SetFaults(fakeopenai.Faults{})
		gone := replay.Gone()
		start := time.Now()
		status, header, events := askStream(t, s.URL, key, ask)
		if status != http.StatusGatewayTimeout || header.Get("Retry-After") == "" || len(events) != 0 {
			t.Errorf("stalled provider: %d, Retry-After %q, %d events", status, header.Get("Retry-After"), len(events))
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("504 after %v; the first-token timeout is 500ms", took)
		}
		select {
		case <-gone:
		case <-time.After(2 * time.Second):
			t.Error("the provider's connection stayed open after the timeout")
		}
	})
	t.Run("stall mid-stream", func(t *testing.T) {
		replay.SetFaults(fakeopenai.Faults{Hang: 5 * time.Second, HangAfter: 2})
		defer replay.SetFaults(fakeopenai.Faults{})
		status, _, events := askStream(t, s.URL, key, ask)
		last := events[len(events)-1]
		if status != http.StatusOK || last.Event != "error" || last.Data["code"] != "provider_timeout" || events[1].Data["text"] != "A modified work" {
			t.Errorf("stall mid-stream: %d %v", status, events)
		}
	})
	t.Run("provider error", func(t *testing.T) {
		replay.SetFaults(fakeopenai.Faults{Status: http.StatusInternalServerError})
		defer replay.SetFaults(fakeopenai.Faults{})
		r := s.JSON(t, key, http.MethodPost, "/v1/ask", ask)
		if e, _ := r.Body["error"].(map[string]any); r.Status != http.StatusServiceUnavailable || e["code"] != "unavailable" || r.Header.Get("Retry-After") == "" {
			t.Errorf("provider 500: %d %s", r.Status, r.Raw)
		}
	})
	t.Run("broken stream", func(t *testing.T) {
		replay.SetFaults(fakeopenai.Faults{BreakAfter: 3})
		defer replay.SetFaults(fakeopenai.Faults{})
		status, _, events := askStream(t, s.URL, key, ask)
		if last := events[len(events)-1]; status != http.StatusOK || last.Event != "error" || last.Data["code"] != "unavailable" {
			t.Errorf("broken stream: %d %v", status, events)
		}
	})
	t.Run("client disconnect", func(t *testing.T) {
		replay.SetFaults(fakeopenai.Faults{Hang: 30 * time.Second, HangAfter: 2})
		defer replay.SetFaults(fakeopenai.Faults{})
		gone := replay.Gone()
		ctx, cancel := context.WithCancel(context.Background())
		b, _ := json.Marshal(map[string]any{"question": ask["question"], "mode": "keyword", "stream": true})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/v1/ask", bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		// Read up to the first token, then hang up.
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() && sc.Text() != "event: token" {
		}
		cancel()
		resp.Body.Close()
		hungUp := time.Now()
		select {
		case <-gone:
			t.Logf("the provider saw the hang-up after %v", time.Since(hungUp))
		case <-time.After(2 * time.Second):
			t.Error("the provider's connection stayed open after the client left")
		}
	})
}
