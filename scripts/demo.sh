#!/usr/bin/env bash
# Builds everything in release mode and runs the demo: two pods (network namespaces) get
# addresses through a real conflist (bridge + host-local + ipMasq), the results are
# printed, the pods ping each other and the node, and DEL leaves nothing behind. The node
# is itself a throwaway namespace, so the machine's own network is never changed.
# Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
source scripts/target.sh
cargo build --release --bins --examples
exec "$RELEASE_DIR/examples/demo"
