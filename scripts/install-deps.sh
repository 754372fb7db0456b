#!/usr/bin/env bash
# Installs what sipwall needs to BUILD and RUN on Debian 12, as root, and nothing else: the
# daemon's runtime (nftables, iptables) and the build tools (a C compiler for the bundled
# SQLite, pkg-config, dpkg-dev for the package's shared-library dependencies). The test toolkit
# (SIPp, tshark, SIPVicious, lintian, ...) is scripts/install-test-deps.sh, never installed on a
# host by the quick start. Idempotent: skips what is already there. Fails loudly: every missing
# piece is named.
set -euo pipefail

# command -> Debian package
declare -A APT=(
    [nft]=nftables
    [iptables]=iptables
    [cc]=gcc
    [pkg-config]=pkg-config
    [dpkg-shlibdeps]=dpkg-dev
)

missing=()
for cmd in "${!APT[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("${APT[$cmd]}")
done

if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-deps: must run as root to install: ${missing[*]}" >&2
        exit 1
    fi
    echo "install-deps: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "install-deps: no Rust toolchain (cargo): install one with rustup (https://rustup.rs)," \
        "then run this again" >&2
    exit 1
fi

for cmd in "${!APT[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || { echo "install-deps: $cmd still missing" >&2; exit 1; }
done
echo "install-deps: ok"
