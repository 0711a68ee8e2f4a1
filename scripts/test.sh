#!/usr/bin/env bash
# Runs every test: formatting and lints, then unit and integration tests against the real binaries.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-test-deps.sh
# Everything the tests need was just installed, so no test may skip for lack of it: the desktop
# tests (Xvfb, xprobe) skip outside CI only, to be friendly to a partial developer machine.
export CI="${CI:-1}"

cargo fmt --all -- --check
# Integration tests start the real binaries (server, agent, tetherctl), so build them all first.
# The desktop console (tether-console, Tauri) needs WebKitGTK, so it has its own step below.
cargo build --workspace --bins --exclude tether-console
# The agent update tests (server/tests/agent_update.rs) need an agent of another version: the
# version is fixed at build time, so build one as 0.0.1-old, keep it as tether-agent-old, and
# build the real one again (each is a relink of the agent crate only, about 10 s).
target_dir="${CARGO_TARGET_DIR:-target}"
TETHER_AGENT_VERSION=0.0.1-old cargo build -p tether-agent --bin tether-agent
cp "$target_dir/debug/tether-agent" "$target_dir/debug/tether-agent-old"
cargo build -p tether-agent --bin tether-agent
# The fake Intel AMT machine the console's AMT e2e test connects to the server's MPS port.
cargo build -p tether-server --example fake_amt
cargo clippy --workspace --exclude tether-console --all-targets --quiet -- -D warnings
cargo test --workspace --exclude tether-console --no-fail-fast
# The desktop console under Xvfb against the server built above. A cold build of the Tauri stack
# takes 10-20 minutes on 2 cores, so its clippy pass (another full check of that stack) runs only
# with TETHER_DESKTOP_CLIPPY=1; TETHER_SKIP_DESKTOP=1 skips the desktop console entirely (and its
# apt packages, see install-test-deps.sh).
if [ "${TETHER_SKIP_DESKTOP:-0}" != 1 ]; then
  if [ "${TETHER_DESKTOP_CLIPPY:-0}" = 1 ]; then
    cargo clippy -p tether-console --all-targets --quiet -- -D warnings
  fi
  cargo test -p tether-console --no-fail-fast
  # The .deb, installed into a throwaway root, starts (its binary is also the one the web
  # console's e2e suite drives below, console/web/e2e/desktopApp.test.mjs).
  bash scripts/check-app-bundle.sh
fi
# The web console: type check, unit tests (Vitest), then end to end in Chromium against the binaries
# built above.
(cd console/web && npm ci --no-audit --no-fund && npm run check && npm test && npm run e2e)
