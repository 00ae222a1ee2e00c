package embed

import (
	"context"
	"errors"
	"testing"
	"time"
)

// flaky fails while fail is set, transiently or permanently.
type flaky struct {
	fail      bool
	permanent bool
	calls     int
}

func (f *flaky) Dimensions() int { return 2 }
func (f *flaky) Embed(_ context.Context, texts []string) ([][]float32, error) {
	f.calls++
	if f.fail {
		return nil, &ProviderError{StatusCode: 500, Permanent: f.permanent, Err: errors.New("boom")}
	}
	out := make([][]float32, len(texts))
	for i := range out {
		out[i] = []float32{1, 0}
	}
	return out, nil
}

// budget grants up to its allowance per key and asks to wait otherwise.
type budget struct{ used map[string]int }

func (b *budget) Take(_ context.Context, key string, perMinute, n int) (time.Duration, error) {
	if b.used[key]+n > perMinute {
		return 20 * time.Second, nil
	}
	b.used[key] += n
	return 0, nil
}

func TestGuardBreaker(t *testing.T) {
	p := &flaky{fail: true}
	g := NewGuard(p, GuardOptions{Name: "test", BreakerFailures: 3, BreakerCooldown: 200 * time.Millisecond})
	for range 3 {
		if _, err := g.Embed(context.Background(), []string{"x"}); err == nil {
			t.Fatal("no error from a failing provider")
		}
	}
	_, err := g.Embed(context.Background(), []string{"x"})
	var pe *ProviderError
	if !errors.As(err, &pe) || !errors.Is(err, ErrBreakerOpen) || pe.Permanent || pe.RetryAfter() != 200*time.Millisecond || p.calls != 3 {
		t.Fatalf("4th call: %v (provider called %d times); want a fast transient refusal", err, p.calls)
	}
	p.fail = false
	time.Sleep(250 * time.Millisecond)
	if _, err := g.Embed(context.Background(), []string{"x"}); err != nil {
		t.Fatalf("after the cooldown, a healthy provider: %v", err)
	}

	// Permanent rejections say nothing of the provider's health.
	p2 := &flaky{fail: true, permanent: true}
	g2 := NewGuard(p2, GuardOptions{Name: "test", BreakerFailures: 2, BreakerCooldown: time.Minute})
	for range 5 {
		g2.Embed(context.Background(), []string{"x"})
	}
	if p2.calls != 5 {
		t.Errorf("permanent errors opened the breaker: provider called %d times of 5", p2.calls)
	}
}

func TestGuardBudget(t *testing.T) {
	p := &flaky{}
	b := &budget{used: map[string]int{}}
	g := NewGuard(p, GuardOptions{Name: "test", Budget: b, RequestsPerMinute: 2, TokensPerMinute: 100})
	long := string(make([]byte, 1000)) // ~250 tokens: more than a minute's budget, charged as the whole of it
	tests := []struct {
		texts []string
		wait  time.Duration
	}{
		{[]string{"short text"}, 0},
		{[]string{long}, 20 * time.Second}, // tokens: 100 more do not fit after 3
		{[]string{"x"}, 20 * time.Second},  // requests: a 3rd in the minute
	}
	for i, tc := range tests {
		_, err := g.Embed(context.Background(), tc.texts)
		var pe *ProviderError
		switch {
		case tc.wait == 0 && err != nil:
			t.Errorf("call %d: %v", i, err)
		case tc.wait > 0 && (!errors.As(err, &pe) || !errors.Is(err, ErrThrottled) || pe.RetryAfter() != tc.wait):
			t.Errorf("call %d: %v; want throttled, wait %s", i, err, tc.wait)
		}
	}
	if p.calls != 1 {
		t.Errorf("provider called %d times, want 1", p.calls)
	}
}
