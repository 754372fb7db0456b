//! Property tests of learning: forged packets never teach, decisions and learned facts are
//! deterministic, and the learner's state stays bounded under a spoofed-source flood.
mod common;

use std::sync::OnceLock;

use common::*;
use proptest::prelude::*;
use sipwall_engine::{Engine, FactKey, Policy};

const PROVIDER: &str = "198.51.100.20:5060";

/// The recorded phone scenario: (inbound?, bytes).
fn phone() -> &'static Vec<(bool, Vec<u8>)> {
    static P: OnceLock<Vec<(bool, Vec<u8>)>> = OnceLock::new();
    P.get_or_init(|| {
        load("phone-register-and-calls")
            .datagrams
            .into_iter()
            .map(|d| (d.inbound, d.bytes))
            .collect()
    })
}

fn replace(b: &[u8], from: &str, to: &str) -> Vec<u8> {
    String::from_utf8_lossy(b).replace(from, to).into_bytes()
}

fn upstreams(e: &Engine) -> usize {
    e.learned().iter().filter(|f| matches!(f.key, FactKey::Upstream(_))).count()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// After our REGISTER (recorded, CSeq 2, to the provider), an answer teaches an upstream
    /// iff it comes from the exact address and port, matches Call-ID, CSeq and branch, and is
    /// a 2xx. Every other combination (a forged copy from a spoofed address or port, a wrong
    /// transaction, a non-2xx) teaches nothing.
    #[test]
    fn only_the_exact_answer_teaches(
        from in 0usize..4,
        call_ok in any::<bool>(),
        cseq_ok in any::<bool>(),
        branch_ok in any::<bool>(),
        status in prop::sample::select(vec![100u16, 180, 200, 202, 401, 403, 404, 500]),
        delay_ms in prop::sample::select(vec![1u64, 31_000, 33_000]),
    ) {
        let register = phone()[2].1.clone();
        let mut ok = phone()[3].1.clone();
        if !call_ok { ok = replace(&ok, "1-23370@", "2-23370@"); }
        if !cseq_ok { ok = replace(&ok, "CSeq: 2 REGISTER", "CSeq: 1 REGISTER"); }
        if !branch_ok { ok = replace(&ok, "z9hG4bK-23370-1-2", "z9hG4bK-23370-1-0"); }
        ok = replace(&ok, "SIP/2.0 200 OK", &format!("SIP/2.0 {status} X"));
        let src = ["198.51.100.20:5060", "198.51.100.20:5061", "198.51.100.21:5060", "[2001:db8::20]:5060"][from];
        let mut e = Engine::new(Policy::default());
        e.decide(&outbound(PROVIDER, &register), at(0));
        e.decide(&inbound(src, &ok), at(delay_ms));
        let should = from == 0 && call_ok && cseq_ok && branch_ok
            && (200..300).contains(&status) && delay_ms <= 32_000;
        prop_assert_eq!(upstreams(&e), usize::from(should));
        prop_assert_eq!(e.learn_status().enforcing, should);
    }

    /// Inbound traffic alone (requests and answers, recorded or mangled, from any source)
    /// never teaches an upstream: only our own requests start learning.
    #[test]
    fn inbound_alone_never_teaches_an_upstream(
        steps in prop::collection::vec((0usize..29, 0u16..400, any::<bool>()), 1..60),
    ) {
        let mut e = Engine::new(Policy::default());
        for (t, (i, src, mangle)) in steps.into_iter().enumerate() {
            let mut bytes = phone()[i].1.clone();
            if mangle {
                bytes = replace(&bytes, "127.0.0.1", "198.51.100.20");
            }
            let src = format!("198.51.100.{}:{}", src % 250, 5060 + src / 250);
            e.decide(&inbound(&src, &bytes), at(t as u64 * 10));
        }
        prop_assert_eq!(upstreams(&e), 0);
        prop_assert!(!e.learn_status().enforcing);
    }

    /// The same packets at the same times give the same decisions, facts and campaigns.
    #[test]
    fn learning_is_deterministic(
        steps in prop::collection::vec((0usize..29, 0u16..40, any::<bool>(), 0u64..3000), 1..120),
    ) {
        let run = || {
            let mut e = Engine::new(Policy::from_toml_str("[learn.campaign]\nsources = 3\n").unwrap());
            let mut t = 0;
            let mut out = Vec::new();
            for (i, peer, flip, dt) in &steps {
                t += dt;
                let (inb, bytes) = &phone()[*i];
                let peer = if *peer == 0 { PROVIDER.to_string() } else { format!("203.0.113.{peer}:5060") };
                let inb = *inb ^ *flip;
                let p = if inb { inbound(&peer, bytes) } else { outbound(&peer, bytes) };
                let d = e.decide(&p, at(t));
                out.push((d.verdict, d.record.map(|r| (r.rule, r.summary)), d.bans));
            }
            (out, e.learned(), e.campaigns(at(t)), e.learn_status())
        };
        prop_assert_eq!(run(), run());
    }
}

/// A flood of forged sources: INVITEs and OPTIONS with random users, User-Agents and
/// Call-IDs, REGISTERs the protected side challenges (each leaves a remembered challenge) and
/// credentials that follow, and outbound REGISTERs/INVITEs to random peers that never answer.
/// Every learner table stays within its `[learn]` capacity.
#[test]
fn learner_state_is_bounded_under_a_spoofed_flood() {
    let policy = Policy::from_toml_str(
        "[learn]\nmax_pending = 64\nmax_known_good = 8\nmax_users = 16\nmax_upstreams = 4\n\
         [learn.campaign]\nmax_tracked = 64\nmax_campaigns = 4\nsources = 2\n\
         [limits]\nmax_tracked_sources = 1000\n[bans]\nenabled = false\n",
    )
    .unwrap();
    // Learner tables, plus the ban table's learned sets (as many as upstreams + known-good).
    let bound = 3 * 64 + 64 + 4 + 8 + 16 + 4 + 4 + 8;
    let mut e = Engine::new(policy);
    let p = phone();
    let (reg, challenge, with_auth, ok, invite) = (&p[0].1, &p[1].1, &p[2].1, &p[3].1, &p[8].1);
    let mut max_seen = 0;
    for i in 0..60_000u32 {
        let src = format!("[2001:db8:{:x}:{:x}::1]:5060", i >> 16, i & 0xffff);
        let t = at(u64::from(i));
        let tag = format!("{i:08x}");
        match i % 6 {
            0 => {
                let m = replace(invite, "sip:202@", &format!("sip:u{tag}@"));
                let m = replace(&m, "1-23427@", &format!("{tag}@"));
                e.decide(&inbound(&src, &m), t);
            }
            1 => {
                let m = replace(reg, "1-23370@", &format!("{tag}@"));
                e.decide(&inbound(&src, &m), t);
                let c = replace(challenge, "1-23370@", &format!("{tag}@"));
                e.decide(&outbound(&src, &c), t);
            }
            2 => {
                let m = replace(with_auth, "1-23370@", &format!("{tag}@"));
                e.decide(&inbound(&src, &m), t);
            }
            3 => {
                let m = replace(reg, "1-23370@", &format!("{tag}@"));
                e.decide(&outbound(&src, &m), t);
            }
            4 => {
                // A protected side answering 200 to some of them: known-good and users churn.
                let m = replace(with_auth, "1-23370@", &format!("{tag}@"));
                let m = replace(&m, "sip:201@", &format!("sip:u{tag}@"));
                let c = replace(challenge, "1-23370@", &format!("{tag}@"));
                e.decide(&inbound(&src, &replace(reg, "1-23370@", &format!("{tag}@"))), t);
                e.decide(&outbound(&src, &c), t);
                e.decide(&inbound(&src, &m), t);
                let o = replace(ok, "1-23370@", &format!("{tag}@"));
                e.decide(&outbound(&src, &replace(&o, "sip:201@", &format!("sip:u{tag}@"))), t);
            }
            _ => {
                let m = replace(
                    invite,
                    "INVITE sip:202@127.0.0.1:15190",
                    "OPTIONS sip:202@127.0.0.1:15190",
                );
                let m = replace(&m, "User-Agent", &format!("X-{tag}"));
                e.decide(&inbound(&src, &m), t);
            }
        }
        max_seen = max_seen.max(e.learn_footprint());
        assert!(e.learn_footprint() <= bound, "at {i}: {} > {bound}", e.learn_footprint());
    }
    let st = e.learn_status();
    assert!(st.known_good <= 8 && st.local_users <= 16 && st.campaigns <= 4, "{st:?}");
    assert!(st.known_good > 0, "the flood did teach known-good clients (then evicted them)");
    assert!(max_seen > bound / 2, "the tables did fill: {max_seen}");
}
