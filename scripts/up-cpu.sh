#!/usr/bin/env bash
# CPU per event of `wfl up` (gateway, ledger and projector in one process, the embedded bus):
# loads N events of the restructuring mix (`wfl load --ack committed`), waits until the views
# have folded every committed event, and prints the process's user + system CPU over that time
# (from /proc/<pid>/stat) per event, its RSS, and how many events the views folded as the
# ledger handed them over (`wfl_views_handed_over_total`) rather than through Subscribe.
# LOAD_ORGS=N (default 1): N loads at once, each of events/N events into an org of its own
# (`load-1` ... `load-N`), as several tenants written at once; LOAD_MIX (default restructuring):
# `wfl load --mix` (`realistic`: `wfl bench ingest`'s payloads). Also prints how many watch runs
# and org evaluations the load cost (`wfl_watch_runs_total`, `wfl_watch_orgs_evaluated_total`).
# Usage: scripts/up-cpu.sh [events]   (release build first; WFL_BINDIR picks other binaries;
# ports 7201-7202 free; extra `wfl up` flags in UP_ARGS, e.g. UP_ARGS="--nats-url nats://...").
set -euo pipefail
cd "$(dirname "$0")/.."
events="${1:-300000}"
bin="${WFL_BINDIR:-./target/release}"
data=$(mktemp -d /tmp/up-cpu.XXXXXX)
open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
while open 7201; do sleep 0.2; done
# shellcheck disable=SC2086
"$bin/wfl" up --grpc-addr 127.0.0.1:7201 --http-addr 127.0.0.1:7202 --data-dir "$data" \
  --insecure --no-auth --rulepacks rulepacks ${UP_ARGS:-} 2>"$data/up.log" &
up=$!
trap 'kill $up 2>/dev/null; wait 2>/dev/null; rm -rf "$data"' EXIT
until open 7201; do sleep 0.1; done
metric() { curl -s 127.0.0.1:7202/metrics | awk -v m="$1" '$1 == m {printf "%d", $2}'; }
cpu() { awk '{print $14 + $15}' "/proc/$up/stat"; }
cpu0=$(cpu)
orgs="${LOAD_ORGS:-1}"
loads=()
for i in $(seq "$orgs"); do
  org=load
  [ "$orgs" -gt 1 ] && org="load-$i"
  "$bin/wfl" load --addr 127.0.0.1:7201 --events $((events / orgs)) --mix "${LOAD_MIX:-restructuring}" \
    --org "$org" --ack committed >"$data/load-$i.out" 2>&1 &
  loads+=($!)
done
wait "${loads[@]}"
loaded=$(date +%s.%N)
events=$((events / orgs * orgs))
cat "$data"/load-*.out >"$data/load.out"
head=$(metric wfl_ledger_head_sequence)
for _ in $(seq 1200); do
  [ "$(metric wfl_views_checkpoint_sequence)" -ge "$head" ] && break
  sleep 0.05
done
grep -h "events/s" "$data"/load-*.out
# How far the threshold watch trailed when the load ended, and how long after that every org's
# alerts reflected its events (`wfl_watch_evaluated_sequence` at the head).
trailing=$(metric wfl_watch_evaluated_sequence)
for _ in $(seq 1200); do
  [ "$(metric wfl_watch_evaluated_sequence)" -ge "$head" ] && break
  sleep 0.05
done
awk -v a="$loaded" -v b="$(date +%s.%N)" -v t="$trailing" -v h="$head" \
  'BEGIN {printf "watch: at sequence %d of %d when drained, at the head %.1f s after the load ended\n", t, h, b - a}'
awk -v t="$(($(cpu) - cpu0))" -v e="$events" -v rss="$(awk '{print $24}' "/proc/$up/stat")" \
  -v h="$(metric wfl_views_handed_over_total)" -v runs="$(metric wfl_watch_runs_total)" \
  -v evaluated="$(metric wfl_watch_orgs_evaluated_total)" \
  'BEGIN {printf "wfl up: %.1f us/event, RSS %d MiB; %d of the events folded as handed over; watch: %d runs, %d org evaluations\n", t * 10000 / e, rss * 4 / 1024, h, runs, evaluated}'
