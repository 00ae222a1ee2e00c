package pipeline_test

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"

	"github.com/ragpipe/ragpipe/pkg/pipeline"
	"github.com/ragpipe/ragpipe/pkg/postgres"
	"github.com/ragpipe/ragpipe/pkg/queue"
	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// reaperStore serves one stale job and records what the reaper does to it.
type reaperStore struct {
	job       *ragpipe.Job
	pending   []int
	recovered []string
	failed    string
}

func (s *reaperStore) StaleJobs(_ context.Context, _ time.Duration, after *ragpipe.Job, _ int) ([]*ragpipe.Job, error) {
	if after != nil {
		return nil, nil
	}
	return []*ragpipe.Job{s.job}, nil
}
func (s *reaperStore) PendingBatches(context.Context, string) ([]int, error) { return s.pending, nil }
func (s *reaperStore) MarkRecovered(_ context.Context, _ string, tasks []string) error {
	s.recovered = tasks
	return nil
}
func (s *reaperStore) FailJob(_ context.Context, _, code, _ string) error {
	s.failed = code
	return nil
}
func (s *reaperStore) StaleDeliveries(context.Context, time.Duration, int) ([]postgres.OutboxTask, error) {
	return nil, nil
}
func (s *reaperStore) StaleDeletions(context.Context, time.Duration, int) ([]string, error) {
	return nil, nil
}

// fakeQueue is the queue's task states by ID, the active ones whose worker
// died, and what was enqueued.
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
	return &asynq.TaskInfo{ID: id, State: st}, nil
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
func (q *fakeQueue) Enqueue(ctx context.Context, typ string, payload []byte) error {
	return q.EnqueueAs(ctx, typ, payload, "")
}
func (q *fakeQueue) EnqueueAs(_ context.Context, typ string, payload []byte, id string) error {
	if id == "" {
		p, _ := queue.Decode(payload)
		id = queue.TaskID(typ, p)
	}
	q.enqueued = append(q.enqueued, id)
	return nil
}

func TestReaperDecisions(t *testing.T) {
	const j = "job1"
	tests := []struct {
		name     string
		stage    string
		pending  []int
		states   map[string]asynq.TaskState
		orphaned []string
		enqueued []string
		deleted  []string
		failed   string
	}{
		{"task lost", ragpipe.StageExtract, nil, nil, nil, []string{"doc:extract:job1"}, nil, ""},
		{"task pending", ragpipe.StageChunk, nil, map[string]asynq.TaskState{"doc:chunk:job1": asynq.TaskStatePending}, nil, nil, nil, ""},
		{"task held by a live worker", ragpipe.StageChunk, nil, map[string]asynq.TaskState{"doc:chunk:job1": asynq.TaskStateActive}, nil, nil, nil, ""},
		{"task held by a dead worker", ragpipe.StageChunk, nil, map[string]asynq.TaskState{"doc:chunk:job1": asynq.TaskStateActive},
			[]string{"doc:chunk:job1"}, []string{"doc:chunk:job1~rescue1"}, nil, ""},
		{"rescue pending", ragpipe.StageChunk, nil, map[string]asynq.TaskState{
			"doc:chunk:job1": asynq.TaskStateActive, "doc:chunk:job1~rescue1": asynq.TaskStatePending}, []string{"doc:chunk:job1"}, nil, nil, ""},
		{"rescue held by a dead worker too", ragpipe.StageChunk, nil, map[string]asynq.TaskState{
			"doc:chunk:job1": asynq.TaskStateActive, "doc:chunk:job1~rescue1": asynq.TaskStateActive},
			[]string{"doc:chunk:job1", "doc:chunk:job1~rescue1"}, []string{"doc:chunk:job1~rescue2"}, nil, ""},
		{"original given up, rescue retrying", ragpipe.StageChunk, nil, map[string]asynq.TaskState{
			"doc:chunk:job1": asynq.TaskStateArchived, "doc:chunk:job1~rescue1": asynq.TaskStateRetry}, nil, nil, nil, ""},
		{"rescue done, successor lost", ragpipe.StageExtract, nil, map[string]asynq.TaskState{
			"doc:extract:job1": asynq.TaskStateActive, "doc:extract:job1~rescue1": asynq.TaskStateCompleted}, []string{"doc:extract:job1"},
			[]string{"doc:extract:job1~rescue1"}, []string{"doc:extract:job1~rescue1"}, ""},
		{"dead workers held every rescue", ragpipe.StageChunk, nil, map[string]asynq.TaskState{
			"doc:chunk:job1": asynq.TaskStateActive, "doc:chunk:job1~rescue1": asynq.TaskStateActive, "doc:chunk:job1~rescue2": asynq.TaskStateActive,
			"doc:chunk:job1~rescue3": asynq.TaskStateActive, "doc:chunk:job1~rescue4": asynq.TaskStateActive, "doc:chunk:job1~rescue5": asynq.TaskStateActive},
			[]string{"doc:chunk:job1", "doc:chunk:job1~rescue1", "doc:chunk:job1~rescue2", "doc:chunk:job1~rescue3", "doc:chunk:job1~rescue4", "doc:chunk:job1~rescue5"}, nil, nil, ""},
		{"stage done, successor held", ragpipe.StageExtract, nil, map[string]asynq.TaskState{
			"doc:extract:job1": asynq.TaskStateCompleted, "doc:chunk:job1": asynq.TaskStateActive}, nil, nil, nil, ""},
		{"stage done, successor lost", ragpipe.StageExtract, nil, map[string]asynq.TaskState{
			"doc:extract:job1": asynq.TaskStateCompleted}, nil, []string{"doc:extract:job1"}, []string{"doc:extract:job1"}, ""},
		{"embed batches lost", ragpipe.StageEmbed, []int{1, 3}, map[string]asynq.TaskState{
			"doc:embed:job1:1": asynq.TaskStateRetry}, nil, []string{"doc:embed:job1:3"}, nil, ""},
		{"embed batch held by a dead worker", ragpipe.StageEmbed, []int{1, 3}, map[string]asynq.TaskState{
			"doc:embed:job1:1": asynq.TaskStateActive, "doc:embed:job1:3": asynq.TaskStatePending}, []string{"doc:embed:job1:1"},
			[]string{"doc:embed:job1:1~rescue1"}, nil, ""},
		{"all batches done, upsert lost", ragpipe.StageEmbed, nil, nil, nil, []string{"doc:upsert:job1"}, nil, ""},
		{"archived", ragpipe.StageUpsert, nil, map[string]asynq.TaskState{"doc:upsert:job1": asynq.TaskStateArchived}, nil, nil, nil, ragpipe.CodeRetriesSpent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			store := &reaperStore{job: &ragpipe.Job{ID: j, Stage: tc.stage, Status: ragpipe.JobRunning}, pending: tc.pending}
			q := &fakeQueue{states: tc.states, orphaned: tc.orphaned}
			r := &pipeline.Reaper{Store: store, Inspector: q, Queue: q, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
			if _, err := r.Sweep(context.Background()); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.enqueued, q.enqueued); diff != "" {
				t.Errorf("enqueued (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.deleted, q.deleted); diff != "" {
				t.Errorf("deleted (-want +got):\n%s", diff)
			}
			if store.failed != tc.failed {
				t.Errorf("failed with %q, want %q", store.failed, tc.failed)
			}
			if (len(tc.enqueued) > 0) != (store.recovered != nil) {
				t.Errorf("job.recovered recorded: %v", store.recovered)
			}
		})
	}
}
