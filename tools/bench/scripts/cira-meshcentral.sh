#!/usr/bin/env bash
# Checks our simulated Intel AMT (server/examples/fake_amt.rs, the CIRA client and fake AMT of
# the MPS tests) against MeshCentral's own MPS, so that the APF our tests speak is the real one:
# MeshCentral must take its login and port forward, and what it sends back must decode.
#
#   cargo build -p tether-server --example fake_amt
#   tools/bench/scripts/cira-meshcentral.sh [MESHCENTRAL_INSTALL]
#
# MESHCENTRAL_INSTALL is a folder holding node_modules/meshcentral (the bench's cache by default;
# `npm install meshcentral@1.1.55` there makes one). MeshCentral runs in a private network
# namespace (`unshare -n`), offline, on fixed ports, with an "Intel AMT only" device group whose
# CIRA user is the start of its id (MeshCentral's rule) and a fixed `mpspass`.
set -euo pipefail
cd "$(dirname "$0")/../../.."
install=${1:-$HOME/.cache/tether-bench/meshcentral}
main=$install/node_modules/meshcentral
fake=$(realpath "${CARGO_TARGET_DIR:-target}")/debug/examples/fake_amt
[ -f "$main/meshcentral.js" ] || { echo "no MeshCentral in $install" >&2; exit 2; }
[ -x "$fake" ] || { echo "build it first: cargo build -p tether-server --example fake_amt" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work" 2>/dev/null || true' EXIT
mkdir -p "$work/data" "$work/files"
cat > "$work/data/config.json" <<JSON
{
  "settings": {
    "cert": "mps.tether.test", "port": 21443, "redirPort": 0, "mpsPort": 24433, "mpsPass": "cira-pass",
    "exactPorts": true, "WANonly": true, "agentTimeStampServer": false, "noAgentUpdate": true,
    "selfUpdate": false, "autoBackup": false
  },
  "domains": { "": { "title": "cira-check" } }
}
JSON

export MAIN=$main FAKE=$fake WORK=$work
unshare -n bash -euo pipefail -c '
ip link set lo up
mc() { node "$MAIN/meshcentral.js" --datapath "$WORK/data" --filespath "$WORK/files" "$@"; }
mc --createaccount admin --pass "Check-Pass-1" > /dev/null
mc --adminaccount admin > /dev/null
mc > "$WORK/meshcentral.log" 2>&1 &
server=$!
trap "kill $server 2>/dev/null || true" EXIT
# (A name without a dot would put MeshCentral in LAN mode, which has no MPS.)
for _ in $(seq 1 600); do
  grep -q "AMT server running" "$WORK/meshcentral.log" && break
  sleep 0.2
done
grep -q "AMT server running" "$WORK/meshcentral.log" || { cat "$WORK/meshcentral.log"; exit 1; }
created=$(node "$MAIN/meshctrl.js" --url wss://localhost:21443 --loginuser admin --loginpass Check-Pass-1 \
  adddevicegroup --name amt --amtonly)
# "ok mesh//<id>": the CIRA user is the first 16 characters of <id>, with @ and $ as X.
id=${created#*mesh//}
user=$(printf "%s" "${id:0:16}" | tr "@\$" XX)
echo "MeshCentral group: mesh//$id; CIRA user $user"
"$FAKE" 24433 "$WORK/data/root-cert-public.crt" "$user" cira-pass admin "Amt-Pass-1" --name mps.tether.test --trace \
  > "$WORK/fake.log" 2>&1 &
fake=$!
for _ in $(seq 1 100); do grep -q "^fake AMT .* connected" "$WORK/fake.log" && break; sleep 0.1; done
devices=$(node "$MAIN/meshctrl.js" --url wss://localhost:21443 --loginuser admin --loginpass Check-Pass-1 listdevices --json)
kill $fake
cat "$WORK/fake.log"
grep -q "^fake AMT .* connected" "$WORK/fake.log"
echo "$devices" | grep -q "\"mtype\": *1" || { echo "MeshCentral lists no Intel AMT device: $devices"; exit 1; }
echo "MeshCentral lists the machine: $(echo "$devices" | tr -d "\n " | cut -c1-200)"
# And a wrong password is refused, as ours refuses it.
if "$FAKE" 24433 "$WORK/data/root-cert-public.crt" "$user" wrong-pass admin x --name mps.tether.test > "$WORK/wrong.log" 2>&1; then
  echo "MeshCentral took a wrong CIRA password"; exit 1
fi
grep -q "refused the CIRA login" "$WORK/wrong.log"
' && echo "PASS: MeshCentral took the simulated machine's APF login and port forward, listed it, and refused a wrong password" \
  || { echo "FAIL"; cat "$work/meshcentral.log" 2>/dev/null | tail -20; exit 1; }
