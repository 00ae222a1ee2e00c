#!/usr/bin/env bash
# Benchmarks PDF extraction against pdftotext on real PDFs nobody here wrote:
# Debian's texlive-latex-base-doc and gnuplot-doc packages, fetched with
# apt-get download into .data/bench-pdfs (not committed) and unpacked with
# dpkg -x. Prints pages/s of Extract beside pdftotext's, on one core, and the
# multiset word recall of Extract against pdftotext. See docs/extraction.md.
#
#   bash scripts/extract-bench.sh            # fetch once, then benchmark
set -euo pipefail
cd "$(dirname "$0")/.."
dir=.data/bench-pdfs
if [ ! -d "$dir/x" ]; then
	mkdir -p "$dir"
	(cd "$dir" && apt-get download texlive-latex-base-doc gnuplot-doc)
	for deb in "$dir"/*.deb; do dpkg -x "$deb" "$dir/x"; done
fi
echo "PDFs: $(find "$dir/x" -name '*.pdf' | wc -l) under $dir/x" >&2
export RAGPIPE_BENCH_PDF_DIR="$PWD/$dir/x"
exec taskset -c 0 env GOMAXPROCS=1 go test ./pkg/extract/ -run '^$' -bench '^BenchmarkCorpus$' -benchtime 1x -timeout 60m
