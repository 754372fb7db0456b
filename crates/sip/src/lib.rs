//! # sipwall-sip — a zero-copy SIP message view for a firewall
//!
//! Reads whatever SIP scanners and real user agents send, fast, and never panics.
//!
//! ## Contract (the rest of sipwall relies on it)
//! * No I/O, no clock, `#![forbid(unsafe_code)]`.
//! * No input makes any function here panic, loop without bound or allocate without bound.
//!   [`Message::parse`] allocates nothing: headers are indexed into a fixed-size inline table
//!   ([`limits::MAX_HEADERS`]) and every accessor parses its header lazily, on call, returning
//!   sub-slices of the input buffer. Indexing is done with `get`, never `[]`; the crate is
//!   fuzzed (`fuzz/`) and property-tested (`tests/props.rs`) for this.
//! * Lenient: accepts what real user agents and scanners send (bare LF, folded lines, compact
//!   header names, any case, odd spacing); strict only where a firewall must be (limits, start
//!   line). The outcome for each RFC 4475 torture message is documented in
//!   `tests/fixtures/rfc4475/README.md`.
//! * A malformed message yields [`ParseError`] which still carries what could be read
//!   ([`Partial`]: method, Call-ID, User-Agent) so callers can log and decide.
//! * [`StreamFramer`] splits TCP byte streams by Content-Length with a bounded buffer
//!   ([`limits::MAX_STREAM_BUFFER`]); see [`framing`] for the missing-Content-Length rule.
//!
//! ## Use
//! ```
//! use sipwall_sip::{HeaderName, Host, Message, Method, Transport};
//!
//! let raw = b"OPTIONS sip:100@192.0.2.1 SIP/2.0\r\n\
//!     Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-1234;rport\r\n\
//!     f: \"sipvicious\"<sip:100@1.1.1.1>;tag=6434\r\n\
//!     t: \"sipvicious\"<sip:100@1.1.1.1>\r\n\
//!     i: 1234567890\r\n\
//!     CSeq: 1 OPTIONS\r\n\
//!     l: 0\r\n\r\n";
//! let msg = Message::parse(raw).unwrap();
//! assert_eq!(msg.method(), Some(Method::Options));
//! let uri = msg.request_uri().unwrap();
//! assert_eq!(uri.user, Some(&b"100"[..]));
//! assert_eq!(uri.host, Some(Host::Ip("192.0.2.1".parse().unwrap())));
//! assert_eq!(msg.from().unwrap().display_name, Some(&b"sipvicious"[..]));
//! assert_eq!(msg.top_via().unwrap().transport, Transport::Udp);
//! assert_eq!(msg.call_id(), Some(&b"1234567890"[..]));
//! assert_eq!(msg.header(HeaderName::ContentLength), Some(&b"0"[..]));
//! assert_eq!(msg.user_agent(), None); // compact-mode svmap sends none
//! ```
//!
//! Accessors: `is_request, method, request_uri, status, reason, header, headers,
//! header_values, from, to, contact, top_via, via_count, call_id, cseq, user_agent, server,
//! content_length, content_type, body, sdp_session_name, expires, max_forwards,
//! authorization, proxy_authorization`. Value types ([`Uri`], [`NameAddr`], [`Via`], [`CSeq`],
//! [`Credentials`], [`Host`]) also have standalone `parse` functions.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod bytes;
#[doc(hidden)]
pub mod exercise;
pub mod framing;
pub mod limits;
mod message;
mod types;
mod values;

pub use framing::{frame_len, FrameError, Framed, StreamFramer};
pub use message::{HeaderIter, Message, ParseError, ParseErrorKind, Partial};
pub use types::{
    CSeq, Credentials, HeaderName, Host, Method, NameAddr, Transport, Uri, UriParams, Via,
};
