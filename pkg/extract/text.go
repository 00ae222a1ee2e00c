package extract

import (
	"bytes"
	"context"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gogs/chardet"
	"github.com/ragpipe/ragpipe/pkg/ragpipe"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/htmlindex"
	xunicode "golang.org/x/text/encoding/unicode"
	"golang.org/x/text/transform"
)

// extractText decodes UTF-8 (a BOM is dropped), UTF-16 with a BOM, or a
// legacy encoding (see decodeText), keeping the text as it is apart from
// line endings. Markdown comes out as it is, which is the form the chunker
// reads structure from.
func (e *Extractor) extractText(ctx context.Context, path string, _ bool) ([]ragpipe.Page, error) {
	raw, err := readLimited(ctx, path, e.limits.MaxTextBytes, "text")
	if err != nil {
		return nil, err
	}
	text := decodeText(raw)
	text = strings.ReplaceAll(text, "\x00", "")
	text = strings.ReplaceAll(text, "\r\n", "\n")
	text = strings.ReplaceAll(text, "\r", "\n")
	if strings.TrimSpace(text) == "" {
		return nil, ragpipe.Errorf(ragpipe.CodeNoText, "document has no text")
	}
	return []ragpipe.Page{{Number: 1, Text: text}}, nil
}

// decodeText returns b as UTF-8. A byte-order mark decides (UTF-8, UTF-16);
// else NUL bytes are dropped and valid UTF-8 is taken as it is; else the
// legacy encoding is guessed (see decodeLegacy); failing that, invalid
// bytes become U+FFFD.
func decodeText(b []byte) string {
	if bytes.HasPrefix(b, []byte{0xFF, 0xFE}) || bytes.HasPrefix(b, []byte{0xFE, 0xFF}) || bytes.HasPrefix(b, []byte("\xEF\xBB\xBF")) {
		// With a BOM present decoding cannot fail; invalid units become U+FFFD.
		dec, _, _ := transform.Bytes(xunicode.BOMOverride(xunicode.UTF8.NewDecoder()), b)
		return string(dec)
	}
	if bytes.IndexByte(b, 0) >= 0 {
		b = bytes.ReplaceAll(b, []byte{0}, nil)
	}
	if utf8.Valid(b) {
		return string(b)
	}
	if s, _, ok := decodeLegacy(b); ok {
		return s
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// legacyCandidates are the 8-bit encodings decodeLegacy considers, after
// the detector's own picks. Windows-1252 (a superset of Latin-1's printable
// characters) is by far the most common legacy encoding of text in
// western languages, so it is also the last resort.
var legacyCandidates = []string{"windows-1252"}

// decodeLegacy guesses the encoding of b, which is not valid UTF-8, with
// github.com/gogs/chardet (ICU's detector, ported to Go), trying its
// candidates of confidence 50 or more in order, then Windows-1252, and
// returns the first decoding that looks like text: no NULs, at most 2%
// control characters. On a few words the detector guesses wildly (it calls
// "Short \xe9" KOI8-R at 37), hence the threshold.
func decodeLegacy(b []byte) (text, charset string, ok bool) {
	var names []string
	if results, err := chardet.NewTextDetector().DetectAll(b); err == nil {
		for _, r := range results {
			if strings.HasPrefix(r.Charset, "UTF-") {
				continue // not valid UTF-8; UTF-16/32 without a BOM are not read
			}
			if r.Confidence < 50 {
				continue
			}
			names = append(names, r.Charset)
		}
	}
	names = append(names, legacyCandidates...)
	for _, name := range names {
		enc, err := htmlindex.Get(name)
		if err != nil {
			continue
		}
		if name, _ := htmlindex.Name(enc); name == "iso-8859-1" {
			enc = charmap.Windows1252
		}
		dec, err := enc.NewDecoder().Bytes(b)
		if err != nil || !looksLikeText(string(dec)) {
			continue
		}
		cs, _ := htmlindex.Name(enc)
		return string(dec), cs, true
	}
	return "", "", false
}

// looksLikeText reports whether s has no NUL and at most 2% control
// characters (other than tab, newline, carriage return, vertical tab, form
// feed) and U+FFFD replacement characters.
func looksLikeText(s string) bool {
	var runes, bad int
	for _, r := range s {
		runes++
		switch {
		case r == 0:
			return false
		case r == '\t', r == '\n', r == '\r', r == '\v', r == '\f':
		case r == utf8.RuneError, unicode.IsControl(r):
			bad++
		}
	}
	return runes > 0 && bad*50 <= runes
}
