#!/usr/bin/env bash
# Inline benchmark of `sipwall run` (root; network namespaces from tests/e2e/topology.sh with
# prefix swdb-, documentation addresses only). Each figure is measured beside a baseline
# without sipwall in the same run, on the same topology:
#   1. allowed path: UDP INVITEs from the trusted provider through the queue (the trusted fast
#      path is turned off so they are queued), 1 and 2 queues
#      (flat out, and paced on a ladder of RATES to find the highest rate with zero loss);
#   2. banned path: the same flood from a banned source, dropped by the kernel set;
#   3. latency: INVITE -> answer round trip from the provider (both directions queued), p50/p99;
#   4. ban latency: decision -> durable in the store -> element in the kernel set.
#   5. the daemon's own CPU per packet of the flat-out runs (scheduler run time of all its
#      threads, /proc/PID/task/*/schedstat: exact, not tick-sampled). CPU per packet of the
#      whole receiving side, steady state, against Kamailio: scripts/bench-sustained.sh, run at
#      the end (SUSTAINED=0 skips it). The /proc/stat busy-tick method this script used before
#      was off by up to 6x on an often-idle CPU (ticks are sampled) and is gone.
#   6. queue drain: BURST packets are queued while the daemon is stopped (SIGSTOP), then it is
#      continued and the sink times their arrival: the rate a queue thread judges and reinjects
#      a full backlog at, with the sender idle (one sender on this VM cannot outrun a queue
#      thread, so flat-out runs measure the sender). Median of DRAINS runs, 1 and 2 queues;
#      with 1 queue, daemon and sink pinned to one CPU each (see drain_once).
#   7. operations: what a Prometheus scraper (GET /metrics once a second) and a connected
#      dashboard (its page and data, and the open server-sent event stream) add to the inline
#      per-packet cost. One daemon with [api] on; OPS_PAIRS pairs of paced floods (OPS_RATE
#      pkt/s, every packet judged), each pair one flood without and one with the clients, in
#      alternating order (interleaved: drift of the machine hits both arms alike). Reported:
#      the daemon's, its queue thread's and its API threads' run time per packet (schedstat),
#      median ratio and the spread over the pairs. ONLY_OPS=1 runs this part alone.
# Prints a Markdown table (paste into docs/BENCHMARKS.md) and leaves nothing behind.
# Usage (as root): scripts/bench-inline.sh [COUNT] (default 300000 packets per run;
# env: COST_COUNT 1000000 for the banned run, BURST 40000, DRAINS 3, SUSTAINED 1,
# OPS_PAIRS 7, OPS_RATE 100000, ONLY_OPS 0, ONLY_RTT 0, RTT_REPS 3)
set -euo pipefail
# The whole script is one brace group, which bash reads to its end before running any of it:
# editing this file while a bench runs (they take minutes) cannot change what the run does.
{
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "bench-inline.sh: run as root (namespaces, firewall rules)" >&2; exit 1; }

COUNT="${1:-300000}"
COST_COUNT="${COST_COUNT:-1000000}"
BURST="${BURST:-40000}"
DRAINS="${DRAINS:-3}"
RATES="${RATES:-50000 100000 150000 200000 250000}"
export SWD_PREFIX=swdb-
PBX=swdb-pbx; PROV=swdb-provider; ATK=swdb-attacker
TGT="${CARGO_TARGET_DIR:-target}"
cargo build -q --release -p sipwall --bin sipwall
cargo build -q --release -p sipwall-netfilter --example udpflood
BIN="$TGT/release/sipwall"; GEN="$TGT/release/examples/udpflood"
WORK="$(mktemp -d)"
DAEMON_PID=""
OPS_CLIENTS=()

cleanup() {
    for c in "${OPS_CLIENTS[@]}"; do kill "$c" 2>/dev/null || true; done
    [ -n "$DAEMON_PID" ] && kill -TERM "$DAEMON_PID" 2>/dev/null && sleep 1
    bash tests/e2e/topology.sh down || true
    rm -rf "$WORK"
}
trap cleanup EXIT
bash tests/e2e/topology.sh up
# A second provider address: queue balancing hashes the address pair, so two queues need two.
ip -n $PROV addr add 198.51.100.3/24 dev swdb-pv1

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

kv() { tr ' ' '\n' | sed -n "s/^$1=//p"; }

# scheduler run time (ns) of a live process, all its threads (exact, unlike tick counts)
sched_ns() {
    local s=0 t a
    for t in /proc/"$1"/task/*/schedstat; do read -r a _ < "$t" 2> /dev/null && s=$((s + a)); done
    echo "$s"
}

# flood SRC_NS SRC_IP DST RATE FLOWS [N] -> "sent_pps received loss_pct daemon_us"
# (N packets, default COUNT; SINK_SECS: how long the sink waits when nothing arrives)
# daemon_us: the daemon's own run time per packet sent (0 without it).
flood() {
    local ns=$1 src=$2 dst=$3 rate=$4 flows=$5 n=${6:-$COUNT}
    local d0=0 d1=0
    [ -n "$DAEMON_PID" ] && d0=$(sched_ns "$DAEMON_PID")
    ip netns exec $PBX bash -c 'timeout 60 "$0" sink 0.0.0.0:5060 "$2" > "$1/sink"' "$GEN" "$WORK" "${SINK_SECS:-30}" &
    local sink=$!
    sleep 0.3
    local out; out=$(ip netns exec "$ns" timeout 60 "$GEN" send "$src" "$dst" "$WORK/invite.sip" "$n" "$rate" "$flows")
    wait $sink || true
    [ -n "$DAEMON_PID" ] && d1=$(sched_ns "$DAEMON_PID")
    local sent pps recv
    sent=$(echo "$out" | kv sent); pps=$(echo "$out" | kv pps); recv=$(kv received < "$WORK/sink")
    echo "$pps $recv $(awk -v s="$sent" -v r="$recv" -v d="$((d1 - d0))" 'BEGIN{
        printf "%.2f %.2f", (s-r)*100/s, d / 1e3 / s}')"
}

ping_rtt() {
    ip netns exec $PBX timeout 60 "$GEN" echo 0.0.0.0:5060 40 > /dev/null &
    local echo=$!
    sleep 0.3
    ip netns exec $PROV timeout 60 "$GEN" ping 198.51.100.2 198.51.100.1:5060 "$WORK/invite.sip" 5000
    kill $echo 2>/dev/null || true; wait $echo 2>/dev/null || true
}

start_daemon() { # QUEUES [EXTRA_TOML]
    # The provider is trusted, and its requests are what this script times through the queue:
    # the trusted fast path (which would let them skip it) is off here; bench-sustained.sh
    # measures it.
    printf '[trusted]\nnetworks = ["198.51.100.0/24"]\n[enforce]\nqueues = %s\nrecord_decisions = false\ntrusted_fast_path = %s\n%b' "$1" "${FAST:-false}" "${2:-}" > "$WORK/sipwall.toml"
    rm -f "$WORK/daemon.log"
    ip netns exec $PBX ${PIN:-} "$BIN" run --config "$WORK/sipwall.toml" --state "$WORK/state" 2> "$WORK/daemon.log" &
    DAEMON_PID=$!
    for _ in $(seq 1 100); do grep -q "sipwall running" "$WORK/daemon.log" && return 0; sleep 0.1; done
    cat "$WORK/daemon.log" >&2; exit 1
}
stop_daemon() {
    kill -TERM "$DAEMON_PID"; wait "$DAEMON_PID" || true; DAEMON_PID=""
}
# packets the daemon's queue threads judged (from its exit log)
inspected() { sed -n 's/.*queue [0-9]*: \([0-9]*\) packets.*/\1/p' "$WORK/daemon.log" | awk '{s+=$1} END {print s+0}'; }

# drain_once QUEUES SRCS -> "pps received judged": BURST packets queued while the daemon is
# stopped, then timed by the sink from the first to the last arrival once it continues. With
# QUEUES=0 there is no daemon: the same burst delivered directly (the sender's own rate).
# A packet that bypassed a full queue (fail-open) would arrive early and show as fewer judged.
# One queue pinned: the daemon on CPU 1, the sink on CPU 0. Unpinned, the scheduler's wake-affine logic
# keeps pulling the sink (woken by the daemon's verdicts) onto the daemon's core, and the two
# then share one core while the other idles (about 6% slower and twice the spread here).
drain_once() {
    local q=$1 srcs=$2
    local pin="" sinkpin=""
    [ "$q" = 1 ] && pin="taskset -c 1" && sinkpin="taskset -c 0" # 2 queues: a core each
    [ "$q" -gt 0 ] && PIN="$pin" start_daemon "$q"
    ip netns exec $PBX $sinkpin bash -c 'timeout 60 "$0" sink 0.0.0.0:5060 20 > "$1/sink"' "$GEN" "$WORK" &
    local sink=$!
    sleep 0.3
    [ "$q" -gt 0 ] && kill -STOP "$DAEMON_PID"
    ip netns exec $PROV timeout 60 "$GEN" send "$srcs" 198.51.100.1:5060 "$WORK/invite.sip" "$BURST" 0 8 > /dev/null
    if [ "$q" -gt 0 ]; then sleep 0.3; kill -CONT "$DAEMON_PID"; fi
    wait $sink || true
    local judged=0
    if [ "$q" -gt 0 ]; then stop_daemon; judged=$(inspected); fi
    local recv secs; recv=$(kv received < "$WORK/sink"); secs=$(kv secs < "$WORK/sink")
    awk -v n="$recv" -v s="$secs" -v j="$judged" 'BEGIN{printf "%.0f %d %d\n", (s>0) ? (n-1)/s : 0, n, j}'
}
# drain QUEUES SRCS -> the median run (by rate) of DRAINS, then every run's rate
drain() {
    local runs=() i
    for i in $(seq 1 "$DRAINS"); do runs+=("$(drain_once "$1" "$2")"); done
    local all; all=$(printf '%s\n' "${runs[@]}" | awk '{print $1}' | sort -n | paste -sd/)
    echo "$(printf '%s\n' "${runs[@]}" | sort -n | sed -n "$(( (DRAINS + 1) / 2 ))p") $all"
}

echo "# bench-inline: $COUNT packets per run, $(nproc) cores, kernel $(uname -r), load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
# ladder KEY [SRCS]: highest rate ACHIEVED by the sender (paced at each of RATES; the sender may not
# reach a target) that was delivered with zero loss, and the loss of the first lossy step
ladder() {
    local best=0 note=""
    for r in $RATES; do
        local res; res=$(flood $PROV "${2:-198.51.100.2}" 198.51.100.1:5060 "$r" 8)
        echo "  $1 paced $r: $res" >&2
        if [ "$(echo "$res" | awk '{print ($3 == 0) ? 1 : 0}')" = 1 ]; then
            best=$(echo "$res" | awk -v b="$best" '{print ($1 > b) ? $1 : b}')
        else note="target $r: $(echo "$res" | awk '{print $3}') % lost"; break; fi
    done
    echo "$best${note:+ (then $note)}"
}
# 7. operations arm (see the header). The clients run in the PBX namespace, where the API
# listens on loopback; they are started and ended by PID around each "watched" flood.
OPS_PAIRS="${OPS_PAIRS:-7}"; OPS_RATE="${OPS_RATE:-100000}"
ops_clients_start() {
    local api=http://127.0.0.1:9360
    ip netns exec $PBX timeout 300 bash -c 'while :; do curl -s -o /dev/null "$0/metrics"; sleep 1; done' "$api" &
    OPS_CLIENTS+=($!)
    ip netns exec $PBX timeout 300 curl -sN -o /dev/null "$api/api/v1/events" &
    OPS_CLIENTS+=($!)
    # the dashboard as a browser loads it: page, script, style, data
    ip netns exec $PBX timeout 20 curl -s -o /dev/null -o /dev/null -o /dev/null -o /dev/null \
        "$api/" "$api/assets/dashboard.js" "$api/assets/dashboard.css" "$api/api/v1/dashboard"
    sleep 0.5
}
ops_clients_stop() {
    for c in "${OPS_CLIENTS[@]}"; do kill "$c" 2>/dev/null || true; wait "$c" 2>/dev/null || true; done
    OPS_CLIENTS=()
}
# run time (ns, schedstat) of the daemon's threads whose name starts with one of the prefixes
# (comm is cut at 15 characters: sipwall-q0, sipwall-api, tokio-runtime-w)
thread_ns() {
    local t sum=0 c a
    for t in /proc/"$DAEMON_PID"/task/*; do
        c=$(cat "$t/comm" 2>/dev/null) || continue
        for p in "$@"; do
            case "$c" in "$p"*) read -r a _ < "$t/schedstat" 2>/dev/null && sum=$((sum + a)) ;; esac
        done
    done
    echo "$sum"
}
# ops_flood -> flood's fields (pps recv loss daemon_us), then the queue thread's and the API
# threads' us per packet
ops_flood() {
    local q0 a0 out
    q0=$(thread_ns sipwall-q); a0=$(thread_ns sipwall-api tokio-runtime-w)
    out=$(flood $PROV 198.51.100.2 198.51.100.1:5060 "$OPS_RATE" 8)
    echo "$out $(awk -v q="$(( $(thread_ns sipwall-q) - q0 ))" -v a="$(( $(thread_ns sipwall-api tokio-runtime-w) - a0 ))" -v n="$COUNT" \
        'BEGIN{printf "%.3f %.4f", q / 1e3 / n, a / 1e3 / n}')"
}
ops_arm() {
    start_daemon 1 '[api]\nenabled = true\n'
    local i quiet watched
    : > "$WORK/ops"
    for i in $(seq 1 "$OPS_PAIRS"); do
        if [ $((i % 2)) = 1 ]; then
            quiet=$(ops_flood)
            ops_clients_start; watched=$(ops_flood); ops_clients_stop
        else
            ops_clients_start; watched=$(ops_flood); ops_clients_stop
            quiet=$(ops_flood)
        fi
        echo "  ops pair $i: quiet $quiet | watched $watched" >&2
        echo "$quiet $watched" >> "$WORK/ops"
    done
    stop_daemon
    # columns: quiet pps recv loss daemon queue api (1-6), watched the same (7-12)
    awk -v n="$OPS_PAIRS" -v rate="$OPS_RATE" '
        function med(a, k,   t, i, j, x) { for (i = 1; i <= k; i++) t[i] = a[i];
            for (i = 2; i <= k; i++) { x = t[i]; for (j = i - 1; j >= 1 && t[j] > x; j--) t[j+1] = t[j]; t[j+1] = x }
            return (k % 2) ? t[(k+1)/2] : (t[k/2] + t[k/2+1]) / 2 }
        function lo(a, k,   i, m) { m = a[1]; for (i = 2; i <= k; i++) if (a[i] < m) m = a[i]; return m }
        function hi(a, k,   i, m) { m = a[1]; for (i = 2; i <= k; i++) if (a[i] > m) m = a[i]; return m }
        { k++; qd[k] = $4; wd[k] = $10; qq[k] = $5; wq[k] = $11; qa[k] = $6; wa[k] = $12;
          rd[k] = ($4 > 0) ? $10 / $4 : 0; rq[k] = ($5 > 0) ? $11 / $5 : 0;
          ra[k] = ($10 > 0) ? ($12 - $6) / $10 : 0 }
        END {
          printf "| operations: daemon run time per packet (us), paced %d pkt/s, 1 queue, %d interleaved pairs: median (min-max) | no client %.3f (%.3f-%.3f) | with clients %.3f (%.3f-%.3f) | **ratio %.3f** (pairs %.3f-%.3f) |\n", rate, n, med(qd,k), lo(qd,k), hi(qd,k), med(wd,k), lo(wd,k), hi(wd,k), med(rd,k), lo(rd,k), hi(rd,k)
          printf "| operations: queue thread run time per packet (us), same floods | no client %.3f (%.3f-%.3f) | with clients %.3f (%.3f-%.3f) | **ratio %.3f** (pairs %.3f-%.3f) |\n", med(qq,k), lo(qq,k), hi(qq,k), med(wq,k), lo(wq,k), hi(wq,k), med(rq,k), lo(rq,k), hi(rq,k)
          printf "| operations: the API threads (sipwall-api + its blocking pool) run time per packet (us), same floods | no client %.4f (max %.4f) | with clients %.4f (max %.4f) | **added: %.2f%% of the daemon per packet** (median; pairs %.2f%%-%.2f%%) |\n", med(qa,k), hi(qa,k), med(wa,k), hi(wa,k), 100*med(ra,k), 100*lo(ra,k), 100*hi(ra,k)
        }' "$WORK/ops"
}
# ONLY_RTT=1: the INVITE round trip (p50/p99, 5 000 each) with no sipwall, with sipwall
# queueing the provider's requests, and with the trusted fast path on; RTT_REPS repetitions,
# the order rotated every repetition.
if [ "${ONLY_RTT:-0}" = 1 ]; then
    echo "| repetition | arm | p50 µs | p99 µs |"
    echo "|---|---|---|---|"
    arms="none queued fast"
    for rep in $(seq 1 "${RTT_REPS:-3}"); do
        for arm in $arms; do
            case $arm in
                none) out=$(ping_rtt);;
                queued) start_daemon 1; out=$(ping_rtt); stop_daemon;;
                fast) FAST=true start_daemon 1; out=$(ping_rtt); stop_daemon;;
            esac
            echo "| $rep | $arm | $(echo "$out" | kv p50_us) | $(echo "$out" | kv p99_us) |"
        done
        arms="${arms#* } ${arms%% *}"
    done
    exit 0
fi
if [ "${ONLY_OPS:-0}" = 1 ]; then
    echo "| measure | baseline | with | ratio |"
    echo "|---|---|---|---|"
    ops_arm
    exit 0
fi
declare -A R
R[base_flat]=$(flood $PROV 198.51.100.2 198.51.100.1:5060 0 8)
R[base_paced]=$(ladder base)
R[base_atk]=$(flood $ATK 203.0.113.2 203.0.113.1:5060 0 8)
R[base_rtt]=$(ping_rtt)
R[base_drain]=$(drain 0 198.51.100.2)
R[q1_drain]=$(drain 1 198.51.100.2)
R[q2_drain]=$(drain 2 198.51.100.2,198.51.100.3)
for q in 1 2; do
    start_daemon $q
    # one provider address per queue: queue balancing hashes the address pair
    srcs=198.51.100.2; [ "$q" = 2 ] && srcs=198.51.100.2,198.51.100.3
    R[q${q}_flat]=$(flood $PROV "$srcs" 198.51.100.1:5060 0 8)
    stop_daemon
    # With fail-open, packets beyond a full kernel queue are accepted uninspected: count what
    # the daemon really judged.
    R[q${q}_inspected]=$(inspected)
    start_daemon $q
    R[q${q}_paced]=$(ladder q$q "$srcs")
    if [ $q = 1 ]; then
        R[q1_rtt]=$(ping_rtt)
        ip netns exec $ATK timeout 10 "$GEN" send 203.0.113.2 203.0.113.1:5060 "$WORK/scan.sip" 1 0 > /dev/null
        sleep 1
        # ban_addr4 (addresses in a hash set) since the set split; ban4 in older binaries
        { ip netns exec $PBX nft list set inet sipwall ban_addr4 2>/dev/null || ip netns exec $PBX nft list set inet sipwall ban4; } | grep -q 203.0.113.2 || { echo "scanner not banned" >&2; cat "$WORK/daemon.log" >&2; exit 1; }
        R[ban_log]=$(grep -o 'in kernel set after [0-9]* us, durable after [0-9]* us' "$WORK/daemon.log" | head -1)
        R[banned]=$(SINK_SECS=4 flood $ATK 203.0.113.2 203.0.113.1:5060 0 8 "$COST_COUNT")
    fi
    stop_daemon
done

f() { echo "${R[$1]}" | awk -v i="$2" '{print $i}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b>0) printf "%.2f", a/b; else print "n/a"}'; }
p() { echo "${R[$1]}" | kv "$2"; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.1f", a-b}'; }
echo "| measure | baseline (no sipwall) | with sipwall | ratio / added |"
echo "|---|---|---|---|"
echo "| allowed path, flat out, 1 queue: pkt/s offered / loss | $(f base_flat 1) / $(f base_flat 3) % | $(f q1_flat 1) / $(f q1_flat 3) % | $(ratio "$(f q1_flat 1)" "$(f base_flat 1)") |"
echo "| allowed path, flat out, 2 queues: pkt/s offered / loss | $(f base_flat 1) / $(f base_flat 3) % | $(f q2_flat 1) / $(f q2_flat 3) % | $(ratio "$(f q2_flat 1)" "$(f base_flat 1)") |"
echo "| flat out: packets judged by sipwall of $COUNT sent (rest: queue full, accepted uninspected) | | 1 queue ${R[q1_inspected]}, 2 queues ${R[q2_inspected]} | |"
echo "| allowed path, highest achieved pkt/s with zero loss (targets $RATES), 1 queue | ${R[base_paced]} | ${R[q1_paced]} | |"
echo "| allowed path, highest achieved pkt/s with zero loss (targets $RATES), 2 queues | ${R[base_paced]} | ${R[q2_paced]} | |"
echo "| banned source flat out: pkt/s (baseline delivered; sipwall dropped in kernel, received) | $(f base_atk 1) | $(f banned 1) (received $(f banned 2)) | banned drop / queued allowed = $(ratio "$(f banned 1)" "$(f q1_flat 1)") |"
echo "| INVITE round trip p50 / p99 (us) | $(p base_rtt p50_us) / $(p base_rtt p99_us) | $(p q1_rtt p50_us) / $(p q1_rtt p99_us) | +$(sub "$(p q1_rtt p50_us)" "$(p base_rtt p50_us)") / +$(sub "$(p q1_rtt p99_us)" "$(p base_rtt p99_us)") us |"
echo "| ban: worker got the decision -> element in kernel set (netlink) -> durable in store | | ${R[ban_log]} | |"
echo "| sipwall daemon run time per packet, flat out (us, schedstat), 1 queue / 2 queues | | $(f q1_flat 4) / $(f q2_flat 4) | |"
cap() { awk -v u="$1" 'BEGIN{ if (u>0) printf "%.0f", 1e6/u; else print "n/a"}'; }
echo "| derived capacity of one queue thread = 1 / daemon CPU per packet (1 queue) | | $(cap "$(f q1_flat 4)") pkt/s | |"
dr() { echo "${R[$1]}" | awk '{print $1}'; }
echo "| queue drain: $BURST packets queued with the daemon stopped, then judged and delivered: pkt/s (median of $DRAINS; all runs) / received / judged | direct, no sipwall: $(dr base_drain) ($(f base_drain 4)) / $(f base_drain 2) | 1 queue: **$(dr q1_drain)** ($(f q1_drain 4)) / $(f q1_drain 2) / $(f q1_drain 3); 2 queues: **$(dr q2_drain)** ($(f q2_drain 4)) / $(f q2_drain 2) / $(f q2_drain 3) | 1 queue $(ratio "$(dr q1_drain)" 250000)x the 250k target |"
ops_arm
# Steady-state CPU per packet of the whole receiving CPU, against Kamailio (the headline figure;
# the drain above is the secondary one). Its own topology: this one is torn down first.
if [ "${SUSTAINED:-1}" = 1 ]; then
    cleanup
    trap - EXIT
    echo
    NO_BUILD=1 scripts/bench-sustained.sh
fi
exit
}
