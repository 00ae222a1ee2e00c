// Package cli is ragctl's command line (cmd/ragctl only calls Run): user
// commands over the HTTP API (upload, docs, jobs, search, ask, mcp) and
// operator commands on the services (migrate, admin, tasks), on cobra.
package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ragpipe/ragpipe/pkg/apikey"
	"github.com/ragpipe/ragpipe/pkg/client"
	"github.com/ragpipe/ragpipe/pkg/config"
	"github.com/ragpipe/ragpipe/pkg/mcpserver"
	"github.com/ragpipe/ragpipe/pkg/platform"
	"github.com/ragpipe/ragpipe/pkg/postgres"
	"github.com/ragpipe/ragpipe/pkg/queue"
	"github.com/ragpipe/ragpipe/pkg/webhook"
)

// errUsage is a command used wrongly; its message has been printed.
var errUsage = errors.New("usage")

// ExitCode prints err (an API error as its code and message) and returns
// the process's exit code: 0 ok, 1 failure, 2 usage.
func ExitCode(err error, stderr io.Writer) int {
	var ae *client.APIError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage):
		return 2
	case errors.As(err, &ae):
		fmt.Fprintf(stderr, "ragctl: %s: %s\n", ae.Code, ae.Message)
	default:
		fmt.Fprintln(stderr, "ragctl:", err)
	}
	return 1
}

// Run runs the command line args with environ's settings.
func Run(ctx context.Context, args, environ []string, stdin io.Reader, stdout, stderr io.Writer) error {
	root := newRoot(environ, stdin, stdout, stderr)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err != nil && (isUsage(err) || cmd == root && len(args) == 0) {
		fmt.Fprintln(stderr, "ragctl:", err)
		fmt.Fprint(stderr, cmd.UsageString())
		return errUsage
	}
	return err
}

// isUsage reports whether err is cobra's about how a command was used.
func isUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand", "accepts ", "requires at least", "invalid argument", "flag needs an argument", "required flag"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

func createKey(ctx context.Context, cfg config.Config, tenant string, stdout io.Writer) error {
	if err := postgres.Migrate(ctx, cfg.DatabaseURL); err != nil {
		return err
	}
	db, err := postgres.Open(ctx, cfg.DatabaseURL, webhook.EncodeEvent)
	if err != nil {
		return err
	}
	defer db.Close()
	key, hash := apikey.New()
	tenantID, err := db.CreateKey(ctx, tenant, apikey.Display(key), hash)
	if err != nil {
		return fmt.Errorf("create key: %w", err)
	}
	fmt.Fprintf(stdout, "tenant %s (%s)\nAPI key (shown once; store it now):\n%s\n", tenant, tenantID, key)
	return nil
}

// taskFlags are the tasks commands' flags.
type taskFlags struct {
	queue string
	all   bool
	limit int
}

func tasks(ctx context.Context, cfg config.Config, verb string, args []string, f taskFlags, stdout io.Writer) error {
	db, err := postgres.Open(ctx, cfg.DatabaseURL, webhook.EncodeEvent)
	if err != nil {
		return err
	}
	defer db.Close()
	admin := queue.NewAdmin(platform.Redis(cfg).Asynq(), db.ReviveJob)
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
		list, err := admin.Archived(f.queue, f.limit)
		if err != nil {
			return err
		}
		fmt.Fprintln(tw, "ID\tTYPE\tJOB\tRETRIED\tFAILED AT\tLAST ERROR")
		for _, t := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%s\n", t.ID, t.Type, t.JobID, t.Retried, t.MaxRetry,
				t.LastFailedAt.Format(time.RFC3339), t.LastError)
		}
		return nil
	}
	if f.all {
		n, err := admin.RetryAll(ctx, f.queue)
		fmt.Fprintf(stdout, "retried %d tasks\n", n)
		return err
	}
	if len(args) != 1 {
		return fmt.Errorf("%w: tasks retry: give one task ID or --all", errUsage)
	}
	if err := admin.Retry(ctx, f.queue, args[0]); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "retried %s\n", args[0])
	return nil
}

// apiClient is a client of the API at RAGPIPE_URL (default
// http://127.0.0.1:8080) with RAGPIPE_API_KEY, which is required; the
// --url and --api-key flags, when given, win.
func apiClient(environ []string, flags ...string) (*client.Client, error) {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	if len(flags) == 2 {
		env["RAGPIPE_URL"], env["RAGPIPE_API_KEY"] = cmp.Or(flags[0], env["RAGPIPE_URL"]), cmp.Or(flags[1], env["RAGPIPE_API_KEY"])
	}
	base := cmp.Or(env["RAGPIPE_URL"], "http://127.0.0.1:8080")
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("RAGPIPE_URL: want the API's http(s):// URL, got %q", base)
	}
	if env["RAGPIPE_API_KEY"] == "" {
		return nil, errors.New("RAGPIPE_API_KEY (or --api-key) is required: an API key (ragctl admin create-key --tenant NAME)")
	}
	return &client.Client{BaseURL: base, Key: env["RAGPIPE_API_KEY"]}, nil
}

// runMCP serves MCP on in and out until the client closes in, with
// upload_file reading this machine's files.
func runMCP(ctx context.Context, c *client.Client, in io.Reader, out io.Writer) error {
	return mcpserver.New(c, mcpserver.Options{LocalFiles: true}).Run(ctx,
		&mcp.IOTransport{Reader: io.NopCloser(in), Writer: nopWriteCloser{out}})
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
