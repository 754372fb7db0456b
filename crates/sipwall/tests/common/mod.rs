// Each test binary uses its own subset of these helpers (and of the re-exports).
#![allow(dead_code, unused_imports)]
//! Helpers shared by end-to-end tests that run real tools in network namespaces: running a
//! command inside a namespace under `timeout`, reading the kernel ban set, checking that no
//! sipwall rule is left, and counting the INVITEs a SIPp UAS logged with `-trace_msg`.
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use sipwall_engine::Timestamp;
/// Effective uid 0.
pub use sipwall_netfilter::testing::is_root;

/// The workspace root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
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

/// Run `prog args...` on the host, killed after `secs` seconds: (success, stdout + stderr).
pub fn run_bounded(secs: u64, prog: &str, args: &[&str]) -> (bool, String) {
    let mut c = Command::new("timeout");
    c.args(["-s", "KILL", &secs.to_string(), prog]).args(args);
    output(c)
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The IPv4 bans in the kernel of namespace `ns`: the elements of the address set
/// `ban_addr4` (as /32) and of the range set `ban_net4` (as nets).
pub fn kernel_bans(ns: &str) -> Vec<IpNet> {
    let mut v = kernel_set(ns, "ban_addr4");
    v.extend(kernel_set(ns, "ban_net4"));
    v
}

/// The IPv6 bans in the kernel of namespace `ns`: `ban_addr6` (as /128) and `ban_net6`.
pub fn kernel_bans6(ns: &str) -> Vec<IpNet> {
    let mut v = kernel_set(ns, "ban_addr6");
    v.extend(kernel_set(ns, "ban_net6"));
    v
}

/// Number of elements in the four ban sets of `inet sipwall` in namespace `ns`.
pub fn kernel_ban_elements(ns: &str) -> usize {
    kernel_bans(ns).len() + kernel_bans6(ns).len()
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
            } else if let Some(r) = val.get("range").and_then(|r| r.as_array()) {
                // A segment that is no prefix: its first address stands for it.
                if let Some(a) = r.first().and_then(|a| a.as_str()) {
                    nets.push(IpNet::from(a.parse::<IpAddr>().unwrap()));
                }
            }
        }
    }
    nets
}

/// Asserts that namespace `ns` holds no nft table and no iptables/ip6tables chain of sipwall,
/// and no empty `ip`/`ip6 filter` table (what `sipwall run --cleanup` leaves).
pub fn no_rules_left(ns: &str) {
    let (ok, nft) = output(in_ns(ns, 10, "nft", &["list", "ruleset"]));
    assert!(ok, "nft list ruleset in {ns}: {nft}");
    assert!(!nft.contains("sipwall"), "nft rules left in {ns} after exit:\n{nft}");
    for tool in ["iptables-save", "ip6tables-save"] {
        let (_, saved) = output(in_ns(ns, 10, tool, &[]));
        assert!(!saved.contains("SIPWALL"), "{tool} in {ns}: rules left after exit:\n{saved}");
    }
    for family in ["ip", "ip6"] {
        let (_, t) = output(in_ns(ns, 10, "nft", &["-j", "list", "table", family, "filter"]));
        assert!(
            !t.contains("\"table\"") || t.contains("\"rule\""),
            "an empty {family} filter table is left in {ns}:\n{t}"
        );
    }
}

/// Asserts what a clean stop (SIGTERM) leaves in namespace `ns`: no queue rule (no nft queue
/// chain, no iptables/ip6tables SIPWALL chain, no empty `ip`/`ip6 filter` table), but the table
/// `inet sipwall` with its four ban sets and its ban-drop chain, so banned sources stay dropped
/// while no daemon runs.
pub fn only_bans_left(ns: &str) {
    queue_rules_gone_bans_kept(ns);
    // The iptables fallback's `ip`/`ip6 filter` tables go too once empty.
    for family in ["ip", "ip6"] {
        let (_, t) = output(in_ns(ns, 10, "nft", &["-j", "list", "table", family, "filter"]));
        assert!(
            !t.contains("\"table\"") || t.contains("\"rule\""),
            "an empty {family} filter table is left in {ns} after stop:\n{t}"
        );
    }
}

/// [`only_bans_left`] without the filter-table check: what `sipwall run --stop-queueing` leaves
/// after a killed run (it cannot know whether the `ip filter` tables were sipwall's, so it
/// keeps them; they hold no rule and accept by policy).
pub fn queue_rules_gone_bans_kept(ns: &str) {
    let (ok, nft) = output(in_ns(ns, 10, "nft", &["list", "chains", "inet"]));
    assert!(ok, "nft list chains in {ns}: {nft}");
    assert!(!nft.contains("chain queue_"), "nft queue chains left in {ns} after stop:\n{nft}");
    assert!(nft.contains("table inet sipwall"), "the ban table is gone after stop:\n{nft}");
    for tool in ["iptables-save", "ip6tables-save"] {
        let (_, saved) = output(in_ns(ns, 10, tool, &[]));
        assert!(
            !saved.contains("SIPWALL"),
            "{tool} in {ns}: queue rules left after stop:\n{saved}"
        );
    }
    for set in ["ban_addr4", "ban_net4", "ban_addr6", "ban_net6"] {
        let (ok, out) =
            output(in_ns(ns, 10, "nft", &["-t", "list", "set", "inet", "sipwall", set]));
        assert!(ok, "set {set} gone after stop in {ns}: {out}");
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

/// `sipwall run` inside a network namespace, with its files in one test directory: config
/// `sipwall.toml` (written by the test), state `state/`, control socket `control.sock`, and one
/// stderr log per start (`sipwall-N.log`). Dropping it ends the daemon ([`terminate`]).
pub struct Daemon {
    ns: String,
    dir: PathBuf,
    child: Option<std::process::Child>,
    runs: u32,
}

impl Daemon {
    /// Not started yet.
    pub fn new(ns: &str, dir: &Path) -> Daemon {
        Daemon { ns: ns.to_string(), dir: dir.to_path_buf(), child: None, runs: 0 }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join(format!("sipwall-{}.log", self.runs))
    }

    /// The log of the latest start.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Process id of the running daemon.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("daemon running").id()
    }

    /// Start it and wait (bounded, 20 s) until it logs that it runs; panics with the log if it
    /// exits or is not ready in time.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "sipwall is already running");
        self.runs += 1;
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns, env!("CARGO_BIN_EXE_sipwall"), "run", "--config"])
            .arg(self.dir.join("sipwall.toml"))
            .arg("--state")
            .arg(self.dir.join("state"))
            .arg("--socket")
            .arg(self.dir.join("control.sock"))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(self.log_path()).unwrap())
            .spawn()
            .expect("starting sipwall run");
        let child = self.child.insert(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = fs::read_to_string(self.dir.join(format!("sipwall-{}.log", self.runs)))
                .unwrap_or_default();
            if text.contains("sipwall running") {
                eprintln!("--- sipwall start-up log\n{text}");
                return;
            }
            if let Some(st) = child.try_wait().unwrap() {
                panic!("sipwall exited during start-up ({st}):\n{text}");
            }
            assert!(Instant::now() < deadline, "sipwall not ready after 20 s:\n{text}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM and wait (bounded, 15 s) for a clean exit; panics with the log otherwise.
    /// Returns how long the stop took.
    pub fn stop(&mut self) -> Duration {
        let t0 = Instant::now();
        let mut c = self.child.take().expect("daemon running");
        let st = Command::new("kill").args(["-TERM", &c.id().to_string()]).status().unwrap();
        assert!(st.success());
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                assert!(st.success(), "sipwall exited with {st}:\n{}", self.log());
                return t0.elapsed();
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                panic!("sipwall did not stop within 15 s of SIGTERM:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `sipwall run --cleanup` with this daemon's config and socket (bounded, 30 s); panics
    /// with its output unless it succeeds.
    pub fn cleanup(&self) {
        self.run_mode("--cleanup");
    }

    /// `sipwall run --stop-queueing` (what systemd's ExecStopPost runs), as [`Daemon::cleanup`].
    pub fn stop_queueing(&self) {
        self.run_mode("--stop-queueing");
    }

    fn run_mode(&self, flag: &str) {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns, "timeout", "-s", "KILL", "30"])
            .arg(env!("CARGO_BIN_EXE_sipwall"))
            .args(["run", flag, "--config"])
            .arg(self.dir.join("sipwall.toml"))
            .arg("--socket")
            .arg(self.dir.join("control.sock"))
            .env("RUST_LOG", "info");
        let (ok, out) = output(c);
        assert!(ok, "sipwall run {flag} failed:\n{out}");
    }

    /// SIGKILL: no chance to clean up (its rules stay, its store must cope).
    pub fn kill9(&mut self) {
        let mut c = self.child.take().expect("daemon running");
        c.kill().unwrap();
        c.wait().unwrap();
    }

    /// For drop guards: end it if it runs ([`terminate`]); never panics.
    pub fn terminate(&mut self) {
        if let Some(mut c) = self.child.take() {
            terminate(&mut c);
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// Run a topology script of `tests/e2e/` (`up` or `down`) with its environment (namespace
/// prefix, IPv6), bounded by `timeout -s KILL 60`. True on success.
pub fn topology(script: &str, env: &[(&str, &str)], arg: &str) -> bool {
    Command::new("timeout")
        .args(["-s", "KILL", "60", "bash"])
        .arg(repo().join("tests/e2e").join(script))
        .arg(arg)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// One end-to-end test's world: a temp dir, the daemon, the tools the test started, and the
/// namespaces of a topology script. All of it ends on drop, even when the test fails: the
/// daemon first (so it removes its queue rules), then the tools, then the namespaces (which takes
/// whatever is left inside them).
pub struct Stage {
    /// Config, state, logs and traces.
    pub dir: tempfile::TempDir,
    /// `sipwall run` in the protected namespace.
    pub daemon: Daemon,
    /// Tools started for the whole test (SIPp UAS...), ended on drop.
    pub tools: Vec<std::process::Child>,
    script: &'static str,
    env: Vec<(&'static str, &'static str)>,
}

impl Stage {
    /// A stage for `script` with `env`, the daemon to run in `daemon_ns`. Nothing is created
    /// until [`Stage::up`].
    pub fn new(
        script: &'static str,
        env: &[(&'static str, &'static str)],
        daemon_ns: &str,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Stage {
            daemon: Daemon::new(daemon_ns, dir.path()),
            dir,
            tools: Vec::new(),
            script,
            env: env.to_vec(),
        }
    }

    /// Build the namespaces (removing leftovers of an earlier run first).
    pub fn up(&self) -> bool {
        topology(self.script, &self.env, "up")
    }

    /// A file in the test's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        self.daemon.terminate();
        for c in &mut self.tools {
            terminate(c);
        }
        if !topology(self.script, &self.env, "down") {
            eprintln!("tests/e2e/{} down failed: check `ip netns list`", self.script);
        }
    }
}

/// `calls` SIPp calls (built-in UAC scenario, 20 per second, to extension 2000) from `src_ip`
/// in namespace `ns` to `target`, over UDP or with `-t t1` over TCP; panics with the tail of
/// SIPp's output unless every call completes. Local port 5062 (UDP) or 5066 (TCP).
pub fn sipp_calls(ns: &str, target: &str, src_ip: &str, calls: u32, tcp: bool) {
    let calls = calls.to_string();
    let mut args = vec!["-sn", "uac", target, "-i", src_ip, "-s", "2000", "-m", &calls];
    args.extend(if tcp { ["-t", "t1", "-p", "5066"] } else { ["-t", "u1", "-p", "5062"] });
    args.extend(["-r", "20", "-timeout", "40s", "-timeout_error"]);
    args.extend(["-recv_timeout", "5000", "-nostdin"]);
    let (ok, out) = output(in_ns(ns, 60, "sipp", &args));
    let how = if tcp { "TCP" } else { "UDP" };
    assert!(ok, "{calls} calls {src_ip} -> {target} over {how} failed:\n{}", tail(&out, 40));
}

/// Three OPTIONS keep-alives (tests/e2e/options.xml) from `src_ip` in `ns` to `target`, local
/// port 5064; panics unless all are answered.
pub fn sipp_options(ns: &str, target: &str, src_ip: &str) {
    let scenario = repo().join("tests/e2e/options.xml");
    let args = [
        "-sf",
        scenario.to_str().unwrap(),
        target,
        "-i",
        src_ip,
        "-p",
        "5064",
        "-s",
        "2000",
        "-m",
        "3",
        "-timeout",
        "20s",
        "-timeout_error",
        "-nostdin",
    ];
    let (ok, out) = output(in_ns(ns, 30, "sipp", &args));
    assert!(ok, "OPTIONS keep-alives {src_ip} -> {target} failed:\n{}", tail(&out, 40));
}

/// The wall clock as the engine and the store count time (to ask the store what is active).
pub fn wall_now() -> Timestamp {
    Timestamp(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap())
}
