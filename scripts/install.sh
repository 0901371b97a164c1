#!/usr/bin/env bash
# Installs rcni's plugins into /opt/cni/bin (or another directory), in one of two layouts:
#   separate binaries (default)   one executable per plugin, as distributions ship them
#   --multicall                   one `cni` binary plus a symlink per plugin name
# It never replaces a file it did not install unless --force is given, writes each file
# atomically (temporary file + rename: runtimes may exec a plugin at any moment), records
# what it installed with a checksum in <dir>/.rcni-installed (read by scripts/uninstall.sh,
# which removes a file only while it is still the one installed) and prints it.
#
#   usage: scripts/install.sh [--prefix DIR] [--multicall] [--force] [--no-build]
#   DESTDIR=/staging scripts/install.sh ...   stages under $DESTDIR for packagers
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=/opt/cni/bin layout=separate force=0 build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=${2:?--prefix needs a directory}; shift 2 ;;
    --multicall) layout=multicall; shift ;;
    --force) force=1; shift ;;
    --no-build) build=0; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "install: unknown option $1" >&2; exit 2 ;;
  esac
done
source scripts/target.sh
release=$RELEASE_DIR
[ "$build" = 1 ] && cargo build --release --bins
[ -x "$release/cni" ] || { echo "install: $release/cni is missing: build first" >&2; exit 1; }

dir="${DESTDIR:-}$prefix"
manifest="$dir/.rcni-installed"
mkdir -p "$dir"
previous=""
[ -f "$manifest" ] && previous=$(cat "$manifest")
# The manifest line of what is at NAME now: "NAME<TAB>symlink" or "NAME<TAB><sha256>".
fingerprint() {
  if [ -L "$dir/$1" ]; then printf '%s\tsymlink\n' "$1"
  else printf '%s\t%s\n' "$1" "$(sha256sum < "$dir/$1" | cut -d' ' -f1)"; fi
}
# NAME is ours when it is still exactly what an earlier run installed.
ours() { [ -e "$dir/$1" ] || [ -L "$dir/$1" ] || return 1; grep -qxF "$(fingerprint "$1")" <<<"$previous"; }

plugins=$("$release/cni" --list)
names=$plugins
[ "$layout" = multicall ] && names="cni $plugins"
for name in $names; do
  if [ -e "$dir/$name" ] || [ -L "$dir/$name" ]; then
    if ! ours "$name" && [ "$force" != 1 ]; then
      echo "install: $dir/$name exists and was not installed by rcni (use --force to replace it)" >&2
      exit 1
    fi
  fi
done

installed=()
put() { # put NAME: atomically place one file or symlink
  local name=$1 tmp="$dir/.$1.rcni-tmp"
  rm -f "$tmp"
  if [ "$layout" = multicall ] && [ "$name" != cni ]; then
    ln -s cni "$tmp"
  elif [ "$layout" = multicall ]; then
    install -m 0755 "$release/cni" "$tmp"
  else
    install -m 0755 "$release/$name" "$tmp"
  fi
  mv -fT "$tmp" "$dir/$name"
  installed+=("$(fingerprint "$name")")
  echo "installed $dir/$name$([ -L "$dir/$name" ] && echo " -> cni")"
}
for name in $names; do put "$name"; done
# A switch of layout leaves the other layout's `cni` behind only if we installed it.
if [ "$layout" = separate ] && ours cni && [ -e "$dir/cni" ]; then
  rm -f "$dir/cni"
  echo "removed $dir/cni (previous multi-call install)"
fi
printf '%s\n' "${installed[@]}" > "$manifest"
