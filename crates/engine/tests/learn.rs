//! Learning from the wire (`learn.rs`): upstreams, local users, known-good clients, the
//! unsolicited-INVITE rule and campaigns, on real recorded SIP.
//!
//! The recorded phone scenario (`phone-register-and-calls`: a phone registers with digest and
//! places three calls) is replayed both ways round:
//! * as recorded, the protected side is the PBX: the phone becomes a known-good client and its
//!   user a local user;
//! * FLIPPED (every `in` sent out and every `out` coming in), the protected side is the phone
//!   (or a PBX registering to a trunk): the PBX it registers to becomes a learned upstream.
mod common;

use common::*;
use sipwall_engine::{
    learn::CampaignKind, Decision, Direction, Engine, FactKey, LearnMode, LearnedFact, Packet,
    Policy, Timestamp, Transport, Verdict,
};

const PROVIDER: &str = "198.51.100.20:5060";
const PHONE: &str = "203.0.113.40:5062";

/// Replay `sc` with the directions swapped: what the peer sent is now ours, and back.
fn replay_flipped(e: &mut Engine, sc: &Scenario, peer: &str, start_ms: u64) -> Vec<Decision> {
    sc.datagrams
        .iter()
        .map(|d| {
            let p = if d.inbound { outbound(peer, &d.bytes) } else { inbound(peer, &d.bytes) };
            e.decide(&p, at(start_ms + d.t_ms))
        })
        .collect()
}

fn upstream_of(e: &Engine) -> Vec<String> {
    e.learned()
        .into_iter()
        .filter_map(|f| match f.key {
            FactKey::Upstream(a) => Some(a.to_string()),
            _ => None,
        })
        .collect()
}

fn users_of(e: &Engine) -> Vec<String> {
    e.learned()
        .into_iter()
        .filter_map(|f| match f.key {
            FactKey::LocalUser(u) => Some(u),
            _ => None,
        })
        .collect()
}

fn msg(sc: &Scenario, n: usize) -> Vec<u8> {
    sc.datagrams.iter().find(|d| d.n == n).unwrap().bytes.clone()
}

/// The same bytes with one substring replaced (a forged or altered copy of a real message).
fn replace(b: &[u8], from: &str, to: &str) -> Vec<u8> {
    String::from_utf8_lossy(b).replace(from, to).into_bytes()
}

#[test]
fn our_registration_and_calls_teach_the_upstream_and_our_users() {
    let sc = load("phone-register-and-calls");
    let mut e = Engine::new(Policy::default());
    assert!(!e.learn_status().enforcing, "nothing learned yet: not enforcing");
    let ds = replay_flipped(&mut e, &sc, PROVIDER, 0);
    assert!(ds.iter().all(|d| d.verdict == Verdict::Accept));
    assert_eq!(upstream_of(&e), vec!["198.51.100.20"]);
    // 201 from the registration's To, sipp from the calls' From.
    assert_eq!(users_of(&e), vec!["201", "sipp"]);
    let st = e.learn_status();
    assert!(st.enforcing && st.mode == LearnMode::Auto);
    assert_eq!(st.upstreams, 1);
    let up = e.learned().into_iter().find(|f| matches!(f.key, FactKey::Upstream(_))).unwrap();
    assert!(up.evidence.starts_with("REGISTER for 201 (Call-ID 1-23370@127.0.0.1, CSeq 2)"));
    assert!(up.evidence.contains("sent to 198.51.100.20:5060 answered 200 by it"), "{up:?}");
    assert_eq!(up.first_seen, at(1));
    assert!(!up.pinned);
    // The learned upstream is accepted like a trusted network, even for a scan-like packet.
    let svmap = load("svmap-options");
    let d = e.decide(&inbound(PROVIDER, &svmap.datagrams[0].bytes), at(6000));
    assert_eq!(d.verdict, Verdict::Accept);
    let rec = d.record.unwrap();
    assert_eq!(rec.rule, "trusted.oddity");
    assert!(rec.summary.contains("198.51.100.20 is a learned upstream"), "{}", rec.summary);
}

/// Until an upstream is learned, learning changes no decision on any recorded scenario
/// (scanners and legitimate traffic alike): the same verdicts, rules and bans as with
/// `[learn] mode = "off"`.
#[test]
fn without_an_upstream_every_recorded_scenario_decides_as_before() {
    let mut names: Vec<String> = std::fs::read_dir(scenarios_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 20);
    let off = Policy::from_toml_str("[learn]\nmode = \"off\"\n").unwrap();
    for name in names {
        let sc = load(&name);
        for ua in [Ua::AsRecorded, Ua::Forged] {
            let mut a = Engine::new(Policy::default());
            let mut b = Engine::new(off.clone());
            let ra = replay(&mut a, &sc, "203.0.113.5:5060", ua, 0);
            let rb = replay(&mut b, &sc, "203.0.113.5:5060", ua, 0);
            assert!(!a.learn_status().enforcing, "{name}");
            for ((_, x), (_, y)) in ra.decisions.iter().zip(&rb.decisions) {
                assert_eq!(x.verdict, y.verdict, "{name}");
                assert_eq!(x.record.as_ref().map(|r| r.rule), y.record.as_ref().map(|r| r.rule));
                assert_eq!(x.bans, y.bans, "{name}");
            }
        }
    }
}

#[test]
fn forged_answers_teach_nothing() {
    let sc = load("phone-register-and-calls");
    let register = msg(&sc, 3); // REGISTER with credentials, CSeq 2
    let ok = msg(&sc, 4); // its 200 OK
    let check = |name: &str, sent_to: Option<&str>, answer: Vec<u8>, from: &str, t: u64| {
        let mut e = Engine::new(Policy::default());
        if let Some(to) = sent_to {
            e.decide(&outbound(to, &register), at(0));
        }
        let d = e.decide(&inbound(from, &answer), at(t));
        assert_eq!(d.verdict, Verdict::Accept, "{name}");
        assert!(e.learned().is_empty(), "{name} taught {:?}", e.learned());
        assert!(!e.learn_status().enforcing, "{name}");
    };
    // A REGISTER 200 sent to the host with no REGISTER of ours before it.
    check("unsolicited 200", None, ok.clone(), PROVIDER, 10);
    // The right answer from a spoofed address, or from the right address but another port.
    check("other address", Some(PROVIDER), ok.clone(), "198.51.100.21:5060", 10);
    check("other port", Some(PROVIDER), ok.clone(), "198.51.100.20:5070", 10);
    // The right peer, but not this transaction: Call-ID, CSeq, branch or method differ.
    check("call-id", Some(PROVIDER), replace(&ok, "1-23370@", "9-23370@"), PROVIDER, 10);
    check(
        "cseq",
        Some(PROVIDER),
        replace(&ok, "CSeq: 2 REGISTER", "CSeq: 3 REGISTER"),
        PROVIDER,
        10,
    );
    check(
        "branch",
        Some(PROVIDER),
        replace(&ok, "z9hG4bK-23370-1-2", "z9hG4bK-23370-1-9"),
        PROVIDER,
        10,
    );
    check(
        "method",
        Some(PROVIDER),
        replace(&ok, "CSeq: 2 REGISTER", "CSeq: 2 INVITE"),
        PROVIDER,
        10,
    );
    // Too late: the pending transaction timed out (32 s by default).
    check("late", Some(PROVIDER), ok.clone(), PROVIDER, 40_000);
    // A REGISTER the host RECEIVED and answered 200 itself teaches no upstream either.
    let mut e = Engine::new(Policy::default());
    e.decide(&inbound(PROVIDER, &register), at(0));
    e.decide(&outbound(PROVIDER, &ok), at(1));
    assert!(upstream_of(&e).is_empty());
    // A non-2xx final answer teaches nothing and closes the transaction.
    let mut e = Engine::new(Policy::default());
    e.decide(&outbound(PROVIDER, &register), at(0));
    e.decide(&inbound(PROVIDER, &replace(&ok, "200 OK", "403 Forbidden")), at(1));
    e.decide(&inbound(PROVIDER, &ok), at(2));
    assert!(e.learned().is_empty());
}

#[test]
fn outbound_requests_other_than_register_and_invite_teach_nothing() {
    // A PBX can be made to send OPTIONS or BYE to any address; their answers prove nothing.
    let prov = load("provider-invites-and-options");
    let options = msg(&prov, 1);
    let ok = msg(&prov, 2);
    let mut e = Engine::new(Policy::default());
    e.decide(&outbound(PROVIDER, &options), at(0));
    e.decide(&inbound(PROVIDER, &ok), at(1));
    assert!(e.learned().is_empty());
}

#[test]
fn the_phone_that_authenticates_is_known_good_and_its_user_local() {
    let sc = load("phone-register-and-calls");
    let mut e = Engine::new(Policy::default());
    let r = replay(&mut e, &sc, PHONE, Ua::AsRecorded, 0);
    assert!(r.decisions.iter().all(|(_, d)| d.verdict == Verdict::Accept));
    assert!(e.is_known_good(sa(PHONE).ip(), r.end));
    let kg = e.learned().into_iter().find(|f| matches!(f.key, FactKey::KnownGood(_))).unwrap();
    assert_eq!(kg.key, FactKey::KnownGood(sa(PHONE).ip()));
    assert!(
        kg.evidence.starts_with(
            "REGISTER from 203.0.113.40:5062 with digest credentials for 201 answered 200 after a challenge"
        ),
        "{}",
        kg.evidence
    );
    assert_eq!(users_of(&e), vec!["201"]);
    assert!(upstream_of(&e).is_empty(), "the PBX's own answers make no upstream");
    // Known-good ends known_good_secs (7 days) after the last success.
    let week = 7 * 86_400_000;
    assert!(
        e.is_known_good(sa(PHONE).ip(), Timestamp::from_millis(r.end.as_millis() + week - 10_000))
    );
    assert!(!e.is_known_good(sa(PHONE).ip(), Timestamp::from_millis(r.end.as_millis() + week)));
    e.expire(Timestamp::from_millis(r.end.as_millis() + week));
    assert!(e.learned().iter().all(|f| !matches!(f.key, FactKey::KnownGood(_))));
}

#[test]
fn credentials_without_a_challenge_or_without_success_make_no_known_good() {
    let sc = load("phone-register-and-calls");
    let (first, challenge, with_auth, ok) = (msg(&sc, 1), msg(&sc, 2), msg(&sc, 3), msg(&sc, 4));
    // No 401 before the credentials.
    let mut e = Engine::new(Policy::default());
    e.decide(&inbound(PHONE, &with_auth), at(0));
    e.decide(&outbound(PHONE, &ok), at(1));
    assert!(!e.is_known_good(sa(PHONE).ip(), at(2)));
    // Challenged, but the protected side refused the credentials.
    let mut e = Engine::new(Policy::default());
    e.decide(&inbound(PHONE, &first), at(0));
    e.decide(&outbound(PHONE, &challenge), at(1));
    e.decide(&inbound(PHONE, &with_auth), at(2));
    e.decide(&outbound(PHONE, &replace(&ok, "200 OK", "403 Forbidden")), at(3));
    assert!(!e.is_known_good(sa(PHONE).ip(), at(4)));
    // A 200 to another source for the same transaction teaches nothing about either.
    let mut e = Engine::new(Policy::default());
    e.decide(&inbound(PHONE, &first), at(0));
    e.decide(&outbound(PHONE, &challenge), at(1));
    e.decide(&inbound(PHONE, &with_auth), at(2));
    e.decide(&outbound("203.0.113.41:5062", &ok), at(3));
    assert!(!e.is_known_good(sa(PHONE).ip(), at(4)));
    assert!(!e.is_known_good("203.0.113.41".parse().unwrap(), at(4)));
}

/// A trunk is learned (flipped phone scenario), then INVITEs arrive from elsewhere.
fn enforcing_engine(policy: Policy) -> Engine {
    let mut e = Engine::new(policy);
    replay_flipped(&mut e, &load("phone-register-and-calls"), PROVIDER, 0);
    assert!(e.learn_status().enforcing);
    e
}

#[test]
fn unsolicited_invites_are_ghost_calls_once_an_upstream_is_learned() {
    let sc = load("phone-register-and-calls");
    let invite = alter_ua(&msg(&sc, 9), Ua::Forged); // INVITE sip:202@127.0.0.1:15190
                                                     // Before any upstream: learning, not enforcing: the INVITE passes as it always did.
    let mut e = Engine::new(Policy::default());
    let d = e.decide(&inbound("203.0.113.77:5060", &invite), at(0));
    assert_eq!(d.verdict, Verdict::Accept);
    // After: an IP-literal request-URI from an unknown source is dropped, without a ban.
    let mut e = enforcing_engine(Policy::default());
    let d = e.decide(&inbound("203.0.113.77:5060", &invite), at(10_000));
    assert_eq!(d.verdict, Verdict::Drop);
    assert!(d.bans.is_empty());
    let rec = d.record.unwrap();
    assert_eq!(rec.rule, "ghost.unsolicited-invite");
    assert!(rec.summary.contains("its request-URI is an IP literal"), "{}", rec.summary);
    assert!(rec.summary.ends_with("dropped as a ghost call"), "{}", rec.summary);
    // A host-name URI to an unknown user: dropped; to a learned user: accepted.
    let named =
        replace(&invite, "INVITE sip:202@127.0.0.1:15190", "INVITE sip:202@pbx.example.com");
    let d = e.decide(&inbound("203.0.113.78:5060", &named), at(10_001));
    assert_eq!(d.record.unwrap().rule, "ghost.unsolicited-invite");
    let to_201 = replace(&named, "sip:202@pbx", "sip:201@pbx");
    assert_eq!(
        e.decide(&inbound("203.0.113.79:5060", &to_201), at(10_002)).verdict,
        Verdict::Accept
    );
    // The upstream's own INVITE to an IP literal is accepted.
    let prov = load("provider-invites-and-options");
    let pi = msg(&prov, 11);
    assert!(pi.starts_with(b"INVITE sip:6491234567@127.0.0.1"));
    assert_eq!(e.decide(&inbound(PROVIDER, &pi), at(10_003)).verdict, Verdict::Accept);
    // A configured local user counts as well; mode = "off" turns the rule off.
    let mut e = enforcing_engine(
        Policy::from_toml_str("[calls]\nlocal_users = [\"202\", \"201\"]\n").unwrap(),
    );
    assert_eq!(
        e.decide(&inbound("203.0.113.80:5060", &named), at(10_004)).verdict,
        Verdict::Accept
    );
    let mut e = enforcing_engine(Policy::default());
    e.reload(Policy::from_toml_str("[learn]\nmode = \"off\"\n").unwrap());
    assert!(!e.learn_status().enforcing);
    assert_eq!(
        e.decide(&inbound("203.0.113.81:5060", &invite), at(10_005)).verdict,
        Verdict::Accept
    );
}

#[test]
fn a_known_good_client_may_call_an_ip_literal() {
    let mut e = enforcing_engine(Policy::default());
    let sc = load("phone-register-and-calls");
    // The phone registers with digest to US (as recorded) after the trunk was learned, then calls.
    let r = replay(&mut e, &sc, PHONE, Ua::AsRecorded, 20_000);
    assert!(e.is_known_good(sa(PHONE).ip(), r.end));
    assert!(r.decisions.iter().all(|(_, d)| d.verdict == Verdict::Accept));
}

#[test]
fn two_hundred_clean_invites_from_two_hundred_addresses_ring_nothing() {
    let sc = load("phone-register-and-calls");
    let invite = alter_ua(&msg(&sc, 9), Ua::Forged);
    // IPv4: 200 addresses of 203.0.113.0/24 and 198.51.100.0/24 (the provider's own /24).
    let mut e = enforcing_engine(Policy::default());
    let mut rules = std::collections::BTreeMap::new();
    for i in 0..200u32 {
        let net = if i % 2 == 0 { "203.0.113" } else { "198.51.100" };
        let host = 1 + i / 2;
        if net == "198.51.100" && host == 20 {
            continue; // the provider itself
        }
        let src = format!("{net}.{host}:5060");
        let call = replace(&invite, "1-23427@", &format!("{i:03}-bot@"));
        let d = e.decide(&inbound(&src, &call), at(10_000 + u64::from(i) * 50));
        assert_ne!(d.verdict, Verdict::Accept, "INVITE {i} rang");
        *rules.entry(d.record.unwrap().rule).or_insert(0) += 1;
    }
    // Ghost calls first, then the campaign bans, then their aggregates drop the rest.
    assert_eq!(rules.get("ghost.unsolicited-invite"), Some(&9), "{rules:?}");
    assert!(rules.get("campaign.target-user").is_some_and(|&n| n >= 5), "{rules:?}");
    // The aggregate never covers the learned upstream: its calls still get through.
    let prov = load("provider-invites-and-options");
    assert_eq!(e.decide(&inbound(PROVIDER, &msg(&prov, 11)), at(30_000)).verdict, Verdict::Accept);
    assert!(e.ban_for(sa(PROVIDER).ip(), at(30_000)).is_none());

    // IPv6, each source in its own /48 (no aggregate): every further source is a campaign ban.
    let mut e = enforcing_engine(Policy::default());
    let mut rules = std::collections::BTreeMap::new();
    for i in 0..200u32 {
        let src = format!("[2001:db8:{:x}::1]:5060", 0x100 + i);
        let call = replace(&invite, "1-23427@", &format!("{i:03}-bot@"));
        let d = e.decide(&inbound(&src, &call), at(10_000 + u64::from(i) * 50));
        assert_ne!(d.verdict, Verdict::Accept, "INVITE {i} rang");
        let rec = d.record.unwrap();
        if i == 9 {
            assert!(
                rec.summary.ends_with(
                    "as one of 10 new sources sending the same target user 202 (campaign: 10 or \
                     more new sources within 300s): banned for 1h"
                ),
                "{}",
                rec.summary
            );
            assert!(rec.evidence.counters.contains(&("campaign_sources".into(), 10)));
        }
        *rules.entry(rec.rule).or_insert(0) += 1;
    }
    assert_eq!(rules.get("ghost.unsolicited-invite"), Some(&9), "{rules:?}");
    assert_eq!(rules.get("campaign.target-user"), Some(&191), "{rules:?}");
    assert_eq!(e.bans().count(), 191);
    let c = e.campaigns(at(30_000));
    assert_eq!(c.len(), 2, "{c:?}");
    let by_user = c.iter().find(|c| c.kind == CampaignKind::TargetUser).unwrap();
    assert_eq!(by_user.key, "202");
    assert_eq!(by_user.sources, 200, "the ten that made it and the 190 banned");
    assert_eq!(by_user.first_seen, at(10_000));
    // The fingerprint campaign formed on the same tenth source and counts the same sources.
    let by_fp = c.iter().find(|c| c.kind == CampaignKind::Fingerprint).unwrap();
    assert_eq!(by_fp.sources, 200);
    assert!(by_fp.label.contains("Yealink"), "{}", by_fp.label);
    assert_eq!(by_fp.key.len(), 16);
}

#[test]
fn campaign_bans_never_touch_upstreams_known_good_or_aggregates_around_them() {
    let sc = load("phone-register-and-calls");
    let mut e = enforcing_engine(Policy::default());
    // A phone in 203.0.113.0/24 authenticates and is known-good.
    replay(&mut e, &sc, "203.0.113.200:5060", Ua::AsRecorded, 20_000);
    assert!(e.is_known_good("203.0.113.200".parse().unwrap(), at(30_000)));
    // Scanners in its /24 get banned (svmap signature): the /24 aggregate is split around it.
    let svmap = load("svmap-options");
    for i in 1..=8 {
        e.decide(
            &inbound(&format!("203.0.113.{i}:5060"), &svmap.datagrams[0].bytes),
            at(40_000 + i),
        );
    }
    assert!(e.bans().any(|b| b.net.prefix_len() < 32), "an aggregate was made");
    assert!(e.ban_for("203.0.113.200".parse().unwrap(), at(40_100)).is_none());
    assert!(e.ban_for("203.0.113.201".parse().unwrap(), at(40_100)).is_some());
    // But a strong signature from the known-good address itself still bans it exactly.
    let d = e.decide(&inbound("203.0.113.200:5060", &svmap.datagrams[0].bytes), at(40_200));
    assert!(!d.bans.is_empty());
    assert!(e.ban_for("203.0.113.200".parse().unwrap(), at(40_300)).is_some());
    // And the learned upstream is never banned, even by hand.
    let up: std::net::IpAddr = "198.51.100.20".parse().unwrap();
    assert!(e
        .ban_manual(
            "198.51.100.0/24".parse().unwrap(),
            std::time::Duration::from_secs(60),
            "t",
            at(40_400)
        )
        .is_err());
    assert!(e.ban_for(up, at(40_500)).is_none());
}

#[test]
fn facts_survive_an_export_and_restore_and_can_be_pinned_and_forgotten() {
    let mut e = enforcing_engine(Policy::default());
    let sc = load("phone-register-and-calls");
    replay(&mut e, &sc, PHONE, Ua::AsRecorded, 20_000);
    let facts = e.learned();
    assert_eq!(facts.len(), 4, "{facts:?}"); // upstream, users 201 + sipp, known-good phone
                                             // JSON round trip (the daemon's store keeps them in some such form).
    let json = serde_json_like(&facts);
    let mut fresh = Engine::new(Policy::default());
    for f in facts.clone() {
        assert!(fresh.restore_learned(f, at(30_000)).is_some());
    }
    assert_eq!(fresh.learned(), facts);
    assert!(fresh.learn_status().enforcing, "a restored upstream enforces at once");
    assert!(!json.is_empty());
    // Forget the upstream: not enforcing any more; pin it back: enforcing, pinned.
    let up = FactKey::Upstream("198.51.100.20".parse().unwrap());
    let gone = fresh.forget_learned(&up).unwrap();
    assert_eq!(gone.key, up);
    assert!(!fresh.learn_status().enforcing);
    assert!(fresh.forget_learned(&up).is_err());
    fresh.pin_learned(up.clone(), at(31_000)).unwrap();
    let pinned = fresh.learned().into_iter().find(|f| f.key == up).unwrap();
    assert!(pinned.pinned && pinned.evidence == "pinned by the operator");
    // Pinned facts never expire; unpinned ones do.
    let far = Timestamp::from_millis(at(0).as_millis() + 400 * 86_400_000);
    fresh.expire(far);
    assert_eq!(fresh.learned().len(), 1);
    fresh.unpin_learned(up.clone(), far).unwrap();
    fresh.expire(Timestamp::from_millis(far.as_millis() + 31 * 86_400_000));
    assert!(fresh.learned().is_empty());
    // An expired fact is not restored.
    let mut old = Engine::new(Policy::default());
    let kg = facts.iter().find(|f| matches!(f.key, FactKey::KnownGood(_))).unwrap().clone();
    assert!(old.restore_learned(kg, far).is_none());
}

/// A stable text form of the facts (no serde_json in the engine's dev-dependencies).
fn serde_json_like(facts: &[LearnedFact]) -> String {
    facts
        .iter()
        .map(|f| format!("{} {:?} {:?} {}\n", f.key, f.first_seen, f.last_seen, f.evidence))
        .collect()
}

#[test]
fn learning_is_off_in_off_mode() {
    let mut e = Engine::new(Policy::from_toml_str("[learn]\nmode = \"off\"\n").unwrap());
    replay_flipped(&mut e, &load("phone-register-and-calls"), PROVIDER, 0);
    replay(&mut e, &load("phone-register-and-calls"), PHONE, Ua::AsRecorded, 0);
    assert!(e.learned().is_empty());
    assert_eq!(e.learn_status().mode, LearnMode::Off);
}

#[test]
fn tcp_and_ipv6_learn_the_same_way() {
    let sc = load("phone-register-and-calls");
    let (reg, ok) = (msg(&sc, 3), msg(&sc, 4));
    let pbx = "[2001:db8::10]:5060".parse().unwrap();
    let prov = "[2001:db8:1::20]:5061".parse().unwrap();
    let mut e = Engine::new(Policy::default());
    let out = Packet {
        src: pbx,
        dst: prov,
        transport: Transport::Tcp,
        direction: Direction::Outbound,
        payload: &reg,
    };
    e.decide(&out, at(0));
    let back = Packet {
        src: prov,
        dst: pbx,
        transport: Transport::Tcp,
        direction: Direction::Inbound,
        payload: &ok,
    };
    e.decide(&back, at(5));
    assert_eq!(upstream_of(&e), vec!["2001:db8:1::20"]);
}

#[test]
fn a_call_answered_after_a_long_ring_still_proves_the_caller() {
    let sc = load("phone-register-and-calls");
    let inv1 = msg(&sc, 9);
    let c407 = replace(&msg(&sc, 2), "401 Unauthorized", "407 Proxy Authentication Required");
    let c407 = replace(&c407, "1-23370@", "1-23427@");
    let c407 = replace(&c407, "CSeq: 1 REGISTER", "CSeq: 1 INVITE");
    let c407 = replace(&c407, "WWW-Authenticate", "Proxy-Authenticate");
    let inv2 = replace(&inv1, "CSeq: 1 INVITE", "CSeq: 2 INVITE");
    let inv2 = replace(
        &inv2,
        "Content-Type",
        "Proxy-Authorization: Digest username=\"201\",realm=\"asterisk\",nonce=\"f207126381bb1607\",uri=\"sip:202@127.0.0.1:15190\",response=\"bc57ed6a01e9e9a99f229757f0a7d914\",algorithm=MD5\r\nContent-Type",
    );
    let ok = replace(&msg(&sc, 12), "CSeq: 1 INVITE", "CSeq: 2 INVITE");
    for (ring_ms, proves) in [(60_000, true), (200_000, false)] {
        let mut e = Engine::new(Policy::default());
        e.decide(&inbound(PHONE, &inv1), at(0));
        e.decide(&outbound(PHONE, &c407), at(1));
        e.decide(&inbound(PHONE, &inv2), at(2));
        e.decide(&outbound(PHONE, &ok), at(2 + ring_ms));
        assert_eq!(e.is_known_good(sa(PHONE).ip(), at(3 + ring_ms)), proves, "ring {ring_ms} ms");
    }
}
