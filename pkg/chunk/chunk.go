// Package chunk cuts a document's extracted text into overlapping chunks for
// embedding and retrieval, following its structure (headings, paragraphs,
// list items, code blocks, sentences) and keeping track of the pages and the
// section each chunk came from.
package chunk

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// Default chunking in characters (Unicode code points), Options.Unit Runes.
//
// 1000 characters is about 200–250 tokens of English: one or two paragraphs,
// enough context for a passage to stand on its own as a cited answer, small
// enough that its vector stays about one topic, and inside the input limit of
// common embedding models (512 tokens for small local ones such as bge-small,
// 8k for OpenAI's). An overlap of 150 (15%) repeats a sentence or so across
// a cut made inside a section.
const (
	DefaultSize    = 1000
	DefaultOverlap = 150
)

// Default chunking in tokens, Options.Unit Tokens: the same amount of text
// as DefaultSize and DefaultOverlap.
const (
	DefaultTokenSize    = 256
	DefaultTokenOverlap = 32
)

// Unit is what Options.Size and Overlap count.
type Unit int

const (
	// Runes counts Unicode code points (the zero value, for compatibility).
	Runes Unit = iota
	// Tokens counts tokens of OpenAI's cl100k_base encoding (GPT-3.5/4,
	// text-embedding-3-*), a fair measure for other models' tokenizers too.
	// The encoding is compiled into the binary: nothing is downloaded.
	Tokens
)

// Options controls chunking. Size is the most units in a chunk and must be
// positive; Overlap is how many units at most consecutive chunks of one
// section may share, 0 <= Overlap < Size. Unit says what is counted.
//
// Markdown says the text marks structure the Markdown way: ATX headings
// ("## Title") start a new chunk and make the heading path (Chunk.Section),
// and fenced code blocks are kept whole where they fit. Set it for
// Markdown, HTML and DOCX text (extract.Format.Markdown); in other text a
// "# " line is more likely a comment than a heading. Page.Headings count
// either way.
type Options struct {
	Size, Overlap int
	Unit          Unit
	Markdown      bool
}

// Chunk is a piece of a document's text. Index is its position among the
// document's chunks, from 0. PageStart and PageEnd are the numbers of the
// first and last page its text comes from (equal unless it spans pages).
// Section is the path of headings it falls under, outermost first, joined
// by " > " ("Install > From source"), or "" before the first heading and in
// text without headings. OCR is true when any of its text came from OCR.
type Chunk struct {
	Index              int
	Text               string
	PageStart, PageEnd int
	Section            string `json:",omitempty"`
	OCR                bool   `json:",omitempty"`
}

// Split cuts the text of pages, in reading order, into chunks of at most
// o.Size units. It cuts preferably before a heading, then between blocks
// (paragraphs, list items, code blocks), then between sentences, then lines,
// then words, and inside a word only if it is longer than o.Size. Blocks
// never span pages, but a chunk may. Chunks are cut at every heading and
// section change, so each has one Section. Within a section, a chunk
// starts by repeating the last whole sentences or blocks of the one before,
// up to o.Overlap units. Blocks are joined by a blank line, so a chunk's
// text is its blocks' text as extracted, apart from white space at their
// ends. The result is deterministic.
//
// Invalid options are a ragpipe.EINVALID error.
func Split(pages []ragpipe.Page, o Options) ([]Chunk, error) {
	if o.Size <= 0 {
		return nil, ragpipe.Errorf(ragpipe.EINVALID, "chunk size must be positive, got %d", o.Size)
	}
	if o.Overlap < 0 || o.Overlap >= o.Size {
		return nil, ragpipe.Errorf(ragpipe.EINVALID, "chunk overlap must be at least 0 and less than the size %d, got %d", o.Size, o.Overlap)
	}
	count := runeCount
	if o.Unit == Tokens {
		enc, err := cl100k()
		if err != nil {
			return nil, ragpipe.Wrap(err, ragpipe.EINTERNAL, "loading the tokenizer")
		}
		count = enc.count
	} else if o.Unit != Runes {
		return nil, ragpipe.Errorf(ragpipe.EINVALID, "unknown chunk size unit %d", o.Unit)
	}
	return split(pages, o, count), nil
}

// split is Split with valid options, counting units with count.
func split(pages []ragpipe.Page, o Options, count func(string) int) []Chunk {
	p := packer{opts: o, count: count, chunks: []Chunk{}, sepN: map[string]int{}}
	for _, sep := range []string{"\n\n", " ", "\n"} {
		p.sepN[sep] = count(sep)
	}
	var sections sectionPath
	for _, pg := range pages {
		eachBlock(pg.Text, o.Markdown, pg.Headings, func(b block) {
			if b.level > 0 {
				sections.enter(b.level, b.title)
			}
			if b.text == "" {
				return // a section starting without heading text
			}
			b.page, b.ocr, b.section = pg.Number, pg.OCR, sections.String()
			p.add(b)
		})
	}
	p.flush(false)
	return p.chunks
}

func runeCount(s string) int { return utf8.RuneCountInString(s) }

// sectionPath is the stack of headings above the current text.
type sectionPath []struct {
	level int
	title string
}

func (s *sectionPath) enter(level int, title string) {
	for len(*s) > 0 && (*s)[len(*s)-1].level >= level {
		*s = (*s)[:len(*s)-1]
	}
	*s = append(*s, struct {
		level int
		title string
	}{level, title})
}

func (s sectionPath) String() string {
	titles := make([]string, len(s))
	for i, h := range s {
		titles[i] = h.title
	}
	return strings.Join(titles, " > ")
}

// blockKind tells how a block may be cut.
type blockKind int

const (
	prose blockKind = iota // paragraphs and list items: by sentence
	code                   // fenced code: by line
)

// block is a unit of structure: a paragraph, list item, heading or code block.
type block struct {
	text    string
	kind    blockKind
	level   int // heading level, 0 for other blocks
	title   string
	page    int
	ocr     bool
	section string
}

var (
	atxHeading = regexp.MustCompile(`^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$`)
	fence      = regexp.MustCompile("^ {0,3}(```|~~~)")
	listItem   = regexp.MustCompile(`^[ \t]*(?:[-*+•◦▪‣–]|\d{1,9}[.)]|[a-zA-Z][.)])[ \t]+\S`)
)

// eachBlock cuts a page's text into blocks, handing each to yield in
// order: at blank lines, before list items, around the headings given and,
// with markdown, around ATX headings and fenced code. A heading given
// without text is a block without text. It walks the text line by line and
// keeps only the open block, so its working set is one block, not the page.
func eachBlock(text string, markdown bool, headings []ragpipe.Heading, yield func(block)) {
	var cur []string
	inFence := ""
	flush := func(kind blockKind) {
		t := strings.Trim(strings.Join(cur, "\n"), "\n")
		if strings.TrimSpace(t) != "" {
			if kind == prose {
				t = strings.TrimSpace(t)
			}
			yield(block{text: t, kind: kind})
		}
		cur = cur[:0]
	}
	heading := func(h ragpipe.Heading, text []string) {
		if inFence != "" {
			flush(code)
			inFence = ""
		}
		flush(prose)
		yield(block{text: strings.TrimSpace(strings.Join(text, "\n")), level: h.Level, title: h.Title})
	}
	// The cursor: line is line number i of the text, has says it exists.
	line, rest, found := strings.Cut(strings.TrimSuffix(text, "\n"), "\n")
	i, has := 0, true
	advance := func() {
		i++
		if has = found; has {
			line, rest, found = strings.Cut(rest, "\n")
		}
	}
	for ; has; advance() {
		for len(headings) > 0 && headings[0].Line <= i {
			h := headings[0]
			headings = headings[1:]
			var lines []string
			for ; has && i < h.Line+h.Lines; advance() {
				lines = append(lines, line)
			}
			heading(h, lines)
		}
		if !has {
			break
		}
		line := strings.TrimRight(line, "\r")
		if markdown && inFence != "" {
			cur = append(cur, line)
			if strings.HasPrefix(strings.TrimSpace(line), inFence) {
				flush(code)
				inFence = ""
			}
			continue
		}
		if markdown {
			if m := fence.FindStringSubmatch(line); m != nil {
				flush(prose)
				inFence = m[1]
				cur = append(cur, line)
				continue
			}
			if m := atxHeading.FindStringSubmatch(line); m != nil {
				flush(prose)
				title := strings.Join(strings.Fields(m[2]), " ")
				yield(block{text: strings.TrimSpace(line), level: len(m[1]), title: title})
				continue
			}
		}
		switch {
		case strings.TrimSpace(line) == "":
			flush(prose)
		case listItem.MatchString(line):
			flush(prose)
			cur = append(cur, line)
		default:
			cur = append(cur, line)
		}
	}
	if inFence != "" {
		flush(code)
	} else {
		flush(prose)
	}
	for _, h := range headings {
		yield(block{level: h.Level, title: h.Title})
	}
}

// piece is a part of a block small enough for a chunk.
type piece struct {
	text  string
	n     int    // its size in units
	sep   string // what joins it to the piece before in the same chunk
	nSep  int
	block *block
}

// packer fills chunks with pieces.
type packer struct {
	opts   Options
	count  func(string) int
	sepN   map[string]int // the size of each separator, counted once
	chunks []Chunk
	cur    []piece
	size   int // units in cur, separators included
}

func (p *packer) add(b block) {
	if b.level > 0 || (len(p.cur) > 0 && p.cur[0].block.section != b.section) {
		p.flush(false) // headings and section changes start a chunk
	}
	// A block that does not fit in the room left starts a chunk, rather than
	// being cut, unless all the chunk has is its heading.
	n := p.count(b.text)
	if len(p.cur) > 0 && p.size+p.sepN["\n\n"]+n > p.opts.Size && !p.onlyHeadings() {
		p.flush(true)
	}
	if n <= p.opts.Size { // whole: its size is known
		p.push(piece{text: b.text, n: n, sep: "\n\n", nSep: p.sepN["\n\n"], block: &b})
		return
	}
	for i, text := range p.cut(b.text, b.kind) {
		sep := "\n\n"
		if i > 0 {
			sep = " "
			if b.kind == code {
				sep = "\n"
			}
		}
		p.push(piece{text: text, n: p.count(text), sep: sep, nSep: p.sepN[sep], block: &b})
	}
}

func (p *packer) onlyHeadings() bool {
	for _, pc := range p.cur {
		if pc.block.level == 0 {
			return false
		}
	}
	return true
}

func (p *packer) push(pc piece) {
	if len(p.cur) > 0 && p.size+pc.nSep+pc.n > p.opts.Size {
		p.flush(true)
		for len(p.cur) > 0 && p.size+pc.nSep+pc.n > p.opts.Size {
			p.dropFirst()
		}
	}
	if len(p.cur) > 0 {
		p.size += pc.nSep
	}
	p.cur = append(p.cur, pc)
	p.size += pc.n
}

func (p *packer) dropFirst() {
	p.size -= p.cur[0].n
	p.cur = p.cur[1:]
	if len(p.cur) > 0 {
		p.size -= p.cur[0].nSep
	}
}

// flush ends the current chunk. With overlap, the next chunk starts with
// the current one's last pieces, up to Overlap units.
func (p *packer) flush(overlap bool) {
	if len(p.cur) == 0 {
		return
	}
	text, first, last := p.text()
	// The sum of the pieces' sizes is exact for code points; for tokens a
	// join can merge differently, so check and move pieces on if needed.
	for len(p.cur) > 1 && p.opts.Unit == Tokens && p.count(text) > p.opts.Size {
		rest := p.cur[len(p.cur)-1]
		p.cur = p.cur[:len(p.cur)-1]
		p.size -= rest.n + rest.nSep
		p.flush(overlap)
		p.push(rest)
		return
	}
	c := Chunk{Index: len(p.chunks), Text: text, PageStart: first, PageEnd: last, Section: p.cur[0].block.section}
	for _, pc := range p.cur {
		c.OCR = c.OCR || pc.block.ocr
	}
	p.chunks = append(p.chunks, c)

	if !overlap || p.opts.Overlap == 0 {
		p.cur, p.size = p.cur[:0], 0
		return
	}
	keep, size := len(p.cur), 0
	for keep > 1 {
		add := p.cur[keep-1].n
		if keep < len(p.cur) {
			add += p.cur[keep].nSep
		}
		if size+add > p.opts.Overlap || p.cur[keep-1].block.level > 0 {
			break
		}
		size += add
		keep--
	}
	if keep == len(p.cur) {
		p.cur, p.size = p.cur[:0], 0
		return
	}
	p.cur = append([]piece(nil), p.cur[keep:]...)
	p.size = size
}

// text joins the current pieces and returns the span of their pages.
func (p *packer) text() (string, int, int) {
	var b strings.Builder
	first, last := p.cur[0].block.page, p.cur[0].block.page
	for i, pc := range p.cur {
		if i > 0 {
			b.WriteString(pc.sep)
		}
		b.WriteString(pc.text)
		first, last = min(first, pc.block.page), max(last, pc.block.page)
	}
	return b.String(), first, last
}

// cut cuts text that does not fit in a chunk into sentences
// (prose) or lines (code), each cut further into words and, for words
// longer than a chunk, into pieces of a chunk's size.
func (p *packer) cut(text string, kind blockKind) []string {
	var parts []string
	if kind == code {
		parts = strings.Split(text, "\n")
	} else {
		parts = sentences(text)
	}
	var out []string
	for _, s := range parts {
		if p.count(s) <= p.opts.Size {
			out = append(out, s)
			continue
		}
		out = append(out, p.cutWords(s)...)
	}
	return out
}

// cutWords packs the words of s into pieces of at most Size units; words
// longer than that are cut into runs of runes. Sizes are summed word by
// word (" word" is counted, as it is tokenized in running text), and each
// piece is then checked whole, so this stays linear.
func (p *packer) cutWords(s string) []string {
	var out, cur []string
	curN := 0
	emit := func() {
		for len(cur) > 0 {
			// The sum can undercount tokens at a join: give back words until the whole fits.
			k := len(cur)
			for k > 1 && p.count(strings.Join(cur[:k], " ")) > p.opts.Size {
				k--
			}
			out = append(out, strings.Join(cur[:k], " "))
			cur = cur[k:]
		}
		curN = 0
	}
	for _, w := range strings.Fields(s) {
		n := p.count(" " + w)
		if len(cur) > 0 && curN+n <= p.opts.Size {
			cur, curN = append(cur, w), curN+n
			continue
		}
		emit()
		for p.count(w) > p.opts.Size {
			// Longest prefix that fits, shrinking from the size in runes.
			r := []rune(w)
			k := min(len(r), p.opts.Size)
			for k > 1 && p.count(string(r[:k])) > p.opts.Size {
				k = k * 3 / 4
			}
			out = append(out, string(r[:k]))
			w = string(r[k:])
		}
		cur, curN = append(cur, w), p.count(w)
	}
	emit()
	return out
}

// abbreviations end in a full stop without ending a sentence.
var abbreviations = map[string]bool{
	"e.g.": true, "i.e.": true, "etc.": true, "vs.": true, "cf.": true, "fig.": true, "figs.": true,
	"mr.": true, "mrs.": true, "ms.": true, "dr.": true, "prof.": true, "no.": true, "vol.": true,
	"p.": true, "pp.": true, "sec.": true, "ch.": true, "eq.": true, "al.": true, "approx.": true,
}

// Sentences cuts prose into sentences the way chunks are cut (see
// sentences), for callers that quote a chunk a sentence at a time.
func Sentences(text string) []string { return sentences(text) }

// sentences cuts prose after ".", "!" or "?" (and closing quotes or
// brackets) followed by white space and an upper-case letter, a digit or
// an opening quote or bracket, unless the word before is a known
// abbreviation or a single letter (an initial). Joining the sentences with
// single spaces gives back the text with its white space runs collapsed.
func sentences(text string) []string {
	words := strings.Fields(text)
	var out []string
	start := 0
	for i := 0; i < len(words)-1; i++ {
		w := strings.TrimRight(words[i], `"'”’)]`)
		if w == "" || !strings.ContainsRune(".!?", rune(w[len(w)-1])) {
			continue
		}
		if abbreviations[strings.ToLower(w)] || utf8.RuneCountInString(w) == 2 && w[1] == '.' {
			continue
		}
		next, _ := utf8.DecodeRuneInString(words[i+1])
		if !unicode.IsUpper(next) && !unicode.IsDigit(next) && !strings.ContainsRune(`"'“‘([`, next) {
			continue
		}
		out = append(out, strings.Join(words[start:i+1], " "))
		start = i + 1
	}
	return append(out, strings.Join(words[start:], " "))
}
