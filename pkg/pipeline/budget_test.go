package pipeline

import (
	"context"
	"errors"
	"testing"
	"time"
)

// The memory budget lets stages run together while they fit, makes one
// larger than the whole budget wait until it can run alone, and gives up
// when the task's context ends.
func TestMemoryBudget(t *testing.T) {
	pl := New(Params{MemoryBudget: 100})
	small1, err := pl.hold(context.Background(), 40)
	if err != nil {
		t.Fatal(err)
	}
	small2, err := pl.hold(context.Background(), 60)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan func())
	go func() {
		release, err := pl.hold(context.Background(), 1<<30) // past the budget: takes all of it
		if err != nil {
			t.Error(err)
		}
		got <- release
	}()
	small1()
	select {
	case <-got:
		t.Fatal("the large stage ran beside a small one")
	case <-time.After(50 * time.Millisecond):
	}
	small2()
	large := <-got
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := pl.hold(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hold beside the large stage: %v; want the context's deadline", err)
	}
	large()
	release, err := pl.hold(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	release()

	unbounded := New(Params{})
	release, err = unbounded.hold(context.Background(), 1<<40)
	if err != nil {
		t.Fatal(err)
	}
	release()
}
