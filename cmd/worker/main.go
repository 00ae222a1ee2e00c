// Command worker runs ragpipe's ingestion pipeline tasks. Run as many as the
// queue needs; they share work through Redis. Configuration comes from
// RAGPIPE_* environment variables; see docs/configuration.md.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/ragpipe/ragpipe/pkg/config"
	"github.com/ragpipe/ragpipe/pkg/platform"
	"github.com/ragpipe/ragpipe/pkg/telemetry"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Environ(), os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, environ []string, stderr io.Writer) error {
	cfg, err := config.Load(environ)
	if err != nil {
		return err
	}
	log := platform.NewLogger(cfg, stderr)
	stopTracing, err := telemetry.Start(ctx, cfg, telemetry.ServiceWorker, log)
	if err != nil {
		return err
	}
	defer stopTracing()
	if cfg.WorkerMemoryLimit > 0 && os.Getenv("GOMEMLIMIT") == "" {
		// The collector works harder near the limit instead of letting the
		// heap double past what is live: what keeps the worker's peak RSS
		// near its live data with several large documents at once.
		debug.SetMemoryLimit(cfg.WorkerMemoryLimit)
	}
	w, err := platform.NewWorker(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer w.Close()
	return w.Run(ctx)
}
