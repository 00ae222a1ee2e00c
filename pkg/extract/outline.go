package extract

import (
	"bufio"
	"context"
	"html"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
	"golang.org/x/text/unicode/norm"
)

// Bounds on what is taken from a PDF's outline. Past maxOutlineItems the
// outline is ignored; items nested deeper than maxOutlineLevel are left out
// (Markdown headings stop at 6 too); titles are cut at maxTitleRunes, as the
// section path is stored with every chunk.
const (
	maxOutlineItems = 100_000
	maxOutlineLevel = 6
	maxTitleRunes   = 200
	// maxOutlineLine bounds one line of pdftohtml's output; a longer one
	// (of the converted page's text, in a hostile file) means no outline.
	maxOutlineLine = 1 << 20
	// maxHeadingLines is how many lines a heading's text may span on a page
	// ("Chapter 3", a blank line, "Results").
	maxHeadingLines = 3
)

// outlineItem is one entry of a PDF's outline: its nesting depth (from 1),
// its title and the page it points to (0 when it points to none).
type outlineItem struct {
	level int
	title string
	page  int
}

// outline reads the PDF's outline (bookmarks) with pdftohtml, which prints
// it, with each item's page resolved, after the XML of the pages it
// converts: one at least, here only the given page (a cheap one is best).
// An outline is optional: any failure gives no items. It runs under the
// same limits as pdftotext.
func (e *Extractor) outline(ctx context.Context, path string, page int) []outlineItem {
	p := strconv.Itoa(page)
	cmd := e.limitedCommand(ctx, e.pdftohtml, "-xml", "-i", "-nodrm", "-enc", "UTF-8", "-q", "-stdout",
		"-f", p, "-l", p, path)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil
	}
	if err := cmd.Start(); err != nil {
		return nil
	}
	items, readErr := readOutline(stdout, e.limits.MaxTextBytes)
	if readErr != nil {
		_ = cmd.Cancel() // stop a child still writing
	}
	if err := cmd.Wait(); err != nil || readErr != nil {
		return nil
	}
	return items
}

var outlineItemLine = regexp.MustCompile(`^<item(?: page="(\d+)")?>(.*)</item>$`)

// readOutline parses pdftohtml's XML output (at most max bytes) for its
// outline: nested <outline> elements of <item page="N">title</item>, one
// element per line, after the pages' XML. It returns no items and no error
// for a PDF without an outline.
func readOutline(r io.Reader, max int64) ([]outlineItem, error) {
	lr := &io.LimitedReader{R: r, N: max + 1}
	sc := bufio.NewScanner(lr)
	sc.Buffer(make([]byte, 0, 64<<10), maxOutlineLine)
	var items []outlineItem
	depth := 0
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "<outline>":
			depth++
		case depth == 0:
			// page XML before the outline
		case line == "</outline>":
			depth--
		default:
			m := outlineItemLine.FindStringSubmatch(line)
			if m == nil || depth > maxOutlineLevel {
				continue
			}
			page, _ := strconv.Atoi(m[1])
			title := strings.Join(strings.Fields(strings.ToValidUTF8(html.UnescapeString(m[2]), "")), " ")
			if title == "" {
				continue
			}
			if len(items) == maxOutlineItems {
				return nil, errTooMuchText
			}
			items = append(items, outlineItem{level: depth, title: title, page: page})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if lr.N <= 0 {
		return nil, errTooMuchText
	}
	return items, nil
}

// placeHeadings sets the Headings of pages (sorted by number, text
// normalised) from the outline items. An item's section starts at its
// title in the text of its page, where found (the last place on the page
// that leaves room for the items after it there, so a running head or a
// table of contents above the heading is passed over); otherwise at the top
// of the page, or right after the heading before it on the same page. An
// item pointing to a page without text starts its section at the top of
// the next page with text; one pointing to no page, where the next item
// that does starts (it is often a group of bookmarks without a target).
func placeHeadings(pages []ragpipe.Page, items []outlineItem) {
	type placed struct {
		outlineItem
		moved  bool          // from an earlier page without text
		before []outlineItem // items without a page just before it
	}
	byPage := make(map[int][]placed)
	var pageless []outlineItem
	for _, it := range items {
		i, ok := slices.BinarySearchFunc(pages, it.page, func(p ragpipe.Page, n int) int { return p.Number - n })
		if it.page < 1 || i == len(pages) {
			pageless = append(pageless, it)
			continue
		}
		byPage[i] = append(byPage[i], placed{it, !ok, pageless})
		pageless = nil
	}
	for i, list := range byPage {
		// Items moved from pages without text come first, by their page.
		slices.SortStableFunc(list, func(a, b placed) int {
			if a.moved != b.moved {
				if a.moved {
					return -1
				}
				return 1
			}
			if a.moved {
				return a.page - b.page
			}
			return 0
		})
		var own []outlineItem
		for _, p := range list {
			if !p.moved {
				own = append(own, p.outlineItem)
			}
		}
		spots := findHeadings(pages[i].Text, own)
		hs := make([]ragpipe.Heading, 0, len(list))
		for _, p := range list {
			h := ragpipe.Heading{Level: p.level, Title: cutTitle(p.title)}
			if !p.moved {
				h.Line, h.Lines = spots[0].line, spots[0].lines
				spots = spots[1:]
			}
			for _, b := range p.before {
				hs = append(hs, ragpipe.Heading{Level: b.level, Title: cutTitle(b.title), Line: h.Line})
			}
			hs = append(hs, h)
		}
		pages[i].Headings = hs
	}
}

// spot is where a heading's text is on a page: lines [line, line+lines).
type spot struct{ line, lines int }

// findHeadings places items (one page's, in outline order) on the lines of
// text; see placeHeadings. The spots it returns never decrease.
func findHeadings(text string, items []outlineItem) []spot {
	lines := strings.Split(text, "\n")
	keys := make([][]string, len(items))
	var all []string
	for j, it := range items {
		keys[j] = titleKeys(it.title)
		all = append(all, keys[j]...)
	}
	slices.Sort(all)
	windows := headingWindows(lines, slices.Compact(all))
	spots := make([]spot, len(items))
	found := make([]bool, len(items))
	bound := len(lines) // headings after this item start here or later
	for j := len(items) - 1; j >= 0; j-- {
		best, ok := spot{}, false
		for _, k := range keys[j] {
			if s, hit := lastWindow(windows[k], bound); hit && (!ok || later(s, best)) {
				best, ok = s, true
			}
		}
		if ok {
			spots[j], found[j], bound = best, true, best.line
		}
	}
	next := 0
	for j := range spots {
		if !found[j] {
			spots[j] = spot{line: next}
		}
		next = spots[j].line + spots[j].lines
	}
	return spots
}

// lastWindow returns the last of ws (sorted by line) that ends by bound;
// see later.
func lastWindow(ws []spot, bound int) (spot, bool) {
	best, ok := spot{}, false
	i, _ := slices.BinarySearchFunc(ws, bound, func(s spot, b int) int { return s.line - b })
	for i--; i >= 0 && (!ok || ws[i].line+maxHeadingLines >= best.line+best.lines); i-- {
		if ws[i].line+ws[i].lines <= bound && (!ok || later(ws[i], best)) {
			best, ok = ws[i], true
		}
	}
	return best, ok
}

// later tells whether a is a later place for a heading than b: it ends
// later, or as late and takes in more lines before ("Chapter 4" above
// "Results").
func later(a, b spot) bool {
	if ae, be := a.line+a.lines, b.line+b.lines; ae != be {
		return ae > be
	}
	return a.line < b.line
}

// headingWindows finds the runs of up to maxHeadingLines lines that start
// and end with a line holding a letter or digit and whose key, with or
// without a leading section number, is one of keys (sorted); it maps those
// keys to their runs, by line.
func headingWindows(lines []string, keys []string) map[string][]spot {
	startsKey := func(k string) bool {
		i, _ := slices.BinarySearch(keys, k)
		return i < len(keys) && strings.HasPrefix(keys[i], k)
	}
	lineKeys := make([]string, len(lines))
	for i, l := range lines {
		lineKeys[i] = alnumKey(l)
	}
	windows := make(map[string][]spot)
	for i, l := range lines {
		if lineKeys[i] == "" {
			continue
		}
		starts := []string{lineKeys[i]}
		if k := alnumKey(stripNumber(l + " ")); k != lineKeys[i] {
			starts = append(starts, k)
		}
		for _, k := range starts {
			for n := 1; n <= maxHeadingLines && i+n <= len(lines) && startsKey(k); n++ {
				if n > 1 {
					k += lineKeys[i+n-1]
				}
				if lineKeys[i+n-1] == "" {
					continue
				}
				wk := k + endMark(lines[i+n-1])
				if _, ok := slices.BinarySearch(keys, wk); ok {
					windows[wk] = append(windows[wk], spot{line: i, lines: n})
				}
			}
		}
	}
	return windows
}

// titleKeys are the keys a heading's text may match a title by: the
// title's, and the title's without its section number. A key is what
// counts in comparing a title with a heading as printed: letters and
// digits, and a final ".", ",", ";" or ":" (the end of a line of prose
// such as "results." is no heading "Results"). Case, spacing, other
// punctuation and hyphens at line breaks do not count.
func titleKeys(title string) []string {
	var keys []string
	for _, t := range []string{title, stripNumber(title)} {
		if k := alnumKey(t); k != "" && !slices.Contains(keys, k+endMark(t)) {
			keys = append(keys, k+endMark(t))
		}
	}
	return keys
}

// alnumKey reduces s to its letters and digits, lower case, after
// compatibility normalisation (ligatures such as "ﬁ" become "fi").
func alnumKey(s string) string {
	b := make([]byte, 0, len(s))
	if ascii(s) {
		for i := 0; i < len(s); i++ {
			switch c := s[i]; {
			case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
				b = append(b, c)
			case 'A' <= c && c <= 'Z':
				b = append(b, c+'a'-'A')
			}
		}
		return string(b)
	}
	for _, r := range norm.NFKC.String(s) {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			b = utf8.AppendRune(b, unicode.ToLower(r))
		}
	}
	return string(b)
}

func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func endMark(s string) string {
	s = strings.TrimRightFunc(s, unicode.IsSpace)
	if s != "" && strings.ContainsRune(".,;:", rune(s[len(s)-1])) {
		return s[len(s)-1:]
	}
	return ""
}

// sectionNumber is a leading section number: "3.2 ", "IV. ", "A) ",
// "Chapter 3 ", "Appendix B: ".
var sectionNumber = regexp.MustCompile(`^\s*(?:(?i:chapter|part|section|appendix|annex)\s+)?(?:\d+|[IVXLCDM]+|[A-Z])(?:\.\d+)*[.:)]?\s+`)

func stripNumber(s string) string {
	return s[len(sectionNumber.FindString(s)):]
}

func cutTitle(s string) string {
	if utf8.RuneCountInString(s) <= maxTitleRunes {
		return s
	}
	return string([]rune(s)[:maxTitleRunes-1]) + "…"
}
