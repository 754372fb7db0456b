//! End-to-end test of `sipwall run` in host mode over **IPv6**, with real tools in network
//! namespaces (`tests/e2e/topology.sh` with `SWD_IPV6=1`, prefix `sw6-`): a SIPp PBX bound to
//! 2001:db8:10::10 behind sipwall, a trusted SIPp provider (2001:db8:100::2) placing calls and
//! OPTIONS keepalives over IPv6, and SIPVicious svmap `-6` scanning the PBX from the attacker's
//! 2001:db8:113::/64. It asserts that every provider call completes, that no scanner INVITE
//! reaches the PBX, that each scanner is banned in the kernel sets `ban_addr6`/`ban_net6` and in
//! the store, that with the daemon killed (-9) calls still complete and the kernel sets alone
//! keep a banned scanner out, that a restart puts the stored bans back, that SIGTERM leaves no
//! queue rule but keeps the bans, and that `--cleanup` leaves nothing. Needs root; FAILS with a clear message otherwise.
//!
//! Every external command runs under `timeout`, every wait is bounded; the processes it started
//! (by PID) and the namespaces are removed by a drop guard even when an assertion fails.
mod common;

use std::fs;
use std::net::IpAddr;

use common::{
    in_ns, invites_seen, is_root, kernel_bans, kernel_bans6, no_rules_left, output,
    queue_rules_gone_bans_kept, sipp_calls, sipp_options, start_sipp_uas_on, tail, trace_args,
    wait_udp_listening, wall_now, Stage,
};
use ipnet::IpNet;

const PBX: &str = "sw6-pbx";
const PROVIDER: &str = "sw6-provider";
const ATTACKER: &str = "sw6-attacker";
/// The PBX's service address (on its loopback), where the SIPp UAS listens.
const PBX_IP: &str = "2001:db8:10::10";
const PBX_SIP: &str = "[2001:db8:10::10]:5060";
const PROVIDER_IP: &str = "2001:db8:100::2";
/// Every attacker address starts with this (in SIP text too: svmap writes it into Via/Contact).
const ATTACKER_NET: &str = "2001:db8:113::";
/// The unprotected baseline scan's source, apart from the protected scans' sources.
const BASELINE_SCANNER: &str = "2001:db8:113::9";

/// SIPVicious svmap over IPv6 (`-6`) from `src` (bound and written into its messages) at the
/// PBX, with `extra` options; its output.
fn svmap6(src: &str, extra: &[&str]) -> String {
    let mut args = vec!["-6", "-b", src, "-x", src];
    args.extend_from_slice(extra);
    args.push(PBX_IP);
    let (_, out) = output(in_ns(ATTACKER, 60, "sipvicious_svmap", &args));
    eprintln!("--- svmap -6 from {src} {extra:?}\n{}", tail(&out, 12));
    out
}

/// svmap lists a device it found as `<address>:<port>` (IPv6 without brackets).
fn svmap_found_pbx(out: &str) -> bool {
    out.contains(&format!("{PBX_IP}:5060"))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
#[ignore = "needs root, network namespaces, SIPp and SIPVicious: run by scripts/test.sh"]
fn inline_protection_over_ipv6_with_real_tools_in_network_namespaces() {
    assert!(
        is_root(),
        "e2e_inline_v6 needs root: it creates network namespaces (sw6-*), nftables/ip6tables \
         rules and runs SIPp and SIPVicious in them over IPv6. \
         Run: sudo -E cargo test -p sipwall --test e2e_inline_v6"
    );
    common::require_tools(
        "e2e_inline_v6",
        &["sipp", "nft", "ip6tables-save", "iptables-save", "ss", "sipvicious_svmap"],
        "apt-get install sip-tester nftables iptables iproute2; pip install sipvicious",
    );
    let mut env = Stage::new("topology.sh", &[("SWD_PREFIX", "sw6-"), ("SWD_IPV6", "1")], PBX);
    assert!(
        env.up(),
        "SWD_IPV6=1 tests/e2e/topology.sh up failed (are network namespaces and IPv6 available?)"
    );
    fs::write(
        env.path("sipwall.toml"),
        "[trusted]\nnetworks = [\"198.51.100.0/24\", \"2001:db8:100::/64\"]\n\n\
         [bans.aggregate]\n# each scan runs from its own address; keep their bans apart\nenabled = false\n\n\
         [enforce]\nmode = \"host\"\nqueues = 1\n",
    )
    .unwrap();

    let trace = env.path("uas-messages.log");
    env.tools.push(start_sipp_uas_on(PBX, PBX_IP, env.dir.path(), &trace_args(&trace)));
    wait_udp_listening(PBX, 5060);

    // 0. Unprotected baseline: over IPv6 the same scan finds the PBX and rings it, so the
    //    assertions below measure sipwall, not an unreachable PBX or a scanner that cannot
    //    speak IPv6.
    let out = svmap6(BASELINE_SCANNER, &["-m", "INVITE"]);
    assert!(svmap_found_pbx(&out), "baseline svmap -6 did not find the PBX:\n{out}");
    let (ghost_before, _) = invites_seen(&trace, ATTACKER_NET, PROVIDER_IP);
    assert!(ghost_before >= 1, "baseline: svmap's INVITE over IPv6 did not reach the PBX");

    // 1. Protected: IPv6 is queued and its ban set exists.
    env.daemon.start();
    let (ok, ruleset) = output(in_ns(PBX, 10, "nft", &["list", "table", "inet", "sipwall"]));
    assert!(ok, "no inet sipwall table in {PBX}:\n{ruleset}\n{}", env.daemon.log());
    for set in ["set ban_addr6", "set ban_net6"] {
        assert!(ruleset.contains(set), "no {set}:\n{ruleset}");
    }
    let (_, saved6) = output(in_ns(PBX, 10, "ip6tables-save", &[]));
    assert!(
        ruleset.contains("queue") || saved6.contains("NFQUEUE"),
        "nothing queues IPv6 SIP traffic:\n{ruleset}\n{saved6}"
    );

    // The trusted provider's calls complete through sipwall.
    provider_calls(10);

    // The scanners: OPTIONS (svmap's default), INVITE, INVITE in compact form (no User-Agent).
    let scanners: [(&str, &[&str]); 3] = [
        ("2001:db8:113::2", &[]),
        ("2001:db8:113::3", &["-m", "INVITE"]),
        ("2001:db8:113::4", &["-m", "INVITE", "-c"]),
    ];
    for (src, extra) in &scanners {
        let out = svmap6(src, extra);
        assert!(
            !svmap_found_pbx(&out),
            "svmap -6 from {src} {extra:?} found the PBX through sipwall:\n{out}\n{}",
            env.daemon.log()
        );
    }

    // Still trusted after the scans.
    provider_calls(10);
    let (ghost, from_provider) = invites_seen(&trace, ATTACKER_NET, PROVIDER_IP);
    assert_eq!(
        ghost - ghost_before,
        0,
        "svmap's INVITEs over IPv6 reached the PBX behind sipwall (ghost calls):\n{}",
        env.daemon.log()
    );
    assert!(from_provider >= 20, "the PBX saw only {from_provider} of 20 provider INVITEs");

    // Each scanner is in the IPv6 ban sets, the provider is not, and the IPv4 ones stay empty.
    let banned = kernel_bans6(PBX);
    for (src, _) in &scanners {
        assert!(
            banned.iter().any(|n| n.contains(&ip(src))),
            "{src} not in the IPv6 ban sets: {banned:?}\n{}",
            env.daemon.log()
        );
    }
    assert!(
        !banned.iter().any(|n| n.contains(&ip(PROVIDER_IP))),
        "the trusted provider was banned: {banned:?}"
    );
    assert!(
        !banned.iter().any(|n| n.contains(&ip(BASELINE_SCANNER))),
        "the baseline scan (before sipwall ran) was banned: {banned:?}"
    );
    assert_eq!(kernel_bans(PBX), vec![], "an IPv6 ban landed in an IPv4 set");

    // 2. kill -9: fail open over IPv6 (the provider's calls complete without the daemon), and
    //    the bans are enforced by the kernel alone: a banned scanner still finds nothing and
    //    rings nothing, where the baseline scan found and rang the PBX.
    env.daemon.kill9();
    provider_calls(3);
    let out = svmap6("2001:db8:113::3", &["-m", "INVITE"]);
    assert!(!svmap_found_pbx(&out), "with the daemon dead, banned svmap found the PBX:\n{out}");
    let (ghost, _) = invites_seen(&trace, ATTACKER_NET, PROVIDER_IP);
    assert_eq!(ghost, ghost_before, "a banned source's INVITE passed the IPv6 ban sets");

    // 3. Restart: the stored IPv6 bans are in the kernel (adopted, reconciled) before the
    //    queue opens.
    env.daemon.start();
    let back = kernel_bans6(PBX);
    for (src, _) in &scanners {
        assert!(back.iter().any(|n| n.contains(&ip(src))), "{src} not restored: {back:?}");
    }
    provider_calls(2);

    // 4. SIGTERM: no queue rule is left but the IPv6 bans stay in the kernel; the bans and
    //    their reasons are in the store; `--cleanup` then removes everything.
    env.daemon.stop();
    // The `ip6 filter` table the first run's fallback created outlived its kill -9: this run
    // cannot know it was sipwall's, so it keeps it (no rule, accept policy).
    queue_rules_gone_bans_kept(PBX);
    let kept = kernel_bans6(PBX);
    for (src, _) in &scanners {
        assert!(kept.iter().any(|n| n.contains(&ip(src))), "{src} left the kernel at stop");
    }
    env.daemon.cleanup();
    no_rules_left(PBX);
    let store = sipwall_store::Store::open(env.path("state").join("sipwall.db")).unwrap();
    let stored = store.load_active_bans(wall_now()).unwrap();
    for (src, _) in &scanners {
        let net = IpNet::from(ip(src));
        let ban = stored
            .iter()
            .find(|b| b.net == net)
            .unwrap_or_else(|| panic!("{src} not in the store: {stored:?}"));
        assert!(!ban.reason.is_empty() && !ban.rule.is_empty(), "{ban:?}");
        eprintln!("stored ban {}: {} ({})", ban.net, ban.rule, ban.reason);
    }
}

/// The trusted provider's calls and OPTIONS keep-alives to the PBX, over IPv6.
fn provider_calls(calls: u32) {
    sipp_calls(PROVIDER, PBX_SIP, PROVIDER_IP, calls, false);
    sipp_options(PROVIDER, PBX_SIP, PROVIDER_IP);
}
