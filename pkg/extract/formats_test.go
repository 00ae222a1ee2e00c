package extract

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// Progress comes page by page once the page count is known, and ends at
// (pages, pages); ranges give the same pages as one run.
func TestExtractPDFRangesAndProgress(t *testing.T) {
	whole, err := New(Limits{}).Extract(context.Background(), PDF, testdata("lppl.pdf"))
	if err != nil {
		t.Fatal(err)
	}
	var calls [][2]int
	e := New(Limits{}, WithRangePages(3))
	got, err := e.ExtractProgress(context.Background(), PDF, testdata("lppl.pdf"), func(done, total int) {
		calls = append(calls, [2]int{done, total})
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(whole, got); diff != "" {
		t.Errorf("pages in ranges of 3 differ from one run (-one +ranges):\n%s", diff)
	}
	want := [][2]int{{3, 8}, {4, 8}, {5, 8}, {6, 8}, {7, 8}, {8, 8}, {8, 8}}
	if diff := cmp.Diff(want, calls); diff != "" {
		t.Errorf("progress calls (-want +got):\n%s", diff)
	}

	// A document that fits in the first range reports once, at the end.
	calls = nil
	if _, err := New(Limits{}).ExtractProgress(context.Background(), PDF, testdata("lppl.pdf"), func(done, total int) {
		calls = append(calls, [2]int{done, total})
	}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([][2]int{{8, 8}}, calls); diff != "" {
		t.Errorf("progress calls (-want +got):\n%s", diff)
	}
}

// Ranges extracted side by side give the pages of one run, in order, with
// progress rising to the end, and count text against one limit.
func TestExtractPDFParallelRanges(t *testing.T) {
	whole, err := New(Limits{}).Extract(context.Background(), PDF, testdata("lppl.pdf"))
	if err != nil {
		t.Fatal(err)
	}
	e := New(Limits{}, WithRangePages(2), WithParallel(3))
	for range 3 { // the same Extractor, its slots given back each time
		last := 0
		got, err := e.ExtractProgress(context.Background(), PDF, testdata("lppl.pdf"), func(done, total int) {
			if done < last || total != lpplPages {
				t.Errorf("progress %d/%d after %d", done, total, last)
			}
			last = done
		})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(whole, got); diff != "" {
			t.Errorf("pages of parallel ranges differ from one run (-one +parallel):\n%s", diff)
		}
		if last != lpplPages {
			t.Errorf("progress ended at %d", last)
		}
	}
	text := 0
	for _, p := range whole {
		text += len(p.Text)
	}
	_, err = New(Limits{MaxTextBytes: int64(text) * 3 / 4}, WithRangePages(2), WithParallel(3)).Extract(context.Background(), PDF, testdata("lppl.pdf"))
	if code := errorCode(t, err); code != ragpipe.CodeLimitExceeded {
		t.Errorf("text limit across parallel ranges: %v", err)
	}
}

func TestExtractPDFExactPageCountInRanges(t *testing.T) {
	for _, rng := range []int{1, 4, 7, 8, 9} {
		pages, err := New(Limits{}, WithRangePages(rng)).Extract(context.Background(), PDF, testdata("lppl.pdf"))
		if err != nil || len(pages) != lpplPages || pages[len(pages)-1].Number != lpplPages {
			t.Errorf("range %d: %d pages, %v", rng, len(pages), err)
		}
	}
	_, err := New(Limits{MaxPages: 5}, WithRangePages(2)).Extract(context.Background(), PDF, testdata("lppl.pdf"))
	if code := errorCode(t, err); code != ragpipe.CodeLimitExceeded {
		t.Errorf("MaxPages 5 in ranges of 2: %v", err)
	}
}

// Hostile and broken PDFs each end with a specific code, quickly; the ones
// a reader can recover (a broken xref, an owner password only) give text.
func TestExtractHostilePDFs(t *testing.T) {
	const hello = "Hostile ragpipe fixture text."
	cases := []struct {
		file   string
		limits Limits
		want   string // code, or "" for success
	}{
		{file: "empty-password.pdf"},
		{file: "brokenxref.pdf"},
		{file: "encrypted.pdf", want: ragpipe.CodePDFEncrypted},
		{file: "corrupt.pdf", want: ragpipe.CodePDFCorrupt},
		{file: "cyclic.pdf", want: ragpipe.CodePDFCorrupt},
		{file: "nested.pdf", want: ragpipe.CodeNoText},
		// The bomb's 78 KB inflate to 20 MB of drawing operators on one
		// page; pdftotext builds the page's text in memory before writing it.
		{file: "bomb.pdf", limits: Limits{MaxMemoryBytes: 64 << 20}, want: ragpipe.CodeLimitExceeded},
		{file: "bomb.pdf", limits: Limits{Timeout: 2 * time.Second}, want: ragpipe.CodeTimeout},
	}
	for _, tc := range cases {
		t.Run(tc.file+"/"+tc.want, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			pages, err := New(tc.limits, WithOCR(OCROff)).Extract(context.Background(), PDF, testdata(tc.file))
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("took %v", d)
			}
			if tc.want == "" {
				if err != nil || len(pages) != 1 || pages[0].Text != hello {
					t.Fatalf("Extract = %+v, %v; want one page %q", pages, err, hello)
				}
				return
			}
			if code := errorCode(t, err); code != tc.want {
				t.Fatalf("Extract error = %v; want code %s", err, tc.want)
			}
		})
	}
}

// scan.pdf is page 4 of lppl.pdf as a 200-dpi bitonal image, no text layer.
func TestExtractOCR(t *testing.T) {
	if !New(Limits{}).OCR() {
		t.Skip("tesseract is not installed (scripts/services.sh installs it)")
	}
	pages, err := New(Limits{}).Extract(context.Background(), PDF, testdata("scan.pdf"))
	if err != nil {
		t.Fatal(err)
	}
	if len(pages) != 1 || pages[0].Number != 1 || !pages[0].OCR {
		t.Fatalf("Extract = %d pages %+v; want page 1 with OCR", len(pages), pages)
	}
	if !strings.Contains(words(pages[0].Text), lpplSentence) {
		t.Errorf("OCR text lacks %q:\n%s", lpplSentence, pages[0].Text)
	}
	// With OCR off the scan has no text; blank pages are not OCRed at all.
	_, err = New(Limits{}, WithOCR(OCROff)).Extract(context.Background(), PDF, testdata("scan.pdf"))
	if code := errorCode(t, err); code != ragpipe.CodeNoText {
		t.Errorf("OCR off: %v; want %s", err, ragpipe.CodeNoText)
	}
	_, err = New(Limits{MaxOCRPages: 1}).Extract(context.Background(), PDF, testdata("blank.pdf"))
	if code := errorCode(t, err); code != ragpipe.CodeNoText {
		t.Errorf("blank.pdf with OCR: %v; want %s", err, ragpipe.CodeNoText)
	}
}

func TestExtractDOCX(t *testing.T) {
	pages, err := New(Limits{}).Extract(context.Background(), DOCX, testdata("sample.docx"))
	if err != nil {
		t.Fatal(err)
	}
	want := []ragpipe.Page{{Number: 1, Text: strings.Join([]string{
		"# Quarterly report",
		"# Summary",
		"Revenue grew by a tenth.",
		"## Risks",
		"- Supply chains.",
		"  - Exchange rates.",
		"Kept\tafter tab.",
		"Region | Sales",
		"North and East | 12",
		"Closing words.",
	}, "\n\n")}}
	if diff := cmp.Diff(want, pages); diff != "" {
		t.Errorf("Extract (-want +got):\n%s", diff)
	}
}

func TestExtractDOCXHostile(t *testing.T) {
	cases := []struct {
		file   string
		limits Limits
		want   string
	}{
		{file: "bomb.docx", limits: Limits{MaxInflatedBytes: 10 << 20}, want: ragpipe.CodeLimitExceeded},
		{file: "deep.docx", want: ragpipe.CodeInvalidContent},
		{file: "corrupt.pdf", want: ragpipe.CodeInvalidContent},
		{file: "lppl.pdf", want: ragpipe.CodeInvalidContent},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			_, err := New(tc.limits).Extract(context.Background(), DOCX, testdata(tc.file))
			if code := errorCode(t, err); code != tc.want {
				t.Fatalf("Extract error = %v; want code %s", err, tc.want)
			}
		})
	}
	// A ZIP without word/document.xml.
	path := filepath.Join(t.TempDir(), "x.zip")
	if err := exec.Command("python3", "-c", "import zipfile,sys; zipfile.ZipFile(sys.argv[1],'w').writestr('word/other.xml','x')", path).Run(); err != nil {
		t.Skip("python3:", err)
	}
	_, err := New(Limits{}).Extract(context.Background(), DOCX, path)
	if code := errorCode(t, err); code != ragpipe.CodeInvalidContent {
		t.Fatalf("Extract error = %v; want code %s", err, ragpipe.CodeInvalidContent)
	}
}

const samplePage = `<!DOCTYPE html>
<html><head><title>Guide</title><style>p { color: red }</style>
<script>var tracking = "do not index";</script></head>
<body>
<header><a href="/">Home</a> | <a href="/about">About</a></header>
<nav><ul><li>Menu one</li><li>Menu two</li></ul></nav>
<main>
<h1>Install   guide</h1>
<p>First, fetch the <b>source</b>
   code.<br>Then build it.</p>
<ol><li>Run make.</li><li>Run make test.<ul><li>Nested point.</li></ul></li></ol>
<pre>go build ./...
  indented line</pre>
<table><tr><th>OS</th><th>Status</th></tr><tr><td>Linux</td><td>works</td></tr></table>
<div hidden>Hidden text.</div>
<aside>Related links.</aside>
</main>
<footer>Copyright.</footer>
<script>console.log("no")</script>
</body></html>`

func TestExtractHTML(t *testing.T) {
	cases := []struct {
		name, page, want string
	}{
		{name: "main element", page: samplePage, want: strings.Join([]string{
			"# Install guide",
			"First, fetch the source code.\nThen build it.",
			"1. Run make.",
			"2. Run make test.",
			"  - Nested point.",
			"```\ngo build ./...\n  indented line\n```",
			"OS | Status",
			"Linux | works",
		}, "\n\n")},
		{name: "no main: body less boilerplate",
			page: "<html><body><nav>Skip me</nav><h2>Title</h2><p>Body text.</p><footer>Foot</footer></body></html>",
			want: "## Title\n\nBody text."},
		{name: "latin-1 by meta charset",
			page: "<html><head><meta charset=\"iso-8859-1\"></head><body><p>Caf\xe9 cr\xe8me</p></body></html>",
			want: "Café crème"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "page")
			if err := os.WriteFile(path, []byte(tc.page), 0o600); err != nil {
				t.Fatal(err)
			}
			pages, err := New(Limits{}).Extract(context.Background(), HTML, path)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]ragpipe.Page{{Number: 1, Text: tc.want}}, pages); diff != "" {
				t.Errorf("Extract (-want +got):\n%s", diff)
			}
		})
	}
	// Deep nesting is read, not recursed into without bound.
	deep := strings.Repeat("<div>", 100000) + "deep text" + strings.Repeat("</div>", 100000)
	if got := htmlText([]byte(deep)); !strings.Contains(got, "deep text") {
		t.Errorf("deeply nested text lost: %q", got[:min(len(got), 100)])
	}
	path := filepath.Join(t.TempDir(), "empty.html")
	os.WriteFile(path, []byte("<html><body><script>x()</script></body></html>"), 0o600)
	_, err := New(Limits{}).Extract(context.Background(), HTML, path)
	if code := errorCode(t, err); code != ragpipe.CodeNoText {
		t.Errorf("script-only page: %v", err)
	}
}

func TestSniffFixtures(t *testing.T) {
	for name, want := range map[string]Format{
		"sample.docx": DOCX, "bomb.docx": DOCX, "deep.docx": DOCX, "scan.pdf": PDF, "bomb.pdf": PDF,
		"README.md": Markdown,
	} {
		head, err := os.ReadFile(testdata(name))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := Sniff(head[:min(len(head), SniffLen)]); got != want {
			t.Errorf("Sniff(%s) = %q, %v; want %q", name, got, err, want)
		}
	}
}

// streamPage has every construct streamHTML renders, and boilerplate it
// must leave out.
const streamPage = `<!doctype html><html><head><title>T</title><style>p{}</style></head><body>
<nav><a href="/">Home</a></nav>
<h1>Manual</h1><p>First   paragraph,
wrapped.</p><div hidden>secret</div>
<ol start="3"><li>three</li><li>four <b>bold</b></li></ol>
<ul><li>a<ul><li>nested</li></ul></li></ul>
<table><tr><th>k</th><th>v</th></tr><tr><td>x</td><td>1 <i>one</i></td></tr></table>
<pre>  code
    indented</pre><p>after<br>break <img alt="pic" src=x></p>
<div role="navigation">menu</div><script>var x;</script><footer>foot</footer></body></html>`

const streamPageText = "# Manual\n\nFirst paragraph, wrapped.\n\n3. three\n\n4. four bold\n\n- a\n\n  - nested\n\n" +
	"k | v\n\nx | 1 one\n\n```\n  code\n    indented\n```\n\nafter\nbreak pic"

// Large HTML is streamed token by token, rendering as the tree does, with
// its text capped.
func TestStreamHTML(t *testing.T) {
	if got := htmlText([]byte(streamPage)); got != streamPageText {
		t.Errorf("tree:\n%s", got)
	}
	got, err := streamHTML(strings.NewReader(streamPage), 1<<20)
	if err != nil || got != streamPageText {
		t.Errorf("stream (%v):\n%s", err, got)
	}

	// A file past htmlTreeMax goes the streaming way, in its declared encoding.
	var b strings.Builder
	b.WriteString(`<html><head><meta charset="windows-1252"></head><body><h2>Caf` + "\xe9" + `</h2>`)
	paragraphs := 0
	for ; b.Len() <= htmlTreeMax; paragraphs++ {
		b.WriteString("<p>short paragraph</p>\n")
	}
	b.WriteString("</body></html>")
	path := filepath.Join(t.TempDir(), "big.html")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	pages, err := New(Limits{}).Extract(context.Background(), HTML, path)
	if err != nil {
		t.Fatal(err)
	}
	want := "## Café" + strings.Repeat("\n\nshort paragraph", paragraphs)
	if len(pages) != 1 || pages[0].Text != want {
		t.Errorf("streamed file: %d pages, text starts %q, %d bytes (want %d)", len(pages), pages[0].Text[:40], len(pages[0].Text), len(want))
	}
	_, err = New(Limits{MaxTextBytes: 64 << 10}).Extract(context.Background(), HTML, path)
	if code := errorCode(t, err); code != ragpipe.CodeLimitExceeded {
		t.Errorf("streamed file past MaxTextBytes: %v", err)
	}
}
