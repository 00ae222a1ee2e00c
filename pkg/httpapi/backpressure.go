package httpapi

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// Backpressure refuses uploads while more than Limit jobs wait, so the
// backlog cannot grow without bound. The count is read at most once per
// second and shared by all requests.
type Backpressure struct {
	Limit      int
	RetryAfter time.Duration
	Count      func(ctx context.Context) (int, error)

	mu      sync.Mutex // guards checked, waiting
	checked time.Time
	waiting int
}

func (b *Backpressure) admit(ctx context.Context, c echo.Context) error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if time.Since(b.checked) > time.Second {
		n, err := b.Count(ctx)
		if err != nil {
			return ragpipe.Wrap(err, ragpipe.EUNAVAILABLE, "cannot read the queue depth; retry later")
		}
		b.waiting, b.checked = n, time.Now()
	}
	if b.waiting >= b.Limit {
		c.Response().Header().Set("Retry-After", strconv.Itoa(int(b.RetryAfter.Seconds())))
		return ragpipe.Errorf(ragpipe.EUNAVAILABLE, "%d documents are waiting to be processed, the most accepted; retry in %s",
			b.waiting, b.RetryAfter)
	}
	return nil
}
