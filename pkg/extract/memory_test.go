package extract

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/ragpipe/ragpipe/pkg/chunk"
	"github.com/ragpipe/ragpipe/pkg/ragpipe"
)

// The defaults that bound a worker's memory: uploads up to 100 MB
// (RAGPIPE_MAX_UPLOAD_BYTES) and a soft memory limit of 256 MiB
// (RAGPIPE_WORKER_MEMORY_LIMIT_BYTES).
const (
	uploadLimit       = 100 << 20
	workerMemoryLimit = 256 << 20
)

// writeShortParagraphs writes about size bytes of the input that costs the
// most memory per byte: many short paragraphs (short list items for
// Markdown), as a page of format f.
func writeShortParagraphs(t testing.TB, path string, f Format, size int) {
	t.Helper()
	file, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(file, 1<<20)
	words := strings.Fields("alpha beta gamma delta epsilon zeta eta theta iota kappa")
	if f == HTML {
		w.WriteString("<!doctype html><html><body>\n")
	}
	for i, n := 0, 0; n < size; i++ {
		p := words[i%len(words)] + " " + words[(i*7)%len(words)] + " " + strconv.Itoa(i) + "."
		switch f {
		case HTML:
			p = "<p>" + p + "</p>\n"
		case Markdown:
			p = "- " + p + "\n"
			if i%50 == 0 {
				p = "\n## Part " + strconv.Itoa(i) + "\n\n" + p
			}
		default:
			p += "\n\n"
		}
		w.WriteString(p)
		n += len(p)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := file.Close(); err != nil {
		t.Fatal(err)
	}
}

// memoryCase is one document of a memory run, and the outcome it must have.
type memoryCase struct {
	name   string
	format Format
	size   int    // bytes to write; 0 for a file in testdata
	want   string // the error code, or "" for chunks
}

// childEnv names the files a child of TestExtractMemoryBound works on.
const childEnv = "RAGPIPE_MEMORY_CHILD"

// runMemoryChild extracts and chunks the files in $RAGPIPE_MEMORY_CHILD
// (format=path, comma separated) at once, as the worker does, under the
// worker's memory limit, and prints each outcome.
func runMemoryChild(t *testing.T) {
	debug.SetMemoryLimit(workerMemoryLimit)
	var wg sync.WaitGroup
	for _, spec := range strings.Split(os.Getenv(childEnv), ",") {
		format, path, _ := strings.Cut(spec, "=")
		wg.Add(1)
		go func() {
			defer wg.Done()
			outcome := "chunks"
			pages, err := New(Limits{}).Extract(context.Background(), Format(format), path)
			if err == nil {
				var chunks []chunk.Chunk
				chunks, err = chunk.Split(pages, chunk.Options{Size: chunk.DefaultTokenSize, Overlap: chunk.DefaultTokenOverlap,
					Unit: chunk.Tokens, Markdown: Format(format).Markdown()})
				outcome = fmt.Sprintf("chunks:%d", len(chunks))
			}
			if e := (*ragpipe.Error)(nil); errors.As(err, &e) {
				outcome = e.Code
			} else if err != nil {
				outcome = "error:" + err.Error()
			}
			fmt.Printf("outcome %s %s\n", filepath.Base(path), outcome)
		}()
	}
	wg.Wait()
}

// childPeak runs the child on files and returns its outcomes by file name
// and its peak resident memory in MiB.
func childPeak(t *testing.T, files map[string]Format) (map[string]string, int64) {
	t.Helper()
	var specs []string
	for path, f := range files {
		specs = append(specs, string(f)+"="+path)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestExtractMemoryBound$", "-test.v")
	// The child reads its files from the environment, with no memory limit but the one it sets.
	cmd.Env = append(os.Environ(), childEnv+"="+strings.Join(specs, ","), "GOMEMLIMIT=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	outcomes := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "outcome" {
			outcomes[f[1]] = f[2]
		}
	}
	return outcomes, cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss >> 10
}

// The worst inputs of every in-process format, up to the upload limit and
// all at once (more than the worker's default concurrency of four), keep
// the extracting and chunking process under 300 MiB: what would pass the
// text limit fails with limit_exceeded instead of taking the worker down.
func TestExtractMemoryBound(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		runMemoryChild(t)
		return
	}
	cases := []memoryCase{
		{name: "text.txt", format: Text, size: uploadLimit, want: ragpipe.CodeLimitExceeded},
		{name: "page.html", format: HTML, size: uploadLimit, want: ragpipe.CodeLimitExceeded},
		{name: "notes.md", format: Markdown, size: 4 << 20, want: "chunks"},
		{name: "bomb.docx", format: DOCX, want: ragpipe.CodeLimitExceeded},
		{name: "sample.docx", format: DOCX, want: "chunks"},
	}
	dir := t.TempDir()
	files := map[string]Format{}
	for _, c := range cases {
		path := testdata(c.name)
		if c.size > 0 {
			path = filepath.Join(dir, c.name)
			writeShortParagraphs(t, path, c.format, c.size)
		}
		files[path] = c.format
	}
	outcomes, peak := childPeak(t, files)
	for _, c := range cases {
		if got := outcomes[c.name]; strings.SplitN(got, ":", 2)[0] != c.want {
			t.Errorf("%s: %q; want %s", c.name, got, c.want)
		}
	}
	t.Logf("%d documents at once (%v): peak RSS %d MiB", len(cases), outcomes, peak)
	if raceEnabled {
		t.Log("the race detector multiplies memory: the bound is checked without it (make test runs this test again so)")
		return
	}
	if peak >= 300 {
		t.Errorf("peak RSS %d MiB; want under 300", peak)
	}
}

// TestExtractMemoryTable prints the peak resident memory of extracting and
// chunking one document of each in-process format and size, each in a
// process of its own under the worker's memory limit: the table in
// docs/security.md. `make bench` runs it (RAGPIPE_MEMORY_TABLE=1).
func TestExtractMemoryTable(t *testing.T) {
	if os.Getenv("RAGPIPE_MEMORY_TABLE") == "" {
		t.Skip("set RAGPIPE_MEMORY_TABLE=1 (make bench)")
	}
	dir := t.TempDir()
	fmt.Fprintf(os.Stderr, "%-9s %10s %-16s %s\n", "format", "input MiB", "outcome", "peak RSS MiB")
	for _, f := range []Format{Text, Markdown, HTML} {
		for _, mib := range []int{1, 4, 16, 100} {
			path := filepath.Join(dir, fmt.Sprintf("doc-%d.%s", mib, f))
			writeShortParagraphs(t, path, f, mib<<20-4096)
			outcomes, peak := childPeak(t, map[string]Format{path: f})
			fmt.Fprintf(os.Stderr, "%-9s %10d %-16s %d\n", f, mib, outcomes[filepath.Base(path)], peak)
			os.Remove(path)
		}
	}
	outcomes, peak := childPeak(t, map[string]Format{testdata("bomb.docx"): DOCX})
	fmt.Fprintf(os.Stderr, "%-9s %10s %-16s %d\n", DOCX, "bomb", outcomes["bomb.docx"], peak)
}
