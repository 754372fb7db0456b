//! TCP (and TLS-decrypted) stream framing by Content-Length (RFC 3261 §18.3).
//!
//! # Contract
//! * [`frame_len`] is stateless and linear in its input; [`StreamFramer`] keeps one buffer
//!   per connection, never larger than [`MAX_STREAM_BUFFER`] bytes of unconsumed data, and
//!   never panics. Consumed messages are not moved: the buffer is compacted lazily, only when
//!   appending would otherwise grow it.
//! * CR/LF keep-alives (RFC 5626 `CRLFCRLF` pings, stray CRLFs) between messages are skipped.
//! * The header section ends at the first empty line (CRLF CRLF or bare LF LF).
//! * The body length is the Content-Length (or compact `l`) value. Two Content-Length
//!   headers with different values, or a value that is not a number, is
//!   [`FrameError::BadContentLength`].
//! * **Missing Content-Length**: RFC 3261 requires it on streams. We accept a message without
//!   it as having no body (`SIPp` keep-alives and some scanners omit it on body-less requests),
//!   but if bytes already follow the empty line and they cannot start another message (no
//!   CR/LF, and not a `TOKEN SP` or `SIP/` start line), the message evidently had a body whose
//!   length we cannot know: that is [`FrameError::BadContentLength`].
//! * A message (headers + body) over [`MAX_MESSAGE_SIZE`] is [`FrameError::Overflow`].
//! * After an error the stream cannot be resynchronised: the caller should close the
//!   connection (the framer keeps returning the error).

use crate::bytes::{parse_usize, trim, trim_end};
use crate::limits::{MAX_MESSAGE_SIZE, MAX_STREAM_BUFFER};

/// Splits a byte stream into SIP messages. Keeps a bounded buffer
/// ([`crate::limits::MAX_STREAM_BUFFER`]); skips keep-alive CRLFs between messages.
#[derive(Debug, Default)]
pub struct StreamFramer {
    buf: Vec<u8>,
    /// Start of unconsumed data in `buf` (consumed bytes are dropped lazily).
    start: usize,
    /// Unconsumed length below which another framing attempt cannot succeed: avoids
    /// re-scanning a partial message on every small push.
    need: usize,
    /// How far (relative to `start`) the search for the end of the headers got.
    scanned: usize,
    /// Sticky error.
    error: Option<FrameError>,
}

/// One step of framing.
#[derive(Debug, PartialEq, Eq)]
pub enum Framed<'b> {
    /// One whole message (headers + Content-Length body).
    Message(&'b [u8]),
    /// A partial message: push more bytes.
    NeedMore,
}

/// Why a stream cannot be framed any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// More than the bounds allow: buffer or single message.
    #[error(
        "stream buffer over {} bytes without a complete message",
        crate::limits::MAX_STREAM_BUFFER
    )]
    Overflow,
    /// Content-Length missing where a body follows, duplicated with different values, or
    /// not a number.
    #[error("missing or invalid Content-Length on a stream transport")]
    BadContentLength,
}

impl StreamFramer {
    /// An empty framer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Append received bytes. Errors with Overflow if the bound would be exceeded (nothing
    /// is appended then).
    pub fn push(&mut self, data: &[u8]) -> Result<(), FrameError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.buffered().saturating_add(data.len()) > MAX_STREAM_BUFFER {
            self.error = Some(FrameError::Overflow);
            return Err(FrameError::Overflow);
        }
        if self.start == self.buf.len() {
            // Everything consumed: reuse the allocation without moving anything.
            self.buf.clear();
            self.start = 0;
        } else if self.start > 0 && self.buf.len() + data.len() > self.buf.capacity() {
            // Compact only when we would otherwise grow.
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    /// Take the next complete message, if any. The returned slice is valid until the next call.
    pub fn next_message(&mut self) -> Result<Framed<'_>, FrameError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let pending = self.buf.get(self.start..).unwrap_or_default();
        if pending.len() < self.need {
            return Ok(Framed::NeedMore);
        }
        match scan(pending, self.scanned) {
            Err(e) => {
                self.error = Some(e);
                Err(e)
            }
            Ok(Scan::Incomplete { skip, scanned, need }) => {
                // Drop keep-alives now so they do not count against the buffer bound.
                self.start += skip;
                self.scanned = scanned.saturating_sub(skip);
                self.need = need.saturating_sub(skip);
                Ok(Framed::NeedMore)
            }
            Ok(Scan::Complete { skip, len }) => {
                let from = self.start + skip;
                self.start = from + len;
                self.scanned = 0;
                self.need = 0;
                Ok(match self.buf.get(from..from + len) {
                    Some(m) => Framed::Message(m),
                    None => Framed::NeedMore,
                })
            }
        }
    }

    /// Bytes currently buffered (not yet returned as messages).
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }
}

enum Scan {
    /// `skip` leading keep-alive bytes; headers searched up to `scanned`; at least `need`
    /// bytes must be buffered before trying again.
    Incomplete {
        skip: usize,
        scanned: usize,
        need: usize,
    },
    Complete {
        skip: usize,
        len: usize,
    },
}

/// Stateless: length of the first complete message at the start of `buf` (after skipping
/// leading CRLF keep-alives, whose count is the first element), or None if incomplete.
/// The message is `buf[skip..skip + len]`.
pub fn frame_len(buf: &[u8]) -> Result<Option<(usize, usize)>, FrameError> {
    Ok(match scan(buf, 0)? {
        Scan::Complete { skip, len } => Some((skip, len)),
        Scan::Incomplete { .. } => None,
    })
}

fn scan(buf: &[u8], resume: usize) -> Result<Scan, FrameError> {
    let skip = buf.iter().take_while(|b| matches!(b, b'\r' | b'\n')).count();
    let msg = buf.get(skip..).unwrap_or_default();
    // End of headers: the first "\n\n" or "\n\r\n". Resume a little before where the last
    // search stopped so a terminator split across pushes is still found.
    let from = resume.saturating_sub(skip).saturating_sub(2);
    let Some(hdr_end) = find_headers_end(msg, from) else {
        if msg.len() > MAX_MESSAGE_SIZE {
            return Err(FrameError::Overflow);
        }
        return Ok(Scan::Incomplete { skip, scanned: buf.len(), need: buf.len() + 1 });
    };
    let headers = msg.get(..hdr_end).unwrap_or_default();
    let body_len = match content_length(headers)? {
        Some(n) => n,
        None => {
            if !could_start_message(msg.get(hdr_end..).unwrap_or_default()) {
                return Err(FrameError::BadContentLength);
            }
            0
        }
    };
    let len = hdr_end.checked_add(body_len).ok_or(FrameError::Overflow)?;
    if len > MAX_MESSAGE_SIZE {
        return Err(FrameError::Overflow);
    }
    if msg.len() < len {
        return Ok(Scan::Incomplete {
            skip,
            // Headers are known; rescan once the whole body is there.
            scanned: 0,
            need: skip + len,
        });
    }
    Ok(Scan::Complete { skip, len })
}

/// Offset just past the empty line ending the headers, searching from `from`.
fn find_headers_end(msg: &[u8], from: usize) -> Option<usize> {
    let mut pos = from;
    loop {
        let rest = msg.get(pos..)?;
        let nl = pos + memchr::memchr(b'\n', rest)?;
        match (msg.get(nl + 1), msg.get(nl + 2)) {
            (Some(b'\n'), _) => return Some(nl + 2),
            (Some(b'\r'), Some(b'\n')) => return Some(nl + 3),
            _ => {}
        }
        pos = nl + 1;
    }
}

/// Content-Length of the header block: None if absent, error if unparseable or
/// contradictory.
fn content_length(headers: &[u8]) -> Result<Option<usize>, FrameError> {
    let mut found: Option<usize> = None;
    for line in headers.split(|b| *b == b'\n') {
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let (name, value) = line.split_at(colon);
        let name = trim_end(name);
        if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
            continue;
        }
        let v = parse_usize(trim(value.get(1..).unwrap_or_default()))
            .ok_or(FrameError::BadContentLength)?;
        match found {
            Some(prev) if prev != v => return Err(FrameError::BadContentLength),
            _ => found = Some(v),
        }
    }
    Ok(found)
}

/// Whether `rest` (bytes after a body-less message) can be the start of another message or
/// keep-alive, or is too short to tell.
fn could_start_message(rest: &[u8]) -> bool {
    match rest.first() {
        None | Some(b'\r') | Some(b'\n') => return true,
        _ => {}
    }
    if rest.len() >= 4 && rest.get(..4).is_some_and(|p| p.eq_ignore_ascii_case(b"SIP/")) {
        return true;
    }
    let tok = rest.iter().take_while(|b| crate::bytes::is_token(**b)).count();
    match rest.get(tok) {
        None => tok == rest.len(), // all token so far: cannot tell yet
        Some(b' ') => tok > 0,
        Some(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPT: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: 1\r\nContent-Length: 0\r\n\r\n";
    const INV: &[u8] = b"INVITE sip:a@b SIP/2.0\r\nl: 5\r\nCall-ID: 2\r\n\r\nhello";

    #[test]
    fn frames_by_content_length_and_skips_keepalives() {
        let mut s = Vec::new();
        s.extend_from_slice(b"\r\n\r\n");
        s.extend_from_slice(INV);
        s.extend_from_slice(b"\r\n");
        s.extend_from_slice(OPT);
        assert_eq!(frame_len(&s).unwrap(), Some((4, INV.len())));
        let mut f = StreamFramer::new();
        f.push(&s).unwrap();
        assert_eq!(f.next_message().unwrap(), Framed::Message(INV));
        assert_eq!(f.next_message().unwrap(), Framed::Message(OPT));
        assert_eq!(f.next_message().unwrap(), Framed::NeedMore);
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn partial_then_complete() {
        let mut f = StreamFramer::new();
        f.push(&INV[..INV.len() - 2]).unwrap();
        assert_eq!(f.next_message().unwrap(), Framed::NeedMore);
        f.push(&INV[INV.len() - 2..]).unwrap();
        assert_eq!(f.next_message().unwrap(), Framed::Message(INV));
    }

    #[test]
    fn only_keepalives_are_dropped() {
        let mut f = StreamFramer::new();
        f.push(b"\r\n\r\n").unwrap();
        assert_eq!(f.next_message().unwrap(), Framed::NeedMore);
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn missing_content_length() {
        let no_cl = b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: 1\r\n\r\n";
        assert_eq!(frame_len(no_cl).unwrap(), Some((0, no_cl.len())));
        let mut two = no_cl.to_vec();
        two.extend_from_slice(OPT);
        assert_eq!(frame_len(&two).unwrap(), Some((0, no_cl.len())));
        let mut body = no_cl.to_vec();
        body.extend_from_slice(b"v=0\r\n");
        assert_eq!(frame_len(&body), Err(FrameError::BadContentLength));
    }

    #[test]
    fn bad_content_length() {
        assert_eq!(
            frame_len(b"BYE sip:a SIP/2.0\r\nContent-Length: -1\r\n\r\n"),
            Err(FrameError::BadContentLength)
        );
        assert_eq!(
            frame_len(b"BYE sip:a SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\nab"),
            Err(FrameError::BadContentLength)
        );
        assert_eq!(
            frame_len(b"BYE sip:a SIP/2.0\r\nContent-Length: 99999999\r\n\r\n"),
            Err(FrameError::Overflow)
        );
    }

    #[test]
    fn bounded_buffer() {
        let mut f = StreamFramer::new();
        let junk = vec![b'a'; MAX_STREAM_BUFFER];
        f.push(&junk).unwrap();
        assert_eq!(f.push(b"x"), Err(FrameError::Overflow));
        let mut f = StreamFramer::new();
        f.push(&junk[..MAX_MESSAGE_SIZE + 1]).unwrap();
        assert_eq!(f.next_message(), Err(FrameError::Overflow));
        // Sticky.
        assert_eq!(f.push(b"\r\n"), Err(FrameError::Overflow));
    }

    #[test]
    fn bare_lf_and_split_terminator() {
        let m = b"OPTIONS sip:a SIP/2.0\nl: 2\n\nab";
        let mut f = StreamFramer::new();
        for chunk in m.chunks(1) {
            f.push(chunk).unwrap();
            if f.buffered() < m.len() {
                assert_eq!(f.next_message().unwrap(), Framed::NeedMore);
            }
        }
        assert_eq!(f.next_message().unwrap(), Framed::Message(&m[..]));
    }

    #[test]
    fn does_not_grow_when_consuming_steadily() {
        let mut f = StreamFramer::new();
        for _ in 0..10_000 {
            f.push(OPT).unwrap();
            assert_eq!(f.next_message().unwrap(), Framed::Message(OPT));
        }
        assert!(f.buf.capacity() <= 4 * OPT.len());
    }
}
