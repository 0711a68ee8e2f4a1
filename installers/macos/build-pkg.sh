#!/usr/bin/env bash
# Builds tether-agent-VERSION.pkg from an agent built for macOS, with Apple's pkgbuild.
# NOT TESTED: needs macOS (pkgbuild); see ../README.md. Usage:
#   installers/macos/build-pkg.sh VERSION path/to/tether-agent OUTDIR
# The .msh is not in the package: an administrator drops the group's agent.msh into
# "/Library/Application Support/Tether/" (or an MDM profile does), and launchd starts the agent.
set -euo pipefail
version="$1" binary="$2" outdir="$3"
here="$(cd "$(dirname "$0")" && pwd)"
root="$(mktemp -d)" scripts="$(mktemp -d)"
trap 'rm -rf "$root" "$scripts"' EXIT

install -d -m 0755 "$root/Library/Application Support/Tether" "$root/Library/LaunchDaemons"
install -m 0755 "$binary" "$root/Library/Application Support/Tether/tether-agent"
install -m 0644 "$here/com.tether.agent.plist" "$root/Library/LaunchDaemons/"

# Loads the daemon once the files are in place (it waits for agent.msh by restarting slowly).
cat > "$scripts/postinstall" <<'SCRIPT'
#!/bin/sh
launchctl bootout system/com.tether.agent 2>/dev/null || true
launchctl bootstrap system /Library/LaunchDaemons/com.tether.agent.plist
SCRIPT
chmod 0755 "$scripts/postinstall"

pkgbuild --root "$root" --scripts "$scripts" --identifier com.tether.agent \
  --version "$version" --install-location / "$outdir/tether-agent-$version.pkg"
