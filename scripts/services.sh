#!/usr/bin/env bash
# Starts the local services ragpipe needs: PostgreSQL (with pgvector), Redis
# and an S3-compatible server (versitygw). Installs whatever is missing on a
# Debian/Ubuntu machine. Everything listens on loopback; data lives under
# $REPO/.data/. Idempotent: a second run finds everything up and returns fast.
# A service that already answers at the configured address is used as is.
#
# Configuration (same defaults as compiled into the ragpipe binaries):
#   RAGPIPE_DATABASE_URL   postgres://postgres@127.0.0.1:5432/ragpipe?sslmode=disable
#   RAGPIPE_REDIS_ADDR     127.0.0.1:6379
#   RAGPIPE_S3_ENDPOINT    http://127.0.0.1:7070
#   RAGPIPE_S3_BUCKET      ragpipe
#   RAGPIPE_S3_ACCESS_KEY  ragpipe-local
#   RAGPIPE_S3_SECRET_KEY  ragpipe-local-secret
#   RAGPIPE_SERVICES_SCALE=1   also installs Debian's redis-sentinel (make test:
#                          the scale tests, scale/)
#   RAGPIPE_SERVICES_BROWSER=1 also installs Debian's chromium (make test: the
#                          console's browser test)
#
# Stop what this script started with scripts/stop-services.sh.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="$REPO/.data"

RAGPIPE_DATABASE_URL="${RAGPIPE_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/ragpipe?sslmode=disable}"
RAGPIPE_REDIS_ADDR="${RAGPIPE_REDIS_ADDR:-127.0.0.1:6379}"
RAGPIPE_S3_ENDPOINT="${RAGPIPE_S3_ENDPOINT:-http://127.0.0.1:7070}"
RAGPIPE_S3_BUCKET="${RAGPIPE_S3_BUCKET:-ragpipe}"
RAGPIPE_S3_ACCESS_KEY="${RAGPIPE_S3_ACCESS_KEY:-ragpipe-local}"
RAGPIPE_S3_SECRET_KEY="${RAGPIPE_S3_SECRET_KEY:-ragpipe-local-secret}"
export RAGPIPE_DATABASE_URL RAGPIPE_REDIS_ADDR RAGPIPE_S3_ENDPOINT \
	RAGPIPE_S3_BUCKET RAGPIPE_S3_ACCESS_KEY RAGPIPE_S3_SECRET_KEY

VERSITYGW_VERSION="v1.8.0"
TRIXIE_SRC_FILE="/etc/apt/sources.list.d/ragpipe-trixie-src.sources"

# ---------------------------------------------------------------- helpers --

say() { printf '==> %s\n' "$*"; }
warn() { printf '==> WARNING: %s\n' "$*" >&2; }
die() {
	printf '==> ERROR: %s\n' "$*" >&2
	exit 1
}
trap 'rc=$?; printf "==> ERROR: services.sh failed (exit %s) at line %s: %s\n" "$rc" "$LINENO" "$BASH_COMMAND" >&2' ERR

# run_logged NAME CMD...: runs CMD with output to .data/logs/NAME.log; on
# failure prints the log tail and exits.
run_logged() {
	local name="$1"
	shift
	local log="$DATA/logs/$name.log"
	if ! "$@" >"$log" 2>&1 </dev/null; then
		printf '==> ERROR: %s failed; last lines of %s:\n' "$*" "$log" >&2
		tail -n 30 "$log" >&2 || true
		trap - ERR
		exit 1
	fi
}

# as_root CMD...: runs CMD as root (directly, or through sudo -n).
as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo -n "$@"
	else
		die "need root to run: $*"
	fi
}

is_loopback() {
	case "$1" in
	localhost | 127.* | ::1 | '[::1]') return 0 ;;
	*) return 1 ;;
	esac
}

pid_alive() { # pid_alive PIDFILE
	local pid
	[ -f "$1" ] || return 1
	pid="$(cat "$1" 2>/dev/null || true)"
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

APT_UPDATED=0
apt_update() {
	say "apt: apt-get update"
	run_logged apt-update as_root apt-get update
	APT_UPDATED=1
}

# apt_install PKG...: installs the given packages (callers pass only missing ones).
apt_install() {
	[ "$#" -gt 0 ] || return 0
	command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install manually: $*"
	[ "$APT_UPDATED" -eq 1 ] || apt_update
	say "apt: installing $*"
	run_logged apt-install as_root apt-get install -y --no-install-recommends \
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
}

pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

# ------------------------------------------------------------ configuration --

# Parse postgres://[user[:password]@]host[:port]/dbname[?query]
url="$RAGPIPE_DATABASE_URL"
case "$url" in
postgres://* | postgresql://*) ;;
*) die "RAGPIPE_DATABASE_URL must look like postgres://user@host:port/dbname?sslmode=disable (got: $url)" ;;
esac
rest="${url#*://}"
PG_QUERY=""
case "$rest" in *\?*)
	PG_QUERY="${rest#*\?}"
	rest="${rest%%\?*}"
	;;
esac
PG_DB="${rest#*/}"
[ "$PG_DB" != "$rest" ] && [ -n "$PG_DB" ] || die "RAGPIPE_DATABASE_URL has no database name: $url"
hostpart="${rest%%/*}"
PG_USER="postgres"
PG_PASSWORD=""
case "$hostpart" in *@*)
	userinfo="${hostpart%@*}"
	hostpart="${hostpart##*@}"
	PG_USER="${userinfo%%:*}"
	[ "$userinfo" != "$PG_USER" ] && PG_PASSWORD="${userinfo#*:}"
	;;
esac
PG_HOST="${hostpart%%:*}"
PG_PORT="5432"
[ "$hostpart" != "$PG_HOST" ] && PG_PORT="${hostpart#*:}"
[ -n "$PG_HOST" ] || PG_HOST="127.0.0.1"
[[ "$PG_PORT" =~ ^[0-9]+$ ]] || die "bad port in RAGPIPE_DATABASE_URL: $PG_PORT"
PG_SSLMODE=""
if [[ "$PG_QUERY" =~ (^|&)sslmode=([^&]*) ]]; then PG_SSLMODE="${BASH_REMATCH[2]}"; fi

REDIS_HOST="${RAGPIPE_REDIS_ADDR%:*}"
REDIS_PORT="${RAGPIPE_REDIS_ADDR##*:}"
[ "$REDIS_HOST" != "$RAGPIPE_REDIS_ADDR" ] || REDIS_PORT=6379
[ -n "$REDIS_HOST" ] || REDIS_HOST="127.0.0.1"
[[ "$REDIS_PORT" =~ ^[0-9]+$ ]] || die "bad port in RAGPIPE_REDIS_ADDR: $RAGPIPE_REDIS_ADDR"

s3rest="${RAGPIPE_S3_ENDPOINT#*://}"
s3rest="${s3rest%%/*}"
S3_HOST="${s3rest%:*}"
S3_PORT="${s3rest##*:}"
if [ "$S3_HOST" = "$s3rest" ]; then
	case "$RAGPIPE_S3_ENDPOINT" in https://*) S3_PORT=443 ;; *) S3_PORT=80 ;; esac
fi
[[ "$S3_PORT" =~ ^[0-9]+$ ]] || die "bad port in RAGPIPE_S3_ENDPOINT: $RAGPIPE_S3_ENDPOINT"

mkdir -p "$DATA/logs"

# Keep .data/ and bin/ out of git.
gi="$REPO/.gitignore"
for pat in .data/ bin/; do
	if ! { [ -f "$gi" ] && grep -qxF "$pat" "$gi"; }; then
		if [ -s "$gi" ] && [ -n "$(tail -c1 "$gi")" ]; then echo >>"$gi"; fi
		echo "$pat" >>"$gi"
	fi
done

# ---------------------------------------------------------- probes (cheap) --

pg_up() { # exit status of pg_isready: 0 up, 1 starting/rejecting, 2 no answer
	local rc=0
	pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 3 >/dev/null 2>&1 || rc=$?
	return "$rc"
}

redis_up() {
	[ "$(timeout 5 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null </dev/null)" = "PONG" ]
}

s3_up() {
	local code
	code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$RAGPIPE_S3_ENDPOINT/" 2>/dev/null || true)"
	[ -n "$code" ] && [ "$code" != "000" ]
}

newest_pg_bin() {
	local d
	d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)"
	[ -n "$d" ] && [ -x "$d/postgres" ] && echo "$d"
}

# ------------------------------------------------------------ apt packages --

missing=()
command -v pdftotext >/dev/null 2>&1 || missing+=(poppler-utils)
command -v curl >/dev/null 2>&1 || missing+=(curl)
# tesseract: OCR of PDF pages without a text layer (pkg/extract; tests use it).
if ! command -v tesseract >/dev/null 2>&1 || [ ! -e /usr/share/tesseract-ocr/5/tessdata/eng.traineddata ]; then
	missing+=(tesseract-ocr tesseract-ocr-eng)
fi
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
	missing+=(redis-server)
fi
# chromium: the web console's tests drive it headless (pkg/platform/console_test.go);
# make test asks for it, make run does not need it.
if [ "${RAGPIPE_SERVICES_BROWSER:-0}" = 1 ] && ! command -v chromium >/dev/null 2>&1; then
	missing+=(chromium)
fi
# redis-sentinel: the scale tests (scale/) run a Sentinel group of their own,
# beside a Redis Cluster and a Postgres primary with a streaming replica made
# by pg_basebackup, all from Debian's binaries; make test asks for it.
if [ "${RAGPIPE_SERVICES_SCALE:-0}" = 1 ] && ! command -v redis-sentinel >/dev/null 2>&1; then
	missing+=(redis-sentinel)
fi
if [ -z "$(newest_pg_bin || true)" ]; then
	missing+=(postgresql)
elif ! command -v psql >/dev/null 2>&1 || ! command -v pg_isready >/dev/null 2>&1; then
	missing+=(postgresql-client)
fi
if [ "${#missing[@]}" -gt 0 ]; then
	apt_install "${missing[@]}"
else
	say "apt: packages present (poppler-utils, tesseract-ocr, redis, postgresql, curl${RAGPIPE_SERVICES_BROWSER:+, chromium})"
fi

# -------------------------------------------------------------- PostgreSQL --

export PGHOST="$PG_HOST" PGPORT="$PG_PORT" PGUSER="$PG_USER" PGCONNECT_TIMEOUT=5
[ -n "$PG_PASSWORD" ] && export PGPASSWORD="$PG_PASSWORD"
[ -n "$PG_SSLMODE" ] && export PGSSLMODE="$PG_SSLMODE"

# psql_q DB SQL: runs SQL, prints unaligned tuples-only output.
psql_q() { PGOPTIONS="-c client_min_messages=warning" psql -X -w -q -At -v ON_ERROR_STOP=1 -d "$1" -c "$2" </dev/null; }

# Files of servers started here; a non-default port gets its own set (suffix -PORT).
PG_SFX=""
[ "$PG_PORT" = 5432 ] || PG_SFX="-$PG_PORT"
PG_DIR="$DATA/postgres$PG_SFX"
PG_LOG="$DATA/postgres$PG_SFX.log"
PG_SOCK="$DATA/pgsock"
# Unix socket paths are limited to ~107 bytes.
if [ "${#PG_SOCK}" -gt 80 ]; then PG_SOCK="/tmp/ragpipe-pgsock-$(id -u)"; fi

# pg_run CMD...: runs a postgres server tool as the cluster owner.
pg_run() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

start_own_postgres() {
	local bin
	bin="$(newest_pg_bin)" || die "no PostgreSQL server binaries under /usr/lib/postgresql"
	is_loopback "$PG_HOST" || die "postgres: nothing answers at $PG_HOST:$PG_PORT and it is not a loopback address; refusing to start a server there"
	if [ "$(id -u)" -eq 0 ]; then
		id postgres >/dev/null 2>&1 || die "postgres: system user 'postgres' missing (it comes with the postgresql packages)"
	fi
	mkdir -p "$PG_DIR" "$PG_SOCK"
	if [ "$(id -u)" -eq 0 ]; then
		chown postgres: "$PG_DIR" "$PG_SOCK"
		chmod 700 "$PG_DIR"
		touch "$PG_LOG" && chown postgres: "$PG_LOG"
		runuser -u postgres -- test -w "$PG_DIR" ||
			die "postgres: user 'postgres' cannot write $PG_DIR (a parent directory is not accessible to it)"
	fi
	if [ ! -f "$PG_DIR/PG_VERSION" ]; then
		say "postgres: initdb in $PG_DIR ($bin)"
		run_logged initdb pg_run "$bin/initdb" -D "$PG_DIR" -U "$PG_USER" --auth=trust -E UTF8 --locale=C.UTF-8
	fi
	local dv
	dv="$(cat "$PG_DIR/PG_VERSION")"
	[ -x "/usr/lib/postgresql/$dv/bin/postgres" ] || die "postgres: $PG_DIR was made by PostgreSQL $dv, which is not installed"
	bin="/usr/lib/postgresql/$dv/bin"
	if pg_run "$bin/pg_ctl" -D "$PG_DIR" status >/dev/null 2>&1; then
		die "postgres: the cluster in $PG_DIR is already running but not at $PG_HOST:$PG_PORT; run scripts/stop-services.sh first"
	fi
	say "postgres: starting PostgreSQL $dv at $PG_HOST:$PG_PORT (data $PG_DIR, log $PG_LOG)"
	local listen="$PG_HOST"
	[ "$listen" = "[::1]" ] && listen="::1"
	if ! pg_run "$bin/pg_ctl" -D "$PG_DIR" -l "$PG_LOG" -w -t 60 \
		-o "-c listen_addresses=$listen -p $PG_PORT -k $PG_SOCK" start >"$DATA/logs/pg_ctl.log" 2>&1 </dev/null; then
		echo "==> ERROR: postgres: pg_ctl start failed; last lines of $PG_LOG:" >&2
		tail -n 20 "$PG_LOG" >&2 || true
		trap - ERR
		exit 1
	fi
}

pg_rc=0
pg_up || pg_rc=$?
if [ "$pg_rc" -eq 1 ]; then # answering but not accepting yet (starting up)
	for _ in $(seq 1 30); do
		pg_rc=0
		pg_up || pg_rc=$?
		[ "$pg_rc" -eq 1 ] || break
		sleep 1
	done
fi
if [ "$pg_rc" -eq 0 ]; then
	PG_STARTED=0
	# Did an earlier run of this script start it?
	if [ -f "$PG_DIR/postmaster.pid" ] && [ "$(sed -n 4p "$PG_DIR/postmaster.pid" 2>/dev/null)" = "$PG_PORT" ]; then
		PG_STARTED=2
	fi
else
	start_own_postgres
	PG_STARTED=1
	pg_up || die "postgres: nothing accepts connections at $PG_HOST:$PG_PORT"
fi

# One round trip for everything we need to know (psql is slow to start).
pg_facts="$(psql_q postgres "SELECT current_setting('server_version_num'),
	(SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user),
	EXISTS (SELECT 1 FROM pg_database WHERE datname = '${PG_DB//\'/\'\'}'),
	EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector')")" ||
	die "postgres: cannot connect as '$PG_USER' to $PG_HOST:$PG_PORT"
IFS='|' read -r server_num can_createdb db_exists vector_available <<<"$pg_facts"
PG_MAJOR=$((server_num / 10000))
PG_BIN="/usr/lib/postgresql/$PG_MAJOR/bin"

# The role must be able to create databases (tests make one per test).
if [ "$can_createdb" != "t" ]; then
	say "postgres: granting CREATEDB to $PG_USER"
	psql_q postgres "ALTER ROLE CURRENT_USER CREATEDB" >/dev/null ||
		die "postgres: role '$PG_USER' cannot create databases and cannot be granted CREATEDB; run as a superuser: ALTER ROLE \"$PG_USER\" CREATEDB"
fi

if [ "$db_exists" != "t" ]; then
	say "postgres: creating database $PG_DB"
	createdb -w -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" "$PG_DB" </dev/null || die "postgres: createdb $PG_DB failed"
fi

# ---------------------------------------------------------------- pgvector --

have_trixie_src() {
	local f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		grep -qE '^[[:space:]]*deb-src[[:space:]].*[[:space:]]trixie([[:space:]]|$)' "$f" && return 0
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		# Good enough for one-stanza files like the one this script writes.
		grep -qiE '^Types:.*deb-src' "$f" && grep -qiE '^Suites:.*(^|[[:space:]])trixie([[:space:]]|$)' "$f" && return 0
	done
	return 1
}

build_pgvector() {
	[ -x "$PG_BIN/pg_config" ] || [ -x "$PG_BIN/postgres" ] ||
		die "pgvector: server is PostgreSQL $PG_MAJOR but $PG_BIN is not installed here; install pgvector on that server"
	local need=()
	pkg_installed "postgresql-server-dev-$PG_MAJOR" || need+=("postgresql-server-dev-$PG_MAJOR")
	pkg_installed build-essential || need+=(build-essential)
	[ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || need+=(debian-archive-keyring)
	apt_install "${need[@]+"${need[@]}"}"
	[ -x "$PG_BIN/pg_config" ] || die "pgvector: $PG_BIN/pg_config missing after installing postgresql-server-dev-$PG_MAJOR"

	if ! have_trixie_src; then
		say "pgvector: adding Debian trixie deb-src entry ($TRIXIE_SRC_FILE)"
		as_root tee "$TRIXIE_SRC_FILE" >/dev/null <<-'EOF'
			Types: deb-src
			URIs: http://deb.debian.org/debian
			Suites: trixie
			Components: main
			Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
		EOF
		apt_update
	elif [ -z "$(apt-cache showsrc pgvector 2>/dev/null | head -n1)" ]; then
		apt_update
	fi
	[ -n "$(apt-cache showsrc pgvector 2>/dev/null | head -n1)" ] ||
		die "pgvector: apt knows no source package 'pgvector' even with a trixie deb-src entry"

	local build="$DATA/build/pgvector"
	rm -rf "$build"
	mkdir -p "$build"
	say "pgvector: downloading Debian source package"
	cd "$build"
	run_logged pgvector-source apt-get source --download-only pgvector
	cd "$REPO"
	local tarball src
	tarball="$(ls "$build"/pgvector_*.orig.tar.* 2>/dev/null | sort -V | tail -n1 || true)"
	[ -n "$tarball" ] || die "pgvector: no pgvector_*.orig.tar.* downloaded into $build"
	tar -xf "$tarball" -C "$build"
	src="$(find "$build" -mindepth 2 -maxdepth 2 -name Makefile -printf '%h\n' | head -n1)"
	[ -n "$src" ] || die "pgvector: no Makefile in $tarball"
	say "pgvector: building $(basename "$src") for PostgreSQL $PG_MAJOR"
	run_logged pgvector-build make -C "$src" PG_CONFIG="$PG_BIN/pg_config" OPTFLAGS=""
	run_logged pgvector-install as_root make -C "$src" install PG_CONFIG="$PG_BIN/pg_config"
}

# The server itself says whether $(pg_config --sharedir)/extension/vector.control
# exists for its version (works for a server of any origin).
if [ "$vector_available" != "t" ]; then
	build_pgvector
	[ "$(psql_q postgres "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")" = "1" ] ||
		die "pgvector: installed, but the server at $PG_HOST:$PG_PORT still does not offer the 'vector' extension"
fi
vec_version="$(PGOPTIONS="-c client_min_messages=warning" psql -X -w -q -At -v ON_ERROR_STOP=1 -d "$PG_DB" \
	-c "CREATE EXTENSION IF NOT EXISTS vector" \
	-c "SELECT extversion FROM pg_extension WHERE extname = 'vector'" </dev/null)" ||
	die "pgvector: CREATE EXTENSION vector failed in database $PG_DB"
[ -n "$vec_version" ] || die "pgvector: extension missing in database $PG_DB"

if [ "$PG_STARTED" -eq 1 ]; then
	say "postgres: up at $PG_HOST:$PG_PORT (started, data $PG_DIR), database $PG_DB, pgvector $vec_version"
elif [ "$PG_STARTED" -eq 2 ]; then
	say "postgres: up at $PG_HOST:$PG_PORT (started earlier, data $PG_DIR), database $PG_DB, pgvector $vec_version"
else
	say "postgres: up at $PG_HOST:$PG_PORT (existing server), database $PG_DB, pgvector $vec_version"
fi

# ------------------------------------------------------------------- Redis --

REDIS_SFX=""
[ "$REDIS_PORT" = 6379 ] || REDIS_SFX="-$REDIS_PORT"
REDIS_DIR="$DATA/redis$REDIS_SFX"
REDIS_LOG="$DATA/redis$REDIS_SFX.log"
REDIS_PID="$DATA/redis$REDIS_SFX.pid"
if redis_up; then
	policy="$(timeout 5 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" --raw CONFIG GET maxmemory-policy 2>/dev/null </dev/null | sed -n 2p || true)"
	if [ -n "$policy" ] && [ "$policy" != "noeviction" ]; then
		warn "redis: maxmemory-policy is '$policy' at $REDIS_HOST:$REDIS_PORT; queues need 'noeviction' (redis-cli CONFIG SET maxmemory-policy noeviction)"
	fi
	if pid_alive "$REDIS_PID"; then
		say "redis: up at $REDIS_HOST:$REDIS_PORT (started earlier, pid $(cat "$REDIS_PID"))"
	else
		say "redis: up at $REDIS_HOST:$REDIS_PORT (existing server)"
	fi
else
	is_loopback "$REDIS_HOST" || die "redis: nothing answers at $REDIS_HOST:$REDIS_PORT and it is not a loopback address; refusing to start a server there"
	if pid_alive "$REDIS_PID"; then
		die "redis: the server started earlier (pid $(cat "$REDIS_PID")) is not answering at $REDIS_HOST:$REDIS_PORT; run scripts/stop-services.sh first"
	fi
	mkdir -p "$REDIS_DIR"
	say "redis: starting at $REDIS_HOST:$REDIS_PORT (data $REDIS_DIR, log $REDIS_LOG)"
	redis-server --daemonize yes --bind "$REDIS_HOST" --port "$REDIS_PORT" \
		--dir "$REDIS_DIR" --appendonly yes --maxmemory-policy noeviction \
		--logfile "$REDIS_LOG" --pidfile "$REDIS_PID" </dev/null >/dev/null ||
		die "redis: redis-server failed to start; see $REDIS_LOG"
	for _ in $(seq 1 50); do
		redis_up && break
		sleep 0.2
	done
	if ! redis_up; then
		echo "==> ERROR: redis: not answering at $REDIS_HOST:$REDIS_PORT after 10s; last lines of $REDIS_LOG:" >&2
		tail -n 20 "$REDIS_LOG" >&2 || true
		trap - ERR
		exit 1
	fi
	say "redis: up at $REDIS_HOST:$REDIS_PORT (started, pid $(cat "$REDIS_PID" 2>/dev/null || echo '?'))"
fi

# ---------------------------------------------------------- S3 (versitygw) --

VGW_SFX=""
[ "$S3_PORT" = 7070 ] || VGW_SFX="-$S3_PORT"
VGW_DIR="$DATA/s3$VGW_SFX"
VGW_PID="$DATA/versitygw$VGW_SFX.pid"
VGW_LOG="$DATA/versitygw$VGW_SFX.log"

find_versitygw() {
	local gobin
	if command -v versitygw >/dev/null 2>&1; then
		command -v versitygw
		return 0
	fi
	gobin="$(go env GOBIN 2>/dev/null || true)"
	[ -n "$gobin" ] || gobin="$(go env GOPATH 2>/dev/null | cut -d: -f1)/bin"
	if [ -x "$gobin/versitygw" ]; then
		echo "$gobin/versitygw"
		return 0
	fi
	return 1
}

if s3_up; then
	if pid_alive "$VGW_PID"; then
		say "s3: versitygw answers at $RAGPIPE_S3_ENDPOINT (started earlier, pid $(cat "$VGW_PID"))"
	else
		say "s3: endpoint $RAGPIPE_S3_ENDPOINT answers (existing server)"
	fi
else
	is_loopback "$S3_HOST" || die "s3: nothing answers at $RAGPIPE_S3_ENDPOINT and it is not a loopback address; refusing to start a server there"
	command -v go >/dev/null 2>&1 || die "s3: Go is needed to install versitygw (and to create the bucket)"
	if ! VGW="$(find_versitygw)"; then
		say "s3: installing versitygw $VERSITYGW_VERSION with go install (takes a minute or two)"
		cd "$DATA"
		run_logged versitygw-install env GOFLAGS= go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
		cd "$REPO"
		VGW="$(find_versitygw)" || die "s3: versitygw not found after go install"
	fi
	if pid_alive "$VGW_PID"; then
		die "s3: versitygw started earlier (pid $(cat "$VGW_PID")) is not answering at $RAGPIPE_S3_ENDPOINT; run scripts/stop-services.sh first"
	fi
	mkdir -p "$VGW_DIR"
	say "s3: starting versitygw at $S3_HOST:$S3_PORT (data $VGW_DIR, log $VGW_LOG)"
	# Credentials go through the environment so they don't show up in ps.
	ROOT_ACCESS_KEY="$RAGPIPE_S3_ACCESS_KEY" ROOT_SECRET_KEY="$RAGPIPE_S3_SECRET_KEY" \
		nohup setsid "$VGW" --quiet --port "$S3_HOST:$S3_PORT" posix "$VGW_DIR" \
		>"$VGW_LOG" 2>&1 </dev/null &
	echo $! >"$VGW_PID"
	for _ in $(seq 1 60); do
		s3_up && break
		pid_alive "$VGW_PID" || break
		sleep 0.5
	done
	if ! s3_up; then
		if pid_alive "$VGW_PID"; then
			echo "==> ERROR: s3: versitygw not answering at $RAGPIPE_S3_ENDPOINT after 30s; last lines of $VGW_LOG:" >&2
		else
			echo "==> ERROR: s3: versitygw exited; last lines of $VGW_LOG:" >&2
		fi
		rm -f "$VGW_PID"
		tail -n 20 "$VGW_LOG" >&2 || true
		trap - ERR
		exit 1
	fi
	say "s3: versitygw started (pid $(cat "$VGW_PID"))"
fi

command -v go >/dev/null 2>&1 || die "s3: Go is needed to create the bucket (go run ./scripts/mkbucket)"
bucket_state="$(cd "$REPO" && go run ./scripts/mkbucket </dev/null)" ||
	die "s3: could not make sure bucket '$RAGPIPE_S3_BUCKET' exists at $RAGPIPE_S3_ENDPOINT"
say "s3: up at $RAGPIPE_S3_ENDPOINT, bucket $RAGPIPE_S3_BUCKET ($bucket_state)"

command -v pdftotext >/dev/null 2>&1 || die "pdftotext missing (package poppler-utils)"
say "all services up"
