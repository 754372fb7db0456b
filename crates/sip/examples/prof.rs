//! Profiling loop for the bench's headline message (used for the instruction counts in
//! docs/BENCHMARKS.md): `N=3000 valgrind --tool=callgrind target/release/examples/prof MODE`
//! with MODE `parse` (sipwall parse only), `all` (parse + every field), `rsip` (rsip parse
//! only) or `rsipall` (rsip parse + the same fields, as in benches/parse.rs).
use std::time::Instant;
fn main() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/phone/invite-600.sip");
    let raw = std::fs::read(path).unwrap();
    let mode = std::env::args().nth(1).unwrap_or_default();
    let n: usize = std::env::var("N").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let t = Instant::now();
    let mut s = 0usize;
    for _ in 0..n {
        let r = std::hint::black_box(&raw[..]);
        match mode.as_str() {
            "parse" => s += sipwall_sip::Message::parse(r).unwrap().header_count(),
            "rsip" => s += rsip::SipMessage::try_from(r).unwrap().body().len(),
            "rsipall" => s += rsip_all(r),
            m if m.starts_with("acc:") => {
                let msg = sipwall_sip::Message::parse(r).unwrap();
                s += match &m[4..] {
                    "from" => msg.from().map_or(0, |x| x.uri.raw.len()),
                    "contact" => msg.contact().map_or(0, |x| x.uri.raw.len()),
                    "to" => msg.to().map_or(0, |x| x.uri.raw.len()),
                    "body" => msg.body().len(),
                    "first" => msg.max_forwards().unwrap_or(0) as usize,
                    "via" => msg.top_via().map_or(0, |x| x.protocol.len()),
                    "via_count" => msg.via_count(),
                    "ruri" => msg.request_uri().map_or(0, |x| x.raw.len()),
                    "cseq" => msg.cseq().map_or(0, |x| x.number as usize),
                    "sdp" => msg.sdp_session_name().map_or(0, |x| x.len()),
                    "call_id" => msg.call_id().map_or(0, |x| x.len()),
                    _ => msg.header_count(),
                }
            }
            _ => s += sipwall_sip::exercise::every_field(&sipwall_sip::Message::parse(r).unwrap()),
        }
    }
    println!("{mode}: {} ns/msg ({s})", t.elapsed().as_nanos() / n as u128);
}

use rsip::prelude::*;
fn uri_len(u: &rsip::Uri) -> usize {
    let host = match &u.host_with_port.host {
        rsip::Host::Domain(d) => d.value().len(),
        rsip::Host::IpAddr(_) => 4,
    };
    u.auth.as_ref().map_or(0, |a| a.user.len() + a.password.as_ref().map_or(0, String::len))
        + host
        + u.host_with_port.port.as_ref().map_or(0, |p| usize::from(*p.value()))
        + u.params.len()
}

fn param_len(params: &[rsip::Param]) -> usize {
    params
        .iter()
        .map(|p| match p {
            rsip::Param::Tag(t) => t.value().len(),
            rsip::Param::Branch(b) => b.value().len(),
            rsip::Param::Received(r) => r.value().len(),
            _ => 1,
        })
        .sum()
}

/// The same fields as `every_field`, through rsip. None if rsip cannot parse the message.
fn rsip_extract(raw: &[u8]) -> Option<usize> {
    let msg = rsip::SipMessage::try_from(raw).ok()?;
    let mut n = 0;
    match &msg {
        rsip::SipMessage::Request(r) => {
            n += matches!(r.method(), rsip::Method::Invite) as usize;
            n += uri_len(r.uri());
        }
        rsip::SipMessage::Response(r) => {
            n += usize::from(r.status_code().code());
        }
    }
    // rsip keeps compact headers (`f:`, `i:`, `v:`) as unknown ones: it has not understood
    // such a message, so it is not compared on it.
    msg.from_header().ok()?;
    msg.call_id_header().ok()?;
    if let Ok(f) = msg.from_header().and_then(|h| h.typed()) {
        n +=
            f.display_name.as_ref().map_or(0, String::len) + uri_len(&f.uri) + param_len(&f.params);
    }
    if let Ok(t) = msg.to_header().and_then(|h| h.typed()) {
        n +=
            t.display_name.as_ref().map_or(0, String::len) + uri_len(&t.uri) + param_len(&t.params);
    }
    if let Ok(c) = msg.contact_header().and_then(|h| h.typed()) {
        n +=
            c.display_name.as_ref().map_or(0, String::len) + uri_len(&c.uri) + param_len(&c.params);
    }
    if let Ok(v) = msg.via_header().and_then(|h| h.typed()) {
        n += uri_len(&v.uri) + param_len(&v.params);
        n += matches!(v.transport, rsip::Transport::Udp) as usize;
    }
    // Via count, as sipwall's `via_count` (rsip keeps one header per Via line).
    n += msg.headers().iter().filter(|h| matches!(h, rsip::Header::Via(_))).count();
    n += msg.call_id_header().map_or(0, |h| h.value().len());
    if let Ok(c) = msg.cseq_header().and_then(|h| h.typed()) {
        n += c.seq as usize;
    }
    n += msg.user_agent_header().map_or(0, |h| h.value().len());
    n += msg
        .max_forwards_header()
        .ok()
        .and_then(|h| h.value().trim().parse::<u32>().ok())
        .unwrap_or(0) as usize;
    n += msg.expires_header().and_then(|h| h.value().trim().parse::<u32>().ok()).unwrap_or(0)
        as usize;
    if let Some(a) = msg.authorization_header().and_then(|h| h.typed().ok()) {
        n += a.username.len() + a.realm.len() + uri_len(&a.uri);
    }
    for h in msg.headers().iter() {
        match h {
            rsip::Header::ContentLength(cl) => {
                n += cl.value().trim().parse::<usize>().unwrap_or(0);
            }
            rsip::Header::ContentType(ct) => n += ct.value().len(),
            rsip::Header::Server(s) => n += s.value().len(),
            rsip::Header::ProxyAuthorization(p) => {
                if let Ok(p) = p.typed() {
                    n += p.0.username.len() + p.0.realm.len();
                }
            }
            _ => {}
        }
    }
    let body = msg.body();
    n += body.len();
    // SDP session name, as sipwall's `sdp_session_name`.
    if let Some(i) = body.windows(3).position(|w| w == b"\ns=") {
        let line = &body[i + 3..];
        n += line.iter().position(|b| *b == b'\r' || *b == b'\n').unwrap_or(line.len());
    }
    Some(n)
}

fn rsip_all(r: &[u8]) -> usize {
    rsip_extract(r).unwrap()
}
