#!/usr/bin/env bash
# Python's grpcio (Debian python3-grpcio) and its code generator (python3-grpc-tools): the
# independent gRPC client and server of spec/integration/grpc-python.spec.ts. Installs them
# with apt-get (root) when the system Python cannot import them. Idempotent.
set -euo pipefail
py=/usr/bin/python3
if [ -x "$py" ] && "$py" -c 'import grpc, grpc_tools.protoc' 2>/dev/null; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "grpc-python.sh: python3-grpcio / python3-grpc-tools are missing and this is not root: run 'apt-get install -y python3-grpcio python3-grpc-tools'" >&2
  exit 1
fi
echo "grpc-python.sh: installing python3-grpcio python3-grpc-tools" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q python3-grpcio python3-grpc-tools >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q python3-grpcio python3-grpc-tools >/dev/null; }
