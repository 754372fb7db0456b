//! Operator commands against the real daemon: `sipwall run` in a fresh network namespace
//! (`swcc-ctl`), its control socket and state in a temporary directory, and the client commands
//! `sipwall ban/unban/bans` run from outside the namespace (a pathname Unix socket works
//! across network namespaces). Checks the kernel sets (`ban_addr4`, `ban_net4` of `inet
//! sipwall` in the namespace), the listing, the store, the refusal of a trusted network,
//! offence history across a restart, that SIGTERM leaves no queue rule and no socket but keeps
//! the active ban in the kernel, and that `sipwall run --cleanup` then leaves nothing. Also the control socket's
//! peer check: with the socket's mode opened up by the test, a client running as uid 65534
//! connects and is refused by the daemon (`SO_PEERCRED`), while root is served and recorded
//! as the operator; and the offline queries (`bans`, `decisions` without a daemon) read the
//! store without changing it.
//!
//! Needs root; FAILS with a clear message otherwise. Every command runs under `timeout`, every
//! wait is bounded, and a drop guard kills the daemon and deletes the namespace even when an
//! assertion fails.
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{is_root, no_rules_left, only_bans_left, run_bounded, Daemon};

const NS: &str = "swcc-ctl";
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
        // Deleting the namespace removes every rule in it.
        ns_del();
    }
}

impl Env {
    fn new() -> Env {
        assert!(
            is_root(),
            "this test needs root: it creates the network namespace {NS} and runs `sipwall run` \
             (NFQUEUE + nftables) in it; run `cargo test -p sipwall --test control` as root"
        );
        ns_del(); // leftovers of an interrupted run
        let dir = tempfile::tempdir().unwrap();
        let env = Env { daemon: Daemon::new(NS, dir.path()), dir };
        let (ok, out) = run_bounded(30, "ip", &["netns", "add", NS]);
        assert!(ok, "ip netns add {NS}: {out}");
        let (ok, out) = run_bounded(30, "ip", &["-n", NS, "link", "set", "lo", "up"]);
        assert!(ok, "lo up: {out}");
        fs::write(
            env.path("sipwall.toml"),
            "[trusted]\nnetworks = [\"198.51.100.0/24\"]\n\n[enforce]\nmode = \"host\"\n",
        )
        .unwrap();
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

    /// The IPv4 ban sets as nft prints them (addresses, then ranges).
    fn kernel_ban4(&self) -> String {
        let mut text = String::new();
        for set in ["ban_addr4", "ban_net4"] {
            let (ok, out) = run_bounded(
                30,
                "ip",
                &["netns", "exec", NS, "nft", "list", "set", "inet", "sipwall", set],
            );
            assert!(ok, "nft list set inet sipwall {set}:\n{out}\n{}", self.daemon.log());
            text.push_str(&out);
        }
        text
    }

    fn stored_bans(&self) -> Vec<String> {
        self.stored().iter().map(|(n, _)| n.clone()).collect()
    }

    /// (network, reason) of every active ban in the store, read-only.
    fn stored(&self) -> Vec<(String, String)> {
        let store = sipwall_store::Store::open_read_only(self.path("state/sipwall.db")).unwrap();
        let now = sipwall_engine::Timestamp(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap(),
        );
        store
            .load_active_bans(now)
            .unwrap()
            .iter()
            .map(|b| (b.net.to_string(), b.reason.clone()))
            .collect()
    }

    /// Run the CLI as uid/gid 65534 (nobody); bounded. Returns (success, output, its pid).
    fn cli_as_nobody(&self, args: &[&str]) -> (bool, String, u32) {
        use std::io::Read as _;
        use std::os::unix::process::CommandExt as _;
        let mut c = Command::new(BIN)
            .args(args)
            .args(["--socket", &self.socket()])
            .uid(65534)
            .gid(65534)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running sipwall as uid 65534");
        let pid = c.id();
        let deadline = Instant::now() + Duration::from_secs(30);
        let st = loop {
            if let Some(st) = c.try_wait().unwrap() {
                break st;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                panic!("sipwall {args:?} as uid 65534 did not finish within 30 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut out = String::new();
        c.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        c.stderr.take().unwrap().read_to_string(&mut out).unwrap();
        (st.success(), out, pid)
    }
}

/// `test; manual ban by uid 0 (pid N)` for some N.
fn by_root(reason: &str, said: &str) -> bool {
    reason
        .strip_prefix(&format!("{said}; manual ban by uid 0 (pid "))
        .and_then(|r| r.strip_suffix(')'))
        .is_some_and(|pid| pid.parse::<u32>().is_ok_and(|p| p > 0))
}

#[test]
#[ignore = "needs root and network namespaces: run by scripts/test.sh"]
fn operator_bans_reach_kernel_store_and_listing_and_are_lifted() {
    let mut env = Env::new();
    env.daemon.start();
    assert!(Path::new(&env.socket()).exists(), "no control socket:\n{}", env.daemon.log());
    let mode = {
        use std::os::unix::fs::PermissionsExt as _;
        fs::metadata(env.socket()).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(mode, 0o600, "control socket mode");

    // ban: kernel set, store, listing
    let (ok, out) = env.cli(&["ban", "203.0.113.9/32", "--for", "10m", "--reason", "test"]);
    assert!(ok, "sipwall ban failed:\n{out}\n{}", env.daemon.log());
    assert!(out.contains("banned 203.0.113.9/32") && out.contains("ban #1"), "{out}");
    let set = env.kernel_ban4();
    assert!(set.contains("203.0.113.9"), "not in the kernel set:\n{set}");
    // the operator is in the stored reason, and in the log
    let stored = env.stored();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].0, "203.0.113.9/32");
    assert!(by_root(&stored[0].1, "test"), "stored reason names no operator: {:?}", stored[0].1);
    let log = env.daemon.log();
    assert!(
        log.lines()
            .any(|l| l.contains("manual ban of 203.0.113.9/32") && l.contains("by uid 0 (pid ")),
        "no log line naming the operator:\n{log}"
    );
    let (ok, list) = env.cli(&["bans"]);
    assert!(ok, "{list}");
    assert!(
        list.lines().any(|l| l.starts_with("203.0.113.9/32")
            && l.contains("manual")
            && l.contains(" test; manual ban by uid 0 (pid ")),
        "{list}"
    );
    assert!(list.contains("1 active ban"), "{list}");
    let (ok, json) = env.cli(&["bans", "--format", "json"]);
    assert!(ok, "{json}");
    let v: serde_json::Value = serde_json::from_str(&json).expect("bans --format json");
    assert_eq!(v["count"], 1);
    assert_eq!(v["bans"][0]["net"], "203.0.113.9/32");
    assert!(by_root(v["bans"][0]["reason"].as_str().unwrap(), "test"), "{json}");
    let until = v["bans"][0]["until_ms"].as_u64().unwrap();
    let since = v["bans"][0]["since_ms"].as_u64().unwrap();
    assert_eq!(until - since, 600_000);

    // Another user is refused by the daemon itself: open the socket's mode (and the way to
    // it) so that only the peer credential check stands between uid 65534 and the daemon.
    {
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(env.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(env.socket(), fs::Permissions::from_mode(0o666)).unwrap();
    }
    let (ok, out, pid) = env.cli_as_nobody(&["bans"]);
    assert!(!ok, "uid 65534 was served:\n{out}");
    let refusal = format!("refused: uid 65534 (pid {pid}) may not use the control socket");
    assert!(out.contains(&refusal), "client output lacks {refusal:?}:\n{out}");
    assert!(
        env.daemon.log().contains(&refusal),
        "daemon log lacks {refusal:?}:\n{}",
        env.daemon.log()
    );
    let (ok, out, pid) = env.cli_as_nobody(&["ban", "203.0.113.66", "--for", "60"]);
    assert!(!ok && out.contains(&format!("uid 65534 (pid {pid})")), "{out}");
    assert!(!env.kernel_ban4().contains("203.0.113.66"), "a refused peer's ban was applied");
    assert!(!env.stored_bans().contains(&"203.0.113.66/32".to_string()));
    // ... while root, on the same opened-up socket, is still served
    let (ok, list) = env.cli(&["bans"]);
    assert!(ok && list.contains("1 active ban"), "{list}");

    // a trusted network is refused, and nothing reaches the kernel
    let (ok, out) = env.cli(&["ban", "198.51.100.7", "--reason", "oops"]);
    assert!(!ok, "banning a trusted address succeeded:\n{out}");
    assert!(out.contains("trusted"), "{out}");
    assert!(!env.kernel_ban4().contains("198.51.100.7"));
    // a second ban of the same net is refused, a bad one never sent
    let (ok, out) = env.cli(&["ban", "203.0.113.9"]);
    assert!(!ok && out.contains("already banned"), "{out}");
    let (ok, out) = env.cli(&["ban", "203.0.113.10", "--for", "forever"]);
    assert!(!ok && out.contains("duration"), "{out}");

    // unban: gone from the kernel set, the store and the listing
    let (ok, out) = env.cli(&["unban", "203.0.113.9/32"]);
    assert!(ok, "sipwall unban failed:\n{out}\n{}", env.daemon.log());
    assert!(!env.kernel_ban4().contains("203.0.113.9"), "still in the kernel set");
    assert!(env.stored_bans().is_empty(), "still in the store");
    let (ok, list) = env.cli(&["bans"]);
    assert!(ok && list.contains("0 active bans") && !list.contains("203.0.113.9"), "{list}");
    let (ok, out) = env.cli(&["unban", "203.0.113.9/32"]);
    assert!(!ok && out.contains("not banned"), "{out}");

    // SIGTERM: no queue rule, no socket; the ban table stays
    env.daemon.stop();
    only_bans_left(NS);
    assert!(!Path::new(&env.socket()).exists(), "control socket left after exit");
    // no daemon, no store at --state: both said, and nothing created there
    let nostate = env.path("nostate");
    let (ok, out) = env.cli(&["bans", "--state", nostate.to_str().unwrap()]);
    assert!(!ok && out.contains("is `sipwall run` running?"), "{out}");
    assert!(out.contains(&nostate.join("sipwall.db").display().to_string()), "{out}");
    assert!(!nostate.exists(), "an offline query created {}", nostate.display());

    // offence history survives the restart: the next ban of the same net is #2
    env.daemon.start();
    let log = env.daemon.log();
    assert!(log.contains("restored offence history of 1 of 1"), "{log}");
    let (ok, out) = env.cli(&["ban", "203.0.113.9", "--for", "60"]);
    assert!(ok && out.contains("ban #2"), "escalation lost across a restart:\n{out}");
    env.daemon.stop();
    // The door stays shut: the active ban is still in the kernel with no daemon running.
    only_bans_left(NS);
    assert!(env.kernel_ban4().contains("203.0.113.9"), "the ban left the kernel at stop");
    env.daemon.cleanup();
    no_rules_left(NS);
    assert!(!Path::new(&env.socket()).exists(), "control socket left after exit");
    // The stored ban stays for the next start. Without the daemon, `bans` and `decisions`
    // read the store read-only: they list it and leave the file as it was.
    let state = env.path("state");
    let db = state.join("sipwall.db");
    let before = fs::read(&db).unwrap();
    let (ok, out) = env.cli(&["bans", "--state", state.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(out.contains("no daemon answers") && out.contains("(read-only)"), "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("203.0.113.9/32") && l.contains("manual ban by uid 0")),
        "{out}"
    );
    let (ok, out) =
        run_bounded(30, BIN, &["decisions", "--state", state.to_str().unwrap(), "--limit", "5"]);
    assert!(ok && out.contains("decisions (newest first)"), "{out}");
    // the audit trail: the operator's ban and unban, newest first, with who did them
    assert!(
        out.lines()
            .any(|l| l
                .contains("accept  manual.unban  manual unban of 203.0.113.9/32 by uid 0 (pid ")),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.contains(
            "drop  manual.ban  manual ban of 203.0.113.9/32 for 1m: manual ban by uid 0 (pid "
        )),
        "{out}"
    );
    assert!(fs::read(&db).unwrap() == before, "an offline query changed {}", db.display());
    let missing = env.path("nostate");
    let (ok, out) = run_bounded(30, BIN, &["decisions", "--state", missing.to_str().unwrap()]);
    assert!(!ok && out.contains("no store there") && out.contains("nostate/sipwall.db"), "{out}");
    assert!(!missing.exists(), "`decisions` created {}", missing.display());
}
