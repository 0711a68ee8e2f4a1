#!/usr/bin/env bash
# Proves the README's two commands on a really fresh Debian 12 machine: a minimal bookworm root
# (debootstrap --variant=minbase) that has only what such an image has, plus the Rust toolchain and
# git, a clean clone of the repository, and then, inside it as root:
#   bash scripts/install-test-deps.sh     (what "Install and run" says the first command needs)
#   cargo run --release -p tether-server -- --port 8443 --redirport 8080   (until it listens)
#   bash scripts/test.sh                                                    (installs deps, runs all)
# A developer machine or CI has packages installed by hand that hide a missing install step; this
# does not. Needs root (debootstrap, chroot, mount). CI does not run it: it takes 40-90 minutes.
#
# Usage: bash scripts/fresh-machine-check.sh [options] [REPO]
#   REPO               git repository to clone at its HEAD (default: the one holding this script)
#   --only-build       fast mode: `cargo build --workspace --bins --exclude tether-console`
#                      instead of test.sh
#   --prepare-only     only build the root, copy the toolchain and clone; run nothing of the project
#   --fresh-root       delete the existing root and bootstrap a new one (the only way to prove
#                      install-test-deps.sh again: a reused root keeps what it installed last time)
#   --root DIR         the root's folder (default $TETHER_FRESH_ROOT or /var/tmp/tether-fresh-root)
#   --logs DIR         the log folder (default /var/tmp/tether-fresh-logs/<date-time>)
# Environment: TETHER_SKIP_DESKTOP=1 and TETHER_DESKTOP_CLIPPY=1 pass through to the scripts inside;
# TETHER_FRESH_MIRROR (Debian mirror; default: the host's apt source, else deb.debian.org);
# TETHER_FRESH_MIN_FREE_GB (refuse to start a step with less free disk; default 8);
# TETHER_FRESH_KEEP_TARGET_GB (at the end, delete the root's cargo target dir if less is free;
# default 15); TETHER_FRESH_SERVER_TIMEOUT (seconds for the server to build and listen; default 5400).
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

script_dir=$(cd "$(dirname "$0")" && pwd)
root_dir=${TETHER_FRESH_ROOT:-/var/tmp/tether-fresh-root}
logs_dir=/var/tmp/tether-fresh-logs/$(date +%Y%m%d-%H%M%S)
mode=full
fresh_root=0
repo=
while [ $# -gt 0 ]; do
  case $1 in
    --only-build) mode=build ;;
    --prepare-only) mode=prepare ;;
    --fresh-root) fresh_root=1 ;;
    --root) root_dir=${2:?--root needs a folder}; shift ;;
    --logs) logs_dir=${2:?--logs needs a folder}; shift ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    *) repo=$1 ;;
  esac
  shift
done
if [ -z "$repo" ]; then
  repo=$(git -C "$script_dir" rev-parse --show-toplevel)
fi
min_free_gb=${TETHER_FRESH_MIN_FREE_GB:-8}
keep_target_gb=${TETHER_FRESH_KEEP_TARGET_GB:-15}
server_timeout=${TETHER_FRESH_SERVER_TIMEOUT:-5400}

if [ "$(id -u)" -ne 0 ]; then
  echo "fresh-machine-check needs root (debootstrap, chroot and bind mounts)" >&2
  exit 2
fi
git -C "$repo" rev-parse --verify -q HEAD >/dev/null || {
  echo "not a git repository with a HEAD: $repo" >&2
  exit 2
}
mkdir -p "$logs_dir" "$(dirname "$root_dir")"
# Physical paths (pwd -P): processes in the root are found by comparing /proc/PID/root with it.
root_dir=$(cd "$(dirname "$root_dir")" && pwd -P)/$(basename "$root_dir")
repo=$(cd "$repo" && pwd -P)
logs_dir=$(cd "$logs_dir" && pwd -P)

# Where things live inside the root. The target dir is the root's own, so nothing here ever reads
# or writes the host's build output.
marker=$root_dir/.tether-fresh-root-complete
base_packages=$root_dir/var/lib/tether-fresh/base-packages.txt
clone_in_root=/root/tether
target_in_root=/var/tmp/tether-target

# ---------------------------------------------------------------------------------------------
# Bookkeeping: every step has a name, a log, a duration and a result; the summary prints at exit,
# whatever happened, after everything started here has been stopped and unmounted.

step_names=()
step_results=()
step_secs=()
current_step=
current_start=0
current_log=
mounted=() # mount points under the root, in mount order (unmounted in reverse)
watchdog_pid=
summary_notes=()

begin() {
  current_step=$1
  current_start=$(date +%s)
  current_log=$logs_dir/$2
  echo "== $current_step (log: $current_log)"
}
end_step() { # result
  step_names+=("$current_step")
  step_results+=("$1")
  step_secs+=($(($(date +%s) - current_start)))
  current_step=
}
note() { summary_notes+=("$*"); echo "   $*"; }

fmt_secs() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

free_gb() { df -Pk "$1" | awk 'NR == 2 { print int($4 / 1048576) }'; }

# Refuses to start a step that could fill the disk: builds here take 10+ GB.
check_disk() {
  local free
  free=$(free_gb "$(dirname "$root_dir")")
  if [ "$free" -lt "$min_free_gb" ]; then
    echo "only ${free} GB free on $(df -P "$(dirname "$root_dir")" | awk 'NR == 2 { print $6 }'), need ${min_free_gb} GB" >&2
    return 1
  fi
}

# A build and test run writes 10+ GB while others may be filling the same disk: checking before a
# step is not enough, so this watches while the project's commands run and, below the minimum,
# stops everything in the root (the step then fails and the summary says why).
start_disk_watchdog() {
  (
    while sleep 20; do
      if ! check_disk 2>"$logs_dir/disk-low"; then
        stop_root_processes
        exit 0
      fi
      rm -f "$logs_dir/disk-low"
    done
  ) &
  watchdog_pid=$!
}

# Processes whose root directory is the fresh root: all were started by this script (the server,
# Xvfb, Chromium, an apt helper). They must end before the bind mounts can go.
stop_root_processes() {
  local pid link found
  for signal in TERM KILL; do
    found=0
    for pid in /proc/[0-9]*; do
      link=$(readlink "$pid/root" 2>/dev/null) || continue
      if [ "$link" = "$root_dir" ]; then
        kill "-$signal" "${pid#/proc/}" 2>/dev/null || true
        found=1
      fi
    done
    [ "$found" = 0 ] && return 0
    sleep 3
  done
}

unmount_all() {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
    umount "${mounted[i]}" 2>/dev/null || umount -l "${mounted[i]}" ||
      echo "warning: could not unmount ${mounted[i]}" >&2
  done
  mounted=()
}

# True when anything is mounted at or below the root: never delete it then, or rm would walk into
# the host's /dev, /proc or the source repository.
root_has_mounts() { awk -v r="$root_dir" '$5 == r || index($5, r "/") == 1 { f = 1 } END { exit !f }' /proc/self/mountinfo; }

remove_tree() { # dir
  if root_has_mounts; then
    echo "refusing to delete $1: something is still mounted under $root_dir" >&2
    return 1
  fi
  rm -rf --one-file-system "$1"
}

print_summary() {
  local i total=0 failed=0 line
  {
    echo
    echo "== fresh-machine-check summary ($mode mode; root $root_dir; logs $logs_dir)"
    for i in "${!step_names[@]}"; do
      printf '  %-4s %9s  %s\n' "${step_results[i]}" "$(fmt_secs "${step_secs[i]}")" "${step_names[i]}"
      total=$((total + step_secs[i]))
      [ "${step_results[i]}" = FAIL ] && failed=1
    done
    for line in "${summary_notes[@]}"; do echo "  note: $line"; done
    printf '  total %s; %s GB free on the disk now\n' "$(fmt_secs "$total")" "$(free_gb "$(dirname "$root_dir")")"
    if [ "$failed" = 1 ]; then echo "  RESULT: FAIL"; else echo "  RESULT: PASS"; fi
  } | tee "$logs_dir/summary.txt"
}

on_exit() {
  local rc=$?
  set +e
  # A step still open here was cut short by a failing command (set -e) or a signal.
  if [ -n "$current_step" ]; then
    echo "-- $current_step failed; the end of $current_log:"
    tail -n 25 "$current_log" 2>/dev/null | sed 's/^/   /'
    end_step FAIL
    rc=1
  fi
  [ -n "$watchdog_pid" ] && kill "$watchdog_pid" 2>/dev/null
  [ -s "$logs_dir/disk-low" ] && note "stopped by the disk watchdog: $(cat "$logs_dir/disk-low")"
  stop_root_processes
  unmount_all
  # The target dir is the largest thing here (10+ GB); on a tight disk it goes, the root stays.
  if [ -d "$root_dir$target_in_root" ] && [ "$(free_gb "$(dirname "$root_dir")")" -lt "$keep_target_gb" ]; then
    remove_tree "$root_dir$target_in_root" &&
      note "deleted $target_in_root in the root: less than ${keep_target_gb} GB free"
  fi
  print_summary
  # Any failed step fails the run, even if the last command happened to succeed.
  grep -q 'RESULT: FAIL' "$logs_dir/summary.txt" && [ "$rc" = 0 ] && rc=1
  exit "$rc"
}
trap on_exit EXIT
# A signal ends the script through the EXIT trap, so the mounts go even on Ctrl-C.
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# Runs a command inside the root as root, with a clean environment: nothing from the host's shell
# (CARGO_HOME, RUSTUP_HOME, CI, PATH additions) may leak in and make the root look less fresh.
in_root() {
  local env_vars=(
    HOME=/root USER=root LOGNAME=root SHELL=/bin/bash LANG=C.UTF-8 TERM=dumb
    PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    "CARGO_TARGET_DIR=$target_in_root" CARGO_TERM_COLOR=never RUST_BACKTRACE=1
  )
  local name
  for name in TETHER_SKIP_DESKTOP TETHER_DESKTOP_CLIPPY; do
    [ -n "${!name:-}" ] && env_vars+=("$name=${!name}")
  done
  # Where this machine's environment names its CA bundle (Node.js reads only its own CA list
  # unless NODE_EXTRA_CA_CERTS says otherwise): the same names, for the root's bundle.
  for name in NODE_EXTRA_CA_CERTS SSL_CERT_FILE SSL_CERT_DIR CURL_CA_BUNDLE GIT_SSL_CAINFO; do
    [ -n "${!name:-}" ] && [ -e "$root_dir${!name}" ] && env_vars+=("$name=${!name}")
  done
  env -i "${env_vars[@]}" chroot "$root_dir" /bin/bash -c "$1"
}

# ---------------------------------------------------------------------------------------------
# The steps.

# The Debian mirror the host's apt uses (deb822 or one-line format), so the root installs from the
# same place; deb.debian.org otherwise.
host_mirror() { # main|security
  local pattern='/debian/?$'
  [ "$1" = security ] && pattern='/debian-security/?$'
  {
    grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{ for (i = 2; i <= NF; i++) print $i }'
    grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
      sed 's/\[[^]]*\]//' | awk '{ print $2 }'
  } | grep -E "^https?://.*$pattern" | head -n 1 | sed 's:/$::' || true # none found: the caller's default
}

bootstrap_root() {
  if [ "$fresh_root" = 1 ] && [ -e "$root_dir" ]; then
    echo "--fresh-root: deleting $root_dir"
    remove_tree "$root_dir"
  fi
  if [ -f "$marker" ]; then
    echo "reusing $root_dir (bootstrapped $(head -n 1 "$marker"))"
    return 0
  fi
  # No marker: an earlier bootstrap stopped half way; start over.
  [ -e "$root_dir" ] && remove_tree "$root_dir"
  if ! command -v debootstrap >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap
  fi
  local mirror security
  mirror=${TETHER_FRESH_MIRROR:-$(host_mirror main)}
  mirror=${mirror:-http://deb.debian.org/debian}
  security=$(host_mirror security)
  security=${security:-http://deb.debian.org/debian-security}
  debootstrap --variant=minbase bookworm "$root_dir" "$mirror"
  # What a Debian 12 image's apt sources hold: the release, its updates and security.
  cat >"$root_dir/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $security bookworm-security main
EOF
  # A fresh machine would start the daemons that packages bring (dbus, for one); in a chroot they
  # would outlive the run and hold the bind mounts, so apt's maintainer scripts may not start any.
  printf '#!/bin/sh\nexit 101\n' >"$root_dir/usr/sbin/policy-rc.d"
  chmod 755 "$root_dir/usr/sbin/policy-rc.d"
  echo "bootstrapped $(date -u +%Y-%m-%dT%H:%MZ) from $mirror" >"$marker"
}

mount_root() {
  local target
  # /etc/resolv.conf: apt, cargo and npm inside must resolve the registries' names.
  # rm first: were it a symlink in the root, cp would write through it to a host path.
  rm -f "$root_dir/etc/resolv.conf"
  cp -L /etc/resolv.conf "$root_dir/etc/resolv.conf"
  # A real machine's /etc/hosts names localhost; a debootstrapped root may have none, and the tests
  # reach the server as localhost. (Found by this script: the redirect test could not resolve it.)
  if ! grep -qs '\blocalhost\b' "$root_dir/etc/hosts"; then
    printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >>"$root_dir/etc/hosts"
  fi
  for dir in /proc /sys /dev /dev/pts /dev/shm; do
    target=$root_dir$dir
    mkdir -p "$target"
    mount --bind "$dir" "$target"
    mounted+=("$target")
    # Slave propagation: what happens under the root's /dev never reaches the host's mount table.
    mount --make-rslave "$target"
  done
}

# The root's installed packages, sorted by name.
# shellcheck disable=SC2016 # ${Package} is dpkg-query's, not the shell's
root_packages() { chroot "$root_dir" dpkg-query -W -f '${Package}\n' | sort; }

# git and ca-certificates (and the machine's own CAs): a fresh developer machine needs them to clone the repository over
# https before it can run anything, and minbase has neither. Nothing of the project's own
# dependencies is installed here: proving that install-test-deps.sh installs them is the point.
install_git() {
  if in_root 'command -v git >/dev/null && [ -f /etc/ssl/certs/ca-certificates.crt ]'; then
    echo "git and ca-certificates are there"
  else
    in_root 'apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends git ca-certificates'
  fi
  # A machine behind a TLS-inspecting proxy (as here) trusts the proxy's CA, installed under
  # /usr/local/share/ca-certificates; without it every https download in the root (crates, npm)
  # would fail for a reason that no fresh machine of this kind has. Copied on every run: it may
  # change with the machine.
  if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    mkdir -p "$root_dir/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$root_dir/usr/local/share/ca-certificates/"
    in_root 'update-ca-certificates >/dev/null'
  fi
  # What a fresh machine has before the project's install script runs: see note_root_freshness.
  if [ ! -f "$base_packages" ]; then
    mkdir -p "$(dirname "$base_packages")"
    root_packages >"$base_packages"
  fi
}

# The host's default rustup toolchain, copied (no toolchain can be downloaded here): rustup's
# settings, that toolchain, the names that link to it, and ~/.cargo/bin's proxies. Not the cargo
# registry: a fresh machine fetches crates from crates.io, and so does this root.
copy_toolchain() {
  # Under sudo, the toolchain is the invoking developer's, in their home.
  local home
  home=$(getent passwd "${SUDO_USER:-root}" | cut -d: -f6)
  local rustup_home=${RUSTUP_HOME:-$home/.rustup} cargo_home=${CARGO_HOME:-$home/.cargo}
  local toolchain link
  toolchain=$(sed -n 's/^default_toolchain = "\(.*\)"$/\1/p' "$rustup_home/settings.toml")
  if [ -z "$toolchain" ] || [ ! -d "$rustup_home/toolchains/$toolchain" ]; then
    echo "no default rustup toolchain under $rustup_home" >&2
    return 1
  fi
  mkdir -p "$root_dir/root/.rustup/toolchains" "$root_dir/root/.cargo"
  cp "$rustup_home/settings.toml" "$root_dir/root/.rustup/settings.toml"
  # Copy, not hard links: the root must never change the host's toolchain files.
  if [ ! -d "$root_dir/root/.rustup/toolchains/$toolchain/bin" ]; then
    rm -rf "$root_dir/root/.rustup/toolchains/$toolchain.partial"
    cp -a "$rustup_home/toolchains/$toolchain" "$root_dir/root/.rustup/toolchains/$toolchain.partial"
    mv "$root_dir/root/.rustup/toolchains/$toolchain.partial" "$root_dir/root/.rustup/toolchains/$toolchain"
  fi
  for link in "$rustup_home"/toolchains/*; do
    if [ -L "$link" ] && [ "$(basename "$(readlink "$link")")" = "$toolchain" ]; then
      ln -sfn "$toolchain" "$root_dir/root/.rustup/toolchains/$(basename "$link")"
    fi
  done
  rm -rf "$root_dir/root/.cargo/bin"
  cp -a "$cargo_home/bin" "$root_dir/root/.cargo/bin"
  [ -f "$cargo_home/env" ] && cp "$cargo_home/env" "$root_dir/root/.cargo/env"
  in_root 'cargo --version && rustc --version && cargo fmt --version && cargo clippy --version'
}

# A clean clone of the repository's HEAD by the root's own git, as a developer would clone it: no
# uncommitted file of the host's checkout comes along. A bundle carries the commits in, so the
# source may be any kind of repository (a linked worktree too) and nothing needs mounting.
clone_repo() {
  local branch
  branch=$(git -C "$repo" symbolic-ref -q HEAD || true)
  rm -rf --one-file-system "$root_dir$clone_in_root" "$root_dir/tmp/tether.bundle"
  # shellcheck disable=SC2086 # no branch on a detached HEAD: then HEAD alone
  git -C "$repo" bundle create -q "$root_dir/tmp/tether.bundle" HEAD $branch
  in_root "git -c init.defaultBranch=main -c advice.detachedHead=false clone -q /tmp/tether.bundle $clone_in_root &&
    git -C $clone_in_root log -1 --format='%h %s'"
  rm -f "$root_dir/tmp/tether.bundle"
}

# How many packages the root has beyond minbase, git and ca-certificates (the list that the git step
# saved): none before the first run of install-test-deps.sh; afterwards the root no longer proves
# that script from scratch.
note_root_freshness() {
  local added
  added=$(root_packages | comm -13 "$base_packages" - | wc -l)
  if [ "$added" -gt 0 ]; then
    note "root reused with $added packages that an earlier run installed: install-test-deps.sh was not proven from scratch (--fresh-root does)"
  else
    note "root has only minbase, git and ca-certificates: install-test-deps.sh runs from scratch"
  fi
}

# A free TCP port on the host, starting at $1: the root shares the host's network.
free_port() {
  local port=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
  echo "$port"
}

# The README's first command, in the background until it prints where it listens, then stopped.
run_server() {
  local port redirport log=$1 waited=0 code
  port=$(free_port 8443)
  redirport=$(free_port 8080)
  [ "$redirport" = "$port" ] && redirport=$(free_port $((port + 1)))
  [ "$port:$redirport" = 8443:8080 ] || note "ports 8443/8080 taken on the host: the server ran with --port $port --redirport $redirport"
  echo "cargo run --release -p tether-server -- --port $port --redirport $redirport" >"$log"
  in_root "cd $clone_in_root && exec cargo run --release -p tether-server -- --port $port --redirport $redirport" \
    >>"$log" 2>&1 </dev/null &
  local pid=$!
  while ! grep -q 'tether-server listening on' "$log"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid" || true
      echo "the server exited before it listened; the end of $log:" >&2
      tail -n 40 "$log" >&2
      return 1
    fi
    if [ "$waited" -ge "$server_timeout" ]; then
      echo "no 'tether-server listening on' after ${server_timeout}s" >&2
      return 1
    fi
    sleep 5
    waited=$((waited + 5))
  done
  grep 'tether-server listening on' "$log"
  # The URL it printed must answer (asked from the host: minbase has no HTTP client).
  if command -v curl >/dev/null; then
    code=$(curl -ksS -o /dev/null -w '%{http_code}' --max-time 20 "https://127.0.0.1:$port/" || true)
    echo "GET https://127.0.0.1:$port/ -> HTTP $code"
    case $code in 2?? | 3??) ;; *) return 1 ;; esac
  fi
  # cargo and the server are the only processes in the root now: stop them (TERM, then KILL).
  stop_root_processes
  wait "$pid" || true
}

# ---------------------------------------------------------------------------------------------

echo "fresh-machine-check: $mode mode, repository $repo ($(git -C "$repo" rev-parse --short HEAD)), root $root_dir"
echo "logs: $logs_dir"

begin "disk: at least ${min_free_gb} GB free" disk.log
check_disk 2>&1 | tee "$logs_dir/disk.log"
end_step PASS

begin "debootstrap --variant=minbase bookworm (or reuse)" bootstrap.log
bootstrap_root >"$logs_dir/bootstrap.log" 2>&1
end_step PASS

begin "bind mounts, resolv.conf" mounts.log
mount_root >"$logs_dir/mounts.log" 2>&1
end_step PASS

begin "git, ca-certificates and the host's CAs in the root" git.log
install_git >"$logs_dir/git.log" 2>&1
end_step PASS

begin "copy the host's Rust toolchain" toolchain.log
copy_toolchain >"$logs_dir/toolchain.log" 2>&1
end_step PASS
sed 's/^/   /' "$logs_dir/toolchain.log"

begin "git clone $repo" clone.log
clone_repo >"$logs_dir/clone.log" 2>&1
end_step PASS
note "clone at $(tail -n 1 "$logs_dir/clone.log")"
note_root_freshness

[ "$mode" = prepare ] && exit 0

start_disk_watchdog

# The server command needs a C linker and Node.js, which a fresh machine lacks: the README's
# "Install and run" sends a developer to install-test-deps.sh for them, so that runs first
# (test.sh runs it again later, and then it finds everything there).
begin "bash scripts/install-test-deps.sh" install-test-deps.log
check_disk
in_root "cd $clone_in_root && bash scripts/install-test-deps.sh" >"$logs_dir/install-test-deps.log" 2>&1
end_step PASS

begin "README 1: cargo run --release -p tether-server (until it listens)" server.log
check_disk
run_server "$logs_dir/server.log"
end_step PASS

if [ "$mode" = build ]; then
  begin "cargo build --workspace --bins --exclude tether-console" build.log
  check_disk
  in_root "cd $clone_in_root && cargo build --workspace --bins --exclude tether-console" >"$logs_dir/build.log" 2>&1
  end_step PASS
else
  begin "README 2: bash scripts/test.sh" test.log
  check_disk
  in_root "cd $clone_in_root && bash scripts/test.sh" >"$logs_dir/test.log" 2>&1
  end_step PASS
fi
