//! The fields sipwall's `exercise::every_field` reads, read through rsip: the baseline of
//! `benches/parse.rs` and of `examples/prof.rs` (instruction counts), kept in one place so both
//! measure exactly the same work.
#![allow(dead_code)]

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
pub fn rsip_extract(raw: &[u8]) -> Option<usize> {
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
