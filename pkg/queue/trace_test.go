package queue

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/ragpipe/ragpipe/internal/testenv"
	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// TestTaskSpan runs a task whose payload carries the trace context of an
// upload's span through the handler adapter: the context survives the
// payload's JSON, the task's span is that span's child and follows its
// sampling decision whatever the ratio for new traces, a payload without a
// trace starts a new one, and a failure marks the span failed.
func TestTaskSpan(t *testing.T) {
	upload := trace.SpanContextConfig{
		TraceID: trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:  trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		Remote:  true,
	}
	upload.TraceState, _ = trace.ParseTraceState("vendor=opaque")
	tests := []struct {
		name      string
		ratio     float64 // of new traces
		parent    trace.TraceFlags
		hasParent bool
		err       error
		recorded  bool
	}{
		{"sampled upload, no new traces kept", 0, trace.FlagsSampled, true, nil, true},
		{"upload not sampled, every new trace kept", 1, 0, true, nil, false},
		{"no trace in the payload", 1, 0, false, nil, true},
		{"no trace in the payload, none kept", 0, 0, false, nil, false},
		{"permanent failure", 1, trace.FlagsSampled, true, ragpipe.Permanent(errors.New("pdf_encrypted")), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := testenv.Tracing(t, tc.ratio)
			var carrier map[string]string
			if tc.hasParent {
				cfg := upload
				cfg.TraceFlags = tc.parent
				ctx := trace.ContextWithRemoteSpanContext(context.Background(), trace.NewSpanContext(cfg))
				carrier = propagation.MapCarrier{}
				otel.GetTextMapPropagator().Inject(ctx, propagation.MapCarrier(carrier))
			}
			task := ragpipe.NewTask(ragpipe.TaskEmbed, ragpipe.TaskPayload{JobID: "j1", Batch: 2, Trace: carrier})
			p, err := ragpipe.DecodeTask(task.Type, task.Payload)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(carrier, p.Trace); diff != "" {
				t.Errorf("trace context after the payload's JSON (-sent +received):\n%s", diff)
			}

			var inside trace.SpanContext
			err = handler(func(ctx context.Context, _ ragpipe.TaskRun) error {
				inside = trace.SpanContextFromContext(ctx)
				return tc.err
			})(context.Background(), asynq.NewTask(string(task.Type), task.Payload))
			if tc.err != nil && !errors.Is(err, asynq.SkipRetry) {
				t.Errorf("handler returned %v; want SkipRetry", err)
			}
			if !inside.IsValid() || inside.IsSampled() != tc.recorded {
				t.Errorf("span context in the handler %+v; want valid, sampled %v", inside, tc.recorded)
			}
			if tc.hasParent && (inside.TraceID() != upload.TraceID || inside.TraceState().String() != "vendor=opaque") {
				t.Errorf("handler's trace %s state %q; want the upload's %s, vendor=opaque", inside.TraceID(), inside.TraceState(), upload.TraceID)
			}

			spans := rec.Ended()
			if !tc.recorded {
				if len(spans) != 0 {
					t.Errorf("recorded %d spans; want none", len(spans))
				}
				return
			}
			if len(spans) != 1 {
				t.Fatalf("recorded %d spans; want 1", len(spans))
			}
			s := spans[0]
			wantParent := trace.SpanID{}
			if tc.hasParent {
				wantParent = upload.SpanID
			}
			if s.Name() != "task doc:embed" || s.SpanKind() != trace.SpanKindConsumer || s.Parent().SpanID() != wantParent {
				t.Errorf("span %q kind %v parent %s; want task doc:embed, consumer, parent %s", s.Name(), s.SpanKind(), s.Parent().SpanID(), wantParent)
			}
			attrs := map[attribute.Key]attribute.Value{}
			for _, kv := range s.Attributes() {
				attrs[kv.Key] = kv.Value
			}
			if attrs["ragpipe.job.id"].AsString() != "j1" || attrs["ragpipe.batch"].AsInt64() != 2 ||
				attrs["messaging.system"].AsString() != "asynq" {
				t.Errorf("attributes %v", s.Attributes())
			}
			wantStatus := codes.Unset
			if tc.err != nil {
				wantStatus = codes.Error
			}
			if s.Status().Code != wantStatus {
				t.Errorf("status %v; want %v", s.Status(), wantStatus)
			}
		})
	}
}
