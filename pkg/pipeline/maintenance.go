package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// ReaperStore is the state the reaper reads and repairs.
type ReaperStore interface {
	StaleJobs(ctx context.Context, age time.Duration, after *ragpipe.Job, limit int) ([]*ragpipe.Job, error)
	StaleDeletions(ctx context.Context, age time.Duration, limit int) ([]string, error)
	PendingBatches(ctx context.Context, jobID string) ([]int, error)
	MarkRecovered(ctx context.Context, jobID string, tasks []string) error
	FailJob(ctx context.Context, jobID, code, message string) error
	StaleDeliveries(ctx context.Context, age time.Duration, limit int) ([]ragpipe.Task, error)
	StaleReembeds(ctx context.Context, age time.Duration) ([]ragpipe.Task, error)
}

// TaskKeeper keeps tasks going in the queue (pkg/queue's Keeper).
type TaskKeeper interface {
	// Stranded returns the IDs of tasks held by workers that died.
	Stranded(ctx context.Context) (map[string]bool, error)
	// Ensure enqueues t again if the queue lost it or it completed, and
	// reports whether it did.
	Ensure(ctx context.Context, t ragpipe.Task) (bool, error)
	// Keep makes sure the work of t, which a stale job needs, gets done:
	// requeued if lost, rescued if stranded says a dead worker holds it,
	// or reported given up.
	Keep(ctx context.Context, t ragpipe.Task, stranded map[string]bool) (ragpipe.TaskFate, error)
}

// Reaper finds jobs whose tasks have vanished from the queue (Redis lost its
// data, failed over, or a task was deleted) or are held by workers that
// died, and drives them on from the state kept in Postgres: it works out
// the tasks each stale job needs now and has the queue keep them going. It
// does the same for pending webhook deliveries and document cleanups.
type Reaper struct {
	Store    ReaperStore
	Tasks    TaskKeeper
	Logger   *slog.Logger
	StaleAge time.Duration // a job untouched this long is checked
}

// A sweep looks at up to maxSweepPages pages of sweepPage stale jobs.
const (
	sweepPage     = 200
	maxSweepPages = 50
)

// expected returns the tasks that must exist for j to make progress.
func (r *Reaper) expected(ctx context.Context, j *ragpipe.Job) ([]ragpipe.Task, error) {
	p := ragpipe.TaskPayload{JobID: j.ID, RequestID: j.RequestID, Trace: j.Trace}
	switch j.Stage {
	case ragpipe.StageExtract:
		return []ragpipe.Task{ragpipe.NewTask(ragpipe.TaskExtract, p)}, nil
	case ragpipe.StageChunk:
		return []ragpipe.Task{ragpipe.NewTask(ragpipe.TaskChunk, p)}, nil
	case ragpipe.StageEmbed:
		batches, err := r.Store.PendingBatches(ctx, j.ID)
		if err != nil {
			return nil, err
		}
		if len(batches) == 0 {
			return []ragpipe.Task{ragpipe.NewTask(ragpipe.TaskUpsert, p)}, nil
		}
		out := make([]ragpipe.Task, len(batches))
		for i, b := range batches {
			p.Batch = b
			out[i] = ragpipe.NewTask(ragpipe.TaskEmbed, p)
		}
		return out, nil
	default:
		return []ragpipe.Task{ragpipe.NewTask(ragpipe.TaskUpsert, p)}, nil
	}
}

// Sweep checks every stale job, pending webhook delivery, stopped
// re-embedding and stuck deletion
// once and returns how many it re-enqueued.
func (r *Reaper) Sweep(ctx context.Context) (int, error) {
	recovered, err := r.sweepTasks(ctx)
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
	var stranded map[string]bool
	for range maxSweepPages {
		jobs, err := r.Store.StaleJobs(ctx, r.StaleAge, after, sweepPage)
		if err != nil {
			return recovered, err
		}
		if len(jobs) > 0 && stranded == nil {
			if stranded, err = r.Tasks.Stranded(ctx); err != nil {
				return recovered, err
			}
		}
		for _, j := range jobs {
			ok, err := r.check(ctx, j, stranded)
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

// sweepDeletions re-enqueues the cleanup of documents stuck in deleting.
func (r *Reaper) sweepDeletions(ctx context.Context) (int, error) {
	ids, err := r.Store.StaleDeletions(ctx, r.StaleAge, 200)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		ok, err := r.Tasks.Ensure(ctx, ragpipe.NewTask(ragpipe.TaskDelete, ragpipe.TaskPayload{DocumentID: id}))
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

// check has the queue keep every task j needs, and records what was
// re-enqueued or rescued; a task given up after its retries ends the job.
func (r *Reaper) check(ctx context.Context, j *ragpipe.Job, stranded map[string]bool) (bool, error) {
	tasks, err := r.expected(ctx, j)
	if err != nil {
		return false, err
	}
	var requeued, rescued []string
	for _, t := range tasks {
		fate, err := r.Tasks.Keep(ctx, t, stranded)
		if err != nil {
			return false, err
		}
		switch fate.Action {
		case ragpipe.TaskGivenUp:
			msg := fmt.Sprintf("%s was given up after its retries: %s", t.Type, fate.LastError)
			return false, r.Store.FailJob(ctx, j.ID, ragpipe.CodeRetriesSpent, msg)
		case ragpipe.TaskRequeued:
			requeued = append(requeued, fate.ID)
		case ragpipe.TaskRescued:
			rescued = append(rescued, fate.ID)
		}
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

// sweepTasks re-enqueues pending webhook deliveries whose task is gone,
// and the tasks of re-embeddings that stopped. A delivery waiting out its
// retry schedule has its task in the queue's retry or scheduled set and is
// left alone.
func (r *Reaper) sweepTasks(ctx context.Context) (int, error) {
	deliveries, err := r.Store.StaleDeliveries(ctx, r.StaleAge, 200)
	if err != nil {
		return 0, err
	}
	reembeds, err := r.Store.StaleReembeds(ctx, r.StaleAge)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, t := range append(deliveries, reembeds...) {
		ok, err := r.Tasks.Ensure(ctx, t)
		if err != nil {
			return n, err
		}
		if ok {
			r.Logger.Warn("reaper re-enqueued", "task", t.ID)
			n++
		}
	}
	return n, nil
}

// DispatchStore hands out waiting jobs fairly.
type DispatchStore interface {
	DispatchQueued(ctx context.Context, perTenant, capacity, limit int, send func(ctx context.Context, p ragpipe.TaskPayload) error) (int, error)
}

// Dispatch moves waiting jobs to the queue, up to capacity jobs in flight
// shared evenly by the tenants that have work, and always up to perTenant of
// each tenant's: one tenant's flood cannot starve another's single
// document, and a tenant alone uses every worker.
func Dispatch(ctx context.Context, s DispatchStore, q Enqueuer, perTenant, capacity, limit int) (int, error) {
	return s.DispatchQueued(ctx, perTenant, capacity, limit, func(ctx context.Context, p ragpipe.TaskPayload) error {
		return q.Enqueue(ctx, ragpipe.NewTask(ragpipe.TaskExtract, p))
	})
}
