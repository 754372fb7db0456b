//! Enumeration shield: a walker must not tell "no such user" from "wrong password".
//!
//! A PBX that answers 401/407 for its real extensions and 404 for the others tells a
//! REGISTER/INVITE/OPTIONS walker (svwar, sippts) which extensions exist. Asterisk's
//! `alwaysauthreject` is the fix on the PBX; the shield is the same fix on the wire, for any
//! PBX behind sipwall:
//!
//! * **learn**: every challenge the protected side sends (an outbound 401 with
//!   WWW-Authenticate or 407 with Proxy-Authenticate carrying a Digest nonce) is kept as the
//!   template of its host and CSeq method ([`Shield::learn`]): status line, header order,
//!   Server/Allow/..., realm, algorithm, qop, opaque, body;
//! * **forge**: an outbound "no such user" answer (404, 484, 604) over UDP to a REGISTER,
//!   INVITE or OPTIONS, going to a peer the engine does not vouch for (not trusted, not a
//!   known-good client, not this host), is replaced by the template of that host and method
//!   ([`Shield::forge`]): its Via, From, To (with the PBX's tag), Call-ID and CSeq lines are
//!   the 404's, every other line is the template's, and the nonce is fresh, with the template
//!   nonce's length and alphabet (hex stays hex, digits stay digits, case kept). Without a
//!   template for that method the host's template of another method is used in this method's
//!   usual form (401 + WWW-Authenticate for REGISTER and OPTIONS, 407 + Proxy-Authenticate for
//!   INVITE: a PBX's forms differ by method, its realm and header shape do not); without any,
//!   the 404 itself becomes a `401 Unauthorized` (REGISTER, OPTIONS) or
//!   `407 Proxy Authentication Required` (INVITE) with a Digest challenge whose realm is the
//!   To host, algorithm MD5: right for most PBXs, and replaced by the real form from the
//!   first real challenge on;
//! * the queue thread puts the forged answer into the packet ([`packet::rebuild_udp`]) and
//!   answers the kernel with a verdict carrying it.
//!
//! 480 is left alone: PBXs send it for real users that are offline too, so it tells nothing.
//! Over TCP the 404 is not rewritten: a different length shifts every later sequence number of
//! the connection, which the sender's stack and the peer would both have to be told about (the
//! kernel's sequence adjustment exists only for NAT helpers). Dropping it instead would stall
//! the connection (the PBX retransmits the segment until it gives up) and still tell the
//! walker "no answer" apart from "401". Over TCP the engine's enumeration counters (distinct
//! users and 404s per source) remain the defence; see SECURITY.md.
//!
//! CONTRACT: bounded ([`MAX_HOSTS`] hosts, [`MAX_TEMPLATE`] bytes per template, three
//! methods each); no panics on any bytes (all parsing through `sipwall-sip` and `get`); the
//! forge path writes into caller-owned buffers and allocates nothing once they are warm; the
//! engine is not needed here (the caller asks it whether the peer is vouched for, before).
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use sipwall_sip::{Host, Message, Method};

/// Most PBX hosts whose challenges are kept (router mode guards several).
pub const MAX_HOSTS: usize = 64;
/// Largest challenge kept as a template (a real one is well under 1 KB).
pub const MAX_TEMPLATE: usize = 4096;

/// What an outbound answer is to the shield.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerKind {
    /// 401 or 407: a real challenge, worth learning.
    Challenge,
    /// 404, 484 or 604: "no such user", worth hiding.
    NoSuchUser,
}

/// The cheap test the queue thread runs on every outbound UDP payload: the status code only.
pub fn answer_kind(payload: &[u8]) -> Option<AnswerKind> {
    let rest = payload.strip_prefix(b"SIP/2.0 ")?;
    match rest.get(..3)? {
        b"401" | b"407" => Some(AnswerKind::Challenge),
        b"404" | b"484" | b"604" => Some(AnswerKind::NoSuchUser),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Register = 0,
    Invite = 1,
    Options = 2,
}

fn slot(method: Method<'_>) -> Option<Slot> {
    match method {
        Method::Register => Some(Slot::Register),
        Method::Invite => Some(Slot::Invite),
        Method::Options => Some(Slot::Options),
        _ => None,
    }
}

#[derive(Debug, Default)]
struct HostTemplates {
    by_method: [Vec<u8>; 3],
    /// [`shape_of`] each template: a new challenge of the same shape is not a new form.
    shapes: [u64; 3],
}

/// A challenge's form: every line but the transaction's own (Via, From, To, Call-ID, CSeq),
/// with the nonce left out. Two challenges of the same form differ only in those.
fn shape_of(challenge: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let nonce = nonce_span(challenge);
    if let Some((first, it, body)) = lines(challenge) {
        h.write(challenge.get(..first).unwrap_or_default());
        let base = challenge.as_ptr() as usize;
        for line in it.filter(|l| !is_transaction_header(l)) {
            let off = line.as_ptr() as usize - base;
            match nonce {
                Some((a, b)) if a >= off && b <= off + line.len() => {
                    h.write(line.get(..a - off).unwrap_or_default());
                    h.write(line.get(b - off..).unwrap_or_default());
                }
                _ => h.write(line),
            }
        }
        h.write(challenge.get(body..).unwrap_or_default());
    }
    h.finish()
}

/// A method the shield keeps a template for, by name (as the store keeps it).
pub fn method_name(method: Method<'_>) -> Option<&'static str> {
    slot(method).map(|s| match s {
        Slot::Register => "REGISTER",
        Slot::Invite => "INVITE",
        Slot::Options => "OPTIONS",
    })
}

/// The shared shield: templates per host, and the nonce generator. One per daemon, shared by
/// the queue threads (its own lock, never the engine's).
#[derive(Debug)]
pub struct Shield {
    hosts: Mutex<HashMap<IpAddr, HostTemplates>>,
    rng: AtomicU64,
}

impl Default for Shield {
    fn default() -> Self {
        Shield::new()
    }
}

fn lock(
    m: &Mutex<HashMap<IpAddr, HostTemplates>>,
) -> std::sync::MutexGuard<'_, HashMap<IpAddr, HostTemplates>> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl Shield {
    /// An empty shield; its nonce generator is seeded from the process's random hasher keys
    /// and the clock, so two runs never forge the same nonces.
    pub fn new() -> Shield {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        Shield { hosts: Mutex::new(HashMap::new()), rng: AtomicU64::new(h.finish()) }
    }

    /// Hosts with at least one template.
    #[cfg(test)]
    pub fn hosts(&self) -> usize {
        lock(&self.hosts).len()
    }

    /// Keep `challenge` (an outbound 401/407 from `host`) as the template of its CSeq method,
    /// if it is one worth copying: parseable, a REGISTER/INVITE/OPTIONS challenge, a Digest
    /// nonce in its WWW-/Proxy-Authenticate. Returns None when it was not kept, else whether
    /// its form is new for this host and method (worth storing: the same form with another
    /// nonce and transaction is not).
    pub fn learn(&self, host: IpAddr, challenge: &[u8]) -> Option<bool> {
        if challenge.len() > MAX_TEMPLATE {
            return None;
        }
        let msg = Message::parse(challenge).ok()?;
        let s = msg.cseq().and_then(|c| slot(c.method))?;
        if !matches!(msg.status(), Some(401 | 407)) || nonce_span(challenge).is_none() {
            return None;
        }
        let shape = shape_of(challenge);
        let mut hosts = lock(&self.hosts);
        if hosts.len() >= MAX_HOSTS && !hosts.contains_key(&host) {
            // Bounded: forget one host (a router guarding more PBXs than this is unusual, and
            // the forgotten one is relearned at its next real challenge).
            if let Some(k) = hosts.keys().next().copied() {
                hosts.remove(&k);
            }
        }
        let h = hosts.entry(host).or_default();
        let new = h.by_method[s as usize].is_empty() || h.shapes[s as usize] != shape;
        let t = &mut h.by_method[s as usize];
        t.clear();
        t.extend_from_slice(challenge);
        h.shapes[s as usize] = shape;
        Some(new)
    }

    /// Write into `out` the challenge that replaces `answer` (an outbound 404/484/604 from
    /// `host`), or return false (and leave `out` empty) when `answer` is not one the shield
    /// hides: unparseable, not to a REGISTER/INVITE/OPTIONS, or missing a transaction header.
    pub fn forge(&self, host: IpAddr, answer: &[u8], out: &mut Vec<u8>) -> bool {
        out.clear();
        let Ok(msg) = Message::parse(answer) else { return false };
        if !matches!(msg.status(), Some(404 | 484 | 604)) {
            return false;
        }
        let Some(s) = msg.cseq().and_then(|c| slot(c.method)) else { return false };
        if msg.top_via().is_none() || msg.call_id().is_none() || msg.to().is_none() {
            return false;
        }
        let hosts = lock(&self.hosts);
        // The host's challenge for this method; else its challenge for another method, in
        // this method's usual form (status and header name), keeping its realm, algorithm
        // and header shape; else the usual form built from the answer itself.
        let template = hosts.get(&host).and_then(|h| {
            let own = &h.by_method[s as usize];
            if !own.is_empty() {
                Some((own, None))
            } else {
                h.by_method.iter().find(|t| !t.is_empty()).map(|t| (t, Some(s)))
            }
        });
        let ok = match template {
            Some((t, convert)) => from_template(t, convert, answer, out),
            None => {
                drop(hosts);
                from_answer(&msg, s, answer, out)
            }
        };
        if ok {
            if let Some((a, b)) = nonce_span(out) {
                self.fresh_nonce(&mut out[a..b]);
            }
        } else {
            out.clear();
        }
        ok
    }

    /// Overwrite a nonce in place with random characters of the same alphabet: a hex nonce
    /// (either case) stays hex, otherwise digits stay digits, letters keep their case, and
    /// separators ('-', '/', '+', '=') stay where they are.
    fn fresh_nonce(&self, nonce: &mut [u8]) {
        const LOWER_HEX: &[u8; 16] = b"0123456789abcdef";
        const UPPER_HEX: &[u8; 16] = b"0123456789ABCDEF";
        let hex = if nonce.iter().all(|c| LOWER_HEX.contains(c)) {
            Some(LOWER_HEX)
        } else if nonce.iter().all(|c| UPPER_HEX.contains(c)) {
            Some(UPPER_HEX)
        } else {
            None
        };
        let mut bits = 0u64;
        let mut left = 0;
        for c in nonce {
            if left == 0 {
                bits = splitmix(self.rng.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed));
                left = 8;
            }
            let r = (bits & 0xff) as u8;
            bits >>= 8;
            left -= 1;
            *c = match (hex, *c) {
                (Some(alphabet), _) => alphabet[usize::from(r % 16)],
                (None, b'0'..=b'9') => b'0' + r % 10,
                (None, b'a'..=b'z') => b'a' + r % 26,
                (None, b'A'..=b'Z') => b'A' + r % 26,
                (None, other) => other,
            };
        }
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Header lines of `msg` (each with its line end, continuation lines included), the start line
/// excluded, and the offset of the body (after the empty line). None without an empty line.
fn lines(msg: &[u8]) -> Option<(usize, impl Iterator<Item = &[u8]> + '_, usize)> {
    let first_end = msg.iter().position(|&b| b == b'\n')? + 1;
    let mut pos = first_end;
    let mut body = None;
    while pos < msg.len() {
        let end =
            msg.get(pos..)?.iter().position(|&b| b == b'\n').map_or(msg.len(), |e| pos + e + 1);
        let line = msg.get(pos..end)?;
        if line == b"\r\n" || line == b"\n" {
            body = Some((pos, end));
            break;
        }
        pos = end;
    }
    let (headers_end, body_start) = body?;
    let headers = msg.get(first_end..headers_end)?;
    // Split into logical header lines: a line starting with SP/HT continues the previous one.
    let mut starts = 0usize;
    let iter = std::iter::from_fn(move || {
        if starts >= headers.len() {
            return None;
        }
        let begin = starts;
        let mut end = begin;
        loop {
            let nl = headers
                .get(end..)?
                .iter()
                .position(|&b| b == b'\n')
                .map_or(headers.len(), |e| end + e + 1);
            end = nl;
            if !matches!(headers.get(end), Some(b' ' | b'\t')) {
                break;
            }
        }
        starts = end;
        headers.get(begin..end)
    });
    Some((first_end, iter, body_start))
}

fn name_of(line: &[u8]) -> &[u8] {
    let colon = line.iter().position(|&b| b == b':').unwrap_or(0);
    let name = line.get(..colon).unwrap_or_default();
    let end = name.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(0, |e| e + 1);
    name.get(..end).unwrap_or_default()
}

/// Via, From, To, Call-ID, CSeq (long or compact names): the transaction's own lines.
fn is_transaction_header(line: &[u8]) -> bool {
    let n = name_of(line);
    [&b"via"[..], b"v", b"from", b"f", b"to", b"t", b"call-id", b"i", b"cseq"]
        .iter()
        .any(|h| n.eq_ignore_ascii_case(h))
}

fn is_content_length(line: &[u8]) -> bool {
    let n = name_of(line);
    n.eq_ignore_ascii_case(b"content-length") || n.eq_ignore_ascii_case(b"l")
}

/// The usual challenge of a method: chan_sip and most PBXs answer REGISTER (and OPTIONS)
/// with 401 + WWW-Authenticate and INVITE with 407 + Proxy-Authenticate.
fn usual_form(s: Slot) -> (&'static [u8], &'static [u8]) {
    match s {
        Slot::Invite => (b"SIP/2.0 407 Proxy Authentication Required", b"Proxy-Authenticate"),
        _ => (b"SIP/2.0 401 Unauthorized", b"WWW-Authenticate"),
    }
}

fn is_authenticate(line: &[u8]) -> bool {
    let n = name_of(line);
    n.eq_ignore_ascii_case(b"www-authenticate") || n.eq_ignore_ascii_case(b"proxy-authenticate")
}

/// The template with the answer's transaction lines in place of its own; with `convert`, in
/// that method's [`usual_form`] (status line and authenticate header name).
fn from_template(template: &[u8], convert: Option<Slot>, answer: &[u8], out: &mut Vec<u8>) -> bool {
    let Some((t_first, t_lines, t_body)) = lines(template) else { return false };
    let Some(status_line) = template.get(..t_first) else { return false };
    match convert {
        Some(s) => {
            out.extend_from_slice(usual_form(s).0);
            out.extend_from_slice(line_end(status_line));
        }
        None => out.extend_from_slice(status_line),
    }
    let mut placed = false;
    for line in t_lines {
        if let (Some(s), true) = (convert, is_authenticate(line)) {
            let colon = line.iter().position(|&b| b == b':').unwrap_or(0);
            out.extend_from_slice(usual_form(s).1);
            out.extend_from_slice(line.get(colon..).unwrap_or_default());
        } else if is_transaction_header(line) {
            if !placed {
                placed = true;
                let Some((_, a, _)) = lines(answer) else { return false };
                for l in a.filter(|l| is_transaction_header(l)) {
                    out.extend_from_slice(l);
                }
            }
        } else {
            out.extend_from_slice(line);
        }
    }
    if !placed {
        return false;
    }
    let Some(rest) = template.get(t_body - line_end_len(template, t_body)..) else { return false };
    out.extend_from_slice(rest);
    true
}

/// The line end of `line` (CRLF or LF).
fn line_end(line: &[u8]) -> &'static [u8] {
    if line.ends_with(b"\r\n") {
        b"\r\n"
    } else {
        b"\n"
    }
}

/// Length of the empty line that ends at `body` (CRLF or LF).
fn line_end_len(msg: &[u8], body: usize) -> usize {
    if body >= 2 && msg.get(body - 2..body) == Some(b"\r\n") {
        2
    } else {
        1
    }
}

/// No template: the answer itself, turned into the usual challenge for its method.
fn from_answer(msg: &Message<'_>, s: Slot, answer: &[u8], out: &mut Vec<u8>) -> bool {
    let Some((_, a_lines, _)) = lines(answer) else { return false };
    let host = msg.to().and_then(|to| to.uri.host);
    let (status, header) = match s {
        Slot::Invite => {
            (&b"SIP/2.0 407 Proxy Authentication Required\r\n"[..], &b"Proxy-Authenticate"[..])
        }
        _ => (&b"SIP/2.0 401 Unauthorized\r\n"[..], &b"WWW-Authenticate"[..]),
    };
    out.extend_from_slice(status);
    for line in a_lines.filter(|l| !is_content_length(l)) {
        out.extend_from_slice(line);
    }
    out.extend_from_slice(header);
    out.extend_from_slice(b": Digest realm=\"");
    match host {
        Some(Host::Name(name)) => out.extend_from_slice(name),
        Some(Host::Ip(ip)) => {
            use std::io::Write;
            let _ = write!(out, "{ip}");
        }
        None => out.extend_from_slice(b"sip"),
    }
    // 32 hex characters: overwritten by a fresh nonce by the caller.
    out.extend_from_slice(b"\", nonce=\"00000000000000000000000000000000\", algorithm=MD5\r\n");
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    true
}

/// The byte range of the first Digest nonce value (inside quotes, or a bare token) in a
/// WWW-Authenticate or Proxy-Authenticate line.
fn nonce_span(msg: &[u8]) -> Option<(usize, usize)> {
    let (_, mut it, _) = lines(msg)?;
    let base = msg.as_ptr() as usize;
    let line = it.find(|l| is_authenticate(l))?;
    let off = line.as_ptr() as usize - base;
    let lower_find = |hay: &[u8], needle: &[u8]| {
        hay.windows(needle.len()).position(|w| w.eq_ignore_ascii_case(needle))
    };
    let mut at = 0;
    loop {
        let i = at + lower_find(line.get(at..)?, b"nonce")?;
        // A parameter name: preceded by a separator, followed by optional spaces and '='.
        let before_ok = i == 0 || matches!(line.get(i - 1), Some(b' ' | b'\t' | b',' | b'\n'));
        let mut j = i + 5;
        while matches!(line.get(j), Some(b' ' | b'\t')) {
            j += 1;
        }
        if before_ok && line.get(j) == Some(&b'=') {
            j += 1;
            while matches!(line.get(j), Some(b' ' | b'\t')) {
                j += 1;
            }
            let (start, end) = if line.get(j) == Some(&b'"') {
                let close = line.get(j + 1..)?.iter().position(|&b| b == b'"')?;
                (j + 1, j + 1 + close)
            } else {
                let len = line
                    .get(j..)?
                    .iter()
                    .position(|&b| matches!(b, b',' | b' ' | b'\t' | b'\r' | b'\n'))
                    .unwrap_or(line.len() - j);
                (j, j + len)
            };
            return (end > start).then_some((off + start, off + end));
        }
        at = i + 5;
    }
}

#[cfg(test)]
mod tests;
