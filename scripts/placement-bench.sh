#!/usr/bin/env bash
# Placing a new tenant on a partition of its own at volume (issue 13): how long
# `wfl cluster place` takes on a cluster that already holds EVENTS events, while COMMITTED load
# goes on, and what the load's rate does meanwhile.
#
#   scripts/placement-bench.sh [EVENTS] [LOADERS]      (defaults: 1000000 events, 4 loaders)
#
# One nats-server, one `wfl-ledger --cluster` instance with 3 partitions of which 1 is reserved
# (orgs hash over partitions 0 and 1), one gateway. First LOADERS `wfl load` processes record
# EVENTS hires over LOADERS orgs. Then LOADERS loaders record EVENTS/10 more while three new
# tenants are placed on the reserved partition one after another; then one org with history is
# refused; each `wfl cluster place` is timed. Last, each new tenant's first 10,000 events are
# recorded and `wfl verify --cluster` checks every log (every org on its partition).
# Needs the release binaries (cargo build --release --bins) and nats-server on PATH (or
# NATS_SERVER_BIN). Writes only under a temp dir it removes.
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${1:-1000000}
LOADERS=${2:-4}
. scripts/bench-common.sh
bench_setup placement-bench wfl wfl-ledger wfl-gateway
now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$(now)"; }

PORT=$(free_port)
mkdir -p "$WORK/nats"
"$NATS" -a 127.0.0.1 -p "$PORT" -js -sd "$WORK/nats" > "$WORK/nats.log" 2>&1 &
PIDS+=($!)
URL=nats://127.0.0.1:$PORT
export WFL_INSECURE=1 WFL_NO_AUTH=1
"$BIN/wfl-ledger" --cluster --instance bench --partitions 3 --reserve 1 --lease-ttl-secs 3 \
  --nats-url "$URL" --data-dir "$WORK/ledger" --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 \
  > "$WORK/ledger.out" 2> "$WORK/ledger.log" &
PIDS+=($!)
wait_for "$WORK/ledger.out" listening
for i in $(seq 1 600); do
  [ "$(grep -c "partition taken over" "$WORK/ledger.log" || true)" -ge 3 ] && break
  sleep 0.1
done
"$BIN/wfl-gateway" --cluster --nats-url "$URL" --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 \
  > "$WORK/gateway.out" 2> "$WORK/gateway.log" &
PIDS+=($!)
wait_for "$WORK/gateway.out" listening
ADDR=$(grep -o 'grpc=[^ ]*' "$WORK/gateway.out" | head -1 | cut -d= -f2)

# Runs LOADERS loaders of $1 events each (orgs org-0...), prints events/s.
load() {
  local per=$1 tag=$2 l start
  local -a loaders=()
  start=$(now)
  for l in $(seq 0 $((LOADERS - 1))); do
    "$BIN/wfl" load --addr "$ADDR" --events "$per" --org "org-$l" --concurrency 4 \
      > "$WORK/load-$tag-$l.out" 2>&1 &
    loaders+=($!)
  done
  for l in "${loaders[@]}"; do wait "$l"; done
  python3 -c "import sys; print(f'{int(sys.argv[1]) / float(sys.argv[2]):,.0f}')" "$((per * LOADERS))" "$(since "$start")"
}

echo "placement-bench: $EVENTS events, $LOADERS loaders, $("$NATS" --version), $(nproc) cores" >&2
rate=$(load $((EVENTS / LOADERS)) first)
echo "loaded $EVENTS events at $rate events/s (COMMITTED)"
"$BIN/wfl" cluster map --nats-url "$URL"

# Placements while load goes on.
load $((EVENTS / 10 / LOADERS)) during > "$WORK/during.rate" &
LOAD=$!
for t in 1 2 3; do
  t0=$(now)
  "$BIN/wfl" cluster place "tenant-$t" 2 --nats-url "$URL"
  echo "  took $(since "$t0") s"
done
wait "$LOAD"
echo "load meanwhile: $((EVENTS / 10)) events at $(cat "$WORK/during.rate") events/s (COMMITTED)"
# After the load: while an org is being placed the gateway refuses its events (retryable), and
# `wfl load` stops at the first refusal.
t0=$(now)
if "$BIN/wfl" cluster place org-0 2 --nats-url "$URL" 2> "$WORK/refused.err"; then
  echo "placement-bench: an org with history was placed" >&2; exit 1
fi
echo "refused in $(since "$t0") s: $(cat "$WORK/refused.err")"

# Gateways read the map every 250 ms; until then they refuse a tenant still marked as moving
# (`wfl load` stops at a refusal).
sleep 1
for t in 1 2 3; do
  "$BIN/wfl" load --addr "$ADDR" --events 10000 --org "tenant-$t" --concurrency 4 > "$WORK/tenant-$t.out" 2>&1
done
"$BIN/wfl" cluster map --nats-url "$URL"
t0=$(now)
"$BIN/wfl" verify --cluster "$URL" | tail -6
echo "verify --cluster took $(since "$t0") s"
