#!/usr/bin/env bash
# Builds the Debian package target/debian/sipwall_VERSION-1_ARCH.deb from this workspace and
# prints its path on the last line of stdout. Needs a Rust toolchain and the build deps of
# scripts/install-deps.sh; installs cargo-deb with cargo the first time (about 5 minutes on
# 2 busy cores).
#
#   scripts/build-deb.sh
#   SIPWALL_DEB_PROFILE=dev scripts/build-deb.sh   # unoptimised binary: what the package test
#                                                  # uses, reusing the test build (packaging
#                                                  # is what it checks, not speed)
#
# Steps: release build of the binary; man pages and completions generated from its CLI
# (`sipwall generate`, hidden) into target/release/generated (man pages gzipped);
# `cargo deb --no-build` packs them with the config, unit, copyright, changelog and maintainer scripts listed in
# crates/sipwall/Cargo.toml [package.metadata.deb].
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo deb --version >/dev/null 2>&1; then
    echo "build-deb: installing cargo-deb (once)" >&2
    # Pinned: a newer cargo-deb may refuse the dev profile the package test uses.
    cargo install cargo-deb --version 3.8.0 --locked
fi

profile=${SIPWALL_DEB_PROFILE:-release}
case "$profile" in
    release) dir=release ;;
    dev) dir=debug ;;
    *) echo "build-deb: SIPWALL_DEB_PROFILE must be release or dev, not '$profile'" >&2; exit 2 ;;
esac
cargo build --profile "$profile" --locked -p sipwall >&2
bin=target/$dir/sipwall
rm -rf "target/$dir/generated"
"$bin" generate man "target/$dir/generated/man" >/dev/null
# Debian policy: man pages compressed with gzip -9, reproducibly (-n: no name or timestamp).
gzip -9n "target/$dir/generated/man/"*.8
"$bin" generate completions "target/$dir/generated/completions" >/dev/null

mkdir -p target/debian
cargo deb -p sipwall --profile "$profile" --no-build --locked --strip --output target/debian/ >&2
version=$("$bin" --version | awk '{print $2}')
deb=$(ls -t target/debian/sipwall_"${version}"-*_*.deb | head -n1)
echo "build-deb: built $deb" >&2
echo "$deb"
