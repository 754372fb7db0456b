#!/usr/bin/env bash
# Test topology for sipwall's end-to-end test: three network namespaces joined by veth pairs,
# addressed from the documentation ranges only, so nothing can leave the machine.
#
#   swd-provider 198.51.100.2/24 --veth-- 198.51.100.1 [ swd-pbx ] 203.0.113.1 --veth-- 203.0.113.2-9/24 swd-attacker
#                                                       192.0.2.10/32 on lo (the PBX's own address)
#
# The pbx namespace is the gateway of both others (host mode: sipwall guards INPUT/OUTPUT).
#
# With SWD_IPV6=1, `up` also gives every link IPv6 addresses from 2001:db8::/32 (dual stack; the
# IPv4 addressing above is the same either way), for crates/sipwall/tests/e2e_inline_v6.rs:
#
#   provider 2001:db8:100::2/64 --veth-- 2001:db8:100::1 [ pbx ] 2001:db8:113::1 --veth-- 2001:db8:113::2-9/64 attacker
#                                                        2001:db8:10::10/128 on lo
#
# The IPv6 addresses are added with `nodad`, so they are usable at once (no duplicate address
# detection delay), and the pbx namespace is the IPv6 default gateway of both others.
#
# Usage: topology.sh up | down | status.  Prefix (namespace and link names) from $SWD_PREFIX
# (default "swd-"). `up` first removes any leftover of an earlier run; `down` is idempotent.
set -euo pipefail
P="${SWD_PREFIX:-swd-}"
V6="${SWD_IPV6:-0}"
PBX="${P}pbx"; PROV="${P}provider"; ATK="${P}attacker"
ALL=("$PBX" "$PROV" "$ATK")

up() {
    fresh_namespaces
    ip link add "${P}pv0" netns "$PBX" type veth peer name "${P}pv1" netns "$PROV"
    ip link add "${P}at0" netns "$PBX" type veth peer name "${P}at1" netns "$ATK"
    ip -n "$PBX" addr add 198.51.100.1/24 dev "${P}pv0"
    ip -n "$PBX" addr add 203.0.113.1/24 dev "${P}at0"
    ip -n "$PBX" addr add 192.0.2.10/32 dev lo
    ip -n "$PBX" link set "${P}pv0" up
    ip -n "$PBX" link set "${P}at0" up
    ip -n "$PROV" addr add 198.51.100.2/24 dev "${P}pv1"
    ip -n "$PROV" link set "${P}pv1" up
    ip -n "$PROV" route add default via 198.51.100.1
    for i in 2 3 4 5 6 7 8 9; do ip -n "$ATK" addr add "203.0.113.$i/24" dev "${P}at1"; done
    ip -n "$ATK" link set "${P}at1" up
    ip -n "$ATK" route add default via 203.0.113.1
    if [ "$V6" = 1 ]; then up6; fi
    # wait (bounded) until both veth pairs are up at both ends
    for _ in $(seq 1 50); do
        if ip -n "$PROV" -br link show dev "${P}pv1" | grep -q ' UP ' &&
            ip -n "$ATK" -br link show dev "${P}at1" | grep -q ' UP ' &&
            ip -n "$PBX" -br link show dev "${P}pv0" | grep -q ' UP ' &&
            ip -n "$PBX" -br link show dev "${P}at0" | grep -q ' UP '; then
            return 0
        fi
        sleep 0.1
    done
    echo "topology.sh: links did not come up" >&2
    return 1
}

# The opt-in IPv6 addresses (SWD_IPV6=1), on the links `up` has just made.
up6() {
    ip -n "$PBX" -6 addr add 2001:db8:100::1/64 dev "${P}pv0" nodad
    ip -n "$PBX" -6 addr add 2001:db8:113::1/64 dev "${P}at0" nodad
    ip -n "$PBX" -6 addr add 2001:db8:10::10/128 dev lo nodad
    ip -n "$PROV" -6 addr add 2001:db8:100::2/64 dev "${P}pv1" nodad
    ip -n "$PROV" -6 route add default via 2001:db8:100::1
    for i in 2 3 4 5 6 7 8 9; do ip -n "$ATK" -6 addr add "2001:db8:113::$i/64" dev "${P}at1" nodad; done
    ip -n "$ATK" -6 route add default via 2001:db8:113::1
}

. "$(dirname "$0")/topology-main.sh" "$@"
