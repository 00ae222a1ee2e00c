// Command ragctl is ragpipe's command line, for users and operators.
// Users (over the HTTP API, RAGPIPE_URL and RAGPIPE_API_KEY or --url and
// --api-key): upload, docs, jobs, search, ask, and mcp (an MCP server on
// stdio). Operators (with the services' settings): migrate, admin
// create-key, tasks. `ragctl COMMAND --help` says more; pkg/cli has the
// commands. Exit codes: 0 ok, 1 failure (the API's code and message on
// stderr), 2 usage.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/ragpipe/ragpipe/pkg/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.Run(ctx, os.Args[1:], os.Environ(), os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(cli.ExitCode(err, os.Stderr))
}
