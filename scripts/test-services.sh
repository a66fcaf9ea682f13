#!/usr/bin/env bash
# Everything the integration tests talk to, on loopback: a real RabbitMQ, a real PostgreSQL,
# and Perl's SOAP::Lite (a SOAP client and server nobody here wrote). Installs what is
# missing with apt-get (root), starts what is not running. Idempotent and quick when ready.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

if ! perl -MSOAP::Lite -MSOAP::Transport::HTTP -MJSON::PP -e 1 2>/dev/null; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "test-services.sh: Perl SOAP::Lite is missing and this is not root: run 'apt-get install -y libsoap-lite-perl'" >&2
    exit 1
  fi
  echo "test-services.sh: installing libsoap-lite-perl" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q libsoap-lite-perl >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q libsoap-lite-perl >/dev/null; }
fi

# need_tool CMD PACKAGE [apt flags]: install PACKAGE with apt-get when CMD is missing (root only)
need_tool() {
  local cmd=$1 pkg=$2
  shift 2
  command -v "$cmd" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "test-services.sh: $cmd is missing and this is not root: run 'apt-get install -y $pkg'" >&2
    exit 1
  fi
  echo "test-services.sh: installing $pkg (for $cmd)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "$@" "$pkg" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q "$@" "$pkg" >/dev/null; }
}

# libxml2's xmllint: the oracle of the XML codec's well-formedness spec
need_tool xmllint libxml2-utils

# Prometheus's promtool: the linter the metrics spec runs the /metrics exposition through
need_tool promtool prometheus --no-install-recommends

# strace: the event log's durability spec watches a producer's real system calls (fdatasync before the confirm)
need_tool strace strace

# Debian's amqp-tools (librabbitmq): the third-party AMQP clients of docs/command-line-clients.md
need_tool amqp-publish amqp-tools

# Python's grpcio: the independent gRPC peer of the grpc specs
bash "$here/grpc-python.sh"

# one after the other: on a fresh machine both run apt-get, which takes a lock
bash "$here/rabbitmq.sh" start
# a second broker on the next port, for the bridge tests (scripts/rabbitmq-second.sh)
bash "$here/rabbitmq-second.sh" start
bash "$here/postgres.sh" start
# the browser of the console tests (Debian's chromium, driven by playwright-core)
bash "$here/chromium.sh" install
