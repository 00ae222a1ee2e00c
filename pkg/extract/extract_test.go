package extract

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// lppl.pdf: the LaTeX Project Public License 1.3c, 8 pages; see testdata/README.md.
const (
	lpplPages        = 8
	lpplSentencePage = 4
	lpplSentence     = "This license places no restrictions on works that are unrelated to the Work, " +
		"nor does this license place any restrictions on aggregating such works with the Work by any means."
)

func testdata(name string) string { return filepath.Join("..", "..", "testdata", name) }

// words collapses all runs of white space to one space.
func words(s string) string { return strings.Join(strings.Fields(s), " ") }

func errorCode(t *testing.T, err error) string {
	t.Helper()
	var e *ragpipe.Error
	if !errors.As(err, &e) {
		t.Fatalf("error = %v (%T); want a *ragpipe.Error", err, err)
	}
	return e.Code
}

func TestCheck(t *testing.T) {
	if err := New(Limits{}).Check(); err != nil {
		t.Fatalf("Check() = %v; pdftotext and prlimit are installed here", err)
	}
	e := New(Limits{})
	e.pdftotext = "ragpipe-no-such-pdftotext"
	if err := e.Check(); err == nil || !strings.Contains(err.Error(), "poppler-utils") {
		t.Fatalf("Check() = %v; want an error naming poppler-utils", err)
	}
}

func TestExtractPDF(t *testing.T) {
	out, err := exec.Command("pdfinfo", testdata("lppl.pdf")).Output()
	if err != nil {
		t.Fatal(err)
	}
	var infoPages int
	for line := range strings.Lines(string(out)) {
		if v, ok := strings.CutPrefix(line, "Pages:"); ok {
			infoPages, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	if infoPages != lpplPages {
		t.Fatalf("pdfinfo Pages = %d; the test expects %d", infoPages, lpplPages)
	}

	pages, err := New(Limits{}).Extract(context.Background(), PDF, testdata("lppl.pdf"))
	if err != nil {
		t.Fatal(err)
	}
	if len(pages) != infoPages {
		t.Fatalf("got %d pages; pdfinfo says %d", len(pages), infoPages)
	}
	for i, p := range pages {
		if p.Number != i+1 {
			t.Errorf("pages[%d].Number = %d; want %d", i, p.Number, i+1)
		}
		has := strings.Contains(words(p.Text), lpplSentence)
		if has != (p.Number == lpplSentencePage) {
			t.Errorf("page %d contains the sentence: %v; want it only on page %d", p.Number, has, lpplSentencePage)
		}
		if strings.ContainsAny(p.Text, "\f\x00") || strings.Contains(p.Text, "\n\n\n") || strings.Contains(p.Text, " \n") {
			t.Errorf("page %d is not normalised: %q", p.Number, p.Text)
		}
	}
	if got, want := strings.SplitN(pages[0].Text, "\n", 2)[0], "The LATEX Project Public License"; got != want {
		t.Errorf("page 1 starts with %q; want %q", got, want)
	}
}

// fakeTool writes an executable shell script standing in for pdftotext.
func fakeTool(t *testing.T, script string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fake-pdftotext")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestExtractPDFFailures(t *testing.T) {
	cases := []struct {
		name   string
		limits Limits
		file   string
		tool   string // script body standing in for pdftotext; "" runs the real one
		want   string
	}{
		{name: "corrupt", file: "corrupt.pdf", want: ragpipe.CodePDFCorrupt},
		{name: "not a pdf", file: "README.md", want: ragpipe.CodePDFCorrupt},
		{name: "encrypted", file: "encrypted.pdf", want: ragpipe.CodePDFEncrypted},
		{name: "no text", file: "blank.pdf", want: ragpipe.CodeNoText},
		{name: "too many pages", limits: Limits{MaxPages: 3}, file: "lppl.pdf", want: ragpipe.CodeLimitExceeded},
		{name: "exactly max pages", limits: Limits{MaxPages: lpplPages}, file: "lppl.pdf"},
		{name: "too much text", limits: Limits{MaxTextBytes: 1000}, file: "lppl.pdf", want: ragpipe.CodeLimitExceeded},
		{name: "memory limit", limits: Limits{MaxMemoryBytes: 8 << 20}, file: "lppl.pdf", want: ragpipe.CodeLimitExceeded},
		{name: "timeout before start", limits: Limits{Timeout: time.Nanosecond}, file: "lppl.pdf", want: ragpipe.CodeTimeout},
		{name: "timeout kills the process group", limits: Limits{Timeout: 300 * time.Millisecond}, file: "lppl.pdf",
			tool: "sleep 30 & wait", want: ragpipe.CodeTimeout},
		{name: "out of memory abort", file: "lppl.pdf",
			tool: `echo "Out of memory" >&2; kill -ABRT $$`, want: ragpipe.CodeLimitExceeded},
		{name: "killed from outside", file: "lppl.pdf", tool: `kill -KILL $$`, want: ragpipe.CodeLimitExceeded},
		{name: "crash", file: "lppl.pdf", tool: `kill -SEGV $$`, want: ragpipe.CodePDFCorrupt},
		{name: "permissions", file: "lppl.pdf", tool: `echo "Permission Error: copying not allowed" >&2; exit 3`,
			want: ragpipe.CodePDFEncrypted},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := New(tc.limits)
			if tc.tool != "" {
				e.pdftotext = fakeTool(t, tc.tool)
			}
			start := time.Now()
			pages, err := e.Extract(context.Background(), PDF, testdata(tc.file))
			if elapsed := time.Since(start); elapsed > 5*time.Second {
				t.Errorf("Extract took %v", elapsed)
			}
			if tc.want == "" {
				if err != nil || len(pages) != lpplPages {
					t.Fatalf("Extract = %d pages, %v; want %d pages", len(pages), err, lpplPages)
				}
				return
			}
			if got := errorCode(t, err); got != tc.want {
				t.Fatalf("Extract error = %v; want code %s", err, tc.want)
			}
		})
	}
}

func TestExtractPDFCallerCancels(t *testing.T) {
	e := New(Limits{})
	e.pdftotext = fakeTool(t, "sleep 30")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := e.Extract(ctx, PDF, testdata("lppl.pdf"))
	var re *ragpipe.Error
	if !errors.Is(err, context.DeadlineExceeded) || errors.As(err, &re) {
		t.Fatalf("Extract = %v; want the caller's context error, not a document failure", err)
	}
}

func TestExtractText(t *testing.T) {
	cases := []struct {
		name    string
		format  Format
		content []byte
		limits  Limits
		want    string // page 1 text, when no error
		code    string
	}{
		{name: "utf-8", format: Text, content: []byte("Grüße\nline two\n"), want: "Grüße\nline two\n"},
		{name: "utf-8 bom and crlf", format: Text, content: []byte("\xEF\xBB\xBFa\r\nb\r\n"), want: "a\nb\n"},
		{name: "utf-16le bom", format: Text, content: utf16LE("Grüße, €5\n"), want: "Grüße, €5\n"},
		{name: "utf-16be bom", format: Text, content: utf16BE("Grüße, €5\n"), want: "Grüße, €5\n"},
		{name: "latin-1 with a NUL", format: Text, content: []byte("caf\xe9\x00!"), want: "café!"},
		{name: "markdown kept raw", format: Markdown, content: []byte(readme), want: readme},
		{name: "whitespace only", format: Text, content: []byte(" \n\t \n"), code: ragpipe.CodeNoText},
		{name: "empty utf-16", format: Markdown, content: utf16LE("\n"), code: ragpipe.CodeNoText},
		{name: "too large", format: Text, content: []byte("12345678901"), limits: Limits{MaxTextBytes: 10}, code: ragpipe.CodeLimitExceeded},
		{name: "unknown format", format: Format("rtf"), content: []byte("x"), code: ragpipe.EUNSUPPORTED},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "doc")
			if err := os.WriteFile(path, tc.content, 0o600); err != nil {
				t.Fatal(err)
			}
			pages, err := New(tc.limits).Extract(context.Background(), tc.format, path)
			if tc.code != "" {
				if got := errorCode(t, err); got != tc.code {
					t.Fatalf("Extract error = %v; want code %s", err, tc.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(pages) != 1 || pages[0].Number != 1 || pages[0].Text != tc.want {
				t.Fatalf("Extract = %+v; want one page 1 with %q", pages, tc.want)
			}
		})
	}
}

func TestNormalize(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", ""},
		{"\n\n  \n", ""},
		{"a  \nb\t\n", "a\nb"},
		{"a\n\n\n\n\nb", "a\n\nb"},
		{"\n\n  indented\n", "  indented"},
		{"x\x00y\xffz", "xyz"},
		{"a\r\nb", "a\nb"},
	}
	for _, tc := range cases {
		if got := normalize(tc.in); got != tc.want {
			t.Errorf("normalize(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}

func BenchmarkExtractPDF(b *testing.B) {
	e := New(Limits{})
	ctx := context.Background()
	for b.Loop() {
		if _, err := e.Extract(ctx, PDF, testdata("lppl.pdf")); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*lpplPages)/b.Elapsed().Seconds(), "pages/s")
}
