#!/usr/bin/env bash
# Stops the services that scripts/services.sh started (servers whose data and
# pid files are under $REPO/.data/). Never touches system services or servers
# that services.sh found already running. Data is kept.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="$REPO/.data"

say() { printf '==> %s\n' "$*"; }

failed=0

# stop_pidfile NAME PIDFILE EXPECTED_COMMAND: stops the process in PIDFILE if
# it is alive and really is EXPECTED_COMMAND (pids get reused).
stop_pidfile() {
	local name="$1" pidfile="$2" expect="$3" pid cmd
	pid="$(cat "$pidfile" 2>/dev/null || true)"
	if ! [[ "$pid" =~ ^[0-9]+$ ]] || ! kill -0 "$pid" 2>/dev/null; then
		rm -f "$pidfile"
		say "$name: not running"
		return 0
	fi
	cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
	case "$cmd" in
	*"$expect"*) ;;
	*)
		say "$name: pid $pid from $pidfile is not $expect (it is: ${cmd:-?}); leaving it alone"
		rm -f "$pidfile"
		return 0
		;;
	esac
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		say "$name: pid $pid did not stop after 10s; sending SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
		sleep 0.2
	fi
	if kill -0 "$pid" 2>/dev/null; then
		echo "==> ERROR: $name: could not stop pid $pid" >&2
		failed=1
		return 0
	fi
	rm -f "$pidfile"
	say "$name: stopped (pid $pid)"
}

[ -d "$DATA" ] || {
	say "nothing to stop ($DATA does not exist)"
	exit 0
}

shopt -s nullglob

for pidfile in "$DATA"/versitygw*.pid; do
	base="$(basename "$pidfile" .pid)"
	stop_pidfile "s3 ($base)" "$pidfile" versitygw
done

for pidfile in "$DATA"/redis*.pid; do
	base="$(basename "$pidfile" .pid)"
	stop_pidfile "redis ($base)" "$pidfile" redis-server
done

for verfile in "$DATA"/postgres*/PG_VERSION; do
	dir="$(dirname "$verfile")"
	ver="$(cat "$verfile")"
	pg_ctl="/usr/lib/postgresql/$ver/bin/pg_ctl"
	name="postgres ($(basename "$dir"))"
	if [ ! -x "$pg_ctl" ]; then
		echo "==> ERROR: $name: $pg_ctl not found" >&2
		failed=1
		continue
	fi
	run=()
	if [ "$(id -u)" -eq 0 ]; then run=(runuser -u postgres --); fi
	if ! "${run[@]}" "$pg_ctl" -D "$dir" status >/dev/null 2>&1; then
		say "$name: not running"
		continue
	fi
	if "${run[@]}" "$pg_ctl" -D "$dir" -m fast -w -t 60 stop >/dev/null 2>&1 </dev/null; then
		say "$name: stopped"
	else
		echo "==> ERROR: $name: pg_ctl stop failed" >&2
		failed=1
	fi
done

exit "$failed"
