package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"github.com/ragpipe/ragpipe/pkg/postgres"
	"github.com/ragpipe/ragpipe/pkg/queue"
	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// ReaperStore is the state the reaper reads and repairs.
type ReaperStore interface {
	StaleJobs(ctx context.Context, age time.Duration, after *ragpipe.Job, limit int) ([]*ragpipe.Job, error)
	StaleDeletions(ctx context.Context, age time.Duration, limit int) ([]string, error)
	PendingBatches(ctx context.Context, jobID string) ([]int, error)
	MarkRecovered(ctx context.Context, jobID string, tasks []string) error
	FailJob(ctx context.Context, jobID, code, message string) error
	StaleDeliveries(ctx context.Context, age time.Duration, limit int) ([]postgres.OutboxTask, error)
}

// TaskInspector looks tasks up in the queue.
type TaskInspector interface {
	GetTaskInfo(queue, id string) (*asynq.TaskInfo, error)
	DeleteTask(queue, id string) error
	ListActiveTasks(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error)
}

// ReaperQueue enqueues tasks under their own IDs or under a rescue's.
type ReaperQueue interface {
	Enqueuer
	EnqueueAs(ctx context.Context, typ string, payload []byte, id string) error
}

// Reaper finds jobs whose tasks have vanished from the queue (Redis lost its
// data, failed over, or a task was deleted) and drives them on from the state
// kept in Postgres, by re-enqueueing the current stage's tasks.
//
// It also rescues tasks held by a worker that died. Asynq hands such a task
// back only 30 s after its lease expired, when a recoverer next runs (every
// minute): 60-120 s after the crash, while the job keeps its tenant's
// in-flight slot. Once the lease has expired (about 30 s after the crash,
// as no heartbeat renews it), the reaper enqueues a copy under a rescue ID
// (queue.RescueID); the original still runs again when Asynq recovers it,
// which the stages, being idempotent, absorb.
type Reaper struct {
	Store     ReaperStore
	Inspector TaskInspector
	Queue     ReaperQueue
	Logger    *slog.Logger
	StaleAge  time.Duration // a job untouched this long is checked
}

// maxRescues bounds the rescues of one task; after that Asynq's own
// recovery is left to bring it back.
const maxRescues = 5

// orphans returns the IDs of ingest tasks whose worker stopped renewing
// their lease: it died or lost Redis for longer than a lease.
func (r *Reaper) orphans() (map[string]bool, error) {
	out := map[string]bool{}
	for page := 1; page <= maxSweepPages; page++ {
		tasks, err := r.Inspector.ListActiveTasks(queue.QueueIngest, asynq.PageSize(sweepPage), asynq.Page(page))
		if errors.Is(err, asynq.ErrQueueNotFound) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		for _, t := range tasks {
			if t.IsOrphaned {
				out[t.ID] = true
			}
		}
		if len(tasks) < sweepPage {
			break
		}
	}
	return out, nil
}

// current returns the ID of the task that carries task id's work now: id
// itself or the last rescue enqueued in its place, and its generation.
func (r *Reaper) current(q, id string) (string, int, error) {
	gen := 0
	for ; gen < maxRescues; gen++ {
		_, err := r.Inspector.GetTaskInfo(q, queue.RescueID(id, gen+1))
		if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
			break
		}
		if err != nil {
			return "", 0, err
		}
	}
	return queue.RescueID(id, gen), gen, nil
}

// expected returns the tasks that must exist for j to make progress.
func (r *Reaper) expected(ctx context.Context, j *ragpipe.Job) ([]queue.Payload, string, error) {
	p := queue.Payload{JobID: j.ID, RequestID: j.RequestID}
	switch j.Stage {
	case ragpipe.StageExtract:
		return []queue.Payload{p}, queue.TypeExtract, nil
	case ragpipe.StageChunk:
		return []queue.Payload{p}, queue.TypeChunk, nil
	case ragpipe.StageEmbed:
		batches, err := r.Store.PendingBatches(ctx, j.ID)
		if err != nil {
			return nil, "", err
		}
		if len(batches) == 0 {
			return []queue.Payload{p}, queue.TypeUpsert, nil
		}
		out := make([]queue.Payload, len(batches))
		for i, b := range batches {
			out[i] = queue.Payload{JobID: j.ID, Batch: b, RequestID: j.RequestID}
		}
		return out, queue.TypeEmbed, nil
	default:
		return []queue.Payload{p}, queue.TypeUpsert, nil
	}
}

// successorExists reports whether the task that follows typ for p's job is
// in the queue in any state but archived. Only extract and chunk have one
// known from the payload alone; the others report false.
func (r *Reaper) successorExists(typ string, p queue.Payload) (bool, error) {
	var next string
	switch typ {
	case queue.TypeExtract:
		next = queue.TypeChunk
	case queue.TypeChunk:
		next = queue.TypeEmbed // batch 0 always exists
	default:
		return false, nil
	}
	info, err := r.Inspector.GetTaskInfo(queue.QueueIngest, queue.TaskID(next, queue.Payload{JobID: p.JobID}))
	switch {
	case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound):
		return false, nil
	case err != nil:
		return false, err
	}
	return info.State != asynq.TaskStateArchived, nil
}

// Sweep checks every stale job and pending webhook delivery once and returns
// how many it re-enqueued.
func (r *Reaper) Sweep(ctx context.Context) (int, error) {
	recovered, err := r.sweepDeliveries(ctx)
	if err != nil {
		return recovered, err
	}
	n, err := r.sweepDeletions(ctx)
	recovered += n
	if err != nil {
		return recovered, err
	}
	// Page through every stale job, so healthy slow ones at the front
	// cannot hide a lost one behind them.
	var after *ragpipe.Job
	var orphans map[string]bool
	for range maxSweepPages {
		jobs, err := r.Store.StaleJobs(ctx, r.StaleAge, after, sweepPage)
		if err != nil {
			return recovered, err
		}
		if len(jobs) > 0 && orphans == nil {
			if orphans, err = r.orphans(); err != nil {
				return recovered, fmt.Errorf("list active tasks: %w", err)
			}
		}
		for _, j := range jobs {
			ok, err := r.check(ctx, j, orphans)
			if err != nil {
				return recovered, fmt.Errorf("job %s: %w", j.ID, err)
			}
			if ok {
				recovered++
			}
		}
		if len(jobs) < sweepPage {
			break
		}
		after = jobs[len(jobs)-1]
	}
	return recovered, nil
}

// A sweep looks at up to maxSweepPages pages of sweepPage stale jobs.
const (
	sweepPage     = 200
	maxSweepPages = 50
)

// sweepDeletions re-enqueues the cleanup of documents stuck in deleting.
func (r *Reaper) sweepDeletions(ctx context.Context) (int, error) {
	ids, err := r.Store.StaleDeletions(ctx, r.StaleAge, 200)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		p := queue.Payload{DocumentID: id}
		ok, err := r.ensure(ctx, queue.QueueIngest, queue.TaskID(queue.TypeDelete, p), queue.TypeDelete, queue.Encode(p))
		if err != nil {
			return n, err
		}
		if ok {
			r.Logger.Warn("reaper re-enqueued document cleanup", "document_id", id)
			n++
		}
	}
	return n, nil
}

// verdict is what the reaper makes of one task a job or delivery needs.
type verdict int

const (
	leave   verdict = iota // pending, active, scheduled or retrying: it will run
	requeue                // gone (or completed with nothing after it): enqueue again
	given                  // archived: Asynq gave up on it
)

// inspect looks up task id of queue q. A completed task is run again
// (stages are idempotent) unless successorExists says the work moved on;
// its record is dropped first so its ID is free.
func (r *Reaper) inspect(q, id string, successorExists func() (bool, error)) (verdict, *asynq.TaskInfo, error) {
	info, err := r.Inspector.GetTaskInfo(q, id)
	switch {
	case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound):
		return requeue, nil, nil
	case err != nil:
		return leave, nil, err
	case info.State == asynq.TaskStateArchived:
		return given, info, nil
	case info.State != asynq.TaskStateCompleted:
		return leave, info, nil
	}
	if successorExists != nil {
		if moved, err := successorExists(); err != nil || moved {
			return leave, info, err
		}
	}
	if err := r.Inspector.DeleteTask(q, id); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
		return leave, info, err
	}
	return requeue, info, nil
}

// ensure enqueues a task that inspect says must run again, and reports
// whether it did. Archived tasks are left to the operator.
func (r *Reaper) ensure(ctx context.Context, q, id, typ string, payload []byte) (bool, error) {
	v, _, err := r.inspect(q, id, nil)
	if err != nil || v != requeue {
		return false, err
	}
	return true, r.Queue.Enqueue(ctx, typ, payload)
}

// check re-enqueues whatever j is missing, and rescues what orphans (task
// IDs) says dead workers hold; a task given up after its retries ends the
// job.
func (r *Reaper) check(ctx context.Context, j *ragpipe.Job, orphans map[string]bool) (bool, error) {
	payloads, typ, err := r.expected(ctx, j)
	if err != nil {
		return false, err
	}
	var requeued, rescued []string
	for _, p := range payloads {
		id, gen, err := r.current(queue.QueueIngest, queue.TaskID(typ, p))
		if err != nil {
			return false, err
		}
		// A completed stage whose successor's task exists (perhaps held by a
		// killed worker until its lease expires) has moved on.
		v, info, err := r.inspect(queue.QueueIngest, id, func() (bool, error) { return r.successorExists(typ, p) })
		switch {
		case err != nil:
			return false, err
		case v == given:
			msg := fmt.Sprintf("%s was given up after its retries: %s", typ, info.LastErr)
			return false, r.Store.FailJob(ctx, j.ID, ragpipe.CodeRetriesSpent, msg)
		case v == leave && orphans[id] && gen < maxRescues:
			rescue := queue.RescueID(queue.TaskID(typ, p), gen+1)
			if err := r.Queue.EnqueueAs(ctx, typ, queue.Encode(p), rescue); err != nil {
				return false, err
			}
			rescued = append(rescued, rescue)
			continue
		case v == leave:
			continue
		}
		if err := r.Queue.EnqueueAs(ctx, typ, queue.Encode(p), id); err != nil {
			return false, err
		}
		requeued = append(requeued, id)
	}
	if len(requeued)+len(rescued) == 0 {
		return false, nil
	}
	idle := time.Since(j.UpdatedAt).Round(time.Millisecond).String()
	if len(requeued) > 0 {
		r.Logger.Warn("reaper re-enqueued", "job_id", j.ID, "stage", j.Stage, "tasks", requeued, "idle", idle)
	}
	if len(rescued) > 0 {
		r.Logger.Warn("reaper rescued tasks a dead worker held", "job_id", j.ID, "stage", j.Stage, "tasks", rescued, "idle", idle)
	}
	return true, r.Store.MarkRecovered(ctx, j.ID, append(requeued, rescued...))
}

// sweepDeliveries re-enqueues pending webhook deliveries whose task is gone.
// A delivery waiting out its retry schedule has its task in the queue's
// retry or scheduled set and is left alone.
func (r *Reaper) sweepDeliveries(ctx context.Context) (int, error) {
	tasks, err := r.Store.StaleDeliveries(ctx, r.StaleAge, 200)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, t := range tasks {
		ok, err := r.ensure(ctx, queue.QueueWebhooks, t.ID, t.Type, t.Payload)
		if err != nil {
			return n, err
		}
		if ok {
			r.Logger.Warn("reaper re-enqueued webhook delivery", "task", t.ID)
			n++
		}
	}
	return n, nil
}

// DispatchStore hands out waiting jobs fairly.
type DispatchStore interface {
	DispatchQueued(ctx context.Context, perTenant, limit int, send func(ctx context.Context, jobID, requestID string) error) (int, error)
}

// Dispatch moves waiting jobs to the queue: at most perTenant of each
// tenant's jobs are in the queue at once, so one tenant's flood cannot starve
// another's single document.
func Dispatch(ctx context.Context, s DispatchStore, q Enqueuer, perTenant, limit int) (int, error) {
	return s.DispatchQueued(ctx, perTenant, limit, func(ctx context.Context, jobID, requestID string) error {
		return q.Enqueue(ctx, queue.TypeExtract, queue.Encode(queue.Payload{JobID: jobID, RequestID: requestID}))
	})
}
