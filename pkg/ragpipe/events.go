package ragpipe

// JobEventType names an entry of a job's event log.
type JobEventType string

// Job event types. The status endpoints, the event stream and the webhooks
// are views of these.
const (
	JobQueuedEvent    JobEventType = "job.queued"
	JobStageEvent     JobEventType = "job.stage"    // the job moved to a stage
	JobRetryingEvent  JobEventType = "job.retrying" // a stage runs again after a failure
	JobProgressEvent  JobEventType = "job.progress"
	JobSucceededEvent JobEventType = "job.succeeded"
	JobFailedEvent    JobEventType = "job.failed"
	JobCanceledEvent  JobEventType = "job.canceled"
	JobRecoveredEvent JobEventType = "job.recovered" // the reaper re-enqueued or rescued its tasks
	JobRevivedEvent   JobEventType = "job.revived"   // an operator retried its archived task
)

// Announces names the webhook event a job event announces, if any.
func (t JobEventType) Announces() EventType {
	switch t {
	case JobSucceededEvent:
		return EventDocumentReady
	case JobFailedEvent:
		return EventDocumentFailed
	case JobProgressEvent:
		return EventJobProgress
	}
	return ""
}
