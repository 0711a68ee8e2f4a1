#!/usr/bin/env bash
# The desktop app as a Debian user gets it: the Tauri bundler (the npm build of tauri-cli, pinned
# in console/web/package.json) makes the .deb, dpkg installs it into a throwaway root, and the
# installed binary starts under Xvfb and shows its bundled server picker. The build is a debug
# one (it reuses the test build's dependencies); a release .deb is the same command without
# --debug. Prints the package's size.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$PWD/target}"
[ -x console/web/node_modules/.bin/tauri ] || (cd console/web && npm ci --no-audit --no-fund)

rm -rf "$target/debug/bundle/deb"
(cd console && web/node_modules/.bin/tauri build --debug --bundles deb --ci)
deb=$(echo "$target"/debug/bundle/deb/*.deb)
echo "check-app-bundle: $deb ($(du -h "$deb" | cut -f1))"

work=$(mktemp -d)
xvfb_pid=
cleanup() {
  [ -n "$xvfb_pid" ] && kill "$xvfb_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# A root of its own: an empty dpkg database, the package alone (the libraries it depends on are
# the host's, which the dependency check below names).
root="$work/root"
mkdir -p "$root"/var/lib/dpkg/{info,updates,triggers}
touch "$root/var/lib/dpkg/status"
dpkg --root="$root" --force-depends --force-script-chrootless -i "$deb"
dpkg --root="$root" -s tether | grep -q '^Status: install ok installed'
depends=$(dpkg-deb -f "$deb" Depends)
for library in libwebkit2gtk-4.1-0 libgtk-3-0 libayatana-appindicator3-1; do
  grep -q "$library" <<<"$depends" || { echo "check-app-bundle: $library missing from Depends: $depends" >&2; exit 1; }
done
test -f "$root/usr/share/applications/Tether.desktop"
test -f "$root/usr/share/icons/hicolor/128x128/apps/tether-console.png"
"$root/usr/bin/tether-console" --version

# The installed binary starts and loads its own picker page (the bundled assets, served by the
# app itself): it prints a line per loaded page.
Xvfb -displayfd 3 -screen 0 1024x768x24 -nolisten tcp 3>"$work/display" 2>/dev/null &
xvfb_pid=$!
for _ in $(seq 300); do [ -s "$work/display" ] && break; sleep 0.1; done
display=":$(cat "$work/display")"
DISPLAY="$display" HOME="$work" XDG_CONFIG_HOME="$work/config" XDG_DATA_HOME="$work/data" \
  XDG_CACHE_HOME="$work/cache" WEBKIT_DISABLE_COMPOSITING_MODE=1 LIBGL_ALWAYS_SOFTWARE=1 \
  timeout 120 "$root/usr/bin/tether-console" >"$work/app.log" 2>&1 &
app_pid=$!
for _ in $(seq 1200); do
  grep -q '^tether-console loaded tauri://localhost' "$work/app.log" && break
  kill -0 "$app_pid" 2>/dev/null || break
  sleep 0.1
done
kill "$app_pid" 2>/dev/null || true
wait "$app_pid" 2>/dev/null || true
if ! grep -q '^tether-console loaded tauri://localhost' "$work/app.log"; then
  echo "check-app-bundle: the installed app did not load its picker:" >&2
  cat "$work/app.log" >&2
  exit 1
fi
echo "check-app-bundle: the installed app starts and shows its server picker"
