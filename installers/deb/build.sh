#!/bin/bash
# Builds the Debian packages tether-server and tether-agent from binaries already built:
#   installers/deb/build.sh VERSION BINDIR OUTDIR
# e.g. installers/deb/build.sh 0.1.0 target/release dist
#
# Plain dpkg-deb rather than cargo-deb: the packages are two binaries, a unit and four short
# maintainer scripts each, and this way packaging needs nothing but Debian's own tools (no extra
# crate to compile in CI, any cargo profile's binaries). Binaries are stripped of debug info.
# The maintainer scripts use deb-systemd-helper / deb-systemd-invoke (init-system-helpers), so a
# policy-rc.d that forbids starting services is honoured, as in Debian's own packages.
set -euo pipefail

version=${1:?usage: build.sh VERSION BINDIR OUTDIR}
bindir=${2:?usage: build.sh VERSION BINDIR OUTDIR}
outdir=${3:?usage: build.sh VERSION BINDIR OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
units="$here/../systemd"
arch=$(dpkg --print-architecture)
mkdir -p "$outdir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# control FILE PACKAGE DEPENDS DESCRIPTION [RECOMMENDS]
control() {
    cat > "$1" <<EOF
Package: $2
Version: $version
Architecture: $arch
Maintainer: Tether developers <tether@localhost>
Section: admin
Priority: optional
Depends: $3
EOF
    if [ -n "${5:-}" ]; then echo "Recommends: $5" >> "$1"; fi
    echo "Description: $4" >> "$1"
}

# script FILE: the rest of stdin, as an executable maintainer script
script() {
    { echo '#!/bin/sh'; echo 'set -e'; cat; } > "$1"
    chmod 0755 "$1"
}

# ---- tether-server ----
root="$work/server"
install -d "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" "$root/usr/share/doc/tether-server"
install -m 0755 "$bindir/tether-server" "$bindir/tetherctl" "$root/usr/bin/"
strip --strip-debug "$root/usr/bin/tether-server" "$root/usr/bin/tetherctl"
install -m 0644 "$units/tether-server.service" "$root/lib/systemd/system/"
echo "Tether: see the project's LICENSE." > "$root/usr/share/doc/tether-server/copyright"
control "$root/DEBIAN/control" tether-server "libc6, passwd, init-system-helpers" \
    "Tether remote management server
 Manages computers through the tether-agent (and MeshCentral's agents): remote desktop,
 terminal, files, Intel AMT. Its data folder is /var/lib/tether."
script "$root/DEBIAN/postinst" <<'EOF'
if [ "$1" = configure ]; then
    if ! getent passwd tether >/dev/null; then
        useradd --system --user-group --home-dir /var/lib/tether --no-create-home \
            --shell /usr/sbin/nologin tether
    fi
    install -d -m 0700 -o tether -g tether /var/lib/tether
    deb-systemd-helper unmask tether-server.service >/dev/null || true
    deb-systemd-helper enable tether-server.service >/dev/null || true
    if [ -d /run/systemd/system ]; then
        systemctl --system daemon-reload >/dev/null || true
        deb-systemd-invoke restart tether-server.service >/dev/null || true
    fi
fi
EOF
script "$root/DEBIAN/prerm" <<'EOF'
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
    deb-systemd-invoke stop tether-server.service >/dev/null || true
fi
EOF
script "$root/DEBIAN/postrm" <<'EOF'
if [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null || true
fi
if [ "$1" = remove ] && command -v deb-systemd-helper >/dev/null; then
    deb-systemd-helper mask tether-server.service >/dev/null || true
fi
if [ "$1" = purge ]; then
    if command -v deb-systemd-helper >/dev/null; then
        deb-systemd-helper purge tether-server.service >/dev/null || true
        deb-systemd-helper unmask tether-server.service >/dev/null || true
    fi
    # The data folder holds the database and the server's keys: only a purge removes it.
    rm -rf /var/lib/tether
    if getent passwd tether >/dev/null; then userdel tether || true; fi
fi
EOF
dpkg-deb --root-owner-group -Zgzip --build "$root" "$outdir/tether-server_${version}_${arch}.deb" >/dev/null

# ---- tether-agent ----
root="$work/agent"
install -d "$root/DEBIAN" "$root/usr/lib/tether-agent" "$root/lib/systemd/system" "$root/usr/share/doc/tether-agent"
install -m 0755 "$bindir/tether-agent" "$root/usr/lib/tether-agent/"
strip --strip-debug "$root/usr/lib/tether-agent/tether-agent"
install -m 0644 "$units/tether-agent.service" "$root/lib/systemd/system/"
echo "Tether: see the project's LICENSE." > "$root/usr/share/doc/tether-agent/copyright"
# The desktop's encoders are Debian's libx264, libvpx and libopus (bookworm's library names).
# The messenger opens its page with xdg-open, and the desktop's sound is captured with parec;
# without them the agent says why chat windows or sound are unavailable.
control "$root/DEBIAN/control" tether-agent "libc6, libx264-164, libvpx7, libopus0, init-system-helpers" \
    "Tether agent: remote management of this machine
 Connects out to a Tether (or MeshCentral) server named by /etc/tether-agent/agent.msh, the
 device group's install file, and serves the sessions that server allows." \
    "xdg-utils, pulseaudio-utils, util-linux"
script "$root/DEBIAN/postinst" <<'EOF'
if [ "$1" = configure ]; then
    install -d -m 0700 /etc/tether-agent /var/lib/tether-agent
    deb-systemd-helper unmask tether-agent.service >/dev/null || true
    deb-systemd-helper enable tether-agent.service >/dev/null || true
    if [ -d /run/systemd/system ]; then
        systemctl --system daemon-reload >/dev/null || true
        deb-systemd-invoke restart tether-agent.service >/dev/null || true
    fi
    if [ ! -f /etc/tether-agent/agent.msh ]; then
        echo "tether-agent: put the device group's agent.msh at /etc/tether-agent/agent.msh, then: systemctl restart tether-agent"
    fi
fi
EOF
script "$root/DEBIAN/prerm" <<'EOF'
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
    deb-systemd-invoke stop tether-agent.service >/dev/null || true
fi
EOF
script "$root/DEBIAN/postrm" <<'EOF'
if [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null || true
fi
if [ "$1" = remove ] && command -v deb-systemd-helper >/dev/null; then
    deb-systemd-helper mask tether-agent.service >/dev/null || true
fi
if [ "$1" = purge ]; then
    if command -v deb-systemd-helper >/dev/null; then
        deb-systemd-helper purge tether-agent.service >/dev/null || true
        deb-systemd-helper unmask tether-agent.service >/dev/null || true
    fi
    # The agent's identity (its key) and its .msh: only a purge removes them.
    rm -rf /var/lib/tether-agent /etc/tether-agent
fi
EOF
dpkg-deb --root-owner-group -Zgzip --build "$root" "$outdir/tether-agent_${version}_${arch}.deb" >/dev/null
echo "built $outdir/tether-server_${version}_${arch}.deb and $outdir/tether-agent_${version}_${arch}.deb"
