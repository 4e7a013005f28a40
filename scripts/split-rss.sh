#!/usr/bin/env bash
# RSS of each service run as its own process: starts nats-server (JetStream, a scratch store) on
# $NATS_PORT (4333), then wfl-ledger, wfl-gateway and wfl-projector over it, loads N events of the
# restructuring mix through the gateway (`wfl load --ack committed`), samples each process's RSS
# every second, and prints the peak while loading and the value 5 s after the load.
# Usage: scripts/split-rss.sh [events]   (release build first: cargo build --release --bins;
# WFL_BINDIR picks other binaries; ports 7101-7106 must be free). Removes its data afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
events="${1:-2000000}"
# Every process is measured here, the projector too.
unset SPLIT_NO_PROJECTOR
# shellcheck source=scripts/split-common.sh
. scripts/split-common.sh
split_start split-rss
"$bin/wfl" load --addr 127.0.0.1:7103 --events "$events" --mix restructuring --ack committed &
load=$!
declare -A peak=([ledger]=0 [gateway]=0 [projector]=0)
rss() { ps -o rss= -p "$1" | tr -d ' '; }
while kill -0 "$load" 2>/dev/null; do
  for name in ledger gateway projector; do
    kb=$(rss "${!name}" || echo 0)
    [ "${kb:-0}" -gt "${peak[$name]}" ] && peak[$name]=$kb
  done
  sleep 1
done
wait "$load"
sleep 5
for name in ledger gateway projector; do
  printf '%-10s RSS peak while loading %6d MiB, 5 s after %6d MiB\n' "$name" \
    $((peak[$name] / 1024)) $(($(rss "${!name}") / 1024))
done
printf 'on disk: ledger %s, views %s\n' "$(du -sh "$data/ledger" | cut -f1)" "$(du -sh "$data/projector" | cut -f1)"
