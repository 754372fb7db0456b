//! End-to-end test of `sipwall run` with real tools in network namespaces (see
//! `tests/e2e/topology.sh`): a SIPp PBX behind sipwall, a trusted SIPp provider placing calls
//! and OPTIONS keepalives, and SIPVicious (svmap, svwar, svcrack, also compact `-c`) scanning
//! from the attacker namespace. Needs root; FAILS with a clear message otherwise.
//!
//! Every external command runs under `timeout`; namespaces, processes and rules are removed by
//! a drop guard even when an assertion fails.
use std::fs;
use std::net::IpAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use ipnet::IpNet;

mod common;
use common::{
    in_ns, invites_seen, is_root, kernel_bans, no_rules_left, only_bans_left, output,
    queue_rules_gone_bans_kept, sipp_calls, sipp_options, start_sipp_uas, tail, trace_args,
    wall_now, Stage,
};

const PBX: &str = "swd-pbx";
const PROVIDER: &str = "swd-provider";
const ATTACKER: &str = "swd-attacker";

/// Make `src` the attacker's only address: svwar and svcrack ignore `-b` and send from the
/// interface's primary address.
fn attacker_source(src: &str) {
    let dev = "swd-at1";
    for args in [
        vec!["addr", "flush", "dev", dev],
        vec!["addr", "add", &format!("{src}/24"), "dev", dev],
        vec!["route", "replace", "default", "via", "203.0.113.1"],
    ] {
        let (ok, out) = output(in_ns(ATTACKER, 10, "ip", &args));
        assert!(ok, "ip {args:?}: {out}");
    }
}

fn sipvicious(tool: &str, src: &str, extra: &[&str]) -> String {
    attacker_source(src);
    let mut args = vec!["-b", src, "-x", src];
    args.extend_from_slice(extra);
    args.push("203.0.113.1");
    let (_, out) = output(in_ns(ATTACKER, 90, &format!("sipvicious_{tool}"), &args));
    eprintln!("--- {tool} from {src} {extra:?}\n{}", tail(&out, 12));
    out
}

#[test]
#[ignore = "needs root, network namespaces, SIPp and SIPVicious: run by scripts/test.sh"]
fn inline_protection_with_real_scanners_in_network_namespaces() {
    assert!(
        is_root(),
        "e2e_inline needs root: it creates network namespaces (swd-*), nftables/iptables rules \
         and runs SIPp and SIPVicious in them. Run: sudo -E cargo test -p sipwall --test e2e_inline"
    );
    for tool in
        ["sipp", "nft", "iptables", "sipvicious_svmap", "sipvicious_svwar", "sipvicious_svcrack"]
    {
        let found = Command::new("sh").args(["-c", &format!("command -v {tool}")]).output();
        assert!(
            found.map(|o| o.status.success()).unwrap_or(false),
            "e2e_inline needs `{tool}` on PATH (apt-get install sip-tester nftables iptables; \
             pip install sipvicious)"
        );
    }
    let mut env = Stage::new("topology.sh", &[("SWD_PREFIX", "swd-")], PBX);
    assert!(env.up(), "tests/e2e/topology.sh up failed");
    fs::write(
        env.path("sipwall.toml"),
        "[trusted]\nnetworks = [\"198.51.100.0/24\"]\n\n\
         [bans.aggregate]\n# each scanner runs from its own address; keep their bans apart\nenabled = false\n\n\
         [enforce]\nmode = \"host\"\nqueues = 1\n",
    )
    .unwrap();

    let trace = env.path("uas-messages.log");
    env.tools.push(start_sipp_uas(PBX, env.dir.path(), &trace_args(&trace)));
    env.tools.push(start_sipp_uas(PBX, env.dir.path(), &["-t", "t1"]));
    std::thread::sleep(Duration::from_millis(500));

    // 0. Unprotected baseline: the same scan finds the PBX's extensions, so the assertions
    //    below measure sipwall, not a deaf PBX.
    let out = sipvicious("svwar", "203.0.113.9", &["-e1998-2002", "-m", "REGISTER"]);
    assert!(out.contains("| 2000 "), "baseline svwar did not find extension 2000:\n{out}");
    let (ghost_before, _) = invites_seen(&trace, "203.0.113.", "198.51.100.2");

    // 1. Protected: provider works, scanners see nothing, no ghost call.
    env.daemon.start();
    assert!(env.daemon.log().contains("queue backend:"), "backend not logged");
    provider_calls(10);
    provider_calls_tcp(5);
    let attackers = [
        ("svmap", "203.0.113.2", vec![]),
        ("svmap", "203.0.113.3", vec!["-m", "INVITE", "-c"]),
        ("svwar", "203.0.113.4", vec!["-e1995-2010", "-m", "REGISTER"]),
        ("svwar", "203.0.113.5", vec!["-e1995-2010", "-m", "INVITE", "-c"]),
        ("svcrack", "203.0.113.6", vec!["-u", "2000", "-r", "1000-1030"]),
        ("svcrack", "203.0.113.7", vec!["-u", "2000", "-r", "1000-1030", "-c"]),
        ("svmap", "203.0.113.8", vec!["-m", "INVITE"]),
    ];
    for (tool, src, extra) in &attackers {
        let out = sipvicious(tool, src, extra);
        match *tool {
            "svmap" => assert!(
                !out.contains("203.0.113.1:5060"),
                "svmap from {src} {extra:?} found the PBX:\n{out}"
            ),
            "svwar" => assert!(
                !(1995..=2010).any(|e| out.contains(&format!("| {e} "))),
                "svwar from {src} {extra:?} found an extension:\n{out}"
            ),
            _ => assert!(!out.contains("| 2000 "), "svcrack from {src} found a password:\n{out}"),
        }
    }
    provider_calls(10); // the trusted provider is never banned, whatever the scanners did
    let (ghost, provider) = invites_seen(&trace, "203.0.113.", "198.51.100.2");
    let ghost = ghost - ghost_before;
    assert_eq!(ghost, 0, "INVITEs from the attacker reached the PBX (ghost calls)");
    assert!(provider >= 20, "the PBX saw only {provider} provider INVITEs");
    let banned = kernel_bans(PBX);
    for (_, src, _) in &attackers {
        let net = IpNet::from(src.parse::<IpAddr>().unwrap());
        assert!(
            banned.contains(&net),
            "{src} not in the kernel ban set: {banned:?}\n{}",
            env.daemon.log()
        );
    }
    assert!(!banned.iter().any(|n| n.contains(&"198.51.100.2".parse::<IpAddr>().unwrap())));

    // 2. Clean exit keeps the door shut: no queue rule is left, but the ban sets are, so a
    //    banned scanner's INVITE is still dropped by the kernel while no daemon runs, and the
    //    provider's calls complete (nothing is queued without a consumer). Bans and reasons
    //    are in the store.
    env.daemon.stop();
    only_bans_left(PBX);
    let kept = kernel_bans(PBX);
    for (_, src, _) in &attackers {
        let net = IpNet::from(src.parse::<IpAddr>().unwrap());
        assert!(kept.contains(&net), "{src}'s ban left the kernel at SIGTERM: {kept:?}");
    }
    let (ghost_stopped, _) = invites_seen(&trace, "203.0.113.", "198.51.100.2");
    banned_invite("203.0.113.4");
    provider_calls(5);
    let (ghost_after, _) = invites_seen(&trace, "203.0.113.", "198.51.100.2");
    assert_eq!(ghost_after, ghost_stopped, "a banned source reached the PBX after a clean stop");
    {
        let store = sipwall_store::Store::open(env.path("state").join("sipwall.db")).unwrap();
        let stored = store.load_active_bans(wall_now()).unwrap();
        for (_, src, _) in &attackers {
            let net = IpNet::from(src.parse::<IpAddr>().unwrap());
            let ban = stored.iter().find(|b| b.net == net).unwrap_or_else(|| {
                panic!("{src} not in the store: {stored:?}");
            });
            assert!(!ban.reason.is_empty() && !ban.rule.is_empty(), "{ban:?}");
            eprintln!("stored ban {}: {} ({})", ban.net, ban.rule, ban.reason);
        }
    }

    // 3. Restart: bans back in the kernel.
    env.daemon.start();
    let back = kernel_bans(PBX);
    for (_, src, _) in &attackers {
        assert!(back.contains(&IpNet::from(src.parse::<IpAddr>().unwrap())), "{src} not restored");
    }

    // 3b. SIGHUP: a new block list reaches the kernel; bans are kept.
    let cfg = env.path("sipwall.toml");
    let text = fs::read_to_string(&cfg).unwrap();
    fs::write(&cfg, format!("[blocklist]\nnetworks = [\"203.0.113.100/32\"]\n\n{text}")).unwrap();
    let pid = env.daemon.pid().to_string();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, out) = output(in_ns(PBX, 10, "nft", &["list", "set", "inet", "sipwall", "block4"]));
        if out.contains("203.0.113.100") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "block list not in the kernel after SIGHUP:\n{}",
            env.daemon.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(env.daemon.log().contains("SIGHUP: policy reloaded"));
    assert_eq!(kernel_bans(PBX).len(), back.len(), "bans lost on SIGHUP");

    // 4. kill -9: fail open (provider calls complete without the daemon); bans stay enforced.
    env.daemon.kill9();
    provider_calls(5);
    assert_eq!(kernel_bans(PBX).len(), back.len());

    // 5. Restart after kill -9: leftovers replaced, bans back; then a clean exit.
    env.daemon.start();
    let (_, saved) = output(in_ns(PBX, 10, "iptables-save", &[]));
    assert!(saved.matches("-j SIPWALL-IN").count() <= 1, "duplicate jumps:\n{saved}");
    let again = kernel_bans(PBX);
    for (_, src, _) in &attackers {
        assert!(
            again.contains(&IpNet::from(src.parse::<IpAddr>().unwrap())),
            "{src} lost after kill -9"
        );
    }
    provider_calls(5);
    env.daemon.stop();
    // The `ip filter` tables the first run's iptables fallback created outlived its kill -9:
    // this run cannot know they were sipwall's, so it keeps them (no rule, accept policy).
    queue_rules_gone_bans_kept(PBX);

    // 6. After a kill -9, `sipwall run --cleanup` removes the leftovers.
    env.daemon.start();
    env.daemon.kill9();
    let (_, left) = output(in_ns(PBX, 10, "iptables-save", &[]));
    assert!(left.contains("SIPWALL-IN"), "kill -9 should leave the rules (fail open, bans kept)");
    let (ok, out) = output(in_ns(
        PBX,
        30,
        env!("CARGO_BIN_EXE_sipwall"),
        &["run", "--config", env.path("sipwall.toml").to_str().unwrap(), "--cleanup"],
    ));
    assert!(ok, "sipwall run --cleanup failed:\n{out}");
    no_rules_left(PBX);
    let (ghost, _) = invites_seen(&trace, "203.0.113.", "198.51.100.2");
    assert_eq!(ghost, ghost_before);
}

/// One INVITE (SIPp's built-in UAC, one call, no answer expected) from `src` in the attacker
/// namespace to the PBX; the outcome is read from the PBX's trace, not from SIPp.
fn banned_invite(src: &str) {
    attacker_source(src);
    let args = [
        "-sn",
        "uac",
        "203.0.113.1:5060",
        "-i",
        src,
        "-p",
        "5070",
        "-s",
        "2000",
        "-m",
        "1",
        "-timeout",
        "4s",
        "-recv_timeout",
        "3000",
        "-nostdin",
    ];
    let _ = output(in_ns(ATTACKER, 15, "sipp", &args));
}

/// The trusted provider's calls (UDP) and OPTIONS keep-alives to the PBX.
fn provider_calls(calls: u32) {
    sipp_calls(PROVIDER, "198.51.100.1:5060", "198.51.100.2", calls, false);
    sipp_options(PROVIDER, "198.51.100.1:5060", "198.51.100.2");
}

fn provider_calls_tcp(calls: u32) {
    sipp_calls(PROVIDER, "198.51.100.1:5060", "198.51.100.2", calls, true);
}
