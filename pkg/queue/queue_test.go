package queue

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

type waitErr time.Duration

func (w waitErr) Error() string             { return "busy" }
func (w waitErr) RetryAfter() time.Duration { return time.Duration(w) }

func TestRetryDelay(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		n        int
		err      error
		min, max time.Duration
	}{
		{"first retry", 0, errors.New("x"), time.Second, 2 * time.Second},
		{"fifth retry", 5, errors.New("x"), time.Second, 33 * time.Second},
		{"capped", 30, errors.New("x"), time.Second, 10*time.Minute + time.Second},
		{"provider asked for 7s", 0, fmt.Errorf("embed: %w", waitErr(7*time.Second)), 8 * time.Second, 9 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for range 200 {
				d := RetryDelay(tc.n, tc.err)
				if d < tc.min || d >= tc.max {
					t.Fatalf("RetryDelay = %s, want in [%s, %s)", d, tc.min, tc.max)
				}
			}
		})
	}
}
