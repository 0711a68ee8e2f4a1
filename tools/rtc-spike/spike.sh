#!/usr/bin/env bash
# Run one spike (dc | video | bwe) with the Rust answerer and Chromium in two network
# namespaces joined by a veth pair (10.77.0.1 <-> 10.77.0.2): Chromium ignores loopback
# candidates, and tc tbf on the Rust side's veth caps what it sends. Needs root, x264, node.
#   tools/rtc-spike/spike.sh dc|video|bwe
# The binary: $RTC_SPIKE_BIN, or $CARGO_TARGET_DIR/release/rtc-spike (cargo build --release).
set -euo pipefail
mode=${1:?usage: spike.sh dc|video|bwe}
here=$(cd "$(dirname "$0")" && pwd)
bin=${RTC_SPIKE_BIN:-${CARGO_TARGET_DIR:-$here/target}/release/rtc-spike}
work=$(mktemp -d /tmp/rtc-spike.XXXXXX)
ns_a=rtcspike-a$$ ns_b=rtcspike-b$$ dev_a=rsa$$ dev_b=rsb$$
rust_pid=

cleanup() {
  [ -n "$rust_pid" ] && kill "$rust_pid" 2>/dev/null || true
  ip netns del "$ns_a" 2>/dev/null || true # takes its veth end, the peer and any qdisc along
  ip netns del "$ns_b" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
[ -n "${SPIKE_KEEP:-}" ] && trap 'echo "exit $? at line $LINENO"; cp -r "$work" /dev/shm/spike-last; cleanup' EXIT

ip netns add "$ns_a"
ip netns add "$ns_b"
ip link add "$dev_a" type veth peer name "$dev_b"
ip link set "$dev_a" netns "$ns_a"
ip link set "$dev_b" netns "$ns_b"
ip -n "$ns_a" addr add 10.77.0.1/24 dev "$dev_a"
ip -n "$ns_b" addr add 10.77.0.2/24 dev "$dev_b"
for ns in "$ns_a" "$ns_b"; do ip -n "$ns" link set lo up; done
ip -n "$ns_a" link set "$dev_a" up
ip -n "$ns_b" link set "$dev_b" up
# Without a default route Chromium gathers only 0.0.0.0/:: host candidates, which it never
# signals; ICE then works only because str0m's answer carries its address (Chromium's side
# shows up as peer-reflexive). SPIKE_ROUTE=1 adds the route, so Chromium signals 10.77.0.2.
if [ -n "${SPIKE_ROUTE:-}" ]; then
  ip -n "$ns_b" route add default via 10.77.0.1
  ip -n "$ns_a" route add default via 10.77.0.2
fi

args=()
seconds=20
if [ "$mode" != dc ]; then
  # 6 s of moving 640x360 stripes at 15 fps: H.264 constrained baseline, IDR every 30 frames,
  # SPS/PPS before each IDR (the raw .264 output default), no B-frames. ffmpeg is not installed here; the x264 CLI is.
  python3 -c '
import sys
w, h = 640, 360
for f in range(90):
    row = bytes((x * 2 + f * 8) % 256 for x in range(w))
    sys.stdout.buffer.write(row * h + bytes([(f * 3) % 256]) * (w * h // 4) + bytes([128]) * (w * h // 4))
' | x264 --quiet --input-res 640x360 --fps 15 --demuxer raw --profile baseline --level 3.1 \
      --keyint 30 --min-keyint 30 --bframes 0 --threads 1 --bitrate 600 \
      -o "$work/clip.264" - 2>/dev/null
  args=(--clip "$work/clip.264")
fi
[ "$mode" = video ] && args+=(--seconds $((seconds + 5)))
if [ "$mode" = bwe ]; then
  args+=(--shape-dev "$dev_a")
  seconds=110
fi

ip netns exec "$ns_a" "$bin" chromium "$mode" 10.77.0.1:8080 "${args[@]}" >"$work/rust.log" 2>&1 &
rust_pid=$!
for _ in $(seq 100); do grep -q listening "$work/rust.log" && break; sleep 0.1; done

set +e
ip netns exec "$ns_b" node "$here/drive.cjs" "$mode" http://10.77.0.1:8080/ "$seconds" >"$work/browser.log" 2>"$work/browser.err"
browser_rc=$?
[ "$browser_rc" = 0 ] || kill "$rust_pid" 2>/dev/null
wait "$rust_pid"
rust_rc=$?
rust_pid=
set -e
echo "== rust (rc $rust_rc)"; cat "$work/rust.log"
echo "== chromium (rc $browser_rc)"; cat "$work/browser.log"
grep -v '^page: ' "$work/browser.err" | head -20 || true
[ "$browser_rc" = 0 ] && [ "$rust_rc" = 0 ]
