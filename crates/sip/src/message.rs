//! The message view: [`Message::parse`] and its lazy accessors.
//!
//! # Contract
//! * [`Message::parse`] never panics and never allocates. It makes one pass over the start line
//!   and the header lines (word-at-a-time scans for line ends and colons) and records, for each
//!   header line, four `u16` offsets and a name id in a fixed inline table of [`MAX_HEADERS`]
//!   entries. The body is not scanned.
//! * Every accessor parses its header on call, returns sub-slices of the input (or `Copy`
//!   values), never allocates, never panics, and runs in time linear in the header value.
//! * Header values are raw: a folded value still contains its CR/LF/SP bytes (accessors treat
//!   them as whitespace), quoted strings keep their escapes, URIs stay percent-encoded.
//!
//! # Leniency (a firewall must see what scanners send)
//! Accepted: bare LF line ends, CRLFs before the start line, folded header lines, compact
//! and any-case header names, whitespace before the colon, runs of whitespace between the
//! start-line elements, a body shorter or longer than Content-Length (see [`Message::body`]).
//! Rejected (typed [`ParseError`], which still carries method/Call-ID/User-Agent): a start line
//! that is not `METHOD URI SIP/2.0` or `SIP/2.0 NNN reason`, a version other than SIP/2.0, a
//! request-URI containing whitespace, a header line without a colon, headers without the empty
//! line that ends them, and anything beyond the [`crate::limits`].

use std::fmt;

use crate::bytes::{
    count_items, find_byte, find_byte_wide, first_item, is_lws, is_token, parse_u32, parse_usize,
    trim, trim_end, ListIter,
};
use crate::limits::{MAX_HEADERS, MAX_LINE_LENGTH, MAX_MESSAGE_SIZE};
use crate::types::*;

// Offsets in the header index are u16: only sound while messages are capped at 64 KiB.
const _: () = assert!(MAX_MESSAGE_SIZE <= u16::MAX as usize);
const _: () = assert!(MAX_HEADERS <= u8::MAX as usize);

/// One indexed header line (its value spans any continuation lines).
#[derive(Clone, Copy, Default, Debug)]
struct Entry {
    name_start: u16,
    name_end: u16,
    val_start: u16,
    val_end: u16,
    id: u8,
}

#[derive(Clone, Copy, Debug)]
enum StartLine {
    Request { method: (u16, u16), uri: (u16, u16) },
    Response { status: u16, reason: (u16, u16) },
}

/// A parsed SIP message borrowing its buffer. Parsing indexed the start line and the header
/// lines; every accessor below reads its header lazily. About 700 bytes on the stack.
#[derive(Clone)]
pub struct Message<'a> {
    buf: &'a [u8],
    start: StartLine,
    body_start: usize,
    count: usize,
    entries: [Entry; MAX_HEADERS],
    /// For each known header id, 1 + the index of its first entry (0: absent). Makes the
    /// single-value accessors O(1).
    first: [u8; KNOWN_IDS],
}

/// Number of known header ids, `Other` (0) included.
const KNOWN_IDS: usize = 34;
const _: () = assert!(HeaderName::Require.id() as usize + 1 == KNOWN_IDS);

impl fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Message");
        match self.start {
            StartLine::Request { .. } => d
                .field("method", &self.method())
                .field("uri", &String::from_utf8_lossy(self.request_uri_raw().unwrap_or_default())),
            StartLine::Response { status, .. } => d.field("status", &status),
        };
        d.field("headers", &self.count).field("body_len", &self.body().len()).finish()
    }
}

/// Iterator over (name, value) of every header, in order, one item per header line
/// (comma-separated values are NOT split here; see `header_values`). Values are trimmed.
pub struct HeaderIter<'m, 'a> {
    msg: &'m Message<'a>,
    pos: usize,
}

impl<'m, 'a> Iterator for HeaderIter<'m, 'a> {
    type Item = (HeaderName<'a>, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        let e = self.msg.entries.get(..self.msg.count)?.get(self.pos)?;
        self.pos += 1;
        Some((self.msg.entry_name(e), self.msg.entry_value(e)))
    }
}

/// What could be read from a message before it was found malformed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Partial<'a> {
    /// Request method, when the start line got that far.
    pub method: Option<Method<'a>>,
    /// First Call-ID (or `i`) header value found in the header lines.
    pub call_id: Option<&'a [u8]>,
    /// First User-Agent header value found in the header lines.
    pub user_agent: Option<&'a [u8]>,
}

/// Why a message was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    /// Nothing but (optional) CR/LF.
    #[error("empty message")]
    Empty,
    /// Over [`MAX_MESSAGE_SIZE`].
    #[error("message larger than {} bytes", crate::limits::MAX_MESSAGE_SIZE)]
    TooLarge,
    /// Not `METHOD SP URI SP SIP/2.0` nor `SIP/2.0 SP NNN SP reason`.
    #[error("malformed start line")]
    BadStartLine,
    /// `SIP/x.y` other than 2.0.
    #[error("unsupported SIP version")]
    BadVersion,
    /// Over [`MAX_HEADERS`] header lines.
    #[error("more than {} headers", crate::limits::MAX_HEADERS)]
    TooManyHeaders,
    /// A physical line over [`MAX_LINE_LENGTH`].
    #[error("line longer than {} bytes", crate::limits::MAX_LINE_LENGTH)]
    LineTooLong,
    /// A header line without a colon or name, or a continuation line before any header.
    #[error("malformed header line")]
    BadHeader,
    /// The input ended before the empty line that ends the headers.
    #[error("no empty line ends the headers")]
    Truncated,
}

/// A malformed message: the reason, where, and what was read anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{kind} at byte {offset}")]
pub struct ParseError<'a> {
    /// The reason.
    pub kind: ParseErrorKind,
    /// Byte offset (in the input) of the offending line or limit.
    pub offset: usize,
    /// Fields read despite the error.
    pub partial: Partial<'a>,
}

/// Start and content end of the line at `pos`, and where the next line starts. A final line
/// without `\n` ends at the buffer end and has `next == None`.
#[inline]
fn line_at(buf: &[u8], pos: usize) -> (usize, Option<usize>) {
    let rest = buf.get(pos..).unwrap_or_default();
    match memchr::memchr(b'\n', rest) {
        Some(i) => {
            let nl = pos + i;
            let end = if i > 0 && buf.get(nl - 1) == Some(&b'\r') { nl - 1 } else { nl };
            (end, Some(nl + 1))
        }
        None => (buf.len(), None),
    }
}

#[inline]
fn is_sp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn starts_with_ci(s: &[u8], prefix: &[u8]) -> bool {
    s.get(..prefix.len()).is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

/// Finds the first Call-ID and User-Agent in the header lines, for [`Partial`]. Linear.
fn scan_partial(buf: &[u8]) -> (Option<&[u8]>, Option<&[u8]>) {
    let (mut call_id, mut ua) = (None, None);
    let (_, mut next) = line_at(buf, 0);
    while let Some(pos) = next {
        let (end, n) = line_at(buf, pos);
        next = n;
        let line = buf.get(pos..end).unwrap_or_default();
        if line.is_empty() {
            break;
        }
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let (name, value) = line.split_at(colon);
        let name = trim_end(name);
        let value = trim(value.get(1..).unwrap_or_default());
        if call_id.is_none()
            && (name.eq_ignore_ascii_case(b"call-id") || name.eq_ignore_ascii_case(b"i"))
        {
            call_id = Some(value);
        } else if ua.is_none() && name.eq_ignore_ascii_case(b"user-agent") {
            ua = Some(value);
        }
        if call_id.is_some() && ua.is_some() {
            break;
        }
    }
    (call_id, ua)
}

fn fail<'a>(
    buf: &'a [u8],
    kind: ParseErrorKind,
    offset: usize,
    method: Option<Method<'a>>,
) -> ParseError<'a> {
    let (call_id, user_agent) = scan_partial(buf);
    ParseError { kind, offset, partial: Partial { method, call_id, user_agent } }
}

fn is_sip_version(v: &[u8]) -> bool {
    v == b"SIP/2.0" || v.eq_ignore_ascii_case(b"SIP/2.0")
}

/// Parses the start line `buf[pos..end]` (end excludes the line terminator).
fn parse_start_line<'a>(
    buf: &'a [u8],
    pos: usize,
    end: usize,
) -> Result<StartLine, (ParseErrorKind, Option<Method<'a>>)> {
    use ParseErrorKind::*;
    let line = buf.get(pos..end).unwrap_or_default();
    let sp1 = line.iter().position(|b| is_sp(*b)).ok_or((BadStartLine, None))?;
    let first = line.get(..sp1).unwrap_or_default();
    if starts_with_ci(first, b"SIP/") {
        if !is_sip_version(first) {
            return Err((BadVersion, None));
        }
        let rest_start = sp1 + line.iter().skip(sp1).take_while(|b| is_sp(**b)).count();
        let rest = line.get(rest_start..).unwrap_or_default();
        let code_len = rest.iter().take_while(|b| !is_sp(**b)).count();
        let status = match rest.get(..code_len) {
            Some(c @ [b'1'..=b'6', _, _]) => parse_u32(c).ok_or((BadStartLine, None))?,
            _ => return Err((BadStartLine, None)),
        };
        let reason_start = rest_start + code_len;
        let reason = trim(line.get(reason_start..).unwrap_or_default());
        // The reason phrase is a sub-slice of `line`: recover its offset.
        let r0 = pos
            + reason_start
            + line
                .get(reason_start..)
                .unwrap_or_default()
                .iter()
                .take_while(|b| is_lws(**b))
                .count();
        return Ok(StartLine::Response {
            status: status as u16,
            reason: (r0 as u16, (r0 + reason.len()) as u16),
        });
    }
    if first.is_empty() || !first.iter().all(|b| is_token(*b)) {
        return Err((BadStartLine, None));
    }
    let method = Some(Method::from_token(first));
    let trimmed_len = trim_end(line).len();
    let line = line.get(..trimmed_len).unwrap_or_default();
    let last_sp = line.iter().rposition(|b| is_sp(*b)).ok_or((BadStartLine, method))?;
    let version = line.get(last_sp + 1..).unwrap_or_default();
    if !is_sip_version(version) {
        let kind = if starts_with_ci(version, b"SIP/") { BadVersion } else { BadStartLine };
        return Err((kind, method));
    }
    let mid = line.get(sp1..last_sp).unwrap_or_default();
    let lead = mid.iter().take_while(|b| is_sp(**b)).count();
    let uri = trim(mid);
    if uri.is_empty() || uri.iter().any(|b| is_sp(*b)) {
        return Err((BadStartLine, method));
    }
    let u0 = pos + sp1 + lead;
    Ok(StartLine::Request {
        method: (pos as u16, (pos + sp1) as u16),
        uri: (u0 as u16, (u0 + uri.len()) as u16),
    })
}

impl<'a> Message<'a> {
    /// Parse one message. Never panics; allocates nothing.
    ///
    /// `buf` is one UDP payload or one framed TCP message ([`crate::StreamFramer`]). Leading
    /// CR/LF (keep-alives) are skipped. Everything after the empty line is the body.
    pub fn parse(buf: &'a [u8]) -> Result<Message<'a>, ParseError<'a>> {
        use ParseErrorKind::*;
        if buf.len() > MAX_MESSAGE_SIZE {
            let head = buf.get(..MAX_MESSAGE_SIZE).unwrap_or_default();
            let method = head
                .iter()
                .position(|b| is_sp(*b))
                .and_then(|sp| head.get(..sp))
                .filter(|m| !m.is_empty() && m.iter().all(|b| is_token(*b)))
                .filter(|m| !starts_with_ci(m, b"SIP/"))
                .map(Method::from_token);
            return Err(fail(head, TooLarge, MAX_MESSAGE_SIZE, method));
        }
        let pos = buf.iter().take_while(|b| matches!(b, b'\r' | b'\n')).count();
        if pos == buf.len() {
            return Err(fail(buf, Empty, pos, None));
        }
        let (end, next) = line_at(buf, pos);
        if end - pos > MAX_LINE_LENGTH {
            return Err(fail(buf, LineTooLong, pos, None));
        }
        let start = parse_start_line(buf, pos, end)
            .map_err(|(kind, method)| fail(buf, kind, pos, method))?;
        // Only needed on the error paths: computed there.
        let method = || match start {
            StartLine::Request { method: (a, b), .. } => {
                buf.get(usize::from(a)..usize::from(b)).map(Method::from_token)
            }
            StartLine::Response { .. } => None,
        };
        let mut entries = [Entry::default(); MAX_HEADERS];
        let mut first = [0u8; KNOWN_IDS];
        let mut count = 0usize;
        let Some(mut next) = next else {
            return Err(fail(buf, Truncated, buf.len(), method()));
        };
        let body_start = loop {
            let pos = next;
            // Header lines are 10-80 bytes: a word-at-a-time scan beats memchr's dispatch.
            let (end, n) = match find_byte_wide(b'\n', buf.get(pos..).unwrap_or_default()) {
                Some(i) => {
                    let nl = pos + i;
                    let end = if nl > pos && buf.get(nl - 1) == Some(&b'\r') { nl - 1 } else { nl };
                    (end, Some(nl + 1))
                }
                None => (buf.len(), None),
            };
            let Some(n_pos) = n else {
                // The input ends inside the headers: no empty line.
                return Err(fail(buf, Truncated, buf.len(), method()));
            };
            next = n_pos;
            if end - pos > MAX_LINE_LENGTH {
                return Err(fail(buf, LineTooLong, pos, method()));
            }
            if end == pos {
                break n_pos;
            }
            let line = buf.get(pos..end).unwrap_or_default();
            if line.first().is_some_and(|b| is_sp(*b)) {
                // Folded continuation of the previous header's value.
                match count.checked_sub(1).and_then(|i| entries.get_mut(i)) {
                    Some(prev) => prev.val_end = end as u16,
                    None => return Err(fail(buf, BadHeader, pos, method())),
                }
                continue;
            }
            let Some(colon) = find_byte(b':', line) else {
                return Err(fail(buf, BadHeader, pos, method()));
            };
            let name = trim_end(line.get(..colon).unwrap_or_default());
            if name.is_empty() {
                return Err(fail(buf, BadHeader, pos, method()));
            }
            let Some(slot) = entries.get_mut(count) else {
                return Err(fail(buf, TooManyHeaders, pos, method()));
            };
            *slot = Entry {
                name_start: pos as u16,
                name_end: (pos + name.len()) as u16,
                val_start: (pos + colon + 1) as u16,
                val_end: end as u16,
                id: HeaderName::from_bytes(name).id(),
            };
            if let Some(f) = first.get_mut(usize::from(slot.id)) {
                if *f == 0 {
                    *f = (count + 1) as u8;
                }
            }
            count += 1;
        };
        Ok(Message { buf, start, body_start, count, entries, first })
    }

    /// The whole input buffer.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }

    fn slice(&self, (a, b): (u16, u16)) -> &'a [u8] {
        self.buf.get(usize::from(a)..usize::from(b)).unwrap_or_default()
    }

    fn entries(&self) -> &[Entry] {
        self.entries.get(..self.count).unwrap_or_default()
    }

    fn entry_name(&self, e: &Entry) -> HeaderName<'a> {
        HeaderName::from_id(e.id, self.slice((e.name_start, e.name_end)))
    }

    fn entry_value(&self, e: &Entry) -> &'a [u8] {
        trim(self.slice((e.val_start, e.val_end)))
    }

    /// Entries matching `name` (compact forms and any case folded in).
    fn matching<'m>(&'m self, name: HeaderName<'m>) -> impl Iterator<Item = &'m Entry> + 'm {
        let name = match name {
            HeaderName::Other(raw) => HeaderName::from_bytes(raw),
            known => known,
        };
        let id = name.id();
        let raw = name.as_bytes();
        self.entries().iter().filter(move |e| {
            e.id == id
                && (id != 0 || self.slice((e.name_start, e.name_end)).eq_ignore_ascii_case(raw))
        })
    }

    /// First value for a known header id (fast path for the accessors).
    #[inline]
    fn first(&self, name: HeaderName<'static>) -> Option<&'a [u8]> {
        let i = usize::from(*self.first.get(usize::from(name.id()))?).checked_sub(1)?;
        // `first` only holds indices of filled entries.
        self.entries.get(i).map(|e| self.entry_value(e))
    }

    /// True for a request, false for a response.
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// The request method (None for a response).
    pub fn method(&self) -> Option<Method<'a>> {
        match self.start {
            StartLine::Request { method, .. } => Some(Method::from_token(self.slice(method))),
            StartLine::Response { .. } => None,
        }
    }

    /// The raw request-URI text.
    pub fn request_uri_raw(&self) -> Option<&'a [u8]> {
        match self.start {
            StartLine::Request { uri, .. } => Some(self.slice(uri)),
            StartLine::Response { .. } => None,
        }
    }

    /// The parsed request-URI (None for a response, or when it has no `scheme:`).
    pub fn request_uri(&self) -> Option<Uri<'a>> {
        Uri::parse(self.request_uri_raw()?)
    }

    /// The status code of a response.
    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { status, .. } => Some(status),
            StartLine::Request { .. } => None,
        }
    }

    /// The reason phrase of a response (may be empty).
    pub fn reason(&self) -> Option<&'a [u8]> {
        match self.start {
            StartLine::Response { reason, .. } => Some(self.slice(reason)),
            StartLine::Request { .. } => None,
        }
    }

    /// First value of the named header (compact forms match their long names).
    pub fn header(&self, name: HeaderName<'_>) -> Option<&'a [u8]> {
        let e = self.matching(name).next()?;
        Some(self.entry_value(e))
    }

    /// Every header line in order.
    pub fn headers(&self) -> HeaderIter<'_, 'a> {
        HeaderIter { msg: self, pos: 0 }
    }

    /// Every value of the named header: repeated lines and comma-separated values
    /// (commas inside quotes or `<>` do not split), trimmed. Do not use it for headers whose
    /// grammar is not a comma list (Authorization, Date).
    pub fn header_values<'m>(
        &'m self,
        name: HeaderName<'m>,
    ) -> impl Iterator<Item = &'a [u8]> + 'm {
        self.matching(name).flat_map(move |e| ListIter::new(self.entry_value(e), b','))
    }

    /// Number of header lines.
    pub fn header_count(&self) -> usize {
        self.count
    }

    /// The From header.
    pub fn from(&self) -> Option<NameAddr<'a>> {
        NameAddr::parse(self.first(HeaderName::From)?)
    }

    /// The To header.
    pub fn to(&self) -> Option<NameAddr<'a>> {
        NameAddr::parse(self.first(HeaderName::To)?)
    }

    /// First Contact value (`*` yields None).
    pub fn contact(&self) -> Option<NameAddr<'a>> {
        let v = first_item(self.first(HeaderName::Contact)?)?;
        if v == b"*" {
            return None;
        }
        NameAddr::parse(v)
    }

    /// The first value of the first Via line.
    pub fn top_via(&self) -> Option<Via<'a>> {
        Via::parse(first_item(self.first(HeaderName::Via)?)?)
    }

    /// Number of Via values (all lines, comma lists split).
    pub fn via_count(&self) -> usize {
        self.matching(HeaderName::Via).map(|e| count_items(self.entry_value(e))).sum()
    }

    /// Call-ID (or `i`).
    pub fn call_id(&self) -> Option<&'a [u8]> {
        self.first(HeaderName::CallId)
    }

    /// CSeq number and method.
    pub fn cseq(&self) -> Option<CSeq<'a>> {
        CSeq::parse(self.first(HeaderName::CSeq)?)
    }

    /// User-Agent, raw.
    pub fn user_agent(&self) -> Option<&'a [u8]> {
        self.first(HeaderName::UserAgent)
    }

    /// Server, raw.
    pub fn server(&self) -> Option<&'a [u8]> {
        self.first(HeaderName::Server)
    }

    /// Content-Length (or `l`) of the first such header; None if absent or not a number.
    pub fn content_length(&self) -> Option<usize> {
        parse_usize(self.first(HeaderName::ContentLength)?)
    }

    /// Content-Type (or `c`), raw with its parameters.
    pub fn content_type(&self) -> Option<&'a [u8]> {
        self.first(HeaderName::ContentType)
    }

    /// Body after the blank line, cut to Content-Length when it is present and smaller.
    /// When Content-Length is larger than what arrived (a truncated datagram) or invalid,
    /// the whole remainder is returned: callers decide; the parser keeps what it saw.
    pub fn body(&self) -> &'a [u8] {
        let body = self.buf.get(self.body_start..).unwrap_or_default();
        match self.content_length() {
            Some(cl) if cl < body.len() => body.get(..cl).unwrap_or_default(),
            _ => body,
        }
    }

    /// The SDP `s=` line value if the body is SDP (Content-Type `application/sdp`, or no
    /// Content-Type and a body starting with `v=`).
    pub fn sdp_session_name(&self) -> Option<&'a [u8]> {
        let body = self.body();
        match self.content_type() {
            Some(ct) => {
                let ct = ct.get(..15)?;
                if ct != b"application/sdp" && !ct.eq_ignore_ascii_case(b"application/sdp") {
                    return None;
                }
            }
            None if !body.starts_with(b"v=") => return None,
            None => {}
        }
        let mut at = 0;
        while !body.get(at..)?.starts_with(b"s=") {
            // SDP lines are short: word-at-a-time beats memchr's dispatch.
            at += find_byte(b'\n', body.get(at..)?)? + 1;
        }
        let line = body.get(at + 2..)?;
        let end = find_byte(b'\n', line).unwrap_or(line.len());
        Some(trim_end(line.get(..end)?))
    }

    /// Expires as delta-seconds (None if absent or not a number).
    pub fn expires(&self) -> Option<u32> {
        parse_u32(self.first(HeaderName::Expires)?)
    }

    /// Max-Forwards (None if absent or not a number).
    pub fn max_forwards(&self) -> Option<u32> {
        parse_u32(self.first(HeaderName::MaxForwards)?)
    }

    /// The first Authorization header's credentials.
    pub fn authorization(&self) -> Option<Credentials<'a>> {
        Credentials::parse(self.first(HeaderName::Authorization)?)
    }

    /// The first Proxy-Authorization header's credentials.
    pub fn proxy_authorization(&self) -> Option<Credentials<'a>> {
        Credentials::parse(self.first(HeaderName::ProxyAuthorization)?)
    }
}

impl<'a> Method<'a> {
    /// Parse a method token (case-sensitive per RFC 3261, as sent).
    pub fn from_token(tok: &'a [u8]) -> Method<'a> {
        match tok {
            b"INVITE" => Method::Invite,
            b"ACK" => Method::Ack,
            b"BYE" => Method::Bye,
            b"CANCEL" => Method::Cancel,
            b"OPTIONS" => Method::Options,
            b"REGISTER" => Method::Register,
            b"PRACK" => Method::Prack,
            b"SUBSCRIBE" => Method::Subscribe,
            b"NOTIFY" => Method::Notify,
            b"PUBLISH" => Method::Publish,
            b"INFO" => Method::Info,
            b"REFER" => Method::Refer,
            b"MESSAGE" => Method::Message,
            b"UPDATE" => Method::Update,
            other => Method::Unknown(other),
        }
    }

    /// Canonical upper-case text.
    pub fn as_bytes(&self) -> &'a [u8] {
        match self {
            Method::Invite => b"INVITE",
            Method::Ack => b"ACK",
            Method::Bye => b"BYE",
            Method::Cancel => b"CANCEL",
            Method::Options => b"OPTIONS",
            Method::Register => b"REGISTER",
            Method::Prack => b"PRACK",
            Method::Subscribe => b"SUBSCRIBE",
            Method::Notify => b"NOTIFY",
            Method::Publish => b"PUBLISH",
            Method::Info => b"INFO",
            Method::Refer => b"REFER",
            Method::Message => b"MESSAGE",
            Method::Update => b"UPDATE",
            Method::Unknown(raw) => raw,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn ip(s: &str) -> Host<'static> {
        Host::Ip(s.parse::<IpAddr>().unwrap())
    }

    const INVITE: &[u8] = b"INVITE sip:200@[2001:db8::5]:5062;user=phone SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776;rport\r\n\
Via: SIP/2.0/TCP proxy.example.com, SIP/2.0/UDP 198.51.100.1\r\n\
Max-Forwards: 70\r\n\
From: \"Alice, A.\" <sip:alice:pw@example.com>;tag=1928301774\r\n\
To: <sip:200@example.com>\r\n\
Call-ID: a84b4c76e66710@pc33.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@192.0.2.10>;expires=60, <sip:alice@198.51.100.1>\r\n\
User-Agent: Yealink SIP-T46S 66.86.0.15\r\n\
Expires: 120\r\n\
Proxy-Authorization: Digest username=\"alice\", realm=\"example.com\", uri=\"sip:200@example.com\"\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 22\r\n\
\r\n\
v=0\r\ns=Talk\r\nt=0 0\r\n\r\nTRAILING";

    #[test]
    fn request_accessors() {
        let m = Message::parse(INVITE).unwrap();
        assert!(m.is_request());
        assert_eq!(m.method(), Some(Method::Invite));
        let u = m.request_uri().unwrap();
        assert_eq!(u.user, Some(&b"200"[..]));
        assert_eq!(u.host, Some(ip("2001:db8::5")));
        assert_eq!(u.port, Some(5062));
        assert_eq!(u.params.get(b"user"), Some(Some(&b"phone"[..])));
        assert_eq!(m.status(), None);
        assert_eq!(m.header_count(), 13);
        let v = m.top_via().unwrap();
        assert_eq!(v.host, ip("192.0.2.10"));
        assert_eq!(v.port, Some(5060));
        assert_eq!(v.branch, Some(&b"z9hG4bK776"[..]));
        assert!(v.rport);
        assert_eq!(m.via_count(), 3);
        let f = m.from().unwrap();
        assert_eq!(f.display_name, Some(&b"Alice, A."[..]));
        assert_eq!(f.uri.password, Some(&b"pw"[..]));
        assert_eq!(f.tag, Some(&b"1928301774"[..]));
        assert_eq!(m.to().unwrap().display_name, None);
        assert_eq!(m.contact().unwrap().params, b"expires=60");
        assert_eq!(m.header_values(HeaderName::Contact).count(), 2);
        assert_eq!(m.cseq().unwrap().number, 314159);
        assert_eq!(m.cseq().unwrap().method, Method::Invite);
        assert_eq!(m.user_agent(), Some(&b"Yealink SIP-T46S 66.86.0.15"[..]));
        assert_eq!(m.expires(), Some(120));
        assert_eq!(m.max_forwards(), Some(70));
        let pa = m.proxy_authorization().unwrap();
        assert_eq!(pa.username, Some(&b"alice"[..]));
        assert_eq!(pa.realm, Some(&b"example.com"[..]));
        assert_eq!(m.authorization(), None);
        assert_eq!(m.content_length(), Some(22));
        assert_eq!(m.body(), b"v=0\r\ns=Talk\r\nt=0 0\r\n\r\n");
        assert_eq!(m.sdp_session_name(), Some(&b"Talk"[..]));
        assert_eq!(m.header(HeaderName::Other(b"max-forwards")), Some(&b"70"[..]));
        assert_eq!(m.header(HeaderName::Server), None);
        let names: Vec<_> = m.headers().map(|(n, _)| n).collect();
        assert_eq!(names.first(), Some(&HeaderName::Via));
        assert_eq!(names.last(), Some(&HeaderName::ContentLength));
    }

    #[test]
    fn response_and_compact_bare_lf_folding() {
        let raw = b"\r\n\r\nSIP/2.0 401   Unauthorized  \n\
v: SIP/2.0/UDP 10.0.0.1;received=203.0.113.5;rport=40000\n\
F: <sip:a@b>;tag=x\n\
i: abc\n\
X-Custom: one,\n two\n\
server: Asterisk PBX\n\
L: 0\n\
\n";
        let m = Message::parse(raw).unwrap();
        assert!(!m.is_request());
        assert_eq!(m.status(), Some(401));
        assert_eq!(m.reason(), Some(&b"Unauthorized"[..]));
        assert_eq!(m.call_id(), Some(&b"abc"[..]));
        assert_eq!(m.server(), Some(&b"Asterisk PBX"[..]));
        assert_eq!(m.content_length(), Some(0));
        let v = m.top_via().unwrap();
        assert_eq!(v.received, Some(&b"203.0.113.5"[..]));
        assert_eq!(v.rport_value, Some(40000));
        assert_eq!(m.from().unwrap().tag, Some(&b"x"[..]));
        assert_eq!(m.header(HeaderName::Other(b"x-custom")), Some(&b"one,\n two"[..]));
        let vals: Vec<_> = m.header_values(HeaderName::Other(b"X-CUSTOM")).collect();
        assert_eq!(vals, vec![&b"one"[..], &b"two"[..]]);
        assert_eq!(m.body(), b"");
    }

    #[test]
    fn contact_star_and_unknown_method() {
        let raw = b"FOO sip:x SIP/2.0\r\nContact: *\r\n\r\n";
        let m = Message::parse(raw).unwrap();
        assert_eq!(m.method(), Some(Method::Unknown(b"FOO")));
        assert_eq!(m.method().unwrap().as_bytes(), b"FOO");
        assert_eq!(m.contact(), None);
        assert_eq!(m.header(HeaderName::Contact), Some(&b"*"[..]));
    }

    #[test]
    fn errors_keep_partial() {
        let raw = b"REGISTER sip:x SIP/3.0\r\nUser-Agent: friendly-scanner\r\ni: 99\r\n\r\n";
        let e = Message::parse(raw).unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::BadVersion);
        assert_eq!(e.partial.method, Some(Method::Register));
        assert_eq!(e.partial.call_id, Some(&b"99"[..]));
        assert_eq!(e.partial.user_agent, Some(&b"friendly-scanner"[..]));

        let raw = b"OPTIONS sip:x SIP/2.0\r\nCall-ID: 7\r\nno colon here\r\n\r\n";
        let e = Message::parse(raw).unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::BadHeader);
        assert_eq!(e.offset, 35);
        assert_eq!(e.partial.method, Some(Method::Options));
        assert_eq!(e.partial.call_id, Some(&b"7"[..]));

        let raw = b"OPTIONS sip:x SIP/2.0\r\nCall-ID: 7\r\n";
        assert_eq!(Message::parse(raw).unwrap_err().kind, ParseErrorKind::Truncated);
        assert_eq!(Message::parse(b"\r\n\r\n").unwrap_err().kind, ParseErrorKind::Empty);
        assert_eq!(Message::parse(b"").unwrap_err().kind, ParseErrorKind::Empty);
        assert_eq!(
            Message::parse(b"GARBAGE\r\n\r\n").unwrap_err().kind,
            ParseErrorKind::BadStartLine
        );
        assert_eq!(
            Message::parse(b"SIP/2.0 2000 OK\r\n\r\n").unwrap_err().kind,
            ParseErrorKind::BadStartLine
        );
        assert_eq!(
            Message::parse(b"INVITE sip:a b SIP/2.0\r\n\r\n").unwrap_err().kind,
            ParseErrorKind::BadStartLine
        );
        assert_eq!(
            Message::parse(b" x: y\r\n\r\n").unwrap_err().kind,
            ParseErrorKind::BadStartLine
        );
    }

    #[test]
    fn limits_enforced() {
        let mut raw = b"OPTIONS sip:x SIP/2.0\r\n".to_vec();
        for i in 0..MAX_HEADERS {
            raw.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        raw.extend_from_slice(b"\r\n");
        assert_eq!(Message::parse(&raw).unwrap().header_count(), MAX_HEADERS);
        let mut more = raw.clone();
        more.splice(23..23, b"X-extra: v\r\n".iter().copied());
        assert_eq!(Message::parse(&more).unwrap_err().kind, ParseErrorKind::TooManyHeaders);

        let mut long = b"OPTIONS sip:x SIP/2.0\r\nX: ".to_vec();
        long.resize(long.len() + MAX_LINE_LENGTH, b'a');
        long.extend_from_slice(b"\r\n\r\n");
        assert_eq!(Message::parse(&long).unwrap_err().kind, ParseErrorKind::LineTooLong);

        let mut big = b"OPTIONS sip:x SIP/2.0\r\nl: 70000\r\n\r\n".to_vec();
        big.resize(MAX_MESSAGE_SIZE + 1, b'a');
        let e = Message::parse(&big).unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::TooLarge);
        assert_eq!(e.partial.method, Some(Method::Options));

        let mut max = b"OPTIONS sip:x SIP/2.0\r\n\r\n".to_vec();
        max.resize(MAX_MESSAGE_SIZE, b'a');
        assert_eq!(Message::parse(&max).unwrap().body().len(), MAX_MESSAGE_SIZE - 25);
    }

    #[test]
    fn body_longer_than_content_length_is_cut_and_shorter_is_kept() {
        let m = Message::parse(b"MESSAGE sip:x SIP/2.0\r\nl: 2\r\n\r\nabcd").unwrap();
        assert_eq!(m.body(), b"ab");
        let m = Message::parse(b"MESSAGE sip:x SIP/2.0\r\nl: 9\r\n\r\nabcd").unwrap();
        assert_eq!(m.body(), b"abcd");
        let m = Message::parse(b"MESSAGE sip:x SIP/2.0\r\nl: -9\r\n\r\nabcd").unwrap();
        assert_eq!(m.content_length(), None);
        assert_eq!(m.body(), b"abcd");
    }
}
