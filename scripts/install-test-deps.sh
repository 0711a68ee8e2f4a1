#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine. Idempotent and quick when all is there.
set -euo pipefail

need_apt=()
command -v openssl >/dev/null || need_apt+=(openssl)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
command -v cc >/dev/null || need_apt+=(build-essential)
# The web console (console/web): Node.js 20.19+ with npm builds it (server/build.rs) and runs its
# tests; Debian's Chromium runs its end-to-end tests (playwright-core drives /usr/bin/chromium).
command -v node >/dev/null || need_apt+=(nodejs)
command -v npm >/dev/null || need_apt+=(npm)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)

if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  echo "installing: ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  echo "warning: Node.js $(node --version 2>/dev/null || echo missing) is too old for the console build; install Node.js 20.19 or newer" >&2
fi
