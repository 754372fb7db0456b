#!/usr/bin/env bash
# The package acceptance test, as root (run by crates/sipwall/tests/package.rs, so by
# `cargo test -- --include-ignored` and scripts/test.sh):
#   1. builds the .deb (scripts/build-deb.sh) once, or takes SIPWALL_DEB=path;
#   2. lintian on it: no error (warnings are printed);
#   3. a fresh Debian 12 root (mmdebstrap, minbase + man-db + systemd) from the mirrors in THIS
#      host's apt sources (never a mirror written here), into which apt installs the .deb with
#      its dependencies; in it: files, modes, conffile, `systemd-analyze verify` of the unit
#      (Debian 12's systemd, against the installed files), `sipwall --version`, `man sipwall`,
#      `check-config` of the shipped config; then `dpkg --remove` keeps the conffile and the
#      state, and `dpkg --purge` removes everything the package and the daemon added, except a
#      file the administrator put into /etc/sipwall.
# Only `apt-get update/install` runs in the root with this host's network (it downloads the
# dependencies; postinst touches no firewall and finds no running systemd there). Every other
# command in the root runs in a new network namespace (`unshare --net`): the prerm's
# `sipwall run --cleanup` must never touch this host's firewall. The root is deleted on every
# exit. Each step has a timeout. Exit status 0 only if every check passed; otherwise the failed
# check is named on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
    echo "test-package: FAIL: $*" >&2
    exit 1
}
step() { echo "== test-package: $*"; }

[ "$(id -u)" -eq 0 ] || fail "must run as root (mmdebstrap root mode, chroot, network namespace)"
for tool in mmdebstrap lintian unshare chroot dpkg-deb python3 timeout; do
    command -v "$tool" >/dev/null 2>&1 \
        || fail "$tool is missing: run scripts/install-test-deps.sh"
done

work=$(mktemp -d /tmp/sipwall-package-test.XXXXXX)
root=$work/root
cleanup() {
    # Nothing is mounted by this script; refuse to delete through a mount point anyway.
    if grep -q " $work" /proc/self/mounts; then
        echo "test-package: something is mounted under $work; not deleting it" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

# 1. The package.
if [ -n "${SIPWALL_DEB:-}" ]; then
    deb=$SIPWALL_DEB
else
    step "building the package"
    deb=$(timeout 3600 scripts/build-deb.sh | tail -n1) || fail "scripts/build-deb.sh failed"
fi
[ -f "$deb" ] || fail "no package at '$deb'"
echo "package: $deb"
version=$(dpkg-deb -f "$deb" Version)
upstream=${version%-*}

# 2. lintian: errors fail the test, warnings are shown.
step "lintian"
set +e
timeout 600 lintian --fail-on error --info --display-level '>=warning' "$deb"
lintian_rc=$?
set -e
[ "$lintian_rc" -eq 0 ] || fail "lintian reports errors on $deb (exit $lintian_rc)"

# 3. A fresh Debian 12 root from this host's apt sources.
step "sources from this host's apt configuration"
sources=$work/bookworm.sources
python3 - "$sources" <<'PY' || fail "no Debian 12 (bookworm) source in this host's apt sources"
# Copies the bookworm entries of the host's apt sources (deb822 .sources and one-line .list)
# into one deb822 file for mmdebstrap.
import glob, sys
out = []
def add(uris, suites, comps, signed):
    suites = [s for s in suites if s.startswith("bookworm")]
    if suites and uris:
        stanza = ["Types: deb", "URIs: " + " ".join(uris), "Suites: " + " ".join(suites),
                  "Components: " + " ".join(comps or ["main"])]
        if signed:
            stanza.append("Signed-By: " + signed)
        out.append("\n".join(stanza))
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for block in open(path).read().split("\n\n"):
        fields, key = {}, None
        for line in block.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0] in " \t" and key:
                fields[key] += " " + line.strip()
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        add(fields.get("uris", "").split(), fields.get("suites", "").split(),
            fields.get("components", "").split(), fields.get("signed-by", ""))
for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
    try:
        lines = open(path).read().splitlines()
    except FileNotFoundError:
        continue
    for line in lines:
        words = line.split("#")[0].split()
        if not words or words[0] != "deb":
            continue
        words = words[1:]
        if words and words[0].startswith("["):
            while words and not words[0].endswith("]"):
                words = words[1:]
            words = words[1:]
        if len(words) >= 2:
            add([words[0]], [words[1]], words[2:], "")
if not out:
    sys.exit(1)
open(sys.argv[1], "w").write("\n\n".join(out) + "\n")
PY

step "mmdebstrap Debian 12 minbase (+ man-db, systemd)"
timeout 1200 mmdebstrap --variant=minbase --mode=root --include=man-db,systemd --quiet \
    bookworm "$root" "$sources" || fail "mmdebstrap of Debian 12 failed"

# Runs a shell command inside the root, in a network namespace of its own.
in_root() {
    timeout 600 unshare --net --fork chroot "$root" /usr/bin/env -i \
        PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive /bin/sh -c "$1"
}
# Asserts inside the root; $2 names the check.
check() {
    in_root "$1" || fail "$2"
    echo "ok: $2"
}

step "installing the package with apt in the root"
cp "$deb" "$root/tmp/sipwall.deb"
timeout 900 chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive /bin/sh -c \
    "apt-get update -q && apt-get install -y -q --no-install-recommends /tmp/sipwall.deb" \
    || fail "apt-get install of the package in a fresh Debian 12 root failed"

step "checking the installed package"
check 'test "$(stat -c "%a %U:%G" /usr/sbin/sipwall)" = "755 root:root"' \
    "/usr/sbin/sipwall is 0755 root:root"
check 'test "$(stat -c "%a %U" /etc/sipwall/sipwall.toml)" = "644 root"' \
    "/etc/sipwall/sipwall.toml is 0644 root"
check 'dpkg-query -W -f="\${Conffiles}\n" sipwall | grep -q "^ /etc/sipwall/sipwall.toml "' \
    "/etc/sipwall/sipwall.toml is a conffile"
check 'grep -q "^ExecStartPre=/usr/sbin/sipwall check-config /etc/sipwall/sipwall.toml$" /lib/systemd/system/sipwall.service' \
    "the unit is installed and checks the config before start"
verify=$(in_root 'systemd-analyze verify --man=no /lib/systemd/system/sipwall.service 2>&1') \
    || fail "systemd-analyze verify sipwall.service: $verify"
# verify exits 0 on some warnings (an unknown key is "ignoring"): any line about the unit fails.
if printf '%s\n' "$verify" | grep -i 'sipwall' >/dev/null; then
    fail "systemd-analyze verify sipwall.service reports: $verify"
fi
echo "ok: systemd-analyze verify sipwall.service is clean"
check 'test -s /usr/share/man/man8/sipwall.8.gz && test -s /usr/share/man/man8/sipwall-run.8.gz' \
    "man pages sipwall(8) and sipwall-run(8) are installed"
check 'test -s /usr/share/bash-completion/completions/sipwall && test -s /usr/share/zsh/vendor-completions/_sipwall && test -s /usr/share/fish/vendor_completions.d/sipwall.fish' \
    "bash, zsh and fish completions are installed"
check 'grep -q "^Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/" /usr/share/doc/sipwall/copyright && test -s /usr/share/doc/sipwall/changelog.Debian.gz' \
    "machine-readable copyright and Debian changelog are installed"
check 'test "$(stat -c "%a %U" /var/lib/sipwall)" = "700 root"' \
    "/var/lib/sipwall is created 0700 root"
check "test \"\$(sipwall --version)\" = \"sipwall $upstream\"" \
    "sipwall --version prints 'sipwall $upstream'"
check 'man -P cat sipwall 2>/dev/null | grep -q "sipwall-check-config"' \
    "man sipwall renders and lists the subcommands"
check 'man -P cat sipwall-run 2>/dev/null | grep -q "cleanup"' \
    "man sipwall-run renders and documents --cleanup"
check 'sipwall check-config /etc/sipwall/sipwall.toml' \
    "the shipped config passes check-config"
check 'test ! -e /etc/systemd/system/multi-user.target.wants/sipwall.service' \
    "a first install does not enable the service"

step "remove keeps the conffile and the state; purge removes them"
# What a run of the daemon leaves, and a file of the administrator's own.
in_root 'echo state > /var/lib/sipwall/sipwall.db && mkdir -p /run/sipwall && echo x > /run/sipwall/control.sock && echo 203.0.113.9 > /etc/sipwall/voipbl.txt' \
    || fail "could not prepare the remove/purge check"
in_root "dpkg --remove sipwall" || fail "dpkg --remove sipwall failed"
check 'test ! -e /usr/sbin/sipwall && test ! -e /lib/systemd/system/sipwall.service && test ! -e /usr/share/man/man8/sipwall.8.gz' \
    "remove deletes the binary, unit and man page"
check 'test -f /etc/sipwall/sipwall.toml && test -f /var/lib/sipwall/sipwall.db' \
    "remove keeps the conffile and the state"
in_root "dpkg --purge sipwall" || fail "dpkg --purge sipwall failed"
check 'test ! -e /etc/sipwall/sipwall.toml' "purge deletes the conffile"
check 'test ! -e /var/lib/sipwall && test ! -e /run/sipwall' \
    "purge deletes /var/lib/sipwall and /run/sipwall"
check 'test -f /etc/sipwall/voipbl.txt' "purge keeps the administrator's own file in /etc/sipwall"
check '! dpkg-query -W -f="\${db:Status-Abbrev}" sipwall 2>/dev/null | grep -q "^[iurc]"' \
    "dpkg no longer knows the package"

echo "test-package: ok ($deb)"
