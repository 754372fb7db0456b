//! Accessor tests on real messages recorded from real tools (`scripts/record-sip-fixtures.py`)
//! and on the hand-written phone messages (`tests/fixtures/phone/README.md`).
//!
//! Scanner assertions check the tools' wire habits (design.md, "What scanners look like"),
//! not one recording's random numbers, so re-recording keeps them green.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use sipwall_sip::{HeaderName, Host, Message, Method, Transport};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn load(rel: &str) -> Vec<u8> {
    let p = dir().join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn ip(s: &str) -> Host<'static> {
    Host::Ip(s.parse::<IpAddr>().unwrap())
}

fn is_decimal(b: &[u8]) -> bool {
    !b.is_empty() && b.iter().all(u8::is_ascii_digit)
}

/// SIPVicious From tags: lowercase hex of text holding 0x01 then decimal digits.
fn decode_hex(tag: &[u8]) -> Vec<u8> {
    assert!(tag.len() % 2 == 0, "odd hex tag {tag:?}");
    tag.chunks(2)
        .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 16).unwrap())
        .collect()
}

/// Every `.sip` file under `sub`.
fn files(sub: &str) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(dir().join(sub))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sip"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

fn method_of(name: &str) -> Method<'static> {
    for (k, m) in
        [("options", Method::Options), ("invite", Method::Invite), ("register", Method::Register)]
    {
        if name.contains(&format!("-{k}")) {
            return m;
        }
    }
    panic!("no method in {name}")
}

fn check_sipvicious_common(name: &str, m: &Message) {
    let compact = name.contains("-c-") || name.contains("-c.");
    let raw = m.as_bytes();
    // With -c SIPVicious sends no User-Agent at all.
    if compact {
        assert_eq!(m.user_agent(), None, "{name}");
        assert!(raw.windows(5).any(|w| w == b"\r\nf: "), "{name}: compact From");
        assert!(raw.windows(5).any(|w| w == b"\r\ni: "), "{name}: compact Call-ID");
    } else {
        assert_eq!(m.user_agent(), Some(&b"friendly-scanner"[..]), "{name}");
        assert_eq!(m.max_forwards(), Some(70));
    }
    let via = m.top_via().unwrap();
    assert_eq!(via.transport, Transport::Udp);
    assert_eq!(via.host, ip("127.0.0.1"));
    assert!(via.rport, "{name}: ;rport");
    let branch = via.branch.unwrap();
    assert!(branch.starts_with(b"z9hG4bK-"), "{name}");
    assert!(is_decimal(&branch[8..]), "{name}: decimal branch");
    assert!(is_decimal(m.call_id().unwrap()), "{name}: decimal Call-ID");
    let tag = m.from().unwrap().tag.unwrap();
    if tag == b"3206210844" {
        // svcrack's fixed first tag.
        assert!(name.starts_with("svcrack"), "{name}");
    } else {
        let tag = decode_hex(tag);
        let one = tag.iter().position(|b| *b == 1).expect("0x01 in tag");
        assert!(is_decimal(&tag[one + 1..]), "{name}: digits after 0x01");
    }
    assert_eq!(m.content_length(), Some(m.body().len()));
}

#[test]
fn svmap_requests_plain_and_compact() {
    let fx: Vec<_> = files("scanner").into_iter().filter(|(n, _)| n.starts_with("svmap")).collect();
    assert_eq!(fx.len(), 6, "OPTIONS, INVITE, REGISTER, each with and without -c");
    for (name, raw) in &fx {
        let m = Message::parse(raw).unwrap_or_else(|e| panic!("{name}: {e}"));
        check_sipvicious_common(name, &m);
        let method = method_of(name);
        assert_eq!(m.method(), Some(method), "{name}");
        assert_eq!(m.cseq().unwrap().method, method);
        let from = m.from().unwrap();
        assert_eq!(from.display_name, Some(&b"sipvicious"[..]));
        assert_eq!(from.uri.user, Some(&b"100"[..]));
        assert_eq!(from.uri.host, Some(ip("1.1.1.1")));
        assert_eq!(m.to().unwrap().uri.host, Some(ip("1.1.1.1")));
        let uri = m.request_uri().unwrap();
        assert_eq!(uri.host, Some(ip("127.0.0.1")));
        if method != Method::Register {
            assert_eq!(uri.user, Some(&b"100"[..]));
        }
    }
}

#[test]
fn svwar_requests_probe_and_extension() {
    for compact in ["", "-c"] {
        for method in ["register", "options", "invite"] {
            let probe_name = format!("scanner/svwar{compact}-{method}.sip");
            let probe = load(&probe_name);
            let p = Message::parse(&probe).unwrap();
            check_sipvicious_common(&probe_name, &p);
            // First it asks for a random (32-bit decimal) user to learn the "no such user" answer.
            let user = p.to().unwrap().uri.user.unwrap();
            assert!(is_decimal(user) && user != b"100", "{probe_name}");

            let ext_name = format!("scanner/svwar{compact}-{method}-ext100.sip");
            let ext = load(&ext_name);
            let m = Message::parse(&ext).unwrap();
            check_sipvicious_common(&ext_name, &m);
            assert_eq!(m.to().unwrap().display_name, Some(&b"100"[..]));
            assert_eq!(m.to().unwrap().uri.user, Some(&b"100"[..]));
            // svwar puts the extension in the From tag.
            let tag = decode_hex(m.from().unwrap().tag.unwrap());
            assert!(tag.starts_with(b"100\x01"), "{ext_name}");
            if method == "invite" {
                assert_eq!(m.sdp_session_name(), Some(&b"svwar"[..]));
                assert_eq!(m.content_type(), Some(&b"application/sdp"[..]));
                assert_eq!(m.request_uri().unwrap().user, Some(&b"100"[..]));
                let ack = load(&format!("scanner/svwar{compact}-invite-then-ack.sip"));
                assert_eq!(Message::parse(&ack).unwrap().method(), Some(Method::Ack));
            }
        }
    }
}

#[test]
fn svcrack_register_and_credentials() {
    for compact in ["", "-c"] {
        let name = format!("svcrack{compact}-register.sip");
        let first = load(&format!("scanner/{name}"));
        let m = Message::parse(&first).unwrap();
        check_sipvicious_common(&name, &m);
        assert_eq!(m.method(), Some(Method::Register));
        assert_eq!(m.from().unwrap().tag, Some(&b"3206210844"[..]));
        assert_eq!(m.authorization(), None);

        let name = format!("svcrack{compact}-register-auth.sip");
        let auth = load(&format!("scanner/{name}"));
        let m = Message::parse(&auth).unwrap();
        check_sipvicious_common(&name, &m);
        let c = m.authorization().unwrap();
        assert_eq!(c.scheme, b"Digest");
        assert_eq!(c.username, Some(&b"100"[..]));
        assert_eq!(c.realm, Some(&b"asterisk"[..]));
        assert_eq!(c.uri, Some(&b"sip:127.0.0.1"[..]));
        // svcrack puts `user:password` in the From tag.
        let tag = decode_hex(m.from().unwrap().tag.unwrap());
        assert!(tag.starts_with(b"100:"), "{:?}", String::from_utf8_lossy(&tag));
        assert_eq!(m.proxy_authorization(), None);
    }
}

#[test]
fn sipp_call() {
    let inv = load("sipp/uac-invite.sip");
    let m = Message::parse(&inv).unwrap();
    assert_eq!(m.method(), Some(Method::Invite));
    assert_eq!(m.request_uri().unwrap().user, Some(&b"service"[..]));
    assert_eq!(m.request_uri().unwrap().port, Some(15092));
    assert_eq!(m.from().unwrap().display_name, Some(&b"sipp"[..]));
    assert!(m.from().unwrap().tag.unwrap().ends_with(b"SIPpTag001"));
    assert_eq!(m.header(HeaderName::Subject), Some(&b"Performance Test"[..]));
    // SIPp pads Content-Length with spaces.
    assert_eq!(m.content_length(), Some(m.body().len()));
    assert_eq!(m.sdp_session_name(), Some(&b"-"[..]));
    assert_eq!(m.contact().unwrap().uri.port, Some(15093));
    assert_eq!(m.user_agent(), None);

    let ringing = load("sipp/uas-180-invite.sip");
    let r = Message::parse(&ringing).unwrap();
    assert_eq!((r.status(), r.reason()), (Some(180), Some(&b"Ringing"[..])));
    assert!(r.to().unwrap().tag.is_some());
    assert_eq!(r.call_id(), m.call_id());
    assert_eq!(r.top_via().unwrap().branch, m.top_via().unwrap().branch);

    let ok = load("sipp/uas-200-invite.sip");
    let o = Message::parse(&ok).unwrap();
    assert_eq!((o.status(), o.reason()), (Some(200), Some(&b"OK"[..])));
    assert_eq!(o.cseq().unwrap().method, Method::Invite);
    let contact = o.contact().unwrap();
    assert_eq!(contact.uri.user, None);
    assert_eq!(contact.uri.params.get(b"transport"), Some(Some(&b"UDP"[..])));
    assert_eq!(o.sdp_session_name(), Some(&b"-"[..]));

    for (file, method) in [("sipp/uac-ack.sip", Method::Ack), ("sipp/uac-bye.sip", Method::Bye)] {
        let raw = load(file);
        let a = Message::parse(&raw).unwrap();
        assert_eq!(a.method(), Some(method), "{file}");
        assert_eq!(a.call_id(), m.call_id(), "{file}");
        assert_eq!(a.body(), b"");
    }
    let bye_ok = load("sipp/uas-200-bye.sip");
    let b = Message::parse(&bye_ok).unwrap();
    assert_eq!(b.cseq().unwrap().method, Method::Bye);
}

#[test]
fn phone_register_and_invite() {
    let raw = load("phone/yealink-register.sip");
    let m = Message::parse(&raw).unwrap();
    assert_eq!(m.method(), Some(Method::Register));
    assert_eq!(m.user_agent(), Some(&b"Yealink SIP-T46S 66.86.0.15"[..]));
    assert_eq!(m.expires(), Some(3600));
    assert_eq!(m.authorization(), None);
    let c = m.contact().unwrap();
    assert_eq!(c.uri.host, Some(ip("192.168.1.23")));
    assert_eq!(c.param(b"reg-id"), Some(Some(&b"1"[..])));
    assert_eq!(
        c.param(b"+sip.instance"),
        Some(Some(&b"<urn:uuid:00000000-0000-1000-8000-805ec0a1b2c3>"[..]))
    );
    assert_eq!(m.header_values(HeaderName::AllowEvents).count(), 5);

    let raw = load("phone/yealink-register-auth.sip");
    let m = Message::parse(&raw).unwrap();
    let a = m.authorization().unwrap();
    assert_eq!(a.username, Some(&b"201"[..]));
    assert_eq!(a.realm, Some(&b"asterisk"[..]));
    assert_eq!(a.uri, Some(&b"sip:pbx.example.com"[..]));
    assert_eq!(m.cseq().unwrap().number, 2);

    let raw = load("phone/yealink-invite.sip");
    let m = Message::parse(&raw).unwrap();
    assert_eq!(m.method(), Some(Method::Invite));
    let u = m.request_uri().unwrap();
    assert_eq!(
        (u.user, u.host, u.port),
        (Some(&b"1002"[..]), Some(Host::Name(b"pbx.example.com")), Some(5060))
    );
    assert!((550..=700).contains(&m.body().len()), "~600-byte SDP");
    assert_eq!(m.sdp_session_name(), Some(&b"SDP data"[..]));
    assert_eq!(m.to().unwrap().tag, None);
    assert!(m.top_via().unwrap().rport);

    let raw = load("phone/invite-600.sip");
    assert!((580..=650).contains(&raw.len()));
    let m = Message::parse(&raw).unwrap();
    assert_eq!(m.content_length(), Some(m.body().len()));
}

#[test]
fn responses() {
    let cases: [(&str, u16, &[u8]); 4] = [
        ("response/100-listener.sip", 100, b"Trying"),
        ("response/401-listener.sip", 401, b"Unauthorized"),
        ("response/403-listener.sip", 403, b"Forbidden"),
        ("response/404-listener.sip", 404, b"Not Found"),
    ];
    for (file, code, reason) in cases {
        let raw = load(file);
        let m = Message::parse(&raw).unwrap();
        assert!(!m.is_request());
        assert_eq!(m.status(), Some(code), "{file}");
        assert_eq!(m.reason(), Some(reason), "{file}");
        assert_eq!(m.method(), None);
        assert_eq!(m.server(), Some(&b"Asterisk PBX 18.20.0"[..]));
        assert!(m.to().unwrap().tag.is_some());
        assert!(m.top_via().unwrap().rport);
    }
    let raw = load("response/401-listener.sip");
    let m = Message::parse(&raw).unwrap();
    assert!(m.header(HeaderName::WwwAuthenticate).unwrap().starts_with(b"Digest"));
}

#[test]
fn every_fixture_parses_and_every_accessor_answers() {
    let mut n = 0;
    for sub in ["scanner", "sipp", "phone", "response"] {
        for (name, raw) in files(sub) {
            let m = Message::parse(&raw).unwrap_or_else(|e| panic!("{sub}/{name}: {e}"));
            assert!(m.call_id().is_some(), "{name}");
            assert!(m.cseq().is_some(), "{name}");
            assert!(m.from().is_some() && m.to().is_some(), "{name}");
            assert!(m.top_via().is_some(), "{name}");
            assert_eq!(m.is_request(), m.method().is_some());
            assert_eq!(m.headers().count(), m.header_count());
            n += 1;
        }
    }
    assert!(n >= 38, "{n} fixtures");
}
