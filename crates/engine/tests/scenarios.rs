//! Scenario tests: real message sequences recorded from real tools on loopback
//! (scripts/record-scanner-scenarios.py), replayed through the engine.
//!
//! * Every SIPVicious scan (svmap OPTIONS/INVITE/REGISTER, svwar REGISTER/OPTIONS/INVITE,
//!   svcrack), plain and compact (`-c`), as recorded, with its User-Agent forged to an ordinary
//!   phone's, and with it removed, bans its source; svwar and svcrack within their first few
//!   messages.
//! * With every built-in signature disabled, behaviour alone still bans svwar and svcrack.
//! * A phone's registration (first 401, then 200, and a refresh) and calls, and a provider's
//!   INVITEs and OPTIONS keepalives, are never banned nor dropped.
mod common;

use common::*;
use sipwall_engine::{signatures::BUILTIN, Engine, Policy, Verdict};

const SCANNERS: &[&str] = &[
    "svmap-options",
    "svmap-invite",
    "svmap-register",
    "svwar-register",
    "svwar-options",
    "svwar-invite",
    "svcrack-register",
    "svmap-c-options",
    "svmap-c-invite",
    "svmap-c-register",
    "svwar-c-register",
    "svwar-c-options",
    "svwar-c-invite",
    "svcrack-c-register",
];

const SCANNER: &str = "203.0.113.5:5060";

#[test]
fn every_recorded_scan_bans_its_source_in_every_disguise() {
    for name in SCANNERS {
        let sc = load(name);
        assert_eq!(
            sc.meta.iter().find(|(k, _)| k == "kind").map(|(_, v)| v.as_str()),
            Some("scanner")
        );
        for ua in [Ua::AsRecorded, Ua::Forged, Ua::Removed] {
            let mut e = Engine::new(Policy::default());
            let r = replay(&mut e, &sc, SCANNER, ua, 0);
            let ban = e.ban_for(sa(SCANNER).ip(), r.end);
            assert!(ban.is_some(), "{name} ({ua:?}) was not banned");
            let at = r.banned_at_inbound.unwrap();
            let limit =
                if name.starts_with("svwar") || name.starts_with("svcrack") { 3 } else { 1 };
            assert!(at <= limit, "{name} ({ua:?}) banned only at inbound message {at}");
            // The banning decision explains itself.
            let (_, d) = r.decisions.iter().find(|(_, d)| !d.bans.is_empty()).unwrap();
            assert_ne!(d.verdict, Verdict::Accept);
            let rec = d.record.as_ref().unwrap();
            assert!(rec.summary.starts_with("203.0.113.5 sent "), "{}", rec.summary);
            assert!(rec.summary.contains("banned for 1h"), "{}", rec.summary);
            if ua == Ua::Forged {
                assert!(rec.summary.contains("Yealink"), "{}", rec.summary);
            }
            // Once banned, nothing more gets through in either direction.
            let after: Vec<_> =
                r.decisions.iter().skip_while(|(_, d)| d.bans.is_empty()).skip(1).collect();
            assert!(
                after.iter().all(|(_, d)| d.verdict != Verdict::Accept),
                "{name}: traffic after the ban"
            );
        }
    }
}

#[test]
fn svmap_summary_reads_well() {
    let sc = load("svmap-options");
    let mut e = Engine::new(Policy::default());
    let r = replay(&mut e, &sc, SCANNER, Ua::AsRecorded, 0);
    let (_, d) = r.decisions.iter().find(|(_, d)| !d.bans.is_empty()).unwrap();
    let rec = d.record.as_ref().unwrap();
    assert!(
        rec.summary.starts_with("203.0.113.5 sent OPTIONS sip:100@127.0.0.1 with User-Agent 'friendly-scanner' (SIPVicious"),
        "{}",
        rec.summary
    );
    assert_eq!(rec.rule, "signature.sipvicious-ua");
    assert_eq!(rec.evidence.user_agent.as_deref(), Some("friendly-scanner"));
    // svmap's From tag carries the address and port it scanned (the recording's responder).
    assert!(
        rec.summary.contains("its From tag encodes the scanned target 127.0.0.1:15190"),
        "{}",
        rec.summary
    );
    for id in ["sipvicious-ua", "sipvicious-display-name", "sipvicious-fake-host", "sipvicious-tag"]
    {
        assert!(
            rec.evidence.signatures.iter().any(|s| s == id),
            "{id} missing: {:?}",
            rec.evidence.signatures
        );
    }
}

#[test]
fn svwar_tag_reveals_the_probed_extension_and_svcrack_masks_passwords() {
    let sc = load("svwar-c-register");
    let mut e = Engine::new(Policy::default());
    let r = replay(&mut e, &sc, SCANNER, Ua::Removed, 0);
    let (_, d) = r.decisions.iter().find(|(_, d)| !d.bans.is_empty()).unwrap();
    let rec = d.record.as_ref().unwrap();
    assert!(rec.summary.contains("with no User-Agent"), "{}", rec.summary);
    assert!(rec.summary.contains("its From tag encodes '"), "{}", rec.summary);
    // The extension svwar probed, decoded from the tag, is kept as evidence.
    assert_eq!(rec.evidence.users_probed.len(), 1);
    assert_eq!(Some(&rec.evidence.users_probed[0]), rec.evidence.target_user.as_ref());

    let sc = load("svcrack-register");
    let mut e = Engine::new(Policy::default());
    let r = replay(&mut e, &sc, SCANNER, Ua::AsRecorded, 0);
    // svcrack's tag hides `user:password` (here 202:202 first); only the user is shown.
    let (_, d) = r.decisions.iter().find(|(_, d)| !d.bans.is_empty()).unwrap();
    let rec = d.record.as_ref().unwrap();
    assert_eq!(rec.rule, "signature.sipvicious-ua");
    for (_, d) in &r.decisions {
        if let Some(rec) = &d.record {
            assert!(!rec.summary.contains("202:202"), "password leaked: {}", rec.summary);
        }
    }
}

fn no_signatures() -> Policy {
    let ids: Vec<String> = BUILTIN.iter().map(|s| format!("\"{}\"", s.id)).collect();
    Policy::from_toml_str(&format!("[signatures]\ndisabled = [{}]\n", ids.join(", "))).unwrap()
}

#[test]
fn behaviour_alone_bans_svwar_and_svcrack() {
    for name in [
        "svwar-options",
        "svwar-invite",
        "svwar-register",
        "svwar-c-options",
        "svcrack-register",
        "svcrack-c-register",
    ] {
        let sc = load(name);
        let mut e = Engine::new(no_signatures());
        let r = replay(&mut e, &sc, SCANNER, Ua::Forged, 0);
        let (_, d) = r
            .decisions
            .iter()
            .find(|(_, d)| !d.bans.is_empty())
            .unwrap_or_else(|| panic!("{name}: behaviour did not ban"));
        let rule = d.record.as_ref().unwrap().rule;
        assert!(rule.starts_with("behaviour."), "{name}: {rule}");
        if name.starts_with("svwar") {
            let ev = &d.record.as_ref().unwrap().evidence;
            assert!(
                rule == "behaviour.enumeration" || rule == "behaviour.not-found",
                "{name}: {rule}"
            );
            assert!(!ev.users_probed.is_empty(), "{name}: no users in evidence");
        } else {
            assert!(rule == "behaviour.auth-failures", "{name}: {rule}");
        }
    }
}

fn assert_never_blocked(name: &str, policy: Policy, peer: &str) {
    let sc = load(name);
    assert_eq!(
        sc.meta.iter().find(|(k, _)| k == "kind").map(|(_, v)| v.as_str()),
        Some("legitimate")
    );
    let mut e = Engine::new(policy);
    // Replay it several times in a row, as a day of traffic would.
    for round in 0..5u64 {
        let r = replay(&mut e, &sc, peer, Ua::AsRecorded, round * 60_000);
        for (dg, d) in &r.decisions {
            assert_eq!(
                d.verdict,
                Verdict::Accept,
                "{name} round {round} datagram {}: {:?}",
                dg.n,
                d.record
            );
            assert!(d.bans.is_empty());
        }
    }
    assert_eq!(e.bans().count(), 0);
}

#[test]
fn phone_registration_and_calls_are_never_blocked() {
    assert_never_blocked("phone-register-and-calls", Policy::default(), "192.0.2.50:5060");
    // The recording contains the normal first challenges.
    let sc = load("phone-register-and-calls");
    let challenges =
        sc.datagrams.iter().filter(|d| !d.inbound && d.bytes.starts_with(b"SIP/2.0 401")).count();
    assert!(challenges >= 2, "expected the 401 challenges of a registration and its refresh");
}

#[test]
fn provider_invites_and_keepalives_are_never_blocked() {
    // Untrusted with default thresholds, and trusted.
    assert_never_blocked("provider-invites-and-options", Policy::default(), "198.51.100.20:5060");
    let trusted = Policy::from_toml_str(
        "[trusted]\nnetworks = [\"198.51.100.0/24\"]\nonly = true\nonly_methods = [\"INVITE\"]\n",
    )
    .unwrap();
    assert_never_blocked("provider-invites-and-options", trusted, "198.51.100.20:5060");
}

#[test]
fn trusted_only_drops_a_scanner_without_a_signature_and_keeps_the_provider() {
    let p = Policy::from_toml_str(
        "[trusted]\nnetworks = [\"198.51.100.0/24\"]\nonly = true\nonly_methods = [\"INVITE\"]\n",
    )
    .unwrap();
    let mut e = Engine::new(p);
    // A provider-looking INVITE from elsewhere is dropped (not banned); from the provider, accepted.
    let sc = load("provider-invites-and-options");
    let invite = sc.datagrams.iter().find(|d| d.inbound && d.bytes.starts_with(b"INVITE")).unwrap();
    let d = e.decide(&inbound("203.0.113.77:5060", &invite.bytes), at(0));
    assert_eq!(d.verdict, Verdict::Drop);
    assert_eq!(d.record.unwrap().rule, "policy.trusted-only");
    assert!(d.bans.is_empty());
    let d = e.decide(&inbound("198.51.100.20:5060", &invite.bytes), at(1));
    assert_eq!(d.verdict, Verdict::Accept);
}

#[test]
fn a_scan_from_a_trusted_address_is_recorded_not_acted_on() {
    let p = Policy::from_toml_str("[trusted]\nnetworks = [\"198.51.100.0/24\"]\n").unwrap();
    let mut e = Engine::new(p);
    let sc = load("svwar-invite");
    let r = replay(&mut e, &sc, "198.51.100.20:5060", Ua::AsRecorded, 0);
    assert!(r.decisions.iter().all(|(_, d)| d.verdict == Verdict::Accept && d.bans.is_empty()));
    let odd = r
        .decisions
        .iter()
        .filter(|(_, d)| d.record.as_ref().is_some_and(|r| r.rule == "trusted.oddity"))
        .count();
    assert!(odd > 0);
    assert_eq!(e.bans().count(), 0);
    assert!(e.stats().trusted_oddities > 0);
}

#[test]
fn nmap_and_sipsak_recordings_ban_their_source() {
    // (scenario, rule expected, banned by this inbound datagram at the latest)
    let cases = [
        // The service probe sends two empty datagrams, then RPC, DNS, NetBIOS, SNMP... probes;
        // `OPTIONS sip:nm` is the 9th datagram and the first SIP one.
        ("nmap-version-probe", "signature.nmap-probe", 9),
        ("nmap-sip-methods", "signature.nmap-ua", 3),
        ("nmap-sip-enum-users", "signature.nmap-ua", 3),
        ("sipsak-options", "signature.sipsak-ua", 1),
    ];
    for (name, rule, limit) in cases {
        let sc = load(name);
        for ua in [Ua::AsRecorded, Ua::Forged, Ua::Removed] {
            let mut e = Engine::new(Policy::default());
            let r = replay(&mut e, &sc, SCANNER, ua, 0);
            let at = r.banned_at_inbound.unwrap_or_else(|| panic!("{name} ({ua:?}) not banned"));
            assert!(at <= limit, "{name} ({ua:?}) banned at inbound {at}");
            let (_, d) = r.decisions.iter().find(|(_, d)| !d.bans.is_empty()).unwrap();
            assert_eq!(d.record.as_ref().unwrap().rule, rule, "{name} ({ua:?})");
            let tool = if name.starts_with("nmap") { "(nmap" } else { "(sipsak" };
            assert!(
                d.record.as_ref().unwrap().summary.contains(tool),
                "{}",
                d.record.as_ref().unwrap().summary
            );
        }
    }
}

#[test]
fn print_summaries_for_docs() {
    // Not an assertion of wording beyond "every refused packet explains itself"; run with
    // --nocapture to see the sentences.
    for name in [
        "svmap-options",
        "svwar-c-register",
        "svcrack-c-register",
        "nmap-version-probe",
        "sipsak-options",
    ] {
        let mut e = Engine::new(Policy::default());
        let r = replay(&mut e, &load(name), SCANNER, Ua::Forged, 0);
        for (_, d) in r.decisions.iter().filter(|(_, d)| d.verdict != Verdict::Accept).take(1) {
            let rec = d.record.as_ref().expect("a refused packet has a record");
            assert!(!rec.summary.is_empty());
            println!("{name}: [{}] {}", rec.rule, rec.summary);
        }
    }
    let mut e = Engine::new(no_signatures());
    let r = replay(&mut e, &load("svwar-options"), SCANNER, Ua::Forged, 0);
    let (_, d) = r.decisions.iter().find(|(_, d)| !d.bans.is_empty()).unwrap();
    println!(
        "svwar-options, no signatures: [{}] {}",
        d.record.as_ref().unwrap().rule,
        d.record.as_ref().unwrap().summary
    );
}
