#!/usr/bin/env bash
# Sustained inline cost of sipwall against Kamailio's anti-flood, side by side (root; network
# namespaces from tests/e2e/topology.sh with prefix swdb-, documentation addresses only).
#
# Arms, interleaved (every repetition runs each arm once, in a rotated order), same sender, same
# 50/50 INVITE/OPTIONS mix, same topology:
#   base      no filter: a reading UDP sink on the PBX's 5060 (what plain delivery costs);
#   sipwall   `sipwall run` (host mode, the provider trusted) guarding 5060 in front of that sink;
#             its requests take the trusted fast path (`[enforce] trusted_fast_path`, default);
#   queued    (lever "queued=queued") the same with `trusted_fast_path = false`: every request
#             queued, parsed, signature-scanned for `trusted.oddity` and reinjected;
#   kamailio  Kamailio from Debian, the REQINIT route of its default kamailio.cfg copied verbatim
#             (WITH_ANTIFLOOD: htable ipban, pike; scanner User-Agent regex, maxfwd, sanity),
#             then answering every request with 200;
#   LEVERS    extra sipwall arms, each one queue-client setting changed alone (see below).
# Figures, per arm and offered rate (RATES; 0 = the sender flat out):
#   rx_us     µs of the RECEIVING CPU per message: wall time minus that CPU's idle time
#             (/proc/stat, exact on this tickless kernel, unlike the busy ticks, which are
#             sampled), minus the CPU's background busy share measured just before with the
#             receiver running and no traffic, divided by the messages handled;
#   proc_us   µs of the receiver's own processes per message (sipwall daemon / Kamailio's
#             processes, summed over their threads from /proc/PID/task/*/schedstat: the
#             scheduler's exact run time, not ticks);
#   loss      % of the offered messages not handled (not delivered to the sink, not answered);
#   est_us    for a machine whose RX_CPU is never idle (other tenants' builds: bg_share near 1
#             makes rx_us meaningless): the receivers' run time (the sink's too) plus ksoftirqd's plus RX_CPU's
#             irq and softirq ticks per message. Ticks are sampled, and softirq work that ran
#             inside a receiver's time slice counts twice: an estimate, used only when the
#             idle method cannot be.
# Receive processing is steered to one known CPU (RX_CPU, default 1): RPS on the PBX's veth
# receive queues sends the softirq work (veth receive, IP input, nftables, queueing) there, and
# the receiver's processes (daemon, sink, Kamailio) are pinned there with taskset, so the
# verdict's reinjection and the socket delivery run there too. The sender is pinned to TX_CPU
# (default 0) and the replies' receive in the sender's namespaces is steered there as well.
# So RX_CPU carries the whole receiving side and nothing of the sender. Sender and receivers run
# at nice -10 in every arm alike, so other tenants' builds take less of their CPU.
#
# Banned traffic: the attacker floods BAN_RATE pkt/s from a banned source; rx_us per packet
# (per offered packet for sipwall; per packet delivered to its socket for Kamailio, which may
# not read them all) for sipwall as shipped (dropped by the kernel ban set at PREROUTING), for
# sipwall with the early drop on (`ingress_drop = true`: dropped at the attacker's device's
# ingress hook, arm "ingress"), and for Kamailio (pike banned it first; each packet is then read, parsed and dropped by the
# htable ipban check). Two more banned arms measure the XDP lever (not part of sipwall, see
# xdp_build below): "xdp-generic" (generic XDP, in the receive path after RPS) and "xdp-native"
# (veth's native XDP, its NAPI poll threaded and pinned to RX_CPU), each in front of the ban
# chain with the banned address in its own map; the script checks the flood never reached IP input.
# Requests answered before a ban: a scanner walks extensions (OPTIONS to 1000, 1001, ..., a
# neutral User-Agent, so neither tool knows it by name) at 200, 7 and 2 req/s, SCAN_COUNT
# requests or SCAN_SECS seconds' worth, whichever is more; sipwall guards an answering sink,
# Kamailio answers itself.
#
# The machine may be shared: background busy time on RX_CPU is measured before every run and
# subtracted, runs are repeated REPS times and the summary gives medians with min..max. Compare
# ratios, not absolute µs.
#
# Usage (as root): scripts/bench-sustained.sh
# env: REPS 3, RATES "0 20000 8000", SECS 4 (seconds per paced run), FLAT_COUNT 150000,
#      BAN_RATE 50000, SCAN_COUNT 40, SCAN_SECS 8, SCAN_RATES "200 7 2", RX_CPU 1, TX_CPU 0,
#      LEVERS "name=TUNING ..." (sipwall arms with SIPWALL_QUEUE_TUNING=TUNING, e.g.
#      "batch1=batch=1 single=verdict_batch=0"; "queued=queued" turns the trusted fast path
#      off; "ingress=ingress" turns the early drop on; "pin=cpus" runs the daemon unpinned with
#      `[enforce] cpus = [RX_CPU]`, "free=free" unpinned and without it; "ctfree=ctfree" swaps the ruleset's conntrack anchor for a
#      tproxy one, which keeps defragmentation on without connection tracking), ARMS "base sipwall kamailio", BANNED 1, BANNED_ARMS
#      "sipwall ingress kamailio" (add xdp-generic, xdp-native for the XDP lever), SCAN 1,
#      NO_BUILD 1 (use the built binaries), OUT (raw results file, kept),
#      SUMMARY FILE (only print the summary of an earlier results file).
set -euo pipefail
# The whole script is one brace group, which bash reads to its end before running any of it:
# editing this file while a bench runs (they take minutes) cannot change what the run does.
{
cd "$(dirname "$0")/.."
# Summary of a results file: medians (min..max) over the repetitions, Kamailio / sipwall ratios.
summary() {
    local OUT=$1
    # Summary: medians (min..max) over the repetitions, and Kamailio / sipwall ratios.
    echo
    echo "| arm | offered | rx CPU µs/msg, median (min..max) | estimate under load µs/msg | process µs/msg | loss % | background share |"
    echo "|---|---|---|---|---|---|---|"
    awk -F'\t' '!/^#/ && $1 !~ /^scan/ {k = $1 "\t" $2; n[k]++; rx[k, n[k]] = $6; pr[k, n[k]] = $7; lo[k, n[k]] = $8; bg[k, n[k]] = $9; es[k, n[k]] = $11; if (!(k in seen)) {seen[k] = 1; keys[++nk] = k}}
    function med(a, k, c,   i, j, t, v) { for (i = 1; i <= c; i++) v[i] = a[k, i]; for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++) if (v[j] < v[i]) {t = v[i]; v[i] = v[j]; v[j] = t}
        return sprintf("%s (%s..%s)", (c % 2) ? v[(c + 1) / 2] : sprintf("%.2f", (v[c / 2] + v[c / 2 + 1]) / 2), v[1], v[c]) }
    END { for (i = 1; i <= nk; i++) { k = keys[i]; split(k, p, "\t"); printf "| %s | %s | %s | %s | %s | %s | %s |\n", p[1], (p[2] == 0) ? "flat out" : p[2] "/s", med(rx, k, n[k]), med(es, k, n[k]), med(pr, k, n[k]), med(lo, k, n[k]), med(bg, k, n[k]) } }' "$OUT"
    echo
    echo "Ratios of medians (Kamailio / sipwall; the banned rows per offered packet):"
    awk -F'\t' -v rates="$RATES" -v banrate="$BAN_RATE" '!/^#/ && $1 !~ /^scan/ {k = $1 "\t" $2; n[k]++; rx[k, n[k]] = $6; pr[k, n[k]] = $7; es[k, n[k]] = $11; if (!(k in seen)) {seen[k] = 1; keys[++nk] = k}}
    function med(a, k, c,   i, j, t, v) { for (i = 1; i <= c; i++) v[i] = a[k, i]; for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++) if (v[j] < v[i]) {t = v[i]; v[i] = v[j]; v[j] = t}
        return (c % 2) ? v[(c + 1) / 2] : (v[c / 2] + v[c / 2 + 1]) / 2 }
    END { split(rates, rs, " ");
        split("sipwall queued", arms, " ");
        for (a = 1; a <= 2; a++) for (i in rs) { r = rs[i]; s = arms[a] "\t" r; q = "kamailio\t" r;
            if ((s in n) && (q in n)) printf "  %s, offered %s: whole receiving CPU %.1fx (estimate under load %.1fx), process %.1fx\n", arms[a], (r == 0) ? "flat out" : r "/s", div(med(rx, q, n[q]), med(rx, s, n[s])), div(med(es, q, n[q]), med(es, s, n[s])), div(med(pr, q, n[q]), med(pr, s, n[s])) }
        # every other banned arm (the early drop, the XDP levers) against the PREROUTING drop
        # of the same run, paired by repetition, and against Kamailio
        b = "banned-sipwall\t" banrate; q = "banned-kamailio\t" banrate;
        if ((b in n) && (q in n)) printf "  banned: receiving CPU %.1fx (estimate %.1fx) with the kernel set at PREROUTING (default)\n", div(med(rx, q, n[q]), med(rx, b, n[b])), div(med(es, q, n[q]), med(es, b, n[b]));
        for (i = 1; i <= nk; i++) { d = keys[i]; split(d, p, "\t"); if (p[1] !~ /^banned-/ || d == b || d == q) continue;
            if (q in n) printf "  %s: receiving CPU %.1fx Kamailio (estimate %.1fx)\n", p[1], div(med(rx, q, n[q]), med(rx, d, n[d])), div(med(es, q, n[q]), med(es, d, n[d]));
            if (b in n) { w = 0; for (j = 1; j <= n[b] && j <= n[d]; j++) if (rx[d, j] < rx[b, j]) w++;
                printf "  %s / PREROUTING, banned receiving CPU: %.2f (median of each), lower in %d of %d paired runs\n", p[1], div(med(rx, d, n[d]), med(rx, b, n[b])), w, (n[b] < n[d]) ? n[b] : n[d] } } }
    function div(a, b) { return (b > 0) ? a / b : 0 }' "$OUT"
    if grep -q '^scan-' "$OUT"; then
        echo
        echo "| extension scan, req/s | requests | answered by sipwall's sink before the ban | answered by Kamailio before the ban |"
        echo "|---|---|---|---|"
        awk -F'\t' '/^scan-/ {split($3, f, " "); sub("sent=", "", f[1]); sub("answered=", "", f[2]); n[$2] = f[1]; a[$1, $2] = f[2]; if (!($2 in seen)) {seen[$2] = 1; r[++nr] = $2}}
            END {for (i = 1; i <= nr; i++) printf "| %s | %s | %s | %s |\n", r[i], n[r[i]], a["scan-sipwall", r[i]], a["scan-kamailio", r[i]]}' "$OUT"
    fi
    echo "Raw results: $OUT (kept as /tmp/bench-sustained.last.tsv when OUT is not set)"
}
[ "$(id -u)" -eq 0 ] || { echo "bench-sustained.sh: run as root (namespaces, firewall rules)" >&2; exit 1; }
[ "$(nproc)" -ge 2 ] || { echo "bench-sustained.sh: needs 2 CPUs (one sends, one receives)" >&2; exit 1; }

REPS="${REPS:-3}"
RATES="${RATES:-0 20000 8000}"
SECS="${SECS:-4}"
FLAT_COUNT="${FLAT_COUNT:-150000}"
BAN_RATE="${BAN_RATE:-50000}"
SCAN_COUNT="${SCAN_COUNT:-40}"
SCAN_RATES="${SCAN_RATES:-200 7 2}"
SCAN_SECS="${SCAN_SECS:-8}"
RX_CPU="${RX_CPU:-1}"; TX_CPU="${TX_CPU:-0}"
LEVERS="${LEVERS:-}"
ARMS="${ARMS:-base sipwall kamailio}"
if [ -n "${SUMMARY:-}" ]; then summary "$SUMMARY"; exit 0; fi
export SWD_PREFIX=swdb-
PBX=swdb-pbx; PROV=swdb-provider; ATK=swdb-attacker
TGT="${CARGO_TARGET_DIR:-target}"
if [ "${NO_BUILD:-0}" != 1 ]; then
    cargo build -q --release -p sipwall --bin sipwall
    cargo build -q --release -p sipwall-netfilter --example udpflood
fi
BIN="$(realpath "$TGT/release/sipwall")"; GEN="$(realpath "$TGT/release/examples/udpflood")"
if ! command -v kamailio > /dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q kamailio > /dev/null
fi
KAMCFG_DEFAULT=/etc/kamailio/kamailio.cfg
[ -r "$KAMCFG_DEFAULT" ] || { echo "bench-sustained.sh: $KAMCFG_DEFAULT missing (kamailio package)" >&2; exit 1; }
KAM_MODULES="$(dirname "$(dpkg -L kamailio | grep '/modules/sl\.so$' | head -1)")"

WORK="$(mktemp -d)"
OUT="${OUT:-$WORK/results.tsv}"
: > "$OUT"
RECV_PIDS=""   # the running receiver's processes (killed by pid at the end of each arm)
SINK_PID=""
BPFFS=/tmp/swdb-bpffs-$$; XDP_MODE=""; NAPI_PID=""   # the XDP lever's state (xdp_attach)

cleanup() {
    stop_receiver || true
    xdp_detach || true
    bash tests/e2e/topology.sh down || true
    [ "$OUT" = "$WORK/results.tsv" ] && cp "$OUT" /tmp/bench-sustained.last.tsv 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
bash tests/e2e/topology.sh up

# Receive steering: RPS masks on every veth receive queue.
mask() { printf '%x' $((1 << $1)); }
rps() { ip netns exec "$1" sh -c "echo $(mask "$3") > /sys/class/net/$2/queues/rx-0/rps_cpus"; }
rps $PBX swdb-pv0 "$RX_CPU"; rps $PBX swdb-at0 "$RX_CPU"
rps $PROV swdb-pv1 "$TX_CPU"; rps $ATK swdb-at1 "$TX_CPU"

crlf() { sed 's/$/\r/'; }
crlf > "$WORK/invite.sip" <<'SIP'
INVITE sip:2000@198.51.100.1:5060 SIP/2.0
Via: SIP/2.0/UDP 198.51.100.2:5060;branch=z9hG4bK776asdhds
Max-Forwards: 70
To: <sip:2000@198.51.100.1>
From: "Provider" <sip:+6491234567@198.51.100.2>;tag=1928301774
Call-ID: a84b4c76e66710@198.51.100.2
CSeq: 314159 INVITE
Contact: <sip:+6491234567@198.51.100.2:5060>
User-Agent: ProviderProxy/1.0
Content-Type: application/sdp
Content-Length: 131

v=0
o=- 2890844526 2890844526 IN IP4 198.51.100.2
s=-
c=IN IP4 198.51.100.2
t=0 0
m=audio 49170 RTP/AVP 0
a=rtpmap:0 PCMU/8000
SIP
crlf > "$WORK/options.sip" <<'SIP'
OPTIONS sip:2000@198.51.100.1:5060 SIP/2.0
Via: SIP/2.0/UDP 198.51.100.2:5060;branch=z9hG4bK776asdhdt
Max-Forwards: 70
To: <sip:2000@198.51.100.1>
From: "Provider" <sip:+6491234567@198.51.100.2>;tag=1928301775
Call-ID: a84b4c76e66711@198.51.100.2
CSeq: 314160 OPTIONS
Contact: <sip:+6491234567@198.51.100.2:5060>
User-Agent: ProviderProxy/1.0
Accept: application/sdp
Content-Length: 0

SIP
crlf > "$WORK/scan.sip" <<'SIP'
OPTIONS sip:100@203.0.113.1 SIP/2.0
Via: SIP/2.0/UDP 203.0.113.2:5060;branch=z9hG4bK-1234567890;rport
Max-Forwards: 70
To: "sipvicious"<sip:100@1.1.1.1>
From: "sipvicious"<sip:100@1.1.1.1>;tag=6331323301313233
User-Agent: friendly-scanner
Call-ID: 123456789
CSeq: 1 OPTIONS
Contact: sip:100@203.0.113.2:5060
Accept: application/sdp
Content-Length: 0

SIP
crlf > "$WORK/walk.sip" <<'SIP'
OPTIONS sip:{n}@203.0.113.1 SIP/2.0
Via: SIP/2.0/UDP 203.0.113.2:5060;branch=z9hG4bKw{n}x;rport
Max-Forwards: 70
To: <sip:{n}@203.0.113.1>
From: <sip:{n}@203.0.113.1>;tag=w{n}q7
User-Agent: Linphone/5.2.0
Call-ID: walk-{n}-4471@203.0.113.2
CSeq: 1 OPTIONS
Contact: <sip:{n}@203.0.113.2:5060>
Accept: application/sdp
Content-Length: 0

SIP
MIX="$WORK/invite.sip,$WORK/options.sip"

# Kamailio: the default config's REQINIT route verbatim, the modules and parameters it uses
# (pike and htable as in the default file; PIKE_DENSITY may raise pike's threshold so a single
# provider address at 8-20k req/s is not banned: the route and its checks still run per request).
kam_cfg() { # DENSITY -> config file
    local density=$1 f="$WORK/kamailio-$1.cfg"
    {
        cat <<KAM
#!KAMAILIO
#!define WITH_ANTIFLOOD
debug=0
log_stderror=no
memdbg=5
memlog=5
children=8
disable_tcp=yes
auto_aliases=no
mpath="$KAM_MODULES/"
loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "sanity.so"
loadmodule "htable.so"
loadmodule "pike.so"
modparam("pike", "sampling_time_unit", 2)
modparam("pike", "reqs_density_per_unit", $density)
modparam("pike", "remove_latency", 4)
modparam("htable", "htable", "ipban=>size=8;autoexpire=300;")
request_route {
	route(REQINIT);
	sl_send_reply("200", "OK");
	exit;
}
KAM
        sed -n '/^route\[REQINIT\]/,/^}/p' "$KAMCFG_DEFAULT"
    } > "$f"
    grep -q pike_check_req "$f" || { echo "bench-sustained.sh: no REQINIT anti-flood in $KAMCFG_DEFAULT" >&2; exit 1; }
    echo "$f"
}

kv() { tr ' ' '\n' | sed -n "s/^$1=//p"; }
now() { date +%s.%N; }
# idle seconds of RX_CPU (idle + iowait, USER_HZ ticks)
rx_idle() { awk -v c="cpu$RX_CPU" '$1 == c {printf "%.2f", ($5 + $6) / 100}' /proc/stat; }
# RX_CPU's irq + softirq ticks (sampled at the tick: an estimate, see the summary)
rx_sirq() { awk -v c="cpu$RX_CPU" '$1 == c {print $7 + $8}' /proc/stat; }
KSOFTIRQD=$(pgrep -x "ksoftirqd/$RX_CPU" | head -1)
# scheduler run time (ns) of these processes, all their threads
sched_ns() {
    local s=0 p t a
    for p in "$@"; do
        for t in /proc/"$p"/task/*/schedstat; do
            read -r a _ < "$t" 2> /dev/null || continue
            s=$((s + a))
        done
    done
    echo "$s"
}
# UDP datagrams that reached a namespace's sockets or found none (answers to the sender)
udp_in() { ip netns exec "$1" awk '/^Udp: [0-9]/ {print $2 + $3 + $4; exit}' /proc/net/snmp; }
# UDP datagrams the PBX namespace queued to a socket (InDatagrams)
udp_delivered() { ip netns exec $PBX awk '/^Udp: [0-9]/ {print $2; exit}' /proc/net/snmp; }
# NFQUEUE 0 counters in the PBX namespace: "queued dropped_or_failed_open"
nfq() { ip netns exec $PBX awk '$1 == 0 {print $8, $6 + $7}' /proc/net/netfilter/nfnetlink_queue 2> /dev/null || echo "0 0"; }
# background busy share of RX_CPU over 1.5 s (receiver up, no traffic)
background() {
    local i0 t0; i0=$(rx_idle); t0=$(now); sleep 1.5
    awk -v i0="$i0" -v i1="$(rx_idle)" -v t0="$t0" -v t1="$(now)" 'BEGIN{b = 1 - (i1 - i0) / (t1 - t0); printf "%.3f", (b < 0) ? 0 : b}'
}

start_sink() { # MODE (sink|echo) SECONDS
    ip netns exec $PBX nice -n -10 taskset -c "$RX_CPU" "$GEN" "$1" 0.0.0.0:5060 "$2" > "$WORK/sink.out" &
    SINK_PID=$!
    sleep 0.3
}
stop_sink() { [ -n "$SINK_PID" ] && { kill "$SINK_PID" 2> /dev/null || true; wait "$SINK_PID" 2> /dev/null || true; }; SINK_PID=""; }

start_sipwall() { # TUNING PIN(cpus|"") [EXTRA [enforce] LINE] -> RECV_PIDS
    local tuning=$1 pin=$2 extra=${3:-} taskset="taskset -c $RX_CPU"
    printf '[trusted]\nnetworks = ["198.51.100.0/24"]\n[enforce]\nqueues = 1\nrecord_decisions = false\n%s\n' "$extra" > "$WORK/sipwall.toml"
    if [ "$pin" = cpus ]; then echo "cpus = [$RX_CPU]" >> "$WORK/sipwall.toml"; taskset=""; fi
    [ "$pin" = free ] && taskset=""
    rm -rf "$WORK/state" "$WORK/daemon.log"
    ip netns exec $PBX env SIPWALL_QUEUE_TUNING="$tuning" nice -n -10 $taskset "$BIN" run --config "$WORK/sipwall.toml" --state "$WORK/state" 2> "$WORK/daemon.log" &
    RECV_PIDS=$!
    for _ in $(seq 1 100); do grep -q "sipwall running" "$WORK/daemon.log" && return 0; sleep 0.1; done
    cat "$WORK/daemon.log" >&2; exit 1
}
start_kamailio() { # DENSITY -> RECV_PIDS (main and children)
    local cfg; cfg=$(kam_cfg "$1")
    mkdir -p "$WORK/kamrun"
    ip netns exec $PBX nice -n -10 taskset -c "$RX_CPU" kamailio -DD -E -f "$cfg" -P "$WORK/kamailio.pid" -Y "$WORK/kamrun" -m 64 -M 8 > "$WORK/kamailio.log" 2>&1 &
    local main=$!
    for _ in $(seq 1 100); do
        [ "$(pgrep -P "$main" | wc -l)" -ge 8 ] && break
        sleep 0.1
    done
    sleep 0.5
    RECV_PIDS="$main $(pgrep -P "$main" | tr '\n' ' ')"
    [ "$(echo "$RECV_PIDS" | wc -w)" -ge 9 ] || { cat "$WORK/kamailio.log" >&2; exit 1; }
}
stop_receiver() {
    local main=${RECV_PIDS%% *}
    if [ -n "$main" ]; then
        kill -TERM "$main" 2> /dev/null || true
        for _ in $(seq 1 50); do kill -0 "$main" 2> /dev/null || break; sleep 0.1; done
        kill -KILL "$main" 2> /dev/null || true
        wait "$main" 2> /dev/null || true
    fi
    RECV_PIDS=""
    stop_sink
    # sipwall leaves its table (ban sets, ban chain, conntrack anchor) in place at stop, so the
    # kernel keeps dropping banned sources; the next arm must not pay for it or be banned by it
    ip netns exec $PBX nft delete table inet sipwall 2> /dev/null || true
}

# measure ARM NS SRC DST FILES RATE COUNT KIND -> appends one result line
#   KIND: sink (handled = datagrams the sink received), answer (handled = answers at the
#   sender), offered (handled = sent: banned floods)
measure() {
    local arm=$1 ns=$2 src=$3 dst=$4 files=$5 rate=$6 count=$7 kind=$8
    [ "$kind" = sink ] && start_sink sink 40
    local bg; bg=$(background)
    local i0 t0 p0 a0 q0 d0 s0 k0 out i1 t1 p1 a1 q1 d1 s1 k1
    a0=$(udp_in "$ns"); q0=$(nfq); d0=$(udp_delivered)
    p0=$(sched_ns $RECV_PIDS); i0=$(rx_idle); t0=$(now); s0=$(rx_sirq); k0=$(sched_ns $KSOFTIRQD $SINK_PID $NAPI_PID)
    out=$(ip netns exec "$ns" nice -n -10 taskset -c "$TX_CPU" timeout 120 "$GEN" send "$src" "$dst" "$files" "$count" "$rate" 8)
    settle
    i1=$(rx_idle); t1=$(now); p1=$(sched_ns $RECV_PIDS); s1=$(rx_sirq); k1=$(sched_ns $KSOFTIRQD $SINK_PID $NAPI_PID)
    sleep 0.2
    a1=$(udp_in "$ns"); q1=$(nfq); d1=$(udp_delivered)
    local handled sent pps
    sent=$(echo "$out" | kv sent); pps=$(echo "$out" | kv pps)
    case $kind in
        sink) handled="";; # the sink prints its count when it exits, 1 s after the traffic
        answer) handled=$((a1 - a0));;
        offered) handled=$sent;;
        delivered) handled=$((d1 - d0));; # datagrams the kernel queued to the receiver's socket
    esac
    if [ "$kind" = sink ]; then
        wait "$SINK_PID" 2> /dev/null || true; SINK_PID=""
        handled=$(kv received < "$WORK/sink.out"); handled=${handled:-0}
    fi
    local fo; fo=$(awk -v a="$q0" -v b="$q1" 'BEGIN{split(a, x, " "); split(b, y, " "); print y[2] - x[2]}')
    awk -v arm="$arm" -v rate="$rate" -v sent="$sent" -v pps="$pps" -v h="$handled" -v bg="$bg" \
        -v i0="$i0" -v i1="$i1" -v t0="$t0" -v t1="$t1" -v p0="$p0" -v p1="$p1" -v fo="$fo" \
        -v sq="$((s1 - s0))" -v kq="$((k1 - k0))" 'BEGIN{
        wall = t1 - t0; busy = wall - (i1 - i0) - bg * wall; n = (h > 0) ? h : 1;
        printf "%s\t%s\t%.0f\t%d\t%d\t%.2f\t%.2f\t%.2f\t%.3f\t%d\t%.2f\n", arm, rate, pps, sent, h,
            busy * 1e6 / n, (p1 - p0) / 1e3 / n, (sent - h) * 100 / sent, bg, fo,
            ((p1 - p0) / 1e3 + kq / 1e3 + sq * 1e4) / n}' | tee -a "$OUT"
}

# wait (at most 5 s) until the receiver has worked off what the sender left queued: its
# processes (and the sink) ran less than 2 ms in the last 0.2 s. Waiting longer costs nothing
# (only busy time is counted), stopping early would miss work.
settle() {
    local i a b
    for i in $(seq 1 25); do
        a=$(sched_ns $RECV_PIDS $SINK_PID); sleep 0.2; b=$(sched_ns $RECV_PIDS $SINK_PID)
        [ $((b - a)) -lt 2000000 ] && break
    done
    return 0
}

count_for() { [ "$1" = 0 ] && echo "$FLAT_COUNT" || echo $(($1 * SECS)); }

# allowed traffic: one arm, every rate
allowed_arm() { # ARM
    local arm=$1 r
    case $arm in
        base) ;;
        sipwall) start_sipwall "" "";;
        kamailio) start_kamailio 65000;;
        *) local t=${arm#*=}
           case $t in
               queued) start_sipwall "" "" "trusted_fast_path = false";;
               ingress) start_sipwall "" "" "ingress_drop = true";;
               cpus) start_sipwall "" cpus;;
               free) start_sipwall "" free;;
               ctfree) start_sipwall "" ""
                   # defragmentation without connection tracking: the anchor's `ct` rule
                   # replaced by a never-jumped-to tproxy rule (tproxy also enables defrag)
                   ip netns exec $PBX nft -f - <<'NFT'
flush chain inet sipwall defrag_anchor
add rule inet sipwall defrag_anchor meta l4proto udp tproxy to :1
NFT
                   ;;
               *) start_sipwall "$t" "";;
           esac;;
    esac
    local kind=sink; [ "$arm" = kamailio ] && kind=answer
    for r in $RATES; do
        measure "${arm%%=*}" $PROV 198.51.100.2 198.51.100.1:5060 "$MIX" "$r" "$(count_for "$r")" $kind
    done
    stop_receiver
}

# XDP lever (banned arms xdp-generic and xdp-native): scripts/bench-xdp/ban_drop.c, built with
# Debian's clang and loaded with bpftool (installed when missing), attached to the attacker's
# device with the banned address in its LPM map, in front of sipwall's own ban chain (kept, as
# the product would keep it). It is a measurement, not part of sipwall: the daemon has no XDP.
# Its maps are pinned in a bpf filesystem mounted for the run (no dot in the path: libbpf turns
# dots of pin paths into underscores) and unmounted by cleanup, as the namespaces go.
xdp_build() {
    [ -r "$WORK/ban_drop.o" ] && return 0
    if ! command -v clang > /dev/null || ! command -v bpftool > /dev/null || [ ! -r /usr/include/bpf/bpf_helpers.h ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends clang libbpf-dev bpftool > /dev/null
    fi
    clang -O2 -g -target bpf -I"/usr/include/$(gcc -dumpmachine)" -c scripts/bench-xdp/ban_drop.c -o "$WORK/ban_drop.o"
}
xdp_attach() { # xdpgeneric|xdpdrv
    XDP_MODE=$1
    mkdir -p "$BPFFS"; mount -t bpf bpf "$BPFFS"; mkdir "$BPFFS/maps"
    bpftool prog load "$WORK/ban_drop.o" "$BPFFS/prog" type xdp pinmaps "$BPFFS/maps" 2> /dev/null
    # 203.0.113.2/32, permanent (expiry 0); guarded port 5060 (network order)
    bpftool map update pinned "$BPFFS/maps/ban4" key 32 0 0 0 203 0 113 2 value 0 0 0 0 0 0 0 0
    bpftool map update pinned "$BPFFS/maps/guarded_ports" key 0x13 0xc4 value 1
    ip netns exec $PBX bpftool net attach "$XDP_MODE" pinned "$BPFFS/prog" dev swdb-at0
    if [ "$XDP_MODE" = xdpdrv ]; then
        # veth runs native XDP in its NAPI poll, scheduled on the SENDER's CPU by veth_xmit; RPS
        # comes after it. Threaded NAPI moves the poll into a kthread, pinned to RX_CPU, so the
        # receiving CPU pays for it as it pays for the backlog in every other arm.
        ip netns exec $PBX sh -c 'echo 1 > /sys/class/net/swdb-at0/threaded'
        NAPI_PID=$(pgrep '^napi/swdb-at0' | head -1)
        [ -n "$NAPI_PID" ] || { echo "no NAPI thread for swdb-at0" >&2; exit 1; }
        taskset -pc "$RX_CPU" "$NAPI_PID" > /dev/null
    fi
}
xdp_detach() {
    if [ "$XDP_MODE" = xdpdrv ]; then
        ip netns exec $PBX sh -c 'echo 0 > /sys/class/net/swdb-at0/threaded' 2> /dev/null || true
    fi
    if [ -n "$XDP_MODE" ]; then ip netns exec $PBX bpftool net detach "$XDP_MODE" dev swdb-at0 2> /dev/null || true; fi
    XDP_MODE=""; NAPI_PID=""
    if mountpoint -q "$BPFFS" 2> /dev/null; then umount "$BPFFS"; fi
    rm -rf "$BPFFS"
}
ip_in() { ip netns exec $PBX awk '/^Ip: [0-9]/ {print $3; exit}' /proc/net/snmp; }

banned_arm() { # ARM
    local arm=$1 n=$((BAN_RATE * SECS))
    case $arm in
        sipwall|ingress|xdp-generic|xdp-native)
            [ "${arm#xdp-}" != "$arm" ] && xdp_build
            if [ "$arm" = ingress ]; then start_sipwall "" "" "ingress_drop = true"; else start_sipwall "" ""; fi
            ip netns exec $ATK timeout 10 "$GEN" send 203.0.113.2 203.0.113.1:5060 "$WORK/scan.sip" 1 0 > /dev/null
            sleep 1
            ip netns exec $PBX nft list set inet sipwall ban_addr4 | grep -q 203.0.113.2 || { echo "scanner not banned" >&2; cat "$WORK/daemon.log" >&2; exit 1; }
            # the arm measures what it says: the early drop on the attacker's device, or none
            local ingress; ingress=$(ip netns exec $PBX nft list chains inet | grep -c 'hook ingress device "swdb-at0"' || true)
            if [ "$arm" = ingress ] && [ "$ingress" != 1 ]; then echo "no early drop on swdb-at0" >&2; cat "$WORK/daemon.log" >&2; exit 1; fi
            if [ "$arm" != ingress ] && [ "$ingress" != 0 ]; then echo "an ingress chain by default" >&2; exit 1; fi
            case $arm in xdp-generic) xdp_attach xdpgeneric;; xdp-native) xdp_attach xdpdrv;; esac
            ;;
        kamailio)
            start_kamailio 16
            # pike bans the attacker once its address tree node runs hot (16 requests per 2 s,
            # level by level): 5 s at 200 req/s; the answers must stop before the flood
            local trig; trig=$(ip netns exec $ATK timeout 20 "$GEN" scan 203.0.113.2 203.0.113.1:5060 "$WORK/walk.sip" 1000 200)
            echo "# kamailio ban trigger: $trig" | tee -a "$OUT"
            ;;
    esac
    local kind=offered; [ "$arm" = kamailio ] && kind=delivered
    local in0; in0=$(ip_in)
    measure "banned-$arm" $ATK 203.0.113.2 203.0.113.1:5060 "$WORK/walk.sip" "$BAN_RATE" "$n" $kind
    # the XDP arms measure what they say: the flood never reached IP input
    if [ "${arm#xdp-}" != "$arm" ] && [ $(($(ip_in) - in0)) -gt $((n / 100)) ]; then
        echo "$arm: $(($(ip_in) - in0)) of $n packets reached IP input: XDP did not drop them" >&2; exit 1
    fi
    xdp_detach
    stop_receiver
}

echo "# bench-sustained: $(nproc) CPUs, kernel $(uname -r), receive on CPU $RX_CPU, send on CPU $TX_CPU, load average at start: $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%H:%M) UTC" | tee -a "$OUT"
echo -e "# arm\trate\tsent_pps\tsent\thandled\trx_us\tproc_us\tloss_pct\tbg_share\tfail_open\test_us" | tee -a "$OUT"
# Check the steering: packets processed by each CPU's receive backlog (/proc/net/softnet_stat,
# first column) while 20 000 packets are delivered to a sink.
softnet() { local a; while read -r a _; do printf '%d ' $((16#$a)); done < /proc/net/softnet_stat; }
start_sink sink 10
n0=$(softnet)
ip netns exec $PROV taskset -c "$TX_CPU" timeout 60 "$GEN" send 198.51.100.2 198.51.100.1:5060 "$MIX" 20000 20000 8 > /dev/null
n1=$(softnet); wait "$SINK_PID" || true; SINK_PID=""
echo "# steering check, packets through each CPU's receive backlog during a 20000-packet delivery: $(awk -v a="$n0" -v b="$n1" 'BEGIN{n = split(a, x, " "); split(b, y, " "); for (i = 1; i <= n; i++) printf "cpu%d %d ", i - 1, y[i] - x[i]}'); sink: $(cat "$WORK/sink.out")" | tee -a "$OUT"
all_arms="$ARMS $LEVERS"
set -- $all_arms
narms=$#
for rep in $(seq 1 "$REPS"); do
    # rotate the order every repetition
    order=""; i=0
    for a in $all_arms; do order="$order ${a}"; done
    rot=$(( (rep - 1) % narms ))
    arr=($order); order="${arr[*]:$rot} ${arr[*]:0:$rot}"
    for a in $order; do allowed_arm "$a"; done
    if [ "${BANNED:-1}" = 1 ]; then
        for a in ${BANNED_ARMS:-sipwall ingress kamailio}; do banned_arm "$a"; done
    fi
done

# requests per scan: SCAN_COUNT, or SCAN_SECS seconds' worth at fast rates
scan_n() { local n=$(($1 * SCAN_SECS)); [ "$n" -gt "$SCAN_COUNT" ] && echo "$n" || echo "$SCAN_COUNT"; }
if [ "${SCAN:-1}" = 1 ]; then
    src=3
    for r in $SCAN_RATES; do
        # a fresh receiver and a fresh scanner address per rate, so no ban carries over
        start_sipwall "" ""; start_sink echo $(($(scan_n "$r") / r + 15))
        res=$(ip netns exec $ATK timeout 120 "$GEN" scan "203.0.113.$src" 203.0.113.1:5060 "$WORK/walk.sip" "$(scan_n "$r")" "$r")
        echo -e "scan-sipwall\t$r\t$res" | tee -a "$OUT"
        stop_receiver; src=$((src + 1))
        start_kamailio 16
        res=$(ip netns exec $ATK timeout 120 "$GEN" scan "203.0.113.$src" 203.0.113.1:5060 "$WORK/walk.sip" "$(scan_n "$r")" "$r")
        echo -e "scan-kamailio\t$r\t$res" | tee -a "$OUT"
        stop_receiver; src=$((src + 1))
    done
fi

summary "$OUT"
exit
}
