package extract

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

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
// The process runs under prlimit so RLIMIT_AS is in force from its first
// instruction (Go cannot set rlimits on a child between fork and exec), in
// its own process group so a timeout kills everything it started.
func (e *Extractor) extractPDF(ctx context.Context, path string) ([]Page, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, e.limits.Timeout, errTimedOut)
	defer cancel()
	if strings.HasPrefix(path, "-") {
		path = "./" + path // not an option
	}
	cmd := exec.CommandContext(ctx, e.prlimit,
		"--as="+strconv.FormatInt(e.limits.MaxMemoryBytes, 10), "--",
		e.pdftotext, "-enc", "UTF-8", "-eol", "unix",
		"-l", strconv.Itoa(e.limits.MaxPages+1), // one more than allowed, to notice too many
		path, "-")
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	stdout := &capBuffer{max: e.limits.MaxTextBytes, failOnOverflow: true}
	stderr := &capBuffer{max: stderrMax}
	cmd.Stdout, cmd.Stderr = stdout, stderr

	if err := cmd.Run(); err != nil {
		return nil, e.pdfFailure(ctx, err, stdout.overflow, stderr.buf.String())
	}

	segments := strings.Split(stdout.buf.String(), "\f")
	if segments[len(segments)-1] == "" {
		segments = segments[:len(segments)-1] // after the last page's form feed
	}
	if len(segments) > e.limits.MaxPages {
		return nil, ragpipe.Errorf(ragpipe.CodeLimitExceeded, "PDF has more than %d pages", e.limits.MaxPages)
	}
	var pages []Page
	for i, s := range segments {
		if text := normalize(s); text != "" {
			pages = append(pages, Page{Number: i + 1, Text: text})
		}
	}
	if len(pages) == 0 {
		return nil, ragpipe.Errorf(ragpipe.CodeNoText,
			"PDF has no extractable text (%d pages); scanned pages need OCR, which is not supported", len(segments))
	}
	return pages, nil
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
