//! End-to-end test of `sipwall run` in router mode (`[enforce] mode = "router"`: the FORWARD
//! hook, "filter traffic on a port forward") with real tools in network namespaces (see
//! `tests/e2e/router-topology.sh`): a SIPp phone behind a Linux router running sipwall, a
//! trusted SIPp provider calling the phone through the router, and SIPVicious svmap scanning
//! the phone from the attacker namespace. Needs root; FAILS with a clear message otherwise.
//!
//! Every external command runs under `timeout`, every wait is bounded; the processes it started
//! (by PID) and the namespaces are removed by a drop guard even when an assertion fails.
mod common;

use std::fs;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    in_ns, invites_seen, is_root, kernel_bans, no_rules_left, output, repo, start_sipp_uas, tail,
    trace_args,
};
use ipnet::IpNet;

const ROUTER: &str = "swr-router";
const PROVIDER: &str = "swr-provider";
const ATTACKER: &str = "swr-attacker";
const PHONE: &str = "swr-phone";
const ATTACKER_IP: &str = "203.0.113.10";
const PROVIDER_IP: &str = "198.51.100.20";
const PHONE_SIP: &str = "192.0.2.10:5060";

fn topology(arg: &str) -> bool {
    Command::new("timeout")
        .args(["-s", "KILL", "60", "bash"])
        .arg(repo().join("tests/e2e/router-topology.sh"))
        .arg(arg)
        .env("SWR_PREFIX", "swr-")
        .stdin(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// SIGTERM (lets `timeout` pass its KILL on to the tool, and sipwall remove its rules), then
/// SIGKILL if the process has not exited within 5 s.
fn terminate(c: &mut Child) {
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

struct Env {
    dir: tempfile::TempDir,
    uas: Option<Child>,
    daemon: Option<Child>,
}

impl Drop for Env {
    fn drop(&mut self) {
        for c in [self.daemon.as_mut(), self.uas.as_mut()].into_iter().flatten() {
            terminate(c);
        }
        // Deleting the namespaces removes every rule inside them and ends what still runs there.
        if !topology("down") {
            eprintln!("tests/e2e/router-topology.sh down failed: check `ip netns list`");
        }
    }
}

impl Env {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn daemon_log(&self) -> String {
        fs::read_to_string(self.path("sipwall.log")).unwrap_or_default()
    }

    fn start_daemon(&mut self) {
        let log = self.path("sipwall.log");
        let child = Command::new("ip")
            .args(["netns", "exec", ROUTER, env!("CARGO_BIN_EXE_sipwall"), "run", "--config"])
            .arg(self.path("sipwall.toml"))
            .arg("--state")
            .arg(self.path("state"))
            .arg("--socket")
            .arg(self.path("control.sock"))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting sipwall");
        self.daemon = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = self.daemon_log();
            if text.contains("sipwall running") {
                eprintln!("--- sipwall start-up log\n{text}");
                return;
            }
            if let Some(st) = self.daemon.as_mut().unwrap().try_wait().unwrap() {
                panic!("sipwall exited during start-up ({st}):\n{text}");
            }
            assert!(Instant::now() < deadline, "sipwall not ready after 20 s:\n{text}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM and wait (bounded) for a clean exit.
    fn stop_daemon(&mut self) {
        let mut c = self.daemon.take().expect("daemon running");
        let st = Command::new("kill").args(["-TERM", &c.id().to_string()]).status().unwrap();
        assert!(st.success());
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                assert!(st.success(), "sipwall exited with {st}:\n{}", self.daemon_log());
                return;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                panic!("sipwall did not stop within 15 s of SIGTERM:\n{}", self.daemon_log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Bounded wait until something in the phone namespace listens on UDP 5060.
fn wait_phone_listening() {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, out) = output(in_ns(PHONE, 10, "ss", &["-Hlun", "sport = :5060"]));
        if out.contains(":5060") {
            return;
        }
        assert!(Instant::now() < deadline, "the phone's SIPp UAS is not listening after 10 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `calls` calls from the provider to the phone, through the router; panics unless all complete.
fn provider_calls(calls: u32) {
    let (ok, out) = output(in_ns(
        PROVIDER,
        60,
        "sipp",
        &[
            "-sn",
            "uac",
            PHONE_SIP,
            "-i",
            PROVIDER_IP,
            "-p",
            "5062",
            "-s",
            "2000",
            "-m",
            &calls.to_string(),
            "-r",
            "20",
            "-timeout",
            "40s",
            "-timeout_error",
            "-recv_timeout",
            "5000",
            "-nostdin",
        ],
    ));
    assert!(ok, "provider calls to the phone failed:\n{}", tail(&out, 40));
}

/// svmap with INVITE probes from the attacker at the phone; its output.
fn svmap() -> String {
    let (_, out) = output(in_ns(
        ATTACKER,
        90,
        "sipvicious_svmap",
        &["-b", ATTACKER_IP, "-x", ATTACKER_IP, "-m", "INVITE", "192.0.2.10"],
    ));
    eprintln!("--- svmap -m INVITE from {ATTACKER_IP}\n{}", tail(&out, 12));
    out
}

#[test]
fn router_mode_guards_the_phones_behind_a_linux_router() {
    assert!(
        is_root(),
        "e2e_router needs root: it creates network namespaces (swr-*), nftables/iptables rules \
         and runs SIPp and SIPVicious in them. Run: sudo -E cargo test -p sipwall --test e2e_router"
    );
    common::require_tools(
        "e2e_router",
        &["sipp", "nft", "iptables-save", "ip6tables-save", "ss", "sipvicious_svmap"],
        "apt-get install sip-tester nftables iptables iproute2; pip install sipvicious",
    );
    let mut env = Env { dir: tempfile::tempdir().unwrap(), uas: None, daemon: None };
    assert!(topology("up"), "tests/e2e/router-topology.sh up failed");
    fs::write(
        env.path("sipwall.toml"),
        "[trusted]\nnetworks = [\"198.51.100.0/24\"]\n\n\
         [enforce]\nmode = \"router\"\nprotected = [\"192.0.2.0/24\"]\nqueues = 1\n",
    )
    .unwrap();

    let trace = env.path("phone-messages.log");
    env.uas = Some(start_sipp_uas(PHONE, env.dir.path(), &trace_args(&trace)));
    wait_phone_listening();

    // 0. Unprotected baseline: through the bare router the same scan finds the phone and rings
    //    it, so the assertions below measure sipwall, not an unreachable phone.
    let out = svmap();
    assert!(out.contains(PHONE_SIP), "baseline svmap did not find the phone:\n{out}");
    let (ghost_before, _) = invites_seen(&trace, "203.0.113.", PROVIDER_IP);
    assert!(ghost_before >= 1, "baseline: svmap's INVITE did not reach the phone");

    // 1. Protected, router mode: packets are queued from FORWARD only; the ban drop sits in
    //    PREROUTING (before the route lookup, so it covers forwarded traffic).
    env.start_daemon();
    let (ok, ruleset) = output(in_ns(ROUTER, 10, "nft", &["list", "table", "inet", "sipwall"]));
    assert!(ok, "no inet sipwall table in {ROUTER}:\n{ruleset}\n{}", env.daemon_log());
    assert!(ruleset.contains("hook prerouting"), "no ban chain in router mode:\n{ruleset}");
    assert!(!ruleset.contains("hook input"), "router mode hooked INPUT:\n{ruleset}");
    // Packets are queued from FORWARD by whichever backend the kernel offers.
    let (_, saved) = output(in_ns(ROUTER, 10, "iptables-save", &[]));
    assert!(
        ruleset.contains("chain queue_forward") || saved.contains("-A FORWARD -j SIPWALL-FWD"),
        "nothing queues FORWARD:\n{ruleset}\n{saved}"
    );
    assert!(!saved.contains("SIPWALL-IN"), "router mode queued INPUT:\n{saved}");

    provider_calls(2);
    let out = svmap();
    assert!(!out.contains(PHONE_SIP), "svmap found the phone through sipwall:\n{out}");
    let (ghost, _) = invites_seen(&trace, "203.0.113.", PROVIDER_IP);
    assert_eq!(
        ghost - ghost_before,
        0,
        "svmap's INVITE reached the phone behind sipwall (a ghost call):\n{}",
        env.daemon_log()
    );
    let banned = kernel_bans(ROUTER);
    let attacker = IpNet::from(ATTACKER_IP.parse::<IpAddr>().unwrap());
    assert!(
        banned.iter().any(|n| n.contains(&attacker.addr())),
        "{ATTACKER_IP} not in the kernel ban set of {ROUTER}: {banned:?}\n{}",
        env.daemon_log()
    );
    let provider: IpAddr = PROVIDER_IP.parse().unwrap();
    assert!(!banned.iter().any(|n| n.contains(&provider)), "the trusted provider was banned");

    // The trusted provider still gets through, after the scan as before it.
    provider_calls(3);
    let (ghost, from_provider) = invites_seen(&trace, "203.0.113.", PROVIDER_IP);
    assert_eq!(ghost, ghost_before);
    assert!(from_provider >= 5, "the phone saw only {from_provider} of 5 provider INVITEs");

    // 2. SIGTERM: every rule sipwall installed in the router is gone.
    env.stop_daemon();
    no_rules_left(ROUTER);
}
