package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/ragpipe/ragpipe/pkg/answer"
	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// AskOptions configure POST /v1/ask.
type AskOptions struct {
	Answerer answer.Answerer
	// FirstToken bounds the wait for the answer's first text: past it the
	// call ends with 504 provider_timeout, before anything is written.
	FirstToken time.Duration
	// Idle bounds the wait for each later piece of text: past it a JSON
	// answer is a 504, a stream ends with an error event.
	Idle time.Duration
	// MaxQuestionTokens is the longest question, in tokens.
	MaxQuestionTokens int
}

const (
	defaultAskTopK      = 8
	defaultAskMaxTokens = 512
	maxAskTokens        = 4000
)

type askRequest struct {
	Question      string                     `json:"question"`
	TopK          int                        `json:"top_k"`
	Mode          string                     `json:"mode"`
	Language      string                     `json:"language"`
	Collection    string                     `json:"collection"`
	DocumentIDs   []string                   `json:"document_ids"`
	Metadata      map[string]json.RawMessage `json:"metadata"`
	CreatedAfter  string                     `json:"created_after"`
	CreatedBefore string                     `json:"created_before"`
	Weights       *struct {
		Keyword *float64 `json:"keyword"`
		Vector  *float64 `json:"vector"`
	} `json:"weights"`
	MaxTokens      *int     `json:"max_tokens"`
	Temperature    *float64 `json:"temperature"`
	Stream         bool     `json:"stream"`
	ConversationID string   `json:"conversation_id"`
}

type citationJSON struct {
	N          int     `json:"n"`
	DocumentID string  `json:"document_id"`
	ChunkIndex int     `json:"chunk_index"`
	PageStart  int     `json:"page_start"`
	PageEnd    int     `json:"page_end"`
	Section    string  `json:"section"`
	Text       string  `json:"text"`
	Score      float64 `json:"score"`
}

type usageJSON struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
}

type timingsJSON struct {
	RetrievalMS  float64 `json:"retrieval_ms"`
	GenerationMS float64 `json:"generation_ms"`
}

// validate reads r into a search for the passages and the question's
// settings; a bad field is 422 naming it, a question past the token limit
// 400 token_limit_exceeded.
func (r askRequest) validate(tenant string, weights ragpipe.SearchWeights, maxQuestionTokens int) (ragpipe.SearchQuery, answer.Question, error) {
	question := strings.TrimSpace(r.Question)
	q := ragpipe.SearchQuery{TenantID: tenant, Query: question, TopK: r.TopK, Mode: r.Mode,
		SearchFilter: ragpipe.SearchFilter{Collection: r.Collection, DocumentIDs: r.DocumentIDs}}
	aq := answer.Question{Text: question, MaxTokens: defaultAskMaxTokens}
	if question == "" {
		return q, aq, ragpipe.FieldErrorf("question", "is required")
	}
	if err := checkText("question", question); err != nil {
		return q, aq, err
	}
	tokens, err := answer.CountTokens(question)
	if err != nil {
		return q, aq, err
	}
	if tokens > maxQuestionTokens {
		e := ragpipe.Errorf(ragpipe.ETOKENLIMIT, "the question has %d tokens; the limit is %d", tokens, maxQuestionTokens)
		e.Details = map[string]int{"tokens": tokens, "limit": maxQuestionTokens}
		return q, aq, e
	}
	if q.TopK == 0 {
		q.TopK = defaultAskTopK
	}
	if q.TopK < 1 || q.TopK > maxTopK {
		return q, aq, ragpipe.FieldErrorf("top_k", "must be from 1 to %d", maxTopK)
	}
	switch q.Mode {
	case "":
		q.Mode = ragpipe.SearchHybrid
	case ragpipe.SearchHybrid, ragpipe.SearchVector, ragpipe.SearchKeyword:
	default:
		return q, aq, ragpipe.FieldErrorf("mode", "must be hybrid, vector or keyword")
	}
	if r.MaxTokens != nil {
		if *r.MaxTokens < 1 || *r.MaxTokens > maxAskTokens {
			return q, aq, ragpipe.FieldErrorf("max_tokens", "must be from 1 to %d", maxAskTokens)
		}
		aq.MaxTokens = *r.MaxTokens
	}
	if r.Temperature != nil {
		if *r.Temperature < 0 || *r.Temperature > 2 || math.IsNaN(*r.Temperature) {
			return q, aq, ragpipe.FieldErrorf("temperature", "must be a number from 0 to 2")
		}
		aq.Temperature = *r.Temperature
	}
	if r.ConversationID != "" {
		return q, aq, ragpipe.FieldErrorf("conversation_id", "conversations are not available yet: ask without conversation_id")
	}
	search := searchRequest{Collection: r.Collection, DocumentIDs: r.DocumentIDs, Metadata: r.Metadata, Language: r.Language,
		CreatedAfter: r.CreatedAfter, CreatedBefore: r.CreatedBefore, Weights: r.Weights}
	for _, id := range q.DocumentIDs {
		if _, err := uuid.Parse(id); err != nil || len(id) != 36 {
			return q, aq, ragpipe.FieldErrorf("document_ids", "%q is not a document ID", id)
		}
	}
	if err := search.validateFilters(&q, weights); err != nil {
		return q, aq, err
	}
	return q, aq, nil
}

// generation is the outcome of an answerer's call.
type generation struct {
	usage answer.Usage
	err   error
}

// askRun is one answer being generated: its text arrives on deltas, its
// end on done.
type askRun struct {
	deltas chan string
	done   chan generation
	cancel context.CancelFunc
}

func startAnswer(ctx context.Context, a answer.Answerer, q answer.Question) *askRun {
	ctx, cancel := context.WithCancel(ctx)
	r := &askRun{deltas: make(chan string), done: make(chan generation, 1), cancel: cancel}
	go func() {
		u, err := a.Answer(ctx, q, func(d string) error {
			select {
			case r.deltas <- d:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		r.done <- generation{usage: u, err: err}
	}()
	return r
}

// errStalled is a provider that stopped producing text within its timeout.
var errStalled = errors.New("the model produced no text within its timeout")

// next returns the next piece of text, or the end of the run (ok false),
// waiting at most wait. A stall or the client leaving cancels the call.
func (r *askRun) next(ctx context.Context, wait time.Duration) (delta string, end generation, ok bool) {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case d := <-r.deltas:
		return d, generation{}, true
	case g := <-r.done:
		return "", g, false
	case <-t.C:
		r.cancel()
		return "", generation{err: errStalled}, false
	case <-ctx.Done():
		r.cancel()
		return "", generation{err: ctx.Err()}, false
	}
}

// chatError is what a failed generation answers before anything was
// written: 504 with Retry-After for a stall, else 503.
func chatError(c echo.Context, err error) error {
	c.Response().Header().Set("Retry-After", "5")
	if errors.Is(err, errStalled) || errors.Is(err, context.DeadlineExceeded) {
		return ragpipe.Wrap(err, ragpipe.ETIMEOUT, "the answering model did not answer in time")
	}
	return ragpipe.Wrap(err, ragpipe.EUNAVAILABLE, "the answering model is unavailable; retry later")
}

func handleAsk(s Store, emb QueryEmbedder, weights ragpipe.SearchWeights, o AskOptions, log *slog.Logger) echo.HandlerFunc {
	return func(c echo.Context) error {
		var req askRequest
		if err := c.Bind(&req); err != nil {
			return ragpipe.Errorf(ragpipe.EINVALID, "body must be a JSON object with a \"question\"")
		}
		q, aq, err := req.validate(tenantOf(c), weights, o.MaxQuestionTokens)
		if err != nil {
			return err
		}
		stream := req.Stream || strings.Contains(c.Request().Header.Get(echo.HeaderAccept), "text/event-stream")
		ctx := c.Request().Context()
		start := time.Now()
		if q.Mode != ragpipe.SearchKeyword {
			vs, err := emb.Embed(ctx, []string{q.Query})
			if err != nil {
				return providerError(c, err)
			}
			q.Vector = vs[0]
		}
		results, err := s.Search(ctx, q)
		if err != nil {
			return err
		}
		retrieval := time.Since(start)
		citations := make([]citationJSON, len(results))
		for i, r := range results {
			citations[i] = citationJSON{N: i + 1, DocumentID: r.DocumentID, ChunkIndex: r.ChunkIndex, PageStart: r.PageStart,
				PageEnd: r.PageEnd, Section: r.Section, Text: r.Text, Score: r.Score}
			aq.Passages = append(aq.Passages, answer.Passage{N: i + 1, Text: r.Text, Section: r.Section,
				PageStart: r.PageStart, PageEnd: r.PageEnd})
		}
		genStart := time.Now()
		run := startAnswer(ctx, o.Answerer, aq)
		defer run.cancel()
		first, end, ok := run.next(ctx, o.FirstToken)
		if !ok && end.err != nil {
			if ctx.Err() != nil {
				return nil // the client left
			}
			log.Warn("ask: the answering model failed before its first token", "model", o.Answerer.Model(), "err", end.err)
			return chatError(c, end.err)
		}
		timings := func() timingsJSON {
			return timingsJSON{RetrievalMS: ms(retrieval), GenerationMS: ms(time.Since(genStart))}
		}
		if stream {
			return streamAnswer(c, run, first, ok, end, citations, o, timings, log)
		}
		var text strings.Builder
		text.WriteString(first)
		for ok {
			var d string
			if d, end, ok = run.next(ctx, o.Idle); ok {
				text.WriteString(d)
			}
		}
		if end.err != nil {
			if ctx.Err() != nil {
				return nil
			}
			log.Warn("ask: the answering model failed", "model", o.Answerer.Model(), "err", end.err)
			return chatError(c, end.err)
		}
		answerText, cited := answer.Cite(text.String(), len(citations))
		out := struct {
			Answer    string         `json:"answer"`
			Citations []citationJSON `json:"citations"`
			Model     string         `json:"model"`
			Usage     usageJSON      `json:"usage"`
			Timings   timingsJSON    `json:"timings"`
		}{Answer: answerText, Citations: make([]citationJSON, len(cited)), Model: o.Answerer.Model(),
			Usage: usageJSON{end.usage.PromptTokens, end.usage.CompletionTokens}, Timings: timings()}
		for k, n := range cited {
			out.Citations[k] = citations[n-1]
			out.Citations[k].N = k + 1
		}
		return c.JSON(http.StatusOK, out)
	}
}

// streamAnswer writes the answer as server-sent events: citations (every
// passage the answerer was given, numbered as its markers name them), a
// token event per piece of text, then done, or error when the answerer
// fails or stalls once text has gone out.
func streamAnswer(c echo.Context, run *askRun, first string, ok bool, end generation, citations []citationJSON,
	o AskOptions, timings func() timingsJSON, log *slog.Logger) error {
	ctx := c.Request().Context()
	w := c.Response()
	w.Header().Set(echo.HeaderContentType, "text/event-stream")
	w.Header().Set(echo.HeaderCacheControl, "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(event string, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b); err != nil {
			return err
		}
		w.Flush()
		return nil
	}
	if err := send("citations", map[string]any{"citations": citations}); err != nil {
		return nil
	}
	var text strings.Builder
	for delta := first; ok; delta, end, ok = run.next(ctx, o.Idle) {
		text.WriteString(delta)
		if err := send("token", map[string]string{"text": delta}); err != nil {
			return nil // the client left; run.cancel ends the call
		}
	}
	if end.err != nil {
		if ctx.Err() != nil {
			return nil
		}
		log.Warn("ask: the answering model failed mid-answer", "model", o.Answerer.Model(), "err", end.err)
		code, msg := ragpipe.EUNAVAILABLE, "the answering model failed mid-answer"
		if errors.Is(end.err, errStalled) {
			code, msg = ragpipe.ETIMEOUT, "the answering model stalled mid-answer"
		}
		_ = send("error", map[string]string{"code": code, "message": msg})
		return nil
	}
	_, cited := answer.Cite(text.String(), len(citations))
	_ = send("done", map[string]any{
		"model":   o.Answerer.Model(),
		"usage":   usageJSON{end.usage.PromptTokens, end.usage.CompletionTokens},
		"timings": timings(),
		"cited":   nonNil(cited),
	})
	return nil
}

func nonNil(ns []int) []int {
	if ns == nil {
		return []int{}
	}
	return ns
}

func ms(d time.Duration) float64 { return math.Round(float64(d.Microseconds())/10) / 100 }
