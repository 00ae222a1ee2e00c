// Package chunk cuts a document's extracted text into overlapping chunks for
// embedding and retrieval, keeping track of the pages each chunk came from.
package chunk

import (
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
	"github.com/tmc/langchaingo/textsplitter"
)

// Default chunking, in characters (Unicode code points).
//
// 1000 characters is about 200–250 tokens of English: one or two paragraphs,
// enough context for a passage to stand on its own as a cited answer, small
// enough that its vector stays about one topic, and inside the input limit of
// common embedding models (512 tokens for small local ones such as bge-small,
// 8k for OpenAI's). An overlap of 150 (15%) repeats
// up to a sentence or so across a cut made inside a paragraph, so a statement
// cut there is still found whole in one of the two neighbouring chunks.
const (
	DefaultSize    = 1000
	DefaultOverlap = 150
)

// pageSeparator joins pages before splitting; the splitter prefers to cut there.
const pageSeparator = "\n\n"

// separators are tried in order: paragraphs, lines, words, and as a last
// resort single characters, so no chunk is ever longer than Size. (Sentences,
// ". ", are left out: the splitter drops the separator where it cuts, which
// would strip the full stop from the end of chunks.)
var separators = []string{"\n\n", "\n", " ", ""}

// Page is the text of one page of a document. Number is the page's number as
// shown to users (usually from 1).
type Page struct {
	Number int
	Text   string
}

// Options controls chunking. Size is the most characters (code points) in a
// chunk and must be positive; Overlap is how many characters at most
// consecutive chunks may share, 0 <= Overlap < Size.
type Options struct {
	Size, Overlap int
}

// Chunk is a piece of a document's text. Index is its position among the
// document's chunks, from 0. PageStart and PageEnd are the numbers of the
// first and last page its text comes from (equal unless it spans pages).
type Chunk struct {
	Index              int
	Text               string
	PageStart, PageEnd int
}

// Split cuts the text of pages, in reading order, into chunks of at most
// o.Size characters, cutting preferably between paragraphs, then lines, then
// words, and inside a word only if it is longer than o.Size. Pages are
// joined with a blank line first, so a chunk may span pages. Chunk texts are
// trimmed of surrounding white space; chunks with no text are dropped. The
// result is deterministic.
//
// Overlap is the splitter's (langchaingo's RecursiveCharacter): text is
// repeated across a cut only when the pieces merged at that level
// (paragraphs, lines or words) are no longer than o.Overlap, so chunks cut
// between long paragraphs do not overlap, while chunks cut inside a paragraph
// share up to o.Overlap characters of whole words.
//
// Invalid options are a ragpipe.EINVALID error.
func Split(pages []Page, o Options) ([]Chunk, error) {
	if o.Size <= 0 {
		return nil, ragpipe.Errorf(ragpipe.EINVALID, "chunk size must be positive, got %d", o.Size)
	}
	if o.Overlap < 0 || o.Overlap >= o.Size {
		return nil, ragpipe.Errorf(ragpipe.EINVALID, "chunk overlap must be at least 0 and less than the size %d, got %d", o.Size, o.Overlap)
	}

	var b strings.Builder
	starts := make([]int, len(pages)) // byte offset of each page in the joined text
	for i, p := range pages {
		if i > 0 {
			b.WriteString(pageSeparator)
		}
		starts[i] = b.Len()
		b.WriteString(p.Text)
	}
	text := b.String()
	if strings.TrimSpace(text) == "" {
		return []Chunk{}, nil
	}

	splitter := textsplitter.NewRecursiveCharacter(
		textsplitter.WithChunkSize(o.Size),
		textsplitter.WithChunkOverlap(o.Overlap),
		textsplitter.WithSeparators(separators),
	)
	texts, err := splitter.SplitText(text)
	if err != nil {
		return nil, ragpipe.Wrap(err, ragpipe.EINTERNAL, "splitting text")
	}

	pageAt := func(off int) int {
		return pages[sort.SearchInts(starts, off+1)-1].Number
	}
	chunks := make([]Chunk, 0, len(texts))
	var loc locator
	for _, t := range texts {
		t = capSize(t, o.Size)
		if t == "" {
			continue
		}
		start, end := loc.find(text, t, o.Overlap)
		chunks = append(chunks, Chunk{
			Index:     len(chunks),
			Text:      t,
			PageStart: pageAt(start),
			PageEnd:   pageAt(end - 1),
		})
	}
	return chunks, nil
}

// capSize returns chunk trimmed of surrounding white space and, if it is
// longer than size characters, without enough of its head to fit.
//
// langchaingo's RecursiveCharacter (v0.1.14) can exceed the chunk size by one
// separator (at most 2 characters): when the overlap it carries into a new
// chunk is a single piece, it does not count the separator that will join it
// to the next piece. That head is overlap, already at the end of the previous
// chunk, so cutting it at a white-space boundary loses no text.
func capSize(chunk string, size int) string {
	chunk = strings.TrimSpace(chunk)
	excess := utf8.RuneCountInString(chunk) - size
	if excess <= 0 {
		return chunk
	}
	i := 0
	var last rune
	for range excess {
		r, n := utf8.DecodeRuneInString(chunk[i:])
		last, i = r, i+n
	}
	if !unicode.IsSpace(last) { // mid-word: go on to the next white space
		if j := strings.IndexFunc(chunk[i:], unicode.IsSpace); j >= 0 {
			i += j
		}
	}
	return strings.TrimSpace(chunk[i:])
}

// probeRunes caps the first and last words searched for when a chunk as a
// whole is not found verbatim.
const probeRunes = 32

// locator finds successive chunks in the text they were cut from. Chunks come
// in order and each starts no earlier than overlap characters before the end
// of the one before it, nor before its start, so searching from there keeps
// the search linear and avoids matching an earlier repeat of the same words.
type locator struct {
	prevStart, prevEnd int
}

// find returns the byte span [start, end) of chunk in text. Chunks are
// normally verbatim substrings; if one is not (the splitter changed its white
// space), it is located by its first and last words instead, and failing that
// placed right after the previous chunk.
func (l *locator) find(text, chunk string, overlap int) (start, end int) {
	from := l.prevEnd
	for n := 0; n < overlap && from > l.prevStart; n++ {
		_, size := utf8.DecodeLastRuneInString(text[:from])
		from -= size
	}

	if i := strings.Index(text[from:], chunk); i >= 0 {
		start, end = from+i, from+i+len(chunk)
	} else if i := strings.Index(text[from:], firstWord(chunk)); i >= 0 {
		start = from + i
		end = min(start+len(chunk), len(text))
		last := lastWord(chunk)
		window := text[start:min(start+2*len(chunk), len(text))]
		if j := strings.LastIndex(window, last); j >= 0 {
			end = start + j + len(last)
		}
	} else {
		start = min(l.prevEnd, len(text)-1)
		end = min(start+len(chunk), len(text))
	}
	l.prevStart, l.prevEnd = start, end
	return start, end
}

// firstWord returns the run of s before its first white space, at most
// probeRunes long; lastWord the run after its last white space. s has no
// leading or trailing white space.
func firstWord(s string) string {
	i, n := 0, 0
	for i < len(s) && n < probeRunes {
		r, size := utf8.DecodeRuneInString(s[i:])
		if unicode.IsSpace(r) {
			break
		}
		i += size
		n++
	}
	return s[:i]
}

func lastWord(s string) string {
	i, n := len(s), 0
	for i > 0 && n < probeRunes {
		r, size := utf8.DecodeLastRuneInString(s[:i])
		if unicode.IsSpace(r) {
			break
		}
		i -= size
		n++
	}
	return s[i:]
}
