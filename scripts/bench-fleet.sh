#!/usr/bin/env bash
# Fleet benchmarks, with a real redis-server and `sipwall run` nodes in network namespaces
# of their own (documentation addresses only; nothing leaves the machine):
#  1. propagation: a manual ban on node A until its element is in node B's kernel ban set
#     (both read from `nft monitor` in each namespace), p50/p99 over BANS bans made one after
#     the other; the baseline of the same run is the local half (the `sipwall ban` command on
#     A until A's own kernel element);
#  2. sync: a fresh node started against SYNC_BANS active fleet bans, until it runs (queues
#     open, every ban in its kernel set); the baseline of the same run is the same start
#     against an empty fleet.
# Needs root, redis-server, redis-cli, nft and python3.
# Usage: sudo scripts/bench-fleet.sh [BANS] [SYNC_BANS]   (default 1000 100000)
# SIPWALL_BIN=path/to/sipwall uses that binary instead of building the `quick` profile.
set -euo pipefail
# The whole script is one brace group, which bash reads to its end before running any of it:
# editing this file while a bench runs (they take minutes) cannot change what the run does.
{
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench-fleet.sh needs root (network namespaces, nf_tables)" >&2; exit 1; }
for t in redis-server redis-cli nft python3; do
    command -v "$t" >/dev/null || { echo "bench-fleet.sh needs $t (scripts/install-test-deps.sh)" >&2; exit 1; }
done
BIN="${SIPWALL_BIN:-}"
if [ -z "$BIN" ]; then
    cargo build -q --profile quick -p sipwall
    TGT="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
    BIN="$TGT/quick/sipwall"
fi
exec flock /tmp/sipwall-netns.lock python3 - "$BIN" "${1:-1000}" "${2:-100000}" <<'PY'
import json, os, re, shutil, signal, subprocess, sys, tempfile, threading, time

BIN, BANS, SYNC = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
HUB, NODES = "swb-hub", {"a": "192.0.2.11", "b": "192.0.2.12", "c": "192.0.2.13"}
tmp = tempfile.mkdtemp(prefix="bench-fleet-")
procs = []

def sh(*args, check=True, timeout=60, **kw):
    return subprocess.run(list(args), check=check, timeout=timeout, capture_output=True, text=True, **kw)

def ns(n):
    return f"swb-{n}"

def down():
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
    for n in list(NODES) + ["hub"]:
        sh("ip", "netns", "del", ns(n), check=False)

def up():
    down()
    sh("ip", "netns", "add", HUB)
    sh("ip", "-n", HUB, "link", "add", "swb-br", "type", "bridge")
    sh("ip", "-n", HUB, "addr", "add", "192.0.2.1/24", "dev", "swb-br")
    sh("ip", "-n", HUB, "link", "set", "swb-br", "up")
    sh("ip", "-n", HUB, "link", "set", "lo", "up")
    for i, (n, addr) in enumerate(NODES.items()):
        sh("ip", "netns", "add", ns(n))
        sh("ip", "link", "add", f"swb-{n}0", "netns", ns(n), "type", "veth", "peer", "name", f"swb-{n}1", "netns", HUB)
        sh("ip", "-n", HUB, "link", "set", f"swb-{n}1", "master", "swb-br")
        sh("ip", "-n", HUB, "link", "set", f"swb-{n}1", "up")
        sh("ip", "-n", ns(n), "addr", "add", f"{addr}/24", "dev", f"swb-{n}0")
        sh("ip", "-n", ns(n), "link", "set", f"swb-{n}0", "up")
        sh("ip", "-n", ns(n), "link", "set", "lo", "up")

def redis_cli(*args, **kw):
    return sh("ip", "netns", "exec", HUB, "redis-cli", "-h", "192.0.2.1", *args, **kw)

def start_node(n, prefix, sync_timeout_ms=5000):
    d = os.path.join(tmp, f"{n}-{prefix}")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    with open(os.path.join(d, "sipwall.toml"), "w") as f:
        f.write(f"""[limits]
max_bans = 400000

[enforce]
ports = ["udp:5060"]
reconcile_interval_secs = 0

[fleet]
redis_url = "redis://192.0.2.1:6379/0"
node_id = "{n}"
key_prefix = "{prefix}"
max_bans_per_origin_per_minute = 1000000
sync_timeout_ms = {sync_timeout_ms}
""")
    log = open(os.path.join(d, "log"), "w")
    t0 = time.monotonic()
    p = subprocess.Popen(["ip", "netns", "exec", ns(n), BIN, "run", "--config", os.path.join(d, "sipwall.toml"),
                          "--state", os.path.join(d, "state"), "--socket", os.path.join(d, "sock")],
                         stdout=subprocess.DEVNULL, stderr=log, env={**os.environ, "RUST_LOG": "info"})
    procs.append(p)
    deadline = t0 + 300
    while True:
        text = open(os.path.join(d, "log")).read()
        if "sipwall running" in text:
            return p, d, time.monotonic() - t0, text
        if p.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"node {n} did not start:\n{text[-3000:]}")
        time.sleep(0.01)

def stop_node(n, p, d):
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=30)
    sh("ip", "netns", "exec", ns(n), BIN, "run", "--cleanup", "--config", os.path.join(d, "sipwall.toml"),
       "--socket", os.path.join(d, "sock"))

class Monitor:
    """`nft monitor` in a namespace: the first time each address is added to a ban set."""
    def __init__(self, n):
        self.seen, self.cv = {}, threading.Condition()
        self.p = subprocess.Popen(["ip", "netns", "exec", ns(n), "nft", "monitor", "elements"],
                                  stdout=subprocess.PIPE, text=True)
        procs.append(self.p)
        threading.Thread(target=self.read, daemon=True).start()
    def read(self):
        pat = re.compile(r"add element inet sipwall ban_addr[46] \{ ([0-9a-f:.]+)")
        for line in self.p.stdout:
            t = time.monotonic()
            m = pat.search(line)
            if m:
                with self.cv:
                    self.seen.setdefault(m.group(1), t)
                    self.cv.notify_all()
    def wait(self, addr, timeout=10.0):
        end = time.monotonic() + timeout
        with self.cv:
            while addr not in self.seen:
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self.cv.wait(left)
            return self.seen[addr]

def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]

try:
    up()
    redis = subprocess.Popen(["ip", "netns", "exec", HUB, "redis-server", "--bind", "192.0.2.1", "--port", "6379",
                              "--protected-mode", "no", "--save", "", "--appendonly", "no"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(redis)
    for _ in range(200):
        if redis_cli("PING", check=False, timeout=5).stdout.strip() == "PONG":
            break
        time.sleep(0.05)
    cpu = sh("nproc").stdout.strip()
    print(f"machine: {cpu} cores, load average {open('/proc/loadavg').read().split()[:3]}, binary {BIN}")

    # 1. propagation
    pa, da, _, _ = start_node("a", "sipwall")
    pb, db, _, _ = start_node("b", "sipwall")
    ma, mb = Monitor("a"), Monitor("b")
    time.sleep(0.5)
    local, fleet, missing = [], [], 0
    for i in range(BANS):
        addr = f"2001:db8:ff::{i + 1:x}"
        t0 = time.monotonic()
        r = sh(BIN, "ban", addr, "--for", "1h", "--socket", os.path.join(da, "sock"), check=False)
        ta, tb = ma.wait(addr), mb.wait(addr)
        if r.returncode != 0 or ta is None or tb is None:
            missing += 1
            continue
        local.append((ta - t0) * 1000)
        fleet.append((tb - ta) * 1000)
    print(f"\npropagation over {len(fleet)} bans ({missing} not seen within 10 s):")
    print(f"  baseline, `sipwall ban` on A -> A's kernel set: p50 {pct(local, 50):.2f} ms, p99 {pct(local, 99):.2f} ms")
    print(f"  fleet, A's kernel set -> B's kernel set:        p50 {pct(fleet, 50):.2f} ms, p99 {pct(fleet, 99):.2f} ms, max {max(fleet):.2f} ms")
    print(f"  ratio fleet/baseline: p50 {pct(fleet, 50) / pct(local, 50):.2f}, p99 {pct(fleet, 99) / pct(local, 99):.2f}")
    stop_node("a", pa, da)
    stop_node("b", pb, db)

    # 2. sync of SYNC active bans into a fresh node, against an empty fleet (baseline)
    now = int(time.time() * 1000)
    path = os.path.join(tmp, "state.resp")
    with open(path, "wb") as f:
        for i in range(SYNC):
            net = f"2001:db8:1:{i >> 16:x}::{i & 0xffff:x}/128"
            body = json.dumps({"op": "ban", "net": net, "since_ms": now, "until_ms": now + 3_600_000,
                               "rule": "signature.sipvicious-ua", "reason": "bench", "evidence": "",
                               "origin": "elsewhere"}, separators=(",", ":"))
            args = [b"HSET", b"big:bans", net.encode(), f"v1 - {body}".encode()]
            f.write(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
    with open(path, "rb") as f:
        sh("ip", "netns", "exec", HUB, "redis-cli", "-h", "192.0.2.1", "--pipe", stdin=f, timeout=300)
    print(f"\nfleet state: {redis_cli('HLEN', 'big:bans').stdout.strip()} active bans")
    pc, dc, base_s, _ = start_node("c", "empty")
    stop_node("c", pc, dc)
    pc, dc, big_s, text = start_node("c", "big", sync_timeout_ms=300_000)
    joined = re.search(r"(\d+) active fleet ban\(s\) read, (\d+) applied, in (\d+) ms", text)
    k = sh("ip", "netns", "exec", ns("c"), "nft", "-j", "list", "set", "inet", "sipwall", "ban_addr6", timeout=120)
    elems = sum(len(x.get("set", {}).get("elem", [])) for x in json.loads(k.stdout)["nftables"])
    print(f"sync of {SYNC} bans into a fresh node:")
    print(f"  baseline, start against an empty fleet: {base_s:.2f} s to running")
    print(f"  start against {SYNC} bans: {big_s:.2f} s to running (read+applied {joined.group(1)}/{joined.group(2)} in {joined.group(3)} ms), {elems} elements in its kernel set when it ran")
    print(f"  ratio: {big_s / base_s:.2f}")
    stop_node("c", pc, dc)
finally:
    down()
    shutil.rmtree(tmp, ignore_errors=True)
PY
exit
}
