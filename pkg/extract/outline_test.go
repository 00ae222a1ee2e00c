package extract

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/ragpipe/ragpipe/pkg/chunk"
	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// The outline gives a PDF's pages their headings, at the line where the
// title is printed or, not found, at the top of the page; a PDF without an
// outline, or with a damaged one, is extracted all the same.
func TestExtractPDFOutline(t *testing.T) {
	cases := []struct {
		file string
		want map[int][]ragpipe.Heading // by page number
		all  bool                      // every page with headings is in want; else only those listed are compared
	}{
		// shared-mime-info-spec.pdf: LaTeX with hyperref, 17 pages, 24 bookmarks in two levels.
		{file: "shared-mime-info-spec.pdf", want: map[int][]ragpipe.Heading{
			1: {
				{Level: 1, Title: "1. Introduction", Line: 5, Lines: 1},
				{Level: 2, Title: "1.1. Version", Line: 6, Lines: 1},
				{Level: 2, Title: "1.2. What is this spec?", Line: 9, Lines: 1},
			},
			2: {
				{Level: 2, Title: "1.3. Language used in this specification", Line: 2, Lines: 1},
				{Level: 1, Title: "2. Unified system", Line: 7, Lines: 1},
				{Level: 2, Title: "2.1. Directory layout", Line: 31, Lines: 1},
			},
			14: {
				{Level: 2, Title: "2.10. Storing the MIME type using Extended Attributes", Line: 2, Lines: 1},
				{Level: 2, Title: "2.11. Subclassing", Line: 9, Lines: 1},
				{Level: 2, Title: "2.12. Recommended checking order", Line: 36, Lines: 1},
			},
			// Printed "2.13. Non-regular files".
			15: {{Level: 2, Title: "2.13. Nonregular files", Line: 43, Lines: 1}},
			17: {
				{Level: 2, Title: "2.17. User modification", Line: 5, Lines: 1},
				{Level: 1, Title: "3. Contributors", Line: 11, Lines: 1},
				{Level: 2, Title: "References", Line: 13, Lines: 1},
			},
		}},
		// badoutline.pdf: see testdata/README.md. Items without a page start
		// where the next one that has a page does.
		{file: "badoutline.pdf", all: true, want: map[int][]ragpipe.Heading{
			1: {{Level: 1, Title: "Tom & <Jerry>", Line: 1, Lines: 1}},
			2: {
				{Level: 1, Title: "No destination"},
				{Level: 2, Title: "Loop"},
				{Level: 1, Title: "Bad page", Line: 1},
				{Level: 1, Title: "The End", Line: 1, Lines: 1},
			},
		}},
		{file: "lppl.pdf", all: true},
		{file: "brokenxref.pdf", all: true},
		{file: "empty-password.pdf", all: true},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			pages, err := New(Limits{}).Extract(context.Background(), PDF, testdata(tc.file))
			if err != nil {
				t.Fatal(err)
			}
			got := map[int][]ragpipe.Heading{}
			for _, p := range pages {
				if _, listed := tc.want[p.Number]; len(p.Headings) > 0 && (tc.all || listed) {
					got[p.Number] = p.Headings
				}
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("headings by page (-want +got):\n%s", diff)
			}
		})
	}
}

// Through the pages artifact (JSON, as the pipeline passes it) the chunker
// gives each chunk of an outlined PDF its heading path.
func TestPDFSectionsInChunks(t *testing.T) {
	split := func(t *testing.T, file string) []chunk.Chunk {
		pages, err := New(Limits{}).Extract(context.Background(), PDF, testdata(file))
		if err != nil {
			t.Fatal(err)
		}
		raw, err := json.Marshal(pages)
		if err != nil {
			t.Fatal(err)
		}
		var in []ragpipe.Page
		if err := json.Unmarshal(raw, &in); err != nil {
			t.Fatal(err)
		}
		chunks, err := chunk.Split(in, chunk.Options{Size: 600, Overlap: 100})
		if err != nil {
			t.Fatal(err)
		}
		return chunks
	}
	t.Run("outline", func(t *testing.T) {
		type where struct {
			section            string
			pageStart, pageEnd int
		}
		want := map[string]where{ // by the start of a chunk's text
			"Shared MIME-info Database X Desktop Group": {"", 1, 1},
			"1. Introduction":                          {"1. Introduction", 1, 1},
			"1.1. Version This is version 0.21":        {"1. Introduction > 1.1. Version", 1, 1},
			"1.2. What is this spec? Many programs":    {"1. Introduction > 1.2. What is this spec?", 1, 1},
			"1.3. Language used in this specification": {"1. Introduction > 1.3. Language used in this specification", 2, 2},
			"2.11. Subclassing A type is a subclass":   {"2. Unified system > 2.11. Subclassing", 14, 14},
			"References":                               {"3. Contributors > References", 17, 17},
		}
		got := map[string]where{}
		for _, c := range split(t, "shared-mime-info-spec.pdf") {
			for start := range want {
				if text := words(c.Text); text == start || strings.HasPrefix(text, start+" ") {
					got[start] = where{c.Section, c.PageStart, c.PageEnd}
				}
			}
		}
		if diff := cmp.Diff(want, got, cmp.AllowUnexported(where{})); diff != "" {
			t.Errorf("chunks (-want +got):\n%s", diff)
		}
	})
	t.Run("no outline", func(t *testing.T) {
		for _, c := range split(t, "lppl.pdf") {
			if c.Section != "" {
				t.Errorf("chunk %d has section %q; lppl.pdf has no outline", c.Index, c.Section)
			}
		}
	})
}

// Whatever goes wrong reading the outline, the text comes out as it does
// without one; only the caller's cancellation is an error.
func TestExtractPDFOutlineFailures(t *testing.T) {
	plain, err := New(Limits{}).Extract(context.Background(), PDF, testdata("lppl.pdf"))
	if err != nil {
		t.Fatal(err)
	}
	withHeading := func(page int, h ragpipe.Heading) []ragpipe.Page {
		pages := append([]ragpipe.Page(nil), plain...)
		pages[page-1].Headings = []ragpipe.Heading{h}
		return pages
	}
	outline := `printf '<pdf2xml>\n<outline>\n<item page="4">Terms</item>\n</outline>\n</pdf2xml>\n'`
	cases := []struct {
		name   string
		limits Limits
		tool   string // script standing in for pdftohtml
		want   []ragpipe.Page
	}{
		// The control: the stand-in's outline is read.
		{name: "outline", tool: outline, want: withHeading(4, ragpipe.Heading{Level: 1, Title: "Terms"})},
		{name: "fails after its outline", tool: outline + "; exit 1", want: plain},
		{name: "crash", tool: outline + `; kill -SEGV $$`, want: plain},
		{name: "out of memory", tool: `echo "Out of memory" >&2; kill -ABRT $$`, want: plain},
		{name: "not found", tool: `exec ragpipe-no-such-pdftohtml`, want: plain},
		{name: "hangs past the timeout", limits: Limits{Timeout: 2 * time.Second}, tool: "sleep 30 & wait", want: plain},
		{name: "garbage", tool: `printf '<outline>\n<item page="x">A</item>\n<item page="99">B</item>\n<item page="2"></item>\n\0\377\n'`, want: plain},
		{name: "too much output", limits: Limits{MaxTextBytes: 1 << 20},
			tool: `printf '<outline>\n'; yes '<item page="4">Terms</item>'`, want: plain},
		{name: "too many items", tool: `printf '<outline>\n'; yes '<item page="4">Terms</item>' | head -n 100001`, want: plain},
		{name: "line too long", tool: `printf '<outline>\n<item page="4">'; head -c 2000000 /dev/zero | tr '\0' x; printf '</item>\n'`, want: plain},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := New(tc.limits)
			e.pdftohtml = fakeTool(t, tc.tool)
			// Well within DefaultTimeout; the race detector slows the parse of
			// 100,000 outline lines several times over, more on a busy machine.
			bound := 5 * time.Second
			if raceEnabled {
				bound = 20 * time.Second
			}
			start := time.Now()
			got, err := e.Extract(context.Background(), PDF, testdata("lppl.pdf"))
			if elapsed := time.Since(start); elapsed > bound {
				t.Errorf("Extract took %v", elapsed)
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("pages (-want +got):\n%s", diff)
			}
		})
	}
}

// The caller cancelling while the outline is read ends Extract with the
// caller's error, not pages without sections.
func TestExtractPDFOutlineCallerCancels(t *testing.T) {
	started := filepath.Join(t.TempDir(), "started")
	e := New(Limits{})
	e.pdftohtml = fakeTool(t, "touch "+started+"; sleep 30")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for {
			if _, err := os.Stat(started); err == nil {
				cancel()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	_, err := e.Extract(ctx, PDF, testdata("lppl.pdf"))
	var re *ragpipe.Error
	if !errors.Is(err, context.Canceled) || errors.As(err, &re) {
		t.Fatalf("Extract = %v; want the caller's context error", err)
	}
}

func TestReadOutline(t *testing.T) {
	cases := []struct {
		name string
		out  string
		max  int64
		want []outlineItem
		err  bool
	}{
		{
			name: "nested, escaped, page XML before it skipped",
			out: "<page number=\"1\">\n<text top=\"1\">&lt;outline&gt;</text>\n</page>\n" +
				"<outline>\n<item page=\"3\">Tom &amp; &lt;Jerry&gt; &#34;q&#34;</item>\n<outline>\n" +
				"<item page=\"4\">  Two\tspaces </item>\n<item>No page</item>\n</outline>\n" +
				"<item page=\"9\">Back</item>\n</outline>\n</pdf2xml>\n",
			want: []outlineItem{
				{level: 1, title: `Tom & <Jerry> "q"`, page: 3},
				{level: 2, title: "Two spaces", page: 4},
				{level: 2, title: "No page"},
				{level: 1, title: "Back", page: 9},
			},
		},
		{name: "none", out: "<pdf2xml>\n<page number=\"1\">\n</page>\n</pdf2xml>\n"},
		{
			name: "deeper than 6 left out, empty titles too, invalid UTF-8 dropped",
			out: strings.Repeat("<outline>\n", 7) + "<item page=\"1\">Seven</item>\n</outline>\n" +
				"<item page=\"1\">Six\xff</item>\n<item page=\"1\"> </item>\n",
			want: []outlineItem{{level: 6, title: "Six", page: 1}},
		},
		{name: "more than max bytes", out: "<outline>\n<item page=\"1\">A</item>\n</outline>\n", max: 20, err: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.max == 0 {
				tc.max = 1 << 20
			}
			got, err := readOutline(strings.NewReader(tc.out), tc.max)
			if (err != nil) != tc.err {
				t.Fatalf("readOutline error = %v; want error %v", err, tc.err)
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(outlineItem{})); diff != "" {
				t.Errorf("items (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPlaceHeadings(t *testing.T) {
	cases := []struct {
		name  string
		pages []ragpipe.Page
		items []outlineItem
		want  map[int][]ragpipe.Heading
	}{
		{
			name:  "number, case, spacing, hyphenation and ligatures do not count",
			pages: []ragpipe.Page{{Number: 1, Text: "Intro text.\n3.2 The ﬁle For-\nmat\nBody."}},
			items: []outlineItem{{level: 2, title: "The File Format", page: 1}},
			want:  map[int][]ragpipe.Heading{1: {{Level: 2, Title: "The File Format", Line: 1, Lines: 2}}},
		},
		{
			name:  "a chapter number on its own line",
			pages: []ragpipe.Page{{Number: 1, Text: "End of the last chapter.\nChapter 4\n\nResults\nWe found."}},
			items: []outlineItem{{level: 1, title: "4 Results", page: 1}},
			want:  map[int][]ragpipe.Heading{1: {{Level: 1, Title: "4 Results", Line: 1, Lines: 3}}},
		},
		{
			name:  "a running head and a contents line above the heading are passed over, a line of prose below",
			pages: []ragpipe.Page{{Number: 1, Text: "2 Methods\n\nContents\n2 Methods . . . . .\n\n2 Methods\nWe tried new\nmethods.\nThe Methods section."}},
			items: []outlineItem{{level: 1, title: "2 Methods", page: 1}},
			want:  map[int][]ragpipe.Heading{1: {{Level: 1, Title: "2 Methods", Line: 5, Lines: 1}}},
		},
		{
			name:  "two sections of one title on one page, in order",
			pages: []ragpipe.Page{{Number: 1, Text: "Alpha\nExamples\none\nBeta\nExamples\ntwo"}},
			items: []outlineItem{
				{level: 1, title: "Alpha", page: 1}, {level: 2, title: "Examples", page: 1},
				{level: 1, title: "Beta", page: 1}, {level: 2, title: "Examples", page: 1},
			},
			want: map[int][]ragpipe.Heading{1: {
				{Level: 1, Title: "Alpha", Line: 0, Lines: 1}, {Level: 2, Title: "Examples", Line: 1, Lines: 1},
				{Level: 1, Title: "Beta", Line: 3, Lines: 1}, {Level: 2, Title: "Examples", Line: 4, Lines: 1},
			}},
		},
		{
			name:  "not found: at the top, or right after the heading before it",
			pages: []ragpipe.Page{{Number: 1, Text: "Some text.\nFound\nMore text."}},
			items: []outlineItem{
				{level: 1, title: "Missing first", page: 1}, {level: 1, title: "Found", page: 1},
				{level: 2, title: "Missing after", page: 1},
			},
			want: map[int][]ragpipe.Heading{1: {
				{Level: 1, Title: "Missing first"}, {Level: 1, Title: "Found", Line: 1, Lines: 1},
				{Level: 2, Title: "Missing after", Line: 2},
			}},
		},
		{
			name:  "pages without text pass their items on; items past the last page are dropped",
			pages: []ragpipe.Page{{Number: 1, Text: "One."}, {Number: 4, Text: "Four\nfour."}},
			items: []outlineItem{
				{level: 1, title: "Four", page: 4}, {level: 1, title: "Three", page: 3},
				{level: 1, title: "Two", page: 2}, {level: 1, title: "Five", page: 5},
			},
			want: map[int][]ragpipe.Heading{4: {
				{Level: 1, Title: "Two"}, {Level: 1, Title: "Three"}, {Level: 1, Title: "Four", Line: 0, Lines: 1},
			}},
		},
		{
			name:  "long titles are cut",
			pages: []ragpipe.Page{{Number: 1, Text: "Text."}},
			items: []outlineItem{{level: 1, title: strings.Repeat("x", 300), page: 1}},
			want:  map[int][]ragpipe.Heading{1: {{Level: 1, Title: strings.Repeat("x", 199) + "…"}}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			placeHeadings(tc.pages, tc.items)
			got := map[int][]ragpipe.Heading{}
			for _, p := range tc.pages {
				if p.Headings != nil {
					got[p.Number] = p.Headings
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("headings by page (-want +got):\n%s", diff)
			}
		})
	}
}

// pdftohtml converts one page besides printing the outline: the first with
// the least text.
func TestLightestPage(t *testing.T) {
	for _, tc := range []struct {
		texts []string
		want  int
	}{
		{[]string{"one"}, 1},
		{[]string{"three", "", "x", ""}, 2},
		{[]string{"long text", "short", "more text", "short"}, 2},
	} {
		if got := lightestPage(tc.texts); got != tc.want {
			t.Errorf("lightestPage(%q) = %d; want %d", tc.texts, got, tc.want)
		}
	}
}

// FuzzOutline: any pdftohtml output and page text give headings in order,
// on the page's lines, at levels 1 to 6.
func FuzzOutline(f *testing.F) {
	f.Add([]byte("<outline>\n<item page=\"1\">1 Intro</item>\n<outline>\n<item page=\"2\">A</item>\n</outline>\n</outline>\n"),
		"1 Intro\ntext", "x\nA\n\nA")
	f.Fuzz(func(t *testing.T, out []byte, text1, text2 string) {
		items, err := readOutline(strings.NewReader(string(out)), 1<<16)
		if err != nil {
			return
		}
		pages := []ragpipe.Page{{Number: 1, Text: text1}, {Number: 2, Text: text2}}
		placeHeadings(pages, items)
		for _, p := range pages {
			lines := len(strings.Split(p.Text, "\n"))
			last := 0
			for _, h := range p.Headings {
				if h.Line < last || h.Lines < 0 || h.Line+h.Lines > lines || h.Level < 1 || h.Level > maxOutlineLevel || h.Title == "" {
					t.Fatalf("page %d: heading %+v after line %d, of %d lines", p.Number, h, last, lines)
				}
				last = h.Line + h.Lines
			}
		}
	})
}
