#!/usr/bin/env bash
# An `as_of_recorded_at_micros` answer at volume: `wfl up` on DATA, `wfl load --events EVENTS
# --mix restructuring` (skipped when EVENTS is 0: reuse DATA), then `wfl report separations
# --as-of-recorded-at` at the instant sequence MID (default 500000) was recorded, three times,
# timed (the whole `wfl report` process).
#
#   scripts/recorded-at-probe.sh target/release/wfl /tmp/ra 1000000
#   scripts/recorded-at-probe.sh /path/to/older/wfl /tmp/ra 0      # the same store, another build
set -euo pipefail
BIN=$1 DATA=$2 EVENTS=$3 MID=${MID:-500000}
ADDR=http://127.0.0.1:7101
[ "$EVENTS" != 0 ] && rm -rf "$DATA"
"$BIN" up --data-dir "$DATA" --grpc-addr 127.0.0.1:7101 --http-addr 127.0.0.1:7102 > "$DATA.up.log" 2>&1 &
UP=$!
trap 'kill $UP 2>/dev/null; wait $UP 2>/dev/null || true' EXIT
until curl -sf http://127.0.0.1:7102/healthz > /dev/null; do sleep 0.5; done
if [ "$EVENTS" != 0 ]; then
  "$BIN" load --events "$EVENTS" --mix restructuring --addr $ADDR --ack committed
fi
at=$("$BIN" replay --addr $ADDR --from "$MID" --to "$MID" |
  python3 -c "import sys, json; print(json.loads(sys.stdin.readline())['recorded_at_micros'])")
# The views at the head first.
until [ "$("$BIN" report separations --addr $ADDR --format json 2>/dev/null |
  python3 -c "import sys, json; print(json.load(sys.stdin)['as_of_sequence'])" 2>/dev/null || echo 0)" -ge "$MID" ]; do
  sleep 1
done
for _ in 1 2 3; do
  start=$(date +%s.%N)
  "$BIN" report separations --addr $ADDR --as-of-recorded-at "$at" --format json > "$DATA.answer.json"
  took=$(echo "$(date +%s.%N) - $start" | bc)
  sequence=$(python3 -c "import sys, json; print(json.load(sys.stdin)['as_of_sequence'])" < "$DATA.answer.json")
  echo "as of the instant sequence $MID was recorded ($at): as_of_sequence $sequence; wfl report took $took s"
done
