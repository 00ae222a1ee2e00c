package answer

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ragpipe/ragpipe/pkg/embed"
)

// scripted answers with the outcome its script gives for each call, in turn.
type scripted struct {
	calls  atomic.Int32
	script func(call int, ctx context.Context, onText func(string) error) (Result, error)
}

func (s *scripted) Answer(ctx context.Context, _ Question, onText func(string) error) (Result, error) {
	return s.script(int(s.calls.Add(1)), ctx, onText)
}

func say(text string) func(int, context.Context, func(string) error) (Result, error) {
	return func(_ int, _ context.Context, onText func(string) error) (Result, error) {
		return Result{Provider: "fake", Model: "fake-model"}, onText(text)
	}
}

func failing(status int, wait time.Duration) *embed.ProviderError {
	return &embed.ProviderError{StatusCode: status, Wait: wait, Err: errors.New("replayed failure")}
}

// refusing is a Budget that has nothing left.
type refusing struct{ takes atomic.Int32 }

func (r *refusing) Take(context.Context, string, int, int) (time.Duration, error) {
	r.takes.Add(1)
	return 30 * time.Second, nil
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func chainOptions() ChainOptions {
	return ChainOptions{FirstToken: 200 * time.Millisecond, Retries: 2, Backoff: 10 * time.Millisecond, MaxWait: time.Second, Logger: quiet}
}

func collect(t *testing.T, c *Chain) (string, Result, error) {
	t.Helper()
	var b strings.Builder
	r, err := c.Answer(context.Background(), Question{Text: "q", MaxTokens: 10}, func(d string) error { b.WriteString(d); return nil })
	return b.String(), r, err
}

func TestChainRetriesHonourRetryAfter(t *testing.T) {
	primary := &scripted{script: func(call int, ctx context.Context, onText func(string) error) (Result, error) {
		if call == 1 {
			return Result{}, failing(http.StatusTooManyRequests, 80*time.Millisecond)
		}
		return say("ok")(call, ctx, onText)
	}}
	start := time.Now()
	text, r, err := collect(t, NewChain(chainOptions(), Link{Name: "primary", Answerer: primary}))
	if err != nil || text != "ok" || r.Model != "fake-model" || primary.calls.Load() != 2 || time.Since(start) < 80*time.Millisecond {
		t.Errorf("%q %+v %v after %d calls in %v", text, r, err, primary.calls.Load(), time.Since(start))
	}
}

func TestChainFallsBackOnRefusalStallAndSpentBudget(t *testing.T) {
	fallback := &scripted{script: say("from the fallback")}
	cases := map[string]Link{
		// A 4xx refusal is not retried.
		"refusal": {Name: "primary", Answerer: &scripted{script: func(int, context.Context, func(string) error) (Result, error) {
			return Result{}, &embed.ProviderError{StatusCode: http.StatusBadRequest, Permanent: true, Err: errors.New("bad request")}
		}}},
		// No text within the first-token timeout: the call is cancelled.
		"stall": {Name: "primary", Answerer: &scripted{script: func(_ int, ctx context.Context, _ func(string) error) (Result, error) {
			<-ctx.Done()
			return Result{}, ctx.Err()
		}}},
		// 5xx on every retry.
		"5xx": {Name: "primary", Answerer: &scripted{script: func(int, context.Context, func(string) error) (Result, error) {
			return Result{}, failing(http.StatusBadGateway, 0)
		}}},
	}
	for name, primary := range cases {
		text, _, err := collect(t, NewChain(chainOptions(), primary, Link{Name: "fallback", Answerer: fallback}))
		if err != nil || text != "from the fallback" {
			t.Errorf("%s: %q, %v", name, text, err)
		}
	}
	if n := cases["refusal"].Answerer.(*scripted).calls.Load(); n != 1 {
		t.Errorf("a refusal was tried %d times", n)
	}
	if n := cases["5xx"].Answerer.(*scripted).calls.Load(); n != 3 {
		t.Errorf("a 5xx was tried %d times; want 1 + 2 retries", n)
	}

	budget := &refusing{}
	spent := &scripted{script: say("never")}
	guard := embed.NewCallGuard(embed.GuardOptions{Name: "chat-test", Budget: budget, RequestsPerMinute: 1})
	text, _, err := collect(t, NewChain(chainOptions(), Link{Name: "spent", Answerer: spent, Guard: guard}, Link{Name: "fallback", Answerer: fallback}))
	if err != nil || text != "from the fallback" || spent.calls.Load() != 0 || budget.takes.Load() != 1 {
		t.Errorf("spent budget: %q %v, provider called %d times, budget asked %d", text, err, spent.calls.Load(), budget.takes.Load())
	}
	// Alone, the spent budget is the answer, with when to retry.
	_, _, err = collect(t, NewChain(chainOptions(), Link{Name: "spent", Answerer: spent, Guard: guard}))
	var pe *embed.ProviderError
	if !errors.As(err, &pe) || !errors.Is(err, embed.ErrThrottled) || pe.RetryAfter() != 30*time.Second {
		t.Errorf("spent budget alone: %v", err)
	}
}

func TestChainBreakerOpensAndProbes(t *testing.T) {
	healthy := atomic.Bool{}
	primary := &scripted{script: func(call int, ctx context.Context, onText func(string) error) (Result, error) {
		if !healthy.Load() {
			return Result{}, failing(http.StatusInternalServerError, 0)
		}
		return say("primary again")(call, ctx, onText)
	}}
	guard := embed.NewCallGuard(embed.GuardOptions{Name: "chat-test", BreakerFailures: 3, BreakerCooldown: 150 * time.Millisecond})
	o := chainOptions()
	o.Retries = 0
	c := NewChain(o, Link{Name: "primary", Answerer: primary, Guard: guard}, Link{Name: "fallback", Answerer: &scripted{script: say("fallback")}})
	for range 3 {
		if text, _, _ := collect(t, c); text != "fallback" {
			t.Fatalf("failing primary: %q", text)
		}
	}
	if text, _, _ := collect(t, c); text != "fallback" || primary.calls.Load() != 3 {
		t.Errorf("open breaker: %q after %d calls; want the primary skipped", text, primary.calls.Load())
	}
	healthy.Store(true)
	time.Sleep(200 * time.Millisecond) // past the cooldown: one probe goes through
	if text, _, _ := collect(t, c); text != "primary again" || primary.calls.Load() != 4 {
		t.Errorf("half-open probe: %q after %d calls", text, primary.calls.Load())
	}
}

func TestChainNoFallbackAfterFirstToken(t *testing.T) {
	primary := &scripted{script: func(_ int, _ context.Context, onText func(string) error) (Result, error) {
		if err := onText("half an answer"); err != nil {
			return Result{}, err
		}
		return Result{}, failing(http.StatusBadGateway, 0)
	}}
	fallback := &scripted{script: say("never")}
	text, _, err := collect(t, NewChain(chainOptions(), Link{Name: "primary", Answerer: primary}, Link{Name: "fallback", Answerer: fallback}))
	if err == nil || text != "half an answer" || primary.calls.Load() != 1 || fallback.calls.Load() != 0 {
		t.Errorf("%q %v; primary %d calls, fallback %d", text, err, primary.calls.Load(), fallback.calls.Load())
	}
	if got, want := NewChain(chainOptions(), Link{}, Link{}).MaxFirstToken(), 2*(3*200*time.Millisecond+2*time.Second); got != want {
		t.Errorf("MaxFirstToken = %v, want %v", got, want)
	}
}
