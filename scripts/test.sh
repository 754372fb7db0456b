#!/usr/bin/env bash
# The whole test suite, from a clean clone, as root: installs what the tests need, then
# formatting, lints, unit/property/scenario/fuzz-corpus tests, and the end-to-end tests that
# start real nftables/iptables rules, network namespaces, SIPp, tshark and SIPVicious.
# .ci/run calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/test.sh: run as root: the end-to-end tests create network namespaces and firewall rules" >&2
    exit 1
fi

scripts/install-test-deps.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo test"
# Every test, including those marked #[ignore] because they need root, network namespaces
# or external tools (a plain `cargo test` skips them for developers without root).
cargo test --workspace --locked --no-fail-fast -- --include-ignored
