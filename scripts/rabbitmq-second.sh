#!/usr/bin/env bash
# A second private RabbitMQ node on loopback, for bridges between brokers (two brokers, two
# ports, two node names, two state dirs). It is scripts/rabbitmq.sh with:
#
#   port       BUSBAR_AMQP2_PORT, default BUSBAR_AMQP_PORT + 1 (Erlang distribution: port + 20000)
#   node name  BUSBAR_RABBITMQ2_NODENAME, default the first node's name with "b" appended
#              (rabbit@localhost -> rabbitb@localhost)
#   state      $BUSBAR_SERVICES_DIR/second/rabbitmq
#
#   scripts/rabbitmq-second.sh start|stop|restart|status|url
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
port1="${BUSBAR_AMQP_PORT:-5672}"
node1="${BUSBAR_RABBITMQ_NODENAME:-rabbit@localhost}"
export BUSBAR_AMQP_PORT="${BUSBAR_AMQP2_PORT:-$((port1 + 1))}"
export BUSBAR_RABBITMQ_NODENAME="${BUSBAR_RABBITMQ2_NODENAME:-${node1%%@*}b@${node1#*@}}"
export BUSBAR_SERVICES_DIR="${BUSBAR_SERVICES_DIR:-/tmp/busbar-services}/second"
exec bash "$here/rabbitmq.sh" "$@"
