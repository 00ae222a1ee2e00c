package queue

import (
	"context"
	"encoding/json"
	"errors"
	"slices"

	"github.com/hibiken/asynq"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

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
func (a *Admin) Stats() ([]ragpipe.QueueStats, error) {
	existing, err := a.insp.Queues()
	if err != nil {
		return nil, unavailable(err)
	}
	var out []ragpipe.QueueStats
	for _, q := range ragpipe.Queues {
		if !slices.Contains(existing, q) { // Asynq makes a queue on its first task
			if q != ragpipe.QueueIngest { // shown only while an older release's tasks are left
				out = append(out, ragpipe.QueueStats{Queue: q})
			}
			continue
		}
		info, err := a.insp.GetQueueInfo(q)
		if err != nil {
			return nil, unavailable(err)
		}
		out = append(out, ragpipe.QueueStats{Queue: q, Pending: info.Pending, Active: info.Active, Scheduled: info.Scheduled,
			Retry: info.Retry, Archived: info.Archived, Completed: info.Completed, OldestPendingSeconds: info.Latency.Seconds()})
	}
	return out, nil
}

// Archived lists up to limit archived tasks of queue ("": of every queue),
// newest failures first.
func (a *Admin) Archived(queue string, limit int) ([]ragpipe.ArchivedTask, error) {
	if queue == "" {
		var all []ragpipe.ArchivedTask
		for _, q := range ragpipe.Queues {
			tasks, err := a.Archived(q, limit)
			if err != nil {
				return nil, err
			}
			all = append(all, tasks...)
		}
		slices.SortStableFunc(all, func(x, y ragpipe.ArchivedTask) int { return y.LastFailedAt.Compare(x.LastFailedAt) })
		return all[:min(limit, len(all))], nil
	}
	if err := knownQueue(queue); err != nil {
		return nil, err
	}
	tasks, err := a.insp.ListArchivedTasks(queue, asynq.PageSize(limit))
	if errors.Is(err, asynq.ErrQueueNotFound) {
		return []ragpipe.ArchivedTask{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := make([]ragpipe.ArchivedTask, 0, len(tasks))
	for _, t := range tasks {
		at := ragpipe.ArchivedTask{ID: t.ID, Queue: t.Queue, Type: t.Type, Retried: t.Retried, MaxRetry: t.MaxRetry,
			LastError: t.LastErr, LastFailedAt: t.LastFailedAt}
		var p ragpipe.TaskPayload
		_ = json.Unmarshal(t.Payload, &p) // payloads are ours; a foreign one just shows no IDs
		at.JobID, at.DocumentID, at.DeliveryID = p.JobID, p.DocumentID, p.DeliveryID
		out = append(out, at)
	}
	return out, nil
}

// Retry runs the archived task id of queue ("": the queue of id's type)
// again, first reviving its job.
// The task is enqueued afresh under its ID, with its type's whole retry
// budget: Asynq's own RunTask keeps the spent retry count, so that one more
// failure would archive it again at once. Should the enqueue fail after the
// archived copy is deleted, the reaper finds the revived job (or the pending
// webhook delivery) without a task and enqueues it. A task that is not in
// the queue is ENOTFOUND; one that is not archived, ECONFLICT.
func (a *Admin) Retry(ctx context.Context, queue, id string) error {
	if queue == "" {
		if queue = ragpipe.QueueOfTaskID(id); queue == "" {
			return ragpipe.Errorf(ragpipe.ENOTFOUND, "no such task")
		}
	}
	if err := knownQueue(queue); err != nil {
		return err
	}
	info, err := a.insp.GetTaskInfo(queue, id)
	if err != nil {
		return taskError(err)
	}
	if info.State != asynq.TaskStateArchived {
		return ragpipe.Errorf(ragpipe.ECONFLICT, "task %s is %s, not archived", id, info.State)
	}
	var p ragpipe.TaskPayload
	if json.Unmarshal(info.Payload, &p) == nil && p.JobID != "" {
		if _, err := a.revive(ctx, p.JobID); err != nil {
			return err
		}
	}
	if err := a.insp.DeleteTask(queue, id); err != nil {
		return taskError(err)
	}
	return a.client.enqueueAs(ctx, ragpipe.Task{Type: ragpipe.TaskType(info.Type), Payload: info.Payload}, id)
}

// RetryAll retries the tasks archived in queue ("": in every queue) when it is called (up to
// 10,000, the archive's size) once each, and returns how many. A task that
// fails again is archived again and stays there.
func (a *Admin) RetryAll(ctx context.Context, queue string) (int, error) {
	tasks, err := a.Archived(queue, 10_000)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, t := range tasks {
		if err := a.Retry(ctx, t.Queue, t.ID); err != nil && ragpipe.ErrorCode(err) != ragpipe.ENOTFOUND {
			return n, err
		}
		n++
	}
	return n, nil
}

func knownQueue(q string) error {
	if slices.Contains(ragpipe.Queues, q) {
		return nil
	}
	return ragpipe.Errorf(ragpipe.EINVALID, "unknown queue %q (have %v)", q, ragpipe.Queues)
}

// taskError turns Asynq's "no such task" into the domain's not-found.
func taskError(err error) error {
	if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
		return ragpipe.Errorf(ragpipe.ENOTFOUND, "no such task")
	}
	return err
}

// unavailable marks a failure to read the queues as Redis being away.
func unavailable(err error) error {
	return ragpipe.Wrap(err, ragpipe.EUNAVAILABLE, "cannot read the queues")
}
