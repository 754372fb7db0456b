//! Value types returned by accessors: all borrow from the message buffer.

/// A SIP request method. `Unknown` keeps the raw token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method<'a> {
    /// INVITE
    Invite,
    /// ACK
    Ack,
    /// BYE
    Bye,
    /// CANCEL
    Cancel,
    /// OPTIONS
    Options,
    /// REGISTER
    Register,
    /// PRACK
    Prack,
    /// SUBSCRIBE
    Subscribe,
    /// NOTIFY
    Notify,
    /// PUBLISH
    Publish,
    /// INFO
    Info,
    /// REFER
    Refer,
    /// MESSAGE
    Message,
    /// UPDATE
    Update,
    /// Any other token, as sent.
    Unknown(&'a [u8]),
}

/// Known header names, compact forms folded into their long form. `Other` keeps the raw name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum HeaderName<'a> {
    Via,    // v
    From,   // f
    To,     // t
    CallId, // i
    CSeq,
    Contact,            // m
    ContentLength,      // l
    ContentType,        // c
    ContentEncoding,    // e
    Subject,            // s
    Supported,          // k
    ReferTo,            // r
    ReferredBy,         // b
    SessionExpires,     // x
    Event,              // o
    AllowEvents,        // u
    AcceptContact,      // a
    RejectContact,      // j
    RequestDisposition, // d
    Identity,           // y
    IdentityInfo,       // n
    UserAgent,
    Server,
    Expires,
    MaxForwards,
    Authorization,
    ProxyAuthorization,
    WwwAuthenticate,
    ProxyAuthenticate,
    Route,
    RecordRoute,
    Allow,
    Require,
    Other(&'a [u8]),
}

/// Transport named in a Via header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Transport<'a> {
    Udp,
    Tcp,
    Tls,
    Sctp,
    Ws,
    Wss,
    Other(&'a [u8]),
}

/// Host part of a URI or Via sent-by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Host<'a> {
    /// An IPv4 or IPv6 literal (IPv6 given in brackets on the wire).
    Ip(std::net::IpAddr),
    /// A name (not validated beyond being a token), raw bytes.
    Name(&'a [u8]),
}

/// URI parameters (`;k=v;flag`), iterated lazily.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UriParams<'a> {
    /// Raw parameter text after the first `;`, excluding it; may be empty.
    pub raw: &'a [u8],
}

/// A SIP/SIPS/TEL (or other scheme) URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uri<'a> {
    /// Scheme as sent (`sip`, `sips`, `tel`, ...), without the colon.
    pub scheme: &'a [u8],
    /// User part before `@`, if any (still percent-encoded).
    pub user: Option<&'a [u8]>,
    /// Password after `user:` if any.
    pub password: Option<&'a [u8]>,
    /// Host, `None` when unparseable/absent (e.g. `tel:` URIs).
    pub host: Option<Host<'a>>,
    /// Port, if given and valid.
    pub port: Option<u16>,
    /// URI parameters.
    pub params: UriParams<'a>,
    /// Entire raw URI text.
    pub raw: &'a [u8],
}

/// A name-addr or addr-spec header value (From, To, Contact).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// Display name without surrounding quotes, if any.
    pub display_name: Option<&'a [u8]>,
    /// The URI.
    pub uri: Uri<'a>,
    /// The `tag` header parameter, if any.
    pub tag: Option<&'a [u8]>,
    /// Raw header parameters after the URI (after `>` or after the addr-spec), may be empty.
    pub params: &'a [u8],
}

/// The top-most Via value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Via<'a> {
    /// Protocol name and version, e.g. `SIP/2.0`.
    pub protocol: &'a [u8],
    /// Transport.
    pub transport: Transport<'a>,
    /// sent-by host.
    pub host: Host<'a>,
    /// sent-by port.
    pub port: Option<u16>,
    /// `branch` parameter.
    pub branch: Option<&'a [u8]>,
    /// `rport` present (with or without value).
    pub rport: bool,
    /// `rport=N` value if any.
    pub rport_value: Option<u16>,
    /// `received` parameter.
    pub received: Option<&'a [u8]>,
}

/// CSeq header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CSeq<'a> {
    /// Sequence number.
    pub number: u32,
    /// Method.
    pub method: Method<'a>,
}

/// Digest credentials from Authorization / Proxy-Authorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credentials<'a> {
    /// Scheme, e.g. `Digest`.
    pub scheme: &'a [u8],
    /// `username` parameter without quotes.
    pub username: Option<&'a [u8]>,
    /// `realm` parameter without quotes.
    pub realm: Option<&'a [u8]>,
    /// `uri` parameter without quotes.
    pub uri: Option<&'a [u8]>,
}
