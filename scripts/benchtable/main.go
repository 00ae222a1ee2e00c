// Command benchtable reads the output of `go test -bench` (make bench tees
// it to .data/bench.out) and prints the figures the issues name, each beside
// its goal with pass or fail, and the figures with no benchmark yet.
package main

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// goal is one figure: the benchmark (without its -GOMAXPROCS suffix) and
// metric that measure it, and the bound it must meet ("" for none yet).
type goal struct {
	figure, bench, metric, op string
	bound                     float64
}

var goals = []goal{
	{"#9 hybrid search p95, 200,000 chunks, 4 clients (ms)", "BenchmarkSearch", "hybrid-p95-ms", "<", 50},
	{"#9 vector recall@10 against exact search", "BenchmarkSearch", "recall@10", ">=", 0.95},
	{"#12.1 PDFs end to end, × pdftotext alone", "BenchmarkPDFsVsPdftotext", "x-pdftotext", ">=", 1},
	{"#12.2 small documents, one tenant, 8 clients (docs/s)", "BenchmarkSmallDocuments", "docs/s", ">=", 200},
	{"#12.2 small document upload, server p50 (ms)", "BenchmarkSmallDocuments", "upload-p50-ms", "", 0},
	{"#12.3 chunking with token sizing, one core (pages/s)", "BenchmarkSplit/tokens", "pages/s", ">=", 2000},
	{"#12.3 upsert with both indexes (chunks/s)", "BenchmarkUpsert", "rows/s", ">=", 5000},
	{"#12.4 1 MB uploads, 50 clients, p99 of the 202 (ms)", "BenchmarkUploadsUnderLoad", "p99-ms", "<", 50},
	{"#12.6 API peak RSS during them, its own process (MiB)", "BenchmarkUploadsUnderLoad", "api-peak-rss-MiB", "<", 200},
	{"#12.5 2 workers vs 1, 50 ms provider (×)", "BenchmarkScaleOut", "x-2w", ">=", 1.8},
	{"#12.5 4 workers vs 1, 50 ms provider (×)", "BenchmarkScaleOut", "x-4w", ">=", 3.2},
}

var suffix = regexp.MustCompile(`-\d+$`)

func main() {
	got := map[string]float64{} // bench + " " + metric -> last value
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := suffix.ReplaceAllString(f[0], "")
		for i := 2; i+1 < len(f); i += 2 {
			if v, err := strconv.ParseFloat(f[i], 64); err == nil {
				got[name+" "+f[i+1]] = v
			}
		}
	}
	fmt.Printf("%-56s %12s %10s  %s\n", "figure", "measured", "goal", "")
	for _, g := range goals {
		want := "-"
		if g.op != "" {
			want = fmt.Sprintf("%s %g", g.op, g.bound)
		}
		v, ok := got[g.bench+" "+g.metric]
		switch {
		case !ok:
			fmt.Printf("%-56s %12s %10s  %s\n", g.figure, "-", want, "not measured")
		case g.op == "":
			fmt.Printf("%-56s %12s %10s\n", g.figure, number(v), want)
		default:
			verdict := "FAIL"
			if (g.op == "<" && v < g.bound) || (g.op == ">=" && v >= g.bound) {
				verdict = "pass"
			}
			fmt.Printf("%-56s %12s %10s  %s\n", g.figure, number(v), want, verdict)
		}
	}
}

// number prints v with three significant digits, without an exponent.
func number(v float64) string {
	if v >= 100 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}
