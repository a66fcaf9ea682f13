#!/usr/bin/env bash
# Run a private PostgreSQL server on loopback for busbar's integration tests and benchmarks.
#
#   scripts/postgres.sh start|stop|restart|status|url
#
# start    install Debian's postgresql if missing (root only), initdb a cluster of our own in
#          $BUSBAR_SERVICES_DIR/postgres (trust auth, superuser 'postgres'), start it on
#          127.0.0.1:$BUSBAR_PG_PORT (unix socket in the data dir), create the database. No-op if up.
# stop     fast shutdown, waits until the server has exited and the port is closed.
# restart  stop + start (tests use it to exercise reconnection).
# status   exit 0 and print the server version if it is up and serving, exit 3 if not.
# url      print the connection URL.
#
# As root the server runs as the 'postgres' user (initdb and postgres refuse root); otherwise as
# the current user, with binaries from BUSBAR_PG_BINDIR, /usr/lib/postgresql/*/bin or PATH.
#
# Environment:
#   BUSBAR_SERVICES_DIR       base dir for service state (default /tmp/busbar-services)
#   BUSBAR_PG_PORT            TCP port (default 54329, away from a system server on 5432)
#   BUSBAR_PG_DB              database to create (default busbar)
#   BUSBAR_PG_MAX_CONNECTIONS max_connections (default 200)
#   BUSBAR_PG_OPTIONS         extra server options, e.g. "-c fsync=off -c log_statement=all"
#   BUSBAR_PG_BINDIR          directory holding initdb/pg_ctl (default: found automatically)
set -euo pipefail

readonly SERVICES_DIR="${BUSBAR_SERVICES_DIR:-/tmp/busbar-services}"
readonly DATA="$SERVICES_DIR/postgres"
readonly PORT="${BUSBAR_PG_PORT:-54329}"
readonly DB="${BUSBAR_PG_DB:-busbar}"
readonly MAX_CONNECTIONS="${BUSBAR_PG_MAX_CONNECTIONS:-200}"
readonly EXTRA_OPTIONS="${BUSBAR_PG_OPTIONS:-}"
readonly LOG="$DATA/log"
case "$PORT" in '' | *[!0-9]*) echo "postgres.sh: ERROR: BUSBAR_PG_PORT must be a number, got '$PORT'" >&2; exit 2 ;; esac
if [ "$PORT" -lt 1 ] || [ "$PORT" -gt 65535 ]; then
  echo "postgres.sh: ERROR: BUSBAR_PG_PORT must be 1..65535, got $PORT" >&2
  exit 2
fi
case "$MAX_CONNECTIONS" in '' | *[!0-9]*) echo "postgres.sh: ERROR: BUSBAR_PG_MAX_CONNECTIONS must be a number" >&2; exit 2 ;; esac
case "$DB" in '' | *[!A-Za-z0-9_]*) echo "postgres.sh: ERROR: BUSBAR_PG_DB must match [A-Za-z0-9_]+, got '$DB'" >&2; exit 2 ;; esac
readonly SUPERUSER=postgres
readonly DEBIAN_MAJOR=15

readonly SERVICE=postgres
# shellcheck source=scripts/service-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/service-lib.sh"





log_tail() {
  if [ -s "$LOG" ]; then
    echo "----- tail of $LOG -----" >&2
    tail -n 25 "$LOG" >&2 || true
  fi
  return 0
}

fail_with_log() { say "ERROR: $*"; log_tail; exit 1; }

# ---------------------------------------------------------------------------------------------
# Locating / installing the server binaries

# Directory with initdb and pg_ctl. Prefers the major version the data dir was made with.
bindir() {
  local d v
  if [ -n "${BUSBAR_PG_BINDIR:-}" ]; then
    [ -x "$BUSBAR_PG_BINDIR/initdb" ] && [ -x "$BUSBAR_PG_BINDIR/pg_ctl" ] && { echo "$BUSBAR_PG_BINDIR"; return 0; }
    return 1
  fi
  if [ -f "$DATA/PG_VERSION" ] 2>/dev/null; then
    v="$(cat "$DATA/PG_VERSION" 2>/dev/null || true)"
    d="/usr/lib/postgresql/$v/bin"
    [ -n "$v" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
  fi
  d="$(dpkg -L "postgresql-$DEBIAN_MAJOR" 2>/dev/null | grep -E '/bin/pg_ctl$' | head -1 || true)"
  if [ -n "$d" ] && [ -x "$d" ] && [ -x "$(dirname "$d")/initdb" ]; then
    dirname "$d"
    return 0
  fi
  for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -rV); do
    [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
  done
  d="$(command -v pg_ctl 2>/dev/null || true)"
  if [ -n "$d" ]; then
    d="$(dirname "$(readlink -f "$d")")"
    [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  fi
  return 1
}

apt_install() {
  apt_get_install postgresql "PostgreSQL server binaries (initdb, pg_ctl) not found" "or set BUSBAR_PG_BINDIR"
  bindir >/dev/null || die "initdb/pg_ctl not found after apt-get install postgresql"
  say "installed postgresql-$DEBIAN_MAJOR $(dpkg-query -W -f='${Version}' "postgresql-$DEBIAN_MAJOR" 2>/dev/null || echo '?')"
  stop_system_clusters
}

# Debian's package creates and (where services may start) starts a cluster 'main' on 5432.
# We do not use it: stop it and keep it from starting at boot. Only called right after we
# installed the package, so a developer's own system server is left alone.
stop_system_clusters() {
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now postgresql >/dev/null 2>&1 9>&- || true
  fi
  if command -v pg_lsclusters >/dev/null 2>&1; then
    local ver name port status
    while read -r ver name port status _; do
      [ "$status" = online ] || continue
      say "stopping Debian's auto-started cluster $ver/$name on port $port"
      pg_ctlcluster "$ver" "$name" stop -m fast >/dev/null 2>&1 9>&- || true
    done < <(pg_lsclusters -h 2>/dev/null || true)
  fi
}

# ---------------------------------------------------------------------------------------------
# Our server

# Run a command as the user owning the cluster. Never inherit the lock fd (9): the server
# daemonizes and would hold the lock forever. cd / so a 'postgres' user can read the cwd.
as_pg_user() {
  if is_root; then
    (cd / && exec runuser -u postgres -- "$@") 9>&-
  else
    (cd / && exec "$@") 9>&-
  fi
}

pg_ctl_() { as_pg_user "$BIN/pg_ctl" -D "$DATA" "$@"; }

psql_() {
  local psql="$BIN/psql"
  [ -x "$psql" ] || psql="$(command -v psql || true)"
  [ -n "$psql" ] || die "psql not found (install postgresql-client)"
  PGCONNECT_TIMEOUT=5 "$psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U "$SUPERUSER" "$@"
}

# Our postmaster is alive (per its pid file, and that pid really is a postgres process: a stale
# pid file whose pid was reused must not make us signal an unrelated process).
running() {
  local pid
  pid="$(server_pid)"
  [ -n "$pid" ] || return 1
  { grep -q postgres "/proc/$pid/cmdline"; } 2>/dev/null || [ ! -d /proc/self ] || return 1
  pg_ctl_ status >/dev/null 2>&1
}

serving() { psql_ -d postgres -tAc 'select 1' >/dev/null 2>&1; }

server_pid() { head -1 "$DATA/postmaster.pid" 2>/dev/null || true; }

prepare_dirs() {
  mkdir -p "$SERVICES_DIR"
  chmod 755 "$SERVICES_DIR" 2>/dev/null || true
  if is_root; then
    id postgres >/dev/null 2>&1 || die "user 'postgres' does not exist (initdb refuses to run as root): install Debian's postgresql or create it"
  fi
  # The unix socket lives in the data dir: its path must fit in sun_path (107 bytes).
  local sock="$DATA/.s.PGSQL.$PORT"
  [ "${#sock}" -le 100 ] || die "socket path $sock is too long for a unix socket: use a shorter BUSBAR_SERVICES_DIR"
  case "$DATA" in *\'*|*\"*|*\\*) die "BUSBAR_SERVICES_DIR must not contain quotes or backslashes: $DATA" ;; esac
}

init_cluster() {
  if [ -f "$DATA/PG_VERSION" ]; then
    local have want
    have="$(cat "$DATA/PG_VERSION")"
    want="$("$BIN/pg_ctl" --version | sed -E 's/.* ([0-9]+)(\.[0-9]+)?.*/\1/')"
    [ "$have" = "$want" ] || die "$DATA was made by PostgreSQL $have but the binaries in $BIN are $want: remove $DATA (or set BUSBAR_PG_BINDIR)"
    return 0
  fi
  if [ -d "$DATA" ] && [ -n "$(ls -A "$DATA" 2>/dev/null)" ]; then
    die "$DATA exists, is not empty and is not a PostgreSQL data directory (no PG_VERSION): remove it and retry"
  fi
  rmdir "$DATA" 2>/dev/null || true
  # initdb into a scratch dir and rename it into place, so an interrupted run leaves no half cluster.
  local tmp="$DATA.initdb"
  rm -rf "$tmp"
  mkdir -m 700 "$tmp"
  if is_root; then
    chown postgres:postgres "$tmp"
    as_pg_user test -w "$tmp" || die "user 'postgres' cannot write $tmp: make the parents of $SERVICES_DIR traversable (chmod o+x) or set BUSBAR_SERVICES_DIR"
  fi
  local locale_opt=(--no-locale)
  if locale -a 2>/dev/null | grep -qiE '^c\.utf-?8$'; then locale_opt=(--locale=C.UTF-8); fi
  say "initializing a new cluster in $DATA ($("$BIN/pg_ctl" --version | sed 's/^pg_ctl //'))"
  local out
  if ! out="$(as_pg_user "$BIN/initdb" -D "$tmp" -A trust -U "$SUPERUSER" -E UTF8 "${locale_opt[@]}" 2>&1)"; then
    echo "$out" | tail -n 20 >&2
    rm -rf "$tmp"
    die "initdb -D $tmp failed"
  fi
  mv "$tmp" "$DATA"
}

ensure_db() {
  local exists
  exists="$(psql_ -d postgres -tAc "select 1 from pg_database where datname = '$DB'" 2>&1)" \
    || fail_with_log "cannot query the server on 127.0.0.1:$PORT: $exists"
  if [ "$exists" != 1 ]; then
    psql_ -d postgres -c "create database \"$DB\"" >/dev/null 2>&1 || fail_with_log "create database $DB failed"
    say "created database $DB"
  fi
}

do_start() {
  BIN="$(bindir)" || { apt_install; BIN="$(bindir)"; }
  prepare_dirs
  if running; then
    if serving; then
      ensure_db
      say "already running on 127.0.0.1:$PORT (pid $(server_pid))"
      return 0
    fi
    say "server in $DATA is running but not serving on 127.0.0.1:$PORT; restarting it"
    do_stop
  fi
  if port_open "$PORT"; then
    die "port 127.0.0.1:$PORT is already in use by another process ($(port_owner "$PORT")); set BUSBAR_PG_PORT or stop it"
  fi
  init_cluster
  local t0=$SECONDS out
  local opts="-k '$DATA' -h 127.0.0.1 -p $PORT -c max_connections=$MAX_CONNECTIONS $EXTRA_OPTIONS"
  say "starting PostgreSQL on 127.0.0.1:$PORT (data in $DATA)"
  if ! out="$(pg_ctl_ -o "$opts" -l "$LOG" -w -t 60 start 2>&1 </dev/null)"; then
    echo "$out" | tail -n 5 >&2
    fail_with_log "pg_ctl start failed"
  fi
  serving || fail_with_log "server started but does not accept connections on 127.0.0.1:$PORT"
  ensure_db
  say "started PostgreSQL (pid $(server_pid)) on 127.0.0.1:$PORT in $((SECONDS - t0)) s"
}

do_stop() {
  BIN="$(bindir)" || { say "not installed, nothing to stop"; return 0; }
  if ! running; then
    say "not running"
    return 0
  fi
  local pid out
  pid="$(server_pid)"
  say "stopping PostgreSQL (pid $pid, fast mode)"
  if ! out="$(pg_ctl_ -m fast -w -t 60 stop 2>&1)"; then
    echo "$out" | tail -n 3 >&2
    say "fast shutdown did not finish in 60 s; trying immediate mode"
    pg_ctl_ -m immediate -w -t 30 stop >/dev/null 2>&1 || fail_with_log "pg_ctl stop failed for $DATA"
  fi
  local deadline=$((SECONDS + 30))
  while port_open "$PORT" && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
  port_open "$PORT" && die "port 127.0.0.1:$PORT still open after stopping PostgreSQL ($(port_owner "$PORT"))"
  say "stopped"
}

do_restart() {
  do_stop
  do_start
}

do_status() {
  BIN="$(bindir)" || { say "PostgreSQL server binaries are not installed"; return 3; }
  if ! running; then
    say "not running (data dir $DATA, port $PORT)"
    return 3
  fi
  local info
  if ! info="$(psql_ -d postgres -tA -F ' ' -c "select current_setting('server_version'), current_setting('max_connections')" 2>&1)"; then
    say "postmaster pid $(server_pid) is alive but 127.0.0.1:$PORT does not answer: $info"
    return 1
  fi
  echo "running: pid $(server_pid) on 127.0.0.1:$PORT, data in $DATA, binaries in $BIN"
  echo "PostgreSQL ${info% *} (max_connections=${info##* })"
  echo "url: $(url)"
}

url() { echo "postgres://$SUPERUSER@127.0.0.1:$PORT/$DB"; }


BIN=""
[ $# -eq 1 ] || usage
case "$1" in
  start) with_lock do_start ;;
  stop) with_lock do_stop ;;
  restart) with_lock do_restart ;;
  status) do_status ;;
  url) url ;;
  *) usage ;;
esac
