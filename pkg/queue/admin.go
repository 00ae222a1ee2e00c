package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hibiken/asynq"
)

// Queues lists every queue ragpipe uses.
var Queues = []string{QueueIngest, QueueWebhooks}

// ArchivedTask is a task Asynq gave up on after its retries (or at once, for
// a permanent failure). It stays until retried, deleted, or pushed out of the
// archive (Asynq keeps at most 10,000 per queue, for 90 days).
type ArchivedTask struct {
	ID           string    `json:"id"`
	Queue        string    `json:"queue"`
	Type         string    `json:"type"`
	JobID        string    `json:"job_id,omitempty"`
	DocumentID   string    `json:"document_id,omitempty"`
	DeliveryID   string    `json:"delivery_id,omitempty"`
	Retried      int       `json:"retried"`
	MaxRetry     int       `json:"max_retry"`
	LastError    string    `json:"last_error"`
	LastFailedAt time.Time `json:"last_failed_at"`
}

// QueueStats is the depth of one queue by task state.
type QueueStats struct {
	Queue     string `json:"queue"`
	Pending   int    `json:"pending"`
	Active    int    `json:"active"`
	Scheduled int    `json:"scheduled"`
	Retry     int    `json:"retry"`
	Archived  int    `json:"archived"`
	Completed int    `json:"completed"`
}

// Admin lets operators see queue depth and retry archived tasks.
type Admin struct {
	insp   *asynq.Inspector
	client *Client
	// revive puts a job that ran out of retries back to running, so that
	// its retried task does not find it ended and stop.
	revive func(ctx context.Context, jobID string) (bool, error)
}

// NewAdmin returns an Admin on the Redis at opt. revive is called for the
// job of every pipeline task retried.
func NewAdmin(opt asynq.RedisConnOpt, revive func(ctx context.Context, jobID string) (bool, error)) *Admin {
	return &Admin{insp: asynq.NewInspector(opt), client: NewClient(opt), revive: revive}
}

// Close releases the connections.
func (a *Admin) Close() error { return errors.Join(a.insp.Close(), a.client.Close()) }

// Stats returns the depth of every queue.
func (a *Admin) Stats() ([]QueueStats, error) {
	existing, err := a.insp.Queues()
	if err != nil {
		return nil, err
	}
	var out []QueueStats
	for _, q := range Queues {
		if !slices.Contains(existing, q) { // Asynq makes a queue on its first task
			out = append(out, QueueStats{Queue: q})
			continue
		}
		info, err := a.insp.GetQueueInfo(q)
		if err != nil {
			return nil, err
		}
		out = append(out, QueueStats{Queue: q, Pending: info.Pending, Active: info.Active, Scheduled: info.Scheduled,
			Retry: info.Retry, Archived: info.Archived, Completed: info.Completed})
	}
	return out, nil
}

// Archived lists up to limit archived tasks of queue, newest failures first.
func (a *Admin) Archived(queue string, limit int) ([]ArchivedTask, error) {
	if err := knownQueue(queue); err != nil {
		return nil, err
	}
	tasks, err := a.insp.ListArchivedTasks(queue, asynq.PageSize(limit))
	if errors.Is(err, asynq.ErrQueueNotFound) {
		return []ArchivedTask{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := make([]ArchivedTask, 0, len(tasks))
	for _, t := range tasks {
		at := ArchivedTask{ID: t.ID, Queue: t.Queue, Type: t.Type, Retried: t.Retried, MaxRetry: t.MaxRetry,
			LastError: t.LastErr, LastFailedAt: t.LastFailedAt}
		var ids struct {
			JobID      string `json:"job_id"`
			DocumentID string `json:"document_id"`
			DeliveryID string `json:"delivery_id"`
		}
		_ = json.Unmarshal(t.Payload, &ids) // payloads are ours; a foreign one just shows no IDs
		at.JobID, at.DocumentID, at.DeliveryID = ids.JobID, ids.DocumentID, ids.DeliveryID
		out = append(out, at)
	}
	return out, nil
}

// Retry runs the archived task id of queue again, first reviving its job.
// The task is enqueued afresh under its ID, with its type's whole retry
// budget: Asynq's own RunTask keeps the spent retry count, so that one more
// failure would archive it again at once. Should the enqueue fail after the
// archived copy is deleted, the reaper finds the revived job (or the pending
// webhook delivery) without a task and enqueues it.
func (a *Admin) Retry(ctx context.Context, queue, id string) error {
	if err := knownQueue(queue); err != nil {
		return err
	}
	info, err := a.insp.GetTaskInfo(queue, id)
	if err != nil {
		return fmt.Errorf("task %s: %w", id, err)
	}
	if info.State != asynq.TaskStateArchived {
		return fmt.Errorf("task %s is %s: %w", id, info.State, ErrNotArchived)
	}
	var p Payload
	if json.Unmarshal(info.Payload, &p) == nil && p.JobID != "" {
		if _, err := a.revive(ctx, p.JobID); err != nil {
			return err
		}
	}
	if err := a.insp.DeleteTask(queue, id); err != nil {
		return fmt.Errorf("task %s: %w", id, err)
	}
	return a.client.EnqueueAs(ctx, info.Type, info.Payload, id)
}

// RetryAll retries the tasks archived in queue when it is called (up to
// 10,000, the archive's size) once each, and returns how many. A task that
// fails again is archived again and stays there.
func (a *Admin) RetryAll(ctx context.Context, queue string) (int, error) {
	tasks, err := a.Archived(queue, 10_000)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, t := range tasks {
		if err := a.Retry(ctx, queue, t.ID); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
			return n, err
		}
		n++
	}
	return n, nil
}

// Errors of Admin.Retry besides asynq.ErrTaskNotFound.
var (
	ErrUnknownQueue = errors.New("unknown queue")
	ErrNotArchived  = errors.New("task is not archived")
)

func knownQueue(q string) error {
	if slices.Contains(Queues, q) {
		return nil
	}
	return fmt.Errorf("%w %q (have %v)", ErrUnknownQueue, q, Queues)
}
