// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]
//! Helpers shared by end-to-end tests that run real tools in network namespaces: running a
//! command inside a namespace under `timeout`, reading the kernel ban set, checking that no
//! sipwall rule is left, and counting the INVITEs a SIPp UAS logged with `-trace_msg`.
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ipnet::IpNet;

/// The workspace root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Effective uid 0 (read from /proc: no libc dependency).
pub fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// Panics with `hint` when a tool is missing from PATH.
pub fn require_tools(test: &str, tools: &[&str], hint: &str) {
    for tool in tools {
        let found = Command::new("sh").args(["-c", &format!("command -v {tool}")]).output();
        assert!(
            found.map(|o| o.status.success()).unwrap_or(false),
            "{test} needs `{tool}` on PATH ({hint})"
        );
    }
}

/// `ip netns exec NS timeout -s KILL SECS prog args...`
pub fn in_ns(ns: &str, secs: u64, prog: &str, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, "timeout", "-s", "KILL", &secs.to_string(), prog]).args(args);
    c
}

/// Run to completion: (success, stdout followed by stderr).
pub fn output(mut cmd: Command) -> (bool, String) {
    let out = cmd.stdin(Stdio::null()).output().expect("running a command");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The elements of `inet sipwall ban4` in namespace `ns` (addresses as /32, intervals as nets).
pub fn kernel_bans(ns: &str) -> Vec<IpNet> {
    kernel_set(ns, "ban4")
}

/// The elements of `inet sipwall ban6` in namespace `ns` (addresses as /128, intervals as nets).
pub fn kernel_bans6(ns: &str) -> Vec<IpNet> {
    kernel_set(ns, "ban6")
}

/// The address and prefix elements of set `set` of table `inet sipwall` in namespace `ns`.
pub fn kernel_set(ns: &str, set: &str) -> Vec<IpNet> {
    let (ok, out) = output(in_ns(ns, 10, "nft", &["-j", "list", "set", "inet", "sipwall", set]));
    assert!(ok, "listing the {set} set in {ns}: {out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut nets = Vec::new();
    for item in v["nftables"].as_array().unwrap() {
        for e in item["set"]["elem"].as_array().into_iter().flatten() {
            let val = if e.get("elem").is_some() { &e["elem"]["val"] } else { e };
            if let Some(s) = val.as_str() {
                nets.push(IpNet::from(s.parse::<IpAddr>().unwrap()));
            } else if let Some(p) = val.get("prefix") {
                nets.push(format!("{}/{}", p["addr"].as_str().unwrap(), p["len"]).parse().unwrap());
            }
        }
    }
    nets
}

/// Asserts that namespace `ns` holds no nft table and no iptables/ip6tables chain of sipwall.
pub fn no_rules_left(ns: &str) {
    let (ok, nft) = output(in_ns(ns, 10, "nft", &["list", "ruleset"]));
    assert!(ok, "nft list ruleset in {ns}: {nft}");
    assert!(!nft.contains("sipwall"), "nft rules left in {ns} after exit:\n{nft}");
    for tool in ["iptables-save", "ip6tables-save"] {
        let (_, saved) = output(in_ns(ns, 10, tool, &[]));
        assert!(!saved.contains("SIPWALL"), "{tool} in {ns}: rules left after exit:\n{saved}");
    }
}

/// INVITEs a SIPp `-trace_msg` log shows as received: (from sources whose message contains
/// `ghost`, from sources whose message contains `provider`).
pub fn invites_seen(trace: &Path, ghost: &str, provider: &str) -> (usize, usize) {
    let text = fs::read(trace).map(|b| String::from_utf8_lossy(&b).into_owned());
    let text = text.unwrap_or_default();
    let (mut from_ghost, mut from_provider) = (0, 0);
    for block in text.split("----------------------------------------------- ") {
        if !block.contains("message received") {
            continue;
        }
        let Some(msg) = block.split("bytes :").nth(1) else { continue };
        if !msg.trim_start().starts_with("INVITE ") {
            continue;
        }
        if msg.contains(ghost) {
            from_ghost += 1;
        } else if msg.contains(provider) {
            from_provider += 1;
        }
    }
    (from_ghost, from_provider)
}

/// Start the SIPp UAS of `tests/e2e/uas.xml` on port 5060 in namespace `ns` (killed by
/// `timeout` after 600 s at the latest), run from `dir`, with `extra` arguments (e.g.
/// `["-t", "t1"]` for TCP, or `-trace_msg -message_file FILE` to count what arrived).
pub fn start_sipp_uas(ns: &str, dir: &Path, extra: &[&str]) -> std::process::Child {
    start_sipp_uas_on(ns, "0.0.0.0", dir, extra)
}

/// [`start_sipp_uas`] bound to local address `ip` instead of 0.0.0.0: an IPv6 address makes
/// SIPp listen on IPv6 (it takes its address family from `-i`).
pub fn start_sipp_uas_on(ns: &str, ip: &str, dir: &Path, extra: &[&str]) -> std::process::Child {
    let scenario = repo().join("tests/e2e/uas.xml");
    let mut args = vec!["-sf", scenario.to_str().unwrap(), "-i", ip, "-p", "5060", "-nostdin"];
    args.extend_from_slice(extra);
    in_ns(ns, 600, "sipp", &args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting the SIPp UAS in {ns}: {e}"))
}

/// `-trace_msg -message_file TRACE`: SIPp logs every message, for [`invites_seen`].
pub fn trace_args(trace: &Path) -> [&str; 3] {
    ["-trace_msg", "-message_file", trace.to_str().unwrap()]
}

/// Bounded wait (10 s) until something in namespace `ns` listens on UDP port `port`.
pub fn wait_udp_listening(ns: &str, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, out) = output(in_ns(ns, 10, "ss", &["-Hlun", &format!("sport = :{port}")]));
        if out.contains(&format!(":{port}")) {
            return;
        }
        assert!(Instant::now() < deadline, "nothing listens on UDP {port} in {ns} after 10 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SIGTERM (lets `timeout` pass its KILL on to the tool, and sipwall remove its rules), then
/// SIGKILL if the process has not exited within 5 s. For drop guards: never panics.
pub fn terminate(c: &mut std::process::Child) {
    if matches!(c.try_wait(), Ok(Some(_))) {
        return;
    }
    let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if matches!(c.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = c.kill();
    let _ = c.wait();
}
