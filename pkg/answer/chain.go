package answer

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/ragpipe/ragpipe/pkg/embed"
)

// ErrFirstTokenTimeout is a provider that produced no text in time.
var ErrFirstTokenTimeout = errors.New("the model produced no text before the first-token timeout")

// Link is one answerer of a Chain, with the guard of its provider.
type Link struct {
	Name     string // the provider's name, for logs
	Answerer Answerer
	// Guard holds the provider's budgets and circuit breaker; nil for
	// none (the extractive answerer).
	Guard *embed.CallGuard
}

// ChainOptions bound each link's attempts.
type ChainOptions struct {
	// FirstToken bounds the wait for a link's first text; past it the
	// attempt fails (a failure for the breaker) and the next link is tried.
	FirstToken time.Duration
	// Retries is how many times a link's 429s and 5xx are retried before
	// its first text, waiting what the provider's Retry-After asks, or
	// Backoff doubling.
	Retries int
	Backoff time.Duration
	// MaxWait is the longest Retry-After honoured; a longer one moves on
	// to the next link.
	MaxWait time.Duration
	Logger  *slog.Logger
}

// Chain answers with its first link, falling back to the next when one
// fails, stalls or has its breaker open before producing any text. Once
// text has gone out, a failure ends the answer: the client has it.
type Chain struct {
	links []Link
	o     ChainOptions
}

// NewChain returns a Chain over links, tried in order.
func NewChain(o ChainOptions, links ...Link) *Chain { return &Chain{links: links, o: o} }

// MaxFirstToken is the longest the chain can take to its first text: every
// link stalling to its timeout after retrying, each retry after the longest
// wait.
func (c *Chain) MaxFirstToken() time.Duration {
	perLink := time.Duration(c.o.Retries+1)*c.o.FirstToken + time.Duration(c.o.Retries)*c.o.MaxWait
	return time.Duration(len(c.links)) * perLink
}

// Answer tries each link in turn; see Chain.
func (c *Chain) Answer(ctx context.Context, q Question, onText func(string) error) (Result, error) {
	var started atomic.Bool
	emit := func(d string) error {
		started.Store(true)
		return onText(d)
	}
	var err error
	for i, l := range c.links {
		var r Result
		r, err = c.try(ctx, l, q, emit, &started)
		if err == nil || started.Load() || ctx.Err() != nil {
			return r, err
		}
		if i+1 < len(c.links) {
			c.o.Logger.Warn("answering model failed before its first token; falling back",
				"provider", l.Name, "next", c.links[i+1].Name, "err", err)
		}
	}
	return Result{}, err
}

// try runs one link, with its retries.
func (c *Chain) try(ctx context.Context, l Link, q Question, emit func(string) error, started *atomic.Bool) (Result, error) {
	wait := c.o.Backoff
	for attempt := 0; ; attempt++ {
		r, err := c.once(ctx, l, q, emit, started)
		// Only the provider's 429s and 5xx are retried; a stall, a refusal,
		// an open breaker or a spent budget move on to the next link.
		var pe *embed.ProviderError
		if err == nil || started.Load() || attempt >= c.o.Retries || !errors.As(err, &pe) ||
			pe.StatusCode != http.StatusTooManyRequests && pe.StatusCode < 500 {
			return r, err
		}
		if pe.Wait > 0 {
			if pe.Wait > c.o.MaxWait {
				return r, err
			}
			wait = pe.Wait
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return r, ctx.Err()
		}
		wait *= 2
	}
}

// once runs one attempt under the first-token timeout and the link's guard.
func (c *Chain) once(ctx context.Context, l Link, q Question, emit func(string) error, started *atomic.Bool) (Result, error) {
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	timer := time.AfterFunc(c.o.FirstToken, func() {
		if !started.Load() {
			cancel(ErrFirstTokenTimeout)
		}
	})
	defer timer.Stop()
	var r Result
	call := func() (err error) {
		r, err = l.Answerer.Answer(actx, q, emit)
		if err != nil && errors.Is(context.Cause(actx), ErrFirstTokenTimeout) && ctx.Err() == nil {
			// A stall: the provider's trouble, counted by its breaker.
			err = &embed.ProviderError{Provider: "chat provider " + l.Name, Err: ErrFirstTokenTimeout}
		}
		return err
	}
	tokens := q.MaxTokens + len(q.Text)/4
	for _, p := range q.Passages {
		tokens += len(p.Text) / 4
	}
	return r, l.guarded(actx, tokens, call)
}

// guarded runs call through the link's guard (its budgets and breaker),
// charged tokens, or straight when it has none.
func (l Link) guarded(ctx context.Context, tokens int, call func() error) error {
	if l.Guard == nil {
		return call()
	}
	return l.Guard.Do(ctx, tokens, call)
}

// Condenser rewrites a follow-up question, given the conversation before
// it, into one that stands on its own (LLM does).
type Condenser interface {
	Condense(ctx context.Context, history [][2]string, question string) (string, error)
}

// Condense makes the query that retrieves the passages for a follow-up
// question: the first link that can condense does (through its guard,
// under the first-token timeout); when none can, or all fail, the previous
// question's terms join the question's, as the extractive answerer wants.
func (c *Chain) Condense(ctx context.Context, history [][2]string, question string) string {
	if len(history) == 0 {
		return question
	}
	for _, l := range c.links {
		cond, ok := l.Answerer.(Condenser)
		if !ok {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 2*c.o.FirstToken)
		var condensed string
		call := func() (err error) {
			condensed, err = cond.Condense(cctx, history, question)
			return err
		}
		err := l.guarded(cctx, 300, call)
		cancel()
		if err == nil {
			return condensed
		}
		c.o.Logger.Warn("condensing a follow-up question failed", "provider", l.Name, "err", err)
	}
	return history[len(history)-1][0] + " " + question
}
