// Package extract tells a document's format from its content and turns the
// document into text with page numbers.
//
// PDF text comes from poppler's pdftotext (Debian package poppler-utils), run
// as a child process under hard limits on time, memory and output size, so a
// hostile PDF can fail its own document but never the worker. Pages without a
// text layer are OCRed by tesseract. A PDF's outline (bookmarks), read by
// poppler's pdftohtml, gives its pages' headings. Plain text (UTF-8, UTF-16,
// legacy 8-bit encodings), Markdown, HTML and DOCX are read in process, under
// limits on input and inflated size. docs/extraction.md has the engine
// comparison.
package extract

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// Limits bound the work of one Extract call. A zero field takes its default.
type Limits struct {
	// Timeout bounds the whole extraction of one document, OCR included
	// (default DefaultTimeout). The caller's context deadline applies as well.
	Timeout time.Duration
	// MaxMemoryBytes caps the address space (RLIMIT_AS) of each child
	// process (pdftotext, pdfinfo, pdftoppm, tesseract), not of this
	// process (default DefaultMaxMemoryBytes). Address space exceeds
	// resident memory: below about 24 MiB pdftotext cannot even load its
	// shared libraries.
	MaxMemoryBytes int64
	// MaxPages is the most pages a PDF may have (default DefaultMaxPages).
	MaxPages int
	// MaxTextBytes caps the extracted text of a document, the size of a
	// plain-text or Markdown file and of an HTML file read as a tree
	// (larger HTML is streamed) (default DefaultMaxTextBytes). The stages
	// after extraction hold a document's text whole, so it is what bounds
	// their memory too: docs/security.md has the figures. For
	// PDFs it is also the guard against decompression bombs: pdftotext
	// streams content, so a bomb shows as runaway text, time or memory.
	MaxTextBytes int64
	// MaxInflatedBytes caps how many bytes may be decompressed from a DOCX
	// (ZIP) archive in total (default DefaultMaxInflatedBytes).
	MaxInflatedBytes int64
	// MaxOCRPages caps how many pages of one PDF are OCRed; past it the
	// extraction fails with CodeLimitExceeded (default DefaultMaxOCRPages).
	MaxOCRPages int
}

// Defaults for zero fields of Limits.
const (
	DefaultTimeout          = 2 * time.Minute
	DefaultMaxMemoryBytes   = 1 << 30
	DefaultMaxPages         = 5000
	DefaultMaxTextBytes     = 16 << 20
	DefaultMaxInflatedBytes = 256 << 20
	DefaultMaxOCRPages      = 200
)

// DefaultRangePages is how many pages one pdftotext run extracts. Each run
// starts afresh, so poppler's caches (fonts, page tree) cannot grow with the
// document: a 2,800-page PDF in one run peaks at 225 MB, in 100-page ranges
// at about 110 MB. The first range tells whether a document is small, so
// small documents still cost one process.
const DefaultRangePages = 100

// OCRMode says when pages without a text layer are OCRed.
type OCRMode int

const (
	// OCRAuto OCRs when tesseract and pdftoppm are installed (the default).
	OCRAuto OCRMode = iota
	// OCROff never OCRs; a PDF of scans fails with CodeNoText.
	OCROff
	// OCROn always OCRs; Check fails if tesseract or pdftoppm is missing.
	OCROn
)

// Option configures an Extractor beyond its Limits.
type Option func(*Extractor)

// WithOCR sets when pages without text are OCRed (default OCRAuto).
func WithOCR(m OCRMode) Option { return func(e *Extractor) { e.ocrMode = m } }

// WithOCRLanguage sets tesseract's language (-l), e.g. "eng+deu"; the
// matching tesseract-ocr-* packages must be installed (default "eng").
func WithOCRLanguage(lang string) Option { return func(e *Extractor) { e.ocrLang = lang } }

// WithRangePages sets how many pages one pdftotext run extracts (default
// DefaultRangePages); progress is reported per page regardless.
func WithRangePages(n int) Option {
	return func(e *Extractor) {
		if n > 0 {
			e.rangePages = n
		}
	}
}

// WithParallel lets the Extractor run up to n pdftotext processes at once,
// over all the documents it extracts: a PDF of more than one page range has
// its further ranges extracted side by side (and merged in page order), so
// one large PDF alone uses all n, and several share them. Without it (or
// with n < 2) each PDF's ranges run one after another.
func WithParallel(n int) Option {
	return func(e *Extractor) {
		if n > 1 {
			e.slots = make(chan struct{}, n)
		}
	}
}

// WithTempDir sets where page images for OCR are written (default os.TempDir()).
func WithTempDir(dir string) Option { return func(e *Extractor) { e.tempDir = dir } }

// Progress is told how many pages of a PDF are done and how many there are
// in all, from the goroutine that called ExtractProgress, done never
// decreasing. It is called at least once, at the end, with done ==
// total; for PDFs of more than one page range it is called about once per
// page as text arrives. It must be quick: extraction waits for it.
type Progress func(done, total int)

// Extractor extracts text from documents. It is safe for concurrent use.
type Extractor struct {
	limits     Limits
	ocrMode    OCRMode
	ocrLang    string
	rangePages int
	tempDir    string
	slots      chan struct{} // one per pdftotext process allowed at once; nil for ranges in sequence
	// Commands run for PDFs; tests replace them with fakes.
	pdftotext, pdfinfo, pdftohtml, pdftoppm, pdfimages, tesseract, prlimit string
}

// New returns an Extractor that enforces l, with defaults for its zero
// fields, configured by opts.
func New(l Limits, opts ...Option) *Extractor {
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
	if l.MaxInflatedBytes <= 0 {
		l.MaxInflatedBytes = DefaultMaxInflatedBytes
	}
	if l.MaxOCRPages <= 0 {
		l.MaxOCRPages = DefaultMaxOCRPages
	}
	e := &Extractor{
		limits: l, ocrLang: "eng", rangePages: DefaultRangePages,
		pdftotext: "pdftotext", pdfinfo: "pdfinfo", pdftohtml: "pdftohtml", pdftoppm: "pdftoppm",
		pdfimages: "pdfimages", tesseract: "tesseract", prlimit: "prlimit",
	}
	for _, o := range opts {
		o(e)
	}
	return e
}

// OCR reports whether pages without text will be OCRed: the mode is OCROn,
// or OCRAuto with tesseract and pdftoppm installed.
func (e *Extractor) OCR() bool {
	switch e.ocrMode {
	case OCROff:
		return false
	case OCROn:
		return true
	}
	for _, c := range []string{e.tesseract, e.pdftoppm, e.pdfimages} {
		if _, err := exec.LookPath(c); err != nil {
			return false
		}
	}
	return true
}

// Check reports whether the programs PDF extraction needs are installed:
// pdftotext, pdfinfo, pdftohtml (Debian package poppler-utils) and prlimit
// (util-linux), and with OCROn tesseract (tesseract-ocr) too.
// Call it at start-up so a missing tool stops the worker, not each document.
func (e *Extractor) Check() error {
	tools := []struct{ cmd, pkg string }{
		{e.pdftotext, "poppler-utils"},
		{e.pdfinfo, "poppler-utils"},
		{e.pdftohtml, "poppler-utils"},
		{e.prlimit, "util-linux"},
	}
	if e.ocrMode == OCROn {
		tools = append(tools,
			struct{ cmd, pkg string }{e.pdftoppm, "poppler-utils"},
			struct{ cmd, pkg string }{e.pdfimages, "poppler-utils"},
			struct{ cmd, pkg string }{e.tesseract, "tesseract-ocr"})
	}
	for _, tool := range tools {
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
// (pages, memory, text or inflated size), CodeTimeout (Limits.Timeout ran
// out), CodeInvalidContent (a damaged DOCX or undecodable text), and
// ragpipe.EUNSUPPORTED for an unknown format. When ctx ends first, the
// error wraps ctx's error instead; other errors (a missing file, a missing
// tool) are plain errors.
func (e *Extractor) Extract(ctx context.Context, f Format, path string) ([]ragpipe.Page, error) {
	return e.ExtractProgress(ctx, f, path, nil)
}

// ExtractProgress is Extract that reports progress through PDF pages to
// progress, which may be nil. Other formats report (1, 1) once done.
func (e *Extractor) ExtractProgress(ctx context.Context, f Format, path string, progress Progress) ([]ragpipe.Page, error) {
	if progress == nil {
		progress = func(int, int) {}
	}
	var pages []ragpipe.Page
	var err error
	switch f {
	case PDF:
		return e.extractPDF(ctx, path, progress)
	case Text, Markdown:
		pages, err = e.extractText(ctx, path, f == Markdown)
	case HTML:
		pages, err = e.extractHTML(ctx, path)
	case DOCX:
		pages, err = e.extractDOCX(ctx, path)
	default:
		return nil, ragpipe.Errorf(ragpipe.EUNSUPPORTED, "cannot extract format %q; %s", f, supportedList)
	}
	if err == nil {
		progress(1, 1)
	}
	return pages, err
}

// readLimited reads the file at path, failing with CodeLimitExceeded if it
// is larger than max bytes.
func readLimited(ctx context.Context, path string, max int64, what string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("extract %s: %w", what, err)
	}
	file, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("extract %s: %w", what, err)
	}
	defer file.Close()
	// Read into a buffer of the file's size: io.ReadAll's doubling would
	// hold up to twice the file while it grows.
	size := int64(512)
	if st, err := file.Stat(); err == nil {
		size = min(st.Size(), max) + 1
	}
	raw := make([]byte, size)
	n, err := io.ReadFull(file, raw)
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		err = nil // the file was shorter than its size said, or empty
	}
	raw = raw[:n]
	if err == nil && int64(n) == size && size <= max {
		// The file grew since it was looked at: read the rest, up to the cap.
		var rest []byte
		rest, err = io.ReadAll(io.LimitReader(file, max+1-size))
		raw = append(raw, rest...)
	}
	if err != nil {
		return nil, fmt.Errorf("extract %s: %w", what, err)
	}
	if int64(len(raw)) > max {
		return nil, ragpipe.Errorf(ragpipe.CodeLimitExceeded, "%s file is larger than %d bytes", what, max)
	}
	return raw, nil
}
