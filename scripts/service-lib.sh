# Helpers shared by scripts/rabbitmq.sh and scripts/postgres.sh; sourced, not run.
# The sourcing script sets SERVICE (rabbitmq, postgres) and SERVICES_DIR first.

say() { echo "$SERVICE.sh: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

usage() {
  echo "usage: $0 start|stop|restart|status|url" >&2
  exit 2
}

is_root() { [ "$(id -u)" -eq 0 ]; }

# True if something accepts TCP connections on 127.0.0.1:$1.
port_open() {
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# Who listens on a port (best effort, for error messages).
port_owner() {
  if command -v ss >/dev/null 2>&1; then
    ss -Hltnp "sport = :$1" 2>/dev/null | awk '{print $4, $6}' | head -3 | tr '\n' ' '
  fi
}

# apt-get install PACKAGE (root only), output in $SERVICES_DIR/apt-$SERVICE.log.
#   $1 package, $2 what is missing (for the errors), $3 the manual alternative (for the errors)
# The lock (fd 9) is not handed to apt-get: a daemon its post-install script starts would
# otherwise hold it, and every later run would wait for it.
apt_get_install() {
  local pkg="$1" missing="$2" alternative="$3"
  is_root || die "$missing and apt-get needs root: run 'sudo apt-get install -y $pkg' ($alternative) and retry"
  command -v apt-get >/dev/null 2>&1 || die "$missing and apt-get is not available on this machine"
  export DEBIAN_FRONTEND=noninteractive
  local apt_opts=(-o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
  mkdir -p "$SERVICES_DIR"
  local log="$SERVICES_DIR/apt-$SERVICE.log"
  say "installing $pkg with apt-get (first run only; output in $log)"
  if ! apt-get "${apt_opts[@]}" update >"$log" 2>&1 </dev/null 9>&-; then
    tail -n 20 "$log" >&2; die "apt-get update failed"
  fi
  if ! apt-get "${apt_opts[@]}" install -y --no-install-recommends "$pkg" >>"$log" 2>&1 </dev/null 9>&-; then
    tail -n 20 "$log" >&2; die "apt-get install -y $pkg failed"
  fi
}

# Run "$@" holding this service's lock, so concurrent start/stop/restart runs take turns.
with_lock() {
  mkdir -p "$SERVICES_DIR"
  chmod 755 "$SERVICES_DIR" 2>/dev/null || true
  exec 9>>"$SERVICES_DIR/.$SERVICE.lock"
  flock -w 600 9 || die "timed out waiting for another scripts/$SERVICE.sh run (lock $SERVICES_DIR/.$SERVICE.lock)"
  "$@"
}
