package extract

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// corpusEnv names a directory of PDFs (searched recursively) for
// BenchmarkCorpus; scripts/extract-bench.sh fills one from Debian's
// texlive-latex-base-doc and gnuplot-doc packages.
const corpusEnv = "RAGPIPE_BENCH_PDF_DIR"

func corpusFiles(tb testing.TB) []string {
	dir := os.Getenv(corpusEnv)
	if dir == "" {
		tb.Skipf("set %s to a directory of PDFs", corpusEnv)
	}
	var files []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(strings.ToLower(p), ".pdf") {
			files = append(files, p)
		}
		return nil
	})
	sort.Strings(files)
	if len(files) == 0 {
		tb.Skipf("no PDFs under %s", dir)
	}
	return files
}

// wordCounts is the multiset of the white-space separated words of s.
func wordCounts(s string) map[string]int {
	m := map[string]int{}
	for _, w := range strings.Fields(s) {
		m[w]++
	}
	return m
}

// multisetRecall is the share of ref's words (with multiplicity) in got.
func multisetRecall(ref, got map[string]int) float64 {
	hit, total := 0, 0
	for w, n := range ref {
		total += n
		hit += min(n, got[w])
	}
	if total == 0 {
		return 1
	}
	return float64(hit) / float64(total)
}

// BenchmarkCorpus extracts every PDF under $RAGPIPE_BENCH_PDF_DIR with
// plain pdftotext and with Extract (OCR off, so both do the same work),
// one file at a time, and reports pages/s of each, and the multiset word
// recall of Extract against pdftotext per file (the lowest, the mean and
// how many files are under 98%); it also checks that every page number
// Extract gives holds that page's words. Run it with -benchtime 1x; with
// GOMAXPROCS=1 and taskset -c 0 for a one-core figure.
func BenchmarkCorpus(b *testing.B) {
	files := corpusFiles(b)
	e := New(Limits{Timeout: 10 * time.Minute}, WithOCR(OCROff))
	ctx := context.Background()
	for b.Loop() {
		var refTime, ourTime time.Duration
		var refPages, ourPages, below, failed int
		minRecall, sum := 1.0, 0.0
		worst := ""
		for _, f := range files {
			start := time.Now()
			ref, err := exec.Command("pdftotext", "-enc", "UTF-8", f, "-").Output()
			refTime += time.Since(start)
			if err != nil {
				continue // pdftotext itself fails: nothing to compare with
			}
			refSegs := bytes.Split(ref, []byte("\f"))
			refPages += len(refSegs) - 1
			start = time.Now()
			pages, err := e.Extract(ctx, PDF, f)
			ourTime += time.Since(start)
			var got strings.Builder
			for _, p := range pages {
				got.WriteString(p.Text + "\n")
				// Page numbers are right: the page's words are pdftotext's for that page.
				if r := multisetRecall(wordCounts(string(refSegs[p.Number-1])), wordCounts(p.Text)); r < 1 {
					b.Errorf("%s page %d: recall %.4f against pdftotext's page %d", f, p.Number, r, p.Number)
				}
			}
			if err != nil && len(strings.Fields(string(ref))) > 0 {
				failed++
				b.Logf("%s: %v", f, err)
			}
			if len(pages) > 0 {
				ourPages += len(refSegs) - 1
			}
			r := multisetRecall(wordCounts(string(ref)), wordCounts(got.String()))
			sum += r
			if r < 0.98 {
				below++
			}
			if r < minRecall {
				minRecall, worst = r, f
			}
		}
		n := float64(len(files))
		b.ReportMetric(float64(refPages)/refTime.Seconds(), "pdftotext-pages/s")
		b.ReportMetric(float64(ourPages)/ourTime.Seconds(), "extract-pages/s")
		b.ReportMetric(100*minRecall, "min-recall-%")
		b.ReportMetric(100*sum/n, "mean-recall-%")
		b.ReportMetric(float64(below), "files<98%")
		b.ReportMetric(float64(failed), "failed")
		fmt.Fprintf(os.Stderr, "%d files, %d pages; pdftotext %.0f pages/s, Extract %.0f pages/s; recall min %.2f%% (%s), mean %.3f%%, %d files under 98%%, %d failed\n",
			len(files), refPages, float64(refPages)/refTime.Seconds(), float64(ourPages)/ourTime.Seconds(),
			100*minRecall, filepath.Base(worst), 100*sum/n, below, failed)
	}
}

// TestBigPDF extracts the PDF named by $RAGPIPE_BIG_PDF (scripts/extract-bench.sh
// makes one of 2,832 pages with pdfunite) and reports the peak resident
// memory of this process and of the largest child (pdftotext, pdfinfo).
func TestBigPDF(t *testing.T) {
	path := os.Getenv("RAGPIPE_BIG_PDF")
	if path == "" {
		t.Skip("set RAGPIPE_BIG_PDF to a large PDF")
	}
	var calls, lastDone, lastTotal int
	start := time.Now()
	pages, err := New(Limits{Timeout: 10 * time.Minute}, WithOCR(OCROff)).ExtractProgress(context.Background(), PDF, path,
		func(done, total int) { calls, lastDone, lastTotal = calls+1, done, total })
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	var self, children syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children)
	t.Logf("%d pages with text of %d in %v (%.0f pages/s); %d progress calls; peak RSS: Go process %d MiB, largest child %d MiB",
		len(pages), lastTotal, elapsed.Round(time.Millisecond), float64(lastTotal)/elapsed.Seconds(), calls,
		self.Maxrss>>10, children.Maxrss>>10)
	if lastDone != lastTotal || calls < lastTotal-DefaultRangePages {
		t.Errorf("progress ended at %d/%d after %d calls", lastDone, lastTotal, calls)
	}
	if (self.Maxrss+children.Maxrss)>>10 >= 300 {
		t.Errorf("peak RSS %d + %d MiB; want under 300", self.Maxrss>>10, children.Maxrss>>10)
	}
}
