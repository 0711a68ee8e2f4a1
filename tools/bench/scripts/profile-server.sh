#!/usr/bin/env bash
# Where tether-server spends its CPU: perf samples (software clock, so it works in VMs without
# hardware counters) of a release server under (1) a connect storm of simulated agents and
# (2) relay load (file downloads through the relay from a real agent), folded into flame graphs
# and a flat "top functions" table.
#
#   bash tools/bench/scripts/profile-server.sh [OUT_DIR]      (default: results/profile)
#
# Needs: linux-perf (`perf`), inferno (`cargo install inferno`: inferno-collapse-perf and
# inferno-flamegraph on PATH), release binaries (`cargo build --release -p tether-server
# -p tether-agent -p tetherctl -p tether-loadgen`). Run it alone on the machine: other load
# shifts where the time goes. Everything it starts is stopped by PID on exit.
set -euo pipefail

OUT=${1:-results/profile}
BIN=${TETHER_BIN:-target/release}
STORM_AGENTS=${STORM_AGENTS:-3000}
STORM_RATE=${STORM_RATE:-1000}
RELAY_MIB=${RELAY_MIB:-512}
RELAY_ROUNDS=${RELAY_ROUNDS:-4}
PASS='Profile-pass-1234'

for tool in perf inferno-collapse-perf inferno-flamegraph; do
  command -v "$tool" >/dev/null || { echo "profile-server: $tool is not on PATH" >&2; exit 2; }
done
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/tether-profile-XXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

ctl() {
  TETHER_PASS=$PASS "$BIN/tetherctl" --url "wss://127.0.0.1:$PORT" --user admin \
    --trust-root "$WORK/data/root-cert-public.crt" "$@"
}

start_server() {
  "$BIN/tether-server" --datapath "$WORK/data" --createaccount admin --pass "$PASS" >/dev/null
  # 3,000 agents from one loopback address: over the default per-address cap, so caps off.
  "$BIN/tether-server" --datapath "$WORK/data" --port 0 --redirport 0 --mpsport 0 --bind 127.0.0.1 \
    --cert 127.0.0.1 --max-connections 0 --max-connections-per-ip 0 >"$WORK/server.log" 2>&1 &
  SERVER=$!
  PIDS+=("$SERVER")
  for _ in $(seq 100); do grep -q 'listening on' "$WORK/server.log" && break; sleep 0.1; done
  PORT=$(sed -n 's/.*listening on https:\/\/[^:]*:\([0-9]*\)\/.*/\1/p' "$WORK/server.log" | head -1)
  [ -n "$PORT" ] || { echo "profile-server: the server did not start" >&2; cat "$WORK/server.log" >&2; exit 1; }
  GROUP=$(ctl addgroup profile --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  ctl agentconfig --group "$GROUP" --out "$WORK/group.msh" >/dev/null
}

# perf record of the server while a command runs; then the flame graph and the flat table.
profile() {
  local name=$1; shift
  perf record -F 999 -e cpu-clock --call-graph dwarf,16384 -p "$SERVER" -o "$WORK/$name.data" \
    2>"$WORK/$name.perf.log" &
  local perf_pid=$!
  "$@"
  kill -INT "$perf_pid"; wait "$perf_pid" || true
  perf script -i "$WORK/$name.data" 2>/dev/null | inferno-collapse-perf >"$OUT/$name.folded"
  inferno-flamegraph --title "tether-server: $name" <"$OUT/$name.folded" >"$OUT/$name.svg"
  # awk, not head: head would close the pipe early and pipefail would end the script.
  perf report -i "$WORK/$name.data" --no-children --sort symbol -g none --stdio 2>/dev/null \
    | awk '/^ +[0-9.]+%/ && n < 25 { sub(/[ -]+$/, ""); print; n++ }' >"$OUT/$name-top.txt"
  echo "profile-server: $name → $OUT/$name.svg ($(wc -l <"$OUT/$name.folded") stacks)"
}

start_server

storm() {
  "$BIN/tether-loadgen" --msh "$WORK/group.msh" --agents "$STORM_AGENTS" --rate "$STORM_RATE" \
    --hold 2 --small-keys --json >"$OUT/storm-loadgen.json" 2>"$WORK/loadgen.log"
}
profile connect-storm storm

# A real agent, then downloads of a file of random bytes through the relay.
"$BIN/tether-agent" run --config "$WORK/group.msh" --state "$WORK/agent" --small-key \
  >"$WORK/agent.log" 2>&1 &
PIDS+=("$!")
for _ in $(seq 100); do
  ctl listdevices --json | grep -q '"online": *true' && break
  sleep 0.2
done
DEVICE=$(ctl listdevices --json | python3 -c '
import json, sys
print(next(d["id"] for d in json.load(sys.stdin) if d.get("online")))')
head -c "$((RELAY_MIB * 1024 * 1024))" /dev/urandom >"$WORK/blob"
relay() {
  for _ in $(seq "$RELAY_ROUNDS"); do
    ctl download --device "$DEVICE" "$WORK/blob" "$WORK/blob.copy" >/dev/null
  done
}
profile relay relay
echo "profile-server: flat profiles in $OUT/*-top.txt"
