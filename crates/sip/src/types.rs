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

/// Long-form names, with the kind id used by the header index (0 is `Other`).
const KNOWN: [(&[u8], HeaderName<'static>); 33] = [
    (b"Via", HeaderName::Via),
    (b"From", HeaderName::From),
    (b"To", HeaderName::To),
    (b"Call-ID", HeaderName::CallId),
    (b"CSeq", HeaderName::CSeq),
    (b"Contact", HeaderName::Contact),
    (b"Content-Length", HeaderName::ContentLength),
    (b"Content-Type", HeaderName::ContentType),
    (b"Content-Encoding", HeaderName::ContentEncoding),
    (b"Subject", HeaderName::Subject),
    (b"Supported", HeaderName::Supported),
    (b"Refer-To", HeaderName::ReferTo),
    (b"Referred-By", HeaderName::ReferredBy),
    (b"Session-Expires", HeaderName::SessionExpires),
    (b"Event", HeaderName::Event),
    (b"Allow-Events", HeaderName::AllowEvents),
    (b"Accept-Contact", HeaderName::AcceptContact),
    (b"Reject-Contact", HeaderName::RejectContact),
    (b"Request-Disposition", HeaderName::RequestDisposition),
    (b"Identity", HeaderName::Identity),
    (b"Identity-Info", HeaderName::IdentityInfo),
    (b"User-Agent", HeaderName::UserAgent),
    (b"Server", HeaderName::Server),
    (b"Expires", HeaderName::Expires),
    (b"Max-Forwards", HeaderName::MaxForwards),
    (b"Authorization", HeaderName::Authorization),
    (b"Proxy-Authorization", HeaderName::ProxyAuthorization),
    (b"WWW-Authenticate", HeaderName::WwwAuthenticate),
    (b"Proxy-Authenticate", HeaderName::ProxyAuthenticate),
    (b"Route", HeaderName::Route),
    (b"Record-Route", HeaderName::RecordRoute),
    (b"Allow", HeaderName::Allow),
    (b"Require", HeaderName::Require),
];

/// Case-insensitive compare of a received name with a known one. Fast path for the exact
/// case real user agents send; a 0x20 difference only counts on letters.
#[inline]
fn eq_name(raw: &[u8], known: &[u8]) -> bool {
    raw.len() == known.len()
        && raw
            .iter()
            .zip(known)
            .all(|(&a, &k)| a == k || (a ^ k == 0x20 && k.is_ascii_alphabetic()))
}

/// The canonical spelling, compared exactly (what nearly every user agent sends): a switch on
/// the length, then constant-length compares that compile to a few word loads. Other
/// spellings go through the case-insensitive path.
#[inline]
fn canonical(raw: &[u8]) -> Option<HeaderName<'static>> {
    use HeaderName::*;
    Some(match raw.len() {
        2 if raw == b"To" => To,
        3 if raw == b"Via" => Via,
        4 if raw == b"From" => From,
        4 if raw == b"CSeq" => CSeq,
        5 if raw == b"Event" => Event,
        5 if raw == b"Route" => Route,
        5 if raw == b"Allow" => Allow,
        6 if raw == b"Server" => Server,
        7 if raw == b"Call-ID" => CallId,
        7 if raw == b"Contact" => Contact,
        7 if raw == b"Subject" => Subject,
        7 if raw == b"Expires" => Expires,
        7 if raw == b"Require" => Require,
        8 if raw == b"Refer-To" => ReferTo,
        8 if raw == b"Identity" => Identity,
        9 if raw == b"Supported" => Supported,
        10 if raw == b"User-Agent" => UserAgent,
        11 if raw == b"Referred-By" => ReferredBy,
        12 if raw == b"Content-Type" => ContentType,
        12 if raw == b"Allow-Events" => AllowEvents,
        12 if raw == b"Max-Forwards" => MaxForwards,
        12 if raw == b"Record-Route" => RecordRoute,
        13 if raw == b"Identity-Info" => IdentityInfo,
        13 if raw == b"Authorization" => Authorization,
        14 if raw == b"Content-Length" => ContentLength,
        14 if raw == b"Accept-Contact" => AcceptContact,
        14 if raw == b"Reject-Contact" => RejectContact,
        15 if raw == b"Session-Expires" => SessionExpires,
        16 if raw == b"Content-Encoding" => ContentEncoding,
        16 if raw == b"WWW-Authenticate" => WwwAuthenticate,
        18 if raw == b"Proxy-Authenticate" => ProxyAuthenticate,
        19 if raw == b"Request-Disposition" => RequestDisposition,
        19 if raw == b"Proxy-Authorization" => ProxyAuthorization,
        _ => return None,
    })
}

impl<'a> HeaderName<'a> {
    /// Classifies a raw header name: case-insensitive, compact forms (RFC 3261 §7.3.3 and
    /// later RFCs: `i f m e l c s k t v o u r b x y a j d n`) fold into their long form.
    /// Anything else is `Other(raw)`.
    pub fn from_bytes(raw: &'a [u8]) -> HeaderName<'a> {
        if let Some(name) = canonical(raw) {
            return name;
        }
        if let [c] = raw {
            return match c.to_ascii_lowercase() {
                b'v' => HeaderName::Via,
                b'f' => HeaderName::From,
                b't' => HeaderName::To,
                b'i' => HeaderName::CallId,
                b'm' => HeaderName::Contact,
                b'l' => HeaderName::ContentLength,
                b'c' => HeaderName::ContentType,
                b'e' => HeaderName::ContentEncoding,
                b's' => HeaderName::Subject,
                b'k' => HeaderName::Supported,
                b'r' => HeaderName::ReferTo,
                b'b' => HeaderName::ReferredBy,
                b'x' => HeaderName::SessionExpires,
                b'o' => HeaderName::Event,
                b'u' => HeaderName::AllowEvents,
                b'a' => HeaderName::AcceptContact,
                b'j' => HeaderName::RejectContact,
                b'd' => HeaderName::RequestDisposition,
                b'y' => HeaderName::Identity,
                b'n' => HeaderName::IdentityInfo,
                _ => HeaderName::Other(raw),
            };
        }
        // Candidates by length (indices into KNOWN), then one case-insensitive compare each.
        let candidates: &[usize] = match raw.len() {
            2 => &[2],
            3 => &[0],
            4 => &[1, 4],
            5 => &[14, 29, 31],
            6 => &[22],
            7 => &[3, 5, 9, 23, 32],
            8 => &[11, 19],
            9 => &[10],
            10 => &[21],
            11 => &[12],
            12 => &[7, 15, 24, 30],
            13 => &[20, 25],
            14 => &[6, 16, 17],
            15 => &[13],
            16 => &[8, 27],
            18 => &[28],
            19 => &[18, 26],
            _ => &[],
        };
        for &i in candidates {
            if let Some((long, name)) = KNOWN.get(i) {
                if eq_name(raw, long) {
                    return *name;
                }
            }
        }
        HeaderName::Other(raw)
    }

    /// The canonical long name (`Other` gives the raw name as sent).
    pub fn as_bytes(&self) -> &'a [u8] {
        match self {
            HeaderName::Other(raw) => raw,
            known => KNOWN
                .get(usize::from(known.id()).wrapping_sub(1))
                .map(|(long, _)| *long)
                .unwrap_or_default(),
        }
    }

    /// Index id: 1 + position in `KNOWN`, 0 for `Other` (a plain match: no search).
    pub(crate) const fn id(&self) -> u8 {
        match self {
            HeaderName::Other(_) => 0,
            HeaderName::Via => 1,
            HeaderName::From => 2,
            HeaderName::To => 3,
            HeaderName::CallId => 4,
            HeaderName::CSeq => 5,
            HeaderName::Contact => 6,
            HeaderName::ContentLength => 7,
            HeaderName::ContentType => 8,
            HeaderName::ContentEncoding => 9,
            HeaderName::Subject => 10,
            HeaderName::Supported => 11,
            HeaderName::ReferTo => 12,
            HeaderName::ReferredBy => 13,
            HeaderName::SessionExpires => 14,
            HeaderName::Event => 15,
            HeaderName::AllowEvents => 16,
            HeaderName::AcceptContact => 17,
            HeaderName::RejectContact => 18,
            HeaderName::RequestDisposition => 19,
            HeaderName::Identity => 20,
            HeaderName::IdentityInfo => 21,
            HeaderName::UserAgent => 22,
            HeaderName::Server => 23,
            HeaderName::Expires => 24,
            HeaderName::MaxForwards => 25,
            HeaderName::Authorization => 26,
            HeaderName::ProxyAuthorization => 27,
            HeaderName::WwwAuthenticate => 28,
            HeaderName::ProxyAuthenticate => 29,
            HeaderName::Route => 30,
            HeaderName::RecordRoute => 31,
            HeaderName::Allow => 32,
            HeaderName::Require => 33,
        }
    }

    /// Inverse of [`HeaderName::id`]; `raw` is used for `Other`.
    pub(crate) fn from_id(id: u8, raw: &'a [u8]) -> HeaderName<'a> {
        match id.checked_sub(1).and_then(|i| KNOWN.get(usize::from(i))) {
            Some((_, n)) => *n,
            None => HeaderName::Other(raw),
        }
    }
}

impl<'a> Transport<'a> {
    /// Classifies a Via transport token (case-insensitive).
    pub fn from_token(tok: &'a [u8]) -> Transport<'a> {
        match tok {
            b"UDP" => return Transport::Udp,
            b"TCP" => return Transport::Tcp,
            b"TLS" => return Transport::Tls,
            _ => {}
        }
        const T: [(&[u8], Transport<'static>); 6] = [
            (b"UDP", Transport::Udp),
            (b"TCP", Transport::Tcp),
            (b"TLS", Transport::Tls),
            (b"SCTP", Transport::Sctp),
            (b"WS", Transport::Ws),
            (b"WSS", Transport::Wss),
        ];
        T.iter()
            .find(|(t, _)| t.eq_ignore_ascii_case(tok))
            .map_or(Transport::Other(tok), |(_, t)| *t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_names_and_lengths_agree() {
        for (i, (long, name)) in KNOWN.iter().enumerate() {
            assert_eq!(usize::from(name.id()), i + 1, "{}", String::from_utf8_lossy(long));
            assert_eq!(HeaderName::from_id(name.id(), b""), *name);
            assert_eq!(HeaderName::from_bytes(long), *name);
            let lower = long.to_ascii_lowercase();
            assert_eq!(HeaderName::from_bytes(&lower), *name);
            assert_eq!(name.as_bytes(), *long);
        }
        assert_eq!(HeaderName::from_bytes(b"X-Foo"), HeaderName::Other(b"X-Foo"));
        assert_eq!(HeaderName::from_bytes(b""), HeaderName::Other(b""));
        assert_eq!(HeaderName::from_bytes(b"I"), HeaderName::CallId);
        assert_eq!(HeaderName::from_bytes(b"q"), HeaderName::Other(b"q"));
        // A CR differs from '-' by 0x20 but is not a case variant.
        assert_eq!(HeaderName::from_bytes(b"Call\rID"), HeaderName::Other(b"Call\rID"));
        assert_eq!(HeaderName::from_bytes(b"cALL-iD"), HeaderName::CallId);
    }
}
