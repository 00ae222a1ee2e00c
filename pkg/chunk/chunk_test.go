package chunk

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
	"github.com/tmc/langchaingo/textsplitter"
)

func TestSplit(t *testing.T) {
	tests := []struct {
		name  string
		pages []Page
		opts  Options
		want  []Chunk
	}{
		{
			name: "three pages, short ones merged across a boundary",
			pages: []Page{
				{1, "Short one."},
				{2, "Short two."},
				{3, "A third page that is long enough to stand alone."},
			},
			opts: Options{Size: 30, Overlap: 8},
			want: []Chunk{
				{0, "Short one.\n\nShort two.", 1, 2},
				{1, "A third page that is long", 3, 3},
				{2, "is long enough to stand alone.", 3, 3},
			},
		},
		{
			name: "page numbers are the caller's, long pages split on words with overlap",
			pages: []Page{
				{5, "The first page ends in the middle of a"},
				{6, "sentence that continues here. Then more text follows on page six."},
				{7, "Last."},
			},
			opts: Options{Size: 30, Overlap: 8},
			want: []Chunk{
				{0, "The first page ends in the", 5, 5},
				{1, "in the middle of a", 5, 5},
				{2, "sentence that continues here.", 6, 6},
				{3, "here. Then more text follows", 6, 6},
				{4, "follows on page six.", 6, 6},
				{5, "Last.", 7, 7},
			},
		},
		{
			name:  "everything fits in one chunk",
			pages: []Page{{1, "Alpha."}, {2, "Beta."}, {3, "Gamma."}},
			opts:  Options{Size: DefaultSize, Overlap: DefaultOverlap},
			want:  []Chunk{{0, "Alpha.\n\nBeta.\n\nGamma.", 1, 3}},
		},
		{
			name:  "empty and blank pages in between",
			pages: []Page{{1, "Hello"}, {2, ""}, {3, "  \n "}, {4, "World"}},
			opts:  Options{Size: 100, Overlap: 0},
			want:  []Chunk{{0, "Hello\n\n\n\n  \n \n\nWorld", 1, 4}},
		},
		{
			name:  "overlapping word windows",
			pages: []Page{{1, "one two three four five six seven eight nine ten"}},
			opts:  Options{Size: 20, Overlap: 10},
			want: []Chunk{
				{0, "one two three four", 1, 1},
				{1, "three four five six", 1, 1},
				{2, "five six seven eight", 1, 1},
				{3, "eight nine ten", 1, 1},
			},
		},
		{
			// A word longer than Size is cut into Size-long pieces (with
			// overlap), so no chunk is ever longer than Size.
			name:  "overlong word",
			pages: []Page{{1, "aaaaaaaaaaaaaaaaaaaaaaaaa bb"}},
			opts:  Options{Size: 10, Overlap: 3},
			want: []Chunk{
				{0, "aaaaaaaaaa", 1, 1},
				{1, "aaaaaaaaaa", 1, 1},
				{2, "aaaaaaaaaa", 1, 1},
				{3, "aaaa", 1, 1},
				{4, "bb", 1, 1},
			},
		},
		{
			// langchaingo makes "and them" and "the were" (8 characters):
			// their heads are overlap and are cut off.
			name:  "separator overflow is capped",
			pages: []Page{{1, "and them the were"}},
			opts:  Options{Size: 7, Overlap: 3},
			want:  []Chunk{{0, "and", 1, 1}, {1, "them", 1, 1}, {2, "the", 1, 1}, {3, "were", 1, 1}},
		},
		{
			name:  "size counts characters, not bytes",
			pages: []Page{{1, "ééééé ççççç"}, {2, "ñ"}},
			opts:  Options{Size: 5, Overlap: 0},
			want:  []Chunk{{0, "ééééé", 1, 1}, {1, "ççççç", 1, 1}, {2, "ñ", 2, 2}},
		},
		{name: "no pages", pages: nil, opts: Options{Size: 10}, want: []Chunk{}},
		{name: "blank pages", pages: []Page{{1, " \n\n\t"}, {2, ""}}, opts: Options{Size: 10}, want: []Chunk{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Split(tt.pages, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Split() =\n%#v\nwant\n%#v", got, tt.want)
			}
		})
	}
}

func TestSplitInvalidOptions(t *testing.T) {
	for _, o := range []Options{{0, 0}, {-5, 0}, {10, -1}, {10, 10}, {10, 11}} {
		t.Run(fmt.Sprintf("%+v", o), func(t *testing.T) {
			_, err := Split([]Page{{1, "text"}}, o)
			if code := ragpipe.ErrorCode(err); code != ragpipe.EINVALID {
				t.Errorf("err = %v, code %q; want %q", err, code, ragpipe.EINVALID)
			}
		})
	}
}

// On a realistic document with the default options: chunks are no longer
// than Size, numbered in order, move forward through the pages, overlap
// their neighbour when cut inside a paragraph, and come out the same twice.
func TestSplitDocumentProperties(t *testing.T) {
	pages := benchPages(30)
	o := Options{Size: DefaultSize, Overlap: DefaultOverlap}
	chunks, err := Split(pages, o)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := Split(pages, o)
	if !reflect.DeepEqual(chunks, again) {
		t.Error("Split is not deterministic")
	}
	if len(chunks) < 30 {
		t.Fatalf("got %d chunks for 30 pages", len(chunks))
	}
	overlaps, spans := 0, 0
	for i, c := range chunks {
		if c.Index != i {
			t.Errorf("chunk %d has Index %d", i, c.Index)
		}
		if n := utf8.RuneCountInString(c.Text); n > o.Size || n == 0 {
			t.Errorf("chunk %d has %d characters", i, n)
		}
		if c.PageStart > c.PageEnd {
			t.Errorf("chunk %d spans pages %d..%d", i, c.PageStart, c.PageEnd)
		}
		if c.PageStart < c.PageEnd {
			spans++
		}
		// The chunk's text comes from its pages.
		var src strings.Builder
		for _, p := range pages[c.PageStart-1 : c.PageEnd] {
			src.WriteString(p.Text + pageSeparator)
		}
		if !strings.Contains(src.String(), c.Text) {
			t.Errorf("chunk %d is not in pages %d..%d", i, c.PageStart, c.PageEnd)
		}
		if i > 0 {
			prev := chunks[i-1]
			if c.PageStart < prev.PageStart {
				t.Errorf("chunk %d starts on page %d, before chunk %d (page %d)", i, c.PageStart, i-1, prev.PageStart)
			}
			if sharedEdge(prev.Text, c.Text) >= 20 {
				overlaps++
			}
		}
	}
	if overlaps == 0 || spans == 0 {
		t.Errorf("%d chunks overlap their predecessor by >= 20 bytes and %d span pages; want some of each", overlaps, spans)
	}
}

// sharedEdge returns the length of the longest suffix of a that is a prefix of b.
func sharedEdge(a, b string) int {
	for n := min(len(a), len(b)); n > 0; n-- {
		if strings.HasSuffix(a, b[:n]) {
			return n
		}
	}
	return 0
}

func TestCapSize(t *testing.T) {
	tests := []struct {
		chunk string
		size  int
		want  string
	}{
		{"  fits  ", 4, "fits"},
		{"the were", 7, "were"},
		{"the were", 5, "were"},
		{"ab cd ef", 6, "cd ef"},
		{"Short.\n\nLonger para", 15, "Longer para"},
		{"   ", 3, ""},
	}
	for _, tt := range tests {
		if got := capSize(tt.chunk, tt.size); got != tt.want {
			t.Errorf("capSize(%q, %d) = %q, want %q", tt.chunk, tt.size, got, tt.want)
		}
	}
}

func TestLocator(t *testing.T) {
	text := "aaa bbb\n\nccc  ddd eee\n\nfff ggg"
	tests := []struct {
		chunk     string
		overlap   int
		wantSpan  [2]int
		wantMatch string
	}{
		{"aaa bbb", 0, [2]int{0, 7}, "aaa bbb"},
		// White space differs from the source: located by head and tail.
		{"ccc ddd eee", 0, [2]int{9, 21}, "ccc  ddd eee"},
		// Overlap lets the next chunk start inside the previous one.
		{"eee\n\nfff", 3, [2]int{18, 26}, "eee\n\nfff"},
		// Not in the text at all: placed right after the previous chunk.
		{"zzz", 0, [2]int{26, 29}, " gg"},
	}
	var l locator
	for i, tt := range tests {
		start, end := l.find(text, tt.chunk, tt.overlap)
		if [2]int{start, end} != tt.wantSpan || text[start:end] != tt.wantMatch {
			t.Errorf("%d: find(%q) = [%d, %d) %q, want %v %q", i, tt.chunk, start, end, text[start:end], tt.wantSpan, tt.wantMatch)
		}
	}
}

// Every chunk the splitter makes, once capped, fits Size and is found verbatim, even in repetitive text
// and with large overlaps, so the fallbacks above are only a safety net.
func TestLocatorFindsSplitterOutput(t *testing.T) {
	var doc strings.Builder
	for _, p := range benchPages(5) {
		doc.WriteString(p.Text + pageSeparator)
	}
	texts := []string{
		doc.String(),
		strings.Repeat("a a a a a\n", 300),
		strings.Repeat("x", 500) + " " + strings.Repeat("yy ", 100),
	}
	for _, text := range texts {
		for _, o := range []Options{{50, 0}, {50, 49}, {200, 30}, {DefaultSize, DefaultOverlap}, {7, 3}, {12, 5}, {300, 150}} {
			splitter := textsplitter.NewRecursiveCharacter(
				textsplitter.WithChunkSize(o.Size),
				textsplitter.WithChunkOverlap(o.Overlap),
				textsplitter.WithSeparators(separators),
			)
			chunks, err := splitter.SplitText(text)
			if err != nil {
				t.Fatal(err)
			}
			var l locator
			for i, c := range chunks {
				c = capSize(c, o.Size)
				if n := utf8.RuneCountInString(c); n > o.Size {
					t.Errorf("%+v: chunk %d %q has %d characters", o, i, c, n)
				}
				start, end := l.find(text, c, o.Overlap)
				if text[start:end] != c {
					t.Fatalf("%+v: chunk %d %q located as %q", o, i, c, text[start:end])
				}
			}
		}
	}
}

// benchPages returns n pages of about 2000 characters of prose in
// paragraphs of varying length, deterministically.
func benchPages(n int) []Page {
	words := strings.Fields("the retrieval system splits every document into chunks and embeds " +
		"them so that search can rank passages by similarity; invoices, contracts, manuals " +
		"and reports from 2019 to 2024 were ingested with their page numbers and metadata")
	pages := make([]Page, n)
	var b strings.Builder
	k := 0
	for i := range pages {
		b.Reset()
		for b.Len() < 2000 {
			para := 20 + (k*37)%300 // words per paragraph
			for w := 0; w < para && b.Len() < 2000; w++ {
				b.WriteString(words[(k*k+w)%len(words)])
				b.WriteByte(' ')
				k++
			}
			b.WriteString("\n\n")
		}
		pages[i] = Page{Number: i + 1, Text: strings.TrimSpace(b.String())}
	}
	return pages
}

// BenchmarkSplit splits a 200-page document (about 400,000 characters).
func BenchmarkSplit(b *testing.B) {
	pages := benchPages(200)
	o := Options{Size: DefaultSize, Overlap: DefaultOverlap}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Split(pages, o); err != nil {
			b.Fatal(err)
		}
	}
}
