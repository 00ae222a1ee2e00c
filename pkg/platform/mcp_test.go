package platform_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ragpipe/ragpipe/pkg/client"
	"github.com/ragpipe/ragpipe/pkg/mcpserver"
)

// bearer adds an API key to every request.
type bearer string

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+string(b))
	return http.DefaultTransport.RoundTrip(r)
}

// call calls a tool and returns its structured output, or its error text.
func call(t *testing.T, cs *mcp.ClientSession, name string, args map[string]any) (map[string]any, string) {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if res.IsError {
		return nil, res.Content[0].(*mcp.TextContent).Text
	}
	var out map[string]any
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s: structured content %s: %v", name, b, err)
	}
	return out, ""
}

// waitJobTool polls job_status until the job ends.
func waitJobTool(t *testing.T, cs *mcp.ClientSession, jobID string) map[string]any {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		job, errText := call(t, cs, "job_status", map[string]any{"id": jobID})
		if errText != "" {
			t.Fatalf("job_status: %s", errText)
		}
		switch job["status"] {
		case "succeeded", "failed", "canceled":
			return job
		}
	}
	t.Fatalf("job %s did not end", jobID)
	return nil
}

func toolNames(t *testing.T, cs *mcp.ClientSession) []string {
	t.Helper()
	res, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range res.Tools {
		if tool.Description == "" || tool.InputSchema == nil {
			t.Errorf("tool %s lacks a description or an input schema", tool.Name)
		}
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	return names
}

// TestMCP drives the MCP server with the SDK's own client over streamable
// HTTP at /mcp (bearer key, tenant-scoped) and over stdio, against the
// real stack: every tool, the document resource, the prompts, and API
// errors as tool errors.
func TestMCP(t *testing.T) {
	s := startStack(t, nil)
	key := s.Key(t, "acme")
	r := s.Upload(t, key, "lppl.pdf", mustRead(t, "../../testdata/lppl.pdf"), map[string]string{"collection": "licences"})
	docID := r.Body["document_id"].(string)
	if job := s.WaitJob(t, key, r.Body["job_id"].(string)); job["status"] != "succeeded" {
		t.Fatalf("job %v", job)
	}
	ctx := context.Background()
	newClient := func() *mcp.Client { return mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil) }

	cs, err := newClient().Connect(ctx, &mcp.StreamableClientTransport{Endpoint: s.URL + "/mcp",
		HTTPClient: &http.Client{Transport: bearer(key)}, MaxRetries: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if got, want := toolNames(t, cs), []string{"ask", "get_document", "job_status", "list_collections", "list_documents", "search", "upload_text"}; !slices.Equal(got, want) {
		t.Errorf("HTTP tools %v; want %v (no upload_file over HTTP)", got, want)
	}

	found, errText := call(t, cs, "search", map[string]any{"query": page4Sentence, "top_k": 3})
	if errText != "" {
		t.Fatal(errText)
	}
	first := found["results"].([]any)[0].(map[string]any)
	if first["document_id"] != docID || first["page_start"].(float64) > 4 || first["page_end"].(float64) < 4 {
		t.Errorf("search: first result %v", first)
	}
	answered, errText := call(t, cs, "ask", map[string]any{"question": "Does the license place restrictions on aggregating other works with the Work?"})
	if errText != "" || !strings.HasPrefix(answered["answer"].(string), page4Sentence+" [1]") || len(answered["citations"].([]any)) == 0 {
		t.Errorf("ask: %v %s", answered, errText)
	}
	// Latency of tool calls over HTTP, for the record (docs/ask.md).
	for _, tool := range []struct {
		name string
		args map[string]any
	}{{"search", map[string]any{"query": "restrictions on aggregating works", "top_k": 5}},
		{"ask", map[string]any{"question": "May a modified work be distributed?"}},
		{"list_documents", nil}} {
		var took []time.Duration
		for range 20 {
			start := time.Now()
			call(t, cs, tool.name, tool.args)
			took = append(took, time.Since(start))
		}
		slices.Sort(took)
		t.Logf("MCP %s over HTTP: p50 %v, max %v (20 calls)", tool.name, took[10].Round(10*time.Microsecond), took[19].Round(10*time.Microsecond))
	}
	if cols, _ := call(t, cs, "list_collections", nil); cols["collections"].([]any)[0].(map[string]any)["name"] != "licences" {
		t.Errorf("list_collections: %v", cols)
	}
	if docs, _ := call(t, cs, "list_documents", map[string]any{"collection": "licences"}); len(docs["documents"].([]any)) != 1 {
		t.Errorf("list_documents: %v", docs)
	}
	if doc, _ := call(t, cs, "get_document", map[string]any{"id": docID}); doc["filename"] != "lppl.pdf" || doc["pages"] != 8.0 {
		t.Errorf("get_document: %v", doc)
	}
	if _, errText := call(t, cs, "get_document", map[string]any{"id": "0f8e2c1a-6b3d-4f7e-8a9b-1c2d3e4f5a6b"}); !strings.HasPrefix(errText, "not_found: ") {
		t.Errorf("unknown document: %q; want a not_found tool error", errText)
	}
	if _, errText := call(t, cs, "search", map[string]any{"query": "x", "created_after": "yesterday"}); !strings.HasPrefix(errText, "invalid_created_after: ") {
		t.Errorf("bad filter: %q", errText)
	}
	up, errText := call(t, cs, "upload_text", map[string]any{"title": "Meeting notes", "text": "The zebra budget was approved on Tuesday.",
		"collection": "notes", "metadata": map[string]any{"team": "ops"}})
	if errText != "" {
		t.Fatal(errText)
	}
	if job := waitJobTool(t, cs, up["job_id"].(string)); job["status"] != "succeeded" {
		t.Fatalf("upload_text job %v", job)
	}
	if found, _ := call(t, cs, "search", map[string]any{"query": "zebra budget", "metadata": map[string]any{"team": "ops"}}); len(found["results"].([]any)) != 1 {
		t.Errorf("uploaded text not found: %v", found)
	}

	res, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "ragpipe://documents/" + docID})
	if err != nil {
		t.Fatal(err)
	}
	if text := res.Contents[0].Text; !strings.HasPrefix(text, "# lppl.pdf\n\n8 pages, ready.\n\n## Chunk 0 (pages 1-1") || !strings.Contains(strings.Join(strings.Fields(text), " "), page4Sentence) {
		t.Errorf("document resource starts %q", text[:min(len(text), 120)])
	}
	if _, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "ragpipe://documents/0f8e2c1a-6b3d-4f7e-8a9b-1c2d3e4f5a6b"}); err == nil {
		t.Error("an unknown document's resource was read")
	}
	p, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "summarize_document", Arguments: map[string]string{"document_id": docID}})
	if err != nil || p.Messages[0].Content.(*mcp.ResourceLink).URI != "ragpipe://documents/"+docID {
		t.Errorf("summarize_document: %v %v", p, err)
	}
	if p, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "answer_with_citations", Arguments: map[string]string{"question": "Who may copy it?"}}); err != nil ||
		!strings.Contains(p.Messages[0].Content.(*mcp.TextContent).Text, "Who may copy it?") {
		t.Errorf("answer_with_citations: %v %v", p, err)
	}

	// Tenancy: another tenant's key sees none of it; no key is refused.
	other, err := newClient().Connect(ctx, &mcp.StreamableClientTransport{Endpoint: s.URL + "/mcp",
		HTTPClient: &http.Client{Transport: bearer(s.Key(t, "other"))}, MaxRetries: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, errText := call(t, other, "get_document", map[string]any{"id": docID}); !strings.HasPrefix(errText, "not_found: ") {
		t.Errorf("another tenant's get_document: %q", errText)
	}
	if r := s.Do(t, "", http.MethodPost, "/mcp", "application/json", strings.NewReader(`{}`)); r.Status != http.StatusUnauthorized {
		t.Errorf("/mcp without a key: %d", r.Status)
	}

	// stdio, as ragctl mcp serves it: upload_file reads a local file.
	serverIn, clientOut := io.Pipe()
	clientIn, serverOut := io.Pipe()
	srvCtx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		_ = mcpserver.New(&client.Client{BaseURL: s.URL, Key: key}, mcpserver.Options{LocalFiles: true}).
			Run(srvCtx, &mcp.IOTransport{Reader: serverIn, Writer: serverOut})
	}()
	stdio, err := newClient().Connect(ctx, &mcp.IOTransport{Reader: clientIn, Writer: clientOut}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stdio.Close()
	if names := toolNames(t, stdio); !slices.Contains(names, "upload_file") || len(names) != 8 {
		t.Errorf("stdio tools %v", names)
	}
	up, errText = call(t, stdio, "upload_file", map[string]any{"path": "../../testdata/hello.pdf", "collection": "files"})
	if errText != "" {
		t.Fatal(errText)
	}
	if job := waitJobTool(t, stdio, up["job_id"].(string)); job["status"] != "succeeded" {
		t.Errorf("upload_file job %v", job)
	}
	if _, errText := call(t, stdio, "upload_file", map[string]any{"path": "/nonexistent/file.pdf"}); !strings.HasPrefix(errText, "invalid_path: ") {
		t.Errorf("missing file: %q", errText)
	}
}
