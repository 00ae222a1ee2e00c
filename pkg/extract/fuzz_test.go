package extract

import (
	"archive/zip"
	"bytes"
	"os"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzHTML: any bytes give valid UTF-8 without script or style text, as a
// tree and streamed.
func FuzzHTML(f *testing.F) {
	f.Add([]byte(samplePage))
	f.Add([]byte("<table><tr><td><table><tr><td>x</td></tr></table></td></tr></table>"))
	f.Add([]byte(strings.Repeat("<ol><li>", 600)))
	f.Fuzz(func(t *testing.T, raw []byte) {
		got := htmlText(raw)
		if !utf8.ValidString(got) {
			t.Fatalf("invalid UTF-8: %q", got)
		}
		if streamed, err := streamHTML(bytes.NewReader(raw), int64(len(raw))+1); err != nil || !utf8.ValidString(streamed) {
			t.Fatalf("streamed: %v, %q", err, streamed)
		}
		if strings.Contains(got, "tracking") && !strings.Contains(string(raw), "tracking") {
			t.Fatalf("text out of nowhere")
		}
	})
}

// FuzzDOCX: any archive bytes give text or a coded error, never a panic,
// and never more text than the limit.
func FuzzDOCX(f *testing.F) {
	for _, name := range []string{"sample.docx", "deep.docx"} {
		b, err := os.ReadFile(testdata(name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	// A bare document.xml, zipped, lets the fuzzer work on the XML.
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	fw, _ := w.Create("word/document.xml")
	fw.Write([]byte(`<w:document xmlns:w="` + wNS + `"><w:body><w:tbl><w:tr><w:tc><w:p><w:r><w:t>a</w:t></w:r></w:p></w:tc></w:tr></w:tbl></w:body></w:document>`))
	w.Close()
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, raw []byte) {
		zr, err := zip.NewReader(bytes.NewReader(raw), int64(len(raw)))
		if err != nil {
			return
		}
		text, err := docxText(zr, 1<<20, 1<<16)
		if err != nil {
			errorCode(t, err)
			return
		}
		if len(text) > 1<<16+1<<10 || !utf8.ValidString(text) {
			t.Fatalf("text of %d bytes, valid UTF-8 %v", len(text), utf8.ValidString(text))
		}
	})
}

// FuzzDecodeText: decoding never fails and gives valid UTF-8; valid UTF-8
// without NULs or a BOM comes back unchanged.
func FuzzDecodeText(f *testing.F) {
	f.Add([]byte("Caf\xe9"))
	f.Add(utf16LE("Grüße"))
	f.Add([]byte("plain"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		got := decodeText(raw)
		if !utf8.ValidString(got) {
			t.Fatalf("decodeText(%q) = %q: invalid UTF-8", raw, got)
		}
		if utf8.Valid(raw) && bytes.IndexByte(raw, 0) < 0 && !bytes.HasPrefix(raw, []byte("\xEF\xBB\xBF")) && got != string(raw) {
			t.Fatalf("decodeText changed valid UTF-8 %q to %q", raw, got)
		}
	})
}

// FuzzReadPages: the reading of pdftotext's output (split at form feeds,
// normalised) counts pages right and yields clean text.
func FuzzReadPages(f *testing.F) {
	f.Add([]byte("page one\fpage two\f"), int64(100))
	f.Add([]byte("a\x00b\r\n\n\n\nc \t\f\f\xff"), int64(5))
	f.Fuzz(func(t *testing.T, out []byte, max int64) {
		if max <= 0 || max > 1<<20 {
			return
		}
		var pages []string
		n, err := readPages(bytes.NewReader(out), max, func(s string) error {
			pages = append(pages, normalize(s))
			return nil
		})
		if err != nil {
			return // a page longer than max
		}
		if want := bytes.Count(out, []byte("\f")); n != want || len(pages) != want {
			t.Fatalf("readPages = %d pages (%d texts); want %d", n, len(pages), want)
		}
		for _, p := range pages {
			if !utf8.ValidString(p) || strings.ContainsAny(p, "\x00\f") || p != strings.TrimRight(p, "\n") {
				t.Fatalf("normalize gave %q", p)
			}
		}
	})
}
