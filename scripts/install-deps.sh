#!/usr/bin/env bash
# Installs everything sipwall's build, tests and daemon need on Debian 12, as root.
# Idempotent: skips what is already there. Used by scripts/test.sh (and so by CI) and
# scripts/quickstart.sh. Fails loudly: every missing piece is named.
set -euo pipefail

need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-deps: must run as root (apt-get, nftables, network namespaces)" >&2
        exit 1
    fi
}

# command -> Debian package
declare -A APT=(
    [sipp]=sip-tester
    [tshark]=tshark
    [mergecap]=wireshark-common
    [editcap]=wireshark-common
    [nft]=nftables
    [iptables]=iptables
    [ip]=iproute2
    [tcpdump]=tcpdump
    [pkg-config]=pkg-config
    [/usr/bin/time]=time
)

missing=()
for cmd in "${!APT[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("${APT[$cmd]}")
done

if [ "${#missing[@]}" -gt 0 ]; then
    need_root
    echo "install-deps: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # tshark asks whether non-root users may capture; answer no without a prompt.
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# SIPVicious (the scanner our tests defend against), for the python3 first on PATH.
if ! python3 -c 'import sipvicious' >/dev/null 2>&1; then
    echo "install-deps: installing sipvicious with pip"
    python3 -m pip install --quiet --disable-pip-version-check sipvicious \
        || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages sipvicious
fi
python3 -m sipvicious.svmap --help >/dev/null 2>&1 || {
    echo "install-deps: 'python3 -m sipvicious.svmap' does not run" >&2
    exit 1
}

# Rust components used by the test command.
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    rustup component add rustfmt clippy
fi

for cmd in "${!APT[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || { echo "install-deps: $cmd still missing" >&2; exit 1; }
done
echo "install-deps: ok"
