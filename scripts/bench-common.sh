# Shared by the cluster bench scripts (sourced, not run): `bench_setup NAME BINARY...` checks the
# release binaries, finds nats-server, makes the scratch dir ($WORK) and stops every process in
# $PIDS and removes $WORK on exit; `free_port`; `wait_for FILE PATTERN` (up to WAIT_TICKS × 0.1 s,
# default 600).
BIN=target/release
NATS=${NATS_SERVER_BIN:-$(command -v nats-server || echo /usr/sbin/nats-server)}
PIDS=()

bench_setup() {
  BENCH_NAME=$1
  shift
  local b
  for b in "$@"; do
    [ -x "$BIN/$b" ] || { echo "$BENCH_NAME: $BIN/$b missing; run cargo build --release --bins" >&2; exit 1; }
  done
  WORK=$(mktemp -d "/tmp/wfl-$BENCH_NAME.XXXXXX")
  trap bench_cleanup EXIT
}

bench_cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# Waits for a line in a file (the binaries print "NAME listening grpc=... http=..." on stdout).
wait_for() {
  local file=$1 pattern=$2 i
  for i in $(seq 1 "${WAIT_TICKS:-600}"); do grep -q "$pattern" "$file" 2>/dev/null && return 0; sleep 0.1; done
  echo "$BENCH_NAME: timed out waiting for '$pattern' in $file" >&2; tail -20 "$file" >&2; return 1
}
