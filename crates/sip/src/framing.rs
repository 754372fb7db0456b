//! TCP stream framing by Content-Length. SKELETON.
#![allow(missing_docs, unused_variables, dead_code, clippy::todo)]

/// Splits a byte stream into SIP messages. Keeps a bounded buffer
/// ([`crate::limits::MAX_STREAM_BUFFER`]); skips keep-alive CRLFs between messages.
#[derive(Debug, Default)]
pub struct StreamFramer {
    buf: Vec<u8>,
}

/// One step of framing.
#[derive(Debug, PartialEq, Eq)]
pub enum Framed<'b> {
    /// One whole message (headers + Content-Length body).
    Message(&'b [u8]),
    /// A partial message: push more bytes.
    NeedMore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error(
        "stream buffer over {} bytes without a complete message",
        crate::limits::MAX_STREAM_BUFFER
    )]
    Overflow,
    #[error("missing or invalid Content-Length on a stream transport")]
    BadContentLength,
}

impl StreamFramer {
    pub fn new() -> Self {
        Self::default()
    }
    /// Append received bytes. Errors with Overflow if the bound would be exceeded.
    pub fn push(&mut self, data: &[u8]) -> Result<(), FrameError> {
        todo!()
    }
    /// Take the next complete message, if any. The returned slice is valid until the next call.
    pub fn next_message(&mut self) -> Result<Framed<'_>, FrameError> {
        todo!()
    }
    /// Bytes currently buffered.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

/// Stateless: length of the first complete message at the start of `buf` (after skipping
/// leading CRLF keep-alives, whose count is the first element), or None if incomplete.
pub fn frame_len(buf: &[u8]) -> Result<Option<(usize, usize)>, FrameError> {
    todo!()
}
