package embed

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sony/gobreaker/v2"
)

// Budget hands out a per-minute allowance shared by every process, e.g. in
// Redis: Take grants n units under key, or reports how long to wait first.
type Budget interface {
	Take(ctx context.Context, key string, perMinute, n int) (wait time.Duration, err error)
}

// GuardOptions bound the calls a Guard lets through to its provider.
type GuardOptions struct {
	Name              string // the provider's name, for budget keys and errors
	Budget            Budget // nil: no request or token limits
	RequestsPerMinute int    // 0: unlimited
	TokensPerMinute   int    // 0: unlimited; tokens are estimated as characters / 4
	BreakerFailures   int    // consecutive transient failures that open the breaker; 0 disables it
	BreakerCooldown   time.Duration
}

// Guard wraps an embedding provider in a CallGuard: shared rate limits
// (requests and tokens per minute) and a circuit breaker. Whatever it
// refuses is a transient *ProviderError whose RetryAfter says when to try
// again, so a queued task waits instead of hammering a provider that is
// over its limits or down.
type Guard struct {
	next  Embedder
	calls *CallGuard
}

// ErrThrottled and ErrBreakerOpen are the causes of a CallGuard's refusals.
var (
	ErrThrottled   = errors.New("provider rate limit of this deployment reached")
	ErrBreakerOpen = errors.New("provider failing; circuit breaker open")
)

// NewGuard returns a Guard around next.
func NewGuard(next Embedder, o GuardOptions) *Guard {
	return &Guard{next: next, calls: NewCallGuard(o)}
}

// Dimensions is the wrapped provider's.
func (g *Guard) Dimensions() int { return g.next.Dimensions() }

// Embed takes the request and token budget, then calls the provider through
// the breaker. Tokens are estimated as characters / 4.
func (g *Guard) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	tokens := 0
	for _, t := range texts {
		tokens += len(t)/4 + 1
	}
	var out [][]float32
	err := g.calls.Do(ctx, tokens, func() (err error) {
		out, err = g.next.Embed(ctx, texts)
		return err
	})
	return out, err
}

// CallGuard guards the calls to one model provider, whatever they do
// (embed, answer, condense): budgets of requests and tokens per minute shared by
// every process through GuardOptions.Budget, and a circuit breaker that
// opens after BreakerFailures consecutive transient failures and lets one
// probe through after BreakerCooldown (half-open). Only the provider's own
// trouble counts against it: a rejected input (a permanent
// *ProviderError) or a canceled call says nothing about its health.
type CallGuard struct {
	o       GuardOptions
	breaker *gobreaker.CircuitBreaker[struct{}]
}

// NewCallGuard returns a CallGuard with o's limits.
func NewCallGuard(o GuardOptions) *CallGuard {
	g := &CallGuard{o: o}
	if o.BreakerFailures > 0 {
		g.breaker = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
			Name:    o.Name,
			Timeout: o.BreakerCooldown,
			ReadyToTrip: func(c gobreaker.Counts) bool {
				return c.ConsecutiveFailures >= uint32(o.BreakerFailures)
			},
			IsSuccessful: func(err error) bool {
				return err == nil || IsPermanent(err) || errors.Is(err, context.Canceled)
			},
		})
	}
	return g
}

// Do takes one request and tokens from the budgets, then runs call through
// the breaker. A call larger than a whole minute's token budget is charged
// the whole budget, or it could never pass.
func (g *CallGuard) Do(ctx context.Context, tokens int, call func() error) error {
	if err := g.take(ctx, "req", g.o.RequestsPerMinute, 1); err != nil {
		return err
	}
	if err := g.take(ctx, "tok", g.o.TokensPerMinute, min(tokens, g.o.TokensPerMinute)); err != nil {
		return err
	}
	if g.breaker == nil {
		return call()
	}
	_, err := g.breaker.Execute(func() (struct{}, error) { return struct{}{}, call() })
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return &ProviderError{Err: fmt.Errorf("%s: %w", g.o.Name, ErrBreakerOpen), Wait: g.o.BreakerCooldown}
	}
	return err
}

func (g *CallGuard) take(ctx context.Context, what string, perMinute, n int) error {
	if g.o.Budget == nil || perMinute <= 0 {
		return nil
	}
	wait, err := g.o.Budget.Take(ctx, "ragpipe:provider:"+g.o.Name+":"+what, perMinute, n)
	if err != nil {
		return &ProviderError{Err: fmt.Errorf("rate limiter: %w", err), Wait: time.Second}
	}
	if wait > 0 {
		return &ProviderError{Err: fmt.Errorf("%s %s per minute: %w", g.o.Name, what, ErrThrottled), Wait: wait}
	}
	return nil
}
