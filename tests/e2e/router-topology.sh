#!/usr/bin/env bash
# Test topology for sipwall's router-mode end-to-end test (crates/sipwall/tests/e2e_router.rs):
# four network namespaces joined by veth pairs, addressed from the documentation ranges only, so
# nothing can leave the machine.
#
#   swr-attacker 203.0.113.10/24 --veth-- 203.0.113.1  [ swr-router ]  198.51.100.1 --veth-- 198.51.100.20/24 swr-provider
#                                                         192.0.2.1 (ip_forward=1, sipwall mode="router")
#                                                            |
#                                                          veth
#                                                            |
#                                               192.0.2.10/24 swr-phone (default via 192.0.2.1)
#
# Every packet between the phone and the others crosses the router's FORWARD hook.
#
# Usage: router-topology.sh up | down | status.  Prefix (namespace and link names) from
# $SWR_PREFIX (default "swr-"). `up` first removes any leftover of an earlier run; `down` is
# idempotent and ends the processes still running inside the namespaces.
set -euo pipefail
P="${SWR_PREFIX:-swr-}"
RTR="${P}router"; PROV="${P}provider"; ATK="${P}attacker"; PHONE="${P}phone"
ALL=("$RTR" "$PROV" "$ATK" "$PHONE")

up() {
    fresh_namespaces
    ip link add "${P}at0" netns "$RTR" type veth peer name "${P}at1" netns "$ATK"
    ip link add "${P}pv0" netns "$RTR" type veth peer name "${P}pv1" netns "$PROV"
    ip link add "${P}ph0" netns "$RTR" type veth peer name "${P}ph1" netns "$PHONE"
    ip -n "$RTR" addr add 203.0.113.1/24 dev "${P}at0"
    ip -n "$RTR" addr add 198.51.100.1/24 dev "${P}pv0"
    ip -n "$RTR" addr add 192.0.2.1/24 dev "${P}ph0"
    for l in at0 pv0 ph0; do ip -n "$RTR" link set "${P}$l" up; done
    ip netns exec "$RTR" sysctl -qw net.ipv4.ip_forward=1
    ip -n "$ATK" addr add 203.0.113.10/24 dev "${P}at1"
    ip -n "$ATK" link set "${P}at1" up
    ip -n "$ATK" route add default via 203.0.113.1
    ip -n "$PROV" addr add 198.51.100.20/24 dev "${P}pv1"
    ip -n "$PROV" link set "${P}pv1" up
    ip -n "$PROV" route add default via 198.51.100.1
    ip -n "$PHONE" addr add 192.0.2.10/24 dev "${P}ph1"
    ip -n "$PHONE" link set "${P}ph1" up
    ip -n "$PHONE" route add default via 192.0.2.1
    # wait (bounded) until every veth pair is up at both ends
    for _ in $(seq 1 50); do
        if ip -n "$ATK" -br link show dev "${P}at1" | grep -q ' UP ' &&
            ip -n "$PROV" -br link show dev "${P}pv1" | grep -q ' UP ' &&
            ip -n "$PHONE" -br link show dev "${P}ph1" | grep -q ' UP ' &&
            ip -n "$RTR" -br link show dev "${P}at0" | grep -q ' UP ' &&
            ip -n "$RTR" -br link show dev "${P}pv0" | grep -q ' UP ' &&
            ip -n "$RTR" -br link show dev "${P}ph0" | grep -q ' UP '; then
            return 0
        fi
        sleep 0.1
    done
    echo "router-topology.sh: links did not come up" >&2
    return 1
}

. "$(dirname "$0")/topology-main.sh" "$@"
