// Package mcpserver is ragpipe's Model Context Protocol server, on the
// official Go SDK: tools to search, ask, list and read documents, upload
// text (and, over stdio, local files) and follow jobs; each document's text
// as a resource; prompts for cited answers and summaries. Every tool calls
// the HTTP API with the caller's key (pkg/client), so tenancy, validation
// and limits are the API's, and an API error comes back as a tool error
// with its code and message, never as a failed server.
package mcpserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ragpipe/ragpipe/pkg/client"
)

// Version is reported to MCP clients.
const Version = "1.0.0"

// Options say what a server may do beyond the API.
type Options struct {
	// LocalFiles adds upload_file, which reads a path on this machine: for
	// stdio, where the server runs as its user, never over HTTP.
	LocalFiles bool
}

// New returns an MCP server whose tools call the API through c.
func New(c *client.Client, o Options) *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "ragpipe", Version: Version}, &mcp.ServerOptions{
		Instructions: "ragpipe holds the user's documents. Use search to find passages, ask for an answer with " +
			"numbered citations, list_documents and get_document to see what is there, and the ragpipe://documents/{id} " +
			"resource to read one document's text.",
	})
	t := tools{c: c}
	mcp.AddTool(s, &mcp.Tool{Name: "search", Description: "Search the user's documents. Returns the best-matching " +
		"passages, best first, each with its document ID, chunk index, pages and section. Modes: hybrid (default), keyword (BM25), vector."}, t.search)
	mcp.AddTool(s, &mcp.Tool{Name: "ask", Description: "Answer a question from the user's documents. The answer marks " +
		"each claim with [n], and the citations give each n's document, pages and text. Pass conversation_id to ask a follow-up."}, t.ask)
	mcp.AddTool(s, &mcp.Tool{Name: "list_collections", Description: "List the user's collections with their document and chunk counts."}, t.listCollections)
	mcp.AddTool(s, &mcp.Tool{Name: "list_documents", Description: "List the user's documents, newest first, with status, pages and chunk counts; " +
		"filter by collection or status; pass next_cursor as cursor for the next page."}, t.listDocuments)
	mcp.AddTool(s, &mcp.Tool{Name: "get_document", Description: "Get one document: filename, format, status, pages, chunks, metadata, error."}, t.getDocument)
	mcp.AddTool(s, &mcp.Tool{Name: "upload_text", Description: "Add a text document (a title and its text, optionally in a collection " +
		"with metadata). Returns the job to follow with job_status; the text is searchable once the job succeeded."}, t.uploadText)
	if o.LocalFiles {
		mcp.AddTool(s, &mcp.Tool{Name: "upload_file", Description: "Upload a file from this machine (PDF, DOCX, HTML, Markdown, text) by its path. " +
			"Returns the job to follow with job_status."}, t.uploadFile)
	}
	mcp.AddTool(s, &mcp.Tool{Name: "job_status", Description: "The state of an ingestion job: status (queued, running, succeeded, failed, canceled), stage, progress and error."}, t.jobStatus)

	s.AddResourceTemplate(&mcp.ResourceTemplate{
		Name: "document", URITemplate: "ragpipe://documents/{id}", MIMEType: "text/markdown",
		Description: "A document's text, chunk by chunk, with each chunk's pages and section.",
	}, t.readDocument)

	s.AddPrompt(&mcp.Prompt{Name: "answer_with_citations", Description: "Answer a question from the documents, citing pages.",
		Arguments: []*mcp.PromptArgument{{Name: "question", Description: "the question", Required: true},
			{Name: "collection", Description: "only this collection"}}}, answerPrompt)
	s.AddPrompt(&mcp.Prompt{Name: "summarize_document", Description: "Summarize one document, citing its pages.",
		Arguments: []*mcp.PromptArgument{{Name: "document_id", Description: "the document's ID", Required: true}}}, summarizePrompt)
	return s
}

type tools struct{ c *client.Client }

// toolError is an API failure as the tool's result: an error the model can
// read, with the API's code.
func toolError(err error) (*mcp.CallToolResult, any, error) {
	var ae *client.APIError
	msg := err.Error()
	if errors.As(err, &ae) {
		msg = ae.Code + ": " + ae.Message
	}
	return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: msg}}}, nil, nil
}

// result answers with out as the tool's structured content and text.
func result(out map[string]any) (*mcp.CallToolResult, any, error) {
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return nil, nil, err
	}
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(b)}}}, out, nil
}

// SearchInput is the search tool's input.
type SearchInput struct {
	Query         string         `json:"query" jsonschema:"what to search for"`
	TopK          int            `json:"top_k,omitempty" jsonschema:"how many passages (1-100, default 10)"`
	Mode          string         `json:"mode,omitempty" jsonschema:"hybrid (default), keyword or vector"`
	Collection    string         `json:"collection,omitempty" jsonschema:"only this collection"`
	DocumentIDs   []string       `json:"document_ids,omitempty" jsonschema:"only these documents"`
	Metadata      map[string]any `json:"metadata,omitempty" jsonschema:"metadata equal to these values (an array means any of)"`
	CreatedAfter  string         `json:"created_after,omitempty" jsonschema:"only documents created after this RFC 3339 time"`
	CreatedBefore string         `json:"created_before,omitempty" jsonschema:"only documents created before this RFC 3339 time"`
}

func (t tools) search(ctx context.Context, _ *mcp.CallToolRequest, in SearchInput) (*mcp.CallToolResult, any, error) {
	return t.call(ctx, http.MethodPost, "/v1/search", in)
}

// call calls the API and answers with its JSON, or its error as the tool's.
func (t tools) call(ctx context.Context, method, path string, body any) (*mcp.CallToolResult, any, error) {
	var out map[string]any
	if err := t.c.Do(ctx, method, path, body, &out); err != nil {
		return toolError(err)
	}
	return result(out)
}

// AskInput is the ask tool's input.
type AskInput struct {
	Question       string `json:"question" jsonschema:"the question"`
	TopK           int    `json:"top_k,omitempty" jsonschema:"passages to answer from (default 8)"`
	Collection     string `json:"collection,omitempty" jsonschema:"only this collection"`
	ConversationID string `json:"conversation_id,omitempty" jsonschema:"continue this conversation (from an earlier answer)"`
}

func (t tools) ask(ctx context.Context, _ *mcp.CallToolRequest, in AskInput) (*mcp.CallToolResult, any, error) {
	return t.call(ctx, http.MethodPost, "/v1/ask", in)
}

func (t tools) listCollections(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
	return t.call(ctx, http.MethodGet, "/v1/collections", nil)
}

// ListDocumentsInput is the list_documents tool's input.
type ListDocumentsInput struct {
	Collection string `json:"collection,omitempty" jsonschema:"only this collection"`
	Status     string `json:"status,omitempty" jsonschema:"processing, ready or failed"`
	Limit      int    `json:"limit,omitempty" jsonschema:"documents per page (1-100, default 20)"`
	Cursor     string `json:"cursor,omitempty" jsonschema:"next_cursor of the page before"`
}

func (t tools) listDocuments(ctx context.Context, _ *mcp.CallToolRequest, in ListDocumentsInput) (*mcp.CallToolResult, any, error) {
	q := url.Values{}
	for k, v := range map[string]string{"collection": in.Collection, "status": in.Status, "cursor": in.Cursor} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if in.Limit != 0 {
		q.Set("limit", fmt.Sprint(in.Limit))
	}
	return t.call(ctx, http.MethodGet, "/v1/documents?"+q.Encode(), nil)
}

// IDInput names a document or a job.
type IDInput struct {
	ID string `json:"id" jsonschema:"the ID"`
}

func (t tools) getDocument(ctx context.Context, _ *mcp.CallToolRequest, in IDInput) (*mcp.CallToolResult, any, error) {
	return t.call(ctx, http.MethodGet, "/v1/documents/"+url.PathEscape(in.ID), nil)
}

func (t tools) jobStatus(ctx context.Context, _ *mcp.CallToolRequest, in IDInput) (*mcp.CallToolResult, any, error) {
	return t.call(ctx, http.MethodGet, "/v1/jobs/"+url.PathEscape(in.ID), nil)
}

// UploadTextInput is the upload_text tool's input.
type UploadTextInput struct {
	Title      string         `json:"title" jsonschema:"the document's title (its filename, with .md)"`
	Text       string         `json:"text" jsonschema:"the document's text (Markdown is read as such)"`
	Collection string         `json:"collection,omitempty" jsonschema:"the collection to put it in"`
	Metadata   map[string]any `json:"metadata,omitempty" jsonschema:"metadata to filter searches by"`
}

func uploadFields(collection string, metadata map[string]any) (map[string]string, error) {
	fields := map[string]string{}
	if collection != "" {
		fields["collection"] = collection
	}
	if metadata != nil {
		b, err := json.Marshal(metadata)
		if err != nil {
			return nil, err
		}
		fields["metadata"] = string(b)
	}
	return fields, nil
}

func (t tools) uploadText(ctx context.Context, _ *mcp.CallToolRequest, in UploadTextInput) (*mcp.CallToolResult, any, error) {
	title := strings.TrimSpace(in.Title)
	if title == "" || strings.TrimSpace(in.Text) == "" {
		return toolError(errors.New("invalid_request: title and text are required"))
	}
	fields, err := uploadFields(in.Collection, in.Metadata)
	if err != nil {
		return toolError(err)
	}
	var out map[string]any
	body := "# " + title + "\n\n" + in.Text
	if err := t.c.Upload(ctx, title+".md", strings.NewReader(body), fields, &out); err != nil {
		return toolError(err)
	}
	return result(out)
}

// UploadFileInput is the upload_file tool's input.
type UploadFileInput struct {
	Path       string         `json:"path" jsonschema:"the file's path on this machine"`
	Collection string         `json:"collection,omitempty" jsonschema:"the collection to put it in"`
	Metadata   map[string]any `json:"metadata,omitempty" jsonschema:"metadata to filter searches by"`
}

func (t tools) uploadFile(ctx context.Context, _ *mcp.CallToolRequest, in UploadFileInput) (*mcp.CallToolResult, any, error) {
	f, err := os.Open(in.Path)
	if err != nil {
		return toolError(fmt.Errorf("invalid_path: %w", err))
	}
	defer f.Close()
	fields, err := uploadFields(in.Collection, in.Metadata)
	if err != nil {
		return toolError(err)
	}
	var out map[string]any
	if err := t.c.Upload(ctx, filepath.Base(in.Path), f, fields, &out); err != nil {
		return toolError(err)
	}
	return result(out)
}

// readDocument is the text of ragpipe://documents/{id}: its chunks in
// order, each headed by its index, pages and section.
func (t tools) readDocument(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
	id, ok := strings.CutPrefix(req.Params.URI, "ragpipe://documents/")
	if !ok || id == "" || strings.Contains(id, "/") {
		return nil, mcp.ResourceNotFoundError(req.Params.URI)
	}
	var doc struct {
		Filename string `json:"filename"`
		Pages    int    `json:"pages"`
		Status   string `json:"status"`
	}
	if err := t.c.Do(ctx, http.MethodGet, "/v1/documents/"+url.PathEscape(id), nil, &doc); err != nil {
		var ae *client.APIError
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			return nil, mcp.ResourceNotFoundError(req.Params.URI)
		}
		return nil, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n%d pages, %s.\n", doc.Filename, doc.Pages, doc.Status)
	cursor := ""
	for {
		var page struct {
			Chunks []struct {
				Index     int    `json:"index"`
				Text      string `json:"text"`
				PageStart int    `json:"page_start"`
				PageEnd   int    `json:"page_end"`
				Section   string `json:"section"`
			} `json:"chunks"`
			NextCursor string `json:"next_cursor"`
		}
		path := "/v1/documents/" + url.PathEscape(id) + "/chunks?limit=500&cursor=" + url.QueryEscape(cursor)
		if err := t.c.Do(ctx, http.MethodGet, path, nil, &page); err != nil {
			return nil, err
		}
		for _, c := range page.Chunks {
			fmt.Fprintf(&b, "\n## Chunk %d (pages %d-%d", c.Index, c.PageStart, c.PageEnd)
			if c.Section != "" {
				fmt.Fprintf(&b, ", %s", c.Section)
			}
			fmt.Fprintf(&b, ")\n\n%s\n", c.Text)
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: req.Params.URI, MIMEType: "text/markdown", Text: b.String()}}}, nil
}

func answerPrompt(_ context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
	q := req.Params.Arguments["question"]
	if strings.TrimSpace(q) == "" {
		return nil, errors.New("question is required")
	}
	scope := ""
	if c := req.Params.Arguments["collection"]; c != "" {
		scope = fmt.Sprintf(" (collection %q)", c)
	}
	return &mcp.GetPromptResult{Description: "Answer with citations", Messages: []*mcp.PromptMessage{{Role: "user",
		Content: &mcp.TextContent{Text: "Answer this question from my documents" + scope + ": " + q + "\n\n" +
			"Call the ask tool (or search, then read the passages), answer only from what the documents say, " +
			"and cite each claim with its document and pages. Say so if the documents do not answer it."}}}}, nil
}

func summarizePrompt(_ context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
	id := req.Params.Arguments["document_id"]
	if strings.TrimSpace(id) == "" {
		return nil, errors.New("document_id is required")
	}
	uri := "ragpipe://documents/" + id
	return &mcp.GetPromptResult{Description: "Summarize a document", Messages: []*mcp.PromptMessage{
		{Role: "user", Content: &mcp.ResourceLink{URI: uri, Name: "document " + id, MIMEType: "text/markdown"}},
		{Role: "user", Content: &mcp.TextContent{Text: "Read " + uri + " and summarize it in a few paragraphs, " +
			"citing the pages each point comes from."}},
	}}, nil
}
