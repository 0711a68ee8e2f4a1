#!/usr/bin/env bash
# Runs every test: formatting and lints, then unit and integration tests against the real binaries.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-test-deps.sh

cargo fmt --all -- --check
# Integration tests start the real binaries (server, agent, tetherctl), so build them all first.
cargo build --workspace --bins
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace --no-fail-fast
# The web console: type check, unit tests (Vitest), then end to end in Chromium against the binaries
# built above.
(cd console/web && npm ci --no-audit --no-fund && npm run check && npm test && npm run e2e)
