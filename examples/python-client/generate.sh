#!/usr/bin/env bash
# Generates the Python messages and gRPC stubs of all four wfl.v1 protos from proto/ (the single
# source of truth) into ./gen. Needs grpcio-tools (requirements.txt); finds it in ./.deps too.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export PYTHONPATH="$here/.deps${PYTHONPATH:+:$PYTHONPATH}"
if ! python3 -c "import grpc_tools" >/dev/null 2>&1; then
  echo "generate.sh: grpcio-tools is missing; install the requirements first:" >&2
  echo "  python3 -m pip install -r $here/requirements.txt" >&2
  echo "  (a distribution python that refuses (PEP 668): python3 -m pip install --target $here/.deps -r $here/requirements.txt)" >&2
  exit 1
fi
mkdir -p "$here/gen"
python3 -m grpc_tools.protoc -I "$here/../../proto" --python_out="$here/gen" \
  --grpc_python_out="$here/gen" \
  wfl/v1/events.proto wfl/v1/ingest.proto wfl/v1/ledger.proto wfl/v1/views.proto
