// Package telemetry sets up a process's OpenTelemetry tracing: spans sent
// over OTLP/HTTP to the collector at RAGPIPE_OTLP_ENDPOINT, new traces
// sampled at RAGPIPE_TRACE_SAMPLE_RATIO, trace context passed on as W3C
// Trace Context. The rest of ragpipe only speaks the OpenTelemetry API
// (go.opentelemetry.io/otel), whose global provider is a no-op until Start
// installs one; this is the one package that imports the SDK.
package telemetry

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/ragpipe/ragpipe/pkg/config"
)

// Service names, the resource's service.name of each process.
const (
	ServiceAPI    = "ragpipe-api"
	ServiceWorker = "ragpipe-worker"
)

// Start installs the process's tracer provider, as service, when
// cfg.OTLPEndpoint is set, and returns stop, which sends the spans still
// buffered (waiting at most cfg.ShutdownGrace) and ends it; call it as the
// process exits. Without an endpoint it installs nothing: the global
// provider stays the no-op one, no trace context is passed on, and stop
// does nothing. Export failures are logged to log.
func Start(ctx context.Context, cfg config.Config, service string, log *slog.Logger) (stop func(), err error) {
	if cfg.OTLPEndpoint == "" {
		return func() {}, nil
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(strings.TrimSuffix(cfg.OTLPEndpoint, "/")+"/v1/traces"))
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("tracing", "err", err) }))
	tp := Install(service, cfg.TraceSampleRatio, sdktrace.NewBatchSpanProcessor(exp))
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
		defer cancel()
		if err := tp.Shutdown(ctx); err != nil {
			log.Warn("flush traces", "err", err)
		}
	}, nil
}

// Install makes a tracer provider the process's global one, with the W3C
// Trace Context propagator, and returns it. Its spans go to sp and carry
// the resource of service (OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
// win over it); it keeps ratio of new traces and follows the decision of a
// span's parent, so the tasks of a document are kept or dropped with its
// upload. Start calls it with the OTLP exporter, tests with a span recorder.
func Install(service string, ratio float64, sp sdktrace.SpanProcessor) *sdktrace.TracerProvider {
	// Only the detectors' own errors, which leave their attributes out.
	res, _ := resource.New(context.Background(),
		resource.WithSchemaURL(semconv.SchemaURL),
		resource.WithAttributes(semconv.ServiceName(service)),
		resource.WithTelemetrySDK(), resource.WithHost(), resource.WithProcessPID(), resource.WithFromEnv())
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSpanProcessor(sp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	return tp
}
