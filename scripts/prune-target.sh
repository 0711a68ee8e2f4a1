#!/usr/bin/env bash
# Keeps a reused cargo target folder from filling the disk: every change to a crate links its
# test programs again under a new hash (a debug test program with the desktop stack is ~300 MB),
# and cargo never removes the old ones. This deletes, in debug/deps, every executable that has a
# newer one of the same name; they are outputs only, so the worst case is a relink.
set -euo pipefail
deps="${CARGO_TARGET_DIR:-target}/debug/deps"
[ -d "$deps" ] || exit 0
cd "$deps"
declare -A newest_seen=()
removed=0
# Newest first: the first of each name is kept.
while IFS= read -r -d '' file; do
  name="${file#./}"
  stem="${name%-*}"
  if [ -n "${newest_seen[$stem]:-}" ]; then
    rm -f -- "$name" "$name.d"
    removed=$((removed + 1))
  else
    newest_seen[$stem]=1
  fi
done < <(find . -maxdepth 1 -type f -perm -u+x ! -name '*.*' -printf '%T@ %p\0' | sort -z -rn | cut -z -d' ' -f2-)
if [ "$removed" -gt 0 ]; then
  echo "prune-target: removed $removed superseded test programs"
fi
