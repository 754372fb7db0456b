//! Acceptance test of zero-config learning, end to end in network namespaces
//! (`tests/e2e/topology.sh`), with an EMPTY config (only the guarded port):
//!
//! * a PBX (`tests/e2e/learn-peers.py pbx`, UDP 5060, logs every INVITE that rang) behind
//!   sipwall, registering its trunk at a provider registrar (`learn-peers.py registrar` on
//!   198.51.100.2) from its own port 5060, as Asterisk does; a SIPp UAS for the provider's TCP
//!   calls; the provider's calls are SIPp's built-in UAC;
//! * a phone in the attacker's /24 (203.0.113.250) registering with digest;
//! * 200 clean INVITEs to `sip:100@203.0.113.1` from 200 addresses (203.0.113.10-209) with a
//!   real phone's User-Agent and no tool tell; one sippts-style INVITE with a forged
//!   User-Agent; six scanners (`friendly-scanner`) banned in the phone's /24.
//!
//! Asserted: the provider's first call after a fresh install completes (learning, not
//! enforcing yet), over UDP and TCP; after the trunk registration the 200 INVITEs ring 0
//! times and the sippts one too; the phone still registers with the scanners banned around it;
//! no automatic ban covers one of the host's addresses; after kill -9 the learned upstream
//! is back from the store before any packet is judged and the rule is still in force; on a
//! fresh install with the provider's network trusted (its UDP requests then skip the queue on
//! the kernel's trusted fast path), the trunk registration still teaches the upstream.
//! Needs root; FAILS with a clear message otherwise.
use std::fs;
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{
    in_ns, is_root, output, repo, require_tools, sipp_calls, start_sipp_uas, tail,
    wait_udp_listening, Stage,
};

const PBX: &str = "swd-pbx";
const PROVIDER: &str = "swd-provider";
const ATTACKER: &str = "swd-attacker";
const PHONE: &str = "203.0.113.250";

fn peers() -> String {
    repo().join("tests/e2e/learn-peers.py").to_str().unwrap().to_string()
}

/// Rings the PBX logged from sources starting with `prefix`.
fn rings(log: &std::path::Path, prefix: &str) -> usize {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.split(' ').nth(1).is_some_and(|ip| ip.starts_with(prefix)))
        .count()
}

fn phone_registers() -> (bool, String) {
    output(in_ns(ATTACKER, 20, "python3", &[&peers(), "phone", PHONE, "203.0.113.1:5060", "100"]))
}

/// One INVITE from each of `sources` (a file of addresses on the attacker's link).
fn invites(env: &Stage, sources: &[String], ua: &str, style: &str) {
    let list = env.path("sources.txt");
    fs::write(&list, sources.join("\n")).unwrap();
    let args =
        [peers(), "invites".into(), list.to_str().unwrap().into(), "203.0.113.1:5060".into()];
    let mut a: Vec<&str> = args.iter().map(String::as_str).collect();
    a.extend(["100", ua, style]);
    let (ok, out) = output(in_ns(ATTACKER, 60, "python3", &a));
    assert!(ok && out.trim() == sources.len().to_string(), "sending INVITEs: {out}");
    std::thread::sleep(Duration::from_millis(500)); // let the PBX answer and log
}

fn learned_json(env: &Stage) -> serde_json::Value {
    let (ok, out) = output({
        let mut c = Command::new(env!("CARGO_BIN_EXE_sipwall"));
        c.args(["learned", "--format", "json", "--socket"]).arg(env.path("control.sock"));
        c
    });
    assert!(ok, "sipwall learned: {out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn has_upstream(v: &serde_json::Value, ip: &str) -> bool {
    v["facts"].as_array().is_some_and(|f| {
        f.iter().any(|f| f["kind"] == "upstream" && f["value"] == ip && f["evidence"] != "")
    })
}

#[test]
#[ignore = "needs root, network namespaces, python3 and SIPp: run by scripts/test.sh"]
fn zero_config_learning_stops_ghost_calls_and_keeps_the_provider_and_phones_working() {
    assert!(
        is_root(),
        "e2e_learn needs root: it creates network namespaces (swd-*) and nftables/iptables \
         rules. Run: sudo -E cargo test -p sipwall --test e2e_learn -- --include-ignored"
    );
    require_tools(
        "e2e_learn",
        &["python3", "sipp", "nft", "iptables"],
        "apt-get install python3 sip-tester nftables iptables",
    );
    let mut env = Stage::new("topology.sh", &[("SWD_PREFIX", "swd-")], PBX);
    assert!(env.up(), "tests/e2e/topology.sh up failed");
    // 200 ghost sources and the phone on the attacker's link (one `ip -batch`, bounded).
    let ghosts: Vec<String> = (10..210).map(|i| format!("203.0.113.{i}")).collect();
    let batch: String = ghosts
        .iter()
        .chain(std::iter::once(&PHONE.to_string()))
        .map(|a| format!("addr add {a}/24 dev swd-at1\n"))
        .collect();
    fs::write(env.path("addrs.batch"), batch).unwrap();
    let (ok, out) =
        output(in_ns(ATTACKER, 30, "ip", &["-batch", env.path("addrs.batch").to_str().unwrap()]));
    assert!(ok, "adding the ghost addresses: {out}");

    // Empty config: only the guarded port (defaults for everything else).
    fs::write(env.path("sipwall.toml"), "[enforce]\nmode = \"host\"\nqueues = 1\n").unwrap();
    env.daemon.start(); // fresh install: empty state directory
    assert!(
        env.daemon.log().contains("learning, not enforcing yet"),
        "start-up log should say learning has not started enforcing:\n{}",
        env.daemon.log()
    );
    let ringlog = env.path("rings.log");
    let trigger = env.path("register-now");
    let registrar = ["registrar", "198.51.100.2", "5060", "280"];
    let mut reg_args = vec![peers()];
    reg_args.extend(registrar.iter().map(|s| s.to_string()));
    let reg_args: Vec<&str> = reg_args.iter().map(String::as_str).collect();
    env.tools.push(spawn(PROVIDER, &reg_args));
    let pbx_args = [
        peers(),
        "pbx".into(),
        "0.0.0.0".into(),
        "5060".into(),
        "198.51.100.2:5060".into(),
        ringlog.to_str().unwrap().into(),
        trigger.to_str().unwrap().into(),
        "280".into(),
    ];
    env.tools.push(spawn(PBX, &pbx_args.iter().map(String::as_str).collect::<Vec<_>>()));
    env.tools.push(start_sipp_uas(PBX, env.dir.path(), &["-t", "t1"]));
    wait_udp_listening(PBX, 5060);
    wait_udp_listening(PROVIDER, 5060);

    // 1. The provider's first call after a fresh install completes (UDP and TCP): nothing
    //    is learned yet, so nothing is enforced beyond detection.
    sipp_calls(PROVIDER, "198.51.100.1:5060", "198.51.100.2", 1, false);
    sipp_calls(PROVIDER, "198.51.100.1:5060", "198.51.100.2", 1, true);
    assert_eq!(rings(&ringlog, "198.51.100.2"), 1, "the provider's first UDP call did not ring");

    // 2. The phone registers with digest (known-good from then on), the trunk registers.
    let (ok, out) = phone_registers();
    assert!(ok, "the phone could not register: {out}");
    trunk_registers(&env, &trigger, "the trunk registration did not make 198.51.100.2 an upstream");
    let v = learned_json(&env);
    assert_eq!(v["enforcing"], true, "{v}");
    let known_good = v["facts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["kind"] == "known-good" && f["value"] == PHONE);
    assert!(known_good, "the phone's digest registration did not make it known-good: {v:#}");
    eprintln!("--- learned after the trunk registration\n{v:#}");

    // 3. 200 single clean INVITEs from 200 addresses with a phone's User-Agent: 0 rings.
    let before = rings(&ringlog, "203.0.113.");
    invites(&env, &ghosts, "Yealink SIP-T46S 66.86.0.15", "clean");
    let ghost_rings = rings(&ringlog, "203.0.113.") - before;
    eprintln!("=== 200 clean ghost INVITEs after the trunk registration: {ghost_rings} rang");
    assert_eq!(ghost_rings, 0, "ghost INVITEs rang the PBX");

    // 4. A sippts-style INVITE with a forged User-Agent: no ring.
    invites(&env, &["203.0.113.8".to_string()], "Grandstream GXP2170 1.0.11.3", "sippts");
    assert_eq!(rings(&ringlog, "203.0.113.8"), 0, "the sippts INVITE rang");

    // 5. The provider's calls still complete, UDP and TCP.
    sipp_calls(PROVIDER, "198.51.100.1:5060", "198.51.100.2", 5, false);
    sipp_calls(PROVIDER, "198.51.100.1:5060", "198.51.100.2", 3, true);

    // 6. Six scanners banned in the phone's /24: the phone still registers, and no
    //    automatic ban covers one of this host's addresses (203.0.113.1 is in that /24).
    let scanners: Vec<String> = (2..8).map(|i| format!("203.0.113.{i}")).collect();
    let batch: String = scanners.iter().map(|a| format!("addr add {a}/24 dev swd-at1\n")).collect();
    fs::write(env.path("scanners.batch"), batch).unwrap();
    // (2..=9 are already there from topology.sh: `ip -batch` reports them as existing.)
    let _ = output(in_ns(
        ATTACKER,
        30,
        "ip",
        &["-force", "-batch", env.path("scanners.batch").to_str().unwrap()],
    ));
    invites(&env, &scanners, "friendly-scanner", "clean");
    let banned = daemon_bans(&env);
    eprintln!("--- kernel bans after the scanners: {banned:?}");
    let (_, sets) = output(in_ns(PBX, 10, "nft", &["list", "table", "inet", "sipwall"]));
    for s in &scanners {
        let ip: IpAddr = s.parse().unwrap();
        assert!(
            banned.iter().any(|n| n.contains(&ip)),
            "scanner {s} not banned: {banned:?}\n{}\n{}",
            tail(&sets, 60),
            tail(&env.daemon.log(), 40)
        );
    }
    for own in ["203.0.113.1", "198.51.100.1", "192.0.2.10"] {
        let ip: IpAddr = own.parse().unwrap();
        assert!(!banned.iter().any(|n| n.contains(&ip)), "a ban covers this host's {own}");
    }
    let (ok, out) = phone_registers();
    assert!(ok, "the phone could not register with scanners banned in its /24: {out}");

    // 7. kill -9, restart: the learned upstream comes back from the store, the rule is in
    //    force at once, ghosts still do not ring, the provider's calls complete.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let store = sipwall_store::Store::open_read_only(env.path("state").join("sipwall.db"));
        let stored = store.ok().and_then(|s| s.load_learned().ok()).unwrap_or_default();
        if stored.iter().any(|f| f.kind == "upstream" && f.key == "198.51.100.2") {
            break;
        }
        assert!(Instant::now() < deadline, "the upstream never reached the store: {stored:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    env.daemon.kill9();
    env.daemon.start();
    let v = learned_json(&env);
    assert!(has_upstream(&v, "198.51.100.2"), "upstream lost across kill -9: {v}");
    assert_eq!(v["enforcing"], true, "{v}");
    assert!(env.daemon.log().contains("1 upstream(s)"), "{}", env.daemon.log());
    let more: Vec<String> = (210..230).map(|i| format!("203.0.113.{i}")).collect();
    let batch: String = more.iter().map(|a| format!("addr add {a}/24 dev swd-at1\n")).collect();
    fs::write(env.path("more.batch"), batch).unwrap();
    let (ok, out) =
        output(in_ns(ATTACKER, 30, "ip", &["-batch", env.path("more.batch").to_str().unwrap()]));
    assert!(ok, "{out}");
    let before = rings(&ringlog, "203.0.113.");
    invites(&env, &more, "Yealink SIP-T46S 66.86.0.15", "clean");
    assert_eq!(rings(&ringlog, "203.0.113.") - before, 0, "ghosts rang after the restart");
    sipp_calls(PROVIDER, "198.51.100.1:5060", "198.51.100.2", 2, false);

    // 8. Day one with the provider's network trusted (the usual first config), on a fresh
    //    install: its UDP requests take the kernel's trusted fast path, yet the registrar's
    //    answers are still queued, so the trunk registration still teaches the upstream and
    //    the ghost rule enforces; the provider's calls (unqueued) still ring.
    env.daemon.stop();
    fs::remove_dir_all(env.path("state")).unwrap();
    fs::write(
        env.path("sipwall.toml"),
        "[trusted]\nnetworks = [\"198.51.100.0/24\"]\n\n[enforce]\nmode = \"host\"\nqueues = 1\n",
    )
    .unwrap();
    env.daemon.start();
    let (ok, rules) = output(in_ns(PBX, 10, "iptables", &["-S", "SIPWALL-IN"]));
    assert!(
        ok && rules.lines().any(|l| l.contains("-s 198.51.100.0/24") && l.ends_with("RETURN")),
        "the trusted provider is not on the fast path:\n{rules}"
    );
    assert!(!has_upstream(&learned_json(&env), "198.51.100.2"), "fresh install knows an upstream");
    trunk_registers(
        &env,
        &trigger,
        "with the provider trusted (fast path), the trunk registration taught nothing",
    );
    let before = rings(&ringlog, "203.0.113.");
    invites(&env, &more, "Yealink SIP-T46S 66.86.0.15", "clean");
    assert_eq!(rings(&ringlog, "203.0.113.") - before, 0, "ghosts rang, provider trusted");
    let before = rings(&ringlog, "198.51.100.2");
    sipp_calls(PROVIDER, "198.51.100.1:5060", "198.51.100.2", 2, false);
    assert_eq!(rings(&ringlog, "198.51.100.2") - before, 2, "the trusted provider's calls");
    env.daemon.stop();
}

/// Make the PBX register its trunk (the trigger file) and wait, at most 10 s, until the
/// daemon has learned the registrar 198.51.100.2 as an upstream; `failure` says what broke.
fn trunk_registers(env: &Stage, trigger: &std::path::Path, failure: &str) {
    fs::write(trigger, "").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !has_upstream(&learned_json(env), "198.51.100.2") {
        assert!(
            Instant::now() < deadline,
            "{failure}:\n{}\n{}",
            learned_json(env),
            tail(&env.daemon.log(), 30)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The daemon's active bans (`sipwall bans --format json`): ranges stay ranges.
fn daemon_bans(env: &Stage) -> Vec<ipnet::IpNet> {
    let (ok, out) = output({
        let mut c = Command::new(env!("CARGO_BIN_EXE_sipwall"));
        c.args(["bans", "--format", "json", "--socket"]).arg(env.path("control.sock"));
        c
    });
    assert!(ok, "sipwall bans: {out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["bans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["net"].as_str().unwrap().parse().unwrap())
        .collect()
}

fn spawn(ns: &str, args: &[&str]) -> std::process::Child {
    in_ns(ns, 300, "python3", args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {args:?} in {ns}: {e}"))
}
