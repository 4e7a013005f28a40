#!/usr/bin/env bash
# Cluster-mode ingest throughput (issue 13): COMMITTED events/s through `wfl-gateway --cluster`
# into `wfl-ledger --cluster` instances, with 1, 2 and 4 partitions, on one nats-server
# (replicas 1) and on a 3-node JetStream cluster on loopback (replicas 3), all on this machine.
#
#   scripts/cluster-bench.sh [EVENTS] [LOADERS]      (defaults: 200000 events, 8 loaders)
#
# Each run starts from empty stores: NATS (one node or three), one ledger instance owning every
# partition (a second instance would only compete for the same two cores), one gateway, then
# LOADERS `wfl load` processes at once, each recording EVENTS/LOADERS hires of its own org
# (org-0 ... : spread over the partitions by the cluster's hash) in RecordBatch calls of 1,000,
# 4 in flight, ack COMMITTED. The rate is all events over the wall time of the slowest loader;
# the CPU columns are what the NATS servers (together), the ledger instance and the gateway
# used during the load (from /proc/<pid>/stat; the loaders use the rest of the two cores).
# After the load, it times `wfl verify --cluster` over every partition log, then kills the
# instance and times a new instance (no standby copy) taking every partition over.
# Needs the release binaries (cargo build --release --bins) and nats-server on PATH (or
# NATS_SERVER_BIN). Writes only under a temp dir it removes.
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${1:-200000}
LOADERS=${2:-8}
. scripts/bench-common.sh
bench_setup cluster-bench wfl wfl-ledger wfl-gateway

# CPU seconds (user + system) each process has used so far, in order.
cpu_of() {
  local p
  for p in "$@"; do
    awk '{ printf "%.2f ", ($14 + $15) / 100 }' "/proc/$p/stat" 2>/dev/null || printf "0 "
  done
}

# Starts NATS: one node ($1 = 1) or a 3-node cluster ($1 = 3); sets NATS_URLS (in this shell:
# the servers' pids go into PIDS, so they are stopped after each run).
start_nats() {
  local nodes=$1 dir=$WORK/nats urls="" routes="" i
  local -a client cluster
  for i in $(seq 1 "$nodes"); do client[$i]=$(free_port); cluster[$i]=$(free_port); done
  for i in $(seq 1 "$nodes"); do routes="$routes nats-route://127.0.0.1:${cluster[$i]}"; done
  for i in $(seq 1 "$nodes"); do
    mkdir -p "$dir/n$i"
    {
      echo "server_name: n$i"
      echo "listen: 127.0.0.1:${client[$i]}"
      echo "jetstream { store_dir: \"$dir/n$i/js\" }"
      if [ "$nodes" -gt 1 ]; then
        echo "cluster { name: bench, listen: 127.0.0.1:${cluster[$i]}, routes: [$(echo $routes | sed 's/ /, /g')] }"
      fi
    } > "$dir/n$i/nats.conf"
    "$NATS" -c "$dir/n$i/nats.conf" > "$dir/n$i/log" 2>&1 &
    PIDS+=($!)
    urls="${urls:+$urls,}nats://127.0.0.1:${client[$i]}"
  done
  NATS_URLS=$urls
}


run_one() {
  local nodes=$1 partitions=$2 replicas=$3 urls run=$WORK/run-$1-$2
  mkdir -p "$run"
  start_nats "$nodes"
  urls=$NATS_URLS
  WFL_INSECURE=1 WFL_NO_AUTH=1 "$BIN/wfl-ledger" --cluster --instance bench-1 \
    --partitions "$partitions" --replicas "$replicas" --lease-ttl-secs 3 --nats-url "$urls" \
    --data-dir "$run/ledger" --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 \
    > "$run/ledger.out" 2> "$run/ledger.log" &
  PIDS+=($!)
  wait_for "$run/ledger.out" listening
  # Ready once the instance writes every partition (its share: all of them).
  local taken i
  for i in $(seq 1 600); do
    taken=$(grep -c "partition taken over" "$run/ledger.log" || true)
    [ "$taken" -ge "$partitions" ] && break
    sleep 0.1
  done
  WFL_INSECURE=1 WFL_NO_AUTH=1 "$BIN/wfl-gateway" --cluster --nats-url "$urls" \
    --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 > "$run/gateway.out" 2> "$run/gateway.log" &
  PIDS+=($!)
  wait_for "$run/gateway.out" listening
  local addr
  addr=$(grep -o 'grpc=[^ ]*' "$run/gateway.out" | head -1 | cut -d= -f2)
  local per=$((EVENTS / LOADERS)) start end l cpu_before
  cpu_before=$(cpu_of "${PIDS[@]}")
  local -a loaders=()
  start=$(date +%s.%N)
  for l in $(seq 0 $((LOADERS - 1))); do
    "$BIN/wfl" load --addr "$addr" --events "$per" --org "org-$l" --concurrency 4 \
      > "$run/load-$l.out" 2>&1 &
    loaders+=($!)
  done
  for l in "${loaders[@]}"; do wait "$l"; done
  end=$(date +%s.%N)
  local cpu_after
  cpu_after=$(cpu_of "${PIDS[@]}")
  python3 - "$start" "$end" "$((per * LOADERS))" "$nodes" "$partitions" "$replicas" "$cpu_before" "$cpu_after" <<'PY'
import sys
start, end, events, nodes, partitions, replicas, before, after = sys.argv[1:]
secs = float(end) - float(start)
b = [float(x) for x in before.split()]
a = [float(x) for x in after.split()]
nodes_n = int(nodes)
nats = sum(a[:nodes_n]) - sum(b[:nodes_n])
ledger = a[nodes_n] - b[nodes_n]
gateway = a[nodes_n + 1] - b[nodes_n + 1]
per_k = lambda c: f"{c / (int(events) / 1000) * 1000:.0f}"
print(f"| {'3-node cluster' if nodes == '3' else 'one server'} | {replicas} | {partitions} | {events} | {secs:.1f} | {int(events) / secs:,.0f} | {per_k(nats)} | {per_k(ledger)} | {per_k(gateway)} |")
PY
  # The auditor's check of every partition log, from JetStream alone.
  local v0 v1 verified
  v0=$(date +%s.%N)
  verified=$("$BIN/wfl" verify --cluster "$urls" | tail -1)
  v1=$(date +%s.%N)
  # Takeover at volume, the worst case: the owner is killed and a new instance with no copy of
  # anything takes every partition, applying each whole log (lease TTL 3 s).
  WFL_INSECURE=1 WFL_NO_AUTH=1 "$BIN/wfl-ledger" --cluster --instance bench-2 \
    --replicas "$replicas" --lease-ttl-secs 3 --nats-url "$urls" \
    --data-dir "$run/ledger-2" --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 \
    > "$run/ledger-2.out" 2> "$run/ledger-2.log" &
  local second=$!
  PIDS+=($second)
  wait_for "$run/ledger-2.out" listening
  local k0 k1
  k0=$(date +%s.%N)
  kill -9 "${PIDS[$nodes]}"
  for i in $(seq 1 1200); do
    taken=$(grep -c "partition taken over" "$run/ledger-2.log" || true)
    [ "$taken" -ge "$partitions" ] && break
    sleep 0.1
  done
  k1=$(date +%s.%N)
  local catchup
  catchup=$(grep -o 'partition taken over.*elapsed_ms=[0-9]*' "$run/ledger-2.log" | grep -o 'elapsed_ms=[0-9]*' | cut -d= -f2 | sort -n | tail -1)
  python3 - "$v0" "$v1" "$k0" "$k1" "${catchup:-0}" "$verified" <<'PY'
import sys
v0, v1, k0, k1, catchup, verified = sys.argv[1:]
print(f"  verify --cluster {float(v1) - float(v0):.1f} s ({verified}); a new instance (no copy of anything) wrote every partition {float(k1) - float(k0):.1f} s after the kill (its standby copies apply the logs from its start; the takeovers then applied the rest, {int(catchup) / 1000:.1f} s at most)")
PY
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  PIDS=()
  rm -rf "$WORK/nats" "$run"
}

echo "cluster-bench: $EVENTS events, $LOADERS loaders, $("$NATS" --version), $(nproc) cores" >&2
echo "| NATS | replicas | partitions | events | seconds | events/s | CPU ms per 1,000 events: NATS | ledger | gateway |"
echo "|---|---|---|---|---|---|---|---|---|"
for nodes_replicas in "1 1" "3 3"; do
  set -- $nodes_replicas
  for partitions in 1 2 4; do
    run_one "$1" "$partitions" "$2"
  done
done
