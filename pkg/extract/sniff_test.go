package extract

import (
	"archive/zip"
	"bytes"
	"errors"
	"golang.org/x/text/encoding/charmap"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// utf16LE encodes s as UTF-16LE with a byte-order mark (BMP runes only).
func utf16LE(s string) []byte {
	b := []byte{0xFF, 0xFE}
	for _, r := range s {
		b = append(b, byte(r), byte(r>>8))
	}
	return b
}

func utf16BE(s string) []byte {
	b := []byte{0xFE, 0xFF}
	for _, r := range s {
		b = append(b, byte(r>>8), byte(r))
	}
	return b
}

// zipHead returns the start of a ZIP archive with stored, empty entries
// of the given names.
func zipHead(names ...string) []byte {
	var b bytes.Buffer
	w := zip.NewWriter(&b)
	for _, n := range names {
		if _, err := w.CreateHeader(&zip.FileHeader{Name: n, Method: zip.Store}); err != nil {
			panic(err)
		}
	}
	w.Close()
	return b.Bytes()
}

func koi8(s string) []byte {
	b, err := charmap.KOI8R.NewEncoder().Bytes([]byte(s))
	if err != nil {
		panic(err)
	}
	return b
}

// pseudoRandom returns n deterministic bytes that look like compressed data.
func pseudoRandom(n int) []byte {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

const readme = "# ragpipe\n\nIngest documents.\n\n## Install\n\n```sh\ngo install ./cmd/...\n```\n\nSee [the docs](docs/index.md).\n"

var sniffCases = []struct {
	name    string
	head    []byte
	want    Format
	wantMsg string // for errors: the exact message
}{
	{name: "pdf", head: []byte("%PDF-1.5\n%\xd0\xd4\xc5\xd8\n1 0 obj\n<< /Type /Catalog >>\n"), want: PDF},
	{name: "pdf after junk", head: append(bytes.Repeat([]byte{0}, 900), "%PDF-1.4\n"...), want: PDF},
	{name: "pdf header too late", head: append(bytes.Repeat([]byte{0}, 1100), "%PDF-1.4\n"...),
		wantMsg: "content looks like binary data; supported: PDF, plain text, Markdown, HTML, DOCX"},
	{name: "text mentioning the pdf magic", head: []byte("A PDF starts with `%PDF-` and a version.\n"), want: Text},
	{name: "text", head: []byte("Minutes of the meeting\n\nWe agreed to ship on Friday.\n"), want: Text},
	{name: "text with utf-8 bom", head: []byte("\xEF\xBB\xBFCafé crème, 30 €.\r\n"), want: Text},
	{name: "text with rune cut at end", head: []byte("naïve caf\xC3"), want: Text},
	{name: "shell script is text", head: []byte("#!/bin/sh\n# Install\n- run make\nsee [x](y)\n"), want: Text},
	{name: "single comment line is text", head: []byte("# settings\nport = 8080\n"), want: Text},
	{name: "whitespace only is text", head: []byte(" \n\t\n"), want: Text},
	{name: "markdown readme", head: []byte(readme), want: Markdown},
	{name: "markdown fenced code", head: []byte("Example:\n\n```go\nfmt.Println(1)\n```\n"), want: Markdown},
	{name: "markdown setext and list", head: []byte("Title\n=====\n\n- one\n- two\n"), want: Markdown},
	{name: "markdown list and links", head: []byte("* [Home](/)\n* [About](/about)\n"), want: Markdown},
	{name: "markdown table", head: []byte("# Prices\n\n| item | price |\n|------|-------|\n| tea  | 2     |\n"), want: Markdown},
	{name: "markdown with html comment first", head: []byte("<!-- generated -->\n# Title\n\n> quoted\n"), want: Markdown},
	{name: "utf-16le text", head: utf16LE("Grüße aus Köln\nZweite Zeile\n"), want: Text},
	{name: "utf-16be markdown", head: utf16BE("# Title\n\n- [link](http://example.com)\n"), want: Markdown},
	{name: "utf-16le cut in the middle of a unit", head: utf16LE("plain text")[:9], want: Text},
	{name: "html", head: []byte("<!DOCTYPE html>\n<html><body><p>Hi</p></body></html>"), want: HTML},
	{name: "html fragment", head: []byte("\n  <p>Hello <b>there</b></p>"), want: HTML},
	{name: "html in latin-1", head: []byte("<html><body><p>Caf\xe9 cr\xe8me</p></body></html>"), want: HTML},
	{name: "xml", head: []byte(`<?xml version="1.0"?><catalog><book/></catalog>`),
		wantMsg: "content looks like an XML document; supported: PDF, plain text, Markdown, HTML, DOCX"},
	{name: "svg", head: []byte(`<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>`),
		wantMsg: "content looks like an SVG image; supported: PDF, plain text, Markdown, HTML, DOCX"},
	{name: "rtf", head: []byte(`{\rtf1\ansi Hello}`),
		wantMsg: "content looks like an RTF document; supported: PDF, plain text, Markdown, HTML, DOCX"},
	{name: "png", head: append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), pseudoRandom(64)...),
		wantMsg: "content looks like a PNG image; supported: PDF, plain text, Markdown, HTML, DOCX"},
	{name: "jpeg", head: append([]byte("\xFF\xD8\xFF\xE0\x00\x10JFIF\x00"), pseudoRandom(64)...),
		wantMsg: "content looks like a JPEG image; supported: PDF, plain text, Markdown, HTML, DOCX"},
	{name: "zip", head: append([]byte("PK\x03\x04\x14\x00\x00\x00\x08\x00"), pseudoRandom(64)...),
		wantMsg: "content looks like a ZIP archive; supported: PDF, plain text, Markdown, HTML, DOCX"},
	{name: "docx", head: zipHead("[Content_Types].xml", "word/document.xml"), want: DOCX},
	{name: "zip naming word/ only in data", head: append([]byte("PK\x03\x04\x14\x00\x00\x00\x08\x00"), "word/document.xml"...),
		wantMsg: "content looks like a Word (DOCX) document; supported: PDF, plain text, Markdown, HTML, DOCX"},
	{name: "docx by entry walk", head: zipHead("[Content_Types].xml", "_rels/.rels", "word/styles.xml"), want: DOCX},
	{name: "xlsx", head: zipHead("[Content_Types].xml", "_rels/.rels", "xl/workbook.xml"),
		wantMsg: "content looks like an Excel (XLSX) workbook; supported: PDF, plain text, Markdown, HTML, DOCX"},
	{name: "gzip", head: append([]byte("\x1f\x8b\x08\x00"), pseudoRandom(64)...),
		wantMsg: "content looks like a gzip archive; supported: PDF, plain text, Markdown, HTML, DOCX"},
	{name: "elf", head: append([]byte("\x7fELF\x02\x01\x01\x00"), make([]byte, 56)...),
		wantMsg: "content looks like an ELF executable; supported: PDF, plain text, Markdown, HTML, DOCX"},
	{name: "empty", head: nil, wantMsg: "content is empty; supported: PDF, plain text, Markdown, HTML, DOCX"},
	{name: "random binary", head: pseudoRandom(4096),
		wantMsg: "content looks like binary data; supported: PDF, plain text, Markdown, HTML, DOCX"},
	{name: "control characters", head: []byte("ab\x01\x02\x03\x04cd"),
		wantMsg: "content looks like binary data; supported: PDF, plain text, Markdown, HTML, DOCX"},
	{name: "latin-1 text", head: []byte("Caf\xe9 cr\xe8me"), want: Text},
	{name: "windows-1252 text", head: []byte("\x93Quoted\x94 \x96 dash, 5\x80.\n"), want: Text},
	{name: "koi8-r text", head: koi8("Привет, как дела? Это русский текст в старой кодировке.\n"), want: Text},
}

func TestSniff(t *testing.T) {
	t.Parallel()
	for _, tc := range sniffCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Sniff(tc.head)
			if tc.wantMsg == "" {
				if err != nil || got != tc.want {
					t.Fatalf("Sniff = %q, %v; want %q", got, err, tc.want)
				}
				return
			}
			var e *ragpipe.Error
			if !errors.As(err, &e) {
				t.Fatalf("Sniff = %q, %v; want *ragpipe.Error", got, err)
			}
			if e.Code != ragpipe.EUNSUPPORTED || e.Message != tc.wantMsg {
				t.Fatalf("Sniff error = {%q, %q}; want {%q, %q}", e.Code, e.Message, ragpipe.EUNSUPPORTED, tc.wantMsg)
			}
		})
	}
}

func TestSniffTestdata(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"lppl.pdf", "corrupt.pdf", "encrypted.pdf", "blank.pdf"} {
		head, err := os.ReadFile(filepath.Join("..", "..", "testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := Sniff(head[:min(len(head), SniffLen)]); got != PDF || err != nil {
			t.Errorf("Sniff(%s) = %q, %v; want pdf", name, got, err)
		}
	}
}

func TestSniffOnlyLooksAtSniffLen(t *testing.T) {
	t.Parallel()
	head := append([]byte(strings.Repeat("plain words ", SniffLen/12+1)), 0)
	if got, err := Sniff(head); got != Text || err != nil {
		t.Fatalf("Sniff = %q, %v; want text (the NUL is past SniffLen)", got, err)
	}
}

func FuzzSniff(f *testing.F) {
	for _, tc := range sniffCases {
		f.Add(tc.head)
	}
	f.Fuzz(func(t *testing.T, head []byte) {
		got, err := Sniff(head)
		if err != nil {
			var e *ragpipe.Error
			if !errors.As(err, &e) || e.Code != ragpipe.EUNSUPPORTED || !utf8.ValidString(e.Message) {
				t.Fatalf("Sniff error = %#v; want *ragpipe.Error with code %s", err, ragpipe.EUNSUPPORTED)
			}
			if got != "" {
				t.Fatalf("Sniff = %q with an error", got)
			}
			return
		}
		switch got {
		case PDF:
			if !pdfHeader.Match(head[:min(len(head), pdfMagicWindow)]) {
				t.Fatalf("Sniff = pdf without a PDF header")
			}
		case DOCX:
			if !bytes.HasPrefix(head, []byte("PK\x03\x04")) {
				t.Fatalf("Sniff = docx without a ZIP header")
			}
		case Text, Markdown, HTML:
			if bytes.IndexByte(head[:min(len(head), SniffLen)], 0) >= 0 && !bytes.HasPrefix(head, []byte{0xFF, 0xFE}) && !bytes.HasPrefix(head, []byte{0xFE, 0xFF}) {
				t.Fatalf("Sniff = %q for content with a NUL byte", got)
			}
		default:
			t.Fatalf("Sniff = %q, an unknown format", got)
		}
	})
}
