// Package queue defines ragpipe's Asynq task types, their payloads and
// per-type policies, and enqueues them with deterministic IDs so that
// enqueueing the same step twice is harmless.
package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"
)

// Task types, one per pipeline stage.
const (
	TypeExtract = "doc:extract"
	TypeChunk   = "doc:chunk"
	TypeEmbed   = "doc:embed"
	TypeUpsert  = "doc:upsert"
	// TypeDelete removes a deleted document's objects and rows.
	TypeDelete = "doc:delete"
	// TypeSweep removes, later, what a stage still running at the deletion
	// wrote after the cleanup.
	TypeSweep = "doc:sweep"
)

// QueueIngest is the queue the pipeline's tasks run on.
const QueueIngest = "ingest"

// TypeWebhookDeliver delivers one webhook event to one target. Its tasks run
// on QueueWebhooks, served by their own workers, so a slow subscriber never
// holds up ingestion.
const (
	TypeWebhookDeliver = "webhook:deliver"
	QueueWebhooks      = "webhooks"
)

// WebhookPayload is what a delivery task carries.
type WebhookPayload struct {
	DeliveryID string `json:"delivery_id"`
}

// DecodeWebhook parses a delivery task's payload.
func DecodeWebhook(b []byte) (WebhookPayload, error) {
	var p WebhookPayload
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("decode webhook payload: %w: %w", err, asynq.SkipRetry)
	}
	if p.DeliveryID == "" {
		return p, fmt.Errorf("webhook payload without delivery_id: %w", asynq.SkipRetry)
	}
	return p, nil
}

// Payload is what every pipeline task carries: IDs only. The data lives in
// Postgres and the object store.
type Payload struct {
	JobID      string `json:"job_id,omitempty"`
	DocumentID string `json:"document_id,omitempty"` // TypeDelete and TypeSweep only
	TenantID   string `json:"tenant_id,omitempty"`   // TypeSweep only
	Batch      int    `json:"batch,omitempty"`
	RequestID  string `json:"request_id,omitempty"`
}

// Policy is how one task type is retried and bounded.
type Policy struct {
	MaxRetry int
	Timeout  time.Duration
	Delay    time.Duration // how long after enqueueing the task may run
}

// Policies holds each task type's policy. Extraction is slow and rarely helped
// by retries; embedding calls providers that fail transiently, so it retries most.
var Policies = map[string]Policy{
	TypeExtract: {MaxRetry: 3, Timeout: 10 * time.Minute},
	TypeChunk:   {MaxRetry: 5, Timeout: 5 * time.Minute},
	TypeEmbed:   {MaxRetry: 10, Timeout: 5 * time.Minute},
	TypeUpsert:  {MaxRetry: 8, Timeout: 5 * time.Minute},
	TypeDelete:  {MaxRetry: 25, Timeout: 10 * time.Minute},
	// After the longest stage timeout, so any stage still running at the
	// deletion has ended.
	TypeSweep: {MaxRetry: 25, Timeout: 10 * time.Minute, Delay: 11 * time.Minute},
	// A ceiling: the webhook deliverer follows its own schedule (about three
	// days) and gives up by itself when that is spent.
	TypeWebhookDeliver: {MaxRetry: 100, Timeout: 2 * time.Minute},
}

// retention keeps finished task records (and so their IDs) for a day, so a
// late duplicate enqueue of a finished step is still refused.
const retention = 24 * time.Hour

// TaskID returns the deterministic ID of a task: one per job, stage and batch.
func TaskID(typ string, p Payload) string {
	switch typ {
	case TypeEmbed:
		return fmt.Sprintf("%s:%s:%d", typ, p.JobID, p.Batch)
	case TypeDelete, TypeSweep:
		return typ + ":" + p.DocumentID
	}
	return typ + ":" + p.JobID
}

// RescueID is the ID of the gen-th task the reaper enqueued in place of task
// id, each because the one before was held by a worker that died; gen 0 is
// id itself.
func RescueID(id string, gen int) string {
	if gen == 0 {
		return id
	}
	return fmt.Sprintf("%s~rescue%d", id, gen)
}

// Encode returns the payload's wire form.
func Encode(p Payload) []byte {
	b, _ := json.Marshal(p) // a struct of strings and ints always marshals
	return b
}

// Decode parses a task payload.
func Decode(b []byte) (Payload, error) {
	var p Payload
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("decode payload: %w: %w", err, asynq.SkipRetry)
	}
	if p.JobID == "" && p.DocumentID == "" {
		return p, fmt.Errorf("payload without job_id or document_id: %w", asynq.SkipRetry)
	}
	return p, nil
}

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

// Enqueue puts a task of type typ on its queue. A task with the same ID that
// is already queued, running or retained counts as success.
func (c *Client) Enqueue(ctx context.Context, typ string, payload []byte) error {
	return c.EnqueueAs(ctx, typ, payload, "")
}

// EnqueueAs is Enqueue under task ID id; "" is the task's own ID (TaskID).
// The reaper uses it to put a rescue beside a task a dead worker holds.
func (c *Client) EnqueueAs(ctx context.Context, typ string, payload []byte, id string) error {
	pol, ok := Policies[typ]
	if !ok {
		return fmt.Errorf("unknown task type %q", typ)
	}
	var own, queue string
	if typ == TypeWebhookDeliver {
		p, err := DecodeWebhook(payload)
		if err != nil {
			return err
		}
		own, queue = typ+":"+p.DeliveryID, QueueWebhooks
	} else {
		p, err := Decode(payload)
		if err != nil {
			return err
		}
		own, queue = TaskID(typ, p), QueueIngest
	}
	if id == "" {
		id = own
	}
	_, err := c.c.EnqueueContext(ctx, asynq.NewTask(typ, payload),
		asynq.TaskID(id),
		asynq.Queue(queue),
		asynq.MaxRetry(pol.MaxRetry),
		asynq.Timeout(pol.Timeout),
		asynq.ProcessIn(pol.Delay),
		asynq.Retention(retention))
	if errors.Is(err, asynq.ErrTaskIDConflict) || errors.Is(err, asynq.ErrDuplicateTask) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("enqueue %s: %w", typ, err)
	}
	return nil
}

// RetryDelay is exponential backoff with full jitter: up to 2^n seconds
// (capped at 10 minutes) before the n-th retry — or, when the error says how
// long to wait (a provider's Retry-After), that long plus up to a second.
func RetryDelay(n int, err error, _ *asynq.Task) time.Duration {
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
