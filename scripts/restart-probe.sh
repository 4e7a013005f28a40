#!/bin/sh
# Restart `wfl up` on a kept data dir; time when ingest commits again and when the views are back.
# usage: scripts/restart-probe.sh DATA_DIR   (from the repository root, after
#        cargo build --release -p wfl-cli and a kept store, e.g.
#        target/release/wfl bench views --events 1000000 --data-dir /tmp/bvk --keep)
set -e
dir=$1
log=$(mktemp)
t0=$(date +%s.%N)
./target/release/wfl up --data-dir "$dir" --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 --rulepacks rulepacks >"$log" 2>&1 &
pid=$!
until grep -q "wfl listening" "$log"; do sleep 0.05; done
addr=$(sed -n 's/.*wfl listening grpc=\([^ ]*\).*/\1/p' "$log")
./target/release/wfl load --addr "$addr" --events 100 --org restart-probe --ack committed >/dev/null 2>&1
t1=$(date +%s.%N)
until grep -q "projector starting" "$log"; do sleep 0.05; done
t2=$(date +%s.%N)
awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN { printf "ingest committed 100 events %.2f s after start; views loaded %.2f s after start\n", b - a, c - a }'
grep "projector starting" "$log" | sed 's/.*projector starting/projector starting/'
kill $pid; wait $pid 2>/dev/null || true
rm -f "$log"
