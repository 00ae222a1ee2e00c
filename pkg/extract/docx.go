package extract

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// errInflated fails reads past Limits.MaxInflatedBytes.
var errInflated = errors.New("archive inflates past the limit")

// maxXMLToken is the longest run of XML text or tag encoding/xml is let
// read: it holds a token whole, so 100 MB of blanks in a 98 KB archive
// would cost 100 MB of memory at once. Word splits text into runs far
// shorter than this.
const maxXMLToken = 1 << 20

// errTokenTooLong fails reads of a run longer than maxXMLToken.
var errTokenTooLong = errors.New("XML text run or tag too long")

// extractDOCX returns the text of a Word document's body as Markdown:
// paragraphs, headings (by paragraph style), list items (paragraphs with
// numbering) and table rows (cells joined by " | "), in reading order.
// Headers, footers, footnotes, comments and deleted revisions are left out.
//
// No maintained Go library reads DOCX text with structure and is small
// (unidoc is commercial, others are unmaintained or shell out to
// LibreOffice), and WordprocessingML's body is simple to stream with
// encoding/xml, so this is done here, with the archive's inflated size
// capped against zip bombs and XML nesting capped against stack abuse.
func (e *Extractor) extractDOCX(ctx context.Context, path string) ([]ragpipe.Page, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("extract docx: %w", err)
	}
	zr, err := zip.OpenReader(path)
	if err != nil {
		return nil, ragpipe.Wrap(err, ragpipe.CodeInvalidContent, "DOCX file is not a readable ZIP archive")
	}
	defer zr.Close()
	text, err := docxText(&zr.Reader, e.limits.MaxInflatedBytes, e.limits.MaxTextBytes)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(text) == "" {
		return nil, ragpipe.Errorf(ragpipe.CodeNoText, "DOCX document has no text")
	}
	return []ragpipe.Page{{Number: 1, Text: text}}, nil
}

// docxText reads word/document.xml (and word/styles.xml for heading
// styles) from zr, inflating at most maxInflated bytes in all.
func docxText(zr *zip.Reader, maxInflated, maxText int64) (string, error) {
	budget := &inflateBudget{left: maxInflated}
	var doc, styles *zip.File
	for _, f := range zr.File {
		switch f.Name {
		case "word/document.xml":
			doc = f
		case "word/styles.xml":
			styles = f
		}
	}
	if doc == nil {
		return "", ragpipe.Errorf(ragpipe.CodeInvalidContent, "ZIP archive has no word/document.xml: not a DOCX document")
	}
	headings := map[string]int{}
	if styles != nil {
		if err := budget.read(styles, func(r io.Reader) error { return docxStyles(r, headings) }); err != nil {
			if errors.Is(err, errInflated) {
				return "", budget.failure()
			}
			// Without styles, headings fall back on style IDs.
		}
	}
	var text string
	err := budget.read(doc, func(r io.Reader) error {
		var err error
		text, err = docxBody(r, headings, maxText)
		return err
	})
	switch {
	case errors.Is(err, errInflated):
		return "", budget.failure()
	case errors.Is(err, errTooMuchText):
		return "", ragpipe.Errorf(ragpipe.CodeLimitExceeded, "DOCX text is larger than %d bytes", maxText)
	case errors.Is(err, errTokenTooLong):
		return "", ragpipe.Errorf(ragpipe.CodeLimitExceeded, "DOCX has a text run or tag longer than %d bytes", maxXMLToken)
	case errors.Is(err, errTooDeep):
		return "", ragpipe.Wrap(err, ragpipe.CodeInvalidContent, "DOCX document is nested too deeply")
	case err != nil:
		return "", ragpipe.Wrap(err, ragpipe.CodeInvalidContent, "DOCX document is damaged")
	}
	return text, nil
}

// inflateBudget counts bytes inflated from an archive against a limit,
// whatever sizes the archive's headers claim.
type inflateBudget struct{ left int64 }

func (b *inflateBudget) failure() error {
	return ragpipe.Errorf(ragpipe.CodeLimitExceeded, "DOCX archive inflates past the limit (a zip bomb?)")
}

func (b *inflateBudget) read(f *zip.File, use func(io.Reader) error) error {
	if f.UncompressedSize64 > uint64(b.left) {
		return errInflated
	}
	rc, err := f.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	return use(&budgetReader{r: rc, b: b})
}

// budgetReader counts what it reads against its budget, and fails a run
// longer than maxXMLToken between the '<' and '>' that delimit tags.
type budgetReader struct {
	r   io.Reader
	b   *inflateBudget
	run int // bytes since the last '<' or '>'
}

func (r *budgetReader) Read(p []byte) (int, error) {
	if r.b.left <= 0 {
		return 0, errInflated
	}
	if int64(len(p)) > r.b.left {
		p = p[:r.b.left+1] // one more to notice the excess
	}
	n, err := r.r.Read(p)
	r.b.left -= int64(n)
	if r.b.left < 0 {
		return n, errInflated
	}
	read := p[:n]
	if first := bytes.IndexAny(read, "<>"); first < 0 {
		r.run += n
	} else {
		r.run += first
		if r.run <= maxXMLToken {
			r.run = n - 1 - bytes.LastIndexAny(read, "<>")
		}
	}
	if r.run > maxXMLToken {
		return n, errTokenTooLong
	}
	return n, err
}

// WordprocessingML's main namespace.
const wNS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"

var headingStyleID = regexp.MustCompile(`^(?i)heading ?([1-9])$`)

// docxStyles maps paragraph style IDs to heading levels: styles named
// "heading N" (Word's and LibreOffice's built-ins, whatever their ID in the
// user's language) or "Title" (level 1).
func docxStyles(r io.Reader, headings map[string]int) error {
	d := xml.NewDecoder(r)
	var id string
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		se, ok := tok.(xml.StartElement)
		if !ok || se.Name.Space != wNS {
			continue
		}
		switch se.Name.Local {
		case "style":
			id = wAttr(se, "styleId")
		case "name":
			name := strings.ToLower(wAttr(se, "val"))
			if m := headingStyleID.FindStringSubmatch(name); m != nil {
				headings[id] = int(m[1][0] - '0')
			} else if name == "title" {
				headings[id] = 1
			}
		}
	}
}

func wAttr(se xml.StartElement, local string) string {
	for _, a := range se.Attr {
		if a.Name.Local == local && (a.Name.Space == wNS || a.Name.Space == "") {
			return a.Value
		}
	}
	return ""
}

var errTooDeep = errors.New("XML nested too deeply")

// maxXMLDepth bounds element nesting in document.xml; real documents stay
// far below (a table in a table in a table is about 20).
const maxXMLDepth = 256

// docxBody streams document.xml into Markdown.
func docxBody(r io.Reader, headings map[string]int, maxText int64) (string, error) {
	d := xml.NewDecoder(r)
	var (
		out   strings.Builder
		para  strings.Builder // text of the current paragraph
		depth int
		// Paragraph properties.
		style   string
		listLvl = -1
		outline = -1
		// Tables: one row of cells per open table.
		rows   [][]string
		skip   int // depth of an element whose text is left out, or 0
		inText bool
	)
	emit := func(s string) error {
		if s == "" {
			return nil
		}
		if out.Len() > 0 {
			out.WriteString("\n\n")
		}
		out.WriteString(s)
		if int64(out.Len()) > maxText {
			return errTooMuchText
		}
		return nil
	}
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth > maxXMLDepth {
				return "", errTooDeep
			}
			if skip > 0 || t.Name.Space != wNS {
				continue
			}
			switch t.Name.Local {
			case "del", "instrText", "delText", "footnoteReference", "commentReference":
				skip = depth
			case "p":
				para.Reset()
				style, listLvl, outline = "", -1, -1
			case "pStyle":
				style = wAttr(t, "val")
			case "ilvl":
				if n, err := strconv.Atoi(wAttr(t, "val")); err == nil && n >= 0 && n < 10 {
					listLvl = n
				}
			case "numPr":
				if listLvl < 0 {
					listLvl = 0
				}
			case "outlineLvl":
				if n, err := strconv.Atoi(wAttr(t, "val")); err == nil && n >= 0 && n < 9 {
					outline = n
				}
			case "t":
				inText = true
			case "tab":
				para.WriteByte('\t')
			case "br", "cr":
				para.WriteByte('\n')
			case "tbl":
				rows = append(rows, nil)
			case "tr":
				if len(rows) > 0 {
					rows[len(rows)-1] = rows[len(rows)-1][:0]
				}
			}
		case xml.EndElement:
			depth--
			if skip > 0 {
				if depth < skip {
					skip = 0
				}
				continue
			}
			if t.Name.Space != wNS {
				continue
			}
			switch t.Name.Local {
			case "t":
				inText = false
			case "p":
				text := strings.TrimSpace(para.String())
				para.Reset()
				if text == "" {
					continue
				}
				if len(rows) > 0 { // a paragraph in a table cell
					cell := &rows[len(rows)-1]
					*cell = append(*cell, "")
					// Cells collect their paragraphs; "tc" closes the cell.
					(*cell)[len(*cell)-1] = text
					continue
				}
				level := headings[style]
				if level == 0 {
					if m := headingStyleID.FindStringSubmatch(style); m != nil {
						level = int(m[1][0] - '0')
					} else if outline >= 0 {
						level = outline + 1
					}
				}
				switch {
				case level > 0:
					text = strings.Repeat("#", level) + " " + strings.Join(strings.Fields(text), " ")
				case listLvl >= 0:
					text = strings.Repeat("  ", listLvl) + "- " + text
				}
				if err := emit(text); err != nil {
					return "", err
				}
			case "tc":
				// Merge the paragraphs the cell collected into one cell.
				if n := len(rows); n > 0 {
					rows[n-1] = mergeCell(rows[n-1])
				}
			case "tr":
				if n := len(rows); n > 0 {
					cells := rows[n-1]
					rows[n-1] = nil
					line := strings.Join(trimCells(cells), " | ")
					if n > 1 { // nested table: its rows become text of the outer cell
						rows[n-2] = append(rows[n-2], line)
						continue
					}
					if err := emit(line); err != nil {
						return "", err
					}
				}
			case "tbl":
				if n := len(rows); n > 0 {
					rows = rows[:n-1]
				}
			}
		case xml.CharData:
			if inText && skip == 0 {
				para.Write(t)
				if int64(para.Len()) > maxText {
					return "", errTooMuchText
				}
			}
		}
	}
	return out.String(), nil
}

// mergeCell is called at the end of a table cell: the strings added since
// the cell began (its paragraphs) become one cell. Cells are delimited by
// a "\x00" mark that mergeCell itself leaves behind.
func mergeCell(cells []string) []string {
	start := len(cells)
	for start > 0 && !strings.HasPrefix(cells[start-1], "\x00") {
		start--
	}
	merged := "\x00" + strings.Join(cells[start:], " ")
	return append(cells[:start], merged)
}

func trimCells(cells []string) []string {
	out := make([]string, len(cells))
	for i, c := range cells {
		out[i] = strings.Join(strings.Fields(strings.TrimPrefix(c, "\x00")), " ")
	}
	return out
}
