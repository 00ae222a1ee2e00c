package telemetry_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/ragpipe/ragpipe/pkg/config"
	"github.com/ragpipe/ragpipe/pkg/telemetry"
)

// reset puts the no-op provider and propagator back when the test ends.
func reset(t *testing.T) {
	t.Cleanup(func() {
		otel.SetTracerProvider(noop.NewTracerProvider())
		otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator())
	})
}

// TestStartOff: without an endpoint nothing is installed, so spans are
// no-ops and no trace context is passed on.
func TestStartOff(t *testing.T) {
	reset(t)
	tp, prop := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	stop, err := telemetry.Start(context.Background(), config.Config{TraceSampleRatio: 1}, telemetry.ServiceAPI, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if otel.GetTracerProvider() != tp || otel.GetTextMapPropagator() != prop {
		t.Error("Start without an endpoint replaced the global provider or propagator")
	}
	ctx, span := otel.Tracer("test").Start(context.Background(), "upload")
	defer span.End()
	carrier := propagation.MapCarrier{}
	otel.GetTextMapPropagator().Inject(ctx, carrier)
	if span.IsRecording() || len(carrier) != 0 {
		t.Errorf("span recording %v, trace context passed on %v; want neither", span.IsRecording(), carrier)
	}
}

// TestStartExports sends spans to an OTLP/HTTP collector at the endpoint's
// /v1/traces, as the named service; stop flushes what is buffered.
func TestStartExports(t *testing.T) {
	reset(t)
	got := make(chan *collectortrace.ExportTraceServiceRequest, 1)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		req := new(collectortrace.ExportTraceServiceRequest)
		if r.URL.Path != "/v1/traces" || proto.Unmarshal(b, req) != nil {
			t.Errorf("collector got %s %s (%d bytes)", r.Method, r.URL.Path, len(b))
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		got <- req
	}))
	defer collector.Close()
	cfg := config.Config{OTLPEndpoint: collector.URL + "/", TraceSampleRatio: 1, ShutdownGrace: 5 * time.Second}
	stop, err := telemetry.Start(context.Background(), cfg, telemetry.ServiceWorker, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	_, span := otel.Tracer("test").Start(context.Background(), "task doc:extract", trace.WithSpanKind(trace.SpanKindConsumer))
	span.End()
	stop() // long before the batch's 5 s schedule

	select {
	case req := <-got:
		if len(req.ResourceSpans) != 1 {
			t.Fatalf("%d resource spans; want 1", len(req.ResourceSpans))
		}
		rs := req.ResourceSpans[0]
		service := ""
		for _, kv := range rs.Resource.Attributes {
			if kv.Key == "service.name" {
				service = kv.Value.GetStringValue()
			}
		}
		if service != telemetry.ServiceWorker || len(rs.ScopeSpans) != 1 || len(rs.ScopeSpans[0].Spans) != 1 ||
			rs.ScopeSpans[0].Spans[0].Name != "task doc:extract" {
			t.Errorf("exported service %q, %v", service, rs.ScopeSpans)
		}
	default:
		t.Fatal("stop returned before the collector got the span")
	}
}
