#!/usr/bin/env bash
# Records the SIP test captures in testdata/captures/ with real tools, inside network
# namespaces joined by veth pairs, addressed only from the documentation ranges:
#
#   swi-atk  (attacker)  203.0.113.10, 2001:db8:a::10  --veth-- atk0 203.0.113.1  \
#                                                                                   swi-pbx: SIPp UAS on
#   swi-prov (provider)  198.51.100.20 --veth-- prov0 198.51.100.1, 2001:db8:b::20 --veth-- prov1 /  192.0.2.10:5060 (UDP+TCP)
#                        (MTU 400 on this link, so UDP INVITEs fragment)            and [2001:db8::10]:5060
#
# Attacker: sipvicious svmap (OPTIONS, INVITE, -c), svwar (REGISTER, INVITE, -c), svcrack
# (normal, -c), svwar over IPv6. Provider: SIPp calls over UDP and TCP, REGISTER with digest
# auth (SIPp UAC with [authentication] against the UAS scenario that challenges with 401).
# Needs root, iproute2, sipp, tcpdump, tshark, sipvicious. Every tool runs under `timeout`;
# the trap removes namespaces and processes even on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-testdata/captures}
SCEN=scripts/captures
TMP=$(mktemp -d /tmp/swi-record.XXXXXX)
PIDS=()
NS=(swi-pbx swi-atk swi-prov)

cleanup() {
    set +e
    for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null; done
    sleep 1
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
    for n in "${NS[@]}"; do ip netns del "$n" 2>/dev/null; done
    rm -rf /tmp/swi-record-last; mv "$TMP" /tmp/swi-record-last  # logs of the last run
}
trap cleanup EXIT INT TERM

[ "$(id -u)" = 0 ] || { echo "record-captures.sh: needs root (network namespaces)" >&2; exit 1; }
for t in sipp tcpdump tshark sipvicious_svmap sipvicious_svwar sipvicious_svcrack; do
    command -v "$t" >/dev/null || { echo "record-captures.sh: missing $t" >&2; exit 1; }
done
mkdir -p "$OUT"

nsx() { local n=$1; shift; ip netns exec "$n" "$@"; }

# --- topology ---------------------------------------------------------------------------
for n in "${NS[@]}"; do ip netns del "$n" 2>/dev/null || true; ip netns add "$n"; nsx "$n" ip link set lo up; done
ip link add atk0 netns swi-pbx type veth peer name eth0 netns swi-atk
ip link add prov0 netns swi-pbx type veth peer name eth0 netns swi-prov
# IPv6 needs an MTU of at least 1280, so the provider's IPv6 gets its own link.
ip link add prov1 netns swi-pbx type veth peer name eth1 netns swi-prov
nsx swi-pbx ip addr add 192.0.2.10/32 dev lo
nsx swi-pbx ip -6 addr add 2001:db8::10/128 dev lo nodad
nsx swi-pbx ip addr add 203.0.113.1/24 dev atk0
nsx swi-pbx ip -6 addr add 2001:db8:a::1/64 dev atk0 nodad
nsx swi-pbx ip addr add 198.51.100.1/24 dev prov0
nsx swi-pbx ip -6 addr add 2001:db8:b::1/64 dev prov1 nodad
nsx swi-pbx ip link set prov1 up
nsx swi-pbx ip link set atk0 up
nsx swi-pbx ip link set prov0 mtu 400 up
nsx swi-atk ip addr add 203.0.113.10/24 dev eth0
nsx swi-atk ip -6 addr add 2001:db8:a::10/64 dev eth0 nodad
nsx swi-atk ip link set eth0 up
nsx swi-atk ip route add default via 203.0.113.1
nsx swi-atk ip -6 route add default via 2001:db8:a::1
nsx swi-prov ip addr add 198.51.100.20/24 dev eth0
nsx swi-prov ip -6 addr add 2001:db8:b::20/64 dev eth1 nodad
nsx swi-prov ip link set eth1 up
nsx swi-prov ip link set eth0 mtu 400 up
nsx swi-prov ip route add default via 198.51.100.1
nsx swi-prov ip -6 route add default via 2001:db8:b::1

# --- the PBX: SIPp UAS on UDP, TCP and IPv6 ----------------------------------------------
uas() { # name args...
    local name=$1; shift
    ip netns exec swi-pbx timeout 600 sipp -sf "$SCEN/pbx-uas.xml" -nostdin -timeout 590s "$@" \
        >"$TMP/$name.log" 2>&1 &
    PIDS+=($!)
}
uas udp -i 192.0.2.10 -p 5060 -t u1 -mp 16000 -cp 8881
uas tcp -i 192.0.2.10 -p 5060 -t t1 -mp 16100 -cp 8882
uas v6 -i 2001:db8::10 -p 5060 -t u1 -mp 16200 -cp 8883
sleep 1

# capture NAME NS IFACE TOOL(tcpdump|tshark|tcpdump-sll2)
CAP_PID=
cap_start() {
    local file=$1 ns=$2 ifc=$3 tool=$4
    case $tool in
        tcpdump) ip netns exec "$ns" timeout 300 tcpdump -i "$ifc" -s 0 -U -w "$file" udp or tcp >"$TMP/cap.log" 2>&1 & ;;
        tcpdump-sll2) ip netns exec "$ns" timeout 300 tcpdump -i "$ifc" -y LINUX_SLL2 -s 0 -U -w "$file" udp or tcp >"$TMP/cap.log" 2>&1 & ;;
        tshark) ip netns exec "$ns" timeout 300 tshark -q -i "$ifc" -F pcapng -w "$file" -f "udp or tcp" >"$TMP/cap.log" 2>&1 & ;;
    esac
    CAP_PID=$!
    PIDS+=("$CAP_PID")
    sleep 2
}
cap_stop() { sleep 1; kill -INT "$CAP_PID" 2>/dev/null || true; wait "$CAP_PID" 2>/dev/null || true; }

atk() { nsx swi-atk timeout 60 "$@" >>"$TMP/atk.log" 2>&1 || true; }
prov() { nsx swi-prov timeout 60 "$@" >>"$TMP/prov.log" 2>&1 || true; }

# --- scanners (IPv4, Ethernet captures on the attacker's link) --------------------------
cap_start "$OUT/svmap.pcap" swi-pbx atk0 tcpdump
atk sipvicious_svmap 192.0.2.10
atk sipvicious_svmap -m INVITE 192.0.2.10
atk sipvicious_svmap -c 192.0.2.10
cap_stop

cap_start "$OUT/svwar.pcapng" swi-pbx atk0 tshark
atk sipvicious_svwar -e100-110 192.0.2.10
atk sipvicious_svwar -m INVITE -e998-1003 192.0.2.10
atk sipvicious_svwar -c -e1995-2005 192.0.2.10
cap_stop

cap_start "$OUT/svcrack.pcap" swi-pbx atk0 tcpdump
atk sipvicious_svcrack -u 2000 -r 1000-1015 192.0.2.10
atk sipvicious_svcrack -c -u 2000 -r 5000-5010 192.0.2.10
cap_stop

# --- legitimate traffic (provider link, MTU 400: fragmented UDP, segmented TCP) ----------
cap_start "$OUT/legit.pcap" swi-pbx prov0 tcpdump
prov sipp -sn uac -nostdin -i 198.51.100.20 -p 5070 -t u1 -m 4 -r 2 -d 500 -mp 17000 -cp 8884 -s 1000 192.0.2.10:5060
prov sipp -sf "$SCEN/provider-register.xml" -nostdin -i 198.51.100.20 -p 5071 -t u1 -m 3 -r 2 -cp 8885 192.0.2.10:5060
prov sipp -sn uac -nostdin -i 198.51.100.20 -p 5072 -t t1 -m 3 -r 2 -d 500 -mp 17100 -cp 8886 -s 1001 192.0.2.10:5060
cap_stop

# --- IPv6, Linux cooked v2 (tcpdump -i any -y LINUX_SLL2) --------------------------------
cap_start "$OUT/ipv6-sll2.pcap" swi-pbx any tcpdump-sll2
atk sipvicious_svwar -6 -e300-305 2001:db8::10
prov sipp -sn uac -nostdin -i 2001:db8:b::20 -p 5073 -t u1 -m 2 -r 2 -d 500 -mp 17200 -cp 8887 -s 1002 '[2001:db8::10]:5060'
cap_stop

# --- scanner and provider at once, Linux cooked v1, pcapng (tshark -i any) ---------------
cap_start "$OUT/mixed-any.pcapng" swi-pbx any tshark
ip netns exec swi-prov timeout 60 sipp -sn uac -nostdin -i 198.51.100.20 -p 5074 -t u1 -m 3 -r 1 -d 500 -mp 17300 -cp 8888 -s 1003 192.0.2.10:5060 >>"$TMP/prov.log" 2>&1 &
BG=$!
atk sipvicious_svmap -c 192.0.2.10
atk sipvicious_svwar -e400-405 192.0.2.10
wait "$BG" || true
cap_stop

# --- broken captures for the error paths -------------------------------------------------
# truncated: cut in the middle of a packet record
size=$(stat -c %s "$OUT/svwar.pcapng")
head -c $((size * 2 / 3 + 7)) "$OUT/svwar.pcapng" >"$OUT/truncated.pcapng"
# corrupt: svcrack.pcap whose 10th record header claims an absurd length
python3 - "$OUT/svcrack.pcap" "$OUT/corrupt.pcap" <<'PY'
import struct, sys
data = bytearray(open(sys.argv[1], 'rb').read())
off, n = 24, 0
while off + 16 <= len(data):
    incl = struct.unpack_from('<I', data, off + 8)[0]
    n += 1
    if n == 10:
        struct.pack_into('<II', data, off + 8, 0x7fffff00, 0x7fffff00)
        break
    off += 16 + incl
open(sys.argv[2], 'wb').write(bytes(data))
PY

ls -l "$OUT"
du -ch "$OUT"/* | tail -1
