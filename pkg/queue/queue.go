// Package queue is ragpipe's work queue on Asynq (Redis): it enqueues tasks
// under their deterministic IDs with each type's retry policy, adapts task
// handlers to Asynq's, keeps lost or stranded tasks going for the reaper,
// and lets operators see and retry what it gave up. Nothing outside this
// package (and pkg/platform, which starts the servers) touches Asynq.
package queue

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// Policy is how one task type is retried and bounded.
type Policy struct {
	MaxRetry int
	Timeout  time.Duration
	Delay    time.Duration // how long after enqueueing the task may run
}

// Policies holds each task type's policy. Extraction is slow and rarely helped
// by retries; embedding calls providers that fail transiently, so it retries most.
var Policies = map[ragpipe.TaskType]Policy{
	ragpipe.TaskExtract: {MaxRetry: 3, Timeout: 10 * time.Minute},
	ragpipe.TaskChunk:   {MaxRetry: 5, Timeout: 5 * time.Minute},
	ragpipe.TaskEmbed:   {MaxRetry: 10, Timeout: 5 * time.Minute},
	ragpipe.TaskUpsert:  {MaxRetry: 8, Timeout: 5 * time.Minute},
	ragpipe.TaskDelete:  {MaxRetry: 25, Timeout: 10 * time.Minute},
	// After the longest stage timeout, so any stage still running at the
	// deletion has ended.
	ragpipe.TaskSweep: {MaxRetry: 25, Timeout: 10 * time.Minute, Delay: 11 * time.Minute},
	// A ceiling: the webhook deliverer follows its own schedule (about three
	// days) and gives up by itself when that is spent.
	ragpipe.TaskWebhookDeliver: {MaxRetry: 100, Timeout: 2 * time.Minute},
	// Each run embeds for at most a minute, then hands over to its successor.
	ragpipe.TaskReembed: {MaxRetry: 25, Timeout: 5 * time.Minute},
}

// retention keeps finished task records (and so their IDs) for a day, so a
// late duplicate enqueue of a finished step is still refused.
const retention = 24 * time.Hour

// Client enqueues tasks.
type Client struct {
	c *asynq.Client
}

// NewClient returns a Client on the Redis at opt.
func NewClient(opt asynq.RedisConnOpt) *Client {
	return &Client{c: asynq.NewClient(opt)}
}

// Close releases the client's connections.
func (c *Client) Close() error { return c.c.Close() }

// Enqueue puts t on its type's queue under t.ID. A task with the same ID
// that is already queued, running or retained counts as success.
func (c *Client) Enqueue(ctx context.Context, t ragpipe.Task) error {
	return c.enqueueAs(ctx, t, t.ID)
}

// enqueueAs is Enqueue under task ID id, which the Keeper uses to put a
// rescue beside a task a dead worker holds.
func (c *Client) enqueueAs(ctx context.Context, t ragpipe.Task, id string) error {
	pol, ok := Policies[t.Type]
	if !ok {
		return fmt.Errorf("unknown task type %q", t.Type)
	}
	if id == "" {
		return fmt.Errorf("enqueue %s: task without an ID", t.Type)
	}
	_, err := c.c.EnqueueContext(ctx, asynq.NewTask(string(t.Type), t.Payload),
		asynq.TaskID(id),
		asynq.Queue(t.Type.Queue()),
		asynq.MaxRetry(pol.MaxRetry),
		asynq.Timeout(pol.Timeout),
		asynq.ProcessIn(pol.Delay),
		asynq.Retention(retention))
	if errors.Is(err, asynq.ErrTaskIDConflict) || errors.Is(err, asynq.ErrDuplicateTask) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("enqueue %s: %w", t.Type, err)
	}
	return nil
}

// NewMux routes each task type to its handler.
func NewMux(handlers map[ragpipe.TaskType]ragpipe.TaskHandler) *asynq.ServeMux {
	mux := asynq.NewServeMux()
	for typ, h := range handlers {
		mux.Handle(string(typ), handler(h))
	}
	return mux
}

// handler adapts h to Asynq: it runs h in the task's span (startSpan),
// tells h how often the task ran before, and turns a permanent failure into
// Asynq's SkipRetry.
func handler(h ragpipe.TaskHandler) asynq.HandlerFunc {
	return func(ctx context.Context, t *asynq.Task) error {
		r := run(ctx, t)
		ctx, span := startSpan(ctx, r)
		defer span.End()
		err := h(ctx, r)
		spanError(span, err)
		if errors.Is(err, ragpipe.ErrPermanent) {
			return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
		}
		return err
	}
}

func run(ctx context.Context, t *asynq.Task) ragpipe.TaskRun {
	id, _ := asynq.GetTaskID(ctx)
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	return ragpipe.TaskRun{Type: ragpipe.TaskType(t.Type()), ID: id, Payload: t.Payload(), Retried: retried, MaxRetry: maxRetry}
}

// ErrorHandler adapts fn, which hears of every failed run of a task, to Asynq.
func ErrorHandler(fn func(ctx context.Context, t ragpipe.TaskRun, err error)) asynq.ErrorHandler {
	return asynq.ErrorHandlerFunc(func(ctx context.Context, t *asynq.Task, err error) {
		fn(ctx, run(ctx, t), err)
	})
}

// RetryDelayFunc adapts fn, the wait before the n-th retry after err, to Asynq.
func RetryDelayFunc(fn func(n int, err error) time.Duration) asynq.RetryDelayFunc {
	return func(n int, err error, _ *asynq.Task) time.Duration { return fn(n, err) }
}

// RetryDelay is exponential backoff with full jitter: up to 2^n seconds
// (capped at 10 minutes) before the n-th retry — or, when the error says how
// long to wait (a provider's Retry-After), that long plus up to a second.
func RetryDelay(n int, err error) time.Duration {
	var wait interface{ RetryAfter() time.Duration }
	if errors.As(err, &wait) && wait.RetryAfter() > 0 {
		// Asynq schedules retries to the second and may run one up to a
		// second early.
		return wait.RetryAfter() + time.Second + rand.N(time.Second)
	}
	ceiling := time.Duration(1<<min(n, 20)) * time.Second
	ceiling = min(ceiling, 10*time.Minute)
	return time.Second + rand.N(ceiling)
}
