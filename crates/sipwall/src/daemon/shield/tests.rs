use super::*;

// Real Asterisk 18 answers recorded from svwar/svcrack runs (crates/engine/tests/scenarios).
const CHALLENGE_REGISTER: &[u8] =
    include_bytes!("../../../../engine/tests/scenarios/svcrack-c-register/002-out.sip");
const NOT_FOUND_REGISTER: &[u8] =
    include_bytes!("../../../../engine/tests/scenarios/svwar-register/002-out.sip");
const NOT_FOUND_INVITE: &[u8] =
    include_bytes!("../../../../engine/tests/scenarios/svwar-invite/003-out.sip");
const NOT_FOUND_OPTIONS: &[u8] =
    include_bytes!("../../../../engine/tests/scenarios/svwar-c-options/004-out.sip");

fn pbx() -> IpAddr {
    "192.0.2.10".parse().unwrap()
}

fn names(msg: &[u8]) -> Vec<String> {
    let m = Message::parse(msg).expect("forged answer parses");
    m.headers().map(|(n, _)| format!("{n:?}")).collect()
}

fn header<'a>(msg: &'a [u8], name: &str) -> &'a [u8] {
    lines(msg)
        .unwrap()
        .1
        .find(|l| name_of(l).eq_ignore_ascii_case(name.as_bytes()))
        .unwrap_or_else(|| panic!("no {name} in {}", String::from_utf8_lossy(msg)))
}

fn nonce(msg: &[u8]) -> &[u8] {
    let (a, b) = nonce_span(msg).expect("a nonce");
    &msg[a..b]
}

#[test]
fn only_status_codes_that_matter_are_looked_at() {
    assert_eq!(answer_kind(CHALLENGE_REGISTER), Some(AnswerKind::Challenge));
    assert_eq!(answer_kind(NOT_FOUND_REGISTER), Some(AnswerKind::NoSuchUser));
    assert_eq!(answer_kind(b"SIP/2.0 484 Address Incomplete\r\n"), Some(AnswerKind::NoSuchUser));
    assert_eq!(answer_kind(b"SIP/2.0 480 Temporarily Unavailable\r\n"), None);
    assert_eq!(answer_kind(b"SIP/2.0 200 OK\r\n"), None);
    assert_eq!(answer_kind(b"REGISTER sip:192.0.2.10 SIP/2.0\r\n"), None);
    assert_eq!(answer_kind(b"SIP/2.0 40"), None);
}

#[test]
fn with_a_learned_challenge_the_404_becomes_that_challenge_for_this_transaction() {
    let s = Shield::new();
    assert!(s.learn(pbx(), CHALLENGE_REGISTER).is_some());
    let mut out = Vec::new();
    assert!(s.forge(pbx(), NOT_FOUND_REGISTER, &mut out));
    // The same header lines, in the same order, as a real user's challenge.
    assert_eq!(names(&out), names(CHALLENGE_REGISTER));
    let m = Message::parse(&out).unwrap();
    assert_eq!(m.status(), Some(401));
    assert_eq!(&out[..26], b"SIP/2.0 401 Unauthorized\r\n");
    // The 404's own transaction lines, byte for byte (the walker matches them).
    for h in ["Via", "From", "To", "Call-ID", "CSeq"] {
        assert_eq!(header(&out, h), header(NOT_FOUND_REGISTER, h), "{h}");
    }
    // The template's other lines; only the nonce differs, with its length and alphabet.
    for h in ["Server", "Allow", "Content-Length"] {
        assert_eq!(header(&out, h), header(CHALLENGE_REGISTER, h), "{h}");
    }
    let (real, forged) = (nonce(CHALLENGE_REGISTER), nonce(&out));
    assert_eq!(forged.len(), real.len());
    assert_ne!(forged, real);
    assert!(forged.iter().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    let mut blanked = out.clone();
    let (a, b) = nonce_span(&out).unwrap();
    blanked[a..b].copy_from_slice(real);
    let expected = String::from_utf8_lossy(CHALLENGE_REGISTER)
        .replace(
            std::str::from_utf8(header(CHALLENGE_REGISTER, "Via")).unwrap(),
            std::str::from_utf8(header(NOT_FOUND_REGISTER, "Via")).unwrap(),
        )
        .replace(
            std::str::from_utf8(header(CHALLENGE_REGISTER, "From")).unwrap(),
            std::str::from_utf8(header(NOT_FOUND_REGISTER, "From")).unwrap(),
        )
        .replace(
            std::str::from_utf8(header(CHALLENGE_REGISTER, "To")).unwrap(),
            std::str::from_utf8(header(NOT_FOUND_REGISTER, "To")).unwrap(),
        )
        .replace(
            std::str::from_utf8(header(CHALLENGE_REGISTER, "Call-ID")).unwrap(),
            std::str::from_utf8(header(NOT_FOUND_REGISTER, "Call-ID")).unwrap(),
        );
    assert_eq!(String::from_utf8_lossy(&blanked), expected);
    // Fresh each time.
    let mut again = Vec::new();
    assert!(s.forge(pbx(), NOT_FOUND_REGISTER, &mut again));
    assert_ne!(nonce(&again), forged);
}

#[test]
fn without_a_template_the_404_becomes_the_usual_challenge_of_its_method() {
    let s = Shield::new();
    let mut out = Vec::new();
    assert!(s.forge(pbx(), NOT_FOUND_INVITE, &mut out));
    let m = Message::parse(&out).unwrap();
    assert_eq!(m.status(), Some(407));
    assert_eq!(m.cseq().unwrap().method, Method::Invite);
    let auth = String::from_utf8_lossy(header(&out, "Proxy-Authenticate")).into_owned();
    assert!(auth.contains("Digest realm=\"127.0.0.1\""), "{auth}");
    assert!(auth.contains("algorithm=MD5"), "{auth}");
    assert_eq!(nonce(&out).len(), 32);
    assert_ne!(nonce(&out), &[b'0'; 32][..]);
    assert_eq!(header(&out, "Server"), header(NOT_FOUND_INVITE, "Server"));
    assert_eq!(m.content_length(), Some(0));
    assert_eq!(m.body(), b"");

    assert!(s.forge(pbx(), NOT_FOUND_OPTIONS, &mut out));
    let m = Message::parse(&out).unwrap();
    assert_eq!(m.status(), Some(401));
    assert!(header(&out, "WWW-Authenticate").starts_with(b"WWW-Authenticate: Digest"));
    // One Content-Length only.
    assert_eq!(lines(&out).unwrap().1.filter(|l| is_content_length(l)).count(), 1);
}

#[test]
fn another_methods_template_of_the_same_host_is_used_before_the_default() {
    let s = Shield::new();
    assert!(s.learn(pbx(), CHALLENGE_REGISTER).is_some());
    let mut out = Vec::new();
    assert!(s.forge(pbx(), NOT_FOUND_INVITE, &mut out));
    let m = Message::parse(&out).unwrap();
    assert_eq!(m.cseq().unwrap().method, Method::Invite);
    // The INVITE form (a PBX answers INVITE with 407), the REGISTER challenge's realm/shape.
    assert_eq!(m.status(), Some(407));
    let auth = String::from_utf8_lossy(header(&out, "Proxy-Authenticate")).into_owned();
    assert!(
        auth.starts_with("Proxy-Authenticate: Digest algorithm=MD5, realm=\"asterisk\""),
        "{auth}"
    );
    assert_eq!(
        names(&out),
        names(CHALLENGE_REGISTER).iter().map(|n| n.replace("Www", "Proxy")).collect::<Vec<_>>()
    );
    // OPTIONS takes the REGISTER form as is.
    assert!(s.forge(pbx(), NOT_FOUND_OPTIONS, &mut out));
    assert_eq!(Message::parse(&out).unwrap().status(), Some(401));
    // Another host has learned nothing: the default form.
    assert!(s.forge("192.0.2.11".parse().unwrap(), NOT_FOUND_INVITE, &mut out));
    assert!(String::from_utf8_lossy(&out).contains("realm=\"127.0.0.1\""));
}

#[test]
fn a_new_nonce_or_transaction_is_not_a_new_form_but_a_new_realm_is() {
    let s = Shield::new();
    assert_eq!(s.learn(pbx(), CHALLENGE_REGISTER), Some(true));
    assert_eq!(s.learn(pbx(), CHALLENGE_REGISTER), Some(false));
    let mut other = Vec::new();
    assert!(s.forge(pbx(), NOT_FOUND_REGISTER, &mut other)); // same form, new nonce
    assert_eq!(s.learn(pbx(), &other), Some(false));
    let realm = String::from_utf8_lossy(CHALLENGE_REGISTER).replace("asterisk", "pbx.example");
    assert_eq!(s.learn(pbx(), realm.as_bytes()), Some(true));
    assert_eq!(method_name(Method::Invite), Some("INVITE"));
    assert_eq!(method_name(Method::Bye), None);
}

#[test]
fn what_the_shield_does_not_touch() {
    let s = Shield::new();
    let mut out = Vec::new();
    let bye = String::from_utf8_lossy(NOT_FOUND_INVITE).replace("1 INVITE", "2 BYE");
    assert!(!s.forge(pbx(), bye.as_bytes(), &mut out));
    assert!(out.is_empty());
    assert!(!s.forge(pbx(), CHALLENGE_REGISTER, &mut out)); // not a 404
    let no_call_id = String::from_utf8_lossy(NOT_FOUND_INVITE).replace("Call-ID", "X-Call");
    assert!(!s.forge(pbx(), no_call_id.as_bytes(), &mut out));
    // A 401 without a Digest nonce is no template.
    let no_nonce = String::from_utf8_lossy(CHALLENGE_REGISTER).replace("nonce=", "once=");
    assert!(s.learn(pbx(), no_nonce.as_bytes()).is_none());
    assert!(s.learn(pbx(), NOT_FOUND_REGISTER).is_none());
    assert_eq!(s.hosts(), 0);
}

#[test]
fn hostile_bytes_never_panic_and_the_table_stays_bounded() {
    let s = Shield::new();
    let mut out = Vec::new();
    for msg in [CHALLENGE_REGISTER, NOT_FOUND_REGISTER, NOT_FOUND_INVITE] {
        for n in 0..msg.len() {
            let _ = s.learn(pbx(), &msg[..n]);
            let _ = s.forge(pbx(), &msg[..n], &mut out);
            let _ = nonce_span(&msg[..n]);
        }
    }
    // Folded and bare-LF lines, a token nonce.
    let odd = b"SIP/2.0 407 Proxy Authentication Required\nVia: SIP/2.0/UDP 203.0.113.9\n ;branch=z9hG4bK1\nFrom: <sip:a@b>;tag=1\nTo: <sip:a@b>\nCall-ID: x\nCSeq: 1 INVITE\nProxy-Authenticate: Digest realm=x,nonce=AbC-123\n\n";
    assert!(s.learn(pbx(), odd).is_some());
    assert_eq!(nonce(odd), b"AbC-123");
    assert!(s.forge(pbx(), NOT_FOUND_INVITE, &mut out));
    let n = nonce(&out);
    assert_eq!((n.len(), n[3]), (7, b'-'));
    assert!(n[..3].iter().all(u8::is_ascii_alphabetic) && n[4..].iter().all(u8::is_ascii_digit));
    for i in 0..(MAX_HOSTS as u32 + 50) {
        let host = IpAddr::from([198, 51, (i >> 8) as u8, i as u8]);
        assert!(s.learn(host, CHALLENGE_REGISTER).is_some());
    }
    assert_eq!(s.hosts(), MAX_HOSTS);
    let huge = [CHALLENGE_REGISTER, &vec![b'x'; MAX_TEMPLATE][..]].concat();
    assert!(s.learn(pbx(), &huge).is_none());
}

#[test]
fn the_forged_answer_rides_in_a_valid_udp_packet() {
    let s = Shield::new();
    s.learn(pbx(), CHALLENGE_REGISTER);
    let orig = sipwall_netfilter::packet::build_udp_v4(
        "192.0.2.10:5060".parse().unwrap(),
        "203.0.113.9:5060".parse().unwrap(),
        NOT_FOUND_REGISTER,
    );
    let (mut payload, mut pkt) = (Vec::new(), Vec::new());
    assert!(s.forge(pbx(), NOT_FOUND_REGISTER, &mut payload));
    sipwall_netfilter::packet::rebuild_udp(&orig, &payload, &mut pkt).unwrap();
    let v = sipwall_netfilter::packet::parse(&pkt).unwrap();
    assert_eq!(v.payload, &payload[..]);
    assert_eq!(v.dst, "203.0.113.9:5060".parse().unwrap());
}
