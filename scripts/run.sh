#!/usr/bin/env bash
# Runs the API and one worker in the foreground with labelled logs. Ctrl-C
# (or either process exiting) stops both. Expects bin/ built and the services
# up: `make run` does both first.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

pids=()
stop() {
	trap - INT TERM EXIT
	kill -TERM "${pids[@]}" 2>/dev/null || true
	wait 2>/dev/null || true
}
trap stop INT TERM EXIT

./bin/api > >(sed -u 's/^/api    | /') 2>&1 &
pids+=($!)
./bin/worker > >(sed -u 's/^/worker | /') 2>&1 &
pids+=($!)

echo "ragpipe: API on http://${RAGPIPE_HTTP_ADDR:-127.0.0.1:8080}, one worker; Ctrl-C stops both"
wait -n "${pids[@]}"
