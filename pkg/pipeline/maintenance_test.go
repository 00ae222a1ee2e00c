package pipeline_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ragpipe/ragpipe/pkg/pipeline"
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
func (s *reaperStore) StaleReembeds(context.Context, time.Duration) ([]ragpipe.Task, error) {
	return nil, nil
}

func (s *reaperStore) StaleDeliveries(context.Context, time.Duration, int) ([]ragpipe.Task, error) {
	return nil, nil
}
func (s *reaperStore) StaleDeletions(context.Context, time.Duration, int) ([]string, error) {
	return nil, nil
}

// fakeKeeper answers each task with the fate named for its ID (TaskLeft by
// default) and records the tasks it was asked to keep, and their payloads.
type fakeKeeper struct {
	fates    map[string]ragpipe.TaskAction
	kept     []string
	payloads []ragpipe.TaskPayload
}

func (k *fakeKeeper) Stranded(context.Context) (map[string]bool, error) { return nil, nil }
func (k *fakeKeeper) Ensure(context.Context, ragpipe.Task) (bool, error) {
	return false, nil
}
func (k *fakeKeeper) Keep(_ context.Context, t ragpipe.Task, _ map[string]bool) (ragpipe.TaskFate, error) {
	k.kept = append(k.kept, t.ID)
	p, _ := ragpipe.DecodeTask(t.Type, t.Payload)
	k.payloads = append(k.payloads, p)
	return ragpipe.TaskFate{Action: k.fates[t.ID], ID: t.ID + "'"}, nil
}

func TestReaperDecisions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		stage     string
		pending   []int
		fates     map[string]ragpipe.TaskAction
		kept      []string
		recovered []string
		failed    string
	}{
		{"extract running", ragpipe.StageExtract, nil, nil, []string{"doc:extract:job1"}, nil, ""},
		{"extract lost", ragpipe.StageExtract, nil, map[string]ragpipe.TaskAction{"doc:extract:job1": ragpipe.TaskRequeued},
			[]string{"doc:extract:job1"}, []string{"doc:extract:job1'"}, ""},
		{"chunk rescued", ragpipe.StageChunk, nil, map[string]ragpipe.TaskAction{"doc:chunk:job1": ragpipe.TaskRescued},
			[]string{"doc:chunk:job1"}, []string{"doc:chunk:job1'"}, ""},
		{"embed batches pending", ragpipe.StageEmbed, []int{1, 3}, map[string]ragpipe.TaskAction{"doc:embed:job1:3": ragpipe.TaskRequeued},
			[]string{"doc:embed:job1:1", "doc:embed:job1:3"}, []string{"doc:embed:job1:3'"}, ""},
		{"all batches done", ragpipe.StageEmbed, nil, nil, []string{"doc:upsert:job1"}, nil, ""},
		{"upsert given up", ragpipe.StageUpsert, nil, map[string]ragpipe.TaskAction{"doc:upsert:job1": ragpipe.TaskGivenUp},
			[]string{"doc:upsert:job1"}, nil, ragpipe.CodeRetriesSpent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			trace := map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
			store := &reaperStore{job: &ragpipe.Job{ID: "job1", Stage: tc.stage, Status: ragpipe.JobRunning, RequestID: "req1", Trace: trace},
				pending: tc.pending}
			k := &fakeKeeper{fates: tc.fates}
			r := &pipeline.Reaper{Store: store, Tasks: k, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
			if _, err := r.Sweep(context.Background()); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.kept, k.kept); diff != "" {
				t.Errorf("kept (-want +got):\n%s", diff)
			}
			for i, p := range k.payloads {
				// The job's upload's trace goes on in the tasks built from the job row.
				if p.JobID != "job1" || p.RequestID != "req1" || !cmp.Equal(p.Trace, trace) {
					t.Errorf("task %s payload %+v; want job1's IDs and trace context", k.kept[i], p)
				}
			}
			if diff := cmp.Diff(tc.recovered, store.recovered); diff != "" {
				t.Errorf("recorded as recovered (-want +got):\n%s", diff)
			}
			if store.failed != tc.failed {
				t.Errorf("failed with %q, want %q", store.failed, tc.failed)
			}
		})
	}
}
