#!/usr/bin/env bash
# Removes exactly what scripts/install.sh installed (the names in <dir>/.rcni-installed),
# and only while each file is still the one installed (same checksum, or our symlink).
#   usage: scripts/uninstall.sh [--prefix DIR]      (DESTDIR is honoured as in install.sh)
set -euo pipefail
prefix=/opt/cni/bin
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=${2:?--prefix needs a directory}; shift 2 ;;
    -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
    *) echo "uninstall: unknown option $1" >&2; exit 2 ;;
  esac
done
dir="${DESTDIR:-}$prefix"
manifest="$dir/.rcni-installed"
[ -f "$manifest" ] || { echo "uninstall: nothing installed by rcni in $dir" >&2; exit 0; }
while IFS=$'\t' read -r name sum; do
  case "$name" in ""|*/*) continue ;; esac
  path="$dir/$name"
  if [ "$sum" = symlink ] && [ -L "$path" ]; then
    rm -f "$path"; echo "removed $path"
  elif [ -f "$path" ] && [ ! -L "$path" ] && [ "$(sha256sum < "$path" | cut -d' ' -f1)" = "$sum" ]; then
    rm -f "$path"; echo "removed $path"
  elif [ -e "$path" ] || [ -L "$path" ]; then
    echo "kept $path: it is no longer the file rcni installed" >&2
  fi
done < "$manifest"
rm -f "$manifest"
