# syntax=docker/dockerfile:1
#
# One image for all three ragpipe binaries (api, worker, ragctl). They share
# every package, are built from one source tree in one go, and must run the
# same version against the same schema and queue payloads; one image keeps
# them in step and is built once. The worker needs poppler's pdftotext and
# util-linux's prlimit at run time (extraction runs pdftotext under an
# address-space limit), so they are in the runtime stage; the API does not
# use them and is none the worse for having them.
#
#   docker build -t ragpipe .
#   docker run ragpipe                 # the API (default command)
#   docker run ragpipe worker          # a pipeline worker
#   docker run ragpipe ragctl migrate  # the operator tool
#
# Configuration is RAGPIPE_* environment variables; see docs/configuration.md.
# docker-compose.yml runs the whole stack.

# ---------------------------------------------------------------- build --
FROM golang:1.26-bookworm AS build
WORKDIR /src

# Modules first, so a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

# Only what the binaries are built from: the build context also holds .data/
# (local service data from `make services`) and bin/, which must not end up
# in the image.
COPY cmd ./cmd
COPY pkg ./pkg
COPY docs ./docs
COPY migrations ./migrations

RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -o /out/ ./cmd/api ./cmd/worker ./cmd/ragctl

# -------------------------------------------------------------- runtime --
FROM debian:bookworm-slim

# poppler-utils: pdftotext, the PDF text extractor the worker runs (and
#   pdfinfo, pdfimages, pdftoppm for page counts and OCR, pdftohtml for the
#   outline that gives PDF chunks their sections).
# tesseract-ocr, tesseract-ocr-eng: OCR of scanned pages (about 30 MB).
# util-linux: prlimit, which caps pdftotext's memory from its first instruction.
# ca-certificates: TLS to S3, Postgres, Redis or an embeddings provider.
# curl: the compose healthcheck of the API (GET /readyz).
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        ca-certificates \
        curl \
        poppler-utils \
        tesseract-ocr \
        tesseract-ocr-eng \
        util-linux \
    && rm -rf /var/lib/apt/lists/*

# A fixed, unprivileged user. The processes write nothing but temporary files
# (the worker stages uploads in /tmp for pdftotext).
RUN groupadd --system --gid 10001 ragpipe \
    && useradd --system --uid 10001 --gid ragpipe --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin ragpipe

COPY --from=build /out/ /usr/local/bin/

USER ragpipe:ragpipe
WORKDIR /tmp

# Inside a container the API must listen on every interface, not loopback
# (the compiled-in default, right for a developer machine).
ENV RAGPIPE_HTTP_ADDR=0.0.0.0:8080
EXPOSE 8080

# SIGTERM (Docker's default stop signal) starts a graceful shutdown that
# lasts up to RAGPIPE_SHUTDOWN_GRACE (30s): give `docker stop` at least that.
CMD ["api"]
