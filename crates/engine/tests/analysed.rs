//! The split the daemon's queue threads use: `Rules::analyse` (parse and signature scan, no
//! per-source state, so outside the engine's lock) then `Engine::decide_analysed` (state only).
//! It must decide exactly as `Engine::decide`, for every recorded scenario and policy, and an
//! analysis made under rules that were replaced since must not leak into the decision.
mod common;

use common::*;
use sipwall_engine::{Analysis, Engine, Policy, Verdict};

const SCENARIOS: &[&str] = &[
    "svmap-options",
    "svmap-invite",
    "svmap-register",
    "svmap-c-options",
    "svmap-c-invite",
    "svmap-c-register",
    "svwar-options",
    "svwar-invite",
    "svwar-register",
    "svwar-c-options",
    "svwar-c-invite",
    "svwar-c-register",
    "svcrack-register",
    "svcrack-c-register",
    "nmap-sip-enum-users",
    "nmap-sip-methods",
    "nmap-version-probe",
    "sipsak-options",
    "phone-register-and-calls",
    "provider-invites-and-options",
];

const POLICIES: &[&str] = &[
    "",
    // the source is trusted: hostile-looking requests become recorded oddities
    "[trusted]\nnetworks = [\"203.0.113.0/24\"]\n",
    // call rules and trusted-only mode
    "[trusted]\nonly = true\nonly_methods = [\"INVITE\"]\n[calls]\nblock_ip_calls = true\nlocal_users = [\"2000\"]\n",
    // the PBX's port is a tripwire
    "[ports]\nguarded = [5070]\ntripwire = [5060]\n",
    // low thresholds: behaviour bans on the legitimate flows too
    "[behaviour.enumeration]\nmax = 2\n[behaviour.auth_failures]\nmax = 1\n[behaviour.not_found]\nmax = 1\n[signatures]\nban_score = 20\n",
];

#[test]
fn analysed_decisions_equal_plain_decisions_for_every_scenario_and_policy() {
    let mut compared = 0;
    let mut refused = 0;
    for text in POLICIES {
        let policy = Policy::from_toml_str(text).unwrap();
        for name in SCENARIOS {
            let sc = load(name);
            let mut plain = Engine::new(policy.clone());
            let mut split = Engine::new(policy.clone());
            let mut parsed_once = Engine::new(policy.clone());
            for d in &sc.datagrams {
                let src = "203.0.113.5:5060";
                let p = if d.inbound { inbound(src, &d.bytes) } else { outbound(src, &d.bytes) };
                let t = at(d.t_ms);
                let expected = plain.decide(&p, t);
                let rules = split.rules().clone();
                let got = split.decide_analysed(&p, &rules.analyse(&p), t);
                assert_eq!(got, expected, "{name}, datagram {}, policy {text:?}", d.n);
                // What inspect does: parse once, hand the parse to the engine, read it back.
                let own = parsed_once.rules().clone(); // its own rules: not redone as stale
                let eager = own.analyse_parsed(&p, sipwall_sip::Message::parse(&d.bytes));
                let got = parsed_once.decide_analysed(&p, &eager, t);
                assert_eq!(got, expected, "parsed once: {name}, datagram {}, {text:?}", d.n);
                let reread = eager.message().map(|m| m.is_request());
                let direct = sipwall_sip::Message::parse(&d.bytes).ok().map(|m| m.is_request());
                assert_eq!(reread, direct, "{name}, datagram {}: message not kept", d.n);
                compared += 1;
                refused += usize::from(expected.verdict != Verdict::Accept);
            }
            assert_eq!(plain.stats(), split.stats(), "{name}, policy {text:?}");
            assert_eq!(plain.stats(), parsed_once.stats(), "parsed once: {name}, {text:?}");
        }
    }
    // The comparison covered both outcomes, not only accepts.
    assert!(compared > 1000 && refused > 100, "compared {compared}, refused {refused}");
}

#[test]
fn an_analysis_made_under_replaced_rules_is_redone() {
    let scan = load("svmap-options");
    let bytes = &scan.datagrams[0].bytes;
    let p = inbound("203.0.113.5:5060", bytes);
    let mut e = Engine::new(Policy::default());
    let stale = e.rules().clone();
    let analysis = stale.analyse(&p);
    // The source becomes trusted before the packet is decided.
    e.reload(Policy::from_toml_str("[trusted]\nnetworks = [\"203.0.113.0/24\"]\n").unwrap());
    assert!(!std::sync::Arc::ptr_eq(&stale, e.rules()), "reload replaces the rules");
    let d = e.decide_analysed(&p, &analysis, at(1));
    assert_eq!(d.verdict, Verdict::Accept);
    assert_eq!(d.record.as_ref().map(|r| r.rule), Some("trusted.oddity"));
    assert!(e.ban_for(p.src.ip(), at(1)).is_none());
    // And the other way round: analysed while trusted, decided once no longer trusted.
    let trusted_rules = e.rules().clone();
    let analysis = trusted_rules.analyse(&p);
    e.reload(Policy::default());
    let d = e.decide_analysed(&p, &analysis, at(2));
    assert_ne!(d.verdict, Verdict::Accept);
    assert!(e.ban_for(p.src.ip(), at(2)).is_some());
    // No analysis at all is always valid: the engine does the work itself.
    let mut fresh = Engine::new(Policy::default());
    let d = fresh.decide_analysed(&p, &Analysis::none(), at(3));
    assert_ne!(d.verdict, Verdict::Accept);
}
