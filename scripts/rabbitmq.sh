#!/usr/bin/env bash
# Run a private RabbitMQ node on loopback for busbar's integration tests and benchmarks.
#
#   scripts/rabbitmq.sh start|stop|restart|status|url
#
# start    install Debian's rabbitmq-server if missing (root only), then start our own node
#          (default rabbit@localhost) listening on 127.0.0.1:$BUSBAR_AMQP_PORT with its data,
#          logs, config and plugin list under $BUSBAR_SERVICES_DIR/rabbitmq. No-op if healthy.
# stop     stop the node and wait until the AMQP port is closed. No-op if not running.
# restart  stop + start (tests use it to exercise reconnection).
# bounce   stop and start the RabbitMQ application inside the running node (rabbitmqctl
#          stop_app/start_app): every connection drops and durable queues are recovered from
#          disk as in a restart, without the Erlang VM's boot (seconds instead of ~10-20 s).
# status   exit 0 and print versions if the node is up and serving, exit 3 if not.
# url      print the AMQP URL.
#
# Environment:
#   BUSBAR_SERVICES_DIR        base dir for service state (default /tmp/busbar-services)
#   BUSBAR_AMQP_PORT           AMQP port (default 5672); Erlang distribution uses port+20000
#   BUSBAR_RABBITMQ_NODENAME   node name (default rabbit@localhost)
#   BUSBAR_RABBITMQ_PLUGINS    comma-separated plugins to enable, e.g. rabbitmq_stream (default none)
#   BUSBAR_RABBITMQ_START_TIMEOUT  seconds to wait for boot (default 120)
set -euo pipefail

readonly SERVICES_DIR="${BUSBAR_SERVICES_DIR:-/tmp/busbar-services}"
readonly BASE="$SERVICES_DIR/rabbitmq"
readonly PORT="${BUSBAR_AMQP_PORT:-5672}"
readonly NODE="${BUSBAR_RABBITMQ_NODENAME:-rabbit@localhost}"
readonly PLUGINS="${BUSBAR_RABBITMQ_PLUGINS:-}"
readonly START_TIMEOUT="${BUSBAR_RABBITMQ_START_TIMEOUT:-120}"
case "$PORT" in '' | *[!0-9]*) echo "rabbitmq.sh: ERROR: BUSBAR_AMQP_PORT must be a number, got '$PORT'" >&2; exit 2 ;; esac
if [ "$PORT" -lt 1 ] || [ "$PORT" -gt 45535 ]; then
  echo "rabbitmq.sh: ERROR: BUSBAR_AMQP_PORT must be 1..45535 (the Erlang distribution port is AMQP port + 20000), got $PORT" >&2
  exit 2
fi
readonly DIST_PORT=$((PORT + 20000))
readonly PID_FILE="$BASE/rabbit.pid"
readonly LOG_DIR="$BASE/log"
readonly STARTUP_OUT="$BASE/startup.out"
readonly MIN_VERSION="3.10"

readonly SERVICE=rabbitmq
# shellcheck source=scripts/service-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/service-lib.sh"


# Process exists and is not a zombie (a killed daemon may linger unreaped for a moment).
alive() {
  local st
  kill -0 "$1" 2>/dev/null || return 1
  st="$({ sed 's/.*) //' "/proc/$1/stat" | cut -d' ' -f1; } 2>/dev/null || true)"
  [ "$st" != Z ]
}




log_tail() {
  local f seen=" "
  for f in "$STARTUP_OUT" "$LOG_DIR/$NODE.log" "$LOG_DIR"/*.log; do
    [ -s "$f" ] || continue
    case "$seen" in *" $f "*) continue ;; esac
    seen="$seen$f "
    if grep -qE '\[(error|critical)\] <[0-9.]+> [A-Za-z]' "$f"; then
      echo "----- errors in $f -----" >&2
      grep -E '\[(error|critical)\] <[0-9.]+> [A-Za-z]' "$f" | tail -n 6 | cut -c1-300 >&2 || true
    fi
    echo "----- tail of $f -----" >&2
    tail -n 12 "$f" | cut -c1-300 >&2 || true
  done
  [ ! -s "$BASE/erl_crash.dump" ] || say "Erlang crash dump: $BASE/erl_crash.dump"
  return 0
}

fail_with_log() { say "ERROR: $*"; log_tail; exit 1; }

# ---------------------------------------------------------------------------------------------
# Locating / installing the server

# Debian's /usr/sbin/rabbitmq-server and rabbitmqctl are wrappers that re-run the real scripts
# in /usr/lib/rabbitmq/bin as the 'rabbitmq' user (and send the server's output to
# /var/log/rabbitmq). We call the real scripts ourselves: as the 'rabbitmq' user when root
# (HOME=/var/lib/rabbitmq, so the Erlang cookie is the one plain 'rabbitmqctl' uses too), and as
# the current user otherwise (cookie in ~/.erlang.cookie).
real_bin() {
  local p
  if [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] && [ -x /usr/lib/rabbitmq/bin/rabbitmqctl ]; then
    echo /usr/lib/rabbitmq/bin
  elif p="$(command -v rabbitmq-server 2>/dev/null)" && [ -x "$(dirname "$p")/rabbitmqctl" ]; then
    dirname "$p"
  else
    return 1
  fi
}

installed() { real_bin >/dev/null; }

# Run a command as the user that owns our node. Never inherit the lock fd (9): the server and
# epmd daemonize and would hold the lock forever.
as_node_user() {
  if is_root && id rabbitmq >/dev/null 2>&1; then
    (cd / && exec runuser -u rabbitmq -- "$@") 9>&-
  else
    (cd / && exec "$@") 9>&-
  fi
}

apt_install() {
  apt_get_install rabbitmq-server "rabbitmq-server is not installed" "or put rabbitmq-server/rabbitmqctl on PATH"
  installed || die "rabbitmq-server scripts not found after apt-get install (looked in /usr/lib/rabbitmq/bin and PATH)"
  say "installed rabbitmq-server $(dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null || echo '?')"
  stop_system_service
}

# The Debian package starts a system node (rabbit@<hostname>, port 5672, /var/lib/rabbitmq)
# where services may start (systemd, or no policy-rc.d). Stop and disable it so that our node
# owns the port. Only touches that system service, and only as root; called right after the
# install and when our port is taken at start.
stop_system_service() {
  is_root || return 0
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    if systemctl is-enabled --quiet rabbitmq-server 2>/dev/null || systemctl is-active --quiet rabbitmq-server 2>/dev/null; then
      say "stopping and disabling the system rabbitmq-server service"
      systemctl disable --now rabbitmq-server >/dev/null 2>&1 9>&- || true
    fi
  elif [ -x /etc/init.d/rabbitmq-server ]; then
    if system_node_pids | grep -q .; then
      say "stopping the system rabbitmq-server service"
      timeout 60 service rabbitmq-server stop >/dev/null 2>&1 9>&- || true
      update-rc.d rabbitmq-server disable >/dev/null 2>&1 || true
    fi
  fi
  # Whatever is left of it (e.g. started by hand): kill by pid, system node only.
  local pids
  pids="$(system_node_pids)"
  if [ -n "$pids" ]; then
    say "killing leftover system rabbitmq node (pids $pids)"
    # shellcheck disable=SC2086
    kill $pids 2>/dev/null || true
    for _ in $(seq 1 75); do
      pids="$(system_node_pids)"
      [ -n "$pids" ] || break
      sleep 0.2
    done
    # shellcheck disable=SC2086
    [ -z "$pids" ] || kill -9 $pids 2>/dev/null || true
  fi
}

# PIDs of Erlang VMs running Debian's system node: owned by 'rabbitmq', running rabbit, and
# using the default state dir (no RABBITMQ_MNESIA_BASE, or /var/lib/rabbitmq/mnesia). Nodes
# started by this script (any BUSBAR_SERVICES_DIR) always set RABBITMQ_MNESIA_BASE elsewhere.
system_node_pids() {
  local p cmd env mb
  for p in $(pgrep -u rabbitmq beam.smp 2>/dev/null || true); do
    alive "$p" || continue
    env="$({ tr '\0' '\n' <"/proc/$p/environ"; } 2>/dev/null || true)"
    cmd="$({ tr '\0' ' ' <"/proc/$p/cmdline"; } 2>/dev/null || true)"
    grep -q rabbit <<<"$cmd" || continue
    mb="$(sed -n 's/^RABBITMQ_MNESIA_BASE=//p' <<<"$env" | head -1)"
    if [ -z "$mb" ] || [ "${mb%/}" = /var/lib/rabbitmq/mnesia ]; then
      echo "$p"
    fi
  done | tr '\n' ' ' | sed 's/ $//'
}

# ---------------------------------------------------------------------------------------------
# Our node

# Everything the rabbitmq scripts read, so nothing in /etc/rabbitmq or /var/lib/rabbitmq is used.
node_env() {
  export RABBITMQ_NODENAME="$NODE"
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT="$PORT"
  export RABBITMQ_DIST_PORT="$DIST_PORT"
  export RABBITMQ_MNESIA_BASE="$BASE/mnesia"
  export RABBITMQ_LOG_BASE="$LOG_DIR"
  export RABBITMQ_PID_FILE="$PID_FILE"
  export RABBITMQ_CONFIG_FILE="$BASE/rabbitmq.conf"
  export RABBITMQ_ADVANCED_CONFIG_FILE="$BASE/advanced.config"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$BASE/enabled_plugins"
  export RABBITMQ_CONF_ENV_FILE="$BASE/rabbitmq-env.conf"
  export RABBITMQ_PLUGINS_EXPAND_DIR="$BASE/plugins-expand"
  # Distribution listener and epmd on loopback only.
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  export ERL_EPMD_ADDRESS=127.0.0.1
  export ERL_CRASH_DUMP="$BASE/erl_crash.dump"
  # The CLI tools talk to the node by name; nothing else needed.
  unset RABBITMQ_ERLANG_COOKIE 2>/dev/null || true
}

ctl() { as_node_user timeout 120 "$(real_bin)/rabbitmqctl" -n "$NODE" "$@"; }

write_config() {
  mkdir -p "$SERVICES_DIR" "$BASE" "$LOG_DIR" "$BASE/mnesia"
  chmod 755 "$SERVICES_DIR" 2>/dev/null || true
  cat >"$BASE/rabbitmq.conf" <<EOF
# Generated by scripts/rabbitmq.sh: private test node, loopback only.
listeners.tcp.default = 127.0.0.1:$PORT
loopback_users.guest = true
log.file.level = info
log.console = false
disk_free_limit.absolute = 50MB
EOF
  echo "[]." >"$BASE/advanced.config"
  : >"$BASE/rabbitmq-env.conf"
  local list="" p
  if [ -n "$PLUGINS" ]; then
    for p in ${PLUGINS//,/ }; do list="${list:+$list,}$p"; done
  fi
  echo "[$list]." >"$BASE/enabled_plugins"
  # Debian's wrapper runs the server as the 'rabbitmq' user: it must own the state dir.
  if is_root && id rabbitmq >/dev/null 2>&1; then
    chown -R rabbitmq:rabbitmq "$BASE"
  fi
}

node_pid() {
  local pid
  [ -s "$PID_FILE" ] || return 1
  pid="$(tr -dc '0-9' <"$PID_FILE")"
  [ -n "$pid" ] && alive "$pid" && { grep -q beam "/proc/$pid/cmdline"; } 2>/dev/null || return 1
  echo "$pid"
}

# Healthy = our Erlang VM is alive, the AMQP port is open, and the node reports it has booted.
healthy() {
  node_pid >/dev/null || return 1
  port_open "$PORT" || return 1
  ctl await_startup --timeout 15 >/dev/null 2>&1
}

check_version() {
  local v
  v="$(dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null || true)"
  v="${v%%-*}"
  [ -n "$v" ] || return 0
  if [ "$(printf '%s\n%s\n' "$MIN_VERSION" "$v" | sort -V | head -1)" != "$MIN_VERSION" ]; then
    say "WARNING: rabbitmq-server $v is older than $MIN_VERSION: quorum queues/streams may be unsupported"
  fi
}

do_start() {
  installed || apt_install
  node_env
  if healthy; then
    say "already running: $NODE on 127.0.0.1:$PORT"
    return 0
  fi
  # Our VM alive but not serving on the expected port (crashed boot, changed port): start afresh.
  if node_pid >/dev/null; then
    say "node $NODE is up but not serving on 127.0.0.1:$PORT; restarting it"
    do_stop
  fi
  # Debian's system node (auto-started on install, or at boot) would hold 5672: stop it.
  if port_open "$PORT" || port_open "$DIST_PORT"; then
    stop_system_service
  fi
  if port_open "$PORT"; then
    die "port 127.0.0.1:$PORT is already in use by another process ($(port_owner "$PORT")); set BUSBAR_AMQP_PORT or stop it"
  fi
  if port_open "$DIST_PORT"; then
    die "Erlang distribution port $DIST_PORT is already in use ($(port_owner "$DIST_PORT")); set BUSBAR_AMQP_PORT to another port"
  fi
  check_version
  write_config
  rm -f "$PID_FILE" "$BASE/erl_crash.dump"
  # One log per boot (the previous one is kept as .1), so failures show this boot's errors.
  local f
  for f in "$LOG_DIR"/*.log; do [ ! -s "$f" ] || mv -f "$f" "$f.1"; done
  say "starting $NODE on 127.0.0.1:$PORT (state in $BASE)"
  local t0=$SECONDS
  # -detached forks the VM and returns at once.
  as_node_user "$(real_bin)/rabbitmq-server" -detached >"$STARTUP_OUT" 2>&1 </dev/null \
    || fail_with_log "rabbitmq-server -detached failed"

  # Wait for the VM to write its pid file, then for the boot to complete.
  local deadline=$((SECONDS + START_TIMEOUT)) pid=""
  while [ $SECONDS -lt $deadline ]; do
    if pid="$(node_pid)"; then break; fi
    if [ $((SECONDS - t0)) -ge 60 ]; then fail_with_log "node $NODE did not come up (no live pid in $PID_FILE after 60 s)"; fi
    sleep 0.2
  done
  [ -n "$pid" ] || fail_with_log "node $NODE did not start"
  while [ $SECONDS -lt $deadline ]; do
    alive "$pid" || fail_with_log "node $NODE (pid $pid) exited during boot"
    if port_open "$PORT"; then break; fi
    sleep 0.2
  done
  port_open "$PORT" || fail_with_log "node $NODE did not open 127.0.0.1:$PORT within ${START_TIMEOUT}s"
  ctl await_startup --timeout "$START_TIMEOUT" >/dev/null 2>&1 \
    || fail_with_log "rabbitmqctl -n $NODE await_startup failed (node up but not booted, or CLI cannot authenticate: Erlang cookie)"
  say "started $NODE (pid $pid) on 127.0.0.1:$PORT in $((SECONDS - t0)) s"
}

do_stop() {
  node_env
  local pid
  if ! pid="$(node_pid)"; then
    if port_open "$PORT"; then
      say "WARNING: our node is not running, but something else listens on 127.0.0.1:$PORT ($(port_owner "$PORT"))"
    else
      say "not running"
    fi
    rm -f "$PID_FILE"
    return 0
  fi
  say "stopping $NODE (pid $pid)"
  # SIGTERM makes the Erlang VM run init:stop(), the same orderly shutdown as
  # 'rabbitmqctl shutdown', without the ~1 s CLI boot: about 1.5 s in all.
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 60))
  while alive "$pid" && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
  if alive "$pid"; then
    say "pid $pid still alive 60 s after SIGTERM; sending SIGKILL"
    kill -9 "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  deadline=$((SECONDS + 30))
  while port_open "$PORT" && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
  port_open "$PORT" && die "port 127.0.0.1:$PORT still open after stopping $NODE ($(port_owner "$PORT"))"
  rm -f "$PID_FILE"
  say "stopped"
}

do_status() {
  node_env
  if ! installed; then
    say "rabbitmq-server is not installed"
    return 3
  fi
  local pid
  if ! pid="$(node_pid)" || ! port_open "$PORT"; then
    say "not running ($NODE, 127.0.0.1:$PORT)"
    return 3
  fi
  local out flags rv ev quorum stream
  if ! out="$(ctl status 2>&1)"; then
    say "pid $pid is alive but 'rabbitmqctl -n $NODE status' failed:"
    echo "$out" | tail -n 5 >&2
    return 1
  fi
  rv="$(sed -n 's/^RabbitMQ version: //p' <<<"$out" | head -1)"
  ev="$(sed -n 's/^Erlang configuration: //p' <<<"$out" | head -1)"
  flags="$(ctl list_feature_flags --quiet name state 2>/dev/null || true)"
  quorum="$(awk '$1 == "quorum_queue" {print $2}' <<<"$flags")"
  stream="$(awk '$1 == "stream_queue" {print $2}' <<<"$flags")"
  echo "running: $NODE pid $pid on 127.0.0.1:$PORT, state in $BASE"
  echo "RabbitMQ $rv"
  echo "Erlang $ev"
  echo "feature flags: quorum_queue=${quorum:-missing} stream_queue=${stream:-missing}"
  echo "url: $(url)"
  if [ -n "$rv" ] && [ "$(printf '%s\n%s\n' "$MIN_VERSION" "$rv" | sort -V | head -1)" != "$MIN_VERSION" ]; then
    say "WARNING: RabbitMQ $rv is older than $MIN_VERSION: quorum queues/streams may be unsupported"
  fi
  return 0
}

do_restart() {
  do_stop
  do_start
}

do_bounce() {
  node_env
  healthy || die "node $NODE is not running on 127.0.0.1:$PORT (start it first)"
  local t0=$SECONDS
  ctl stop_app >/dev/null || fail_with_log "rabbitmqctl stop_app failed"
  say "stopped the rabbit application of $NODE"
  ctl start_app >/dev/null || fail_with_log "rabbitmqctl start_app failed"
  ctl await_startup --timeout "$START_TIMEOUT" >/dev/null 2>&1 || fail_with_log "node $NODE did not come back after start_app"
  say "bounced $NODE in $((SECONDS - t0)) s"
}

url() { echo "amqp://guest:guest@127.0.0.1:$PORT"; }


[ $# -eq 1 ] || usage
case "$1" in
  start) with_lock do_start ;;
  stop) with_lock do_stop ;;
  restart) with_lock do_restart ;;
  bounce) with_lock do_bounce ;;
  status) do_status ;;
  url) url ;;
  *) usage ;;
esac
