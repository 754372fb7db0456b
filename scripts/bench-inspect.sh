#!/usr/bin/env bash
# Benchmark of `sipwall inspect` against tshark on the same large capture, in the same run.
#
#   scripts/bench-inspect.sh [SIZE_MB]      (default 1100: a capture over 1 GB)
#
# Generates /tmp/swi-bench.pcap (NOT committed) by repeating the real SIP messages of
# testdata/captures with many sources (crates/capture/examples/gen_capture.rs), then runs
#   sipwall inspect --format json FILE
#   tshark -r FILE -Y sip -T fields -e sip.Method
# under /usr/bin/time -v, and prints MB/s, messages/s, peak RSS and the ratios. With
# BENCH_WRITE=1 it replaces the inspect section of docs/BENCHMARKS.md with the results.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${1:-1100}
FILE=${BENCH_FILE:-/tmp/swi-bench.pcap}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
command -v tshark >/dev/null || { echo "bench-inspect.sh: tshark is needed" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench-inspect.sh: /usr/bin/time (GNU time) is needed" >&2; exit 1; }

cargo build --release -q -p sipwall --bin sipwall
cargo build --release -q -p sipwall-capture --example gen_capture
BIN=$CARGO_TARGET_DIR/release/sipwall
GEN=$CARGO_TARGET_DIR/release/examples/gen_capture
trap 'rm -f "$FILE" /tmp/swi-bench.*.time /tmp/swi-bench.tshark.out' EXIT

"$GEN" "$FILE" "$SIZE_MB" testdata/captures/svmap.pcap testdata/captures/svwar.pcapng \
    testdata/captures/svcrack.pcap testdata/captures/legit.pcap testdata/captures/mixed-any.pcapng
BYTES=$(stat -c %s "$FILE")
sync

run() { # name cmd...
    local name=$1; shift
    /usr/bin/time -v -o "/tmp/swi-bench.$name.time" "$@"
}
field() { grep "$2" "/tmp/swi-bench.$1.time" | awk -F': ' '{print $2}'; }
secs() { # "h:mm:ss" or "m:ss.ss" -> seconds
    awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }' <<<"$1"
}

# Warm the page cache so both tools read from memory.
cat "$FILE" >/dev/null

run sipwall "$BIN" inspect --format json "$FILE" >/tmp/swi-bench.sipwall.json
MSGS=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["messages"])' /tmp/swi-bench.sipwall.json)
rm -f /tmp/swi-bench.sipwall.json
run tshark tshark -r "$FILE" -Y sip -T fields -e sip.Method >/tmp/swi-bench.tshark.out
TMSGS=$(wc -l </tmp/swi-bench.tshark.out)

S_T=$(secs "$(field sipwall 'Elapsed (wall clock)')")
T_T=$(secs "$(field tshark 'Elapsed (wall clock)')")
S_RSS=$(field sipwall 'Maximum resident set size')
T_RSS=$(field tshark 'Maximum resident set size')

REPORT=$(python3 - "$BYTES" "$MSGS" "$TMSGS" "$S_T" "$T_T" "$S_RSS" "$T_RSS" <<'PY'
import sys
b, m, tm, st, tt, srss, trss = sys.argv[1:]
b, m, tm = int(b), int(m), int(tm)
st, tt, srss, trss = float(st), float(tt), int(srss), int(trss)
mb = b / 1e6
print(f"capture: {mb:.0f} MB, {m} SIP messages (sipwall), {tm} (tshark)")
print(f"")
print(f"| tool | wall s | MB/s | messages/s | peak RSS MB |")
print(f"|---|---|---|---|---|")
print(f"| sipwall inspect --format json | {st:.1f} | {mb/st:.0f} | {m/st:,.0f} | {srss/1024:.0f} |")
print(f"| tshark -Y sip -T fields -e sip.Method | {tt:.1f} | {mb/tt:.0f} | {tm/tt:,.0f} | {trss/1024:.0f} |")
print(f"")
print(f"throughput ratio sipwall/tshark: {tt/st:.1f}x (target >= 10x); sipwall peak memory {srss/1024:.0f} MB (target < 100 MB)")
PY
)
echo "$REPORT"

if [ "${BENCH_WRITE:-0}" = 1 ]; then
    python3 - docs/BENCHMARKS.md "$REPORT" "$SIZE_MB" <<'PY'
import sys, re, os, datetime
path, report, size = sys.argv[1], sys.argv[2], sys.argv[3]
begin, end = "<!-- inspect:begin -->", "<!-- inspect:end -->"
section = f"""{begin}
## sipwall inspect vs tshark (offline capture analysis)

Command: `scripts/bench-inspect.sh {size}` (`BENCH_WRITE=1` rewrites this section). A generated
pcap (real svmap/svwar/svcrack/SIPp messages from `testdata/captures`, repeated with ~250
sources per range, 0.5 ms apart) is read from the page cache by both tools in the same run:
`sipwall inspect --format json FILE` (engine decisions included) against
`tshark -r FILE -Y sip -T fields -e sip.Method`. Peak RSS from `/usr/bin/time -v`.
Measured {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC on the 2-core VM (load average
{os.getloadavg()[0]:.1f} at the end: other helpers were building); ratios hold better than
absolutes. Both tools see the same messages (counts above); sipwall's figure includes parsing,
the engine's decision for every message and the per-source report, in one thread.

{report}
{end}"""
text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
if begin in text:
    text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: section, text, flags=re.S)
else:
    text = text.rstrip("\n") + "\n\n" + section + "\n"
open(path, "w").write(text)
PY
    echo "wrote docs/BENCHMARKS.md"
fi
