package extract

import (
	"errors"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// htmlTreeMax is the largest HTML file read as a tree (and offered to
// Readability). A tree costs some 60 times the page's size in memory (a
// 6 MB page of short paragraphs took 388 MiB), so larger files, which are
// exports and manuals rather than articles, are streamed by streamHTML,
// whose memory is its output.
const htmlTreeMax = 512 << 10

// maxOpen bounds the stack of open elements streamHTML keeps; deeper
// elements count as inline.
const maxOpen = 512

// openElement is an element streamHTML has seen start and not yet end.
type openElement struct {
	a    atom.Atom
	skip bool // it or an element around it holds no main text
}

// streamRenderer renders a token stream the way mdRenderer renders a
// tree: headings, list items, preformatted blocks and table rows become
// Markdown blocks, and the elements skipElement names are left out.
type streamRenderer struct {
	mdRenderer
	open  []openElement
	pre   *strings.Builder // the text of the open <pre>, kept as it is
	cells []string         // the cells of the open table row
	cell  *mdRenderer      // the open cell
}

// streamHTML is the text of the HTML page read from r, token by token in
// one pass, as Markdown like htmlText's, without the choice of main
// content: the whole page less the boilerplate elements. Past max bytes of
// text it fails with CodeLimitExceeded.
func streamHTML(r io.Reader, max int64) (string, error) {
	z := html.NewTokenizer(r)
	z.SetMaxBuf(1 << 20) // no single token (a text run, a tag) past 1 MiB
	var s streamRenderer
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			if err := z.Err(); !errors.Is(err, io.EOF) && !errors.Is(err, html.ErrBufferExceeded) {
				return "", err
			}
			s.endRow()
			text := s.finish()
			if !utf8.ValidString(text) {
				// Bytes the declared encoding does not decode pass through the tokenizer.
				text = strings.ToValidUTF8(text, "\uFFFD")
			}
			return text, nil
		case html.TextToken:
			s.text(string(z.Text()))
		case html.StartTagToken, html.SelfClosingTagToken:
			name, hasAttr := z.TagName()
			a := atom.Lookup(name)
			skip, olStart := false, 1
			if hasAttr {
				for {
					k, v, more := z.TagAttr()
					switch string(k) {
					case "hidden":
						skip = true
					case "aria-hidden":
						skip = skip || string(v) == "true"
					case "role":
						skip = skip || skippedRole(string(v))
					case "start":
						if n, err := strconv.Atoi(string(v)); err == nil && a == atom.Ol && n >= 0 && n < 1e9 {
							olStart = n
						}
					case "alt":
						if a == atom.Img && !s.skipping() {
							s.text(" " + strings.TrimSpace(string(v)) + " ")
						}
					}
					if !more {
						break
					}
				}
			}
			skip = skip || skipElement(&html.Node{Type: html.ElementNode, DataAtom: a})
			if tt == html.StartTagToken && !voidElement(a) {
				s.start(a, skip, olStart)
			} else if a == atom.Br {
				s.lineBreak()
			}
		case html.EndTagToken:
			name, _ := z.TagName()
			s.end(atom.Lookup(name))
		}
		if int64(s.out.Len()) > max {
			return "", ragpipe.Errorf(ragpipe.CodeLimitExceeded, "HTML text is longer than %d bytes", max)
		}
	}
}

// voidElement reports whether a never has content or an end tag.
func voidElement(a atom.Atom) bool {
	switch a {
	case atom.Area, atom.Base, atom.Br, atom.Col, atom.Embed, atom.Hr, atom.Img, atom.Input,
		atom.Link, atom.Meta, atom.Param, atom.Source, atom.Track, atom.Wbr:
		return true
	}
	return false
}

func (s *streamRenderer) skipping() bool {
	return len(s.open) > 0 && s.open[len(s.open)-1].skip
}

func (s *streamRenderer) text(t string) {
	switch {
	case s.skipping():
	case s.pre != nil:
		s.pre.WriteString(t)
	case s.cell != nil:
		s.cell.inline(t)
	default:
		s.inline(t)
	}
}

// lineBreak is a <br>: a new line inside the block, as mdRenderer writes it.
func (s *streamRenderer) lineBreak() {
	switch {
	case s.skipping():
	case s.pre != nil:
		s.pre.WriteByte('\n')
	case s.cell != nil:
		s.cell.line.WriteString("\n")
	default:
		s.line.WriteString("\n")
	}
}

func (s *streamRenderer) start(a atom.Atom, skip bool, olStart int) {
	if len(s.open) >= maxOpen {
		return
	}
	skip = skip || s.skipping()
	s.open = append(s.open, openElement{a: a, skip: skip})
	if skip || s.pre != nil {
		return
	}
	switch a {
	case atom.H1, atom.H2, atom.H3, atom.H4, atom.H5, atom.H6:
		s.block(strings.Repeat("#", headingLevel(a)) + " ")
	case atom.Ul:
		s.block("")
		s.lists = append(s.lists, 0)
	case atom.Ol:
		s.block("")
		s.lists = append(s.lists, olStart)
	case atom.Li:
		s.block(s.listItem())
	case atom.Pre:
		s.endRow()
		s.block("")
		s.pre = &strings.Builder{}
	case atom.Tr:
		s.endRow()
		s.block("")
		s.cells = []string{}
	case atom.Td, atom.Th:
		if s.cells != nil {
			s.endCell()
			s.cell = &mdRenderer{}
		}
	default:
		if blockElements[a] && s.cell == nil {
			s.block("")
		}
	}
}

// end closes the innermost open a and whatever is open inside it; an end
// tag of an element not open is ignored, as browsers do.
func (s *streamRenderer) end(a atom.Atom) {
	k := len(s.open) - 1
	for k >= 0 && s.open[k].a != a {
		k--
	}
	if k < 0 {
		return
	}
	for len(s.open) > k {
		top := s.open[len(s.open)-1]
		s.open = s.open[:len(s.open)-1]
		if !top.skip {
			s.close(top.a)
		}
	}
}

func (s *streamRenderer) close(a atom.Atom) {
	if s.pre != nil {
		if a == atom.Pre {
			s.raw("```\n" + strings.TrimRight(s.pre.String(), "\n") + "\n```")
			s.pre = nil
		}
		return
	}
	switch a {
	case atom.Ul, atom.Ol:
		if len(s.lists) > 0 {
			s.lists = s.lists[:len(s.lists)-1]
		}
		s.block("")
	case atom.Td, atom.Th:
		s.endCell()
	case atom.Tr, atom.Table:
		s.endRow()
	default:
		if (blockElements[a] || a == atom.Li || headingLevel(a) > 0) && s.cell == nil {
			s.block("")
		}
	}
}

func (s *streamRenderer) endCell() {
	if s.cell != nil {
		s.cells = append(s.cells, strings.Join(strings.Fields(s.cell.finish()), " "))
		s.cell = nil
	}
}

func (s *streamRenderer) endRow() {
	if s.cells == nil {
		return
	}
	s.endCell()
	s.raw(strings.Join(s.cells, " | "))
	s.cells = nil
}
