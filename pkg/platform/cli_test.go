package platform_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/ragpipe/ragpipe/pkg/cli"
)

// ragctl's user commands against the real stack: upload --wait to the end,
// docs, jobs, search and ask (streamed, then its citations), --json for
// scripts, the API's errors as exit code 1 with code and message, and
// usage errors as 2.
func TestCLI(t *testing.T) {
	s := startStack(t, nil)
	env := []string{"RAGPIPE_URL=" + s.URL, "RAGPIPE_API_KEY=" + s.Key(t, "acme")}
	ragctl := func(args ...string) (string, string, int) {
		var stdout, stderr bytes.Buffer
		err := cli.Run(context.Background(), args, env, strings.NewReader(""), &stdout, &stderr)
		code := cli.ExitCode(err, &stderr)
		return stdout.String(), stderr.String(), code
	}

	out, errOut, code := ragctl("upload", "--wait", "--collection", "licences", "--metadata", `{"source":"debian"}`, "../../testdata/lppl.pdf")
	if code != 0 || !strings.Contains(out, "../../testdata/lppl.pdf") || !strings.Contains(out, "succeeded") {
		t.Fatalf("upload --wait: %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "lppl.pdf: job.succeeded") {
		t.Errorf("upload --wait off a terminal: progress lines %q", errOut)
	}

	out, _, code = ragctl("docs", "list", "--json", "--collection", "licences")
	var list struct {
		Documents []struct {
			ID, Status string
			Pages      int
		}
	}
	if err := json.Unmarshal([]byte(out), &list); code != 0 || err != nil || len(list.Documents) != 1 || list.Documents[0].Status != "ready" || list.Documents[0].Pages != 8 {
		t.Fatalf("docs list --json: %d %v\n%s", code, err, out)
	}
	docID := list.Documents[0].ID
	if out, _, code := ragctl("docs", "get", docID); code != 0 || !strings.Contains(out, "lppl.pdf") || !strings.Contains(out, "ready") {
		t.Errorf("docs get: %d\n%s", code, out)
	}
	if out, _, code := ragctl("search", "restrictions on aggregating works", "--top-k", "2", "--collection", "licences"); code != 0 ||
		!strings.HasPrefix(out, "SCORE") || !strings.Contains(out, docID) {
		t.Errorf("search: %d\n%s", code, out)
	}
	out, _, code = ragctl("ask", "Does the license place restrictions on aggregating other works with the Work?")
	if code != 0 || !strings.HasPrefix(out, page4Sentence+" [1]") || !strings.Contains(out, "[1]  "+docID) || !strings.Contains(out, "answered by extractive") {
		t.Errorf("ask: %d\n%s", code, out)
	}

	_, errOut, code = ragctl("docs", "get", "0f8e2c1a-6b3d-4f7e-8a9b-1c2d3e4f5a6b")
	if code != 1 || !strings.Contains(errOut, "ragctl: not_found: document not found") {
		t.Errorf("unknown document: %d %q", code, errOut)
	}
	if _, errOut, code := ragctl("search"); code != 2 || !strings.Contains(errOut, "Usage:") {
		t.Errorf("search without a query: %d %q", code, errOut)
	}
	if out, _, code := ragctl("upload", "--help"); code != 0 || !strings.Contains(out, "--wait") {
		t.Errorf("upload --help: %d %q", code, out)
	}
	if _, errOut, code := ragctl("docs", "list", "--api-key", "rp_wrong"); code != 1 || !strings.Contains(errOut, "unauthorized") {
		t.Errorf("a wrong --api-key: %d %q", code, errOut)
	}
	if out, _, code := ragctl("docs", "delete", docID); code != 0 || !strings.Contains(out, "deleted "+docID) {
		t.Errorf("docs delete: %d %q", code, out)
	}
}
