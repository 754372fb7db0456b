//! Lazy parsers for header values: URIs, name-addr, Via, CSeq, credentials.
//!
//! Each takes a value slice (possibly folded: CR/LF inside are treated as whitespace) and
//! returns views into it. None of them allocates or panics; each runs in linear time.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::bytes::{
    find, find_any3, find_param, is_lws, is_token, parse_u16, parse_u32, skip_quoted, split_once,
    trim, trim_start, unquote, ListIter, Params,
};
use crate::types::{CSeq, Credentials, Host, Method, NameAddr, Transport, Uri, UriParams, Via};

fn parse_ip<T: std::str::FromStr>(s: &[u8]) -> Option<T> {
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// A dotted quad at the start of `s`; returns it and the index just after its last digit
/// (callers check what follows). Each octet is 1-3 digits without a leading zero and at most
/// 255, as `std` accepts.
#[inline]
fn ipv4_prefix(s: &[u8]) -> Option<(Ipv4Addr, usize)> {
    let digit = |i: usize| s.get(i).map(|b| b.wrapping_sub(b'0')).filter(|d| *d <= 9);
    let mut octets = [0u8; 4];
    let mut i = 0;
    for (k, o) in octets.iter_mut().enumerate() {
        if k > 0 {
            if s.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
        let d0 = digit(i)?;
        i += 1;
        let mut v = u32::from(d0);
        // A leading zero stands alone: "0" but never "01" (the byte after it then fails the
        // caller's check, or the dot check above).
        if d0 != 0 {
            if let Some(d1) = digit(i) {
                v = v * 10 + u32::from(d1);
                i += 1;
                if let Some(d2) = digit(i) {
                    v = v * 10 + u32::from(d2);
                    i += 1;
                }
            }
        }
        *o = u8::try_from(v).ok()?;
    }
    Some((Ipv4Addr::from(octets), i))
}

/// Dotted-quad IPv4 without going through `str` (hot: every Via and most URIs).
fn parse_ipv4(s: &[u8]) -> Option<Ipv4Addr> {
    match ipv4_prefix(s)? {
        (ip, end) if end == s.len() => Some(ip),
        _ => None,
    }
}

impl<'a> Host<'a> {
    /// Classifies a host: IPv4 literal, IPv6 literal (with or without brackets), or a name.
    /// None when empty.
    pub fn parse(s: &'a [u8]) -> Option<Host<'a>> {
        let s = trim(s);
        match s {
            [] => None,
            [b'[', inner @ .., b']'] => Some(match parse_ip::<Ipv6Addr>(inner) {
                Some(ip) => Host::Ip(IpAddr::V6(ip)),
                None => Host::Name(s),
            }),
            [first, ..] if first.is_ascii_digit() => Some(match parse_ipv4(s) {
                Some(ip) => Host::Ip(IpAddr::V4(ip)),
                None => match parse_ip::<Ipv6Addr>(s) {
                    Some(ip) => Host::Ip(IpAddr::V6(ip)),
                    None => Host::Name(s),
                },
            }),
            _ if find(b':', s).is_some() => Some(match parse_ip::<Ipv6Addr>(s) {
                Some(ip) => Host::Ip(IpAddr::V6(ip)),
                None => Host::Name(s),
            }),
            _ => Some(Host::Name(s)),
        }
    }

    /// The IP address, if the host is a literal.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::Ip(ip) => Some(*ip),
            Host::Name(_) => None,
        }
    }
}

/// Splits `host[:port]` (IPv6 in brackets). A bare IPv6 literal without brackets (invalid,
/// but sent) is taken whole as the host with no port.
pub(crate) fn parse_hostport(s: &[u8]) -> (Option<Host<'_>>, Option<u16>) {
    let s = trim(s);
    match s.first() {
        Some(b'[') => {
            return match find(b']', s) {
                Some(close) => {
                    let (h, rest) = s.split_at(close + 1);
                    let port = match rest {
                        [b':', p @ ..] => parse_u16(trim(p)),
                        _ => None,
                    };
                    (Host::parse(h), port)
                }
                None => (Host::parse(s), None),
            };
        }
        Some(d) if d.is_ascii_digit() => {
            // Fast path, one pass: `a.b.c.d` or `a.b.c.d:digits`. Anything else takes the
            // general path below, which gives the same answer for these two shapes.
            if let Some((ip, end)) = ipv4_prefix(s) {
                match s.get(end..).unwrap_or_default() {
                    [] => return (Some(Host::Ip(IpAddr::V4(ip))), None),
                    [b':', p @ ..] => {
                        if let Some(port) = parse_u16(p) {
                            return (Some(Host::Ip(IpAddr::V4(ip))), Some(port));
                        }
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
    match find(b':', s) {
        None => (host_no_colon(s), None),
        Some(c) => {
            let (h, p) = s.split_at(c);
            let p = p.get(1..).unwrap_or_default();
            if find(b':', p).is_none() {
                (host_no_colon(trim(h)), parse_u16(trim(p)))
            } else {
                // More than one colon: an unbracketed IPv6 literal.
                (Host::parse(s), None)
            }
        }
    }
}

/// [`Host::parse`] for a trimmed host known to hold no colon (the common case).
#[inline]
fn host_no_colon(s: &[u8]) -> Option<Host<'_>> {
    match s.first()? {
        d if d.is_ascii_digit() => Some(match parse_ipv4(s) {
            Some(ip) => Host::Ip(IpAddr::V4(ip)),
            None => Host::Name(s),
        }),
        _ => Some(Host::Name(s)),
    }
}

impl<'a> UriParams<'a> {
    /// Looks a parameter up by name (case-insensitive): `Some(None)` for a flag such as `lr`,
    /// `Some(Some(value))` otherwise.
    pub fn get(&self, name: &[u8]) -> Option<Option<&'a [u8]>> {
        find_param(self.raw, name)
    }

    /// Every parameter as `(name, value)`, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)> + 'a {
        Params::new(self.raw)
    }
}

#[inline]
fn is_scheme_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')
}

/// `sip` or `sips`, any case.
#[inline]
fn is_sip_scheme(s: &[u8]) -> bool {
    match s {
        [a, b, c] | [a, b, c, b's' | b'S'] => {
            (a | 0x20) == b's' && (b | 0x20) == b'i' && (c | 0x20) == b'p'
        }
        _ => false,
    }
}

impl<'a> Uri<'a> {
    /// Parses a URI. `sip:`/`sips:` (any case) get user, password, host, port and
    /// parameters; `tel:` gets the number as `user` and its parameters; other schemes only
    /// `scheme` and `raw`. None if there is no valid `scheme:`.
    pub fn parse(raw: &'a [u8]) -> Option<Uri<'a>> {
        let raw = trim(raw);
        let (scheme, rest) = if raw.starts_with(b"sip:") {
            // The usual spelling: no scheme scan.
            raw.split_at(3)
        } else {
            // The scheme runs up to the first byte that is not a scheme character; that byte
            // must be the colon (so it is the first colon).
            if !raw.first()?.is_ascii_alphabetic() {
                return None;
            }
            let n = raw.iter().position(|b| !is_scheme_char(*b))?;
            if raw.get(n) != Some(&b':') {
                return None;
            }
            raw.split_at(n)
        };
        let rest = rest.get(1..)?;
        let mut uri = Uri {
            scheme,
            user: None,
            password: None,
            host: None,
            port: None,
            params: UriParams { raw: b"" },
            raw,
        };
        if is_sip_scheme(scheme) {
            // The user part may contain `;` and `?` (RFC 4475 3.1.1.2, 3.1.1.9) but never an
            // unescaped `@`, so the first `@` ends it.
            let hostpart = match split_once(rest, b'@') {
                Some((userinfo, hostpart)) => {
                    match split_once(userinfo, b':') {
                        Some((u, p)) => {
                            uri.user = Some(u);
                            uri.password = Some(p);
                        }
                        None => uri.user = Some(userinfo),
                    }
                    hostpart
                }
                None => rest,
            };
            // hostport ends at the first `;` (parameters follow, up to any `?`) or `?` (URI
            // headers, not exposed).
            let stop = find_any3(hostpart, b';', b'?', b';');
            let hostport = match stop {
                Some(i) => {
                    if hostpart.get(i) == Some(&b';') {
                        let params = hostpart.get(i + 1..).unwrap_or_default();
                        let params = match find(b'?', params) {
                            Some(q) => params.get(..q).unwrap_or_default(),
                            None => params,
                        };
                        uri.params = UriParams { raw: params };
                    }
                    hostpart.get(..i).unwrap_or_default()
                }
                None => hostpart,
            };
            let (host, port) = parse_hostport(hostport);
            uri.host = host;
            uri.port = port;
        } else if scheme.eq_ignore_ascii_case(b"tel") {
            match split_once(rest, b';') {
                Some((num, params)) => {
                    uri.user = Some(trim(num));
                    uri.params = UriParams { raw: params };
                }
                None => uri.user = Some(trim(rest)),
            }
        }
        Some(uri)
    }
}

impl<'a> NameAddr<'a> {
    /// Parses a `name-addr` (`"Display" <uri>;params`, `Display <uri>`) or an `addr-spec`
    /// (`uri;params`: there the parameters belong to the header, RFC 3261 §20.10). The
    /// display name keeps its backslash escapes. None if no URI can be read.
    pub fn parse(v: &'a [u8]) -> Option<NameAddr<'a>> {
        let v = trim(v);
        let (display, after_display) = if v.first() == Some(&b'"') {
            let body = v.get(1..)?;
            let close = find_closing_quote(body)?;
            (Some(body.get(..close)?), trim_start(body.get(close + 1..)?))
        } else {
            (None, v)
        };
        let lt = find_unquoted_lt(after_display);
        let (display, uri, params) = match lt {
            Some(lt) => {
                let inner = after_display.get(lt + 1..)?;
                let gt = find(b'>', inner)?;
                let display = display.or_else(|| {
                    let d = trim(after_display.get(..lt).unwrap_or_default());
                    (!d.is_empty()).then_some(d)
                });
                let params = trim_start(inner.get(gt + 1..).unwrap_or_default());
                let params = params.strip_prefix(b";").unwrap_or(params);
                (display, inner.get(..gt)?, params)
            }
            // A quoted display name must be followed by `<`.
            None if display.is_some() => return None,
            None => match find(b';', after_display) {
                Some(semi) => (
                    None,
                    after_display.get(..semi)?,
                    after_display.get(semi + 1..).unwrap_or_default(),
                ),
                None => (None, after_display, &b""[..]),
            },
        };
        let uri = Uri::parse(uri)?;
        let tag = tag_param(params);
        Some(NameAddr { display_name: display, uri, tag, params })
    }

    /// A header parameter by name (case-insensitive), see [`UriParams::get`].
    pub fn param(&self, name: &[u8]) -> Option<Option<&'a [u8]>> {
        find_param(self.params, name)
    }
}

/// `find_param(params, b"tag").flatten()`, with a fast path for the usual shape: the first
/// parameter is `tag=` with a plain value (no quote or `<` before the next `;`).
#[inline]
fn tag_param(params: &[u8]) -> Option<&[u8]> {
    if params.is_empty() {
        return None;
    }
    if let Some(rest) = params.strip_prefix(b"tag=") {
        match find_any3(rest, b';', b'"', b'<') {
            None => return Some(trim(rest)),
            Some(i) if rest.get(i) == Some(&b';') => {
                return Some(trim(rest.get(..i).unwrap_or_default()));
            }
            Some(_) => {}
        }
    }
    find_param(params, b"tag").flatten()
}

/// Position of the closing `"` in `s` (which starts just after the opening one).
fn find_closing_quote(s: &[u8]) -> Option<usize> {
    // A backslash escapes the next byte, whatever it is.
    Some(skip_quoted(s, 0)? - 1)
}

fn find_unquoted_lt(s: &[u8]) -> Option<usize> {
    // `<` cannot appear in an unquoted display name or addr-spec, but may in quotes.
    let first = find(b'<', s)?;
    if find(b'"', s.get(..first)?).is_none() {
        return Some(first);
    }
    let mut in_quote = false;
    let mut escaped = false;
    for (i, &b) in s.iter().enumerate() {
        if in_quote {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_quote = false;
            }
        } else if b == b'"' {
            in_quote = true;
        } else if b == b'<' {
            return Some(i);
        }
    }
    None
}

/// Reads a token starting at `*i` after skipping LWS; advances `*i` past it.
fn next_token<'a>(s: &'a [u8], i: &mut usize) -> Option<&'a [u8]> {
    skip_lws(s, i);
    let start = *i;
    while s.get(*i).is_some_and(|b| is_token(*b)) {
        *i += 1;
    }
    let tok = s.get(start..*i)?;
    (!tok.is_empty()).then_some(tok)
}

fn skip_lws(s: &[u8], i: &mut usize) {
    while s.get(*i).is_some_and(|b| is_lws(*b)) {
        *i += 1;
    }
}

fn expect(s: &[u8], i: &mut usize, c: u8) -> Option<()> {
    skip_lws(s, i);
    (s.get(*i) == Some(&c)).then(|| *i += 1)
}

impl<'a> Via<'a> {
    /// Parses one Via value: `SIP / 2.0 / UDP host[:port] ;params` (LWS allowed around the
    /// slashes, RFC 4475 3.1.1.1). None when the protocol, transport or host is missing.
    pub fn parse(v: &'a [u8]) -> Option<Via<'a>> {
        let v = trim(v);
        let mut i = 0;
        next_token(v, &mut i)?;
        expect(v, &mut i, b'/')?;
        next_token(v, &mut i)?;
        let protocol = v.get(..i)?;
        expect(v, &mut i, b'/')?;
        let transport = Transport::from_token(next_token(v, &mut i)?);
        let rest = v.get(i..)?;
        let (sent_by, params) = match find(b';', rest) {
            Some(semi) => (rest.get(..semi)?, rest.get(semi + 1..).unwrap_or_default()),
            None => (rest, &b""[..]),
        };
        let sent_by = trim(sent_by);
        // sent-by needs separating whitespace from the transport.
        if sent_by.is_empty() || !rest.first().is_some_and(|b| is_lws(*b)) {
            return None;
        }
        let (host, port) = parse_hostport(sent_by);
        let mut via = Via {
            protocol,
            transport,
            host: host?,
            port,
            branch: None,
            rport: false,
            rport_value: None,
            received: None,
        };
        // One pass over the parameters; the first occurrence of each wins.
        for (k, v) in Params::new(params) {
            if k.eq_ignore_ascii_case(b"branch") {
                via.branch = via.branch.or(v);
            } else if k.eq_ignore_ascii_case(b"rport") {
                if !via.rport {
                    via.rport = true;
                    via.rport_value = v.and_then(parse_u16);
                }
            } else if k.eq_ignore_ascii_case(b"received") {
                via.received = via.received.or(v);
            }
        }
        Some(via)
    }
}

impl<'a> CSeq<'a> {
    /// Parses `number LWS method`. Leading zeros are fine; a number over 2^32-1 is invalid.
    pub fn parse(v: &'a [u8]) -> Option<CSeq<'a>> {
        let v = trim(v);
        let digits = v.iter().take_while(|b| b.is_ascii_digit()).count();
        let number = parse_u32(v.get(..digits)?)?;
        let rest = v.get(digits..)?;
        if !rest.first().is_some_and(|b| is_lws(*b)) {
            return None;
        }
        let mut i = 0;
        let method = next_token(rest, &mut i)?;
        if !trim(rest.get(i..)?).is_empty() {
            return None;
        }
        Some(CSeq { number, method: Method::from_token(method) })
    }
}

impl<'a> Credentials<'a> {
    /// Parses `Scheme k=v, k="v", ...`. Parameter names are case-insensitive; values are
    /// unquoted (escapes kept).
    pub fn parse(v: &'a [u8]) -> Option<Credentials<'a>> {
        let v = trim(v);
        let mut i = 0;
        let scheme = next_token(v, &mut i)?;
        let params = v.get(i..)?;
        let mut c = Credentials { scheme, username: None, realm: None, uri: None };
        for p in ListIter::new(params, b',') {
            let Some((k, val)) = split_once(p, b'=') else {
                continue;
            };
            let (k, val) = (trim(k), unquote(trim(val)));
            if k.eq_ignore_ascii_case(b"username") {
                c.username.get_or_insert(val);
            } else if k.eq_ignore_ascii_case(b"realm") {
                c.realm.get_or_insert(val);
            } else if k.eq_ignore_ascii_case(b"uri") {
                c.uri.get_or_insert(val);
            }
        }
        Some(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_forms() {
        let u =
            Uri::parse(b"sip:alice:secret@[2001:db8::1]:5070;transport=tcp;lr?subject=x").unwrap();
        assert_eq!(u.scheme, b"sip");
        assert_eq!(u.user, Some(&b"alice"[..]));
        assert_eq!(u.password, Some(&b"secret"[..]));
        assert_eq!(u.host, Some(Host::Ip("2001:db8::1".parse().unwrap())));
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.params.get(b"transport"), Some(Some(&b"tcp"[..])));
        assert_eq!(u.params.get(b"lr"), Some(None));

        for bad in [&b"1.2.3"[..], b"1.2.3.4.5", b"256.1.1.1", b"01.2.3.4", b"1..2.3", b"1.2.3.4 "]
        {
            assert_eq!(parse_ipv4(bad), None, "{bad:?}");
        }
        assert_eq!(parse_ipv4(b"0.10.255.9"), Some(Ipv4Addr::new(0, 10, 255, 9)));
        let u = Uri::parse(b"SIP:192.0.2.7").unwrap();
        assert_eq!(u.user, None);
        assert_eq!(u.host, Some(Host::Ip("192.0.2.7".parse().unwrap())));
        assert_eq!(u.port, None);

        let u = Uri::parse(b"sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(u.user, Some(&b"user;par=u%40example.net"[..]));
        assert_eq!(u.host, Some(Host::Name(b"example.com")));

        let u = Uri::parse(b"tel:+358-555-1234567;postd=pp22").unwrap();
        assert_eq!(u.user, Some(&b"+358-555-1234567"[..]));
        assert_eq!(u.host, None);

        let u = Uri::parse(b"sip:host:99999").unwrap();
        assert_eq!(u.port, None);
        assert!(Uri::parse(b"nocolon").is_none());
        assert!(Uri::parse(b":x").is_none());
    }

    #[test]
    fn name_addr_forms() {
        let n = NameAddr::parse(br#" "sip\"vicious" <sip:100@1.1.1.1>;tag=6162"#).unwrap();
        assert_eq!(n.display_name, Some(&br#"sip\"vicious"#[..]));
        assert_eq!(n.uri.user, Some(&b"100"[..]));
        assert_eq!(n.tag, Some(&b"6162"[..]));

        let n = NameAddr::parse(b"Bob <sip:bob@b.example>").unwrap();
        assert_eq!(n.display_name, Some(&b"Bob"[..]));
        assert_eq!(n.tag, None);

        let n = NameAddr::parse(b"sip:caller@example.org;tag=33242").unwrap();
        assert_eq!(n.display_name, None);
        assert_eq!(n.uri.params.raw, b"");
        assert_eq!(n.tag, Some(&b"33242"[..]));

        assert!(NameAddr::parse(br#""unterminated <sip:a@b>"#).is_none());
        assert!(NameAddr::parse(b"<sip:a@b").is_none());
    }

    #[test]
    fn via_forms() {
        let v =
            Via::parse(b"SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;rport;branch=390skdjuw").unwrap();
        assert_eq!(v.transport, Transport::Udp);
        assert_eq!(v.host, Host::Ip("192.0.2.2".parse().unwrap()));
        assert!(v.rport);
        assert_eq!(v.rport_value, None);
        assert_eq!(v.branch, Some(&b"390skdjuw"[..]));

        let v =
            Via::parse(b"SIP/2.0/TCP [2001:db8::9]:5061;received=203.0.113.9;rport=5070").unwrap();
        assert_eq!(v.protocol, b"SIP/2.0");
        assert_eq!(v.port, Some(5061));
        assert_eq!(v.rport_value, Some(5070));
        assert_eq!(v.received, Some(&b"203.0.113.9"[..]));
        assert!(Via::parse(b"SIP/2.0/UDP").is_none());
        assert!(Via::parse(b"SIP/2.0 UDP host").is_none());
    }

    #[test]
    fn cseq_and_credentials() {
        let c = CSeq::parse(b"0009\r\n  INVITE").unwrap();
        assert_eq!(c.number, 9);
        assert_eq!(c.method, Method::Invite);
        assert!(CSeq::parse(b"36893488147419103232 INVITE").is_none());
        assert!(CSeq::parse(b"1").is_none());
        assert!(CSeq::parse(b"1INVITE").is_none());

        let c = Credentials::parse(
            br#"Digest username="100", realm="asterisk", nonce="a,b", uri="sip:1.2.3.4""#,
        )
        .unwrap();
        assert_eq!(c.scheme, b"Digest");
        assert_eq!(c.username, Some(&b"100"[..]));
        assert_eq!(c.realm, Some(&b"asterisk"[..]));
        assert_eq!(c.uri, Some(&b"sip:1.2.3.4"[..]));
    }
}
