#!/usr/bin/env bash
# Generates the Python decoding of wfl.v1 from proto/ (the single source of truth) into ./gen.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$here/gen"
python3 -m grpc_tools.protoc -I "$here/../../proto" --python_out="$here/gen" wfl/v1/events.proto
