#!/usr/bin/env bash
# Instruction profile of `wfl bench ingest`'s in-process rows (COMMITTED and ACCEPTED) only:
# callgrind with instrumentation off, switched on when the bench prints "wfl in process" and off
# after its "ACCEPTED, in process" row. Writes /tmp/cg.out; read it with
#   callgrind_annotate --inclusive=yes /tmp/cg.out
# Usage: scripts/callgrind-ingest.sh [events]   (release build first: cargo build --release --bins)
set -euo pipefail
cd "$(dirname "$0")/.."
events="${1:-20000}"
log=/tmp/cg-run.log
rm -rf /tmp/bic /tmp/cg.out
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=/tmp/cg.out \
  ${WFL_BIN:-./target/release/wfl} bench ingest --events "$events" --latency-secs 1 --latency-rate 100 \
  --nats-server /nonexistent --data-dir /tmp/bic >"$log" 2>&1 &
vg=$!
state=off
while kill -0 "$vg" 2>/dev/null; do
  if [ "$state" = off ] && grep -q "^wfl in process" "$log"; then
    callgrind_control -i on "$vg" >/dev/null && state=on
  elif [ "$state" = on ] && grep -q "ACCEPTED, in process" "$log"; then
    callgrind_control -i off "$vg" >/dev/null && state=done
  fi
  sleep 0.2
done
wait "$vg"
echo "profile: /tmp/cg.out (bench output: $log)"
