//! Calls every accessor once: shared by the fuzz target, the property tests, the corpus replay
//! test and the benchmark, so "every field" means the same thing everywhere.

use crate::framing::{frame_len, Framed, StreamFramer};
use crate::types::{HeaderName, Host, Uri};
use crate::Message;

fn host_len(h: &Host<'_>) -> usize {
    match h {
        Host::Ip(ip) => usize::from(ip.is_ipv4()) + 1,
        Host::Name(n) => n.len(),
    }
}

fn uri_len(u: &Uri<'_>) -> usize {
    u.scheme.len()
        + u.user.map_or(0, <[u8]>::len)
        + u.password.map_or(0, <[u8]>::len)
        + u.host.as_ref().map_or(0, host_len)
        + usize::from(u.port.unwrap_or(0))
}

/// Reads every field the accessors offer and folds them into a number (so an optimiser cannot
/// drop the work). Never panics for any message.
#[doc(hidden)]
pub fn every_field(m: &Message<'_>) -> usize {
    let mut n = usize::from(m.is_request());
    n += m.method().map_or(0, |x| x.as_bytes().len());
    // Request-URI with its parameters; From/To/Contact: display name, URI, tag.
    if let Some(u) = m.request_uri() {
        n += uri_len(&u)
            + u.params.iter().count()
            + u.params.get(b"user").flatten().map_or(0, <[u8]>::len);
    }
    n += usize::from(m.status().unwrap_or(0));
    n += m.reason().map_or(0, <[u8]>::len);
    for na in [m.from(), m.to(), m.contact()].iter().flatten() {
        n += na.display_name.map_or(0, <[u8]>::len)
            + uri_len(&na.uri)
            + na.tag.map_or(0, <[u8]>::len)
            + na.params.len();
    }
    if let Some(v) = m.top_via() {
        n += v.protocol.len()
            + host_len(&v.host)
            + usize::from(v.port.unwrap_or(0))
            + v.branch.map_or(0, <[u8]>::len)
            + usize::from(v.rport)
            + usize::from(v.rport_value.unwrap_or(0))
            + v.received.map_or(0, <[u8]>::len)
            + matches!(v.transport, crate::Transport::Udp) as usize;
    }
    n += m.via_count();
    n += m.call_id().map_or(0, <[u8]>::len);
    n += m.cseq().map_or(0, |c| c.number as usize + c.method.as_bytes().len());
    n += m.user_agent().map_or(0, <[u8]>::len);
    n += m.server().map_or(0, <[u8]>::len);
    n += m.content_length().unwrap_or(0);
    n += m.content_type().map_or(0, <[u8]>::len);
    n += m.body().len();
    n += m.sdp_session_name().map_or(0, <[u8]>::len);
    n += m.expires().unwrap_or(0) as usize;
    n += m.max_forwards().unwrap_or(0) as usize;
    for c in [m.authorization(), m.proxy_authorization()].iter().flatten() {
        n += c.scheme.len()
            + c.username.map_or(0, <[u8]>::len)
            + c.realm.map_or(0, <[u8]>::len)
            + c.uri.map_or(0, <[u8]>::len);
    }
    n
}

/// [`every_field`] plus the raw header views (iteration, lookups by name, list splitting).
#[doc(hidden)]
pub fn every_field_and_header(m: &Message<'_>) -> usize {
    let mut n = every_field(m);
    for (name, value) in m.headers() {
        n += name.as_bytes().len() + value.len();
        n += m.header(name).map_or(0, <[u8]>::len);
        n += m.header_values(name).count();
    }
    n + m.header_count() + m.header_values(HeaderName::Other(b"X-Unknown")).count()
}

/// Parses `data` as a datagram and as a stream (whole, then in chunks of `chunk` bytes),
/// reading every field of whatever parses. For the fuzzer and the property tests.
#[doc(hidden)]
pub fn parse_everything(data: &[u8], chunk: usize) -> usize {
    let mut n = match Message::parse(data) {
        Ok(m) => every_field_and_header(&m),
        Err(e) => {
            e.offset
                + e.partial.call_id.map_or(0, <[u8]>::len)
                + e.partial.user_agent.map_or(0, <[u8]>::len)
                + e.partial.method.map_or(0, |m| m.as_bytes().len())
        }
    };
    if let Ok(Some((skip, len))) = frame_len(data) {
        n += skip + len;
    }
    let mut f = StreamFramer::new();
    // Bounded: each round consumes at least one chunk of input.
    for piece in data.chunks(chunk.max(1)) {
        if f.push(piece).is_err() {
            return n;
        }
        // Bounded: every Message consumes at least one byte of the buffer.
        loop {
            match f.next_message() {
                Ok(Framed::Message(msg)) => {
                    n += msg.len();
                    if let Ok(m) = Message::parse(msg) {
                        n += every_field(&m);
                    }
                }
                Ok(Framed::NeedMore) => break,
                Err(_) => return n,
            }
        }
    }
    n + f.buffered()
}
