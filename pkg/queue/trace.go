package queue

import (
	"context"
	"encoding/json"

	"github.com/hibiken/asynq"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// tracerName names the task spans' instrumentation scope.
const tracerName = "github.com/ragpipe/ragpipe/pkg/queue"

// startSpan starts the span of one run of a task, "task doc:extract" and so
// on: a child of the span whose trace context the payload carries
// (ragpipe.TaskPayload.Trace), so it follows that span's sampling decision,
// or the root of a new trace when it carries none.
func startSpan(ctx context.Context, r ragpipe.TaskRun) (context.Context, trace.Span) {
	var p ragpipe.TaskPayload
	_ = json.Unmarshal(r.Payload, &p) // the handler fails a payload that does not decode
	ctx = otel.GetTextMapPropagator().Extract(ctx, propagation.MapCarrier(p.Trace))
	q, _ := asynq.GetQueueName(ctx)
	attrs := []attribute.KeyValue{
		semconv.MessagingSystemKey.String("asynq"), semconv.MessagingOperationTypeProcess,
		semconv.MessagingDestinationName(q), semconv.MessagingMessageID(r.ID),
		attribute.Int("ragpipe.task.retried", r.Retried),
	}
	for _, a := range []struct{ key, value string }{
		{"ragpipe.job.id", p.JobID}, {"ragpipe.document.id", p.DocumentID},
		{"ragpipe.tenant.id", p.TenantID}, {"ragpipe.delivery.id", p.DeliveryID},
	} {
		if a.value != "" {
			attrs = append(attrs, attribute.String(a.key, a.value))
		}
	}
	if r.Type == ragpipe.TaskEmbed {
		attrs = append(attrs, attribute.Int("ragpipe.batch", p.Batch))
	}
	return otel.Tracer(tracerName).Start(ctx, "task "+string(r.Type),
		trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...))
}

// spanError marks span failed with err, when err is not nil.
func spanError(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
}
