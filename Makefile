# ragpipe's entry points. `make run` starts everything locally; `make test`
# runs every test against real services. Both install what is missing.

SHELL     := /bin/bash
GO        ?= go
BIN       := bin
export PATH := $(PATH):/usr/local/go/bin:$(shell $(GO) env GOPATH 2>/dev/null)/bin

.PHONY: all services stop-services build run test chaos eval bench lint clean

all: build

## services: install (if missing) and start Postgres+pgvector, Redis and versitygw on loopback
services:
	@bash scripts/services.sh

## stop-services: stop the services that `make services` started (never system ones)
stop-services:
	@bash scripts/stop-services.sh

## build: bin/api, bin/worker and bin/ragctl (static)
build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/ ./cmd/api ./cmd/worker ./cmd/ragctl

## run: services + build + the API and one worker in the foreground (Ctrl-C stops both)
run: services build
	@bash scripts/run.sh

## test: services (and Chromium, for the console's browser test, and redis-sentinel,
## for the scale tests) + every test, with the race detector
test:
	@RAGPIPE_SERVICES_BROWSER=1 RAGPIPE_SERVICES_SCALE=1 bash scripts/services.sh
	$(GO) vet ./...
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed on:"; gofmt -l .; exit 1; }
	$(GO) test -race -count=1 -timeout 30m ./...
	$(GO) test -count=1 -run '^TestExtractMemoryBound$$' ./pkg/extract

## chaos: the chaos suite (docs/chaos.md): real processes on services of its own, faults injected
chaos: services build
	RAGPIPE_CHAOS=1 RAGPIPE_CHAOS_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 40m -v -run '^TestChaos$$' ./chaos/

## eval: search quality on BEIR SciFact (docs/search.md): ingests the corpus through the
## API and workers, prints nDCG@10, Recall@100 and latency per mode, then /v1/ask time to
## first token and to the whole answer (docs/ask.md); fails below the floors
eval: services
	RAGPIPE_EVAL=1 $(GO) test -count=1 -timeout 60m -v -run '^TestSciFact$$' ./eval/

## bench: the figures in docs/performance.md, docs/search.md and docs/ask.md:
## upsert rows/s, search on 200,000 chunks (about 20 minutes to load),
## upload-to-ready of a 120-page PDF, what /v1/ask adds to a provider's first
## token, chunking and embedding speed, peak memory per format
## (docs/security.md), PDF pages/s beside pdftotext's and word recall on
## Debian's doc PDFs (scripts/extract-bench.sh), small-document throughput
## and worker scale-out, 1 MB uploads from 50 clients at once; last, the
## issues' figures beside their goals
## (scripts/benchtable)
bench: services
	@mkdir -p .data
	set -o pipefail; $(GO) test -run '^$$' -bench . -benchtime 3x -timeout 90m ./pkg/postgres ./pkg/platform | tee .data/bench.out
	set -o pipefail; $(GO) test -run '^$$' -bench . ./pkg/chunk ./pkg/embed | tee -a .data/bench.out
	RAGPIPE_MEMORY_TABLE=1 $(GO) test -count=1 -v -run '^TestExtractMemoryTable$$' ./pkg/extract
	bash scripts/extract-bench.sh
	@$(GO) run ./scripts/benchtable < .data/bench.out

clean:
	rm -rf $(BIN)
