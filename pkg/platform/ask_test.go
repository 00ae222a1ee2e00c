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
	"github.com/ragpipe/ragpipe/internal/teststack"
	"github.com/ragpipe/ragpipe/pkg/answer"
	"github.com/ragpipe/ragpipe/pkg/config"
)

// askStream posts body to /v1/ask asking for events and reads them all.
func askStream(t *testing.T, s *stack, key string, body any) (int, http.Header, []teststack.Event) {
	t.Helper()
	st := s.AskStream(t, key, body)
	return st.Status, st.Header, st.Events
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
	status, header, events := askStream(t, s, key, map[string]any{"question": question, "collection": "licences"})
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

	// Every answer is a turn of a conversation; a follow-up joins the
	// previous question's terms to its own for retrieval.
	convID, _ := a.Body["conversation_id"].(string)
	if len(convID) != 36 || done["conversation_id"] == convID || len(done["conversation_id"].(string)) != 36 {
		t.Fatalf("conversation ids: JSON %q, stream %v", convID, done["conversation_id"])
	}
	follow := s.JSON(t, key, http.MethodPost, "/v1/ask", map[string]any{"question": "And by what means?", "conversation_id": convID})
	if follow.Status != http.StatusOK || follow.Body["conversation_id"] != convID || !strings.Contains(follow.Body["answer"].(string), "by any means") {
		t.Errorf("follow-up: %d %s", follow.Status, follow.Raw)
	}
	conv := s.JSON(t, key, http.MethodGet, "/v1/conversations/"+convID, nil)
	turns, _ := conv.Body["turns"].([]any)
	if conv.Status != http.StatusOK || conv.Body["title"] != question || conv.Body["turn_count"] != 2.0 || len(turns) != 2 ||
		turns[1].(map[string]any)["question"] != "And by what means?" || turns[0].(map[string]any)["answer"] != ans {
		t.Errorf("conversation: %d %s", conv.Status, conv.Raw)
	}
	if other := s.Key(t, "other"); s.JSON(t, other, http.MethodGet, "/v1/conversations/"+convID, nil).Status != http.StatusNotFound ||
		s.JSON(t, other, http.MethodPost, "/v1/ask", map[string]any{"question": "x", "conversation_id": convID}).Status != http.StatusNotFound {
		t.Error("another tenant reached the conversation")
	}
	list := s.JSON(t, key, http.MethodGet, "/v1/conversations?limit=1", nil)
	if convs := list.Body["conversations"].([]any); len(convs) != 1 || list.Body["next_cursor"] == "" {
		t.Errorf("conversations page: %s", list.Raw)
	}

	// A batch answers in order; a bad item fails alone.
	batch := s.JSON(t, key, http.MethodPost, "/v1/ask/batch", map[string]any{"requests": []any{
		map[string]any{"question": question, "collection": "licences"},
		map[string]any{"question": "x", "max_tokens": 0},
		map[string]any{"question": "zebra marmalade quantum"},
	}})
	results, _ := batch.Body["results"].([]any)
	if batch.Status != http.StatusOK || len(results) != 3 {
		t.Fatalf("batch: %d %s", batch.Status, batch.Raw)
	}
	r0, r1, r2 := results[0].(map[string]any), results[1].(map[string]any), results[2].(map[string]any)
	if r0["answer"] != ans || r1["error"].(map[string]any)["code"] != "invalid_max_tokens" || r2["answer"] != answer.NothingFound {
		t.Errorf("batch results: %s", batch.Raw)
	}
	if r := s.JSON(t, key, http.MethodPost, "/v1/ask/batch", map[string]any{"requests": make([]any, 21)}); r.Status != 422 {
		t.Errorf("batch of 21: %d %s", r.Status, r.Raw)
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
	if r := s.JSON(t, key, http.MethodPost, "/v1/ask", map[string]any{"question": "x", "conversation_id": "0f8e2c1a-6b3d-4f7e-8a9b-1c2d3e4f5a6b"}); r.Status != http.StatusNotFound {
		t.Errorf("unknown conversation: %d %s", r.Status, r.Raw)
	}

	// Answers so far: JSON, stream, follow-up, two of the batch, "nothing".
	spent := s.JSON(t, key, http.MethodGet, "/v1/usage", nil)
	totals, _ := spent.Body["usage"].([]any)
	if spent.Status != http.StatusOK || len(totals) != 1 || totals[0].(map[string]any)["requests"] != 6.0 ||
		totals[0].(map[string]any)["provider"] != "extractive" || totals[0].(map[string]any)["completion_tokens"].(float64) < 30 {
		t.Errorf("usage: %d %s", spent.Status, spent.Raw)
	}
	if r := s.JSON(t, key, http.MethodGet, "/v1/usage?from=2030-01-01T00:00:00Z&to=2020-01-01T00:00:00Z", nil); r.Status != 422 {
		t.Errorf("usage from after to: %d", r.Status)
	}
	if del := s.JSON(t, key, http.MethodDelete, "/v1/conversations/"+convID, nil); del.Status != http.StatusNoContent ||
		s.JSON(t, key, http.MethodGet, "/v1/conversations/"+convID, nil).Status != http.StatusNotFound {
		t.Errorf("delete conversation: %d", del.Status)
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
	completion, err := os.ReadFile("../../internal/fakeopenai/testdata/chat-completion.json")
	if err != nil {
		t.Fatal(err)
	}
	replay := &fakeopenai.ChatReplay{Transcript: transcript, JSON: completion}
	provider := httptest.NewServer(replay)
	t.Cleanup(provider.Close)
	s, key := askStackWithNotes(t, 12, func(c *config.Config) {
		c.ChatProvider, c.ChatBaseURL, c.ChatModel = "openai", provider.URL+"/v1", "gpt-4o-mini"
		c.ChatFirstTokenTimeout, c.ChatIdleTimeout = 500*time.Millisecond, 500*time.Millisecond
	})
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
	seen := replay.Requests()
	sent := seen[len(seen)-1].Body
	msgs := sent["messages"].([]any)
	if sent["stream"] != true || sent["model"] != "gpt-4o-mini" || sent["temperature"] != 0.2 || len(msgs) != 2 ||
		msgs[0].(map[string]any)["role"] != "system" || !strings.Contains(msgs[1].(map[string]any)["content"].(string), "Question: When may a modified work be distributed?") {
		t.Errorf("request to the provider: %v", sent)
	}

	// A follow-up is condensed with the history by the model (a request
	// answered whole, in JSON), and the condensed question is retrieved for
	// and answered; the conversation keeps the question as asked.
	follow := s.JSON(t, key, http.MethodPost, "/v1/ask", map[string]any{"question": "And unmodified?", "mode": "keyword",
		"conversation_id": a.Body["conversation_id"]})
	seen = replay.Requests()
	condense, answered := seen[len(seen)-2].Body, seen[len(seen)-1].Body
	if follow.Status != http.StatusOK || follow.Body["conversation_id"] != a.Body["conversation_id"] || condense["stream"] == true ||
		!strings.Contains(condense["messages"].([]any)[0].(map[string]any)["content"].(string), "Follow-up question: And unmodified?") ||
		!strings.HasSuffix(answered["messages"].([]any)[1].(map[string]any)["content"].(string), "Question: When may an unmodified work be distributed?") {
		t.Errorf("follow-up: %d %s; condense %v; answer %v", follow.Status, follow.Raw, condense, answered)
	}
	conv := s.JSON(t, key, http.MethodGet, "/v1/conversations/"+a.Body["conversation_id"].(string), nil)
	if turns := conv.Body["turns"].([]any); len(turns) != 2 || turns[1].(map[string]any)["question"] != "And unmodified?" {
		t.Errorf("conversation: %s", conv.Raw)
	}

	status, _, events := askStream(t, s, key, ask)
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
		status, header, events := askStream(t, s, key, ask)
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
		status, _, events := askStream(t, s, key, ask)
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
		status, _, events := askStream(t, s, key, ask)
		if last := events[len(events)-1]; status != http.StatusOK || last.Event != "error" || last.Data["code"] != "unavailable" {
			t.Errorf("broken stream: %d %v", status, events)
		}
	})
	t.Run("client disconnect", func(t *testing.T) {
		t.Logf("the provider saw the hang-up after %v", hangUp(t, s, key, replay, fakeopenai.Faults{}))
	})
}

// askStackWithNotes starts a stack on Redis db with two short notes
// ingested, tuned by tune.
func askStackWithNotes(t *testing.T, db int, tune func(*config.Config)) (*stack, string) {
	t.Helper()
	s := startStackOn(t, db, tune)
	key := s.Key(t, "acme")
	for i, text := range []string{"Work may be distributed unmodified.", "A modified work must be distributed with a notice of change."} {
		r := s.Upload(t, key, "note"+strconv.Itoa(i)+".txt", []byte(text), nil)
		if job := s.WaitJob(t, key, r.Body["job_id"].(string)); job["status"] != "succeeded" {
			t.Fatalf("job %v", job)
		}
	}
	return s, key
}

// Anthropic's Messages stream and Ollama's /api/chat NDJSON, replayed,
// answer through their langchaingo clients with their usage and model.
func TestAskAnthropicAndOllamaReplay(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		provider, file, model, path string
		db                          int
		prompt, completion          float64
	}{
		{"anthropic", "anthropic-stream.sse", "claude-3-5-haiku-20241022", "/v1/messages", 13, 640, 12},
		{"ollama", "ollama-chat.ndjson", "llama3.2:3b", "/api/chat", 14, 523, 9},
	} {
		t.Run(tc.provider, func(t *testing.T) {
			t.Parallel()
			transcript, err := os.ReadFile("../../internal/fakeopenai/testdata/" + tc.file)
			if err != nil {
				t.Fatal(err)
			}
			replay := &fakeopenai.ChatReplay{Transcript: transcript, NDJSON: tc.provider == "ollama"}
			provider := httptest.NewServer(replay)
			t.Cleanup(provider.Close)
			s, key := askStackWithNotes(t, tc.db, func(c *config.Config) {
				c.ChatProvider, c.ChatModel = tc.provider, tc.model
				c.ChatBaseURL = provider.URL
				if tc.provider == "anthropic" {
					c.ChatBaseURL, c.ChatAPIKey = provider.URL+"/v1", "test-anthropic-key"
				}
			})
			ask := map[string]any{"question": "When may a modified work be distributed?", "mode": "keyword"}
			a := s.JSON(t, key, http.MethodPost, "/v1/ask", ask)
			u, _ := a.Body["usage"].(map[string]any)
			if a.Status != http.StatusOK || a.Body["answer"] != "A modified work must say it was changed [1]." ||
				a.Body["model"] != tc.model || u["prompt_tokens"] != tc.prompt || u["completion_tokens"] != tc.completion {
				t.Errorf("ask: %d %s", a.Status, a.Raw)
			}
			checkCitations(t, a.Body["answer"].(string), a.Body["citations"].([]any))
			seen := replay.Requests()
			last := seen[len(seen)-1]
			if last.Path != tc.path || last.Body["model"] != tc.model || last.Body["stream"] != true {
				t.Errorf("request: %s %v", last.Path, last.Body)
			}
			if tc.provider == "anthropic" && last.Header.Get("X-Api-Key") != "test-anthropic-key" {
				t.Errorf("x-api-key = %q", last.Header.Get("X-Api-Key"))
			}
			status, _, events := askStream(t, s, key, ask)
			if status != http.StatusOK || len(events) != 4 || events[1].Data["text"] != "A modified work" ||
				events[2].Data["text"] != " must say it was changed [2]." || events[3].Event != "done" {
				t.Errorf("stream: %d %v", status, events)
			}
		})
	}
}

// A 429 with Retry-After is waited out and retried; a provider failing on
// every retry falls back to the extractive answerer, and after enough
// failures its breaker opens and it is not called at all.
func TestAskRetryFallbackBreaker(t *testing.T) {
	t.Parallel()
	transcript, err := os.ReadFile("../../internal/fakeopenai/testdata/chat-stream.sse")
	if err != nil {
		t.Fatal(err)
	}
	replay := &fakeopenai.ChatReplay{Transcript: transcript}
	provider := httptest.NewServer(replay)
	t.Cleanup(provider.Close)
	s, key := askStackWithNotes(t, 15, func(c *config.Config) {
		c.ChatProvider, c.ChatBaseURL, c.ChatModel = "openai", provider.URL+"/v1", "gpt-4o-mini"
		c.ChatFallback = []string{"extractive"}
		c.ChatBreakerFailures, c.ChatBreakerCooldown, c.ChatRetries = 3, time.Minute, 2
	})
	ask := map[string]any{"question": "When may a modified work be distributed?", "mode": "keyword"}

	replay.SetFaults(fakeopenai.Faults{Status: http.StatusTooManyRequests, RetryAfter: 1, Count: 1})
	start := time.Now()
	a := s.JSON(t, key, http.MethodPost, "/v1/ask", ask)
	if took := time.Since(start); a.Status != http.StatusOK || a.Body["model"] != "gpt-4o-mini" || took < time.Second || len(replay.Requests()) != 2 {
		t.Errorf("after a 429 with Retry-After 1: %d %v in %v after %d requests", a.Status, a.Body["model"], took, len(replay.Requests()))
	}

	replay.SetFaults(fakeopenai.Faults{Status: http.StatusInternalServerError})
	a = s.JSON(t, key, http.MethodPost, "/v1/ask", ask)
	if a.Status != http.StatusOK || a.Body["model"] != "extractive" || !strings.Contains(a.Body["answer"].(string), "[1]") {
		t.Errorf("failing provider: %d %s; want the extractive fallback", a.Status, a.Raw)
	}
	if n := len(replay.Requests()); n != 5 {
		t.Errorf("%d requests; want 2 + 3 (one try, two retries)", n)
	}
	// Three consecutive failures opened the breaker: no call now.
	a = s.JSON(t, key, http.MethodPost, "/v1/ask", ask)
	if a.Status != http.StatusOK || a.Body["model"] != "extractive" || len(replay.Requests()) != 5 {
		t.Errorf("open breaker: %d %v, %d requests", a.Status, a.Body["model"], len(replay.Requests()))
	}
}

// hangUp streams an answer whose provider stalls after its first event,
// hangs up after the first token, and returns how long the provider's
// connection took to close (failing past 2 s), leaving the faults after.
func hangUp(t testing.TB, s *stack, key string, replay *fakeopenai.ChatReplay, after fakeopenai.Faults) time.Duration {
	t.Helper()
	replay.SetFaults(fakeopenai.Faults{Hang: time.Minute, HangAfter: 2})
	defer replay.SetFaults(after)
	gone := replay.Gone()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	body, _ := json.Marshal(map[string]any{"question": "May a modified work be distributed?", "mode": "keyword", "stream": true})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/v1/ask", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() && sc.Text() != "event: token" {
	}
	cancel()
	resp.Body.Close()
	start := time.Now()
	select {
	case <-gone:
		return time.Since(start)
	case <-time.After(2 * time.Second):
		t.Fatal("the provider's connection stayed open after the client left")
		return 0
	}
}
