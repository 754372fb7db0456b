//! Protected addresses (this host, trusted networks, known-good) are never covered by a ban,
//! and storms of distinct sources end in a few wide bans rather than one ban per address.
mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::*;
use ipnet::IpNet;
use proptest::prelude::*;
use sipwall_engine::{BanAction, BanError, BanOrigin, Engine, Policy, Verdict};

const SVMAP: &[u8] = b"OPTIONS sip:100@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK-2146373830;rport\r\nMax-Forwards: 70\r\nTo: \"sipvicious\"<sip:100@1.1.1.1>\r\nFrom: \"sipvicious\"<sip:100@1.1.1.1>;tag=6366636462393464303133633401313330333232373536\r\nUser-Agent: friendly-scanner\r\nCall-ID: 1234567890\r\nContact: sip:100@203.0.113.5:5060\r\nCSeq: 1 OPTIONS\r\nAccept: application/sdp\r\nContent-Length: 0\r\n\r\n";

const OWN_OPTIONS: &[u8] = b"OPTIONS sip:203.0.113.10 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bK776asdhds\r\nMax-Forwards: 70\r\nTo: <sip:203.0.113.10>\r\nFrom: <sip:asterisk@203.0.113.10>;tag=1928301774\r\nCall-ID: a84b4c76e66710@203.0.113.10\r\nCSeq: 63104 OPTIONS\r\nUser-Agent: Asterisk PBX 20.5.0\r\nContent-Length: 0\r\n\r\n";

fn policy(t: &str) -> Policy {
    Policy::from_toml_str(t).unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn scan(e: &mut Engine, src: &str, t: u64) -> Vec<BanAction> {
    e.decide(&inbound(src, SVMAP), at(t)).bans
}

fn covers(e: &Engine, a: IpAddr) -> Vec<IpNet> {
    e.bans().filter(|b| b.net.contains(&a)).map(|b| b.net).collect()
}

/// The reported case: five scanners in the /24 that holds the PBX's own address.
#[test]
fn five_scanners_in_the_hosts_own_slash24_never_ban_the_host() {
    let own = ip("203.0.113.10");
    for (how, mut e) in [
        ("set_local_addresses", Engine::new(Policy::default())),
        (
            "bans.local_addresses",
            Engine::new(policy("[bans]\nlocal_addresses = [\"203.0.113.10\"]\n")),
        ),
    ] {
        if how == "set_local_addresses" {
            assert!(e.set_local_addresses(&[own, ip("2001:db8:a::10")]).is_empty());
        }
        for (i, h) in [1, 2, 3, 4, 5].iter().enumerate() {
            scan(&mut e, &format!("203.0.113.{}:5060", 100 + h), i as u64);
        }
        assert!(covers(&e, own).is_empty(), "{how}: {:?}", covers(&e, own));
        // The range is still banned around the host: a sixth scanner is dropped by a ban.
        let d = e.decide(&inbound("203.0.113.200:5060", OWN_OPTIONS), at(10));
        assert_eq!(d.record.map(|r| r.rule), Some("ban.active"), "{how}");
        let pieces: Vec<IpNet> =
            e.bans().filter(|b| b.origin == BanOrigin::Aggregate).map(|b| b.net).collect();
        assert_eq!(pieces.len(), 8, "{how}: {pieces:?}");
        // SIP the host sends to itself is judged, not dropped by a ban.
        let mut p = inbound("203.0.113.10:5060", OWN_OPTIONS);
        p.dst = sa("203.0.113.10:5060");
        assert_eq!(e.decide(&p, at(11)).verdict, Verdict::Accept, "{how}");
    }
}

/// The aggregate's sentence lists the protected addresses it was split around in address
/// order, whatever order the engine's (seeded) sets hold them in: the same packets give the
/// same sentence in every run and on every node.
#[test]
fn an_aggregate_names_the_protected_addresses_it_spares_in_address_order() {
    // Eight host addresses in one /29, so the split stays within its piece limit.
    let own: Vec<IpAddr> = (8..16).rev().map(|i| ip(&format!("203.0.113.{i}"))).collect();
    for _ in 0..4 {
        let mut e = Engine::new(Policy::default());
        e.set_local_addresses(&own);
        let mut reasons = Vec::new();
        for h in 1..=5 {
            for b in scan(&mut e, &format!("203.0.113.{}:5060", 100 + h), h) {
                if let BanAction::Add(b) = b {
                    if b.origin == BanOrigin::Aggregate {
                        reasons.push(b.reason);
                    }
                }
            }
        }
        let mut sorted = own.clone();
        sorted.sort();
        let listed: Vec<String> = sorted.iter().map(|a| format!("{a}/32")).collect();
        let want = format!("except protected {} (", listed.join(", "));
        assert!(!reasons.is_empty(), "the /24 is aggregated around the host");
        for r in &reasons {
            assert!(r.contains(&want), "{r}\nshould contain: {want}");
        }
    }
}

#[test]
fn a_scanner_on_a_local_address_is_dropped_but_never_banned() {
    let mut e = Engine::new(Policy::default());
    e.set_local_addresses(&[ip("203.0.113.10")]);
    let d = e.decide(&inbound("203.0.113.10:5060", SVMAP), at(0));
    assert_eq!(d.verdict, Verdict::Drop);
    assert!(d.bans.is_empty());
    assert!(d.record.unwrap().summary.contains("protected address"));
    assert_eq!(e.stats().bans_protected, 1);
}

#[test]
fn new_local_addresses_lift_bans_that_cover_them() {
    let mut e = Engine::new(Policy::default());
    for h in 1..=5 {
        scan(&mut e, &format!("203.0.113.{h}:5060"), h);
    }
    assert!(!covers(&e, ip("203.0.113.10")).is_empty(), "the /24 is banned");
    let removed = e.set_local_addresses(&[ip("203.0.113.10")]);
    assert_eq!(removed, vec![BanAction::Remove("203.0.113.0/24".parse().unwrap())]);
    assert!(covers(&e, ip("203.0.113.10")).is_empty());
    // Known-good addresses are protected the same way.
    let removed = e.set_known_good(&["203.0.113.3/32".parse().unwrap()]);
    assert_eq!(removed, vec![BanAction::Remove("203.0.113.3/32".parse().unwrap())]);
}

#[test]
fn manual_bans_covering_protected_addresses_are_refused_with_the_reason() {
    let mut e = Engine::new(policy("[trusted]\nnetworks = [\"198.51.100.0/24\"]\n"));
    e.set_local_addresses(&[ip("192.0.2.10")]);
    e.set_known_good(&["2001:db8:5::/64".parse().unwrap()]);
    let d = Duration::from_secs(60);
    for (net, member, what) in [
        ("192.0.2.0/24", "192.0.2.10/32", "an address of this host"),
        ("192.0.2.10/32", "192.0.2.10/32", "an address of this host"),
        ("198.51.0.0/16", "198.51.100.0/24", "trusted"),
        ("2001:db8::/32", "2001:db8:5::/64", "known-good"),
    ] {
        let err = e.ban_manual(net.parse().unwrap(), d, "x", at(0)).unwrap_err();
        let BanError::CoversProtected { member: m, .. } = &err else { panic!("{err:?}") };
        assert_eq!(m.to_string(), member);
        let text = err.to_string();
        assert!(text.contains(net) && text.contains(member) && text.contains(what), "{text}");
    }
    assert!(e.ban_manual("192.0.2.0/29".parse().unwrap(), d, "x", at(0)).is_ok());
    assert_eq!(e.bans().count(), 1);
}

/// A ban shared by another node: local policy wins (protected networks refused with the
/// reason), a later-ending one extends, an earlier-ending or ended one changes nothing.
#[test]
fn shared_bans_respect_local_policy_and_only_ever_extend() {
    let mut e = Engine::new(policy("[trusted]\nnetworks = [\"198.51.100.0/24\"]\n"));
    e.set_local_addresses(&[ip("192.0.2.10")]);
    let shared = |net: &str, until_s: u64| sipwall_engine::Ban {
        net: net.parse().unwrap(),
        since: at(0),
        until: at(until_s * 1000),
        count: 1,
        rule: "signature.sipvicious-ua".into(),
        reason: "from node pbx-02".into(),
        evidence: Default::default(),
        origin: BanOrigin::Fleet,
    };
    for (net, member) in [("198.51.100.0/24", "198.51.100.0/24"), ("192.0.2.0/24", "192.0.2.10/32")]
    {
        let err = e.ban_shared(shared(net, 60), at(1)).unwrap_err();
        let BanError::CoversProtected { member: m, .. } = &err else { panic!("{err:?}") };
        assert_eq!(m.to_string(), member);
    }
    assert_eq!(e.bans().count(), 0);
    let a = e.ban_shared(shared("203.0.113.9/32", 60), at(1)).unwrap();
    assert!(matches!(a, BanAction::Add(ref b) if b.origin == BanOrigin::Fleet));
    assert!(matches!(
        e.ban_shared(shared("203.0.113.9/32", 30), at(1)),
        Err(BanError::AlreadyBanned { .. })
    ));
    e.ban_shared(shared("203.0.113.9/32", 120), at(1)).unwrap();
    let b = e.ban_for(ip("203.0.113.9"), at(2)).unwrap();
    assert_eq!((b.until, b.origin, e.bans().count()), (at(120_000), BanOrigin::Fleet, 1));
    assert!(matches!(
        e.ban_shared(shared("203.0.113.10/32", 5), at(6000)),
        Err(BanError::Ended { .. })
    ));
    // the source is dropped by the engine like any banned one
    assert_eq!(e.decide(&inbound("203.0.113.9:5060", SVMAP), at(3000)).verdict, Verdict::Drop);
}

#[test]
fn restored_bans_covering_the_host_are_not_put_back() {
    let mut e = Engine::new(Policy::default());
    for h in 1..=5 {
        scan(&mut e, &format!("203.0.113.{h}:5060"), h);
    }
    let saved: Vec<_> = e.bans().cloned().collect();
    let mut f = Engine::new(Policy::default());
    f.set_local_addresses(&[ip("203.0.113.10")]);
    let restored = saved.into_iter().filter(|b| f.restore_ban(b.clone(), at(10))).count();
    assert_eq!(restored, 5, "the five address bans, not the /24");
    assert!(covers(&f, ip("203.0.113.10")).is_empty());
}

/// A storm of 100,000 scanners, each in its own IPv6 /64, spread over 16 /48s: ends in a
/// few hundred bans (16 per /48 before the /48 itself is banned).
#[test]
fn an_ipv6_storm_of_distinct_64s_ends_in_a_few_hundred_bans() {
    let mut e = Engine::new(Policy::default());
    let mut adds = 0usize;
    for i in 0..100_000u64 {
        let (site, subnet) = (i % 16, i / 16);
        let src = format!("[2001:db8:{site:x}:{subnet:x}::1]:5060");
        let d = e.decide(&inbound(&src, SVMAP), at(i / 20)); // 20k packets/s
        assert_ne!(d.verdict, Verdict::Accept, "{src}");
        adds += d.bans.len();
    }
    assert!(adds <= 300, "{adds} bans");
    let wide: Vec<String> =
        e.bans().filter(|b| b.net.prefix_len() == 48).map(|b| b.net.to_string()).collect();
    assert_eq!(wide.len(), 16, "{wide:?}");
    assert!(e.bans().all(|b| b.net.prefix_len() >= 48));
}

/// Forged IPv4 sources over many /24s of many /16s, far beyond `max_per_second`: the excess
/// is folded into /24 bans (every source stays banned), and /24s fold into /16s.
#[test]
fn an_ipv4_storm_over_many_slash24s_is_capped_and_folded() {
    let mut e = Engine::new(Policy::default());
    let mut adds = Vec::new();
    let n = 100_000u32;
    for i in 0..n {
        // 10.x.y.z: spread over 256 /16s, every source in its own /24 at first.
        let a = std::net::Ipv4Addr::from(
            0x0a00_0001u32 + i.wrapping_mul(0x0000_0100).wrapping_add(i % 7),
        );
        let d = e.decide(&inbound(&format!("{a}:5060"), SVMAP), at(u64::from(i) / 20));
        assert_ne!(d.verdict, Verdict::Accept, "{a}");
        adds.extend(d.bans);
    }
    let hosts =
        adds.iter().filter(|a| matches!(a, BanAction::Add(b) if b.net.prefix_len() == 32)).count();
    let per_second_cap = e.policy().bans.max_per_second as usize;
    assert!(hosts <= per_second_cap * (n as usize / 20_000 + 1), "{hosts} address bans");
    assert!(e.stats().bans_folded > 0);
    assert!(e.bans().any(|b| b.net.prefix_len() == 16));
    assert!(adds.len() < 30_000, "{} bans for {n} sources", adds.len());
    // Not lost: every storm source is under some ban.
    for i in (0..n).step_by(997) {
        let a = std::net::Ipv4Addr::from(
            0x0a00_0001u32 + i.wrapping_mul(0x0000_0100).wrapping_add(i % 7),
        );
        assert!(e.ban_for(IpAddr::V4(a), at(u64::from(n) / 20)).is_some(), "{a}");
    }
}

#[test]
fn folded_bans_never_cover_the_host_either() {
    let mut e = Engine::new(policy("[bans]\nmax_per_second = 2\nlocal_addresses = [\"203.0.113.10\"]\n[bans.aggregate]\nipv4_threshold = 200\n"));
    for h in 1..=20 {
        scan(&mut e, &format!("203.0.113.{}:5060", 100 + h), 0);
    }
    assert!(covers(&e, ip("203.0.113.10")).is_empty());
    for h in 1..=20 {
        assert!(e.ban_for(ip(&format!("203.0.113.{}", 100 + h)), at(1)).is_some(), "not lost");
    }
}

fn prop_policy() -> Policy {
    policy(
        "[trusted]\nnetworks = [\"198.51.100.0/28\", \"2001:db8:7::/48\"]\n\
         [bans]\nmax_per_second = 3\nlocal_addresses = [\"203.0.113.10\", \"2001:db8:8::10\"]\n\
         [bans.aggregate]\nipv4_threshold = 2\nipv6_threshold = 2\nipv4_wide_prefix = 16\n\
         ipv4_wide_threshold = 2\nipv6_wide_threshold = 2\n[limits]\nmax_bans = 200\n",
    )
}

fn prop_source(i: u16) -> String {
    match i % 5 {
        0 => format!("198.51.100.{}:5060", i % 64),
        1 => format!("203.0.113.{}:5060", i % 256),
        2 => format!("203.0.{}.{}:5060", i % 4, i % 256),
        3 => format!("[2001:db8:8:{:x}::{:x}]:5060", i % 3, i % 50),
        _ => format!("[2001:db8:{:x}::{:x}]:5060", 6 + i % 3, i),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever the traffic, no automatic ban ever contains a local or trusted address.
    #[test]
    fn no_automatic_ban_ever_covers_a_local_or_trusted_address(
        steps in prop::collection::vec((any::<u16>(), 0..3000u16), 1..400)
    ) {
        let p = prop_policy();
        let local = [ip("192.0.2.10"), ip("2001:db8:6::1")];
        let protected: Vec<IpAddr> = [
            "198.51.100.0", "198.51.100.15", "2001:db8:7::", "2001:db8:7:ffff::1",
            "203.0.113.10", "2001:db8:8::10", "192.0.2.10", "2001:db8:6::1",
        ].iter().map(|s| ip(s)).collect();
        let mut e = Engine::new(p);
        e.set_local_addresses(&local);
        let mut t = 0;
        for (src, dt) in steps {
            t += u64::from(dt);
            let d = e.decide(&inbound(&prop_source(src), SVMAP), at(t));
            for a in &d.bans {
                if let BanAction::Add(b) = a {
                    for x in &protected {
                        prop_assert!(!b.net.contains(x), "{} covers {}", b.net, x);
                    }
                }
            }
            if dt % 101 == 0 {
                e.expire(at(t));
            }
        }
        for b in e.bans() {
            for x in &protected {
                prop_assert!(!b.net.contains(x), "{} covers {}", b.net, x);
            }
        }
    }
}
