//! The operations surface against the real daemon, in the namespaces of
//! `tests/e2e/topology.sh` (prefix `swo-`): `sipwall status --format json` checked against
//! reality (the ports of the config, packets counted after SIPp OPTIONS, a ban counted after
//! `sipwall ban`, the kernel's queue counters present), `bans --ip` finding a range,
//! `ban --extend`, `reload` of a broken config reporting the error while the old policy
//! stays and of one changing `[api]` naming the restart it needs, `unban --all` emptying the
//! kernel set, `status` without a daemon (exit 3); then observe mode: svmap's INVITE reaches
//! the PBX, no kernel ban appears, and `decisions` and `bans` show the would-ban as simulated.
//!
//! Needs root, SIPp and SIPVicious; FAILS with a clear message otherwise. Every command runs
//! under `timeout`; a drop guard ends the daemon and the tools and deletes the namespaces
//! even when an assertion fails. Run it under `flock /tmp/sipwall-netns.lock`.
use std::fs;
use std::net::IpAddr;

use ipnet::IpNet;

mod common;
use common::{
    in_ns, invites_seen, is_root, kernel_set, no_rules_left, only_bans_left, output, require_tools,
    run_bounded, sipp_options, start_sipp_uas, tail, trace_args, wait_udp_listening, Stage,
};

const PBX: &str = "swo-pbx";
const ATTACKER: &str = "swo-attacker";
const PROVIDER: &str = "swo-provider";
const BIN: &str = env!("CARGO_BIN_EXE_sipwall");

const CONFIG: &str = "[trusted]\nnetworks = [\"198.51.100.0/24\"]\n\n\
    [ports]\nguarded = [5060]\ntripwire = [5070]\n\n\
    [bans.aggregate]\nenabled = false\n\n\
    [enforce]\nmode = \"host\"\nqueues = 1\ningress_drop = true\nreconcile_interval_secs = 1\n";

/// `sipwall ARGS --socket SOCK` from the host (a pathname socket works across namespaces).
fn cli(env: &Stage, args: &[&str]) -> (bool, String) {
    let sock = env.path("control.sock");
    let mut a = args.to_vec();
    a.extend(["--socket", sock.to_str().unwrap()]);
    run_bounded(30, BIN, &a)
}

/// `sipwall status --format json`, parsed.
fn status(env: &Stage) -> serde_json::Value {
    let (ok, out) = cli(env, &["status", "--format", "json"]);
    assert!(ok, "sipwall status failed:\n{out}\n{}", env.daemon.log());
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("status is not JSON ({e}):\n{out}"))
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    let mut s: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
        .collect();
    s.sort();
    s
}

/// Every IPv4 ban element in the kernel (the address set and the interval set).
fn kernel_bans(ns: &str) -> Vec<IpNet> {
    let mut v = kernel_set(ns, "ban_addr4");
    v.extend(kernel_set(ns, "ban_net4"));
    v.sort();
    v
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

#[test]
#[ignore = "needs root, network namespaces, SIPp and SIPVicious: run by scripts/test.sh"]
fn status_verbs_reload_and_observe_mode_against_the_real_daemon() {
    assert!(
        is_root(),
        "ops_status needs root: it creates network namespaces (swo-*) and nftables rules and \
         runs `sipwall run` in them. Run: sudo -E cargo test -p sipwall --test ops_status"
    );
    require_tools(
        "ops_status",
        &["sipp", "nft", "sipvicious_svmap"],
        "apt-get install sip-tester nftables; pip install sipvicious",
    );
    let mut env = Stage::new("topology.sh", &[("SWD_PREFIX", "swo-")], PBX);
    assert!(env.up(), "tests/e2e/topology.sh up failed");
    let cfg = env.path("sipwall.toml");
    fs::write(&cfg, CONFIG).unwrap();
    let trace = env.path("uas-messages.log");
    env.tools.push(start_sipp_uas(PBX, env.dir.path(), &trace_args(&trace)));
    wait_udp_listening(PBX, 5060);

    // No daemon yet: "not running", exit status 3 (as systemctl).
    let sock = env.path("control.sock");
    let out = std::process::Command::new("timeout")
        .args(["-s", "KILL", "30", BIN, "status", "--socket", sock.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("not running"), "{out:?}");

    // 1. Enforcing. Status matches the config and the start.
    env.daemon.start();
    let s = status(&env);
    assert_eq!(s["running"], true);
    assert_eq!(s["version"], env!("CARGO_PKG_VERSION"));
    // `ip netns exec` execs sipwall: same process.
    assert_eq!(s["pid"].as_u64(), Some(u64::from(env.daemon.pid())));
    assert_eq!(s["mode"], "host");
    assert_eq!(s["observe"], false);
    assert_eq!(
        strings(&s["guarded_ports"]),
        ["tcp:5060", "tcp:5070", "udp:5060", "udp:5070"],
        "{s}"
    );
    assert_eq!(strings(&s["tripwire_ports"]), ["5070"]);
    assert_eq!(s["store"], "ok");
    assert_eq!(s["bans_active"], 0);
    assert!(s["queue_backend"] == "nft" || s["queue_backend"] == "iptables", "{s}");
    assert_eq!(s["queues"].as_array().unwrap().len(), 1);
    assert!(s.get("last_reload").is_none(), "{s}");
    // The early drop (turned on here) sits on the namespace's two devices with an address,
    // not on loopback, and the kernel holds exactly those chains.
    assert_eq!(strings(&s["early_drop"]), ["swo-at0", "swo-pv0"], "{s}");
    assert!(s.get("early_drop_refused").is_none(), "{s}");
    let (ok, chains) = output(in_ns(PBX, 10, "nft", &["list", "chains", "inet"]));
    assert!(ok, "{chains}");
    for dev in ["swo-at0", "swo-pv0"] {
        assert!(chains.contains(&format!("hook ingress device \"{dev}\"")), "{chains}");
    }
    assert_eq!(chains.matches("hook ingress").count(), 2, "{chains}");
    // It follows the devices (checked every reconcile interval, 1 s here): a chain the kernel
    // lost is put back, a new device gets one, a device that goes loses it.
    let ingress_chains = || output(in_ns(PBX, 10, "nft", &["list", "chains", "inet"])).1;
    let ip_pbx = |args: &[&str]| {
        let (ok, out) = output(in_ns(PBX, 10, "ip", args));
        assert!(ok, "ip {args:?}: {out}");
    };
    let settles = |what: &str, want: &[&str], chain_of_dummy: bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let (s, chains) = (status(&env), ingress_chains());
            let has_dummy = chains.contains("hook ingress device \"swo-dm0\"");
            if strings(&s["early_drop"]) == want
                && chains.contains("hook ingress device \"swo-at0\"")
                && has_dummy == chain_of_dummy
            {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{what}:\n{s}\n{chains}");
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };
    let (ok, out) =
        output(in_ns(PBX, 10, "nft", &["delete", "chain", "inet", "sipwall", "ingress_swo_2dat0"]));
    assert!(ok, "{out}");
    settles("a lost chain is put back", &["swo-at0", "swo-pv0"], false);
    // (A veth pair: this kernel has no dummy devices; the peer stays down, without address.)
    ip_pbx(&["link", "add", "swo-dm0", "type", "veth", "peer", "name", "swo-dm1"]);
    ip_pbx(&["addr", "add", "192.0.2.200/32", "dev", "swo-dm0"]);
    ip_pbx(&["link", "set", "swo-dm0", "up"]);
    settles("a new device gets its chain", &["swo-at0", "swo-dm0", "swo-pv0"], true);
    ip_pbx(&["link", "del", "swo-dm0"]);
    settles("a device that goes loses it", &["swo-at0", "swo-pv0"], false);

    // Packets are counted: three OPTIONS from the provider (and their answers) are judged.
    let before = s["queues"][0]["packets"].as_u64().unwrap();
    sipp_options(PROVIDER, "198.51.100.1:5060", "198.51.100.2");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let s = loop {
        let s = status(&env);
        if s["queues"][0]["packets"].as_u64().unwrap() >= before + 3 {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "OPTIONS not counted: {s}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(s["queues"][0]["num"], 0);
    // The kernel's own counters of the bound queue are there (read from /proc in the netns).
    assert_eq!(s["queues"][0]["kernel_dropped"], 0, "{s}");
    assert_eq!(s["queues"][0]["user_dropped"], 0, "{s}");

    // A manual ban of a range is counted by rule; `bans --ip` finds it from an address inside.
    // (Not the /28 holding the PBX's own 203.0.113.1: no ban may cover an address of the host.)
    let (ok, out) = cli(&env, &["ban", "203.0.113.16/28", "--for", "10m", "--reason", "ops"]);
    assert!(ok, "{out}");
    let s = status(&env);
    assert_eq!(s["bans_active"], 1, "{s}");
    assert_eq!(s["bans_by_rule"]["manual"], 1, "{s}");
    let (ok, out) = cli(&env, &["bans", "--ip", "203.0.113.23", "--format", "json"]);
    assert!(ok, "{out}");
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed["count"], 1, "{out}");
    assert_eq!(listed["bans"][0]["net"], "203.0.113.16/28");
    let until = listed["bans"][0]["until_ms"].as_u64().unwrap();
    let (ok, out) = cli(&env, &["bans", "--ip", "203.0.113.77", "--format", "json"]);
    assert!(ok && out.contains("\"count\": 0"), "an address outside the range matched:\n{out}");

    // --extend: later, never earlier; without it, refused.
    let (ok, out) = cli(&env, &["ban", "203.0.113.16/28", "--for", "1h"]);
    assert!(!ok && out.contains("--extend"), "{out}");
    let (ok, out) = cli(&env, &["ban", "203.0.113.16/28", "--for", "1h", "--extend"]);
    assert!(ok && out.contains("extended"), "{out}");
    let (_, out) = cli(&env, &["bans", "--ip", "203.0.113.23", "--format", "json"]);
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let extended = listed["bans"][0]["until_ms"].as_u64().unwrap();
    assert!(extended >= until + 49 * 60_000, "not extended: {until} -> {extended}");
    assert_eq!(kernel_bans(PBX), vec![net("203.0.113.16/28")]);

    // reload: a broken config is reported to the caller (key and line), non-zero exit, and
    // the daemon keeps its policy; a good one is applied.
    fs::write(&cfg, CONFIG.replace("tripwire = [5070]", "tripwire = [\"x\"]")).unwrap();
    let (ok, out) = cli(&env, &["reload"]);
    assert!(!ok, "a broken config reloaded:\n{out}");
    assert!(out.contains("ports.tripwire") && out.contains("line 6"), "{out}");
    let s = status(&env);
    assert_eq!(s["last_reload"]["ok"], false, "{s}");
    assert_eq!(strings(&s["tripwire_ports"]), ["5070"], "old policy kept");
    fs::write(&cfg, CONFIG.replace("tripwire = [5070]", "tripwire = [5070, 5080]")).unwrap();
    let (ok, out) = cli(&env, &["reload"]);
    assert!(ok && out.contains("policy reloaded"), "{out}");
    let s = status(&env);
    assert_eq!(s["last_reload"]["ok"], true, "{s}");
    assert_eq!(strings(&s["tripwire_ports"]), ["5070", "5080"]);
    // a section only a restart applies: the reload says so, and still reloads the policy
    let with_api = format!("{CONFIG}\n[api]\nenabled = true\n");
    fs::write(&cfg, with_api.replace("tripwire = [5070]", "tripwire = [5070, 5080]")).unwrap();
    let (ok, out) = cli(&env, &["reload"]);
    assert!(ok && out.contains("[api] changed: restart sipwall to apply it"), "{out}");
    let s = status(&env);
    let said = s["last_reload"]["message"].as_str().unwrap_or_default();
    assert!(said.contains("policy reloaded") && said.contains("[api] changed"), "{s}");
    assert_eq!(strings(&s["tripwire_ports"]), ["5070", "5080"]);
    fs::write(&cfg, CONFIG).unwrap();

    // unban of several at once and --all: the kernel set is empty afterwards.
    let (ok, out) = cli(&env, &["ban", "192.0.2.77", "--for", "10m"]);
    assert!(ok, "{out}");
    let (ok, out) = cli(&env, &["unban", "192.0.2.77", "203.0.113.99"]);
    assert!(!ok && out.contains("unbanned 192.0.2.77") && out.contains("203.0.113.99"), "{out}");
    let (ok, out) = cli(&env, &["ban", "192.0.2.78", "--for", "10m"]);
    assert!(ok, "{out}");
    assert_eq!(kernel_bans(PBX).len(), 2);
    let (ok, out) = cli(&env, &["unban", "--all"]);
    assert!(ok, "{out}");
    assert_eq!(kernel_bans(PBX), Vec::<IpNet>::new());
    assert_eq!(status(&env)["bans_active"], 0);
    env.daemon.stop();
    only_bans_left(PBX); // a stop keeps the ban sets; --cleanup removes everything
    env.daemon.cleanup();
    no_rules_left(PBX);

    // 2. Observe mode: svmap's INVITE reaches the PBX, no kernel element, a would-ban.
    // (With the early drop at its default: off.)
    let observe = CONFIG
        .replace("mode = \"host\"", "mode = \"observe\"")
        .replace("ingress_drop = true\n", "");
    fs::write(&cfg, observe).unwrap();
    env.daemon.start();
    assert!(env.daemon.log().contains("OBSERVE MODE"), "{}", env.daemon.log());
    let s = status(&env);
    assert!(s.get("early_drop").is_none(), "{s}");
    let (_, chains) = output(in_ns(PBX, 10, "nft", &["list", "chains", "inet"]));
    assert!(!chains.contains("hook ingress"), "{chains}");
    assert_eq!((s["observe"].clone(), s["mode"].clone()), (true.into(), "observe".into()));
    let (ghost_before, _) = invites_seen(&trace, "203.0.113.", "198.51.100.2");
    let (_, out) = output(in_ns(
        ATTACKER,
        90,
        "sipvicious_svmap",
        &["-b", "203.0.113.5", "-x", "203.0.113.5", "-m", "INVITE", "203.0.113.1"],
    ));
    eprintln!("--- svmap\n{}", tail(&out, 12));
    let (ghost, _) = invites_seen(&trace, "203.0.113.", "198.51.100.2");
    assert!(ghost > ghost_before, "observe mode: svmap's INVITE did not reach the PBX\n{out}");
    assert!(kernel_bans(PBX).is_empty(), "observe mode put a ban into the kernel");
    let s = status(&env);
    assert!(s["queues"][0]["would_drop"].as_u64().unwrap() >= 1, "{s}");
    assert_eq!(s["queues"][0]["dropped"], 0, "{s}");
    assert!(s["bans_simulated"].as_u64().unwrap() >= 1, "{s}");
    let (ok, out) = cli(&env, &["bans", "--ip", "203.0.113.5", "--format", "json"]);
    assert!(ok, "{out}");
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed["bans"][0]["simulated"], true, "{out}");
    let attacker: IpAddr = "203.0.113.5".parse().unwrap();
    // Decisions are stored by the ban worker's next batch: bounded wait.
    let state = env.path("state");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let shown = loop {
        let (ok, out) = run_bounded(
            30,
            BIN,
            &["decisions", "--state", state.to_str().unwrap(), "--ip", &attacker.to_string()],
        );
        assert!(ok, "{out}");
        if out.contains("[would ") {
            break out;
        }
        assert!(std::time::Instant::now() < deadline, "no would-ban decision:\n{out}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert!(shown.contains("observed") && shown.contains("would drop and ban"), "{shown}");
    assert!(!shown.contains("198.51.100."), "--ip kept another source:\n{shown}");
    env.daemon.stop();
    only_bans_left(PBX); // a stop keeps the ban sets; --cleanup removes everything
    env.daemon.cleanup();
    no_rules_left(PBX);
}
