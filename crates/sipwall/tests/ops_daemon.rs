//! The operator surface against the real daemon: `sipwall run` in a fresh network namespace
//! per test (`swcc-ops1..3`), its state and control socket in a temporary directory, the
//! client commands run from outside the namespace (a pathname Unix socket works across
//! network namespaces), the kernel ban set read with `nft` in the namespace.
//! * a client trickling its request one byte at a time does not delay a concurrent
//!   `sipwall ban` (before: it held the socket for a minute and the CLI failed with EAGAIN);
//! * a corrupt `sipwall.db` does not stop the start: the daemon protects with an in-memory
//!   store (a scanner is banned in the kernel), says so in the log and in `sipwall bans`, and
//!   leaves the file as it was (before: the daemon refused to start, the host unprotected);
//! * `run --cleanup` removes a stale control socket (before: left behind).
//!
//! Needs root, `nft` and `sipp`; FAILS with a clear message otherwise. Every command runs
//! under `timeout`, every wait is bounded, and a drop guard kills the daemon and deletes the
//! namespace even when an assertion fails.
use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{in_ns, is_root, kernel_bans, output, require_tools, run_bounded, tail, Daemon};

const BIN: &str = env!("CARGO_BIN_EXE_sipwall");
const CONFIG: &str = "[trusted]\nnetworks = [\"198.51.100.0/24\"]\n\n[enforce]\nmode = \"host\"\n";

/// The scanner's namespace next to `ns`.
fn scanner_ns(ns: &str) -> String {
    format!("{ns}-scan")
}

fn ns_del(ns: &str) {
    let _ = Command::new("ip").args(["netns", "del", ns]).stderr(Stdio::null()).status();
}

/// A namespace with `lo` up (and the test's addresses on it), a config, a daemon not started.
struct Env {
    ns: &'static str,
    dir: tempfile::TempDir,
    daemon: Daemon,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.daemon.terminate();
        ns_del(self.ns); // takes every rule in it
        ns_del(&scanner_ns(self.ns));
    }
}

impl Env {
    fn new(ns: &'static str, test: &str) -> Env {
        assert!(
            is_root(),
            "{test} needs root: it creates the network namespace {ns} and runs `sipwall run` \
             (NFQUEUE + nftables) in it; run `cargo test -p sipwall --test ops_daemon -- \
             --include-ignored` as root"
        );
        require_tools(test, &["nft", "sipp"], "apt-get install nftables sip-tester");
        let sns = scanner_ns(ns);
        ns_del(ns); // leftovers of an interrupted run
        ns_del(&sns);
        let dir = tempfile::tempdir().unwrap();
        let env = Env { ns, daemon: Daemon::new(ns, dir.path()), dir };
        let (host_if, scanner_if) = (format!("{ns}h"), format!("{ns}s"));
        for args in [
            vec!["netns", "add", ns],
            vec!["netns", "add", &sns],
            vec!["-n", ns, "link", "set", "lo", "up"],
            // the protected host on lo; the scanner in its own namespace behind a veth (the
            // host's own addresses are never banned, so it cannot scan from one of them)
            vec!["-n", ns, "addr", "add", "192.0.2.1/32", "dev", "lo"],
            vec![
                "-n",
                ns,
                "link",
                "add",
                &host_if,
                "type",
                "veth",
                "peer",
                "name",
                &scanner_if,
                "netns",
                &sns,
            ],
            vec!["-n", ns, "addr", "add", "203.0.113.1/24", "dev", &host_if],
            vec!["-n", ns, "link", "set", &host_if, "up"],
            vec!["-n", &sns, "addr", "add", "203.0.113.5/24", "dev", &scanner_if],
            vec!["-n", &sns, "link", "set", &scanner_if, "up"],
            vec!["-n", &sns, "route", "add", "default", "via", "203.0.113.1"],
        ] {
            let (ok, out) = run_bounded(30, "ip", &args);
            assert!(ok, "ip {args:?}: {out}");
        }
        fs::write(env.path("sipwall.toml"), CONFIG).unwrap();
        env
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn socket(&self) -> String {
        self.path("control.sock").to_str().unwrap().to_string()
    }

    fn cli(&self, args: &[&str]) -> (bool, String) {
        let mut a: Vec<&str> = args.to_vec();
        let sock = self.socket();
        a.extend(["--socket", &sock]);
        run_bounded(30, BIN, &a)
    }

    /// Wait (bounded, 15 s) until `net` is in the kernel ban set.
    fn wait_banned(&self, net: &str) {
        let want: ipnet::IpNet = net.parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let set = kernel_bans(self.ns);
            if set.contains(&want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{net} not in the kernel ban set after 15 s: {set:?}\n{}",
                self.daemon.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
#[ignore = "needs root, network namespaces and nft: run by scripts/test.sh"]
fn a_trickling_client_does_not_delay_a_concurrent_ban() {
    let mut env = Env::new("swcc-ops1", "a_trickling_client_does_not_delay_a_concurrent_ban");
    env.daemon.start();
    let trickler = std::os::unix::net::UnixStream::connect(env.socket()).unwrap();
    let t = trickler.try_clone().unwrap();
    // One byte every 100 ms of a request that never ends, for up to 20 s: longer than the
    // CLI's 15 s wait, and no single read ever waits 2 s.
    let writer = std::thread::spawn(move || {
        use std::io::Write as _;
        let mut sent = 0u32;
        for b in br#"{"cmd":"ban","net":"#.iter().cycle().take(200) {
            if (&t).write_all(&[*b]).is_err() {
                break;
            }
            sent += 1;
            std::thread::sleep(Duration::from_millis(100));
        }
        sent
    });
    std::thread::sleep(Duration::from_millis(300)); // the trickler is being served
    let (ok, out) = env.cli(&["ban", "203.0.113.9", "--for", "10m", "--reason", "concurrent"]);
    assert!(ok, "sipwall ban beside a trickling client failed:\n{out}\n{}", env.daemon.log());
    assert!(out.contains("banned 203.0.113.9/32"), "{out}");
    env.wait_banned("203.0.113.9/32");
    // the ban answered is durable: the listing says so
    let (ok, json) = env.cli(&["bans", "--format", "json"]);
    assert!(ok, "{json}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["bans"][0]["net"], "203.0.113.9/32");
    assert_eq!(v["bans"][0]["durable"], true, "{json}");
    assert!(v.get("store").is_none(), "{json}");
    // the trickler was cut off by its request deadline, not served for 20 s
    let sent = writer.join().unwrap();
    assert!(sent < 200, "the trickling client was never cut off");
    env.daemon.stop();
}

/// One OPTIONS with `User-Agent: friendly-scanner` from 203.0.113.5 to the host's 5060.
fn scan_once(env: &Env) {
    let scenario = env.path("scanner.xml");
    fs::write(
        &scenario,
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="one scanner OPTIONS">
  <send>
    <![CDATA[
      OPTIONS sip:100@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "sipvicious"<sip:100@1.1.1.1>;tag=[pid]ghost[call_number]
      To: "sipvicious"<sip:100@1.1.1.1>
      Call-ID: [call_id]
      CSeq: 1 OPTIONS
      Contact: <sip:100@[local_ip]:[local_port]>
      Max-Forwards: 70
      User-Agent: friendly-scanner
      Accept: application/sdp
      Content-Length: 0

    ]]>
  </send>
</scenario>
"#,
    )
    .unwrap();
    let args = [
        "-sf",
        scenario.to_str().unwrap(),
        "192.0.2.1:5060",
        "-i",
        "203.0.113.5",
        "-p",
        "5070",
        "-m",
        "1",
        "-timeout",
        "10s",
        "-nostdin",
    ];
    let (ok, out) = output(in_ns(&scanner_ns(env.ns), 20, "sipp", &args));
    assert!(ok, "sipp scanner OPTIONS failed:\n{}", tail(&out, 30));
}

#[test]
#[ignore = "needs root, network namespaces, nft and sipp: run by scripts/test.sh"]
fn a_corrupt_store_still_protects_loudly_and_is_left_untouched() {
    let mut env = Env::new("swcc-ops2", "a_corrupt_store_still_protects_loudly");
    fs::create_dir_all(env.path("state")).unwrap();
    let db = env.path("state/sipwall.db");
    let garbage: Vec<u8> = (0..16_384u32).map(|i| (i * 31 % 253) as u8).collect();
    fs::write(&db, &garbage).unwrap();
    env.daemon.start(); // before: "opening the store ...: opening store ..." and exit 2
    let log = env.daemon.log();
    assert!(log.contains("STORE UNAVAILABLE") && log.contains(&db.display().to_string()), "{log}");
    assert!(!log.contains("opening the store"), "the old doubled message:\n{log}");
    scan_once(&env);
    env.wait_banned("203.0.113.5/32");
    let (ok, list) = env.cli(&["bans"]);
    assert!(ok, "{list}");
    assert!(
        list.lines().next().unwrap_or("").starts_with("store: unavailable (in memory)"),
        "{list}"
    );
    assert!(
        list.lines().any(|l| l.starts_with("203.0.113.5/32") && l.contains(" pending ")),
        "the ban is not marked pending (there is no store):\n{list}"
    );
    let (ok, json) = env.cli(&["bans", "--format", "json"]);
    assert!(ok, "{json}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(v["store"].as_str().unwrap_or("").starts_with("unavailable (in memory)"), "{json}");
    assert_eq!(v["bans"][0]["durable"], false, "{json}");
    env.daemon.stop();
    assert_eq!(fs::read(&db).unwrap(), garbage, "the corrupt store was changed");
}

#[test]
#[ignore = "needs root, network namespaces and nft: run by scripts/test.sh"]
fn cleanup_removes_a_stale_control_socket() {
    let env = Env::new("swcc-ops3", "cleanup_removes_a_stale_control_socket");
    let sock = env.socket();
    // a killed daemon's socket: the file stays, nobody listens
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(fs::symlink_metadata(&sock).is_ok());
    let cfg = env.path("sipwall.toml");
    let (ok, out) = run_bounded(
        30,
        "ip",
        &[
            "netns",
            "exec",
            env.ns,
            BIN,
            "run",
            "--cleanup",
            "--config",
            cfg.to_str().unwrap(),
            "--socket",
            &sock,
        ],
    );
    assert!(ok, "run --cleanup failed:\n{out}");
    assert!(fs::symlink_metadata(&sock).is_err(), "run --cleanup left the stale socket:\n{out}");
    assert!(out.contains("removed stale control socket"), "{out}");
}
