#!/usr/bin/env bash
# What a `ThresholdWatch` request costs the views while the ledger takes a load: `wfl up` on
# DATA, `wfl load --events EVENTS --mix restructuring` (skipped when EVENTS is 0: reuse DATA),
# then a second load of 200,000 events in the background while `wfl report thresholds` runs
# three times; the views' lag gauge (`wfl_views_lag_seconds`) is sampled every 100 ms
# meanwhile and its maximum printed, with each report's time.
#
#   scripts/threshold-rpc-probe.sh target/release/wfl /tmp/tp 1000000
set -euo pipefail
BIN=$1 DATA=$2 EVENTS=$3
ADDR=http://127.0.0.1:7101
METRICS=http://127.0.0.1:7102/metrics
[ "$EVENTS" != 0 ] && rm -rf "$DATA"
"$BIN" up --data-dir "$DATA" --grpc-addr 127.0.0.1:7101 --http-addr 127.0.0.1:7102 > "$DATA.up.log" 2>&1 &
UP=$!
trap 'kill $UP $SAMPLER 2>/dev/null; wait $UP 2>/dev/null || true' EXIT
SAMPLER=
until curl -sf http://127.0.0.1:7102/healthz > /dev/null; do sleep 0.5; done
if [ "$EVENTS" != 0 ]; then
  "$BIN" load --events "$EVENTS" --mix restructuring --addr $ADDR --ack committed
fi
# The views at the head first.
until [ "$(curl -s $METRICS | awk '/^wfl_views_lag_events /{print $2}')" = 0 ]; do sleep 0.5; done
(while true; do curl -s $METRICS | awk '/^wfl_views_lag_seconds /{print $2}'; sleep 0.1; done) > "$DATA.lag" &
SAMPLER=$!
"$BIN" load --events 200000 --mix restructuring --addr $ADDR --ack committed > "$DATA.load2.log" &
LOAD=$!
for _ in 1 2 3; do
  start=$(date +%s.%N)
  "$BIN" report thresholds --addr $ADDR --format json > /dev/null
  echo "wfl report thresholds took $(echo "$(date +%s.%N) - $start" | bc) s"
done
wait $LOAD
kill $SAMPLER
tail -1 "$DATA.load2.log"
echo "views lag while loading and reporting: max $(sort -g "$DATA.lag" | tail -1) s over $(wc -l < "$DATA.lag") samples"
