package extract

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	readability "codeberg.org/readeck/go-readability/v2"
	"github.com/ragpipe/ragpipe/pkg/ragpipe"
	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
	"golang.org/x/net/html/charset"
)

// extractHTML returns the main text of an HTML page as Markdown: headings,
// paragraphs, list items, table rows and preformatted blocks in document
// order, without scripts, styles, navigation, headers, footers, asides and
// forms.
//
// The main content is the page's <main> (or role="main") element, else its
// only <article>, else what go-readability (a port of Mozilla's Readability,
// the engine of Firefox's reader view) picks, else the whole <body> less
// the boilerplate elements. Explicit markup comes first because
// Readability's scoring is tuned for news articles and can drop parts of a
// manual or a short page.
//
// Files larger than htmlTreeMax are streamed instead (see streamHTML).
func (e *Extractor) extractHTML(ctx context.Context, path string) ([]ragpipe.Page, error) {
	var text string
	if st, err := os.Stat(path); err == nil && st.Size() > htmlTreeMax {
		if text, err = e.streamHTMLFile(ctx, path); err != nil {
			return nil, err
		}
	} else {
		raw, err := readLimited(ctx, path, e.limits.MaxTextBytes, "HTML")
		if err != nil {
			return nil, err
		}
		text = htmlText(raw)
	}
	if strings.TrimSpace(text) == "" {
		return nil, ragpipe.Errorf(ragpipe.CodeNoText, "HTML document has no text")
	}
	return []ragpipe.Page{{Number: 1, Text: text}}, nil
}

// streamHTMLFile streams the HTML file at path through streamHTML, in the
// encoding its bytes or meta tag declare.
func (e *Extractor) streamHTMLFile(ctx context.Context, path string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("extract HTML: %w", err)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("extract HTML: %w", err)
	}
	defer f.Close()
	r, err := charset.NewReader(bufio.NewReaderSize(f, 64<<10), "text/html")
	if err != nil {
		return "", fmt.Errorf("extract HTML: %w", err)
	}
	return streamHTML(r, e.limits.MaxTextBytes)
}

// htmlText is extractHTML's work on the bytes of a page.
func htmlText(raw []byte) string {
	enc, _, _ := charset.DetermineEncoding(raw, "text/html")
	if dec, err := enc.NewDecoder().Bytes(raw); err == nil {
		raw = dec
	}
	doc, err := html.Parse(bytes.NewReader(raw))
	if err != nil {
		// x/net/html refuses trees nested deeper than 512 elements.
		text, _ := streamHTML(bytes.NewReader(raw), int64(len(raw))+1)
		return text
	}
	root := mainContent(doc)
	var r mdRenderer
	r.render(root, 0)
	return r.finish()
}

func mainContent(doc *html.Node) *html.Node {
	var mains, articles []*html.Node
	var body *html.Node
	walk(doc, func(n *html.Node) bool {
		if n.Type != html.ElementNode {
			return true
		}
		switch {
		case n.DataAtom == atom.Main || attr(n, "role") == "main":
			mains = append(mains, n)
		case n.DataAtom == atom.Article:
			articles = append(articles, n)
		case n.DataAtom == atom.Body:
			body = n
		}
		return !skipElement(n)
	})
	switch {
	case len(mains) == 1:
		return mains[0]
	case len(articles) == 1:
		return articles[0]
	}
	if body == nil {
		return doc
	}
	if len(mains) == 0 && len(articles) == 0 {
		// Readability rewrites the tree it is given: give it a copy.
		clone := cloneTree(doc, 0)
		if a, err := readability.FromDocument(clone, nil); err == nil && a.Node != nil {
			if len(strings.Fields(nodeText(a.Node))) >= 20 {
				return a.Node
			}
		}
	}
	return body
}

// maxDepth bounds recursion over hostile, deeply nested trees; deeper
// elements are read as inline text.
const maxDepth = 200

func cloneTree(n *html.Node, depth int) *html.Node {
	c := &html.Node{Type: n.Type, DataAtom: n.DataAtom, Data: n.Data, Namespace: n.Namespace, Attr: append([]html.Attribute(nil), n.Attr...)}
	if depth > maxDepth {
		c.Type, c.Data, c.DataAtom, c.Attr = html.TextNode, nodeText(n), 0, nil
		return c
	}
	for k := n.FirstChild; k != nil; k = k.NextSibling {
		c.AppendChild(cloneTree(k, depth+1))
	}
	return c
}

// walk visits n and its descendants in document order without recursion,
// entering an element's children only when visit returns true.
func walk(n *html.Node, visit func(*html.Node) bool) {
	stack := []*html.Node{n}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if !visit(n) {
			continue
		}
		for k := n.LastChild; k != nil; k = k.PrevSibling {
			stack = append(stack, k)
		}
	}
}

func nodeText(n *html.Node) string {
	var b strings.Builder
	walk(n, func(n *html.Node) bool {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
			b.WriteByte(' ')
		}
		return n.Type != html.ElementNode || !skipElement(n)
	})
	return b.String()
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return strings.ToLower(strings.TrimSpace(a.Val))
		}
	}
	return ""
}

func hasAttr(n *html.Node, key string) bool {
	for _, a := range n.Attr {
		if a.Key == key {
			return true
		}
	}
	return false
}

// skipElement reports whether an element holds no main text.
func skipElement(n *html.Node) bool {
	switch n.DataAtom {
	case atom.Script, atom.Style, atom.Noscript, atom.Template, atom.Head, atom.Nav,
		atom.Header, atom.Footer, atom.Aside, atom.Form, atom.Svg, atom.Math, atom.Iframe,
		atom.Object, atom.Embed, atom.Canvas, atom.Button, atom.Select, atom.Input,
		atom.Textarea, atom.Dialog, atom.Menu:
		return true
	}
	if n.Namespace == "svg" || n.Namespace == "math" {
		return true
	}
	return skippedRole(attr(n, "role")) || hasAttr(n, "hidden") || attr(n, "aria-hidden") == "true"
}

// skippedRole reports whether an element of ARIA role holds no main text.
func skippedRole(role string) bool {
	switch role {
	case "navigation", "banner", "contentinfo", "complementary", "search", "menu", "menubar", "dialog":
		return true
	}
	return false
}

// mdRenderer turns an HTML tree into Markdown blocks.
type mdRenderer struct {
	out    strings.Builder
	line   strings.Builder // inline text of the block being built
	prefix string          // written before the block: "## ", "- ", …
	lists  []int           // per open list: 0 for <ul>, else the next <ol> number
}

func (r *mdRenderer) inline(s string) {
	if s == "" {
		return
	}
	// Collapse white space the way a browser does.
	f := strings.Fields(s)
	if len(f) == 0 {
		if r.line.Len() > 0 {
			r.line.WriteByte(' ')
		}
		return
	}
	lead := s[0] == ' ' || s[0] == '\n' || s[0] == '\t' || s[0] == '\r'
	if lead && r.line.Len() > 0 {
		r.line.WriteByte(' ')
	}
	r.line.WriteString(strings.Join(f, " "))
	last := s[len(s)-1]
	if last == ' ' || last == '\n' || last == '\t' || last == '\r' {
		r.line.WriteByte(' ')
	}
}

// block ends the current block, if it has text, and sets the prefix of the
// next one.
func (r *mdRenderer) block(nextPrefix string) {
	text := strings.TrimSpace(strings.ReplaceAll(r.line.String(), "  ", " "))
	if text != "" {
		if r.out.Len() > 0 {
			r.out.WriteString("\n\n")
		}
		r.out.WriteString(r.prefix)
		r.out.WriteString(text)
	}
	r.line.Reset()
	r.prefix = nextPrefix
}

// listItem is the prefix of a list item in the innermost open list,
// indented by the lists around it: "- ", or the <ol>'s next number.
func (r *mdRenderer) listItem() string {
	indent, marker := "", "- "
	if k := len(r.lists); k > 0 {
		indent = strings.Repeat("  ", k-1)
		if r.lists[k-1] > 0 {
			marker = strconv.Itoa(r.lists[k-1]) + ". "
			r.lists[k-1]++
		}
	}
	return indent + marker
}

func (r *mdRenderer) raw(text string) {
	r.block("")
	if strings.TrimSpace(text) == "" {
		return
	}
	if r.out.Len() > 0 {
		r.out.WriteString("\n\n")
	}
	r.out.WriteString(text)
}

func (r *mdRenderer) finish() string {
	r.block("")
	return r.out.String()
}

func (r *mdRenderer) render(n *html.Node, depth int) {
	if depth > maxDepth {
		r.inline(nodeText(n))
		return
	}
	switch n.Type {
	case html.TextNode:
		r.inline(n.Data)
		return
	case html.ElementNode:
		if skipElement(n) {
			return
		}
	case html.DocumentNode:
	default:
		return
	}
	children := func() {
		for k := n.FirstChild; k != nil; k = k.NextSibling {
			r.render(k, depth+1)
		}
	}
	switch n.DataAtom {
	case atom.H1, atom.H2, atom.H3, atom.H4, atom.H5, atom.H6:
		r.block(strings.Repeat("#", headingLevel(n.DataAtom)) + " ")
		children()
		r.block("")
	case atom.Ul, atom.Ol:
		r.block("")
		next := 0
		if n.DataAtom == atom.Ol {
			next = 1
			if s, err := strconv.Atoi(attr(n, "start")); err == nil && s >= 0 && s < 1e9 {
				next = s
			}
		}
		r.lists = append(r.lists, next)
		children()
		r.lists = r.lists[:len(r.lists)-1]
		r.block("")
	case atom.Li:
		r.block(r.listItem())
		children()
		r.block("")
	case atom.Pre:
		r.raw("```\n" + strings.TrimRight(rawText(n), "\n") + "\n```")
	case atom.Tr:
		r.block("")
		var cells []string
		for k := n.FirstChild; k != nil; k = k.NextSibling {
			if k.DataAtom == atom.Td || k.DataAtom == atom.Th {
				var c mdRenderer
				c.render(k, depth+1)
				cells = append(cells, strings.Join(strings.Fields(c.finish()), " "))
			}
		}
		r.raw(strings.Join(cells, " | "))
	case atom.Br:
		r.line.WriteString("\n")
	case atom.Img:
		if alt := strings.TrimSpace(attr(n, "alt")); alt != "" {
			r.inline(" " + alt + " ")
		}
	default:
		if blockElements[n.DataAtom] {
			r.block("")
			children()
			r.block("")
			return
		}
		children()
	}
}

// headingLevel is 1 to 6 for <h1> to <h6>, else 0.
func headingLevel(a atom.Atom) int {
	switch a {
	case atom.H1, atom.H2, atom.H3, atom.H4, atom.H5, atom.H6:
		return int(a.String()[1] - '0')
	}
	return 0
}

// blockElements are the elements, besides headings, lists, <pre> and
// table rows, that start and end a block of text.
var blockElements = map[atom.Atom]bool{
	atom.P: true, atom.Div: true, atom.Section: true, atom.Article: true, atom.Main: true, atom.Blockquote: true,
	atom.Figure: true, atom.Figcaption: true, atom.Dl: true, atom.Dt: true, atom.Dd: true, atom.Address: true,
	atom.Table: true, atom.Caption: true, atom.Hr: true, atom.Details: true, atom.Summary: true, atom.Body: true,
	atom.Center: true,
}

// rawText is the text of n with its white space kept, for <pre>.
func rawText(n *html.Node) string {
	var b strings.Builder
	walk(n, func(n *html.Node) bool {
		switch {
		case n.Type == html.TextNode:
			b.WriteString(n.Data)
		case n.DataAtom == atom.Br:
			b.WriteByte('\n')
		}
		return true
	})
	return b.String()
}
