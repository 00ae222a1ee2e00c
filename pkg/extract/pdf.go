package extract

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// errTimedOut is the cause of a context ended by Limits.Timeout, to tell it
// from the caller's own cancellation or deadline.
var errTimedOut = errors.New("extraction timed out")

// errTooMuchText fails writes past Limits.MaxTextBytes; the child then gets
// EPIPE or SIGPIPE and stops early.
var errTooMuchText = errors.New("extracted text exceeds the limit")

// stderrMax bounds the diagnostics kept from pdftotext; a damaged PDF can
// make it print a syntax error per object.
const stderrMax = 16 << 10

// outOfMemory holds what a process says when its address-space limit bites:
// poppler's allocator, the C++ runtime, and the dynamic loader (which runs
// out first under a very small limit).
var outOfMemory = []string{
	"Out of memory",
	"std::bad_alloc",
	"Cannot allocate memory",
	"failed to map segment",
}

// extractPDF runs pdftotext in its default (reading-order) mode, not -layout:
// on two-column pages -layout interleaves the columns line by line, while the
// default mode emits one column after the other. pdftotext ends every page
// with a form feed, so the N-th segment of its output is page N. It also
// joins words hyphenated across line breaks, so that is not redone here.
//
// Pages are extracted in ranges of e.rangePages (see DefaultRangePages) and
// read from the pipe page by page, for progress and so that neither the
// child's caches nor this process's buffers grow with the document. The page
// count comes from pdfinfo, asked only when the first range is full.
// Pages left without text are OCRed afterwards when OCR is on (see ocrPages).
// Last, the outline gives the pages' headings (see outline and
// placeHeadings); a missing or broken outline leaves them without.
func (e *Extractor) extractPDF(ctx context.Context, path string, progress Progress) ([]ragpipe.Page, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, e.limits.Timeout, errTimedOut)
	defer cancel()
	if strings.HasPrefix(path, "-") {
		path = "./" + path // not an option
	}
	rng := min(e.rangePages, e.limits.MaxPages+1) // one more than allowed, to notice too many
	var (
		texts     []string // by page number - 1
		textBytes int64
		total     int // 0 until known
	)
	onPage := func(text string) error {
		textBytes += int64(len(text))
		if textBytes > e.limits.MaxTextBytes {
			return errTooMuchText
		}
		texts = append(texts, normalize(text))
		if total > 0 {
			progress(len(texts), total)
		}
		return nil
	}
	for first := 1; ; first += rng {
		last := first + rng - 1
		if total > 0 {
			last = min(last, total)
		}
		if first > 1 && e.slots != nil {
			more, err := e.parallelRanges(ctx, path, first, total, &textBytes, func(done int) { progress(len(texts)+done, total) })
			if err != nil {
				return nil, err
			}
			texts = append(texts, more...)
			break
		}
		n, err := e.pdftotextRange(ctx, path, first, last, onPage)
		if err != nil {
			return nil, err
		}
		if first == 1 {
			if n == 0 {
				// poppler drops a page tree it cannot walk (a loop, a bad
				// /Kids) and goes on with no pages; a real PDF has one at least.
				return nil, ragpipe.Errorf(ragpipe.CodePDFCorrupt, "PDF has no pages; its page tree is damaged")
			}
			if n > e.limits.MaxPages {
				return nil, tooManyPages(e.limits.MaxPages)
			}
			if n < rng {
				total = n
				break
			}
			if total, err = e.pageCount(ctx, path); err != nil {
				return nil, err
			}
			if total > e.limits.MaxPages {
				return nil, tooManyPages(e.limits.MaxPages)
			}
			progress(len(texts), total)
		}
		if n == 0 || last >= total {
			break
		}
	}
	if len(texts) < total {
		total = len(texts) // pdfinfo counted pages pdftotext did not give
	}

	pages := make([]ragpipe.Page, 0, len(texts))
	var blank []int
	for i, text := range texts {
		if text != "" {
			pages = append(pages, ragpipe.Page{Number: i + 1, Text: text})
		} else {
			blank = append(blank, i+1)
		}
	}
	if len(blank) > 0 && e.OCR() {
		ocred, err := e.ocrPages(ctx, path, blank)
		if err != nil {
			return nil, err
		}
		pages = mergePages(pages, ocred)
	}
	if len(pages) > 0 {
		placeHeadings(pages, e.outline(ctx, path, lightestPage(texts)))
		if ctx.Err() != nil && !errors.Is(context.Cause(ctx), errTimedOut) {
			return nil, fmt.Errorf("extract pdf: %w", context.Cause(ctx))
		}
	}
	progress(len(texts), len(texts))
	if len(pages) == 0 {
		msg := "PDF has no extractable text (%d pages)"
		if !e.OCR() {
			msg += "; scanned pages need OCR, which is off or not installed"
		}
		return nil, ragpipe.Errorf(ragpipe.CodeNoText, msg, len(texts))
	}
	return pages, nil
}

// minParallelRange is the fewest pages a range of parallelRanges holds:
// each pdftotext run reads the document's structure afresh.
const minParallelRange = 20

// parallelRanges extracts pages first to total in ranges side by side, as
// many at once as e.slots allows, and returns their texts in page order.
// textBytes counts the text of the whole document against the limit;
// progress is told, from the calling goroutine, how many of these pages are
// done.
func (e *Extractor) parallelRanges(ctx context.Context, path string, first, total int, textBytes *int64,
	progress func(done int)) ([]string, error) {
	size := min(e.rangePages, max(minParallelRange, (total-first+cap(e.slots))/cap(e.slots)))
	type part struct {
		first, last int
		texts       []string
	}
	var parts []*part
	for f := first; f <= total; f += size {
		parts = append(parts, &part{first: f, last: min(f+size-1, total)})
	}
	var seen atomic.Int64 // text bytes of the whole document so far
	seen.Store(*textBytes)
	pages := make(chan struct{}, 64)
	g, gctx := errgroup.WithContext(ctx)
	for _, p := range parts {
		g.Go(func() error {
			_, err := e.pdftotextRange(gctx, path, p.first, p.last, func(text string) error {
				if seen.Add(int64(len(text))) > e.limits.MaxTextBytes {
					return errTooMuchText
				}
				p.texts = append(p.texts, normalize(text))
				pages <- struct{}{}
				return nil
			})
			return err
		})
	}
	waited := make(chan error, 1)
	go func() {
		waited <- g.Wait()
		close(pages)
	}()
	done := 0
	for range pages {
		done++
		progress(done)
	}
	if err := <-waited; err != nil {
		return nil, err
	}
	*textBytes = seen.Load()
	var texts []string
	for _, p := range parts {
		texts = append(texts, p.texts...)
	}
	return texts, nil
}

// lightestPage returns the number of the first page with the least text.
func lightestPage(texts []string) int {
	n := 0
	for i, t := range texts {
		if len(t) < len(texts[n]) {
			n = i
		}
	}
	return n + 1
}

func tooManyPages(max int) error {
	return ragpipe.Errorf(ragpipe.CodeLimitExceeded, "PDF has more than %d pages", max)
}

// mergePages merges two page lists sorted by number.
func mergePages(a, b []ragpipe.Page) []ragpipe.Page {
	out := make([]ragpipe.Page, 0, len(a)+len(b))
	for len(a) > 0 || len(b) > 0 {
		if len(b) == 0 || len(a) > 0 && a[0].Number < b[0].Number {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	return out
}

// limitedCommand returns a command running name with args under prlimit's
// address-space cap, in its own process group, killed as a group when ctx
// ends.
func (e *Extractor) limitedCommand(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, e.prlimit,
		append([]string{"--as=" + strconv.FormatInt(e.limits.MaxMemoryBytes, 10), "--", name}, args...)...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "OMP_THREAD_LIMIT=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	return cmd
}

// pdftotextRange extracts pages first to last, handing each page's text to
// onPage as it arrives, and returns how many pages there were (fewer than
// asked when the document ends before last). Each run of pdftotext is a
// span.
func (e *Extractor) pdftotextRange(ctx context.Context, path string, first, last int, onPage func(string) error) (int, error) {
	if e.slots != nil {
		select {
		case e.slots <- struct{}{}:
			defer func() { <-e.slots }()
		case <-ctx.Done():
			return 0, e.pdfFailure(ctx, context.Cause(ctx), false, "")
		}
	}
	ctx, span := otel.Tracer("github.com/ragpipe/ragpipe/pkg/extract").Start(ctx, "pdftotext",
		trace.WithAttributes(attribute.Int("ragpipe.pdf.first_page", first), attribute.Int("ragpipe.pdf.last_page", last)))
	defer span.End()
	n, err := e.runPdftotext(ctx, path, first, last, onPage)
	span.SetAttributes(attribute.Int("ragpipe.pdf.pages", n))
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	return n, err
}

// runPdftotext is pdftotextRange once a slot is taken.
func (e *Extractor) runPdftotext(ctx context.Context, path string, first, last int, onPage func(string) error) (int, error) {
	cmd := e.limitedCommand(ctx, e.pdftotext, "-enc", "UTF-8", "-eol", "unix",
		"-f", strconv.Itoa(first), "-l", strconv.Itoa(last), path, "-")
	stderr := &capBuffer{max: stderrMax}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, fmt.Errorf("extract pdf: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return 0, e.pdfFailure(ctx, err, false, "")
	}
	n, readErr := readPages(stdout, e.limits.MaxTextBytes, onPage)
	if readErr != nil {
		_ = cmd.Cancel() // stop the child; its error is the read error's consequence
	}
	err = cmd.Wait()
	if readErr != nil {
		if errors.Is(readErr, errTooMuchText) || errors.Is(readErr, bufio.ErrTooLong) {
			if ctx.Err() == nil {
				return 0, ragpipe.Wrap(readErr, ragpipe.CodeLimitExceeded,
					fmt.Sprintf("PDF text is larger than %d bytes", e.limits.MaxTextBytes))
			}
		}
		if err == nil {
			err = readErr
		}
	}
	if err != nil {
		return 0, e.pdfFailure(ctx, err, false, stderr.buf.String())
	}
	return n, nil
}

// readPages splits pdftotext's output at form feeds, one page each; text
// after the last form feed (there is none when pdftotext ends normally) is
// not a page. No page may be longer than max bytes.
func readPages(r io.Reader, max int64, onPage func(string) error) (int, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), int(min(max+1, math.MaxInt32)))
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		if i := bytes.IndexByte(data, '\f'); i >= 0 {
			return i + 1, data[:i], nil
		}
		if atEOF {
			return len(data), nil, nil // trailing bytes without a form feed: not a page
		}
		return 0, nil, nil
	})
	n := 0
	for sc.Scan() {
		if sc.Bytes() == nil {
			continue
		}
		n++
		if err := onPage(sc.Text()); err != nil {
			return n, err
		}
	}
	return n, sc.Err()
}

// pageCount asks pdfinfo how many pages the PDF has.
func (e *Extractor) pageCount(ctx context.Context, path string) (int, error) {
	cmd := e.limitedCommand(ctx, e.pdfinfo, path)
	stdout := &capBuffer{max: 1 << 20}
	stderr := &capBuffer{max: stderrMax}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Run(); err != nil {
		return 0, e.pdfFailure(ctx, err, false, stderr.buf.String())
	}
	for line := range strings.Lines(stdout.buf.String()) {
		if v, ok := strings.CutPrefix(line, "Pages:"); ok {
			if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
				return n, nil
			}
		}
	}
	return 0, ragpipe.Errorf(ragpipe.CodePDFCorrupt, "PDF page count cannot be read")
}

// pdfFailure turns a failed pdftotext run into an error with a code.
func (e *Extractor) pdfFailure(ctx context.Context, err error, overflow bool, stderr string) error {
	if errors.Is(context.Cause(ctx), errTimedOut) {
		return ragpipe.Wrap(err, ragpipe.CodeTimeout,
			fmt.Sprintf("PDF text extraction took longer than %s", e.limits.Timeout))
	}
	if ctx.Err() != nil {
		return fmt.Errorf("extract pdf: %w", context.Cause(ctx))
	}
	if overflow {
		return ragpipe.Wrap(err, ragpipe.CodeLimitExceeded,
			fmt.Sprintf("PDF text is larger than %d bytes", e.limits.MaxTextBytes))
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		return fmt.Errorf("extract pdf: run %s: %w", e.prlimit, err)
	}
	cause := fmt.Errorf("%w: %s", err, lastLines(stderr, 5))
	for _, s := range outOfMemory {
		if strings.Contains(stderr, s) {
			return ragpipe.Wrap(cause, ragpipe.CodeLimitExceeded,
				fmt.Sprintf("PDF text extraction needed more than %d bytes of memory", e.limits.MaxMemoryBytes))
		}
	}
	ws, _ := exit.Sys().(syscall.WaitStatus)
	switch {
	case strings.Contains(stderr, "Incorrect password"):
		return ragpipe.Wrap(cause, ragpipe.CodePDFEncrypted, "PDF is protected by a password")
	case exit.ExitCode() == 3: // pdftotext: "error related to PDF permissions"
		return ragpipe.Wrap(cause, ragpipe.CodePDFEncrypted, "PDF permissions forbid extracting its text")
	case ws.Signaled() && ws.Signal() == syscall.SIGKILL:
		// Not our kill (the context is live): the kernel's OOM killer.
		return ragpipe.Wrap(cause, ragpipe.CodeLimitExceeded, "PDF text extraction was killed for using too much memory")
	case ws.Signaled():
		return ragpipe.Wrap(cause, ragpipe.CodePDFCorrupt, "PDF crashed the text extractor; the file is probably damaged")
	case exit.ExitCode() == 127 || exit.ExitCode() == 126:
		return fmt.Errorf("extract pdf: cannot start %s: %w", e.pdftotext, cause)
	default:
		return ragpipe.Wrap(cause, ragpipe.CodePDFCorrupt, "PDF is damaged or not a PDF")
	}
}

// normalize cleans one page of pdftotext output: it drops NULs and invalid
// UTF-8, trailing blanks on each line, and blank lines beyond one in a row.
func normalize(s string) string {
	s = strings.ToValidUTF8(s, "")
	s = strings.ReplaceAll(s, "\x00", "")
	lines := strings.Split(s, "\n")
	kept := lines[:0]
	for _, l := range lines {
		l = strings.TrimRight(l, " \t\r")
		if l == "" && (len(kept) == 0 || kept[len(kept)-1] == "") {
			continue
		}
		kept = append(kept, l)
	}
	return strings.TrimRight(strings.Join(kept, "\n"), "\n")
}

// lastLines returns the last n non-empty lines of s, joined by "; ".
func lastLines(s string, n int) string {
	lines := strings.FieldsFunc(s, func(r rune) bool { return r == '\n' })
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "; ")
}

// capBuffer keeps the first max bytes written to it. Past that it drops the
// rest, or with failOnOverflow fails the write, which stops os/exec copying.
type capBuffer struct {
	buf            bytes.Buffer
	max            int64
	failOnOverflow bool
	overflow       bool
}

func (c *capBuffer) Write(p []byte) (int, error) {
	room := c.max - int64(c.buf.Len())
	if int64(len(p)) <= room {
		return c.buf.Write(p)
	}
	c.overflow = true
	c.buf.Write(p[:max(room, 0)])
	if c.failOnOverflow {
		return 0, errTooMuchText
	}
	return len(p), nil
}
