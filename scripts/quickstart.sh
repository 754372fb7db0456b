#!/usr/bin/env bash
# sipwall on a fresh Debian 12 machine, as root, installed like any network daemon: installs
# only what sipwall needs to build and run (scripts/install-deps.sh: nftables, iptables, a C
# compiler; no test tools), builds the Debian package (scripts/build-deb.sh), installs it with
# apt, then either runs the inline firewall in the foreground with the installed config
# /etc/sipwall/sipwall.toml until Ctrl-C / SIGTERM (which removes every rule it installed), or,
# with --service, tells how to enable the systemd service instead.
#
#   ./scripts/quickstart.sh             install, then run in the foreground
#   ./scripts/quickstart.sh --service   install only; print how to enable the service
#
# Time: the first run installs cargo-deb (about 5 min) and builds the release binary (8-17
# min on 2 cores; see docs/BENCHMARKS.md "Build time"); later runs reuse both.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "quickstart: run as root: it installs a package, and sipwall installs nftables rules" >&2
    exit 1
fi
mode=foreground
case "${1:-}" in
    "") ;;
    --service) mode=service ;;
    *) echo "usage: $0 [--service]" >&2; exit 2 ;;
esac
config=/etc/sipwall/sipwall.toml

scripts/install-deps.sh
start=$(date +%s)
deb=$(scripts/build-deb.sh | tail -n1)
echo "quickstart: built $deb in $(( $(date +%s) - start )) s"
# apt resolves the package's dependencies (nftables, iptables); the path must look like one.
DEBIAN_FRONTEND=noninteractive apt-get install -y -q "./$deb"

sipwall check-config "$config"
if [ "$mode" = service ]; then
    echo "quickstart: installed. Edit $config (trusted networks, ports), then:"
    echo "    sipwall check-config $config && systemctl enable --now sipwall"
    echo "    journalctl -u sipwall -f"
    exit 0
fi
echo "quickstart: starting sipwall with $config (Ctrl-C stops it and removes its rules)"
echo "quickstart: to run it as a service instead: systemctl enable --now sipwall"
exec sipwall run --config "$config"
