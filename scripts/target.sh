# Sourced by the scripts that build: picks the target every binary is built for and
# exports CARGO_BUILD_TARGET and RELEASE_DIR. Static musl binaries start twice as fast
# and are half the size of static glibc ones; when rustup cannot add the musl target
# (offline, no rustup), the build falls back to static glibc with a warning.
# shellcheck shell=bash
rcni_pick_target() {
  local musl=x86_64-unknown-linux-musl
  if [ -n "${CARGO_BUILD_TARGET:-}" ]; then
    return
  fi
  if rustup target list --installed 2>/dev/null | grep -qx "$musl" \
    || rustup target add "$musl" >&2; then
    CARGO_BUILD_TARGET=$musl
  else
    echo "warning: rustup could not add $musl; building static glibc binaries instead" >&2
    CARGO_BUILD_TARGET=x86_64-unknown-linux-gnu
  fi
}
rcni_pick_target
export CARGO_BUILD_TARGET
RELEASE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/target/$CARGO_BUILD_TARGET/release"
export RELEASE_DIR
