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
use std::time::{Duration, Instant};

use common::{
    in_ns, invites_seen, is_root, kernel_bans, no_rules_left, only_bans_left, output, sipp_calls,
    start_sipp_uas, tail, trace_args, Stage,
};
use ipnet::IpNet;

const ROUTER: &str = "swr-router";
const PROVIDER: &str = "swr-provider";
const ATTACKER: &str = "swr-attacker";
const PHONE: &str = "swr-phone";
const ATTACKER_IP: &str = "203.0.113.10";
const PROVIDER_IP: &str = "198.51.100.20";
const PHONE_SIP: &str = "192.0.2.10:5060";

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
#[ignore = "needs root, network namespaces, SIPp and SIPVicious: run by scripts/test.sh"]
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
    let mut env = Stage::new("router-topology.sh", &[("SWR_PREFIX", "swr-")], ROUTER);
    assert!(env.up(), "tests/e2e/router-topology.sh up failed");
    fs::write(
        env.path("sipwall.toml"),
        "[trusted]\nnetworks = [\"198.51.100.0/24\"]\n\n\
         [enforce]\nmode = \"router\"\nprotected = [\"192.0.2.0/24\"]\nqueues = 1\n",
    )
    .unwrap();

    let trace = env.path("phone-messages.log");
    env.tools.push(start_sipp_uas(PHONE, env.dir.path(), &trace_args(&trace)));
    wait_phone_listening();

    // 0. Unprotected baseline: through the bare router the same scan finds the phone and rings
    //    it, so the assertions below measure sipwall, not an unreachable phone.
    let out = svmap();
    assert!(out.contains(PHONE_SIP), "baseline svmap did not find the phone:\n{out}");
    let (ghost_before, _) = invites_seen(&trace, "203.0.113.", PROVIDER_IP);
    assert!(ghost_before >= 1, "baseline: svmap's INVITE did not reach the phone");

    // 1. Protected, router mode: packets are queued from FORWARD only; the ban drop sits in
    //    PREROUTING (before the route lookup, so it covers forwarded traffic).
    env.daemon.start();
    let (ok, ruleset) = output(in_ns(ROUTER, 10, "nft", &["list", "table", "inet", "sipwall"]));
    assert!(ok, "no inet sipwall table in {ROUTER}:\n{ruleset}\n{}", env.daemon.log());
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
        env.daemon.log()
    );
    let banned = kernel_bans(ROUTER);
    let attacker = IpNet::from(ATTACKER_IP.parse::<IpAddr>().unwrap());
    assert!(
        banned.iter().any(|n| n.contains(&attacker.addr())),
        "{ATTACKER_IP} not in the kernel ban set of {ROUTER}: {banned:?}\n{}",
        env.daemon.log()
    );
    let provider: IpAddr = PROVIDER_IP.parse().unwrap();
    assert!(!banned.iter().any(|n| n.contains(&provider)), "the trusted provider was banned");

    // The trusted provider still gets through, after the scan as before it.
    provider_calls(3);
    let (ghost, from_provider) = invites_seen(&trace, "203.0.113.", PROVIDER_IP);
    assert_eq!(ghost, ghost_before);
    assert!(from_provider >= 5, "the phone saw only {from_provider} of 5 provider INVITEs");

    // 2. SIGTERM: the queue rules are gone, the attacker's ban stays in the kernel (it covers
    //    forwarded traffic from PREROUTING while no daemon runs); `--cleanup` removes the rest.
    env.daemon.stop();
    only_bans_left(ROUTER);
    assert!(kernel_bans(ROUTER).iter().any(|n| n.contains(&attacker.addr())), "ban lost at stop");
    provider_calls(2);
    env.daemon.cleanup();
    no_rules_left(ROUTER);
}

/// `calls` calls from the provider to the phone, through the router; panics unless all complete.
fn provider_calls(calls: u32) {
    sipp_calls(PROVIDER, PHONE_SIP, PROVIDER_IP, calls, false);
}
