#!/usr/bin/env bash
# Round-trip time of an operator command (`sipwall bans` over the control socket), against a
# daemon built from each binary given, in a network namespace of its own (swcb-*, loopback
# only; removed at the end). Prints the median, min and max over RUNS sequential commands per
# binary; give two binaries (before, after) in alternation to compare them in one run:
#   scripts/bench-control.sh OLD NEW OLD NEW
# Root. The client is the first binary's own `sipwall` unless CLIENT is set.
set -euo pipefail
[ "$(id -u)" -eq 0 ] || { echo "bench-control.sh: run as root (network namespace)" >&2; exit 1; }
[ $# -ge 1 ] || { echo "usage: $0 SIPWALL_BINARY..." >&2; exit 2; }
RUNS="${RUNS:-30}"
CLIENT="${CLIENT:-$1}"
ns="" d="" pid=""
cleanup() {
    [ -n "$pid" ] && { kill -TERM "$pid" 2> /dev/null || true; wait "$pid" 2> /dev/null || true; }
    [ -n "$ns" ] && ip netns del "$ns" 2> /dev/null || true
    [ -n "$d" ] && rm -rf "$d"
    pid="" ns="" d=""
}
trap cleanup EXIT
for bin in "$@"; do
    ns=swcb-$$
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    d=$(mktemp -d)
    printf '[enforce]\nqueues = 1\n' > "$d/c.toml"
    ip netns exec "$ns" "$bin" run --config "$d/c.toml" --state "$d/state" --socket "$d/ctl.sock" 2> "$d/log" &
    pid=$!
    for _ in $(seq 1 100); do grep -q "sipwall running" "$d/log" && break; sleep 0.1; done
    grep -q "sipwall running" "$d/log" || { cat "$d/log" >&2; exit 1; }
    ts=()
    for _ in $(seq 1 "$RUNS"); do
        t0=$(date +%s%N)
        timeout 10 "$CLIENT" bans --socket "$d/ctl.sock" > /dev/null
        t1=$(date +%s%N)
        ts+=($(( (t1 - t0) / 1000 )))
    done
    cleanup
    printf '%s\n' "${ts[@]}" | sort -n | awk -v b="$bin" '{a[NR] = $1}
        END {printf "%s: median %d µs, min %d, max %d (n = %d)\n", b, a[int((NR + 1) / 2)], a[1], a[NR], NR}'
done
