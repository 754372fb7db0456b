//! Bans shared by a fleet, end to end: a real `redis-server` and four `sipwall run` nodes,
//! each in its own network namespace, joined by one bridge (documentation addresses only):
//!
//! ```text
//!   swf-hub: bridge swf-br 192.0.2.1/24, redis-server on 192.0.2.1:6379 (append-only file)
//!   swf-n1..swf-n4: 192.0.2.11..14/24     swf-scan: 192.0.2.99/24 (scanner), 192.0.2.98/24
//! ```
//!
//! What is checked: a scanner banned on node 1 has its FIRST packet to nodes 2 and 3 dropped
//! in the kernel (their queues never see it; a packet from an unbanned neighbour is queued);
//! a manual unban on node 3 reaches nodes 1 and 2; a fleet ban covering node 3's trusted
//! network is refused there; a forged entry written without the HMAC key is ignored; with
//! redis-server killed every node keeps protecting and the bans made meanwhile converge once
//! it is back, and the reconnect's resync lifts a received ban the state lost meanwhile (not
//! the node's own); a node started later has every active ban in its kernel set before it opens
//! its queue. Needs root, `redis-server` and `redis-cli`; FAILS with a clear message
//! otherwise. Every wait is bounded; namespaces, daemons and the server go on drop. Run it
//! under `flock /tmp/sipwall-netns.lock`.
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ipnet::IpNet;

mod common;
use common::{in_ns, is_root, kernel_bans, output, require_tools, run_bounded, Daemon};

const HUB: &str = "swf-hub";
const SCAN: &str = "swf-scan";
const NODES: [&str; 4] = ["swf-n1", "swf-n2", "swf-n3", "swf-n4"];
const SCANNER: &str = "192.0.2.99";
const NEIGHBOUR: &str = "192.0.2.98";
const KEY: &str = "fleet-e2e-shared-key-0123456789";

/// A SIPVicious svmap OPTIONS as it is sent (User-Agent friendly-scanner).
const SVMAP: &str = "OPTIONS sip:100@192.0.2.11 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.99:5060;branch=z9hG4bK-2146373830;rport\r\nMax-Forwards: 70\r\nTo: \"sipvicious\"<sip:100@1.1.1.1>\r\nFrom: \"sipvicious\"<sip:100@1.1.1.1>;tag=6366636462393464303133633401313330333232373536\r\nUser-Agent: friendly-scanner\r\nCall-ID: 1234567890\r\nContact: sip:100@192.0.2.99:5060\r\nCSeq: 1 OPTIONS\r\nAccept: application/sdp\r\nContent-Length: 0\r\n\r\n";

/// A phone's keep-alive OPTIONS (accepted from an untrusted source).
const KEEPALIVE: &str = "OPTIONS sip:192.0.2.12 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.98:5060;branch=z9hG4bK776asdhds\r\nMax-Forwards: 70\r\nTo: <sip:192.0.2.12>\r\nFrom: <sip:2001@192.0.2.98>;tag=1928301774\r\nCall-ID: a84b4c76e66710@192.0.2.98\r\nCSeq: 63104 OPTIONS\r\nUser-Agent: Yealink SIP-T46S 66.86.0.15\r\nContent-Length: 0\r\n\r\n";

fn ip(args: &[&str]) {
    let (ok, out) = run_bounded(20, "ip", args);
    assert!(ok, "ip {args:?}: {out}");
}

/// The namespaces, the bridge and the links; all removed on drop (even after a failure).
struct Net;

impl Net {
    fn up() -> Net {
        Net::down();
        let net = Net;
        ip(&["netns", "add", HUB]);
        ip(&["-n", HUB, "link", "add", "swf-br", "type", "bridge"]);
        ip(&["-n", HUB, "addr", "add", "192.0.2.1/24", "dev", "swf-br"]);
        ip(&["-n", HUB, "link", "set", "swf-br", "up"]);
        ip(&["-n", HUB, "link", "set", "lo", "up"]);
        let mut ends: Vec<(&str, Vec<&str>)> =
            NODES.iter().enumerate().map(|(i, n)| (*n, vec![ADDRS[i]])).collect();
        ends.push((SCAN, vec!["192.0.2.99/24", "192.0.2.98/24"]));
        for (i, (ns, addrs)) in ends.iter().enumerate() {
            let (a, b) = (format!("swf-e{i}a"), format!("swf-e{i}b"));
            ip(&["netns", "add", ns]);
            ip(&["link", "add", &a, "netns", ns, "type", "veth", "peer", "name", &b, "netns", HUB]);
            ip(&["-n", HUB, "link", "set", &b, "master", "swf-br"]);
            ip(&["-n", HUB, "link", "set", &b, "up"]);
            for addr in addrs {
                ip(&["-n", ns, "addr", "add", addr, "dev", &a]);
            }
            ip(&["-n", ns, "link", "set", &a, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        // bounded: every link up at both ends (the bridge has no STP: it forwards at once)
        let deadline = Instant::now() + Duration::from_secs(15);
        for (i, (end, _)) in ends.iter().enumerate() {
            for (ns, dev) in [(*end, format!("swf-e{i}a")), (HUB, format!("swf-e{i}b"))] {
                loop {
                    let (_, out) =
                        run_bounded(10, "ip", &["-n", ns, "-br", "link", "show", "dev", &dev]);
                    if out.contains(" UP ") {
                        break;
                    }
                    assert!(Instant::now() < deadline, "{dev} in {ns} not up after 15 s: {out}");
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        net
    }
    fn down() {
        for ns in NODES.iter().chain([&SCAN, &HUB]) {
            let _ = run_bounded(20, "ip", &["netns", "del", ns]);
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        Net::down();
    }
}

const ADDRS: [&str; 4] = ["192.0.2.11/24", "192.0.2.12/24", "192.0.2.13/24", "192.0.2.14/24"];

/// redis-server in the hub namespace on 192.0.2.1:6379, with an append-only file so a
/// restart keeps the state. Killed on drop.
struct Redis {
    child: Option<Child>,
    dir: PathBuf,
}

impl Redis {
    fn start(dir: &Path) -> Redis {
        let mut r = Redis { child: None, dir: dir.to_path_buf() };
        r.spawn();
        r
    }
    fn spawn(&mut self) {
        fs::create_dir_all(&self.dir).unwrap();
        // `ip netns exec` execs redis-server itself: killing the child kills the server.
        let child = Command::new("ip")
            .args(["netns", "exec", HUB, "redis-server", "--bind", "192.0.2.1", "--port", "6379"])
            .args(["--protected-mode", "no", "--save", "", "--appendonly", "yes", "--dir"])
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while redis_cli(&["PING"]).trim() != "PONG" {
            assert!(Instant::now() < deadline, "redis-server not answering after 10 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn redis_cli(args: &[&str]) -> String {
    let mut a = vec!["-h", "192.0.2.1", "-p", "6379"];
    a.extend_from_slice(args);
    output(in_ns(HUB, 10, "redis-cli", &a)).1
}

/// The node's config: fleet with the shared key; node 3 trusts 198.51.100.0/24.
fn write_config(dir: &Path, node: usize) {
    fs::create_dir_all(dir).unwrap();
    let key = dir.join("fleet.key");
    fs::write(&key, format!("{KEY}\n")).unwrap();
    fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let trusted = if node == 3 { "[trusted]\nnetworks = [\"198.51.100.0/24\"]\n\n" } else { "" };
    let config = format!(
        "{trusted}[bans]\nduration_secs = 1800\n\n[bans.aggregate]\nenabled = false\n\n\
         [enforce]\nports = [\"udp:5060\"]\n\n\
         [fleet]\nredis_url = \"redis://192.0.2.1:6379/0\"\nnode_id = \"node{node}\"\n\
         hmac_key_file = \"fleet.key\"\nsync_timeout_ms = 5000\ntimeout_ms = 1000\n"
    );
    fs::write(dir.join("sipwall.toml"), config).unwrap();
}

/// `sipwall ARGS --socket` of node `dir` (bounded): (success, output).
fn cli(dir: &Path, args: &[&str]) -> (bool, String) {
    let sock = dir.join("control.sock");
    let mut c = Command::new("timeout");
    c.args(["-s", "KILL", "20"]).arg(env!("CARGO_BIN_EXE_sipwall")).args(args);
    c.arg("--socket").arg(sock);
    output(c)
}

fn status(dir: &Path) -> serde_json::Value {
    let (ok, out) = cli(dir, &["status", "--format", "json"]);
    assert!(ok, "sipwall status: {out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("status JSON: {e}: {out}"))
}

/// Packets the node's queues judged since start.
fn queued(dir: &Path) -> u64 {
    status(dir)["queues"].as_array().unwrap().iter().map(|q| q["packets"].as_u64().unwrap()).sum()
}

/// One UDP datagram from `src` (in the scanner namespace) to `dst`:5060.
fn send(src: &str, dst: &str, payload: &str) {
    let payload = payload.replace("192.0.2.11", dst);
    let script = "import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
                  s.bind((sys.argv[1],5060))\ns.sendto(sys.argv[3].encode(),(sys.argv[2],5060))\n";
    let (ok, out) = output(in_ns(SCAN, 10, "python3", &["-c", script, src, dst, &payload]));
    assert!(ok, "sending from {src} to {dst}: {out}");
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// Bounded wait (`secs`) until `cond` holds; panics with `what` and the node logs otherwise.
fn wait_for(secs: u64, what: &str, logs: &[&Daemon], mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        if Instant::now() > deadline {
            let all: Vec<String> = logs.iter().map(|d| common::tail(&d.log(), 30)).collect();
            panic!("{what}: not within {secs} s\n{}", all.join("\n-----\n"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
#[ignore = "needs root, network namespaces and redis-server: run by scripts/test.sh"]
fn a_fleet_of_four_nodes_shares_bans_through_redis() {
    assert!(
        is_root(),
        "the fleet test needs root: it creates network namespaces (swf-*), nftables rules and \
         runs redis-server and four sipwall daemons. Run: sudo -E cargo test -p sipwall --test fleet"
    );
    require_tools(
        "the fleet test",
        &["redis-server", "redis-cli", "nft", "python3"],
        "scripts/install-test-deps.sh installs them",
    );
    let tmp = tempfile::tempdir().unwrap();
    let _net = Net::up();
    let mut redis = Redis::start(&tmp.path().join("redis"));
    let dirs: Vec<PathBuf> = (1..=4).map(|i| tmp.path().join(format!("node{i}"))).collect();
    let mut nodes: Vec<Daemon> = Vec::new();
    for (i, d) in dirs.iter().enumerate() {
        write_config(d, i + 1);
        nodes.push(Daemon::new(NODES[i], d));
    }
    for n in nodes.iter_mut().take(3) {
        n.start();
    }
    let [n1, n2, n3] = [&dirs[0], &dirs[1], &dirs[2]];
    for d in [n1, n2, n3] {
        assert_eq!(status(d)["fleet"]["connected"], true, "{}", d.display());
        assert_eq!(queued(d), 0);
    }
    let logs: Vec<&Daemon> = nodes.iter().collect();
    let scanner = net(&format!("{SCANNER}/32"));

    // 1. The scanner is caught by node 1; its ban reaches the kernel sets of nodes 2 and 3,
    //    and its FIRST packet to each of them is dropped before their queue.
    send(SCANNER, "192.0.2.11", SVMAP);
    wait_for(10, "scanner banned on node 1", &logs, || kernel_bans(NODES[0]).contains(&scanner));
    for ns in [NODES[1], NODES[2]] {
        wait_for(10, &format!("scanner's ban in {ns}'s kernel set"), &logs, || {
            kernel_bans(ns).contains(&scanner)
        });
    }
    for (dir, addr) in [(n2, "192.0.2.12"), (n3, "192.0.2.13")] {
        send(SCANNER, addr, SVMAP);
        // an unbanned neighbour's packet, sent after it, is queued: the counter works
        send(NEIGHBOUR, addr, KEEPALIVE);
        wait_for(10, "the neighbour's keep-alive queued", &logs, || queued(dir) >= 1);
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(queued(dir), 1, "the scanner's first packet reached the queue of {addr}");
    }
    let b = status(n2);
    assert!(b["fleet"]["received"].as_u64().unwrap() >= 1, "{b}");
    let (_, bans) = cli(n2, &["bans", "--ip", SCANNER]);
    assert!(bans.contains("fleet node node1"), "the origin node is not named:\n{bans}");

    // 2. A manual unban on node 3 reaches nodes 1 and 2.
    let (ok, out) = cli(n3, &["unban", &scanner.to_string()]);
    assert!(ok, "unban on node 3: {out}");
    for ns in [NODES[0], NODES[1], NODES[2]] {
        wait_for(10, &format!("unban reaches {ns}"), &logs, || !kernel_bans(ns).contains(&scanner));
    }

    // 3. A fleet ban covering node 3's trusted network is refused there, applied elsewhere.
    let provider = net("198.51.100.0/24");
    let (ok, out) = cli(n1, &["ban", "198.51.100.0/24", "--for", "1h", "--reason", "test"]);
    assert!(ok, "ban on node 1: {out}");
    wait_for(10, "the range ban on node 2", &logs, || kernel_bans(NODES[1]).contains(&provider));
    wait_for(10, "node 3 refusing the range ban", &logs, || {
        status(n3)["fleet"]["refused_local"].as_u64().unwrap() >= 1
    });
    assert!(!kernel_bans(NODES[2]).contains(&provider), "node 3 banned its trusted network");
    assert!(nodes[2].log().contains("refused here (local policy wins)"), "{}", nodes[2].log());

    // 4. A forged entry (written without the key) is ignored; a genuine one after it arrives.
    let forged = "v1 - {\"op\":\"ban\",\"net\":\"203.0.113.66/32\",\"since_ms\":1,\
                  \"until_ms\":99999999999999,\"rule\":\"manual\",\"reason\":\"forged\",\
                  \"evidence\":\"\",\"origin\":\"node1\"}";
    redis_cli(&["XADD", "sipwall:changes", "*", "m", forged]);
    redis_cli(&["HSET", "sipwall:bans", "203.0.113.66/32", forged]);
    let (ok, out) = cli(n1, &["ban", "203.0.113.77", "--for", "1h"]);
    assert!(ok, "ban on node 1: {out}");
    let genuine = net("203.0.113.77/32");
    wait_for(10, "the genuine ban on node 2", &logs, || kernel_bans(NODES[1]).contains(&genuine));
    for (ns, dir) in [(NODES[1], n2), (NODES[2], n3)] {
        assert!(!kernel_bans(ns).contains(&net("203.0.113.66/32")), "forged ban applied in {ns}");
        assert!(status(dir)["fleet"]["rejected_signature"].as_u64().unwrap() >= 1);
    }

    // A ban lifted from the state with no change left in the stream (as when the stream was
    // trimmed past what the nodes read): at the reconnect below they cannot resume from the
    // stream, and their resync must lift it on the nodes that received it, and keep it on
    // node 1, whose own ban it is.
    redis_cli(&["HDEL", "sipwall:bans", "203.0.113.77/32"]);
    redis_cli(&["XTRIM", "sipwall:changes", "MAXLEN", "0"]);

    // 5. Redis goes away: every node keeps protecting; bans made meanwhile converge later.
    redis.kill();
    for d in [n1, n2, n3] {
        wait_for(15, "the outage noticed", &logs, || status(d)["fleet"]["connected"] == false);
    }
    send(SCANNER, "192.0.2.12", SVMAP); // node 2 catches the scanner on its own
    wait_for(10, "node 2 banning locally", &logs, || kernel_bans(NODES[1]).contains(&scanner));
    let (a, b) = (net("203.0.113.10/32"), net("203.0.113.20/32"));
    assert!(cli(n1, &["ban", "203.0.113.10", "--for", "1h"]).0);
    assert!(cli(n2, &["ban", "203.0.113.20", "--for", "1h"]).0);
    assert!(status(n1)["fleet"]["queued"].as_u64().unwrap() >= 1);
    redis.spawn();
    for (ns, want) in
        [(NODES[0], vec![b, scanner]), (NODES[1], vec![a]), (NODES[2], vec![a, b, scanner])]
    {
        wait_for(30, &format!("outage bans converging in {ns}"), &logs, || {
            let k = kernel_bans(ns);
            want.iter().all(|n| k.contains(n))
        });
    }
    for ns in [NODES[1], NODES[2]] {
        wait_for(30, &format!("the resync lifting the stale ban in {ns}"), &logs, || {
            !kernel_bans(ns).contains(&genuine)
        });
    }
    assert!(kernel_bans(NODES[0]).contains(&genuine), "a resync lifted node 1's own ban");
    assert!(nodes[1].log().contains("resync lifted 1 received ban"), "{}", nodes[1].log());

    // 6. A node started now has every active ban in its kernel set before its queue opens.
    nodes[3].start();
    let log = nodes[3].log();
    let joined = log.find("fleet: node node4 joined").expect("no join line");
    let bound = log.find("queue 0 bound").expect("no queue line");
    assert!(joined < bound, "the queue opened before the fleet sync:\n{log}");
    let k = kernel_bans(NODES[3]);
    for n in [scanner, provider, a, b] {
        assert!(k.contains(&n), "{n} missing in the late node's kernel set: {k:?}\n{log}");
    }
    assert!(!k.contains(&genuine), "the late node took a ban the state no longer holds");
    assert!(!k.contains(&net("203.0.113.66/32")), "the late node took the forged ban");
    for n in &mut nodes {
        n.stop();
    }
}
