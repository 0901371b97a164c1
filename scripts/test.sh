#!/usr/bin/env bash
# Runs every test: formatting and lints, unit tests, kernel tests (each in namespaces it
# creates) and the end-to-end tests that run the release binaries as a runtime does,
# beside the Go reference plugins; then the tests that need kernel features this machine
# may lack (vlan, dummy, ipvlan, vrf, bridge VLAN filtering) in a Debian-kernel VM
# (scripts/vm-test.sh). Needs root. With CI=true a test that would be skipped for lack
# of root fails instead.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
source scripts/target.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --release --bins
if [ "${CI:-}" = true ]; then export RCNI_REQUIRE_ROOT=1; fi
cargo test --workspace
scripts/vm-test.sh 'vm_' -- --include-ignored
