#!/usr/bin/env bash
# Generates the Python decoding of wfl.v1 from proto/ (the single source of truth) into ./gen.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export PYTHONPATH="$here/.deps${PYTHONPATH:+:$PYTHONPATH}"
if ! python3 -c "import grpc_tools" >/dev/null 2>&1; then
  echo "generate.sh: grpcio-tools is missing; install the requirements first (README.md):" >&2
  echo "  python3 -m pip install -r $here/requirements.txt" >&2
  exit 1
fi
mkdir -p "$here/gen"
python3 -m grpc_tools.protoc -I "$here/../../proto" --python_out="$here/gen" wfl/v1/events.proto
