package ragpipe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// TaskType names a kind of queued work. Each has its own handler, retry
// policy and timeout (see pkg/queue).
type TaskType string

// Task types: one per pipeline stage, the cleanup of deleted documents, and
// webhook delivery.
const (
	TaskExtract TaskType = "doc:extract"
	TaskChunk   TaskType = "doc:chunk"
	TaskEmbed   TaskType = "doc:embed" // one task per batch of chunks
	TaskUpsert  TaskType = "doc:upsert"
	// TaskDelete removes a deleted document's objects and rows.
	TaskDelete TaskType = "doc:delete"
	// TaskSweep removes, later, what a stage still running at the deletion
	// wrote after the cleanup.
	TaskSweep TaskType = "doc:sweep"
	// TaskWebhookDeliver delivers one webhook event to one target.
	TaskWebhookDeliver TaskType = "webhook:deliver"
	// TaskReembed re-embeds part of a tenant's chunks into the configured
	// embedding space, then enqueues its successor until all are.
	TaskReembed TaskType = "embed:reembed"
)

// Queues, one per class of work, so operators run and scale each class on
// its own (RAGPIPE_WORKER_QUEUES): extraction and chunking are CPU-bound;
// embedding, storing and deleting wait on providers and the database;
// webhook deliveries wait on subscribers, and a slow one never holds up
// ingestion.
const (
	QueueExtract  = "extract"
	QueueEmbed    = "embed"
	QueueWebhooks = "webhooks"
	// QueueIngest held every pipeline task before the classes; pipeline
	// workers still drain what an older release left there.
	QueueIngest = "ingest"
)

// Queues lists every queue, in the order of the stages.
var Queues = []string{QueueExtract, QueueEmbed, QueueWebhooks, QueueIngest}

// PipelineQueues are the queues of the pipeline's tasks, whose workers'
// slots the dispatcher fills.
var PipelineQueues = []string{QueueExtract, QueueEmbed, QueueIngest}

// Queue returns the queue tasks of this type run on.
func (t TaskType) Queue() string {
	switch t {
	case TaskWebhookDeliver:
		return QueueWebhooks
	case TaskExtract, TaskChunk:
		return QueueExtract
	default:
		return QueueEmbed
	}
}

// Next is the stage task that follows t for the same job, when that is known
// from t alone: extract is followed by chunk, chunk by embed batch 0. Other
// types report "".
func (t TaskType) Next() TaskType {
	switch t {
	case TaskExtract:
		return TaskChunk
	case TaskChunk:
		return TaskEmbed
	}
	return ""
}

// TaskPayload is what every task carries: IDs only. The data lives in
// Postgres and the object store.
type TaskPayload struct {
	JobID      string `json:"job_id,omitempty"`
	DocumentID string `json:"document_id,omitempty"` // TaskDelete and TaskSweep
	TenantID   string `json:"tenant_id,omitempty"`   // TaskSweep and TaskReembed
	DeliveryID string `json:"delivery_id,omitempty"` // TaskWebhookDeliver
	Batch      int    `json:"batch,omitempty"`       // TaskEmbed; for TaskReembed, the chunks embedded before it
	Migration  int64  `json:"migration,omitempty"`   // TaskReembed
	RequestID  string `json:"request_id,omitempty"`
	// Trace is the trace context (W3C traceparent and tracestate) of the
	// request whose work the task carries on; the span of each run of the
	// task continues that trace. Nil when tracing is off.
	Trace map[string]string `json:"trace,omitempty"`
}

// Task is a unit of queued work under a deterministic ID: enqueueing the same
// step twice is harmless, as the queue refuses an ID it holds.
type Task struct {
	Type    TaskType
	ID      string
	Payload []byte
}

// NewTask returns the task of type typ for p, under its deterministic ID:
// one per job and stage (and batch, for embed), per document for the
// cleanup tasks, per delivery for webhooks.
func NewTask(typ TaskType, p TaskPayload) Task {
	b, _ := json.Marshal(p) // strings, ints and a map of strings always marshal
	return Task{Type: typ, ID: TaskID(typ, p), Payload: b}
}

// TaskID returns the deterministic ID of the task of type typ for p.
func TaskID(typ TaskType, p TaskPayload) string {
	switch typ {
	case TaskEmbed:
		return fmt.Sprintf("%s:%s:%d", typ, p.JobID, p.Batch)
	case TaskDelete, TaskSweep:
		return string(typ) + ":" + p.DocumentID
	case TaskWebhookDeliver:
		return string(typ) + ":" + p.DeliveryID
	case TaskReembed:
		return fmt.Sprintf("%s:%s:%d:%d", typ, p.TenantID, p.Migration, p.Batch)
	}
	return string(typ) + ":" + p.JobID
}

// QueueOfTaskID returns the queue of the task whose ID is id (IDs start with
// their type), or "" for an ID of no known type.
func QueueOfTaskID(id string) string {
	for _, typ := range []TaskType{TaskExtract, TaskChunk, TaskEmbed, TaskUpsert, TaskDelete, TaskSweep, TaskWebhookDeliver, TaskReembed} {
		if strings.HasPrefix(id, string(typ)+":") {
			return typ.Queue()
		}
	}
	return ""
}

// WebhookTask is the task that makes one attempt series of a delivery.
func WebhookTask(deliveryID string) Task {
	return NewTask(TaskWebhookDeliver, TaskPayload{DeliveryID: deliveryID})
}

// DecodeTask parses the payload of a task of type typ. A payload that lacks
// the IDs its type needs is a permanent error: retrying cannot mend it.
func DecodeTask(typ TaskType, b []byte) (TaskPayload, error) {
	var p TaskPayload
	if err := json.Unmarshal(b, &p); err != nil {
		return p, Permanent(fmt.Errorf("decode %s payload: %w", typ, err))
	}
	switch {
	case typ == TaskWebhookDeliver && p.DeliveryID == "":
		return p, Permanent(fmt.Errorf("%s payload without delivery_id", typ))
	case typ == TaskReembed && p.TenantID == "":
		return p, Permanent(fmt.Errorf("%s payload without tenant_id", typ))
	case typ != TaskWebhookDeliver && typ != TaskReembed && p.JobID == "" && p.DocumentID == "":
		return p, Permanent(fmt.Errorf("%s payload without job_id or document_id", typ))
	}
	return p, nil
}

// TaskRun is one run of a task as the queue hands it to its handler.
type TaskRun struct {
	Type     TaskType
	ID       string
	Payload  []byte
	Retried  int // runs before this one that failed
	MaxRetry int
}

// TaskHandler runs a task. An error asks for a retry, unless it is Permanent.
type TaskHandler func(ctx context.Context, t TaskRun) error

// ErrPermanent marks a task failure that no retry can mend; the queue then
// gives the task up at once.
var ErrPermanent = errors.New("permanent failure")

// Permanent marks err as a failure no retry can mend, keeping err's chain.
func Permanent(err error) error {
	if err == nil || errors.Is(err, ErrPermanent) {
		return err
	}
	return fmt.Errorf("%w: %w", err, ErrPermanent)
}

// TaskAction is what the queue did for a task it was asked to keep going.
type TaskAction int

// Task actions.
const (
	TaskLeft     TaskAction = iota // waiting, running or retrying: it will run
	TaskRequeued                   // lost (or completed with nothing after it): enqueued again
	TaskRescued                    // held by a dead worker: a copy enqueued under a rescue ID
	TaskGivenUp                    // archived after its retries: the queue gave up on it
)

// TaskFate is the outcome of keeping one task going: what was done, the ID of
// the task enqueued (for TaskRequeued and TaskRescued), and the last error of
// a task given up.
type TaskFate struct {
	Action    TaskAction
	ID        string
	LastError string
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
	// OldestPendingSeconds is how long the oldest pending task has waited
	// (0 when none does): with Pending, what an autoscaler scales a class on.
	OldestPendingSeconds float64 `json:"oldest_pending_seconds"`
}

// ArchivedTask is a task the queue gave up on after its retries (or at once,
// for a permanent failure). It stays until retried, deleted, or pushed out
// of the archive (at most 10,000 per queue, for 90 days).
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
