// Command api serves ragpipe's HTTP API. Configuration comes from RAGPIPE_*
// environment variables; see docs/configuration.md.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/ragpipe/ragpipe/pkg/config"
	"github.com/ragpipe/ragpipe/pkg/platform"
	"github.com/ragpipe/ragpipe/pkg/telemetry"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Environ(), os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "api:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, environ []string, stderr io.Writer) error {
	cfg, err := config.Load(environ)
	if err != nil {
		return err
	}
	log := platform.NewLogger(cfg, stderr)
	stopTracing, err := telemetry.Start(ctx, cfg, telemetry.ServiceAPI, log)
	if err != nil {
		return err
	}
	defer stopTracing()
	api, err := platform.NewAPI(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer api.Close()
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on RAGPIPE_HTTP_ADDR=%s: %w", cfg.HTTPAddr, err)
	}
	return api.Serve(ctx, ln)
}
