#!/usr/bin/env bash
# How many idle agents one release tether-server holds on this machine, and its memory per agent:
# tether-loadgen connects N simulated agents (real handshake, RSA-2048 keys cached on disk)
# from several loopback source addresses, since one source address has only ~28,000 ephemeral
# ports towards one server port.
#
#   bash tools/bench/scripts/max-agents.sh [N] [OUT_DIR]      (default: 30000, results/max-agents)
#
# Needs release binaries (`cargo build --release -p tether-server -p tetherctl -p tether-loadgen`).
# Memory per agent does not depend on CPU contention, connect times do: read those only from a
# run on a quiet machine. The first run generates the keys it lacks (~25 ms of CPU each).
set -euo pipefail

N=${1:-30000}
OUT=${2:-results/max-agents}
BIN=${TETHER_BIN:-target/release}
# 2 cores do ~300 full handshakes a second with the load tool beside the server; offer less, and
# hold each agent until the last has joined, so all N are connected at once at the end.
RATE=${RATE:-200}
HOLD=${HOLD:-$((N / RATE + 60))}
PASS='Bench-pass-1234'
# One source address per 25,000 agents, from 127.0.0.2 up (all of 127/8 is loopback).
SOURCES=$(python3 -c "print(','.join(f'127.0.0.{i + 2}' for i in range(($N + 24999) // 25000)))")

# Each agent is one socket on each side: lift the open-file limit for the server and the load tool
# (raising the hard limit needs root; otherwise the current one caps the run, and the tools say so).
ulimit -Hn $((N * 2 + 10000)) 2>/dev/null || true
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
echo "max-agents: open-file limit $(ulimit -n) per process (the server and the load tool are one process each)"

mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/tether-max-XXXX)
SERVER=
cleanup() {
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN/tether-server" --datapath "$WORK/data" --createaccount admin --pass "$PASS" >/dev/null
# The connection caps (20,000 per listener, 1,000 per source address by default) would stop the
# run before the machine does: lift them.
"$BIN/tether-server" --datapath "$WORK/data" --port 0 --redirport 0 --mpsport 0 --bind 127.0.0.1 \
  --cert 127.0.0.1 --max-connections 0 --max-connections-per-ip 0 >"$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 100); do grep -q 'listening on' "$WORK/server.log" && break; sleep 0.1; done
PORT=$(sed -n 's/.*listening on https:\/\/[^:]*:\([0-9]*\)\/.*/\1/p' "$WORK/server.log" | head -1)
[ -n "$PORT" ] || { echo "max-agents: the server did not start" >&2; exit 1; }
ctl() {
  TETHER_PASS=$PASS "$BIN/tetherctl" --url "wss://127.0.0.1:$PORT" --user admin \
    --trust-root "$WORK/data/root-cert-public.crt" "$@"
}
GROUP=$(ctl addgroup max --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
ctl agentconfig --group "$GROUP" --out "$WORK/group.msh" >/dev/null

echo "max-agents: $N agents at $RATE/s from $SOURCES, held ${HOLD}s"
"$BIN/tether-loadgen" --msh "$WORK/group.msh" --agents "$N" --rate "$RATE" --hold "$HOLD" \
  --small-keys --json --server-pid "$SERVER" --source-addrs "$SOURCES" \
  >"$OUT/loadgen-$N.json" 2>"$OUT/loadgen-$N.log" || true   # non-zero when some failed: still report
python3 - "$OUT/loadgen-$N.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
rss = r.get("server_rss_kb") or []
summary = {k: r.get(k) for k in ("online", "failed", "connect_ms_p50", "connect_ms_p99")}
if rss and r.get("online"):
    summary["server_rss_mb_start"] = round(rss[0] / 1024, 1)
    summary["server_rss_mb_max"] = round(max(rss) / 1024, 1)
    summary["kb_per_agent"] = round((max(rss) - rss[0]) / r["online"], 1)
# Most agents connected at the same time, from the load tool's progress lines.
import re
log = sys.argv[1].replace(".json", ".log")
peaks = [int(m) for m in re.findall(r"online (\d+) /", open(log).read())]
summary["most_online_at_once"] = max(peaks, default=0)
print(json.dumps(summary))
EOF
