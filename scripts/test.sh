#!/usr/bin/env bash
# Runs every test of wfl. Installs what the tests need when it is missing (nats-server from
# Debian's packages); protoc is vendored by the build. Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if [ -z "${NATS_SERVER_BIN:-}" ]; then
  if command -v nats-server >/dev/null 2>&1; then
    NATS_SERVER_BIN=$(command -v nats-server)
  elif [ -x /usr/sbin/nats-server ]; then
    NATS_SERVER_BIN=/usr/sbin/nats-server
  else
    echo "test.sh: nats-server not found; installing it with apt-get" >&2
    as_root apt-get update -qq
    as_root apt-get install -y -qq nats-server
    NATS_SERVER_BIN=$(command -v nats-server || echo /usr/sbin/nats-server)
  fi
fi
export NATS_SERVER_BIN
echo "test.sh: using $("$NATS_SERVER_BIN" --version)" >&2

# The Python example subscriber's test needs nats-py, protobuf and grpcio-tools.
if ! python3 -c "import nats, google.protobuf, grpc_tools" >/dev/null 2>&1; then
  echo "test.sh: installing the Python example's requirements" >&2
  python3 -m pip install -q -r examples/python-subscriber/requirements.txt
fi

# The end-to-end suites run the real binaries (wfl, wfl-gateway, wfl-ledger): build them first so
# no test pays for it.
cargo build --workspace --bins

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast --profile ci
else
  echo "test.sh: cargo-nextest not installed; using cargo test" >&2
  cargo test --workspace --no-fail-fast
fi
# nextest does not run doctests.
cargo test --workspace --doc --quiet
