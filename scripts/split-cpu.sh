#!/usr/bin/env bash
# CPU per event of each service run as its own process: starts nats-server (JetStream, a scratch
# store) on $NATS_PORT (4333), then wfl-ledger, wfl-gateway and wfl-projector over it, loads N
# events of the restructuring mix through the gateway (`wfl load --ack committed`), waits until
# the views have folded and `WFL_LEDGER` holds every committed event, and prints each process's
# user + system CPU over that time (from /proc/<pid>/stat) per event, its minor page faults per
# event and its RSS, and the rate from the load's start until drained.
# SPLIT_NO_PROJECTOR=1: the same without wfl-projector (ingest with no views folding beside it).
# LOAD_MIX=realistic: `wfl bench ingest`'s payloads (the mix with what an HR export carries);
# LOAD_ORG (default `load`): the org id, in each realistic event twice (the bench's are 20
# characters: LOAD_ORG=bench-000000000000-0 sends events of the bench's size).
# Usage: scripts/split-cpu.sh [events]   (release build first: cargo build --release --bins;
# WFL_BINDIR picks other binaries, so two builds can be run alternately; ports 7101-7106 free).
set -euo pipefail
cd "$(dirname "$0")/.."
events="${1:-300000}"
# shellcheck source=scripts/split-common.sh
. scripts/split-common.sh
split_start split-cpu
stat() { awk -v f="$2" '{print $f}' "/proc/$1/stat"; }
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
metric() { curl -s "127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m {printf "%d", $2}'; }
declare -A cpu0 faults0
names=(nats ledger gateway)
[ -n "$projector" ] && names+=(projector)
for n in "${names[@]}"; do
  cpu0[$n]=$(cpu "${!n}")
  faults0[$n]=$(stat "${!n}" 10)
done
start=$(date +%s.%N)
"$bin/wfl" load --addr 127.0.0.1:7103 --events "$events" --mix "${LOAD_MIX:-restructuring}" --org "${LOAD_ORG:-load}" --ack committed >"$data/load.out" 2>&1
head=$(metric 7102 wfl_ledger_head_sequence)
for _ in $(seq 1200); do
  { [ -z "$projector" ] || [ "$(metric 7106 wfl_views_checkpoint_sequence)" -ge "$head" ]; } &&
    [ "$(metric 7102 wfl_publisher_cursor_sequence)" -ge "$head" ] && break
  sleep 0.05
done
end=$(date +%s.%N)
tail -1 "$data/load.out"
total=0
for n in "${names[@]}"; do
  ticks=$(($(cpu "${!n}") - ${cpu0[$n]}))
  total=$((total + ticks))
  awk -v n="$n" -v t="$ticks" -v e="$events" -v f="$(($(stat "${!n}" 10) - ${faults0[$n]}))" \
    -v rss="$(stat "${!n}" 24)" \
    'BEGIN {printf "%-10s %6.1f us/event %6.2f faults/event  RSS %d MiB\n", n, t * 10000 / e, f / e, rss * 4 / 1024}'
done
awk -v t="$total" -v e="$events" -v s="$start" -v x="$end" \
  'BEGIN {printf "%-10s %6.1f us/event; %.0f events/s from the load'"'"'s start until drained\n", "total", t * 10000 / e, e / (x - s)}'
