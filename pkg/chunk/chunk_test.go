package chunk

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

func TestSplit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		pages []ragpipe.Page
		opts  Options
		want  []Chunk
	}{
		{
			name: "short pages merged across a boundary, a long one cut between sentences",
			pages: []ragpipe.Page{
				{Number: 1, Text: "Short one."},
				{Number: 2, Text: "Short two."},
				{Number: 3, Text: "A third page. It has three sentences. They do not fit."},
			},
			opts: Options{Size: 40},
			want: []Chunk{
				{Index: 0, Text: "Short one.\n\nShort two.", PageStart: 1, PageEnd: 2},
				{Index: 1, Text: "A third page. It has three sentences.", PageStart: 3, PageEnd: 3},
				{Index: 2, Text: "They do not fit.", PageStart: 3, PageEnd: 3},
			},
		},
		{
			name:  "overlap repeats whole sentences",
			pages: []ragpipe.Page{{Number: 4, Text: "One is first. Two is next. Three follows. Four ends it."}},
			opts:  Options{Size: 30, Overlap: 15},
			want: []Chunk{
				{Index: 0, Text: "One is first. Two is next.", PageStart: 4, PageEnd: 4},
				{Index: 1, Text: "Two is next. Three follows.", PageStart: 4, PageEnd: 4},
				{Index: 2, Text: "Three follows. Four ends it.", PageStart: 4, PageEnd: 4},
			},
		},
		{
			name:  "abbreviations and initials do not end sentences",
			pages: []ragpipe.Page{{Number: 1, Text: "See e.g. Fig. 3 by J. Smith for details. Next sentence here."}},
			opts:  Options{Size: 45},
			want: []Chunk{
				{Index: 0, Text: "See e.g. Fig. 3 by J. Smith for details.", PageStart: 1, PageEnd: 1},
				{Index: 1, Text: "Next sentence here.", PageStart: 1, PageEnd: 1},
			},
		},
		{
			name: "markdown headings start chunks and make the section path",
			pages: []ragpipe.Page{{Number: 1, Text: "Preface text.\n\n# Guide\n\nIntro.\n\n## Install\n\nRun make.\n\n" +
				"## Use\n\nCall it.\n\n# Appendix\n\nMore."}},
			opts: Options{Size: 100, Markdown: true},
			want: []Chunk{
				{Index: 0, Text: "Preface text.", PageStart: 1, PageEnd: 1},
				{Index: 1, Text: "# Guide\n\nIntro.", PageStart: 1, PageEnd: 1, Section: "Guide"},
				{Index: 2, Text: "## Install\n\nRun make.", PageStart: 1, PageEnd: 1, Section: "Guide > Install"},
				{Index: 3, Text: "## Use\n\nCall it.", PageStart: 1, PageEnd: 1, Section: "Guide > Use"},
				{Index: 4, Text: "# Appendix\n\nMore.", PageStart: 1, PageEnd: 1, Section: "Appendix"},
			},
		},
		{
			name: "given headings cut blocks, with or without their text, and make the section path",
			pages: []ragpipe.Page{
				{Number: 1, Text: "Preface.\n3.2 Results\nThe results.\n# not a heading\n\nMore results.", Headings: []ragpipe.Heading{
					{Level: 1, Title: "3 Work", Line: 1},
					{Level: 2, Title: "3.2 Results", Line: 1, Lines: 1},
				}},
				{Number: 2, Text: "Still results.\nChapter 4\n\nMethods\nThe methods.", Headings: []ragpipe.Heading{
					{Level: 1, Title: "4 Methods", Line: 1, Lines: 3},
					{Level: 2, Title: "4.1 Tools", Line: 4},
				}},
				{Number: 3, Text: "Last words.", Headings: []ragpipe.Heading{{Level: 1, Title: "5 After the text", Line: 1}}},
				{Number: 4, Text: "Appendix text."},
			},
			opts: Options{Size: 100},
			want: []Chunk{
				{Index: 0, Text: "Preface.", PageStart: 1, PageEnd: 1},
				{Index: 1, Text: "3.2 Results\n\nThe results.\n# not a heading\n\nMore results.\n\nStill results.",
					PageStart: 1, PageEnd: 2, Section: "3 Work > 3.2 Results"},
				{Index: 2, Text: "Chapter 4\n\nMethods", PageStart: 2, PageEnd: 2, Section: "4 Methods"},
				{Index: 3, Text: "The methods.\n\nLast words.", PageStart: 2, PageEnd: 3, Section: "4 Methods > 4.1 Tools"},
				{Index: 4, Text: "Appendix text.", PageStart: 4, PageEnd: 4, Section: "5 After the text"},
			},
		},
		{
			name: "given headings in markdown text end a fenced block",
			pages: []ragpipe.Page{{Number: 1, Text: "```\ncode\nHeading\nText.", Headings: []ragpipe.Heading{
				{Level: 1, Title: "Heading", Line: 2, Lines: 1},
			}}},
			opts: Options{Size: 100, Markdown: true},
			want: []Chunk{
				{Index: 0, Text: "```\ncode", PageStart: 1, PageEnd: 1},
				{Index: 1, Text: "Heading\n\nText.", PageStart: 1, PageEnd: 1, Section: "Heading"},
			},
		},
		{
			name:  "without markdown a # line is text",
			pages: []ragpipe.Page{{Number: 1, Text: "# not a heading\nport = 80"}},
			opts:  Options{Size: 100},
			want:  []Chunk{{Index: 0, Text: "# not a heading\nport = 80", PageStart: 1, PageEnd: 1}},
		},
		{
			name:  "code blocks stay whole, list items are blocks",
			pages: []ragpipe.Page{{Number: 2, Text: "Steps:\n- first item\n- second item\n\n```sh\nmake\n\nmake test\n```\nAfter."}},
			opts:  Options{Size: 30, Markdown: true},
			want: []Chunk{
				{Index: 0, Text: "Steps:\n\n- first item", PageStart: 2, PageEnd: 2},
				{Index: 1, Text: "- second item", PageStart: 2, PageEnd: 2},
				{Index: 2, Text: "```sh\nmake\n\nmake test\n```", PageStart: 2, PageEnd: 2},
				{Index: 3, Text: "After.", PageStart: 2, PageEnd: 2},
			},
		},
		{
			name:  "a code block too long is cut between lines",
			pages: []ragpipe.Page{{Number: 1, Text: "```\nline one\nline two\nline three\n```"}},
			opts:  Options{Size: 20, Markdown: true},
			want: []Chunk{
				{Index: 0, Text: "```\nline one", PageStart: 1, PageEnd: 1},
				{Index: 1, Text: "line two\nline three", PageStart: 1, PageEnd: 1},
				{Index: 2, Text: "```", PageStart: 1, PageEnd: 1},
			},
		},
		{
			name:  "OCR pages mark their chunks",
			pages: []ragpipe.Page{{Number: 1, Text: "Typed."}, {Number: 2, Text: "Scanned.", OCR: true}, {Number: 3, Text: "Typed again, at length."}},
			opts:  Options{Size: 25},
			want: []Chunk{
				{Index: 0, Text: "Typed.\n\nScanned.", PageStart: 1, PageEnd: 2, OCR: true},
				{Index: 1, Text: "Typed again, at length.", PageStart: 3, PageEnd: 3},
			},
		},
		{
			name:  "a sentence longer than a chunk is cut between words, a word between runes",
			pages: []ragpipe.Page{{Number: 1, Text: "aaaaaaaaaaaaaaaaaaaaaaaaa bb cc"}},
			opts:  Options{Size: 10},
			want: []Chunk{
				{Index: 0, Text: "aaaaaaaaaa", PageStart: 1, PageEnd: 1},
				{Index: 1, Text: "aaaaaaaaaa", PageStart: 1, PageEnd: 1},
				{Index: 2, Text: "aaaaa bb", PageStart: 1, PageEnd: 1},
				{Index: 3, Text: "cc", PageStart: 1, PageEnd: 1},
			},
		},
		{
			name:  "size counts characters, not bytes",
			pages: []ragpipe.Page{{Number: 1, Text: "ééééé ééééé"}},
			opts:  Options{Size: 5},
			want: []Chunk{
				{Index: 0, Text: "ééééé", PageStart: 1, PageEnd: 1},
				{Index: 1, Text: "ééééé", PageStart: 1, PageEnd: 1},
			},
		},
		{
			name:  "tokens",
			pages: []ragpipe.Page{{Number: 1, Text: "Hello world. Hello again world."}},
			opts:  Options{Size: 4, Unit: Tokens},
			want: []Chunk{
				{Index: 0, Text: "Hello world.", PageStart: 1, PageEnd: 1},
				{Index: 1, Text: "Hello again world.", PageStart: 1, PageEnd: 1},
			},
		},
		{name: "no pages", pages: nil, opts: Options{Size: 10}, want: []Chunk{}},
		{name: "blank pages", pages: []ragpipe.Page{{Number: 1, Text: " \n\n\t"}, {Number: 2}}, opts: Options{Size: 10}, want: []Chunk{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Split(tc.pages, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Split mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSplitInvalidOptions(t *testing.T) {
	t.Parallel()
	for _, o := range []Options{{Size: 0}, {Size: -5}, {Size: 10, Overlap: -1}, {Size: 10, Overlap: 10}, {Size: 10, Overlap: 11}, {Size: 10, Unit: 7}} {
		t.Run(fmt.Sprintf("%+v", o), func(t *testing.T) {
			_, err := Split([]ragpipe.Page{{Number: 1, Text: "text"}}, o)
			if code := ragpipe.ErrorCode(err); code != ragpipe.EINVALID {
				t.Errorf("err = %v, code %q; want %q", err, code, ragpipe.EINVALID)
			}
		})
	}
}

// On a realistic document, for both units: chunks are no longer than Size,
// numbered in order, move forward through the pages, keep every word of
// the document in order, overlap their neighbour when cut inside a
// section, and come out the same twice.
func TestSplitDocumentProperties(t *testing.T) {
	t.Parallel()
	tokens := tiktokenCount(t)
	pages := benchPages(30)
	for _, o := range []Options{
		{Size: DefaultSize, Overlap: DefaultOverlap},
		{Size: DefaultTokenSize, Overlap: DefaultTokenOverlap, Unit: Tokens},
	} {
		t.Run(fmt.Sprint(o.Unit), func(t *testing.T) {
			count := runeCount
			if o.Unit == Tokens {
				count = tokens
			}
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
			var all []string
			for _, p := range pages {
				all = append(all, strings.Fields(p.Text)...)
			}
			overlaps, spans, pos := 0, 0, 0
			for i, c := range chunks {
				if c.Index != i {
					t.Errorf("chunk %d has Index %d", i, c.Index)
				}
				if n := count(c.Text); n > o.Size || n == 0 {
					t.Errorf("chunk %d has size %d", i, n)
				}
				if c.PageStart < c.PageEnd {
					spans++
				}
				// Its words continue the document, after up to Overlap units repeated.
				words := strings.Fields(c.Text)
				start := pos
				for start > 0 && !slicesHasPrefix(all[start:], words) {
					start--
				}
				if !slicesHasPrefix(all[start:], words) {
					t.Fatalf("chunk %d is not the document's text in order", i)
				}
				if start < pos {
					overlaps++
					if n := count(strings.Join(all[start:pos], " ")); n > o.Overlap {
						t.Errorf("chunk %d repeats %d units", i, n)
					}
				}
				pos = start + len(words)
				if i > 0 && c.PageStart < chunks[i-1].PageStart {
					t.Errorf("chunk %d starts before its predecessor", i)
				}
			}
			if pos != len(all) {
				t.Errorf("chunks end at word %d of %d", pos, len(all))
			}
			if overlaps == 0 || spans == 0 {
				t.Errorf("%d chunks overlap their predecessor and %d span pages; want some of each", overlaps, spans)
			}
		})
	}
}

func slicesHasPrefix(s, prefix []string) bool {
	return len(s) >= len(prefix) && reflect.DeepEqual(s[:len(prefix)], prefix)
}

// FuzzSplit: any text splits without error into chunks no longer than
// Size that keep every word in order.
func FuzzSplit(f *testing.F) {
	f.Add("# A\n\nText. More text.\n\n- item\n\n```\ncode\n```", 20, 5, true)
	f.Add("plain words without end", 3, 1, false)
	f.Fuzz(func(t *testing.T, text string, size, overlap int, md bool) {
		if size < 1 || size > 200 || overlap < 0 || overlap >= size || !utf8.ValidString(text) {
			return
		}
		chunks, err := Split([]ragpipe.Page{{Number: 1, Text: text}}, Options{Size: size, Overlap: overlap, Markdown: md})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range chunks {
			if n := utf8.RuneCountInString(c.Text); n > size || strings.TrimSpace(c.Text) == "" {
				t.Fatalf("chunk %q has %d runes (size %d)", c.Text, n, size)
			}
		}
	})
}

// FuzzSplitHeadings: given headings anywhere, even out of range or order,
// split the text into chunks no longer than Size that keep all of it in
// order (words longer than Size cut), the headings' lines included.
func FuzzSplitHeadings(f *testing.F) {
	f.Add("Intro.\n1 Title\nText one.\n\nText two.", 1, 1, 1, 3, 0, 2, 20)
	f.Add("a\nb", -1, 5, 0, 7, -3, 1<<62, 3)
	f.Fuzz(func(t *testing.T, text string, line1, lines1, level1, line2, lines2, level2, size int) {
		if size < 1 || size > 200 || !utf8.ValidString(text) {
			return
		}
		page := ragpipe.Page{Number: 1, Text: text, Headings: []ragpipe.Heading{
			{Level: level1, Title: "One", Line: line1, Lines: lines1},
			{Level: level2, Title: "Two", Line: line2, Lines: lines2},
		}}
		chunks, err := Split([]ragpipe.Page{page, {Number: 2, Text: "end"}}, Options{Size: size})
		if err != nil {
			t.Fatal(err)
		}
		var got string
		for _, c := range chunks {
			if n := utf8.RuneCountInString(c.Text); n > size || strings.TrimSpace(c.Text) == "" {
				t.Fatalf("chunk %q has %d runes (size %d)", c.Text, n, size)
			}
			got += strings.Join(strings.Fields(c.Text), "")
		}
		if want := strings.Join(strings.Fields(text+"\nend"), ""); got != want {
			t.Fatalf("text %q; want %q", got, want)
		}
	})
}

// benchPages returns n pages of about 2000 characters of prose in
// paragraphs of varying length, deterministically.
func benchPages(n int) []ragpipe.Page {
	words := strings.Fields("The retrieval system splits every document into chunks and embeds " +
		"them so that search can rank passages by similarity. Invoices, contracts, manuals " +
		"and reports from 2019 to 2024 were ingested with their page numbers and metadata.")
	pages := make([]ragpipe.Page, n)
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
		pages[i] = ragpipe.Page{Number: i + 1, Text: strings.TrimSpace(b.String())}
	}
	return pages
}

// benchDocument returns the pages the benchmarks split: benchPages(200)
// (about 400,000 characters of prose of a few dozen words), or with
// RAGPIPE_CHUNK_BENCH_TEXT=file the text of file in pages of about 2,000
// bytes cut at line ends, for text of a real vocabulary (a book, a manual).
func benchDocument(b *testing.B) []ragpipe.Page {
	b.Helper()
	name := os.Getenv("RAGPIPE_CHUNK_BENCH_TEXT")
	if name == "" {
		return benchPages(200)
	}
	text, err := os.ReadFile(name)
	if err != nil {
		b.Fatal(err)
	}
	var pages []ragpipe.Page
	for rest := string(text); rest != ""; {
		end := len(rest)
		if end > 2000 {
			if i := strings.IndexByte(rest[2000:], '\n'); i >= 0 {
				end = 2000 + i + 1
			}
		}
		pages = append(pages, ragpipe.Page{Number: len(pages) + 1, Text: rest[:end]})
		rest = rest[end:]
	}
	return pages
}

// BenchmarkSplit splits a document (see benchDocument) in characters and
// in tokens, counted by the tokenizer and, as before it, by tiktoken-go.
func BenchmarkSplit(b *testing.B) {
	pages := benchDocument(b)
	enc, err := cl100k()
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name  string
		opts  Options
		count func(string) int
	}{
		{"runes", Options{Size: DefaultSize, Overlap: DefaultOverlap}, runeCount},
		{"tokens", Options{Size: DefaultTokenSize, Overlap: DefaultTokenOverlap, Unit: Tokens}, enc.count},
		{"tokens-tiktoken-go", Options{Size: DefaultTokenSize, Overlap: DefaultTokenOverlap, Unit: Tokens}, tiktokenCount(b)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				split(pages, bc.opts, bc.count)
			}
			b.ReportMetric(float64(len(pages)*b.N)/b.Elapsed().Seconds(), "pages/s")
		})
	}
}
