package extract

import (
	"bytes"
	"net/http"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
	xunicode "golang.org/x/text/encoding/unicode"
)

// Format is a document format ragpipe can extract text from.
type Format string

// The supported formats.
const (
	PDF      Format = "pdf"
	Text     Format = "text"
	Markdown Format = "markdown"
	HTML     Format = "html"
	DOCX     Format = "docx"
)

// Markdown reports whether text extracted from format f marks its structure
// the Markdown way (ATX headings, "- " list items, fenced code), which is
// what chunk.Options.Markdown wants to know.
func (f Format) Markdown() bool {
	return f == Markdown || f == HTML || f == DOCX
}

// SniffLen is how many leading bytes of a document Sniff wants to see.
// Fewer are fine for shorter documents; more are ignored.
const SniffLen = 8192

// pdfMagicWindow is how far into the content the PDF header may start.
// Readers (poppler among them) accept junk before "%PDF-" within the first KiB.
const pdfMagicWindow = 1024

var pdfHeader = regexp.MustCompile(`%PDF-[0-9]`)

const supportedList = "supported: PDF, plain text, Markdown, HTML, DOCX"

// Sniff tells the format of a document from its first bytes (up to SniffLen)
// and never from a file name or a client's content type.
//
//   - PDF: "%PDF-" and a version digit within the first 1024 bytes (PDF
//     readers accept junk before the header).
//   - DOCX: a ZIP archive whose first entries include a file under "word/"
//     (Word, LibreOffice and most libraries write [Content_Types].xml,
//     _rels/ and word/ first). Extract then requires word/document.xml.
//   - Text: valid UTF-8 (a rune cut at the end of head is tolerated),
//     UTF-16 with a byte-order mark, or a legacy 8-bit encoding that the
//     detector recognises; no NUL bytes; at most 2% of the characters are
//     control characters other than tab, newline, carriage return, vertical
//     tab and form feed. Text that is XML, RTF or PostScript is refused:
//     indexing its markup would be useless.
//   - HTML: text that net/http.DetectContentType calls text/html (it starts
//     with a doctype, a comment or a common HTML tag).
//   - Markdown: text with clear Markdown structure, which here means a fenced
//     code block (opening and closing fence); or a heading (ATX "# " or
//     setext) or a table, together with any other kind of Markdown syntax
//     (fence, list, block quote, link [x](y) or reference definition); or a
//     list together with a link. One kind alone is not enough, since "# "
//     starts comments in scripts and config files, and text starting with a
//     shebang "#!" is never Markdown. The heuristic can still call a YAML or
//     shell file with "# " comments and "- " lists Markdown; that is harmless,
//     as both formats are extracted alike.
//
// Anything else, including empty content, gives a *ragpipe.Error with code
// ragpipe.EUNSUPPORTED and a message naming what the content looks like when
// that is cheap to tell.
func Sniff(head []byte) (Format, error) {
	if len(head) > SniffLen {
		head = head[:SniffLen]
	}
	if len(head) == 0 {
		return "", unsupported("content is empty")
	}
	if pdfHeader.Match(head[:min(len(head), pdfMagicWindow)]) {
		return PDF, nil
	}
	if isDOCX(head) {
		return DOCX, nil
	}
	text, ok := decodeHead(head)
	if !ok && !utf8.Valid(head) && bytes.IndexByte(head, 0) < 0 && describeBinary(head) == binaryOrLegacy {
		text, _, ok = decodeLegacy(head)
	}
	if !ok {
		return "", unsupported("content looks like " + describeBinary(head))
	}
	if isMarkdown(text) {
		return Markdown, nil
	}
	if what := markupKind(text); what == htmlKind {
		return HTML, nil
	} else if what != "" {
		return "", unsupported("content looks like " + what)
	}
	return Text, nil
}

func unsupported(what string) *ragpipe.Error {
	return ragpipe.Errorf(ragpipe.EUNSUPPORTED, "%s; %s", what, supportedList)
}

// decodeHead returns head as UTF-8 text if it passes the text test.
func decodeHead(head []byte) (string, bool) {
	if len(head) >= 2 && (head[0] == 0xFF && head[1] == 0xFE || head[0] == 0xFE && head[1] == 0xFF) {
		head = head[:len(head)&^1]
		if len(head) >= 4 {
			// Drop a high surrogate whose pair was cut off at the end.
			last := uint16(head[len(head)-2])<<8 | uint16(head[len(head)-1])
			if head[0] == 0xFF {
				last = uint16(head[len(head)-1])<<8 | uint16(head[len(head)-2])
			}
			if last >= 0xD800 && last < 0xDC00 {
				head = head[:len(head)-2]
			}
		}
		// ExpectBOM with a BOM present cannot fail; invalid units become U+FFFD.
		dec, err := xunicode.UTF16(xunicode.LittleEndian, xunicode.ExpectBOM).NewDecoder().Bytes(head)
		if err != nil {
			return "", false
		}
		head = dec
	} else {
		head = bytes.TrimPrefix(head, []byte("\xEF\xBB\xBF"))
		// Tolerate one rune cut off at the end of head.
		for i := 1; i <= utf8.UTFMax-1 && i <= len(head); i++ {
			if utf8.RuneStart(head[len(head)-i]) {
				if !utf8.FullRune(head[len(head)-i:]) {
					head = head[:len(head)-i]
				}
				break
			}
		}
		if !utf8.Valid(head) {
			return "", false
		}
	}
	var runes, bad int
	for _, r := range string(head) {
		runes++
		switch {
		case r == 0:
			return "", false
		case r == '\t', r == '\n', r == '\r', r == '\v', r == '\f':
		case r == utf8.RuneError, unicode.IsControl(r):
			bad++
		}
	}
	if bad*50 > runes {
		return "", false
	}
	return string(head), true
}

const htmlKind = "an HTML document"

// isDOCX reports whether head starts a ZIP archive with an entry under
// word/ among the local file headers head shows. Headers are looked for by
// signature rather than walked, since an entry's size may come only after
// its data (in a data descriptor).
func isDOCX(head []byte) bool {
	sig := []byte("PK\x03\x04")
	if !bytes.HasPrefix(head, sig) {
		return false
	}
	for off := 0; ; {
		i := bytes.Index(head[off:], sig)
		if i < 0 {
			return false
		}
		off += i
		if off+30 > len(head) {
			return false
		}
		nameLen := int(head[off+26]) | int(head[off+27])<<8
		if name := head[off+30 : min(off+30+nameLen, len(head))]; bytes.HasPrefix(name, []byte("word/")) {
			return true
		}
		off += len(sig)
	}
}

// markupKind names text formats that are not plain text to a reader, or "".
func markupKind(text string) string {
	t := strings.TrimLeft(text, " \t\r\n")
	switch {
	case strings.HasPrefix(t, `{\rtf`):
		return "an RTF document"
	case strings.HasPrefix(t, "%!PS"):
		return "a PostScript document"
	}
	switch ct := http.DetectContentType([]byte(t)); {
	case strings.HasPrefix(ct, "text/html"):
		return htmlKind
	case strings.HasPrefix(ct, "text/xml"):
		if strings.Contains(t[:min(len(t), 1024)], "<svg") {
			return "an SVG image"
		}
		return "an XML document"
	}
	return ""
}

var (
	mdHeading = regexp.MustCompile(`^ {0,3}#{1,6}[ \t]+\S`)
	mdSetext  = regexp.MustCompile(`^ {0,3}(=+|-+)[ \t]*$`)
	mdFence   = regexp.MustCompile("^ {0,3}(```|~~~)")
	mdList    = regexp.MustCompile(`^ {0,3}([-*+]|\d{1,9}[.)])[ \t]+\S`)
	mdQuote   = regexp.MustCompile(`^ {0,3}>[ \t]?\S`)
	mdTable   = regexp.MustCompile(`^ {0,3}\|?[ \t]*:?-{3,}:?[ \t]*\|`)
	mdRefDef  = regexp.MustCompile(`^ {0,3}\[[^\]]+\]:[ \t]*\S`)
	mdLink    = regexp.MustCompile(`!?\[[^\]\n]+\]\([^)\s]+[^)\n]*\)`)
)

// isMarkdown reports whether text shows clear Markdown structure, by the
// rule in Sniff's documentation.
func isMarkdown(text string) bool {
	if strings.HasPrefix(text, "#!") {
		return false
	}
	var fences int
	var heading, table, list, quote, link bool
	prevText := false
	for line := range strings.Lines(text) {
		line = strings.TrimRight(line, "\r\n")
		switch {
		case mdFence.MatchString(line):
			fences++
		case mdHeading.MatchString(line):
			heading = true
		case prevText && mdSetext.MatchString(line):
			heading = true
		case mdTable.MatchString(line):
			table = true
		case mdList.MatchString(line):
			list = true
		case mdQuote.MatchString(line):
			quote = true
		case mdRefDef.MatchString(line):
			link = true
		}
		if mdLink.MatchString(line) {
			link = true
		}
		prevText = strings.TrimSpace(line) != "" && !mdList.MatchString(line)
	}
	others := 0
	for _, b := range []bool{fences > 0, list, quote, link} {
		if b {
			others++
		}
	}
	switch {
	case fences >= 2:
		return true
	case heading && (table || others > 0), table && others > 0:
		return true
	default:
		return list && link
	}
}

// binarySignatures name common non-text formats by their leading bytes,
// for formats net/http.DetectContentType does not know or names too vaguely.
var binarySignatures = []struct {
	prefix string
	name   string
}{
	{"\x7fELF", "an ELF executable"},
	{"MZ", "a Windows executable"},
	{"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1", "a legacy Microsoft Office document"},
	{"\xFD7zXZ\x00", "an xz archive"},
	{"BZh", "a bzip2 archive"},
	{"7z\xBC\xAF\x27\x1C", "a 7-Zip archive"},
	{"SQLite format 3\x00", "an SQLite database"},
	{"II*\x00", "a TIFF image"},
	{"MM\x00*", "a TIFF image"},
}

// zipKinds name ZIP-based document formats by a path or mimetype found near
// the start of the archive.
var zipKinds = []struct {
	marker string
	name   string
}{
	{"application/epub+zip", "an EPUB e-book"},
	{"application/vnd.oasis.opendocument", "an OpenDocument file"},
	{"word/", "a Word (DOCX) document"},
	{"xl/", "an Excel (XLSX) workbook"},
	{"ppt/", "a PowerPoint (PPTX) presentation"},
}

// mimeNames turns the MIME types DetectContentType returns into words.
var mimeNames = map[string]string{
	"image/png":                    "a PNG image",
	"image/jpeg":                   "a JPEG image",
	"image/gif":                    "a GIF image",
	"image/webp":                   "a WebP image",
	"image/bmp":                    "a BMP image",
	"image/x-icon":                 "an icon image",
	"application/zip":              "a ZIP archive",
	"application/x-gzip":           "a gzip archive",
	"application/x-rar-compressed": "a RAR archive",
	"application/wasm":             "a WebAssembly module",
	"audio/mpeg":                   "an MP3 audio file",
	"audio/wave":                   "a WAV audio file",
	"application/ogg":              "an Ogg media file",
	"video/mp4":                    "an MP4 video",
	"video/webm":                   "a WebM video",
	"video/avi":                    "an AVI video",
	"font/ttf":                     "a font file",
	"font/otf":                     "a font file",
	"font/woff":                    "a font file",
	"font/woff2":                   "a font file",
}

const binaryOrLegacy = "binary data or text in an unsupported encoding"

// describeBinary names what non-text content looks like.
func describeBinary(head []byte) string {
	for _, s := range binarySignatures {
		if bytes.HasPrefix(head, []byte(s.prefix)) {
			return s.name
		}
	}
	ct := http.DetectContentType(head)
	if ct == "application/zip" {
		for _, k := range zipKinds {
			if bytes.Contains(head, []byte(k.marker)) {
				return k.name
			}
		}
	}
	if name, ok := mimeNames[ct]; ok {
		return name
	}
	if ct != "application/octet-stream" && !strings.HasPrefix(ct, "text/") {
		return ct + " content"
	}
	if utf8.Valid(head) || bytes.IndexByte(head, 0) >= 0 {
		return "binary data"
	}
	return binaryOrLegacy
}
