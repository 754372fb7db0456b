#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine, as root: install what sipwall needs, build it,
# check the config, and run the inline firewall in front of this host's SIP port(s) until
# Ctrl-C / SIGTERM (which removes every rule it installed).
#
#   ./scripts/quickstart.sh [CONFIG]        default CONFIG: config/sipwall.example.toml
#
# Environment: SIPWALL_STATE=/var/lib/sipwall (where bans are remembered).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "quickstart: run as root: sipwall installs nftables/iptables rules" >&2
    exit 1
fi
config=${1:-config/sipwall.example.toml}
state=${SIPWALL_STATE:-/var/lib/sipwall}

scripts/install-deps.sh
cargo build --release --locked -p sipwall
bin=target/release/sipwall

"$bin" check-config "$config"
echo "quickstart: starting sipwall (Ctrl-C stops it and removes its rules)"
exec "$bin" run --config "$config" --state "$state"
