#!/usr/bin/env bash
# Ban insertion rate against kernel set size, old (interval-only) layout against the new one
# (hash sets for addresses), in the same run. Needs root: the benchmark enters a fresh network
# namespace of its own (nothing of the host's firewall is touched, no packet is sent).
# Usage: sudo scripts/bench-bans.sh [SIZES]   (default 1000,10000,100000)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench-bans.sh needs root (network namespace, nf_tables)" >&2; exit 1; }
cargo build -q --release -p sipwall-netfilter --example banbench
TGT="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
flock /tmp/sipwall-netns.lock "$TGT/release/examples/banbench" "${1:-1000,10000,100000}"
