#!/usr/bin/env bash
# What one small tenant's threshold watch costs beside a large one: `wfl up`, then `wfl load
# --mix restructuring` of BIG events for org `big` and SMALL events for org `small`; once the
# views and the alert loop have caught up, times `wfl report thresholds --org small` and `--org
# big` three times each, then loads 1,000 more events for `small` alone, prints what the
# alert loop's runs evaluated meanwhile (`wfl_watch_*`: runs, orgs evaluated, the last run's
# seconds) and how soon after the load the watch had evaluated them, and times `--org big` once
# more; and says how many `ThresholdWatch` answers came from the rows kept for the org
# (`wfl_watch_answers_*`; an earlier build prints nothing there). Last, while DURING more
# events of `big` are loaded (BIG / 4 by default), asks `--org big` every half second and prints
# each answer's time, its `as_of_sequence` and the ledger's head then, and how many answers
# were kept, recent (rows evaluated before the org's latest events) or evaluated.
#
#   scripts/tenant-watch-probe.sh [BIG] [SMALL] [DURING]   (release build first; WFL_BINDIR
#                                                  picks other binaries; ports 7201-7202 free)
set -euo pipefail
cd "$(dirname "$0")/.."
big="${1:-1000000}"
small="${2:-10000}"
during="${3:-$((big / 4))}"
bin="${WFL_BINDIR:-./target/release}"
data=$(mktemp -d /tmp/tenant-watch.XXXXXX)
open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
while open 7201; do sleep 0.2; done
"$bin/wfl" up --grpc-addr 127.0.0.1:7201 --http-addr 127.0.0.1:7202 --data-dir "$data" \
  --insecure --no-auth --rulepacks rulepacks 2>"$data/up.log" &
up=$!
trap 'kill $up 2>/dev/null; wait 2>/dev/null; rm -rf "$data"' EXIT
until open 7201; do sleep 0.1; done
metric() { curl -s 127.0.0.1:7202/metrics | awk -v m="$1" '$1 == m {print $2}'; }
settled() {
  local head
  head=$(metric wfl_ledger_head_sequence)
  for _ in $(seq 2400); do
    # A build without the watch's metrics (an earlier one, to compare) waits for the views.
    watched=$(metric wfl_watch_evaluated_sequence)
    [ "$(metric wfl_views_checkpoint_sequence)" = "$head" ] &&
      [ "${watched:-$head}" = "$head" ] && return 0
    sleep 0.25
  done
  echo "the views or the watch did not reach $head" >&2
  return 1
}
load() { "$bin/wfl" load --addr 127.0.0.1:7201 --events "$2" --mix restructuring --org "$1" --ack committed | tail -1; }
load big "$big"
load small "$small"
loaded=$(date +%s.%N)
settled
echo "the watch's alerts reflected every event $(echo "$(date +%s.%N) - $loaded" | bc) s after the loads ended"
echo "after loading: watch runs $(metric wfl_watch_runs_total), orgs evaluated $(metric wfl_watch_orgs_evaluated_total), last run $(metric wfl_watch_last_run_seconds) s"
for org in small big; do
  for _ in 1 2 3; do
    start=$(date +%s.%N)
    "$bin/wfl" report thresholds --addr http://127.0.0.1:7201 --org "$org" --format json >/dev/null
    echo "wfl report thresholds --org $org: $(echo "$(date +%s.%N) - $start" | bc) s"
  done
done
answers() { echo "ThresholdWatch answers: $(metric wfl_watch_answers_kept_total) from kept rows, $(metric wfl_watch_answers_recent_total) recent, $(metric wfl_watch_answers_evaluated_total) evaluated"; }
answers
runs=$(metric wfl_watch_runs_total)
orgs=$(metric wfl_watch_orgs_evaluated_total)
load small 1000
loaded=$(date +%s.%N)
settled
echo "1,000 more events for small: $(($(metric wfl_watch_runs_total) - runs)) runs evaluated $(($(metric wfl_watch_orgs_evaluated_total) - orgs)) orgs; last run $(metric wfl_watch_last_run_seconds) s; evaluated $(echo "$(date +%s.%N) - $loaded" | bc) s after the load ended"
start=$(date +%s.%N)
"$bin/wfl" report thresholds --addr http://127.0.0.1:7201 --org big --format json >/dev/null
echo "then wfl report thresholds --org big: $(echo "$(date +%s.%N) - $start" | bc) s"
answers
echo "while $during more events of big are loaded: wfl report thresholds --org big every 0.5 s"
load big "$during" >"$data/during.txt" &
loading=$!
while kill -0 "$loading" 2>/dev/null; do
  start=$(date +%s.%N)
  seq=$("$bin/wfl" report thresholds --addr http://127.0.0.1:7201 --org big --format json | jq .as_of_sequence)
  took=$(echo "$(date +%s.%N) - $start" | bc)
  echo "  answered in $took s, as of $seq, ledger head $(metric wfl_ledger_head_sequence)"
  sleep 0.5
done
wait "$loading"
cat "$data/during.txt"
answers
