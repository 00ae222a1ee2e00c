package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/ragpipe/ragpipe/pkg/answer"
	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// Answerer answers questions and condenses follow-ups (answer.Chain).
type Answerer interface {
	answer.Answerer
	Condense(ctx context.Context, history [][2]string, question string) string
}

// AskOptions configure POST /v1/ask and /v1/ask/batch.
type AskOptions struct {
	Answerer Answerer
	// FirstToken bounds the wait for the answer's first text: past it the
	// call ends with 504 provider_timeout, before anything is written.
	FirstToken time.Duration
	// Idle bounds the wait for each later piece of text: past it a JSON
	// answer is a 504, a stream ends with an error event.
	Idle time.Duration
	// MaxQuestionTokens is the longest question, in tokens.
	MaxQuestionTokens int
	// BatchMax is the most questions of one batch; BatchConcurrency how
	// many of them are answered at once.
	BatchMax, BatchConcurrency int
}

const (
	defaultAskTopK      = 8
	defaultAskMaxTokens = 512
	maxAskTokens        = 4000
)

type askRequest struct {
	Question string `json:"question"`
	TopK     int    `json:"top_k"`
	Mode     string `json:"mode"`
	filterRequest
	MaxTokens      *int     `json:"max_tokens"`
	Temperature    *float64 `json:"temperature"`
	Stream         bool     `json:"stream"`
	ConversationID string   `json:"conversation_id"`
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
		if _, err := uuid.Parse(r.ConversationID); err != nil || len(r.ConversationID) != 36 {
			return q, aq, ragpipe.FieldErrorf("conversation_id", "%q is not a conversation ID", r.ConversationID)
		}
	}
	for _, id := range q.DocumentIDs {
		if _, err := uuid.Parse(id); err != nil || len(id) != 36 {
			return q, aq, ragpipe.FieldErrorf("document_ids", "%q is not a document ID", id)
		}
	}
	if err := r.validateFilters(&q, weights); err != nil {
		return q, aq, err
	}
	return q, aq, nil
}

// generation is the outcome of an answerer's call.
type generation struct {
	result answer.Result
	err    error
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
		res, err := a.Answer(ctx, q, func(d string) error {
			select {
			case r.deltas <- d:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		r.done <- generation{result: res, err: err}
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

// chatError is the error of a generation that failed before anything was
// written: 504 for a stall, else 503, with how long to wait (the
// provider's Retry-After, else 5 s).
func chatError(err error) (*ragpipe.Error, time.Duration) {
	retry := 5 * time.Second
	var wait interface{ RetryAfter() time.Duration }
	if errors.As(err, &wait) && wait.RetryAfter() > 0 {
		retry = wait.RetryAfter()
	}
	if stalled(err) {
		return ragpipe.Wrap(err, ragpipe.ETIMEOUT, "the answering model did not answer in time"), retry
	}
	return ragpipe.Wrap(err, ragpipe.EUNAVAILABLE, "the answering model is unavailable; retry later"), retry
}

func stalled(err error) bool {
	return errors.Is(err, errStalled) || errors.Is(err, answer.ErrFirstTokenTimeout) || errors.Is(err, context.DeadlineExceeded)
}

// asker answers questions for /v1/ask and /v1/ask/batch.
type asker struct {
	s       Store
	emb     QueryEmbedder
	weights ragpipe.SearchWeights
	o       AskOptions
	log     *slog.Logger
	metrics *chatMetrics
}

// prepared is a question ready to be answered: its passages retrieved.
type prepared struct {
	tenant         string
	conversationID string
	asked          string          // the question as asked, for the conversation
	question       answer.Question // as answered: condensed with the history for a follow-up
	citations      []ragpipe.Citation
	retrieval      time.Duration
}

// prepare validates req, reads its conversation's history and retrieves
// the passages: for a follow-up, with the question condensed with the
// history, which is also the question the answerer is given.
func (a *asker) prepare(ctx context.Context, tenant string, req askRequest) (*prepared, error) {
	q, aq, err := req.validate(tenant, a.weights, a.o.MaxQuestionTokens)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if req.ConversationID != "" {
		history, err := a.s.ConversationHistory(ctx, tenant, req.ConversationID, maxHistoryTurns)
		if err != nil {
			return nil, err
		}
		q.Query = a.o.Answerer.Condense(ctx, history, q.Query)
	}
	asked := aq.Text
	aq.Text = q.Query
	if q.Mode != ragpipe.SearchKeyword {
		var err error
		if q.Vector, q.Space, err = a.emb.EmbedQuery(ctx, q.TenantID, q.Query); err != nil {
			return nil, err
		}
	}
	results, err := a.s.Search(ctx, q)
	if err != nil {
		return nil, err
	}
	p := &prepared{tenant: tenant, conversationID: req.ConversationID, asked: asked, question: aq,
		citations: make([]ragpipe.Citation, len(results)), retrieval: time.Since(start)}
	for i, r := range results {
		p.citations[i] = ragpipe.Citation{N: i + 1, DocumentID: r.DocumentID, ChunkIndex: r.ChunkIndex, PageStart: r.PageStart,
			PageEnd: r.PageEnd, Section: r.Section, Text: r.Text, Score: r.Score}
		p.question.Passages = append(p.question.Passages, answer.Passage{N: i + 1, Text: r.Text, Section: r.Section,
			PageStart: r.PageStart, PageEnd: r.PageEnd})
	}
	return p, nil
}

// maxHistoryTurns is how many of a conversation's last turns a follow-up sees.
const maxHistoryTurns = 5

// askResponse is an answer as JSON.
type askResponse struct {
	Answer         string             `json:"answer"`
	Citations      []ragpipe.Citation `json:"citations"`
	Model          string             `json:"model"`
	Usage          usageJSON          `json:"usage"`
	Timings        timingsJSON        `json:"timings"`
	ConversationID string             `json:"conversation_id"`
}

// saved is an answer as stored.
type saved struct {
	conversationID string
	answer         string             // its markers renumbered in order of appearance
	citations      []ragpipe.Citation // the passages cited, renumbered so
	cited          []int              // their numbers among the passages given
}

// finish counts a finished answer in the metrics and stores its turn, with
// the markers renumbered and only the passages cited kept.
func (a *asker) finish(ctx context.Context, p *prepared, text string, res answer.Result, firstToken, total time.Duration) (saved, error) {
	a.metrics.observe(res, firstToken, total)
	s := saved{}
	s.answer, s.cited = answer.Cite(text, len(p.citations))
	s.citations = make([]ragpipe.Citation, len(s.cited))
	for k, n := range s.cited {
		s.citations[k] = p.citations[n-1]
		s.citations[k].N = k + 1
	}
	var err error
	s.conversationID, err = a.s.SaveTurn(context.WithoutCancel(ctx), p.tenant, p.conversationID, ragpipe.Turn{
		Question: p.asked, Answer: s.answer, Citations: s.citations, Provider: res.Provider, Model: res.Model,
		PromptTokens: res.PromptTokens, CompletionTokens: res.CompletionTokens})
	return s, err
}

// answer runs the answerer to its end and stores the turn. A failure of
// the model is a chatError with how long to wait.
func (a *asker) answer(ctx context.Context, p *prepared) (*askResponse, time.Duration, error) {
	genStart := time.Now()
	run := startAnswer(ctx, a.o.Answerer, p.question)
	defer run.cancel()
	var text strings.Builder
	var firstToken time.Duration
	wait := a.o.FirstToken
	for {
		d, end, ok := run.next(ctx, wait)
		if !ok {
			if end.err != nil {
				if ctx.Err() != nil {
					return nil, 0, ctx.Err()
				}
				a.log.Warn("ask: the answering model failed", "err", end.err)
				e, retry := chatError(end.err)
				return nil, retry, e
			}
			s, err := a.finish(ctx, p, text.String(), end.result, firstToken, time.Since(genStart))
			if err != nil {
				return nil, 0, err
			}
			return &askResponse{Answer: s.answer, Citations: s.citations, Model: end.result.Model,
				Usage:          usageJSON{end.result.PromptTokens, end.result.CompletionTokens},
				Timings:        timingsJSON{RetrievalMS: ms(p.retrieval), GenerationMS: ms(time.Since(genStart))},
				ConversationID: s.conversationID}, 0, nil
		}
		if text.Len() == 0 {
			firstToken = time.Since(genStart)
		}
		text.WriteString(d)
		wait = a.o.Idle
	}
}

func handleAsk(a *asker) echo.HandlerFunc {
	return func(c echo.Context) error {
		var req askRequest
		if err := c.Bind(&req); err != nil {
			return ragpipe.Errorf(ragpipe.EINVALID, "body must be a JSON object with a \"question\"")
		}
		ctx := c.Request().Context()
		p, err := a.prepare(ctx, tenantOf(c), req)
		if err != nil {
			return askError(c, err)
		}
		if req.Stream || strings.Contains(c.Request().Header.Get(echo.HeaderAccept), "text/event-stream") {
			return a.stream(c, p)
		}
		out, retry, err := a.answer(ctx, p)
		if err != nil {
			if ctx.Err() != nil {
				return nil // the client left
			}
			if retry > 0 {
				c.Response().Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(retry.Seconds()))))
			}
			return err
		}
		return c.JSON(http.StatusOK, out)
	}
}

// askError answers a failure to prepare: an embedding provider's as a
// search's, anything else as it is.
func askError(c echo.Context, err error) error {
	var pe interface{ RetryAfter() time.Duration }
	if errors.As(err, &pe) || errors.Is(err, context.DeadlineExceeded) {
		return providerError(c, err)
	}
	return err
}

// stream writes the answer as server-sent events: citations (every passage
// the answerer was given, numbered as its markers name them), a token event
// per piece of text, then done, or error when the answerer fails or stalls
// once text has gone out. Nothing is written before the first token.
func (a *asker) stream(c echo.Context, p *prepared) error {
	ctx := c.Request().Context()
	genStart := time.Now()
	run := startAnswer(ctx, a.o.Answerer, p.question)
	defer run.cancel()
	first, end, ok := run.next(ctx, a.o.FirstToken)
	if !ok && end.err != nil {
		if ctx.Err() != nil {
			return nil
		}
		a.log.Warn("ask: the answering model failed before its first token", "err", end.err)
		e, retry := chatError(end.err)
		c.Response().Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(retry.Seconds()))))
		return e
	}
	firstToken := time.Since(genStart)
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
	if err := send("citations", map[string]any{"citations": p.citations}); err != nil {
		return nil
	}
	var text strings.Builder
	for delta := first; ok; delta, end, ok = run.next(ctx, a.o.Idle) {
		text.WriteString(delta)
		if err := send("token", map[string]string{"text": delta}); err != nil {
			return nil // the client left; run.cancel ends the call
		}
	}
	if end.err != nil {
		if ctx.Err() != nil {
			return nil
		}
		a.log.Warn("ask: the answering model failed mid-answer", "err", end.err)
		code, msg := ragpipe.EUNAVAILABLE, "the answering model failed mid-answer"
		if stalled(end.err) {
			code, msg = ragpipe.ETIMEOUT, "the answering model stalled mid-answer"
		}
		_ = send("error", map[string]string{"code": code, "message": msg})
		return nil
	}
	s, err := a.finish(ctx, p, text.String(), end.result, firstToken, time.Since(genStart))
	if err != nil {
		a.log.Error("ask: store the conversation turn", "err", err)
		_ = send("error", map[string]string{"code": ragpipe.EUNAVAILABLE, "message": "the answer could not be stored"})
		return nil
	}
	_ = send("done", map[string]any{
		"model":           end.result.Model,
		"usage":           usageJSON{end.result.PromptTokens, end.result.CompletionTokens},
		"timings":         timingsJSON{RetrievalMS: ms(p.retrieval), GenerationMS: ms(time.Since(genStart))},
		"cited":           nonNil(s.cited),
		"conversation_id": s.conversationID,
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

// batchItem is one result of a batch: an answer or an error.
type batchItem struct {
	*askResponse
	Error *errorDetail `json:"error,omitempty"`
}

// handleAskBatch answers up to BatchMax questions, BatchConcurrency at a
// time, in request order; one failing never fails the others.
func handleAskBatch(a *asker) echo.HandlerFunc {
	return func(c echo.Context) error {
		var req struct {
			Requests []askRequest `json:"requests"`
		}
		if err := c.Bind(&req); err != nil {
			return ragpipe.Errorf(ragpipe.EINVALID, "body must be a JSON object with \"requests\"")
		}
		if len(req.Requests) == 0 || len(req.Requests) > a.o.BatchMax {
			return ragpipe.FieldErrorf("requests", "must hold 1 to %d questions", a.o.BatchMax)
		}
		ctx, tenant := c.Request().Context(), tenantOf(c)
		results := make([]batchItem, len(req.Requests))
		slots := make(chan struct{}, a.o.BatchConcurrency)
		var wg sync.WaitGroup
		for i, r := range req.Requests {
			if r.Stream {
				results[i].Error = &errorDetail{Code: "invalid_stream", Field: "stream", Message: "stream: a batch answers as JSON"}
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				select {
				case slots <- struct{}{}:
				case <-ctx.Done():
					return
				}
				defer func() { <-slots }()
				results[i] = a.batchAnswer(ctx, tenant, r)
			}()
		}
		wg.Wait()
		if ctx.Err() != nil {
			return nil // the client left
		}
		rid := c.Response().Header().Get(echo.HeaderXRequestID)
		for i := range results {
			if results[i].Error != nil {
				results[i].Error.RequestID = rid
			}
		}
		return c.JSON(http.StatusOK, map[string]any{"results": results})
	}
}

func (a *asker) batchAnswer(ctx context.Context, tenant string, r askRequest) batchItem {
	p, err := a.prepare(ctx, tenant, r)
	var out *askResponse
	if err == nil {
		out, _, err = a.answer(ctx, p)
	}
	if err == nil {
		return batchItem{askResponse: out}
	}
	var de *ragpipe.Error
	if errors.As(err, &de) {
		return batchItem{Error: &errorDetail{Code: de.Code, Message: de.Message, Field: de.Field, Details: de.Details}}
	}
	a.log.Error("ask batch: item failed", "err", err)
	return batchItem{Error: &errorDetail{Code: ragpipe.EINTERNAL, Message: "internal error"}}
}
