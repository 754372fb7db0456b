//! # sipwall-sip — a zero-copy SIP message view for a firewall
//!
//! CONTRACT (the rest of sipwall relies on it):
//! * No I/O, no clock, `#![forbid(unsafe_code)]`.
//! * No input makes any function here panic, loop without bound or allocate without bound.
//!   [`Message::parse`] allocates nothing: headers are indexed into a fixed-size inline table
//!   ([`limits::MAX_HEADERS`]) and every accessor parses its header lazily, on call, returning
//!   sub-slices of the input buffer.
//! * Lenient: accepts what real user agents and scanners send (bare LF, folded lines, compact
//!   header names, any case, odd spacing); strict only where a firewall must be (limits).
//! * A malformed message yields [`ParseError`] which still carries what could be read
//!   ([`Partial`]: method, Call-ID, User-Agent) so callers can log and decide.
//!
//! API SKETCH (implemented in the modules below):
//! ```ignore
//! let msg = Message::parse(bytes)?;              // Result<Message<'_>, ParseError<'_>>
//! msg.is_request(); msg.method(); msg.request_uri(); msg.status(); msg.reason();
//! msg.header(HeaderName::Via); msg.headers();    // raw access, compact forms folded in
//! msg.from(); msg.to(); msg.contact();           // Option<NameAddr>: display, uri, tag
//! msg.top_via();                                 // Option<Via>: transport, sent-by, branch, rport, received
//! msg.call_id(); msg.cseq(); msg.user_agent(); msg.server();
//! msg.content_length(); msg.content_type(); msg.body(); msg.sdp_session_name();
//! msg.expires(); msg.max_forwards(); msg.authorization(); msg.proxy_authorization();
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod framing;
pub mod limits;
mod message;
mod types;

pub use framing::{FrameError, Framed, StreamFramer};
pub use message::{HeaderIter, Message, ParseError, ParseErrorKind, Partial};
pub use types::{
    CSeq, Credentials, HeaderName, Host, Method, NameAddr, Transport, Uri, UriParams, Via,
};
