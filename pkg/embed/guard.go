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

// Guard wraps a provider with shared rate limits (requests and tokens per
// minute) and a circuit breaker. Whatever it refuses is a transient
// *ProviderError whose RetryAfter says when to try again, so a queued task
// waits instead of hammering a provider that is over its limits or down.
type Guard struct {
	next    Embedder
	o       GuardOptions
	breaker *gobreaker.CircuitBreaker[[][]float32]
}

// ErrThrottled and ErrBreakerOpen are the causes of a Guard's refusals.
var (
	ErrThrottled   = errors.New("provider rate limit of this deployment reached")
	ErrBreakerOpen = errors.New("provider failing; circuit breaker open")
)

// NewGuard returns a Guard around next.
func NewGuard(next Embedder, o GuardOptions) *Guard {
	g := &Guard{next: next, o: o}
	if o.BreakerFailures > 0 {
		g.breaker = gobreaker.NewCircuitBreaker[[][]float32](gobreaker.Settings{
			Name:    o.Name,
			Timeout: o.BreakerCooldown,
			ReadyToTrip: func(c gobreaker.Counts) bool {
				return c.ConsecutiveFailures >= uint32(o.BreakerFailures)
			},
			// Only the provider's own trouble counts: a rejected input or a
			// canceled call says nothing about its health.
			IsSuccessful: func(err error) bool {
				return err == nil || IsPermanent(err) || errors.Is(err, context.Canceled)
			},
		})
	}
	return g
}

// Dimensions is the wrapped provider's.
func (g *Guard) Dimensions() int { return g.next.Dimensions() }

// Embed takes the request and token budget, then calls the provider through
// the breaker.
func (g *Guard) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	if err := g.take(ctx, "req", g.o.RequestsPerMinute, 1); err != nil {
		return nil, err
	}
	tokens := 0
	for _, t := range texts {
		tokens += len(t)/4 + 1
	}
	// A batch larger than a whole minute's budget is charged the whole
	// budget, or it could never pass.
	if err := g.take(ctx, "tok", g.o.TokensPerMinute, min(tokens, g.o.TokensPerMinute)); err != nil {
		return nil, err
	}
	if g.breaker == nil {
		return g.next.Embed(ctx, texts)
	}
	out, err := g.breaker.Execute(func() ([][]float32, error) { return g.next.Embed(ctx, texts) })
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return nil, &ProviderError{Err: fmt.Errorf("%s: %w", g.o.Name, ErrBreakerOpen), Wait: g.o.BreakerCooldown}
	}
	return out, err
}

func (g *Guard) take(ctx context.Context, what string, perMinute, n int) error {
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
