#!/usr/bin/env bash
# Installs everything sipwall's TESTS need on Debian 12, as root: first the build and runtime
# needs (scripts/install-deps.sh), then the test toolkit: SIPp, tshark/mergecap/editcap,
# tcpdump, iproute2, ipset, SIPVicious, chromium and chromium-driver (the dashboard's browser test),
# rustfmt and clippy, and for the package test lintian and
# mmdebstrap (man and systemd-analyze run inside the Debian 12 root it makes). Used by
# scripts/test.sh (and so by CI); never by the quick start. Idempotent; fails loudly, naming
# what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "install-test-deps: must run as root (apt-get, nftables, network namespaces)" >&2
    exit 1
fi

scripts/install-deps.sh

# command -> Debian package
declare -A APT=(
    [sipp]=sip-tester
    [tshark]=tshark
    [mergecap]=wireshark-common
    [editcap]=wireshark-common
    [ip]=iproute2
    [tcpdump]=tcpdump
    [/usr/bin/time]=time
    [lintian]=lintian
    [mmdebstrap]=mmdebstrap
    [unshare]=util-linux
    # python3 also runs the PBX-like peers and walkers of e2e_shield and e2e_learn
    # (tests/e2e/*.py, standard library only)
    [python3]=python3
    [curl]=curl
    # the fleet tests (crates/fleet/tests/redis.rs, crates/sipwall/tests/fleet.rs) and
    # scripts/bench-fleet.sh run a real Redis
    [redis-server]=redis-server
    [redis-cli]=redis-tools
    # crates/fleet/tests/redis.rs makes a throwaway CA and server certificate for rediss://
    [openssl]=openssl
    # feeds: `ipset restore` must accept the exported ipset feed
    [ipset]=ipset
    # crates/sipwall/tests/dashboard_browser.rs: the dashboard in a real headless browser
    [chromium]=chromium
    [chromedriver]=chromium-driver
)

missing=()
for cmd in "${!APT[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("${APT[$cmd]}")
done

if [ "${#missing[@]}" -gt 0 ]; then
    echo "install-test-deps: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # tshark asks whether non-root users may capture; answer no without a prompt.
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# SIPVicious (the scanner our tests defend against), for the python3 first on PATH.
if ! python3 -c 'import sipvicious' >/dev/null 2>&1; then
    echo "install-test-deps: installing sipvicious with pip"
    python3 -m pip install --quiet --disable-pip-version-check sipvicious \
        || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages sipvicious
fi
python3 -m sipvicious.svmap --help >/dev/null 2>&1 || {
    echo "install-test-deps: 'python3 -m sipvicious.svmap' does not run" >&2
    exit 1
}

# Rust components used by the test command.
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    rustup component add rustfmt clippy
fi

for cmd in "${!APT[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || { echo "install-test-deps: $cmd still missing" >&2; exit 1; }
done
echo "install-test-deps: ok"
