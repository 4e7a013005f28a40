#!/usr/bin/env bash
# Cluster-mode views at volume (issue 13): EVENTS restructuring-free hires over 8 orgs into a
# `wfl-ledger --cluster` instance with 2 partitions on one nats-server, then one
# `wfl-projector --partition N` per partition catching up from the ledger, then a
# `wfl-gateway --cluster --projector 0=... --projector 1=...` serving Views for both.
#
#   scripts/cluster-views-bench.sh [EVENTS] [QUERIES]     (defaults: 1000000 events, 20 queries)
#
# Prints: the load rate; how long after it WFL_LEDGER held every commit; each projector's catch-up (events, seconds, events/s: from its start
# until its views answer at its partition's head); then `wfl report` latencies (p50 / max of
# QUERIES calls, each a new `wfl` process, so they include its start and connect) for one org's
# headcount straight from its partition's projector and through the gateway, and the threshold
# watch of every org through the gateway (both partitions asked and merged).
# Needs the release binaries (cargo build --release --bins) and nats-server on PATH (or
# NATS_SERVER_BIN). Writes only under a temp dir it removes.
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${1:-1000000}
QUERIES=${2:-20}
. scripts/bench-common.sh
bench_setup cluster-views-bench wfl wfl-ledger wfl-gateway wfl-projector
WAIT_TICKS=1200
export WFL_INSECURE=1 WFL_NO_AUTH=1
grpc_of() { grep -o 'grpc=[^ ]*' "$1" | head -1 | cut -d= -f2; }

PORT=$(free_port)
"$NATS" -js -a 127.0.0.1 -p "$PORT" -sd "$WORK/nats" > "$WORK/nats.log" 2>&1 &
PIDS+=($!)
URL=nats://127.0.0.1:$PORT
for i in $(seq 1 100); do (echo > /dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done

"$BIN/wfl-ledger" --cluster --instance bench --partitions 2 --replicas 1 --nats-url "$URL" \
  --data-dir "$WORK/ledger" --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 \
  > "$WORK/ledger.out" 2> "$WORK/ledger.log" &
PIDS+=($!)
wait_for "$WORK/ledger.out" listening
for i in $(seq 1 600); do
  [ "$(grep -c 'partition taken over' "$WORK/ledger.log" || true)" -ge 2 ] && break
  sleep 0.1
done
LEDGER=$(grep -o 'grpc=[^ ]*' "$WORK/ledger.out" | head -1 | cut -d= -f2)
"$BIN/wfl-gateway" --cluster --nats-url "$URL" --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 \
  > "$WORK/ingest.out" 2> "$WORK/ingest.log" &
PIDS+=($!)
wait_for "$WORK/ingest.out" listening
INGEST=$(grpc_of "$WORK/ingest.out")

echo "cluster-views-bench: $EVENTS events, 8 orgs, 2 partitions, $("$NATS" --version), $(nproc) cores" >&2
per=$((EVENTS / 8))
t0=$(date +%s.%N)
loaders=()
for l in $(seq 0 7); do
  "$BIN/wfl" load --addr "$INGEST" --events "$per" --org "org-$l" --concurrency 4 > "$WORK/load-$l.out" 2>&1 &
  loaders+=($!)
done
for l in "${loaders[@]}"; do wait "$l"; done
t1=$(date +%s.%N)
python3 -c "import sys; s=float(sys.argv[2])-float(sys.argv[1]); print(f'load: {int(sys.argv[3]):,} events in {s:.1f} s, {int(sys.argv[3])/s:,.0f} events/s')" "$t0" "$t1" "$((per * 8))"

# Each partition's head, from the instance's /metrics (labelled partition).
HTTP=$(grep -o 'http=[^ ]*' "$WORK/ledger.out" | head -1 | cut -d= -f2)
heads=$(python3 - "$HTTP" <<'PY'
import sys, urllib.request
text = urllib.request.urlopen(f"http://{sys.argv[1]}/metrics").read().decode()
heads = {}
for line in text.splitlines():
    if line.startswith('wfl_ledger_head_sequence{partition="'):
        p = line.split('"')[1]
        heads[int(p)] = int(float(line.split()[-1]))
print(" ".join(str(heads.get(p, 0)) for p in range(2)))
PY
)
read -r H0 H1 <<< "$heads"
echo "partition heads: 0=$H0 1=$H1 (from the instance's /metrics)"
# WFL_LEDGER: how long after the load every partition's publisher had put its head on the
# committed stream (wfl_publisher_cursor_sequence{partition} reaching the head).
python3 - "$HTTP" "$t1" <<'PY'
import sys, time, urllib.request
def figures():
    text = urllib.request.urlopen(f"http://{sys.argv[1]}/metrics").read().decode()
    got = {}
    for line in text.splitlines():
        for name in ("wfl_ledger_head_sequence", "wfl_publisher_cursor_sequence"):
            if line.startswith(name + '{partition="'):
                got[(name, line.split('"')[1])] = int(float(line.split()[-1]))
    return got
while True:
    f = figures()
    if all(f.get(("wfl_publisher_cursor_sequence", p)) == f.get(("wfl_ledger_head_sequence", p)) for p in ("0", "1")):
        break
    time.sleep(0.1)
print(f"WFL_LEDGER held both partitions' heads {time.time() - float(sys.argv[2]):.1f} s after the load ended")
PY

# One projector per partition, started together; each catch-up timed until its views answer
# at its partition's head.
for p in 0 1; do
  "$BIN/wfl-projector" --partition "$p" --ledger "$LEDGER" --nats-url "$URL" \
    --data-dir "$WORK/views-$p" --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 \
    > "$WORK/views-$p.out" 2> "$WORK/views-$p.log" &
  PIDS+=($!)
done
c0=$(date +%s.%N)
for p in 0 1; do wait_for "$WORK/views-$p.out" listening; done
V0=$(grpc_of "$WORK/views-0.out"); V1=$(grpc_of "$WORK/views-1.out")
# Each ask waits up to 10 s for the head (then fails): ask again until the views hold it.
until "$BIN/wfl" report headcount --addr "$V0" --min-sequence "$H0" > /dev/null 2>&1; do :; done
c1=$(date +%s.%N)
until "$BIN/wfl" report headcount --addr "$V1" --min-sequence "$H1" > /dev/null 2>&1; do :; done
c2=$(date +%s.%N)
python3 -c "import sys; c0,c1,c2=map(float,sys.argv[1:4]); h0,h1=int(sys.argv[4]),int(sys.argv[5]); print(f'projector catch-up (both at once on 2 cores): partition 0 {h0:,} events in {c1-c0:.1f} s; partition 1 {h1:,} events in {c2-c0:.1f} s; together {(h0+h1)/(max(c1,c2)-c0):,.0f} events/s')" "$c0" "$c1" "$c2" "$H0" "$H1"

"$BIN/wfl-gateway" --cluster --nats-url "$URL" --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 \
  --projector "0=$V0" --projector "1=$V1" > "$WORK/views-gw.out" 2> "$WORK/views-gw.log" &
PIDS+=($!)
wait_for "$WORK/views-gw.out" listening
GW=$(grpc_of "$WORK/views-gw.out")
# org-0's partition: FNV-1a 64 of the org id mod 2 (wfl_bus::cluster::PartitionMap).
P0=$(python3 -c '
h = 0xcbf29ce484222325
for b in b"org-0":
    h = ((h ^ b) * 0x100000001b3) % (1 << 64)
print(h % 2)')
if [ "$P0" = 0 ]; then DIRECT=$V0; else DIRECT=$V1; fi

python3 - "$BIN/wfl" "$QUERIES" "$DIRECT" "$GW" <<'PY'
import subprocess, sys, time, statistics
wfl, n, direct, gw = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
def timed(args):
    ms = []
    for _ in range(n):
        t = time.monotonic()
        subprocess.run([wfl, *args], check=True, stdout=subprocess.DEVNULL)
        ms.append((time.monotonic() - t) * 1000)
    return f"p50 {statistics.median(ms):.0f} ms, max {max(ms):.0f} ms"
print(f"headcount of org-0, straight from its projector: {timed(['report', 'headcount', '--org', 'org-0', '--addr', direct])}")
print(f"headcount of org-0, through the gateway:         {timed(['report', 'headcount', '--org', 'org-0', '--addr', gw])}")
print(f"threshold watch of org-0's partition's orgs, straight from its projector: {timed(['report', 'thresholds', '--addr', direct])}")
print(f"threshold watch of every org, through the gateway (2 partitions merged): {timed(['report', 'thresholds', '--addr', gw])}")
PY
