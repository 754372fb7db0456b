//! Engine behaviour on hand-written messages: each policy feature, bans, behaviour windows.
mod common;

use std::time::Duration;

use common::*;
use sipwall_engine::{BanAction, BanError, BanOrigin, Engine, Policy, Verdict};

/// A plausible request from an ordinary phone.
fn req(method: &str, ruri: &str, to_user: &str, call_id: &str, cseq: u32, extra: &str) -> Vec<u8> {
    format!(
        "{method} {ruri} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bKa8f3{cseq}x{call_id};rport\r\n\
         From: \"Desk\" <sip:201@pbx.example.com>;tag=a83bd9f01\r\n\
         To: <sip:{to_user}@pbx.example.com>\r\n\
         Call-ID: {call_id}@192.168.1.20\r\n\
         CSeq: {cseq} {method}\r\n\
         Contact: <sip:201@192.168.1.20:5060>\r\n\
         User-Agent: Yealink SIP-T46S 66.86.0.15\r\n\
         Max-Forwards: 70\r\n\
         {extra}Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn answer(code: u16, reason: &str, call_id: &str, cseq: u32, method: &str) -> Vec<u8> {
    format!(
        "SIP/2.0 {code} {reason}\r\n\
         Via: SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bKa8f3;rport\r\n\
         From: \"Desk\" <sip:201@pbx.example.com>;tag=a83bd9f01\r\n\
         To: <sip:201@pbx.example.com>;tag=as1234\r\n\
         Call-ID: {call_id}@192.168.1.20\r\n\
         CSeq: {cseq} {method}\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

const AUTH: &str = "Authorization: Digest username=\"201\", realm=\"asterisk\", nonce=\"abc\", uri=\"sip:pbx.example.com\", response=\"0123456789abcdef0123456789abcdef\"\r\n";

const SVMAP: &[u8] = b"OPTIONS sip:100@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK-2146373830;rport\r\nMax-Forwards: 70\r\nTo: \"sipvicious\"<sip:100@1.1.1.1>\r\nFrom: \"sipvicious\"<sip:100@1.1.1.1>;tag=6366636462393464303133633401313330333232373536\r\nUser-Agent: friendly-scanner\r\nCall-ID: 1234567890\r\nContact: sip:100@203.0.113.5:5060\r\nCSeq: 1 OPTIONS\r\nAccept: application/sdp\r\nContent-Length: 0\r\n\r\n";

fn policy(t: &str) -> Policy {
    Policy::from_toml_str(t).unwrap()
}

#[test]
fn signature_ban_then_banned_drop_then_expiry() {
    let mut e = Engine::new(Policy::default());
    let d = e.decide(&inbound("203.0.113.5:5060", SVMAP), at(0));
    assert_eq!(d.verdict, Verdict::Drop);
    let ban = match &d.bans[..] {
        [BanAction::Add(b)] => b.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(ban.net.to_string(), "203.0.113.5/32");
    assert_eq!(ban.until.as_millis() - ban.since.as_millis(), 3_600_000);
    assert_eq!(ban.origin, BanOrigin::Detection);
    assert_eq!(ban.evidence.user_agent.as_deref(), Some("friendly-scanner"));
    // Next packet: dropped by the ban, no new action.
    let d = e.decide(
        &inbound("203.0.113.5:5060", &req("INVITE", "sip:201@pbx.example.com", "201", "x1", 1, "")),
        at(1000),
    );
    assert_eq!(d.verdict, Verdict::Drop);
    let record = d.record.unwrap();
    assert_eq!(record.rule, "ban.active");
    // A person reads how long is left, not an epoch number (1 s into a 1 h ban).
    assert!(record.summary.contains("banned for another 59m 59s"), "{}", record.summary);
    assert!(d.bans.is_empty());
    // Our answers to it are withheld too.
    let d = e.decide(
        &outbound("203.0.113.5:5060", &answer(404, "Not Found", "x1", 1, "INVITE")),
        at(1001),
    );
    assert_eq!(d.verdict, Verdict::Drop);
    // Expiry.
    assert!(e.expire(at(3_599_999)).is_empty());
    assert_eq!(e.expire(at(3_600_000)), vec![BanAction::Remove("203.0.113.5/32".parse().unwrap())]);
    assert_eq!(e.bans().count(), 0);
    let ok = req("REGISTER", "sip:pbx.example.com", "201", "r1", 1, "");
    assert_eq!(e.decide(&inbound("203.0.113.5:5060", &ok), at(3_600_001)).verdict, Verdict::Accept);
}

#[test]
fn a_ban_ends_at_its_time_even_before_expire_runs() {
    let mut e = Engine::new(Policy::default());
    e.decide(&inbound("203.0.113.5:5060", SVMAP), at(0));
    let ok = req("OPTIONS", "sip:pbx.example.com", "201", "o1", 1, "");
    assert_eq!(e.decide(&inbound("203.0.113.5:5060", &ok), at(3_599_000)).verdict, Verdict::Drop);
    assert_eq!(e.decide(&inbound("203.0.113.5:5060", &ok), at(3_600_000)).verdict, Verdict::Accept);
}

#[test]
fn repeat_offenders_get_longer_bans_up_to_the_max() {
    let mut e = Engine::new(policy(
        "[bans]\nduration_secs = 60\nescalation_factor = 3\nmax_duration_secs = 500\n",
    ));
    let mut t = 0;
    let mut lengths = Vec::new();
    for _ in 0..5 {
        let d = e.decide(&inbound("203.0.113.5:5060", SVMAP), at(t));
        let BanAction::Add(b) = &d.bans[0] else { panic!() };
        lengths.push(((b.until.as_millis() - b.since.as_millis()) / 1000, b.count));
        t = b.until.as_millis() - T0 + 1;
        e.expire(at(t));
    }
    assert_eq!(lengths, vec![(60, 1), (180, 2), (500, 3), (500, 4), (500, 5)]);
    assert!(e
        .decide(&inbound("203.0.113.5:5060", SVMAP), at(t))
        .record
        .unwrap()
        .summary
        .contains("(ban #6)"));
}

#[test]
fn offences_are_forgotten_after_forget_after() {
    let mut e = Engine::new(policy("[bans]\nduration_secs = 60\nforget_after_secs = 100\n"));
    e.decide(&inbound("203.0.113.5:5060", SVMAP), at(0));
    e.expire(at(60_000));
    let d = e.decide(&inbound("203.0.113.5:5060", SVMAP), at(161_000));
    let BanAction::Add(b) = &d.bans[0] else { panic!() };
    assert_eq!((b.count, b.until.as_millis() - b.since.as_millis()), (1, 60_000));
}

#[test]
fn aggregation_bans_the_range_but_never_a_trusted_one() {
    let mut e = Engine::new(policy("[bans.aggregate]\nipv4_threshold = 3\n"));
    let mut all = Vec::new();
    for (i, host) in ["203.0.113.5", "203.0.113.9", "203.0.113.77"].iter().enumerate() {
        let d = e.decide(&inbound(&format!("{host}:5060"), SVMAP), at(i as u64));
        all.extend(d.bans.clone());
        if i == 2 {
            assert!(d.record.unwrap().summary.contains("range 203.0.113.0/24 banned"));
        }
    }
    let range: Vec<_> = all
        .iter()
        .filter_map(|a| match a {
            BanAction::Add(b) if b.origin == BanOrigin::Aggregate => Some(b.net.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(range, vec!["203.0.113.0/24"]);
    // A fresh address of the range is now dropped without any signature.
    let ok = req("REGISTER", "sip:pbx.example.com", "201", "r1", 1, "");
    let d = e.decide(&inbound("203.0.113.200:5060", &ok), at(10));
    assert_eq!(d.verdict, Verdict::Drop);
    assert_eq!(d.record.unwrap().rule, "ban.active");

    // Same with a trusted host inside the /24: the range is banned around it (8 blocks), the
    // trusted host is never covered.
    let mut e = Engine::new(policy(
        "[trusted]\nnetworks = [\"203.0.113.250/32\"]\n[bans.aggregate]\nipv4_threshold = 3\n",
    ));
    for host in ["203.0.113.5", "203.0.113.9", "203.0.113.77", "203.0.113.78"] {
        e.decide(&inbound(&format!("{host}:5060"), SVMAP), at(0));
    }
    let trusted: std::net::IpAddr = "203.0.113.250".parse().unwrap();
    assert!(e.bans().all(|b| !b.net.contains(&trusted)));
    let pieces = e.bans().filter(|b| b.origin == BanOrigin::Aggregate).count();
    assert_eq!(pieces, 8, "a /24 around one address splits into 8 blocks");
    assert_eq!(e.decide(&inbound("203.0.113.250:5060", &ok), at(1)).verdict, Verdict::Accept);
    assert_eq!(e.decide(&inbound("203.0.113.251:5060", &ok), at(1)).verdict, Verdict::Drop);
}

#[test]
fn ipv6_sources_aggregate_per_64() {
    let mut e = Engine::new(Policy::default());
    e.decide(&inbound("[2001:db8:1:2::5]:5060", SVMAP), at(0));
    let d = e.decide(&inbound("[2001:db8:1:2::99]:5060", SVMAP), at(1));
    assert!(d
        .bans
        .iter()
        .any(|a| matches!(a, BanAction::Add(b) if b.net.to_string() == "2001:db8:1:2::/64")));
}

#[test]
fn manual_ban_unban_and_trusted_refusal() {
    let mut e = Engine::new(policy("[trusted]\nnetworks = [\"198.51.100.0/24\"]\n"));
    let a = e.ban_manual(
        "192.0.2.0/28".parse().unwrap(),
        Duration::from_secs(30),
        "seen in logs",
        at(0),
    );
    let Ok(BanAction::Add(b)) = a else { panic!("{a:?}") };
    assert_eq!((b.origin, b.reason.as_str()), (BanOrigin::Manual, "seen in logs"));
    let ok = req("REGISTER", "sip:pbx.example.com", "201", "r1", 1, "");
    assert_eq!(e.decide(&inbound("192.0.2.7:5060", &ok), at(1)).verdict, Verdict::Drop);
    let err = e
        .ban_manual("198.51.100.7/32".parse().unwrap(), Duration::from_secs(30), "x", at(0))
        .unwrap_err();
    assert!(matches!(err, BanError::CoversProtected { .. }), "{err:?}");
    let err = e
        .ban_manual("198.51.0.0/16".parse().unwrap(), Duration::from_secs(30), "x", at(0))
        .unwrap_err()
        .to_string();
    assert!(err.contains("198.51.100.0/24") && err.contains("trusted"), "{err}");
    let err = e
        .ban_manual("192.0.2.0/28".parse().unwrap(), Duration::from_secs(30), "x", at(0))
        .unwrap_err();
    assert!(matches!(err, BanError::AlreadyBanned { .. }), "{err:?}");
    assert_eq!(
        e.unban("192.0.2.0/28".parse().unwrap()),
        Some(BanAction::Remove("192.0.2.0/28".parse().unwrap()))
    );
    assert!(e.unban("192.0.2.0/28".parse().unwrap()).is_none());
    assert_eq!(e.decide(&inbound("192.0.2.7:5060", &ok), at(2)).verdict, Verdict::Accept);
}

#[test]
fn restore_and_reload() {
    let mut e = Engine::new(Policy::default());
    e.decide(&inbound("203.0.113.5:5060", SVMAP), at(0));
    let saved: Vec<_> = e.bans().cloned().collect();
    let mut f = Engine::new(Policy::default());
    assert!(f.restore_ban(saved[0].clone(), at(10)));
    assert!(!f.restore_ban(saved[0].clone(), at(10)), "already present");
    let mut g = Engine::new(Policy::default());
    assert!(!g.restore_ban(saved[0].clone(), at(3_600_000)), "expired");
    let mut h = Engine::new(policy("[trusted]\nnetworks = [\"203.0.113.0/24\"]\n"));
    assert!(!h.restore_ban(saved[0].clone(), at(10)), "trusted");
    // Reload making it trusted lifts the ban.
    let removed = f.reload(policy("[trusted]\nnetworks = [\"203.0.113.0/24\"]\n"));
    assert_eq!(removed, vec![BanAction::Remove("203.0.113.5/32".parse().unwrap())]);
    assert_eq!(f.bans().count(), 0);
}

#[test]
fn blocklist_and_loaded_files() {
    let mut p = policy("[blocklist]\nnetworks = [\"192.0.2.0/25\"]\n");
    p.load_blocklist_text("feed.txt", "# feed\n203.0.113.64/26 ; hosting\n").unwrap();
    let mut e = Engine::new(p);
    let ok = req("REGISTER", "sip:pbx.example.com", "201", "r1", 1, "");
    for (src, v) in [
        ("192.0.2.1:5060", Verdict::Drop),
        ("192.0.2.200:5060", Verdict::Accept),
        ("203.0.113.70:5060", Verdict::Drop),
        ("203.0.113.5:5060", Verdict::Accept),
    ] {
        let d = e.decide(&inbound(src, &ok), at(0));
        assert_eq!(d.verdict, v, "{src}");
        if v == Verdict::Drop {
            assert_eq!(d.record.unwrap().rule, "blocklist");
            assert!(d.bans.is_empty());
        }
    }
}

#[test]
fn tripwire_port_bans_and_other_ports_are_not_guarded() {
    let mut e = Engine::new(policy("[ports]\nguarded = [5080]\ntripwire = [5060]\n"));
    let ok = req("OPTIONS", "sip:pbx.example.com", "201", "o1", 1, "");
    let mut p = inbound("198.51.100.9:40000", &ok);
    p.dst = sa("192.0.2.10:5080");
    assert_eq!(e.decide(&p, at(0)).verdict, Verdict::Accept);
    // Keep-alives on the tripwire are not requests.
    assert_eq!(e.decide(&inbound("203.0.113.9:5060", b"\r\n\r\n"), at(0)).verdict, Verdict::Accept);
    let d = e.decide(&inbound("203.0.113.9:5060", &ok), at(1));
    assert_eq!(d.verdict, Verdict::Drop);
    assert_eq!(d.record.as_ref().unwrap().rule, "tripwire");
    assert!(d.record.unwrap().summary.contains("tripwire port 5060"));
    assert_eq!(d.bans.len(), 1);
    // Not guarded, not a tripwire: untouched, even a scanner.
    let mut p = inbound("203.0.113.5:5060", SVMAP);
    p.dst = sa("192.0.2.10:8080");
    assert_eq!(e.decide(&p, at(2)).verdict, Verdict::Accept);
}

#[test]
fn direct_ip_calls_and_unknown_local_users() {
    let mut e = Engine::new(policy("[calls]\nblock_ip_calls = true\nlocal_users = [\"201\", \"202\"]\n[actions]\ndirect_call = \"reject 404\"\n"));
    let to_ip = req("INVITE", "sip:201@192.0.2.10", "201", "c1", 1, "");
    let d = e.decide(&inbound("198.51.100.9:5060", &to_ip), at(0));
    assert_eq!(d.verdict, Verdict::Reject(404));
    assert_eq!(d.record.unwrap().rule, "policy.direct-call");
    let ghost = req("INVITE", "sip:100@pbx.example.com", "100", "c2", 1, "");
    let d = e.decide(&inbound("198.51.100.9:5060", &ghost), at(1));
    assert!(d.record.unwrap().summary.contains("names no local account"));
    let good = req("INVITE", "sip:202@pbx.example.com", "202", "c3", 1, "");
    assert_eq!(e.decide(&inbound("198.51.100.9:5060", &good), at(2)).verdict, Verdict::Accept);
    // Not a new INVITE (re-INVITE inside a dialog has a To tag): not checked.
    let reinvite = String::from_utf8(to_ip.clone())
        .unwrap()
        .replace("To: <sip:201@pbx.example.com>", "To: <sip:201@pbx.example.com>;tag=x9");
    assert_eq!(
        e.decide(&inbound("198.51.100.9:5060", reinvite.as_bytes()), at(3)).verdict,
        Verdict::Accept
    );
    // Default policy: direct IP calls allowed.
    let mut e = Engine::new(Policy::default());
    assert_eq!(e.decide(&inbound("198.51.100.9:5060", &to_ip), at(0)).verdict, Verdict::Accept);
}

#[test]
fn trusted_only_for_all_methods() {
    let mut e = Engine::new(policy("[trusted]\nnetworks = [\"103.55.116.0/24\"]\nonly = true\n[actions]\ntrusted_only = \"reject 403\"\n"));
    let reg = req("REGISTER", "sip:pbx.example.com", "201", "r1", 1, "");
    assert_eq!(e.decide(&inbound("103.55.116.7:5060", &reg), at(0)).verdict, Verdict::Accept);
    assert_eq!(e.decide(&inbound("198.51.100.9:5060", &reg), at(0)).verdict, Verdict::Reject(403));
    // Answers from untrusted peers to our own requests are not requests: accepted.
    let ans = answer(200, "OK", "q", 1, "OPTIONS");
    assert_eq!(e.decide(&inbound("198.51.100.9:5060", &ans), at(0)).verdict, Verdict::Accept);
}

#[test]
fn normal_registration_challenges_are_not_failures_but_wrong_passwords_are() {
    let mut e = Engine::new(Policy::default());
    let phone = "192.0.2.50:5060";
    // 50 registration cycles over ~ an hour: 401 to the bare REGISTER, 200 to the one with credentials.
    for i in 0..50u32 {
        let t = i as u64 * 60_000;
        let cid = "reg-1";
        let c1 = 2 * i + 1;
        assert_eq!(
            e.decide(
                &inbound(phone, &req("REGISTER", "sip:pbx.example.com", "201", cid, c1, "")),
                at(t)
            )
            .verdict,
            Verdict::Accept
        );
        assert_eq!(
            e.decide(
                &outbound(phone, &answer(401, "Unauthorized", cid, c1, "REGISTER")),
                at(t + 1)
            )
            .verdict,
            Verdict::Accept
        );
        assert_eq!(
            e.decide(
                &inbound(phone, &req("REGISTER", "sip:pbx.example.com", "201", cid, c1 + 1, AUTH)),
                at(t + 2)
            )
            .verdict,
            Verdict::Accept
        );
        assert_eq!(
            e.decide(&outbound(phone, &answer(200, "OK", cid, c1 + 1, "REGISTER")), at(t + 3))
                .verdict,
            Verdict::Accept
        );
    }
    assert_eq!(e.bans().count(), 0);

    // A guesser: credentials refused with 401 again, five times.
    let guesser = "203.0.113.40:5060";
    let mut banned_at = None;
    for i in 0..10u32 {
        let t = 4_000_000 + i as u64 * 2_000;
        let cid = format!("g{i}");
        e.decide(
            &inbound(guesser, &req("REGISTER", "sip:pbx.example.com", "201", &cid, 1, "")),
            at(t),
        );
        e.decide(&outbound(guesser, &answer(401, "Unauthorized", &cid, 1, "REGISTER")), at(t + 1));
        e.decide(
            &inbound(guesser, &req("REGISTER", "sip:pbx.example.com", "201", &cid, 2, AUTH)),
            at(t + 2),
        );
        let d = e.decide(
            &outbound(guesser, &answer(401, "Unauthorized", &cid, 2, "REGISTER")),
            at(t + 3),
        );
        if !d.bans.is_empty() {
            banned_at = Some(i + 1);
            assert_eq!(d.verdict, Verdict::Drop, "the refusal itself is withheld");
            let rec = d.record.unwrap();
            assert_eq!(rec.rule, "behaviour.auth-failures");
            assert!(rec.summary.contains("failed authentications"), "{}", rec.summary);
            break;
        }
    }
    assert_eq!(banned_at, Some(5));
}

#[test]
fn forbidden_answers_count_as_failures() {
    let mut e = Engine::new(policy("[behaviour.auth_failures]\nmax = 3\n"));
    let g = "203.0.113.41:5060";
    let mut bans = 0;
    for i in 0..3u32 {
        let d = e.decide(
            &outbound(g, &answer(403, "Forbidden", &format!("f{i}"), 1, "REGISTER")),
            at(i as u64),
        );
        bans += d.bans.len();
    }
    assert_eq!(bans, 1);
}

#[test]
fn slow_enumeration_is_caught_by_behaviour_not_rate() {
    // 7 requests/s (Kamailio's pike banned nothing at this rate), each for a new user, ordinary
    // looking: enumeration bans at the 10th distinct user.
    let mut e = Engine::new(Policy::default());
    let s = "203.0.113.60:5060";
    let mut banned = None;
    for i in 0..40u32 {
        let user = format!("{}", 100 + i);
        let m = req("REGISTER", "sip:pbx.example.com", &user, &format!("e{i}"), 1, "");
        let d = e.decide(&inbound(s, &m), at(i as u64 * 143));
        if !d.bans.is_empty() {
            let rec = d.record.unwrap();
            assert_eq!(rec.rule, "behaviour.enumeration");
            assert!(
                rec.evidence.users_probed.contains(&"109".to_string()),
                "{:?}",
                rec.evidence.users_probed
            );
            banned = Some(i + 1);
            break;
        }
    }
    assert_eq!(banned, Some(10));
}

#[test]
fn not_found_answers_ban() {
    let mut e = Engine::new(Policy::default());
    let s = "203.0.113.61:5060";
    let mut banned = None;
    for i in 0..20u32 {
        // Same target user each time (no enumeration), but every answer is 404/480/484.
        e.decide(
            &inbound(s, &req("INVITE", "sip:999@pbx.example.com", "999", &format!("n{i}"), 1, "")),
            at(i as u64 * 1000),
        );
        let code = [404, 480, 484][i as usize % 3];
        let d = e.decide(
            &outbound(s, &answer(code, "Nope", &format!("n{i}"), 1, "INVITE")),
            at(i as u64 * 1000 + 5),
        );
        if !d.bans.is_empty() {
            assert_eq!(d.record.unwrap().rule, "behaviour.not-found");
            banned = Some(i + 1);
            break;
        }
    }
    assert_eq!(banned, Some(10));
}

#[test]
fn request_flood_bans_and_a_busy_phone_does_not() {
    let mut e = Engine::new(Policy::default());
    // A busy phone: 20 requests within 10 s, same users.
    for i in 0..20u32 {
        let m = req("OPTIONS", "sip:pbx.example.com", "201", &format!("p{i}"), 1, "");
        assert_eq!(
            e.decide(&inbound("192.0.2.50:5060", &m), at(i as u64 * 500)).verdict,
            Verdict::Accept
        );
    }
    // A flood: 200 req/s.
    let mut banned = None;
    for i in 0..500u32 {
        let m = req("OPTIONS", "sip:pbx.example.com", "201", &format!("f{i}"), 1, "");
        if !e.decide(&inbound("203.0.113.62:5060", &m), at(i as u64 * 5)).bans.is_empty() {
            banned = Some(i + 1);
            break;
        }
    }
    assert_eq!(banned, Some(100));
}

#[test]
fn untrusted_invite_bursts_ban() {
    let mut e = Engine::new(policy("[behaviour.untrusted_invites]\nmax = 5\n"));
    let mut banned = None;
    for i in 0..10u32 {
        let m = req("INVITE", "sip:201@pbx.example.com", "201", &format!("i{i}"), 1, "");
        if !e.decide(&inbound("203.0.113.63:5060", &m), at(i as u64 * 1000)).bans.is_empty() {
            banned = Some(i + 1);
            break;
        }
    }
    assert_eq!(banned, Some(5));
}

#[test]
fn scanner_without_ua_and_forged_ua_caught_structurally() {
    let s = String::from_utf8(SVMAP.to_vec()).unwrap();
    let no_ua = s.replace("User-Agent: friendly-scanner\r\n", "");
    let forged = s.replace("friendly-scanner", "Grandstream GXP2170 1.0.11.3");
    for m in [no_ua, forged] {
        let mut e = Engine::new(Policy::default());
        let d = e.decide(&inbound("203.0.113.5:5060", m.as_bytes()), at(0));
        assert_eq!(d.verdict, Verdict::Drop);
        assert_eq!(d.bans.len(), 1);
    }
}

#[test]
fn other_tools_by_user_agent_and_probe_shape() {
    let tools = [
        ("sippts", "OPTIONS sip:100@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=abc123;rport\r\nFrom: <sip:100@10.0.0.1>;tag=x1\r\nTo: <sip:100@192.0.2.10>\r\nCall-ID: a1b2c3@10.0.0.1\r\nCSeq: 1 OPTIONS\r\nContact: <sip:100@10.0.0.1:5060>\r\nUser-Agent: pplsip\r\nContent-Length: 0\r\n\r\n", "signature.sippts-ua"),
        ("sippts forged", "OPTIONS sip:100@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=abc123;rport\r\nFrom: <sip:100@10.0.0.1>;tag=x1\r\nTo: <sip:100@192.0.2.10>\r\nCall-ID: a1b2c3@10.0.0.1\r\nCSeq: 1 OPTIONS\r\nContact: <sip:100@10.0.0.1:5060>\r\nUser-Agent: Yealink SIP-T46S\r\nContent-Length: 0\r\n\r\n", "signature.branch-without-cookie"),
        ("nmap", "OPTIONS sip:nm SIP/2.0\r\nVia: SIP/2.0/UDP nm;branch=foo;rport\r\nFrom: <sip:nm@nm>;tag=root\r\nTo: <sip:nm2@nm2>\r\nCall-ID: 50000\r\nCSeq: 42 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\nContact: <sip:nm@nm>\r\nAccept: application/sdp\r\n\r\n", "signature.nmap-probe"),
        ("nmap nse", "OPTIONS sip:192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK7f3a\r\nFrom: <sip:user@192.0.2.10>;tag=0a1b\r\nTo: <sip:user@192.0.2.10>\r\nCall-ID: 3f2a@203.0.113.5\r\nCSeq: 1234 OPTIONS\r\nUser-Agent: Nmap NSE\r\nContent-Length:  0\r\n\r\n", "signature.nmap-ua"),
        ("sipsak", "OPTIONS sip:192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK.0a1b2c3d;rport\r\nFrom: sip:sipsak@203.0.113.5:5060;tag=5d2a\r\nTo: sip:192.0.2.10\r\nCall-ID: 1234@203.0.113.5\r\nCSeq: 1 OPTIONS\r\nUser-Agent: sipsak 0.9.8\r\nContent-Length: 0\r\n\r\n", "signature.sipsak-ua"),
        ("sundayddr", "INVITE sip:100@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKa1\r\nFrom: <sip:100@192.0.2.10>;tag=1\r\nTo: <sip:100@192.0.2.10>\r\nCall-ID: q@x\r\nCSeq: 1 INVITE\r\nUser-Agent: sundayddr\r\nContent-Length: 0\r\n\r\n", "signature.sundayddr-ua"),
        ("sipcli", "INVITE sip:100@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKa1\r\nFrom: <sip:100@192.0.2.10>;tag=1\r\nTo: <sip:100@192.0.2.10>\r\nCall-ID: q@x\r\nCSeq: 1 INVITE\r\nUser-Agent: sipcli/v1.8\r\nContent-Length: 0\r\n\r\n", "signature.sipcli-ua"),
        ("vax", "INVITE sip:100@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKa1\r\nFrom: <sip:100@192.0.2.10>;tag=1\r\nTo: <sip:100@192.0.2.10>\r\nCall-ID: q@x\r\nCSeq: 1 INVITE\r\nUser-Agent: VaxSIPUserAgent/3.1\r\nContent-Length: 0\r\n\r\n", "signature.vaxsip-ua"),
        ("sivus", "INVITE sip:100@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKa1\r\nFrom: <sip:100@192.0.2.10>;tag=1\r\nTo: <sip:100@192.0.2.10>\r\nCall-ID: q@x\r\nCSeq: 1 INVITE\r\nUser-Agent: SIVuS PhoneV1.9\r\nContent-Length: 0\r\n\r\n", "signature.sivus-ua"),
        ("smap", "OPTIONS sip:192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKa1\r\nFrom: <sip:smap@203.0.113.5>;tag=1\r\nTo: <sip:192.0.2.10>\r\nCall-ID: q@x\r\nCSeq: 1 OPTIONS\r\nUser-Agent: smap 0.6.0\r\nContent-Length: 0\r\n\r\n", "signature.smap-ua"),
    ];
    for (name, msg, rule) in tools {
        let mut e = Engine::new(Policy::default());
        let d = e.decide(&inbound("203.0.113.5:5060", msg.as_bytes()), at(0));
        assert_eq!(d.bans.len(), 1, "{name}: {:?}", d.record);
        assert_eq!(d.record.unwrap().rule, rule, "{name}");
    }
}

#[test]
fn one_weak_tell_alone_does_not_ban() {
    // A decimal Call-ID alone (some real devices) is not enough.
    let m = String::from_utf8(req("REGISTER", "sip:pbx.example.com", "201", "x", 1, ""))
        .unwrap()
        .replace("Call-ID: x@192.168.1.20", "Call-ID: 123456789");
    let mut e = Engine::new(Policy::default());
    assert_eq!(
        e.decide(&inbound("198.51.100.9:5060", m.as_bytes()), at(0)).verdict,
        Verdict::Accept
    );
}

#[test]
fn custom_signatures_and_disabling() {
    let mut e = Engine::new(policy("[[signatures.custom]]\nid = \"evil\"\nfield = \"user-agent\"\nmatch = \"prefix\"\nvalue = \"evilscan\"\ntool = \"EvilScan\"\n"));
    let m = String::from_utf8(req("OPTIONS", "sip:pbx.example.com", "201", "x", 1, ""))
        .unwrap()
        .replace("Yealink SIP-T46S 66.86.0.15", "EvilScan/2.0");
    let d = e.decide(&inbound("203.0.113.5:5060", m.as_bytes()), at(0));
    let rec = d.record.unwrap();
    assert_eq!(rec.rule, "signature.custom");
    assert_eq!(rec.evidence.signatures, vec!["custom.evil".to_string()]);
    assert!(rec.summary.contains("EvilScan"));
    let mut e = Engine::new(policy("[signatures]\ndisabled = [\"sipvicious-ua\", \"sipvicious-display-name\", \"sipvicious-fake-host\", \"sipvicious-tag\"]\n"));
    // Still two weak tells (branch + decimal Call-ID): 100.
    let d = e.decide(&inbound("203.0.113.5:5060", SVMAP), at(0));
    assert_eq!(d.record.unwrap().evidence.signatures, vec!["sipvicious-branch", "decimal-call-id"]);
}

#[test]
fn bans_off_only_drops() {
    let mut e = Engine::new(policy("[bans]\nenabled = false\n"));
    let d = e.decide(&inbound("203.0.113.5:5060", SVMAP), at(0));
    assert_eq!(d.verdict, Verdict::Drop);
    assert!(d.bans.is_empty());
    assert!(d.record.unwrap().summary.ends_with("dropped (bans are off)"));
}

#[test]
fn max_bans_is_respected() {
    let mut e = Engine::new(policy("[limits]\nmax_bans = 16\n[bans.aggregate]\nenabled = false\n"));
    for i in 0..40u32 {
        e.decide(
            &inbound(&format!("198.18.{}.{}:5060", i / 200, i % 200 + 1), SVMAP),
            at(i as u64),
        );
    }
    assert_eq!(e.bans().count(), 16);
    assert_eq!(e.stats().bans_refused, 24);
}

#[test]
fn malformed_payloads() {
    let mut e = Engine::new(Policy::default());
    assert_eq!(
        e.decide(&inbound("198.51.100.9:5060", b"\x16\x03\x01garbage"), at(0)).verdict,
        Verdict::Accept
    );
    let mut e = Engine::new(policy("[actions]\nmalformed = \"drop\"\n"));
    let d = e.decide(&inbound("198.51.100.9:5060", b"\x16\x03\x01garbage"), at(0));
    assert_eq!(d.verdict, Verdict::Drop);
    assert_eq!(d.record.unwrap().rule, "malformed");
    assert_eq!(e.stats().malformed, 1);
}

#[test]
fn stats_count() {
    let mut e = Engine::new(Policy::default());
    e.decide(&inbound("203.0.113.5:5060", SVMAP), at(0));
    e.decide(
        &inbound("198.51.100.9:5060", &req("OPTIONS", "sip:pbx.example.com", "201", "x", 1, "")),
        at(0),
    );
    let s = e.stats();
    assert_eq!(
        (s.packets, s.accepted, s.dropped, s.bans_added, s.active_bans, s.tracked_sources),
        (2, 1, 1, 1, 1, 1)
    );
}

#[test]
fn a_flood_of_forged_sources_keeps_state_bounded() {
    // 50k distinct forged sources through the whole engine, cap 1000 (the 1M case runs on the
    // source table itself in behaviour.rs, where it is fast in a debug build).
    let mut e = Engine::new(policy("[limits]\nmax_tracked_sources = 1000\n"));
    let m = req("REGISTER", "sip:pbx.example.com", "201", "r1", 1, "");
    for i in 0..50_000u32 {
        let src = std::net::SocketAddr::from((std::net::Ipv4Addr::from(0x0A00_0000 + i), 5060));
        let mut p = inbound("198.51.100.1:5060", &m);
        p.src = src;
        assert_eq!(e.decide(&p, at(i as u64)).verdict, Verdict::Accept);
        assert!(e.tracked_sources() <= 1000);
    }
    let s = e.stats();
    assert_eq!((s.tracked_sources, s.evicted_sources), (1000, 49_000));
}
