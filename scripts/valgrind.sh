#!/usr/bin/env bash
# valgrind (cachegrind) for the routes-cache bench: `start` installs it with apt-get when it is
# missing (root only), `status` says whether it is there.
set -euo pipefail
case "${1:-start}" in
  status) command -v valgrind >/dev/null 2>&1 ;;
  start)
    command -v valgrind >/dev/null 2>&1 && exit 0
    if [ "$(id -u)" -ne 0 ]; then
      echo "valgrind.sh: valgrind is missing and this is not root: run 'apt-get install -y valgrind'" >&2
      exit 1
    fi
    echo "valgrind.sh: installing valgrind" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q valgrind >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q valgrind >/dev/null; }
    ;;
  *) echo "usage: valgrind.sh start|status" >&2; exit 2 ;;
esac
