#!/usr/bin/env bash
# Benchmarks rcni against the Go reference plugins (/usr/lib/cni) with the shared tool
# (../shared/bench/run.sh): builds release binaries, copies the plugins into a temporary
# directory under their reference names, runs the benchmark there and keeps the report in
# bench-results/<date>-<label>.txt. Needs root.
#   usage: scripts/bench.sh [--multicall] [run.sh options, e.g. --quick, --only lat,cost]
#   --multicall   install the multi-call `cni` binary plus one symlink per plugin instead
#   RCNI_BENCH    path of the shared run.sh (default: ../shared/bench/run.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bench=${RCNI_BENCH:-$root/../shared/bench/run.sh}
[ -x "$bench" ] || { echo "bench: $bench not found (set RCNI_BENCH)" >&2; exit 2; }
layout=separate
if [ "${1:-}" = --multicall ]; then layout=multicall; shift; fi

scripts/deps.sh
source scripts/target.sh
cargo build --release --bins
release=$RELEASE_DIR
plugins=$("$release/cni" --list)

dir=$(mktemp -d /tmp/rcni-bench.XXXXXX)
trap 'rm -rf "$dir"' EXIT
for p in $plugins; do
  if [ "$layout" = multicall ]; then
    cp "$release/cni" "$dir/cni" 2>/dev/null || true
    ln -sf cni "$dir/$p"
  else
    cp "$release/$p" "$dir/$p"
  fi
done

mkdir -p bench-results
report="bench-results/$(date -u +%Y%m%d-%H%M%S)-$layout.txt"
{
  echo "# rcni $(git describe --always --dirty) ($layout) vs /usr/lib/cni, $(date -u +%FT%TZ)"
  echo "# machine: $(nproc) CPU, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"
  echo "# command: run.sh $dir /usr/lib/cni $*"
} > "$report"
status=0
"$bench" "$dir" /usr/lib/cni "$@" 2>&1 | tee -a "$report" || status=$?
echo "bench: report kept in $report" >&2
exit "$status"
