package queue

import (
	"context"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// Keeper keeps tasks going for the reaper: it puts back tasks the queue lost
// (Redis lost its data, failed over, or a task was deleted) and rescues
// tasks held by workers that died.
//
// Asynq hands a dead worker's task back only 30 s after its lease expired,
// when a recoverer next runs (every minute): 60-120 s after the crash, while
// the job keeps its tenant's in-flight slot. Once the lease has expired
// (about 30 s after the crash, as no heartbeat renews it), the Keeper
// enqueues a copy under a rescue ID (rescueID); the original still runs
// again when Asynq recovers it, which the stages, being idempotent, absorb.
type Keeper struct {
	insp inspector
	q    enqueuer
}

// inspector is the part of Asynq's Inspector the Keeper uses.
type inspector interface {
	GetTaskInfo(queue, id string) (*asynq.TaskInfo, error)
	DeleteTask(queue, id string) error
	ListActiveTasks(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error)
}

type enqueuer interface {
	enqueueAs(ctx context.Context, t ragpipe.Task, id string) error
}

// NewKeeper returns a Keeper on the Redis at opt, enqueueing through c.
func NewKeeper(opt asynq.RedisConnOpt, c *Client) *Keeper {
	return &Keeper{insp: asynq.NewInspector(opt), q: c}
}

// Close releases the Keeper's connections (not its Client's).
func (k *Keeper) Close() error {
	if c, ok := k.insp.(*asynq.Inspector); ok {
		return c.Close()
	}
	return nil
}

// maxRescues bounds the rescues of one task; after that Asynq's own
// recovery is left to bring it back.
const maxRescues = 5

// A listing of active tasks reads up to maxPages pages of pageSize.
const (
	pageSize = 200
	maxPages = 50
)

// rescueID is the ID of the gen-th task enqueued in place of task id, each
// because the one before was held by a worker that died; gen 0 is id itself.
func rescueID(id string, gen int) string {
	if gen == 0 {
		return id
	}
	return fmt.Sprintf("%s~rescue%d", id, gen)
}

// Stranded returns the IDs of pipeline tasks whose worker stopped renewing
// their lease: it died or lost Redis for longer than a lease.
func (k *Keeper) Stranded(context.Context) (map[string]bool, error) {
	out := map[string]bool{}
	for _, q := range ragpipe.PipelineQueues {
		for page := 1; page <= maxPages; page++ {
			tasks, err := k.insp.ListActiveTasks(q, asynq.PageSize(pageSize), asynq.Page(page))
			if errors.Is(err, asynq.ErrQueueNotFound) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("list active tasks of %s: %w", q, err)
			}
			for _, t := range tasks {
				if t.IsOrphaned {
					out[t.ID] = true
				}
			}
			if len(tasks) < pageSize {
				break
			}
		}
	}
	return out, nil
}

// Ensure enqueues t again when the queue lost it or it completed, and
// reports whether it did. A task given up after its retries is left to the
// operator.
func (k *Keeper) Ensure(ctx context.Context, t ragpipe.Task) (bool, error) {
	v, _, err := k.inspect(t.Type.Queue(), t.ID, nil)
	if err != nil || v != requeue {
		return false, err
	}
	return true, k.q.enqueueAs(ctx, t, t.ID)
}

// Keep makes sure the work of t, a task a stale job needs, gets done: a lost
// task (or a completed one whose successor is missing) is enqueued again,
// one that stranded (from Stranded) says a dead worker holds is rescued, and
// one given up after its retries is reported so the job can end.
func (k *Keeper) Keep(ctx context.Context, t ragpipe.Task, stranded map[string]bool) (ragpipe.TaskFate, error) {
	q := t.Type.Queue()
	id, gen, err := k.current(q, t.ID)
	if err != nil {
		return ragpipe.TaskFate{}, err
	}
	// A completed stage whose successor's task exists (perhaps held by a
	// killed worker until its lease expires) has moved on.
	v, info, err := k.inspect(q, id, func() (bool, error) { return k.successorExists(t) })
	switch {
	case err != nil:
		return ragpipe.TaskFate{}, err
	case v == given:
		return ragpipe.TaskFate{Action: ragpipe.TaskGivenUp, ID: id, LastError: info.LastErr}, nil
	case v == leave && stranded[id] && gen < maxRescues:
		rescue := rescueID(t.ID, gen+1)
		return ragpipe.TaskFate{Action: ragpipe.TaskRescued, ID: rescue}, k.q.enqueueAs(ctx, t, rescue)
	case v == leave:
		return ragpipe.TaskFate{Action: ragpipe.TaskLeft, ID: id}, nil
	}
	return ragpipe.TaskFate{Action: ragpipe.TaskRequeued, ID: id}, k.q.enqueueAs(ctx, t, id)
}

// current returns the ID of the task that carries task id's work now: id
// itself or the last rescue enqueued in its place, and its generation.
func (k *Keeper) current(q, id string) (string, int, error) {
	gen := 0
	for ; gen < maxRescues; gen++ {
		_, err := k.insp.GetTaskInfo(q, rescueID(id, gen+1))
		if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
			break
		}
		if err != nil {
			return "", 0, err
		}
	}
	return rescueID(id, gen), gen, nil
}

// successorExists reports whether the task that follows t for its job is in
// the queue in any state but archived. Only extract and chunk have one known
// from the payload alone; the others report false.
func (k *Keeper) successorExists(t ragpipe.Task) (bool, error) {
	next := t.Type.Next()
	if next == "" {
		return false, nil
	}
	p, err := ragpipe.DecodeTask(t.Type, t.Payload)
	if err != nil {
		return false, err
	}
	info, err := k.insp.GetTaskInfo(next.Queue(), ragpipe.TaskID(next, ragpipe.TaskPayload{JobID: p.JobID}))
	switch {
	case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound):
		return false, nil
	case err != nil:
		return false, err
	}
	return info.State != asynq.TaskStateArchived, nil
}

// verdict is what the Keeper makes of one task in the queue.
type verdict int

const (
	leave   verdict = iota // pending, active, scheduled or retrying: it will run
	requeue                // gone (or completed with nothing after it): enqueue again
	given                  // archived: Asynq gave up on it
)

// inspect looks up task id of queue q. A completed task is run again
// (stages are idempotent) unless successorExists says the work moved on;
// its record is dropped first so its ID is free.
func (k *Keeper) inspect(q, id string, successorExists func() (bool, error)) (verdict, *asynq.TaskInfo, error) {
	info, err := k.insp.GetTaskInfo(q, id)
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
	if err := k.insp.DeleteTask(q, id); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
		return leave, info, err
	}
	return requeue, info, nil
}
