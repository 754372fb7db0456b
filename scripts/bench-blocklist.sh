#!/usr/bin/env bash
# Block-list start-up and reload time against list size, old (one nft -f, full listing) against new
# (incremental netlink batches, terse verify), in the same run. Needs root: the benchmark enters a fresh network
# namespace of its own (nothing of the host's firewall is touched, no packet is sent).
# Usage: sudo scripts/bench-blocklist.sh [SIZES]   (default 10000,100000,1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench-blocklist.sh needs root (network namespace, nf_tables)" >&2; exit 1; }
cargo build -q --release -p sipwall-netfilter --example blockbench
TGT="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
flock /tmp/sipwall-netns.lock "$TGT/release/examples/blockbench" "${1:-10000,100000,1000000}"
