//! Regression test, in the real kernel: the daemon keeps the kernel ban sets equal to its
//! active bans, and a restart adopts what a stopped run left.
//!
//! `sipwall run` in a fresh network namespace (`swrc-ns`) with `[enforce]
//! reconcile_interval_secs = 1`. With an operator ban in place, the test takes its element out
//! of the kernel behind the daemon's back (`nft delete element`) and puts in one that no ban
//! asks for (`nft add element`), as a crashed writer, a hand edit or an element lost by an
//! older version would; before the periodic reconcile the first stayed missing for good (the
//! source then reached the queue and, once the daemon stopped, the host) and the second
//! stayed until its timeout. The daemon must repair both within a bounded wait and log the
//! repair as a warning with its counts. Then SIGTERM keeps the ban in the kernel; a ban that
//! the store no longer holds is removed from the kernel when the next start adopts the table
//! (the adoption reconciles before any apply). After a SIGKILL, `sipwall run --stop-queueing`
//! (systemd's ExecStopPost) removes the queue rules and keeps the bans; `--cleanup` leaves
//! nothing.
//!
//! Needs root; FAILS with a clear message otherwise. Every command runs under `timeout`,
//! every wait is bounded, and a drop guard ends the daemon and deletes the namespace.
mod common;

use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    is_root, kernel_bans, no_rules_left, only_bans_left, output, queue_rules_gone_bans_kept,
    run_bounded, Daemon,
};

const NS: &str = "swrc-ns";
const BIN: &str = env!("CARGO_BIN_EXE_sipwall");

fn ns_del() {
    let _ = Command::new("ip").args(["netns", "del", NS]).stderr(Stdio::null()).status();
}

struct Env {
    dir: tempfile::TempDir,
    daemon: Daemon,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.daemon.terminate();
        ns_del(); // takes every rule in it
    }
}

fn nft(args: &[&str]) -> String {
    let (ok, out) = output(common::in_ns(NS, 10, "nft", args));
    assert!(ok, "nft {args:?}: {out}");
    out
}

fn has_ban(addr: &str) -> bool {
    let ip: std::net::IpAddr = addr.parse().unwrap();
    kernel_bans(NS).iter().any(|n| n.contains(&ip))
}

/// Bounded wait (10 s) until `cond` holds.
fn wait_for(what: &str, daemon: &Daemon, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "{what} not within 10 s:\n{}", daemon.log());
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
#[ignore = "needs root and network namespaces: run by scripts/test.sh"]
fn kernel_ban_sets_are_repaired_to_equal_the_bans() {
    assert!(
        is_root(),
        "this test needs root: it creates the network namespace {NS} and runs `sipwall run` \
         (NFQUEUE + nftables) in it; run `cargo test -p sipwall --test reconcile` as root"
    );
    ns_del();
    let dir = tempfile::tempdir().unwrap();
    let mut env = Env { daemon: Daemon::new(NS, dir.path()), dir };
    let (ok, out) = run_bounded(30, "ip", &["netns", "add", NS]);
    assert!(ok, "ip netns add {NS}: {out}");
    let (ok, out) = run_bounded(30, "ip", &["-n", NS, "link", "set", "lo", "up"]);
    assert!(ok, "lo up: {out}");
    fs::write(
        env.dir.path().join("sipwall.toml"),
        "[enforce]\nmode = \"host\"\nreconcile_interval_secs = 1\n",
    )
    .unwrap();
    let sock = env.dir.path().join("control.sock");
    let cli = |args: &[&str]| {
        let mut a = args.to_vec();
        a.extend(["--socket", sock.to_str().unwrap()]);
        run_bounded(30, BIN, &a)
    };

    env.daemon.start();
    let (ok, out) = cli(&["ban", "203.0.113.10", "--for", "1h"]);
    assert!(ok, "{out}\n{}", env.daemon.log());
    assert!(has_ban("203.0.113.10"));

    // Drift behind the daemon's back: a ban's element gone, an element no ban asks for.
    nft(&["delete", "element", "inet", "sipwall", "ban_addr4", "{ 203.0.113.10 }"]);
    nft(&["add", "element", "inet", "sipwall", "ban_addr4", "{ 203.0.113.99 timeout 1h }"]);
    assert!(!has_ban("203.0.113.10") && has_ban("203.0.113.99"));
    wait_for("the reconcile's repair", &env.daemon, || {
        has_ban("203.0.113.10") && !has_ban("203.0.113.99")
    });
    let log = env.daemon.log();
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.contains("kernel ban sets repaired")
            && l.contains("1 missing added")
            && l.contains("1 stale removed")),
        "the repair was not logged as a warning with its counts:\n{log}"
    );

    // SIGTERM keeps the ban; the stop line counts the repairs.
    env.daemon.stop();
    let log = env.daemon.log();
    let repairs: Option<u64> = log
        .split(" reconciles with ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok());
    assert!(repairs.is_some_and(|n| n >= 2), "the stop line does not count the repairs:\n{log}");
    only_bans_left(NS);
    assert!(has_ban("203.0.113.10"), "the ban left the kernel at stop");
    // While stopped, an element appears that the store does not hold: the next start's
    // adoption removes it before anything else, and keeps the stored ban.
    nft(&["add", "element", "inet", "sipwall", "ban_addr4", "{ 203.0.113.98 timeout 1h }"]);
    env.daemon.start();
    assert!(has_ban("203.0.113.10"), "the stored ban is not in the kernel after a restart");
    assert!(!has_ban("203.0.113.98"), "an element no ban asks for survived the adoption");
    assert!(env.daemon.log().contains("1 stale removed"), "{}", env.daemon.log());
    // Killed (a supervisor's SIGKILL after a slow stop): its queue rules stay until the
    // supervisor's `--stop-queueing`, which keeps the bans; `--cleanup` removes everything.
    env.daemon.kill9();
    env.daemon.stop_queueing();
    queue_rules_gone_bans_kept(NS);
    assert!(has_ban("203.0.113.10"), "--stop-queueing removed a ban");
    env.daemon.cleanup();
    no_rules_left(NS);
}
