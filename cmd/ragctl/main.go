// Command ragctl is ragpipe's operator tool:
//
//	ragctl migrate                          apply database migrations
//	ragctl admin create-key --tenant NAME   create a tenant (if new) and an API key
//	ragctl tasks stats                      queue depth by state
//	ragctl tasks archived [--queue Q]       tasks given up after their retries
//	ragctl tasks retry [--queue Q] ID|--all run archived tasks again
//	ragctl mcp                              an MCP server on stdin/stdout for AI assistants
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ragpipe/ragpipe/pkg/apikey"
	"github.com/ragpipe/ragpipe/pkg/client"
	"github.com/ragpipe/ragpipe/pkg/config"
	"github.com/ragpipe/ragpipe/pkg/mcpserver"
	"github.com/ragpipe/ragpipe/pkg/postgres"
	"github.com/ragpipe/ragpipe/pkg/queue"
	"github.com/ragpipe/ragpipe/pkg/ragpipe"
	"github.com/ragpipe/ragpipe/pkg/webhook"
)

const usage = `usage:
  ragctl migrate                          apply database migrations
  ragctl admin create-key --tenant NAME   create the tenant if needed and print a new API key
  ragctl tasks stats                      queue depth by state
  ragctl tasks archived [--queue Q]       list tasks given up after their retries (queue ingest or webhooks)
  ragctl tasks retry [--queue Q] ID|--all run archived tasks again (their jobs are revived)
  ragctl mcp                              serve MCP on stdin/stdout, calling the API at RAGPIPE_URL
                                          with RAGPIPE_API_KEY (for Claude Desktop and other MCP clients)
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "ragctl:", err)
		os.Exit(1)
	}
}

var errUsage = errors.New("see usage above")

func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	if args[0] == "mcp" {
		return runMCP(ctx, environ, os.Stdin, stdout)
	}
	cfg, err := config.Load(environ)
	if err != nil {
		return err
	}
	switch {
	case args[0] == "migrate":
		if err := postgres.Migrate(ctx, cfg.DatabaseURL); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "migrations applied")
		return nil
	case len(args) >= 2 && args[0] == "admin" && args[1] == "create-key":
		return createKey(ctx, cfg, args[2:], stdout, stderr)
	case len(args) >= 2 && args[0] == "tasks":
		return tasks(ctx, cfg, args[1], args[2:], stdout, stderr)
	}
	fmt.Fprint(stderr, usage)
	return errUsage
}

func createKey(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("create-key", flag.ContinueOnError)
	fs.SetOutput(stderr)
	tenant := fs.String("tenant", "", "tenant name (created if it does not exist)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *tenant == "" {
		return errors.New("create-key: --tenant is required")
	}
	if err := postgres.Migrate(ctx, cfg.DatabaseURL); err != nil {
		return err
	}
	db, err := postgres.Open(ctx, cfg.DatabaseURL, webhook.EncodeEvent)
	if err != nil {
		return err
	}
	defer db.Close()
	key, hash := apikey.New()
	tenantID, err := db.CreateKey(ctx, *tenant, apikey.Display(key), hash)
	if err != nil {
		return fmt.Errorf("create key: %w", err)
	}
	fmt.Fprintf(stdout, "tenant %s (%s)\nAPI key (shown once; store it now):\n%s\n", *tenant, tenantID, key)
	return nil
}

func tasks(ctx context.Context, cfg config.Config, verb string, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tasks "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	q := fs.String("queue", ragpipe.QueueIngest, "queue: ingest or webhooks")
	all := fs.Bool("all", false, "retry every archived task of the queue")
	limit := fs.Int("limit", 100, "most tasks to list")
	if err := fs.Parse(args); err != nil {
		return err
	}
	db, err := postgres.Open(ctx, cfg.DatabaseURL, webhook.EncodeEvent)
	if err != nil {
		return err
	}
	defer db.Close()
	admin := queue.NewAdmin(queue.Redis(cfg.RedisAddr, cfg.RedisPassword, cfg.RedisDB), db.ReviveJob)
	defer admin.Close()
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	defer tw.Flush()
	switch verb {
	case "stats":
		stats, err := admin.Stats()
		if err != nil {
			return err
		}
		fmt.Fprintln(tw, "QUEUE\tPENDING\tACTIVE\tSCHEDULED\tRETRY\tARCHIVED\tCOMPLETED")
		for _, s := range stats {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\n", s.Queue, s.Pending, s.Active, s.Scheduled, s.Retry, s.Archived, s.Completed)
		}
		return nil
	case "archived":
		list, err := admin.Archived(*q, *limit)
		if err != nil {
			return err
		}
		fmt.Fprintln(tw, "ID\tTYPE\tJOB\tRETRIED\tFAILED AT\tLAST ERROR")
		for _, t := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%s\n", t.ID, t.Type, t.JobID, t.Retried, t.MaxRetry,
				t.LastFailedAt.Format(time.RFC3339), t.LastError)
		}
		return nil
	case "retry":
		if *all {
			n, err := admin.RetryAll(ctx, *q)
			fmt.Fprintf(stdout, "retried %d tasks\n", n)
			return err
		}
		if fs.NArg() != 1 {
			return errors.New("tasks retry: give one task ID or --all")
		}
		if err := admin.Retry(ctx, *q, fs.Arg(0)); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "retried %s\n", fs.Arg(0))
		return nil
	}
	fmt.Fprint(stderr, usage)
	return errUsage
}

// apiClient is a client of the API at RAGPIPE_URL (default
// http://127.0.0.1:8080) with RAGPIPE_API_KEY, which is required.
func apiClient(environ []string) (*client.Client, error) {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	base := cmp.Or(env["RAGPIPE_URL"], "http://127.0.0.1:8080")
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("RAGPIPE_URL: want the API's http(s):// URL, got %q", base)
	}
	if env["RAGPIPE_API_KEY"] == "" {
		return nil, errors.New("RAGPIPE_API_KEY is required: an API key (ragctl admin create-key --tenant NAME)")
	}
	return &client.Client{BaseURL: base, Key: env["RAGPIPE_API_KEY"]}, nil
}

// runMCP serves MCP on in and out until the client closes in, with
// upload_file reading this machine's files.
func runMCP(ctx context.Context, environ []string, in io.Reader, out io.Writer) error {
	c, err := apiClient(environ)
	if err != nil {
		return err
	}
	return mcpserver.New(c, mcpserver.Options{LocalFiles: true}).Run(ctx,
		&mcp.IOTransport{Reader: io.NopCloser(in), Writer: nopWriteCloser{out}})
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
