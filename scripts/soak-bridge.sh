#!/usr/bin/env bash
# The two-broker bridge fault test at the issue's full size: 20,000 messages bridged while each
# broker restarts in turn (0 lost, duplicates counted). The suite runs the same test with 5,000.
#   source .services-env (or set BUSBAR_AMQP_URL/BUSBAR_AMQP_PORT); bash scripts/soak-bridge.sh [count]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/rabbitmq.sh start
bash scripts/rabbitmq-second.sh start
BUSBAR_BRIDGE_MESSAGES="${1:-20000}" npx mocha --timeout 600000 spec/integration/amqp-two-brokers.spec.ts -g bridges
