package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/ragpipe/ragpipe/pkg/client"
	"github.com/ragpipe/ragpipe/pkg/config"
	"github.com/ragpipe/ragpipe/pkg/postgres"
	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// cli holds what every command shares.
type cli struct {
	environ        []string
	stdin          io.Reader
	stdout, stderr io.Writer
	url, key       string
	json           bool
}

func (c *cli) client() (*client.Client, error) { return apiClient(c.environ, c.url, c.key) }

// terminal reports whether stdout is a terminal, where progress bars go.
func (c *cli) terminal() bool {
	f, ok := c.stdout.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// print writes v as indented JSON with --json, else calls human.
func (c *cli) print(v any, human func(w io.Writer)) error {
	if c.json {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(c.stdout, 2, 4, 2, ' ', 0)
	human(tw)
	return tw.Flush()
}

func newRoot(environ []string, stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	c := &cli{environ: environ, stdin: stdin, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "ragctl",
		Short: "ragpipe's command line: upload, search and ask; MCP; operations",
		Long: "ragctl talks to the ragpipe API (RAGPIPE_URL, default http://127.0.0.1:8080, with RAGPIPE_API_KEY)\n" +
			"for upload, docs, jobs, search, ask and mcp, and to the services directly (RAGPIPE_* settings)\n" +
			"for migrate, admin and tasks.\n\nExit codes: 0 ok, 1 failure (the API's code and message on stderr), 2 usage.",
		SilenceUsage: true, SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error { return fmt.Errorf("%w: a command is needed", errUsage) },
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().StringVar(&c.url, "url", "", "the API's URL (default $RAGPIPE_URL, else http://127.0.0.1:8080)")
	root.PersistentFlags().StringVar(&c.key, "api-key", "", "the API key (default $RAGPIPE_API_KEY)")
	root.PersistentFlags().BoolVar(&c.json, "json", false, "print the API's JSON instead of tables")
	root.AddCommand(c.uploadCmd(), c.docsCmd(), c.jobsCmd(), c.searchCmd(), c.askCmd(), c.mcpCmd())
	root.AddCommand(c.migrateCmd(), c.adminCmd(), c.tasksCmd())
	return root
}

// operator commands read the services' settings.
func (c *cli) config() (config.Config, error) { return config.Load(c.environ) }

func (c *cli) migrateCmd() *cobra.Command {
	return &cobra.Command{Use: "migrate", Short: "Apply the database migrations", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := c.config()
			if err != nil {
				return err
			}
			if err := postgres.Migrate(cmd.Context(), cfg.DatabaseURL); err != nil {
				return err
			}
			fmt.Fprintln(c.stdout, "migrations applied")
			return nil
		}}
}

func (c *cli) adminCmd() *cobra.Command {
	admin := &cobra.Command{Use: "admin", Short: "Tenants and API keys"}
	var tenant string
	create := &cobra.Command{Use: "create-key", Short: "Create the tenant if needed and print a new API key", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := c.config()
			if err != nil {
				return err
			}
			return createKey(cmd.Context(), cfg, tenant, c.stdout)
		}}
	create.Flags().StringVar(&tenant, "tenant", "", "tenant name (created if it does not exist)")
	_ = create.MarkFlagRequired("tenant")
	admin.AddCommand(create)
	return admin
}

func (c *cli) tasksCmd() *cobra.Command {
	t := &cobra.Command{Use: "tasks", Short: "Queue depth and tasks given up after their retries"}
	var f taskFlags
	for _, verb := range []struct{ use, short string }{
		{"stats", "Queue depth by state"},
		{"archived", "List tasks given up after their retries"},
		{"retry [ID]", "Run archived tasks again (one by ID, or --all); their jobs are revived"},
	} {
		cmd := &cobra.Command{Use: verb.use, Short: verb.short, Args: cobra.MaximumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				cfg, err := c.config()
				if err != nil {
					return err
				}
				return tasks(cmd.Context(), cfg, cmd.Name(), args, f, c.stdout)
			}}
		cmd.Flags().StringVar(&f.queue, "queue", "", "queue: extract, embed, webhooks or ingest (left by an older release); default every queue")
		if cmd.Name() == "archived" {
			cmd.Flags().IntVar(&f.limit, "limit", 100, "most tasks to list")
		}
		if cmd.Name() == "retry" {
			cmd.Flags().BoolVar(&f.all, "all", false, "retry every archived task of the queue")
		}
		t.AddCommand(cmd)
	}
	return t
}

func (c *cli) mcpCmd() *cobra.Command {
	return &cobra.Command{Use: "mcp", Short: "Serve MCP on stdin/stdout (for Claude Desktop and other MCP clients)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			api, err := c.client()
			if err != nil {
				return err
			}
			return runMCP(cmd.Context(), api, c.stdin, c.stdout)
		}}
}

type uploadAnswer struct {
	DocumentID string `json:"document_id"`
	JobID      string `json:"job_id"`
	Status     string `json:"status"`
}

func (c *cli) uploadCmd() *cobra.Command {
	var collection, metadata string
	var wait bool
	cmd := &cobra.Command{Use: "upload PATH...", Short: "Upload files; with --wait, follow each job to its end",
		Long: "Uploads each file (PDF, DOCX, HTML, Markdown, text). On a terminal a bar shows the bytes sent,\n" +
			"then (--wait) the job's stage and progress from its event stream; a summary follows.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, paths []string) error {
			api, err := c.client()
			if err != nil {
				return err
			}
			fields := map[string]string{}
			if collection != "" {
				fields["collection"] = collection
			}
			if metadata != "" {
				fields["metadata"] = metadata
			}
			type row struct {
				File   string         `json:"file"`
				Upload uploadAnswer   `json:"upload"`
				Job    map[string]any `json:"job,omitempty"`
				Error  string         `json:"error,omitempty"`
			}
			var rows []row
			failed := 0
			for _, path := range paths {
				r := row{File: path}
				up, err := c.upload(cmd.Context(), api, path, fields)
				if err == nil {
					r.Upload = up
					if wait {
						r.Job, err = c.follow(cmd.Context(), api, filepath.Base(path), up.JobID)
					}
				}
				if err != nil {
					r.Error = errorText(err)
					failed++
				} else if wait && r.Job["status"] != "succeeded" {
					failed++
				}
				rows = append(rows, r)
			}
			err = c.print(rows, func(w io.Writer) {
				fmt.Fprintln(w, "FILE\tDOCUMENT\tJOB\tSTATUS\tERROR")
				for _, r := range rows {
					status, problem := r.Upload.Status, r.Error
					if r.Job != nil {
						status = fmt.Sprint(r.Job["status"])
						if e, ok := r.Job["error"].(map[string]any); ok {
							problem = fmt.Sprintf("%v: %v", e["code"], e["message"])
						}
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.File, r.Upload.DocumentID, r.Upload.JobID, status, problem)
				}
			})
			if err == nil && failed > 0 {
				err = fmt.Errorf("%d of %d files did not succeed", failed, len(paths))
			}
			return err
		}}
	cmd.Flags().StringVar(&collection, "collection", "", "the collection to put the files in")
	cmd.Flags().StringVar(&metadata, "metadata", "", `metadata as a JSON object, e.g. '{"team":"finance"}'`)
	cmd.Flags().BoolVar(&wait, "wait", false, "follow each job until it ends")
	return cmd
}

func errorText(err error) string {
	if ae, ok := err.(*client.APIError); ok {
		return ae.Code + ": " + ae.Message
	}
	return err.Error()
}

// upload sends one file, with a bar of bytes sent on a terminal.
func (c *cli) upload(ctx context.Context, api *client.Client, path string, fields map[string]string) (uploadAnswer, error) {
	var up uploadAnswer
	f, err := os.Open(path)
	if err != nil {
		return up, err
	}
	defer f.Close()
	var body io.Reader = f
	if c.terminal() && !c.json {
		st, err := f.Stat()
		if err != nil {
			return up, err
		}
		bar := progressbar.NewOptions64(st.Size(), progressbar.OptionSetWriter(c.stderr), progressbar.OptionShowBytes(true),
			progressbar.OptionSetDescription(filepath.Base(path)+" upload"), progressbar.OptionClearOnFinish())
		r := progressbar.NewReader(f, bar)
		body = &r
		defer bar.Finish()
	}
	return up, api.Upload(ctx, filepath.Base(path), body, fields, &up)
}

// follow reads a job's event stream until its final event, showing its
// stage and progress on a terminal (the bar stays, full when the job
// succeeded, where it stopped otherwise), and returns the job as it ended.
func (c *cli) follow(ctx context.Context, api *client.Client, name, jobID string) (map[string]any, error) {
	var bar *progressbar.ProgressBar
	status := ""
	if c.terminal() && !c.json {
		bar = progressbar.NewOptions(100, progressbar.OptionSetWriter(c.stderr), progressbar.OptionSetDescription(name+" queued"))
		defer func() {
			if status == ragpipe.JobSucceeded {
				_ = bar.Finish()
			} else {
				_ = bar.Exit()
			}
			fmt.Fprintln(c.stderr) // the bar's line stays
		}()
	}
	err := api.Stream(ctx, http.MethodGet, "/v1/jobs/"+url.PathEscape(jobID)+"/events", nil, func(event string, data []byte) error {
		var e struct {
			Stage    string  `json:"stage"`
			Status   string  `json:"status"`
			Progress float64 `json:"progress"`
		}
		_ = json.Unmarshal(data, &e)
		status = e.Status
		if bar != nil {
			bar.Describe(name + " " + strings.TrimSpace(e.Status+" "+e.Stage))
			_ = bar.Set(int(e.Progress * 100))
		} else if !c.json {
			fmt.Fprintf(c.stderr, "%s: %s %s %.0f%%\n", name, event, e.Stage, e.Progress*100)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var job map[string]any
	return job, api.Do(ctx, http.MethodGet, "/v1/jobs/"+url.PathEscape(jobID), nil, &job)
}

func (c *cli) docsCmd() *cobra.Command {
	docs := &cobra.Command{Use: "docs", Short: "List, show and delete documents"}
	var collection, status string
	var limit int
	list := &cobra.Command{Use: "list", Short: "List documents, newest first", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{"limit": {fmt.Sprint(limit)}}
			if collection != "" {
				q.Set("collection", collection)
			}
			if status != "" {
				q.Set("status", status)
			}
			var out struct {
				Documents  []ragpipe.DocumentJSON `json:"documents"`
				NextCursor string                 `json:"next_cursor"`
			}
			if err := c.call(cmd.Context(), http.MethodGet, "/v1/documents?"+q.Encode(), nil, &out); err != nil {
				return err
			}
			return c.print(out, func(w io.Writer) {
				fmt.Fprintln(w, "ID\tFILENAME\tCOLLECTION\tSTATUS\tPAGES\tCHUNKS\tCREATED")
				for _, d := range out.Documents {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%d\t%s\n", d.ID, d.Filename, d.Collection, d.Status, d.Pages, d.ChunkCount,
						d.CreatedAt.Format(time.DateTime))
				}
			})
		}}
	list.Flags().StringVar(&collection, "collection", "", "only this collection")
	list.Flags().StringVar(&status, "status", "", "only processing, ready or failed")
	list.Flags().IntVar(&limit, "limit", 20, "most documents (1-100)")
	get := &cobra.Command{Use: "get ID", Short: "Show a document", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var d ragpipe.DocumentJSON
			if err := c.call(cmd.Context(), http.MethodGet, "/v1/documents/"+url.PathEscape(args[0]), nil, &d); err != nil {
				return err
			}
			return c.print(d, func(w io.Writer) {
				fmt.Fprintf(w, "id\t%s\nfilename\t%s\ncollection\t%s\nformat\t%s\nstatus\t%s\npages\t%d\nchunks\t%d\ncreated\t%s\n",
					d.ID, d.Filename, d.Collection, d.Format, d.Status, d.Pages, d.ChunkCount, d.CreatedAt.Format(time.RFC3339))
			})
		}}
	del := &cobra.Command{Use: "delete ID", Short: "Delete a document (gone from search at once)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out map[string]any
			if err := c.call(cmd.Context(), http.MethodDelete, "/v1/documents/"+url.PathEscape(args[0]), nil, &out); err != nil {
				return err
			}
			return c.print(out, func(w io.Writer) { fmt.Fprintf(w, "deleted %s\n", args[0]) })
		}}
	docs.AddCommand(list, get, del)
	return docs
}

func (c *cli) call(ctx context.Context, method, path string, body, out any) error {
	api, err := c.client()
	if err != nil {
		return err
	}
	return api.Do(ctx, method, path, body, out)
}

func (c *cli) jobsCmd() *cobra.Command {
	jobs := &cobra.Command{Use: "jobs", Short: "Show, follow and cancel ingestion jobs"}
	show := func(w io.Writer, j map[string]any) {
		fmt.Fprintf(w, "id\t%v\ndocument\t%v\nstatus\t%v\nstage\t%v\nprogress\t%v\n", j["id"], j["document_id"], j["status"], j["stage"], j["progress"])
		if e, ok := j["error"].(map[string]any); ok {
			fmt.Fprintf(w, "error\t%v: %v\n", e["code"], e["message"])
		}
	}
	get := &cobra.Command{Use: "get ID", Short: "Show a job", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var j map[string]any
			if err := c.call(cmd.Context(), http.MethodGet, "/v1/jobs/"+url.PathEscape(args[0]), nil, &j); err != nil {
				return err
			}
			return c.print(j, func(w io.Writer) { show(w, j) })
		}}
	watch := &cobra.Command{Use: "watch ID", Short: "Follow a job's events until it ends", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.client()
			if err != nil {
				return err
			}
			j, err := c.follow(cmd.Context(), api, "job", args[0])
			if err != nil {
				return err
			}
			return c.print(j, func(w io.Writer) { show(w, j) })
		}}
	cancel := &cobra.Command{Use: "cancel ID", Short: "Cancel a job", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var j map[string]any
			if err := c.call(cmd.Context(), http.MethodPost, "/v1/jobs/"+url.PathEscape(args[0])+"/cancel", nil, &j); err != nil {
				return err
			}
			return c.print(j, func(w io.Writer) { show(w, j) })
		}}
	jobs.AddCommand(get, watch, cancel)
	return jobs
}

// filterFlags are the search filters both search and ask take.
type filterFlags struct {
	collection, metadata, after, before string
	documents                           []string
}

func (f *filterFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.collection, "collection", "", "only this collection")
	cmd.Flags().StringSliceVar(&f.documents, "document", nil, "only these documents (repeat or comma separate)")
	cmd.Flags().StringVar(&f.metadata, "metadata", "", `metadata filter as JSON, e.g. '{"team":"finance"}'`)
	cmd.Flags().StringVar(&f.after, "after", "", "only documents created after this RFC 3339 time")
	cmd.Flags().StringVar(&f.before, "before", "", "only documents created before this RFC 3339 time")
}

func (f *filterFlags) apply(body map[string]any) error {
	for k, v := range map[string]string{"collection": f.collection, "created_after": f.after, "created_before": f.before} {
		if v != "" {
			body[k] = v
		}
	}
	if len(f.documents) > 0 {
		body["document_ids"] = f.documents
	}
	if f.metadata != "" {
		var md map[string]any
		if err := json.Unmarshal([]byte(f.metadata), &md); err != nil {
			return fmt.Errorf("%w: --metadata must be a JSON object: %v", errUsage, err)
		}
		body["metadata"] = md
	}
	return nil
}

func (c *cli) searchCmd() *cobra.Command {
	var mode string
	var topK int
	var explain bool
	var f filterFlags
	cmd := &cobra.Command{Use: "search QUERY", Short: "Search the documents' passages", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := map[string]any{"query": args[0], "mode": mode, "top_k": topK, "explain": explain}
			if err := f.apply(body); err != nil {
				return err
			}
			var out struct {
				Results []map[string]any `json:"results"`
			}
			if err := c.call(cmd.Context(), http.MethodPost, "/v1/search", body, &out); err != nil {
				return err
			}
			return c.print(out, func(w io.Writer) {
				fmt.Fprintln(w, "SCORE\tDOCUMENT\tCHUNK\tPAGES\tSECTION\tTEXT")
				for _, r := range out.Results {
					fmt.Fprintf(w, "%.4f\t%v\t%v\t%v-%v\t%v\t%s\n", r["score"], r["document_id"], r["chunk_index"], r["page_start"],
						r["page_end"], r["section"], snippet(fmt.Sprint(r["text"]), 80))
				}
			})
		}}
	cmd.Flags().StringVar(&mode, "mode", "hybrid", "hybrid, keyword or vector")
	cmd.Flags().IntVar(&topK, "top-k", 10, "how many passages (1-100)")
	cmd.Flags().BoolVar(&explain, "explain", false, "with each result's rank and score in each ranking (--json shows them)")
	f.add(cmd)
	return cmd
}

func snippet(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func (c *cli) askCmd() *cobra.Command {
	var topK int
	var conversation string
	var f filterFlags
	cmd := &cobra.Command{Use: "ask QUESTION", Short: "Ask a question; the answer streams in, then its citations with pages", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := map[string]any{"question": args[0], "top_k": topK}
			if conversation != "" {
				body["conversation_id"] = conversation
			}
			if err := f.apply(body); err != nil {
				return err
			}
			api, err := c.client()
			if err != nil {
				return err
			}
			if c.json {
				var out map[string]any
				if err := api.Do(cmd.Context(), http.MethodPost, "/v1/ask", body, &out); err != nil {
					return err
				}
				return c.print(out, nil)
			}
			return c.streamAnswer(cmd.Context(), api, body)
		}}
	cmd.Flags().IntVar(&topK, "top-k", 8, "passages to answer from (1-100)")
	cmd.Flags().StringVar(&conversation, "conversation", "", "continue this conversation (its ID is printed after each answer)")
	f.add(cmd)
	return cmd
}

// streamAnswer prints the answer as it streams, then the citations it used.
func (c *cli) streamAnswer(ctx context.Context, api *client.Client, body map[string]any) error {
	var citations []ragpipe.Citation
	var streamErr error
	err := api.Stream(ctx, http.MethodPost, "/v1/ask", body, func(event string, data []byte) error {
		switch event {
		case "citations":
			var e struct {
				Citations []ragpipe.Citation `json:"citations"`
			}
			err := json.Unmarshal(data, &e)
			citations = e.Citations
			return err
		case "token":
			var e struct {
				Text string `json:"text"`
			}
			if err := json.Unmarshal(data, &e); err != nil {
				return err
			}
			_, err := io.WriteString(c.stdout, e.Text)
			return err
		case "done":
			var e struct {
				Model          string `json:"model"`
				Cited          []int  `json:"cited"`
				ConversationID string `json:"conversation_id"`
			}
			if err := json.Unmarshal(data, &e); err != nil {
				return err
			}
			fmt.Fprintln(c.stdout)
			tw := tabwriter.NewWriter(c.stdout, 2, 4, 2, ' ', 0)
			for _, n := range e.Cited {
				if n >= 1 && n <= len(citations) {
					ct := citations[n-1]
					fmt.Fprintf(tw, "[%d]\t%s\tchunk %d\tpages %d-%d\t%s\n", n, ct.DocumentID, ct.ChunkIndex, ct.PageStart, ct.PageEnd, snippet(ct.Text, 60))
				}
			}
			fmt.Fprintf(tw, "\nanswered by %s; conversation %s\n", e.Model, e.ConversationID)
			return tw.Flush()
		case "error":
			var e struct{ Code, Message string }
			_ = json.Unmarshal(data, &e)
			streamErr = &client.APIError{Status: http.StatusOK, Code: e.Code, Message: e.Message}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return streamErr
}
