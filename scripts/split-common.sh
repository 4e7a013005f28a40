# Shared by split-rss.sh and split-cpu.sh (sourced, not run): `split_start` starts nats-server
# (JetStream, a scratch store) on $NATS_PORT (4333) and wfl-ledger (gRPC 7101, HTTP 7102),
# wfl-gateway (7103, 7104) and wfl-projector (7105, 7106) over it, each its own process, from
# $WFL_BINDIR (./target/release), with their data and logs in $data; it sets $nats, $ledger,
# $gateway and $projector to their pids, and stops them and removes $data on exit. It waits
# for the previous run's ports to be free, and returns once the three services listen.
# SPLIT_NO_PROJECTOR=1 starts no wfl-projector ($projector is then empty): what ingest costs and
# reaches when no views fold beside it.
bin="${WFL_BINDIR:-./target/release}"
port="${NATS_PORT:-4333}"
pids=()

split_cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$data"
}

open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

split_start() {
  data=$(mktemp -d "/tmp/$1.XXXXXX")
  trap split_cleanup EXIT
  while open 7101 || open 7103 || open 7105 || open "$port"; do sleep 0.2; done
  nats-server -js -p "$port" -sd "$data/nats" >"$data/nats.log" 2>&1 &
  nats=$!
  pids+=($nats)
  until open "$port"; do sleep 0.1; done
  local common=(--nats-url "nats://127.0.0.1:$port" --insecure --no-auth)
  "$bin/wfl-ledger" --grpc-addr 127.0.0.1:7101 --http-addr 127.0.0.1:7102 --data-dir "$data" \
    "${common[@]}" 2>"$data/ledger.log" &
  ledger=$!
  pids+=($ledger)
  "$bin/wfl-gateway" --grpc-addr 127.0.0.1:7103 --http-addr 127.0.0.1:7104 "${common[@]}" \
    2>"$data/gateway.log" &
  gateway=$!
  pids+=($gateway)
  projector=
  if [ "${SPLIT_NO_PROJECTOR:-}" = 1 ]; then
    for _ in $(seq 300); do
      open 7101 && open 7103 && return
      sleep 0.1
    done
    return
  fi
  "$bin/wfl-projector" --grpc-addr 127.0.0.1:7105 --http-addr 127.0.0.1:7106 \
    --ledger http://127.0.0.1:7101 --rulepacks rulepacks --data-dir "$data" "${common[@]}" \
    2>"$data/projector.log" &
  projector=$!
  pids+=($projector)
  for _ in $(seq 300); do
    open 7101 && open 7103 && open 7106 && return
    sleep 0.1
  done
}
