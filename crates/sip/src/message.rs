//! The message view. SKELETON: bodies to be implemented.
#![allow(missing_docs, unused_variables, dead_code, clippy::todo)]
use crate::types::*;

/// A parsed SIP message borrowing its buffer. `Copy`-cheap to pass around by reference.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    buf: &'a [u8],
}

/// Iterator over (name, value) of every header, in order, one item per header line
/// (comma-separated values are NOT split here; see `header_values`).
pub struct HeaderIter<'m, 'a> {
    msg: &'m Message<'a>,
    pos: usize,
}

impl<'m, 'a> Iterator for HeaderIter<'m, 'a> {
    type Item = (HeaderName<'a>, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        todo!()
    }
}

/// What could be read from a message before it was found malformed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Partial<'a> {
    pub method: Option<Method<'a>>,
    pub call_id: Option<&'a [u8]>,
    pub user_agent: Option<&'a [u8]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    #[error("empty message")]
    Empty,
    #[error("message larger than {} bytes", crate::limits::MAX_MESSAGE_SIZE)]
    TooLarge,
    #[error("malformed start line")]
    BadStartLine,
    #[error("unsupported SIP version")]
    BadVersion,
    #[error("more than {} headers", crate::limits::MAX_HEADERS)]
    TooManyHeaders,
    #[error("line longer than {} bytes", crate::limits::MAX_LINE_LENGTH)]
    LineTooLong,
    #[error("malformed header line")]
    BadHeader,
    #[error("no empty line ends the headers")]
    Truncated,
}

/// A malformed message: the reason, where, and what was read anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{kind} at byte {offset}")]
pub struct ParseError<'a> {
    pub kind: ParseErrorKind,
    pub offset: usize,
    pub partial: Partial<'a>,
}

impl<'a> Message<'a> {
    /// Parse one message. Never panics; allocates nothing.
    pub fn parse(buf: &'a [u8]) -> Result<Message<'a>, ParseError<'a>> {
        todo!()
    }
    /// The whole input buffer.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }
    pub fn is_request(&self) -> bool {
        todo!()
    }
    pub fn method(&self) -> Option<Method<'a>> {
        todo!()
    }
    pub fn request_uri(&self) -> Option<Uri<'a>> {
        todo!()
    }
    pub fn status(&self) -> Option<u16> {
        todo!()
    }
    pub fn reason(&self) -> Option<&'a [u8]> {
        todo!()
    }
    /// First value of the named header (compact forms match their long names).
    pub fn header(&self, name: HeaderName<'_>) -> Option<&'a [u8]> {
        todo!()
    }
    /// Every header line in order.
    pub fn headers(&self) -> HeaderIter<'_, 'a> {
        todo!()
    }
    /// Every value of the named header: repeated lines and comma-separated values
    /// (commas inside quotes or `<>` do not split), trimmed.
    pub fn header_values<'m>(
        &'m self,
        name: HeaderName<'m>,
    ) -> impl Iterator<Item = &'a [u8]> + 'm {
        std::iter::empty()
    }
    pub fn header_count(&self) -> usize {
        todo!()
    }
    pub fn from(&self) -> Option<NameAddr<'a>> {
        todo!()
    }
    pub fn to(&self) -> Option<NameAddr<'a>> {
        todo!()
    }
    /// First Contact value (`*` yields None).
    pub fn contact(&self) -> Option<NameAddr<'a>> {
        todo!()
    }
    pub fn top_via(&self) -> Option<Via<'a>> {
        todo!()
    }
    /// Number of Via values (all lines, comma lists split).
    pub fn via_count(&self) -> usize {
        todo!()
    }
    pub fn call_id(&self) -> Option<&'a [u8]> {
        todo!()
    }
    pub fn cseq(&self) -> Option<CSeq<'a>> {
        todo!()
    }
    pub fn user_agent(&self) -> Option<&'a [u8]> {
        todo!()
    }
    pub fn server(&self) -> Option<&'a [u8]> {
        todo!()
    }
    pub fn content_length(&self) -> Option<usize> {
        todo!()
    }
    pub fn content_type(&self) -> Option<&'a [u8]> {
        todo!()
    }
    /// Body after the blank line, cut to Content-Length when it is present and smaller.
    pub fn body(&self) -> &'a [u8] {
        todo!()
    }
    /// The SDP `s=` line value if the body is SDP.
    pub fn sdp_session_name(&self) -> Option<&'a [u8]> {
        todo!()
    }
    pub fn expires(&self) -> Option<u32> {
        todo!()
    }
    pub fn max_forwards(&self) -> Option<u32> {
        todo!()
    }
    pub fn authorization(&self) -> Option<Credentials<'a>> {
        todo!()
    }
    pub fn proxy_authorization(&self) -> Option<Credentials<'a>> {
        todo!()
    }
}

impl<'a> Method<'a> {
    /// Parse a method token (case-sensitive per RFC 3261, as sent).
    pub fn from_token(tok: &'a [u8]) -> Method<'a> {
        todo!()
    }
    /// Canonical upper-case text.
    pub fn as_bytes(&self) -> &'a [u8] {
        todo!()
    }
}
