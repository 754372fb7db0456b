//! RFC 4475 section 3 torture messages: every one is a fixture named after its section.
//!
//! The table below IS the documented outcome for each message (summarised in
//! `tests/fixtures/rfc4475/README.md`): valid ones parse with the right fields; each invalid
//! one is either rejected with a stated [`ParseErrorKind`] or accepted leniently, because a
//! firewall must still see (and decide on) what a broken or hostile peer sends. None panics.

use std::net::IpAddr;
use std::path::Path;

use sipwall_sip::{HeaderName, Host, Message, Method, ParseErrorKind, Transport};

fn load(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rfc4475").join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn ip(s: &str) -> Host<'static> {
    Host::Ip(s.parse::<IpAddr>().unwrap())
}

enum Outcome {
    /// A valid message (RFC 3.1.1, 3.2, 3.3, 3.4): parses, and these fields hold.
    Valid(fn(&Message)),
    /// An invalid message (RFC 3.1.2) we accept: why, and what the accessors say about it.
    Lenient(&'static str, fn(&Message)),
    /// An invalid message we reject, with this kind.
    Rejected(ParseErrorKind),
}
use Outcome::*;

#[rustfmt::skip]
const TABLE: &[(&str, Outcome)] = &[
    ("3.1.1.1-wsinv.sip", Valid(|m| {
        assert_eq!(m.method(), Some(Method::Invite));
        let u = m.request_uri().unwrap();
        assert_eq!(u.user, Some(&b"vivekg"[..]));
        assert_eq!(u.params.get(b"unknownparam"), Some(None));
        let to = m.to().unwrap();
        assert_eq!(to.tag, Some(&b"1918181833n"[..]));
        let from = m.from().unwrap();
        assert_eq!(from.display_name, Some(&br#"J Rosenberg \\\""#[..]));
        assert_eq!(from.tag, Some(&b"98asjd8"[..]));
        assert_eq!(m.max_forwards(), Some(68));
        assert_eq!(m.call_id(), Some(&b"wsinv.ndaksdj@192.0.2.1"[..]));
        assert_eq!(m.content_length(), Some(150));
        let cseq = m.cseq().unwrap();
        assert_eq!((cseq.number, cseq.method), (9, Method::Invite));
        let via = m.top_via().unwrap();
        assert_eq!(via.transport, Transport::Udp);
        assert_eq!(via.host, ip("192.0.2.2"));
        assert!(!via.rport);
        assert_eq!(via.branch, Some(&b"390skdjuw"[..]));
        assert_eq!(m.header(HeaderName::Subject), Some(&b""[..]));
        assert_eq!(m.header_values(HeaderName::Other(b"newfangledheader")).count(), 1);
        assert_eq!(m.header(HeaderName::Other(b"UnknownHeaderWithUnusualValue")), Some(&b";;,,;;,;"[..]));
        assert_eq!(m.header_values(HeaderName::Route).count(), 1);
        assert_eq!(m.contact().unwrap().display_name, Some(&br#"Quoted string \"\""#[..]));
        assert_eq!(m.contact().unwrap().param(b"q"), Some(Some(&b"0.33"[..])));
        assert_eq!(m.via_count(), 3);
        assert_eq!(m.body().len(), 150);
        assert_eq!(m.sdp_session_name(), Some(&b"-"[..]));
    })),
    ("3.1.1.2-intmeth.sip", Valid(|m| {
        assert_eq!(m.method(), Some(Method::Unknown(b"!interesting-Method0123456789_*+`.%indeed'~")));
        let u = m.request_uri().unwrap();
        assert_eq!(u.user, Some(&b"1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"[..]));
        assert_eq!(u.password, Some(&b"&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"[..]));
        assert_eq!(u.host, Some(Host::Name(b"example.com")));
        assert_eq!(m.to().unwrap().display_name, Some(&b"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f"[..]));
        assert_eq!(m.from().unwrap().display_name, Some(&b"token1~` token2'+_ token3*%!.-"[..]));
        assert_eq!(m.call_id(), Some(&br#"intmeth.word%ZK-!.*_+'@word`~)(><:\/"][?}{"#[..]));
        assert_eq!(m.cseq().unwrap().method, m.method().unwrap());
        assert_eq!(m.top_via().unwrap().branch, Some(&b"z9hG4bK-.!%66*_+`'~"[..]));
    })),
    ("3.1.1.3-esc01.sip", Valid(|m| {
        let u = m.request_uri().unwrap();
        assert_eq!(u.user, Some(&b"sips%3Auser%40example.com"[..]));
        assert_eq!(u.host, Some(Host::Name(b"example.net")));
        assert_eq!(m.to().unwrap().uri.user, Some(&b"%75se%72"[..]));
        assert_eq!(m.from().unwrap().uri.user, Some(&b"I%20have%20spaces"[..]));
        let c = m.contact().unwrap();
        assert_eq!(c.uri.params.get(b"n%61me"), Some(Some(&b"v%61lue%25%34%31"[..])));
    })),
    ("3.1.1.4-escnull.sip", Valid(|m| {
        assert_eq!(m.method(), Some(Method::Register));
        assert_eq!(m.to().unwrap().uri.user, Some(&b"null-%00-null"[..]));
        assert_eq!(m.header_values(HeaderName::Contact).count(), 2);
        assert_eq!(m.contact().unwrap().uri.user, Some(&b"%00"[..]));
    })),
    ("3.1.1.5-esc02.sip", Valid(|m| {
        // Escapes are not decoded in a method: this is not REGISTER.
        assert_eq!(m.method(), Some(Method::Unknown(b"RE%47IST%45R")));
        assert_eq!(m.from().unwrap().display_name, Some(&b"%Z%45"[..]));
        assert_eq!(m.top_via().unwrap().branch, Some(&b"z9hG4bK209%fzsnel234"[..]));
        // `C%6Fntact` is not Contact: escapes are not decoded in header names.
        assert_eq!(m.header_values(HeaderName::Contact).count(), 2);
        assert!(m.header(HeaderName::Other(b"C%6Fntact")).is_some());
    })),
    ("3.1.1.6-lwsdisp.sip", Valid(|m| {
        let f = m.from().unwrap();
        assert_eq!(f.display_name, Some(&b"caller"[..]));
        assert_eq!(f.uri.user, Some(&b"caller"[..]));
        assert_eq!(f.tag, Some(&b"323"[..]));
    })),
    ("3.1.1.7-longreq.sip", Valid(|m| {
        assert_eq!(m.method(), Some(Method::Invite));
        assert!(m.call_id().unwrap().len() > 100);
        assert_eq!(m.to().unwrap().uri.port, Some(6000));
        assert!(m.from().unwrap().tag.unwrap().len() > 100);
        assert_eq!(m.via_count(), 34);
        assert_eq!(m.top_via().unwrap().transport, Transport::Tcp);
        assert_eq!(m.body().len(), 150);
    })),
    ("3.1.1.8-dblreq.sip", Valid(|m| {
        // Content-Length 0: the INVITE that follows in the datagram is not part of it.
        assert_eq!(m.method(), Some(Method::Register));
        assert_eq!(m.call_id(), Some(&b"dblreq.0ha0isndaksdj99sdfafnl3lk233412"[..]));
        assert_eq!(m.body(), b"");
    })),
    ("3.1.1.9-semiuri.sip", Valid(|m| {
        let u = m.request_uri().unwrap();
        assert_eq!(u.user, Some(&b"user;par=u%40example.net"[..]));
        assert_eq!(u.host, Some(Host::Name(b"example.com")));
    })),
    ("3.1.1.10-transports.sip", Valid(|m| {
        let t: Vec<_> = m.header_values(HeaderName::Via)
            .map(|v| sipwall_sip::Via::parse(v).unwrap().transport).collect();
        assert_eq!(t, vec![Transport::Udp, Transport::Sctp, Transport::Tls,
                           Transport::Other(b"UNKNOWN"), Transport::Tcp]);
    })),
    ("3.1.1.11-mpart01.sip", Valid(|m| {
        assert_eq!(m.method(), Some(Method::Message));
        assert!(m.content_type().unwrap().starts_with(b"multipart/mixed"));
        assert_eq!(m.body().len(), 553);
        assert_eq!(m.sdp_session_name(), None);
    })),
    ("3.1.1.12-unreason.sip", Valid(|m| {
        assert_eq!(m.status(), Some(200));
        assert_eq!(m.reason(), Some("= 2**3 * 5**2 но сто девяносто девять - простое".as_bytes()));
    })),
    ("3.1.1.13-noreason.sip", Valid(|m| {
        assert_eq!(m.status(), Some(100));
        assert_eq!(m.reason(), Some(&b""[..]));
    })),
    ("3.1.2.1-badinv01.sip", Lenient("empty Via/Contact params are skipped; the top Via still names its host", |m| {
        assert_eq!(m.top_via().unwrap().host, ip("192.0.2.15"));
        assert_eq!(m.top_via().unwrap().branch, None);
        assert_eq!(m.contact().unwrap().display_name, Some(&b"Joe"[..]));
    })),
    ("3.1.2.2-clerr.sip", Lenient("Content-Length larger than the datagram: body() keeps what arrived", |m| {
        assert_eq!(m.content_length(), Some(9999));
        assert!(m.body().len() < 9999);
    })),
    ("3.1.2.3-ncl.sip", Lenient("negative Content-Length: content_length() is None, body() is the rest", |m| {
        assert_eq!(m.content_length(), None);
        assert!(!m.body().is_empty());
    })),
    ("3.1.2.4-scalar02.sip", Lenient("overflowing CSeq/Expires: those accessors give None, the rest reads", |m| {
        assert_eq!(m.cseq(), None);
        assert_eq!(m.expires(), None);
        assert_eq!(m.max_forwards(), Some(300));
        assert_eq!(m.contact().unwrap().param(b"expires"), Some(Some(&b"280297596632815"[..])));
    })),
    ("3.1.2.5-scalarlg.sip", Lenient("overflowing CSeq in a response: cseq() is None", |m| {
        assert_eq!(m.status(), Some(503));
        assert_eq!(m.cseq(), None);
    })),
    ("3.1.2.6-quotbal.sip", Lenient("unterminated quote in To: to() is None", |m| {
        assert_eq!(m.to(), None);
        assert!(m.from().is_some());
    })),
    ("3.1.2.7-ltgtruri.sip", Lenient("request-URI in <>: request_uri() is None, the raw text is kept", |m| {
        assert_eq!(m.request_uri(), None);
        assert_eq!(m.request_uri_raw(), Some(&b"<sip:user@example.com>"[..]));
    })),
    ("3.1.2.8-lwsruri.sip", Rejected(ParseErrorKind::BadStartLine)),
    ("3.1.2.9-lwsstart.sip", Lenient("runs of SP between start-line elements are tolerated", |m| {
        assert_eq!(m.request_uri().unwrap().user, Some(&b"user"[..]));
    })),
    ("3.1.2.10-trws.sip", Lenient("trailing SP after SIP/2.0 is tolerated", |m| {
        assert_eq!(m.method(), Some(Method::Options));
    })),
    ("3.1.2.11-escruri.sip", Lenient("unescaped <> in URI headers: the host still parses", |m| {
        assert_eq!(m.request_uri().unwrap().host, Some(Host::Name(b"example.com")));
    })),
    ("3.1.2.12-baddate.sip", Lenient("the parser does not read Date", |m| {
        assert_eq!(m.header(HeaderName::Other(b"date")), Some(&b"Fri, 01 Jan 2010 16:00:00 EST"[..]));
    })),
    ("3.1.2.13-regbadct.sip", Lenient("addr-spec Contact with '?': the URI is kept raw", |m| {
        assert_eq!(m.contact().unwrap().uri.host, Some(Host::Name(b"example.com")));
    })),
    ("3.1.2.14-badaspec.sip", Lenient("spaces inside <> are trimmed", |m| {
        assert_eq!(m.to().unwrap().uri.user, Some(&b"t.watson"[..]));
    })),
    // The archived message ends after `l: 0` + CRLF, without the empty line.
    ("3.1.2.15-baddn.sip", Rejected(ParseErrorKind::Truncated)),
    ("3.1.2.16-badvers.sip", Rejected(ParseErrorKind::BadVersion)),
    ("3.1.2.17-mismatch01.sip", Lenient("CSeq method differs from the request method: both are reported", |m| {
        assert_eq!(m.method(), Some(Method::Options));
        assert_eq!(m.cseq().unwrap().method, Method::Invite);
    })),
    ("3.1.2.18-mismatch02.sip", Lenient("unknown method with mismatched CSeq: both are reported", |m| {
        assert_eq!(m.method(), Some(Method::Unknown(b"NEWMETHOD")));
        assert_eq!(m.cseq().unwrap().method, Method::Invite);
    })),
    ("3.1.2.19-bigcode.sip", Rejected(ParseErrorKind::BadStartLine)),
    ("3.2.1-badbranch.sip", Valid(|m| {
        assert_eq!(m.top_via().unwrap().branch, Some(&b"z9hG4bK"[..]));
    })),
    ("3.3.1-insuf.sip", Valid(|m| {
        assert_eq!(m.from(), None);
        assert_eq!(m.to(), None);
        assert_eq!(m.call_id(), None);
        assert_eq!(m.max_forwards(), None);
        assert_eq!(m.top_via().unwrap().branch, Some(&b"z9hG4bKkdj.insuf"[..]));
    })),
    ("3.3.2-unkscm.sip", Valid(|m| {
        let u = m.request_uri().unwrap();
        assert_eq!(u.scheme, b"nobodyKnowsThisScheme");
        assert_eq!(u.host, None);
    })),
    ("3.3.3-novelsc.sip", Valid(|m| {
        assert_eq!(m.request_uri().unwrap().scheme, b"soap.beep");
    })),
    ("3.3.4-unksm2.sip", Valid(|m| {
        assert_eq!(m.to().unwrap().uri.scheme, b"isbn");
        assert_eq!(m.from().unwrap().uri.scheme, b"http");
        assert_eq!(m.contact().unwrap().uri.scheme, b"name");
    })),
    ("3.3.5-bext01.sip", Valid(|m| {
        assert_eq!(m.header_values(HeaderName::Require).count(), 2);
        assert_eq!(m.header_values(HeaderName::Other(b"Proxy-Require")).count(), 2);
    })),
    ("3.3.6-invut.sip", Valid(|m| {
        assert_eq!(m.content_type(), Some(&b"application/unknownformat"[..]));
        assert_eq!(m.body().len(), 40);
        assert_eq!(m.sdp_session_name(), None);
    })),
    ("3.3.7-regaut01.sip", Valid(|m| {
        let a = m.authorization().unwrap();
        assert_eq!(a.scheme, b"NoOneKnowsThisScheme");
        assert_eq!(a.username, None);
    })),
    ("3.3.8-multi01.sip", Valid(|m| {
        // Single-value headers repeated: the accessors report the first.
        assert_eq!(m.call_id(), Some(&b"multi01.98asdh@192.0.2.1"[..]));
        assert_eq!(m.cseq().unwrap().number, 5);
        assert_eq!(m.header_values(HeaderName::To).count(), 2);
        assert_eq!(m.max_forwards(), Some(70));
    })),
    ("3.3.9-mcl01.sip", Valid(|m| {
        // Two Content-Length values: the first one cuts the body.
        assert_eq!(m.header_values(HeaderName::ContentLength).count(), 2);
        assert_eq!(m.content_length(), Some(13));
        assert_eq!(m.body().len(), 13);
    })),
    ("3.3.10-bcast.sip", Valid(|m| {
        assert_eq!(m.status(), Some(200));
        assert_eq!(m.via_count(), 2);
        let second = m.header_values(HeaderName::Via).nth(1).unwrap();
        assert_eq!(sipwall_sip::Via::parse(second).unwrap().host, ip("255.255.255.255"));
    })),
    ("3.3.11-zeromf.sip", Valid(|m| assert_eq!(m.max_forwards(), Some(0)))),
    ("3.3.12-cparam01.sip", Valid(|m| {
        let c = m.contact().unwrap();
        assert_eq!(c.uri.user, Some(&b"+19725552222"[..]));
        // addr-spec form: the parameter belongs to the header, not the URI.
        assert_eq!(c.param(b"unknownparam"), Some(None));
        assert_eq!(c.uri.params.raw, b"");
    })),
    ("3.3.13-cparam02.sip", Valid(|m| {
        let c = m.contact().unwrap();
        assert_eq!(c.uri.params.get(b"unknownparam"), Some(None));
        assert_eq!(c.params, b"");
    })),
    ("3.3.14-regescrt.sip", Valid(|m| {
        let c = m.contact().unwrap();
        assert_eq!(c.uri.user, Some(&b"user"[..]));
        assert_eq!(c.uri.host, Some(Host::Name(b"example.com")));
    })),
    ("3.3.15-sdp01.sip", Valid(|m| {
        assert_eq!(m.header(HeaderName::Other(b"accept")), Some(&b"text/nobodyKnowsThis"[..]));
        assert_eq!(m.sdp_session_name(), Some(&b"-"[..]));
    })),
    ("3.4.1-inv2543.sip", Valid(|m| {
        // RFC 2543 style: no branch cookie, no From tag, no Content-Length (UDP: body is the rest).
        assert_eq!(m.top_via().unwrap().branch, None);
        assert_eq!(m.from().unwrap().tag, None);
        assert_eq!(m.content_length(), None);
        assert!(m.body().starts_with(b"v=0"));
    })),
];

#[test]
fn every_section_3_message_has_a_documented_outcome() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rfc4475");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".sip"))
        .collect();
    files.sort();
    let mut listed: Vec<String> = TABLE.iter().map(|(n, _)| n.to_string()).collect();
    listed.sort();
    assert_eq!(files, listed);
    assert_eq!(files.len(), 49, "RFC 4475 section 3 has 49 messages");
}

#[test]
fn outcomes_match_the_table() {
    for (name, outcome) in TABLE {
        let raw = load(name);
        let res = Message::parse(&raw);
        match (outcome, res) {
            (Valid(check), Ok(m)) => check(&m),
            (Lenient(why, check), Ok(m)) => {
                assert!(!why.is_empty(), "{name}: document why it is accepted");
                check(&m)
            }
            (Lenient(why, _), Err(e)) => panic!("{name}: should be accepted ({why}), got {e}"),
            (Rejected(kind), Err(e)) => {
                assert_eq!(e.kind, *kind, "{name}");
                // The error still names the Call-ID so a caller can log it.
                assert!(e.partial.call_id.is_some(), "{name}: {e:?}");
            }
            (Rejected(kind), Ok(_)) => panic!("{name}: expected {kind:?}, parsed"),
            (_, Err(e)) => panic!("{name}: expected to parse, got {e}"),
        }
    }
}
