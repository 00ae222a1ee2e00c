package queue

import (
	"context"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// fakeQueue is the queue's task states by ID, the active ones whose worker
// died, and what was deleted and enqueued.
type fakeQueue struct {
	states   map[string]asynq.TaskState
	orphaned []string
	deleted  []string
	enqueued []string
}

func (q *fakeQueue) GetTaskInfo(_, id string) (*asynq.TaskInfo, error) {
	st, ok := q.states[id]
	if !ok {
		return nil, asynq.ErrTaskNotFound
	}
	return &asynq.TaskInfo{ID: id, State: st, LastErr: "boom"}, nil
}
func (q *fakeQueue) DeleteTask(_, id string) error { q.deleted = append(q.deleted, id); return nil }
func (q *fakeQueue) ListActiveTasks(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error) {
	var out []*asynq.TaskInfo
	for id, st := range q.states {
		if st == asynq.TaskStateActive {
			out = append(out, &asynq.TaskInfo{ID: id, State: st, IsOrphaned: slices.Contains(q.orphaned, id)})
		}
	}
	return out, nil
}
func (q *fakeQueue) enqueueAs(_ context.Context, _ ragpipe.Task, id string) error {
	q.enqueued = append(q.enqueued, id)
	return nil
}

func TestKeep(t *testing.T) {
	t.Parallel()
	const job = "job1"
	extract := ragpipe.NewTask(ragpipe.TaskExtract, ragpipe.TaskPayload{JobID: job})
	chunk := ragpipe.NewTask(ragpipe.TaskChunk, ragpipe.TaskPayload{JobID: job})
	upsert := ragpipe.NewTask(ragpipe.TaskUpsert, ragpipe.TaskPayload{JobID: job})
	embed1 := ragpipe.NewTask(ragpipe.TaskEmbed, ragpipe.TaskPayload{JobID: job, Batch: 1})
	const (
		left      = ragpipe.TaskLeft
		requeued  = ragpipe.TaskRequeued
		rescued   = ragpipe.TaskRescued
		givenUp   = ragpipe.TaskGivenUp
		active    = asynq.TaskStateActive
		pending   = asynq.TaskStatePending
		completed = asynq.TaskStateCompleted
		archived  = asynq.TaskStateArchived
		retry     = asynq.TaskStateRetry
	)
	tests := []struct {
		name     string
		task     ragpipe.Task
		states   map[string]asynq.TaskState
		orphaned []string
		want     ragpipe.TaskFate
		enqueued []string
		deleted  []string
	}{
		{"task lost", extract, nil, nil, ragpipe.TaskFate{Action: requeued, ID: "doc:extract:job1"}, []string{"doc:extract:job1"}, nil},
		{"task pending", chunk, map[string]asynq.TaskState{"doc:chunk:job1": pending}, nil,
			ragpipe.TaskFate{Action: left, ID: "doc:chunk:job1"}, nil, nil},
		{"task held by a live worker", chunk, map[string]asynq.TaskState{"doc:chunk:job1": active}, nil,
			ragpipe.TaskFate{Action: left, ID: "doc:chunk:job1"}, nil, nil},
		{"task held by a dead worker", chunk, map[string]asynq.TaskState{"doc:chunk:job1": active}, []string{"doc:chunk:job1"},
			ragpipe.TaskFate{Action: rescued, ID: "doc:chunk:job1~rescue1"}, []string{"doc:chunk:job1~rescue1"}, nil},
		{"rescue pending", chunk, map[string]asynq.TaskState{"doc:chunk:job1": active, "doc:chunk:job1~rescue1": pending},
			[]string{"doc:chunk:job1"}, ragpipe.TaskFate{Action: left, ID: "doc:chunk:job1~rescue1"}, nil, nil},
		{"rescue held by a dead worker too", chunk, map[string]asynq.TaskState{"doc:chunk:job1": active, "doc:chunk:job1~rescue1": active},
			[]string{"doc:chunk:job1", "doc:chunk:job1~rescue1"}, ragpipe.TaskFate{Action: rescued, ID: "doc:chunk:job1~rescue2"},
			[]string{"doc:chunk:job1~rescue2"}, nil},
		{"original given up, rescue retrying", chunk, map[string]asynq.TaskState{"doc:chunk:job1": archived, "doc:chunk:job1~rescue1": retry},
			nil, ragpipe.TaskFate{Action: left, ID: "doc:chunk:job1~rescue1"}, nil, nil},
		{"rescue done, successor lost", extract, map[string]asynq.TaskState{"doc:extract:job1": active, "doc:extract:job1~rescue1": completed},
			[]string{"doc:extract:job1"}, ragpipe.TaskFate{Action: requeued, ID: "doc:extract:job1~rescue1"},
			[]string{"doc:extract:job1~rescue1"}, []string{"doc:extract:job1~rescue1"}},
		{"dead workers held every rescue", chunk, map[string]asynq.TaskState{
			"doc:chunk:job1": active, "doc:chunk:job1~rescue1": active, "doc:chunk:job1~rescue2": active,
			"doc:chunk:job1~rescue3": active, "doc:chunk:job1~rescue4": active, "doc:chunk:job1~rescue5": active},
			[]string{"doc:chunk:job1", "doc:chunk:job1~rescue1", "doc:chunk:job1~rescue2", "doc:chunk:job1~rescue3", "doc:chunk:job1~rescue4", "doc:chunk:job1~rescue5"},
			ragpipe.TaskFate{Action: left, ID: "doc:chunk:job1~rescue5"}, nil, nil},
		{"stage done, successor held", extract, map[string]asynq.TaskState{"doc:extract:job1": completed, "doc:chunk:job1": active}, nil,
			ragpipe.TaskFate{Action: left, ID: "doc:extract:job1"}, nil, nil},
		{"stage done, successor lost", extract, map[string]asynq.TaskState{"doc:extract:job1": completed}, nil,
			ragpipe.TaskFate{Action: requeued, ID: "doc:extract:job1"}, []string{"doc:extract:job1"}, []string{"doc:extract:job1"}},
		{"chunk done, first embed batch waiting", chunk, map[string]asynq.TaskState{"doc:chunk:job1": completed, "doc:embed:job1:0": pending}, nil,
			ragpipe.TaskFate{Action: left, ID: "doc:chunk:job1"}, nil, nil},
		{"embed batch retrying", embed1, map[string]asynq.TaskState{"doc:embed:job1:1": retry}, nil,
			ragpipe.TaskFate{Action: left, ID: "doc:embed:job1:1"}, nil, nil},
		{"embed batch held by a dead worker", embed1, map[string]asynq.TaskState{"doc:embed:job1:1": active}, []string{"doc:embed:job1:1"},
			ragpipe.TaskFate{Action: rescued, ID: "doc:embed:job1:1~rescue1"}, []string{"doc:embed:job1:1~rescue1"}, nil},
		{"archived", upsert, map[string]asynq.TaskState{"doc:upsert:job1": archived}, nil,
			ragpipe.TaskFate{Action: givenUp, ID: "doc:upsert:job1", LastError: "boom"}, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := &fakeQueue{states: tc.states, orphaned: tc.orphaned}
			k := &Keeper{insp: q, q: q}
			ctx := context.Background()
			stranded, err := k.Stranded(ctx)
			if err != nil {
				t.Fatal(err)
			}
			got, err := k.Keep(ctx, tc.task, stranded)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("fate (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.enqueued, q.enqueued); diff != "" {
				t.Errorf("enqueued (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.deleted, q.deleted); diff != "" {
				t.Errorf("deleted (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEnsure(t *testing.T) {
	t.Parallel()
	del := ragpipe.NewTask(ragpipe.TaskDelete, ragpipe.TaskPayload{DocumentID: "d"})
	for _, tc := range []struct {
		name  string
		state map[string]asynq.TaskState
		want  bool
	}{
		{"lost", nil, true},
		{"completed", map[string]asynq.TaskState{del.ID: asynq.TaskStateCompleted}, true},
		{"scheduled", map[string]asynq.TaskState{del.ID: asynq.TaskStateScheduled}, false},
		{"archived", map[string]asynq.TaskState{del.ID: asynq.TaskStateArchived}, false},
	} {
		q := &fakeQueue{states: tc.state}
		got, err := (&Keeper{insp: q, q: q}).Ensure(context.Background(), del)
		if err != nil || got != tc.want || (len(q.enqueued) == 1) != tc.want {
			t.Errorf("%s: Ensure = %t, %v, enqueued %v; want %t", tc.name, got, err, q.enqueued, tc.want)
		}
	}
}
