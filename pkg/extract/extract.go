// Package extract tells a document's format from its content and turns the
// document into text with page numbers.
//
// PDF text comes from poppler's pdftotext (Debian package poppler-utils), run
// as a child process under hard limits on time, memory and output size, so a
// hostile PDF can fail its own document but never the worker. Plain text and
// Markdown are decoded in process.
package extract

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
	xunicode "golang.org/x/text/encoding/unicode"
	"golang.org/x/text/transform"
)

// Page is the text of one page. Number counts from 1 in the source document;
// pages without text are left out of results, so numbers may skip.
// Plain-text and Markdown documents are a single page numbered 1.
type Page struct {
	Number int
	Text   string
}

// Limits bound the work of one Extract call. A zero field takes its default.
type Limits struct {
	// Timeout bounds the whole extraction of one document (default
	// DefaultTimeout). The caller's context deadline applies as well.
	Timeout time.Duration
	// MaxMemoryBytes caps the address space (RLIMIT_AS) of the pdftotext
	// process, not of this process (default DefaultMaxMemoryBytes). Address
	// space exceeds resident memory: below about 24 MiB pdftotext cannot
	// even load its shared libraries.
	MaxMemoryBytes int64
	// MaxPages is the most pages a PDF may have (default DefaultMaxPages).
	MaxPages int
	// MaxTextBytes caps the extracted PDF text and the size of a plain-text
	// or Markdown file (default DefaultMaxTextBytes).
	MaxTextBytes int64
}

// Defaults for zero fields of Limits.
const (
	DefaultTimeout        = 2 * time.Minute
	DefaultMaxMemoryBytes = 1 << 30
	DefaultMaxPages       = 5000
	DefaultMaxTextBytes   = 64 << 20
)

// Extractor extracts text from documents. It is safe for concurrent use.
type Extractor struct {
	limits Limits
	// Commands run for PDFs; tests replace them with fakes.
	pdftotext string
	prlimit   string
}

// New returns an Extractor that enforces l, with defaults for its zero fields.
func New(l Limits) *Extractor {
	if l.Timeout <= 0 {
		l.Timeout = DefaultTimeout
	}
	if l.MaxMemoryBytes <= 0 {
		l.MaxMemoryBytes = DefaultMaxMemoryBytes
	}
	if l.MaxPages <= 0 {
		l.MaxPages = DefaultMaxPages
	}
	if l.MaxTextBytes <= 0 {
		l.MaxTextBytes = DefaultMaxTextBytes
	}
	return &Extractor{limits: l, pdftotext: "pdftotext", prlimit: "prlimit"}
}

// Check reports whether the programs PDF extraction needs are installed:
// pdftotext (Debian package poppler-utils) and prlimit (util-linux).
// Call it at start-up so a missing tool stops the worker, not each document.
func (e *Extractor) Check() error {
	for _, tool := range []struct{ cmd, pkg string }{
		{e.pdftotext, "poppler-utils"},
		{e.prlimit, "util-linux"},
	} {
		if _, err := exec.LookPath(tool.cmd); err != nil {
			return fmt.Errorf("extract: %s is needed for PDF text: install the Debian package %s: %w", tool.cmd, tool.pkg, err)
		}
	}
	return nil
}

// Extract returns the text of the document at path, read as format f (see
// Sniff), page by page in order, leaving out pages without text.
//
// Failures that retrying cannot fix are *ragpipe.Error values with a code:
// ragpipe.CodePDFCorrupt, CodePDFEncrypted, CodeNoText, CodeLimitExceeded
// (pages, memory or text size), CodeTimeout (Limits.Timeout ran out), and
// ragpipe.EUNSUPPORTED for an unknown format. When ctx ends first, the error
// wraps ctx's error instead; other errors (a missing file, a missing tool)
// are plain errors.
func (e *Extractor) Extract(ctx context.Context, f Format, path string) ([]Page, error) {
	switch f {
	case PDF:
		return e.extractPDF(ctx, path)
	case Text, Markdown:
		return e.extractText(ctx, path)
	default:
		return nil, ragpipe.Errorf(ragpipe.EUNSUPPORTED, "cannot extract format %q; %s", f, supportedList)
	}
}

// extractText decodes UTF-8 (a BOM is dropped) or UTF-16 with a BOM, keeping
// the text as it is apart from line endings.
func (e *Extractor) extractText(ctx context.Context, path string) ([]Page, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("extract text: %w", err)
	}
	file, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("extract text: %w", err)
	}
	defer file.Close()
	raw, err := io.ReadAll(io.LimitReader(file, e.limits.MaxTextBytes+1))
	if err != nil {
		return nil, fmt.Errorf("extract text: %w", err)
	}
	if int64(len(raw)) > e.limits.MaxTextBytes {
		return nil, ragpipe.Errorf(ragpipe.CodeLimitExceeded, "text file is larger than %d bytes", e.limits.MaxTextBytes)
	}
	// Invalid UTF-8 becomes U+FFFD; with a BOM present decoding cannot fail.
	dec, _, err := transform.Bytes(xunicode.BOMOverride(xunicode.UTF8.NewDecoder()), raw)
	if err != nil {
		return nil, ragpipe.Wrap(err, ragpipe.CodeInvalidContent, "text cannot be decoded")
	}
	text := strings.ReplaceAll(string(dec), "\x00", "")
	text = strings.ReplaceAll(text, "\r\n", "\n")
	if strings.TrimSpace(text) == "" {
		return nil, ragpipe.Errorf(ragpipe.CodeNoText, "document has no text")
	}
	return []Page{{Number: 1, Text: text}}, nil
}
