//! Property tests over random sequences mixing real recorded scanner and legitimate messages,
//! malformed bytes and keep-alives, from trusted and untrusted sources, both directions.
mod common;

use std::net::IpAddr;
use std::sync::OnceLock;

use common::*;
use proptest::prelude::*;
use sipwall_engine::{BanAction, Decision, Engine, Policy, Verdict};

fn pool() -> &'static Vec<(bool, Vec<u8>)> {
    static POOL: OnceLock<Vec<(bool, Vec<u8>)>> = OnceLock::new();
    POOL.get_or_init(|| {
        let mut v = Vec::new();
        for name in [
            "svmap-options",
            "svmap-c-invite",
            "svwar-register",
            "svcrack-register",
            "phone-register-and-calls",
            "provider-invites-and-options",
        ] {
            for d in load(name).datagrams.into_iter().take(40) {
                v.push((d.inbound, d.bytes));
            }
        }
        v.push((true, b"\r\n\r\n".to_vec()));
        v.push((true, b"\x00\x01garbage".to_vec()));
        v.push((
            true,
            b"INVITE sip:100@1.1.1.1 SIP/2.0\r\nUser-Agent: friendly-scanner\r\n".to_vec(),
        ));
        v
    })
}

const TRUSTED: &str = "[trusted]\nnetworks = [\"198.51.100.0/28\", \"2001:db8:7::/48\"]\n";

fn policy(cap: usize) -> Policy {
    Policy::from_toml_str(&format!(
        "{TRUSTED}[ports]\nguarded = [5060]\ntripwire = [5070]\n[bans.aggregate]\nipv4_threshold = 2\nipv6_threshold = 2\n[limits]\nmax_tracked_sources = {cap}\nmax_bans = 64\n[behaviour.flood]\nmax = 5\n[behaviour.enumeration]\nmax = 2\n[behaviour.not_found]\nmax = 2\n[behaviour.challenges]\nmax = 2\n"
    ))
    .unwrap()
}

/// Sources: some trusted (v4 and v6), neighbours of trusted ones (same /24 and /64, to tempt
/// aggregation), and strangers.
fn source(i: u16) -> String {
    match i % 6 {
        0 => format!("198.51.100.{}:5060", i % 16),
        1 => format!("198.51.100.{}:5060", 16 + i % 200),
        2 => format!("[2001:db8:7::{:x}]:5060", i),
        3 => format!("[2001:db8:8::{:x}]:5060", i),
        4 => format!("203.0.113.{}:5060", i % 250),
        _ => format!("192.0.2.{}:5060", i % 250),
    }
}

fn is_trusted(ip: IpAddr) -> bool {
    let p = policy(16);
    p.trusted.contains_ip(ip)
}

#[derive(Debug, Clone)]
struct Step {
    msg: usize,
    src: u16,
    dt: u16,
    port: u8,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        (0..1000usize, any::<u16>(), 0..5000u16, 0..4u8).prop_map(|(msg, src, dt, port)| Step {
            msg,
            src,
            dt,
            port,
        }),
        1..300,
    )
}

fn run(e: &mut Engine, steps: &[Step]) -> Vec<(String, Decision)> {
    let pool = pool();
    let mut t = 0u64;
    let mut out = Vec::new();
    for s in steps {
        let (inb, bytes) = &pool[s.msg % pool.len()];
        let peer = source(s.src);
        let mut p = if *inb { inbound(&peer, bytes) } else { outbound(&peer, bytes) };
        let port = [5060, 5060, 5070, 8080][s.port as usize];
        if *inb {
            p.dst.set_port(port);
        } else {
            p.src.set_port(port);
        }
        t += s.dt as u64 * 10;
        if s.dt % 97 == 0 {
            e.expire(at(t));
        }
        out.push((peer, e.decide(&p, at(t))));
    }
    out
}

#[test]
fn the_trusted_property_is_not_vacuous() {
    // The same random mix does ban untrusted neighbours, so "trusted never banned" means something.
    let steps: Vec<Step> = (0..300u16)
        .map(|i| Step { msg: i as usize * 7, src: i * 13, dt: 10, port: (i % 4) as u8 })
        .collect();
    let mut e = Engine::new(policy(64));
    let out = run(&mut e, &steps);
    assert!(e.stats().bans_added > 0);
    assert!(out.iter().any(|(p, d)| is_trusted(sa(p).ip())
        && d.record.as_ref().is_some_and(|r| r.rule == "trusted.oddity")));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn trusted_sources_are_never_banned_nor_dropped(steps in steps()) {
        let mut e = Engine::new(policy(64));
        for (peer, d) in run(&mut e, &steps) {
            let ip: IpAddr = sa(&peer).ip();
            if is_trusted(ip) {
                prop_assert_eq!(d.verdict, Verdict::Accept, "{} {:?}", peer, d.record);
            }
            for a in &d.bans {
                if let BanAction::Add(b) = a {
                    prop_assert!(!is_trusted(b.net.network()) && !policy(16).trusted.iter().any(|t| b.net.contains(t) || t.contains(&b.net)), "ban {} covers trusted", b.net);
                }
            }
        }
        for b in e.bans() {
            prop_assert!(!policy(16).trusted.iter().any(|t| b.net.contains(t) || t.contains(&b.net)));
        }

    }

    #[test]
    fn same_input_same_decisions(steps in steps()) {
        let mut a = Engine::new(policy(16));
        let mut b = Engine::new(policy(16));
        let ra = run(&mut a, &steps);
        let rb = run(&mut b, &steps);
        prop_assert_eq!(ra, rb);
        prop_assert_eq!(a.stats(), b.stats());
    }

    #[test]
    fn state_stays_under_its_bound(steps in steps(), cap in 16usize..40) {
        let mut e = Engine::new(policy(cap));
        let pool_len = pool().len();
        let pool = pool();
        let mut t = 0;
        for s in &steps {
            // Forged sources: every step a new one.
            let peer = format!("10.{}.{}.{}:5060", s.src >> 8, s.src & 255, s.msg % 250);
            let (inb, bytes) = &pool[s.msg % pool_len];
            let p = if *inb { inbound(&peer, bytes) } else { outbound(&peer, bytes) };
            t += s.dt as u64;
            e.decide(&p, at(t));
            prop_assert!(e.tracked_sources() <= cap);
            prop_assert!(e.bans().count() <= 64);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// Arbitrary bytes, and real messages with bytes flipped, never panic the engine.
    #[test]
    fn arbitrary_payloads_never_panic(
        raw in prop::collection::vec(any::<u8>(), 0..600),
        pick in 0..1000usize,
        flips in prop::collection::vec((0..2000usize, any::<u8>()), 0..8),
        outbound_dir in any::<bool>(),
    ) {
        let mut e = Engine::new(policy(16));
        let (_, base) = &pool()[pick % pool().len()];
        let mut mutated = base.clone();
        for (i, b) in flips {
            if !mutated.is_empty() {
                let n = mutated.len();
                mutated[i % n] = b;
            }
        }
        for (k, payload) in [raw, mutated].iter().enumerate() {
            let p = if outbound_dir { outbound("203.0.113.9:5060", payload) } else { inbound("203.0.113.9:5060", payload) };
            let d = e.decide(&p, at(k as u64));
            if d.verdict == Verdict::Accept {
                prop_assert!(d.bans.is_empty());
            }
        }
    }
}
