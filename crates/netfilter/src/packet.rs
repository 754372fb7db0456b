//! The inline path's view of a queued packet: a thin adapter over the shared packet view
//! [`sipwall_wire`] (the same code the capture reader uses), shaped for the queue thread.
//!
//! CONTRACT: never panics or reads out of bounds on any input (the wire crate's contract);
//! returns [`PacketError`] for anything that is not a complete-enough UDP/TCP packet. IPv6
//! extension headers (Hop-by-Hop, Routing, Destination Options, Fragment, AH) in front of
//! UDP/TCP are walked, so such a packet is judged like any other. What cannot be judged is
//! told apart so the caller can choose: a non-first IP fragment ([`PacketError::Fragment`]: no
//! transport header; the first fragment carries the SIP start line and is judged), a chain of
//! more than [`MAX_EXTENSION_HEADERS`] extension headers
//! ([`PacketError::TooManyExtensionHeaders`]: no SIP user agent sends one), another protocol
//! ([`PacketError::Protocol`], e.g. ESP) and malformed headers.
use std::net::{IpAddr, SocketAddr};

use sipwall_wire::{Transport, WireError};
pub use sipwall_wire::{L4, MAX_EXTENSION_HEADERS};

/// TCP header fields the stream tracker needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpInfo {
    /// Sequence number.
    pub seq: u32,
    /// SYN flag.
    pub syn: bool,
    /// FIN flag.
    pub fin: bool,
    /// RST flag.
    pub rst: bool,
}

/// A parsed packet borrowing the queued bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketView<'a> {
    /// Source address and port.
    pub src: SocketAddr,
    /// Destination address and port.
    pub dst: SocketAddr,
    /// Protocol.
    pub l4: L4,
    /// TCP fields (None for UDP).
    pub tcp: Option<TcpInfo>,
    /// L4 payload (SIP bytes), possibly cut short by the copy range or a first fragment.
    pub payload: &'a [u8],
}

/// Why a packet could not be viewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PacketError {
    /// Shorter than its headers (which header).
    #[error("packet truncated in the {0} header")]
    Truncated(&'static str),
    /// Not IPv4 or IPv6.
    #[error("IP version {0} is not 4 or 6")]
    Version(u8),
    /// Not UDP or TCP (protocol number, after any IPv6 extension headers).
    #[error("IP protocol {0} is not UDP or TCP")]
    Protocol(u8),
    /// Non-first fragment: no L4 header.
    #[error("non-first IP fragment")]
    Fragment,
    /// More IPv6 extension headers than the view walks.
    #[error("more than {} IPv6 extension headers", sipwall_wire::MAX_EXTENSION_HEADERS)]
    TooManyExtensionHeaders,
    /// A header field with an impossible value (IPv4 header or total length, TCP offset).
    #[error("malformed packet: {0}")]
    Malformed(WireError),
    /// [`rebuild_udp`] does not rewrite this packet shape (which one, and why).
    #[error("not rewritable: {0}")]
    NotRewritable(&'static str),
}

impl From<WireError> for PacketError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::Truncated(h) => PacketError::Truncated(h.name()),
            WireError::Version(v) => PacketError::Version(v),
            WireError::NotUdpOrTcp(p) => PacketError::Protocol(p),
            WireError::NonFirstFragment { .. } => PacketError::Fragment,
            WireError::TooManyExtensionHeaders => PacketError::TooManyExtensionHeaders,
            other => PacketError::Malformed(other),
        }
    }
}

/// Parse a layer-3 packet (as queued by NFQUEUE).
pub fn parse(packet: &[u8]) -> Result<PacketView<'_>, PacketError> {
    let p = sipwall_wire::parse_packet(packet)?;
    let (src, dst) = (p.ip.src, p.ip.dst);
    let tcp = match p.transport {
        Transport::Tcp(t) => {
            Some(TcpInfo { seq: t.seq, syn: t.flags.syn(), fin: t.flags.fin(), rst: t.flags.rst() })
        }
        Transport::Udp(_) => None,
    };
    Ok(PacketView {
        src: SocketAddr::new(src, p.transport.src_port()),
        dst: SocketAddr::new(dst, p.transport.dst_port()),
        l4: p.transport.l4(),
        tcp,
        payload: p.transport.payload(),
    })
}

/// Largest IP packet a rewrite may produce (the IPv4 total length and the UDP length are 16
/// bits; the IPv6 payload length too, without jumbograms).
pub const MAX_REWRITTEN_PACKET: usize = 0xffff;

/// Write into `out` the UDP packet `original` (IPv4 or IPv6, as queued) with its UDP payload
/// replaced by `payload`: the IP header is kept (addresses, TTL/hop limit, TOS/traffic class,
/// identification, flags), the ports are kept, and every length and checksum is recomputed
/// (IPv4 total length and header checksum; IPv6 payload length; UDP length and checksum over
/// the pseudo-header, `0xffff` for a computed zero, as RFC 768/8200 say). The kernel copies a
/// replacement as is and marks it `CHECKSUM_NONE`, so the receiver checks exactly these sums.
///
/// Refused, `out` left empty: anything but UDP; an IPv4 fragment (offset or more-fragments:
/// the rest of the datagram would no longer match); IPv4 options are kept, but IPv6 extension
/// headers are refused (a Routing header changes the pseudo-header's destination, and a
/// Fragment header would be wrong after the change); a result over [`MAX_REWRITTEN_PACKET`].
/// Allocation-free once `out` has grown to the largest packet written.
pub fn rebuild_udp(original: &[u8], payload: &[u8], out: &mut Vec<u8>) -> Result<(), PacketError> {
    out.clear();
    let p = sipwall_wire::parse_packet(original)?;
    if !matches!(p.transport, Transport::Udp(_)) {
        return Err(PacketError::NotRewritable("not UDP"));
    }
    let version = original.first().map_or(0, |b| b >> 4);
    let ip_len = match version {
        4 => {
            let ihl = usize::from(original[0] & 0x0f) * 4;
            let frag = u16::from_be_bytes([original[6], original[7]]);
            if frag & 0x3fff != 0 {
                return Err(PacketError::NotRewritable("IPv4 fragment"));
            }
            ihl
        }
        6 => {
            if original.get(6) != Some(&17) {
                return Err(PacketError::NotRewritable("IPv6 extension headers"));
            }
            40
        }
        v => return Err(PacketError::Version(v)),
    };
    let udp_len = 8 + payload.len();
    let total = ip_len + udp_len;
    if total > MAX_REWRITTEN_PACKET {
        return Err(PacketError::NotRewritable("replacement over 65535 bytes"));
    }
    // The view checked that the IP header and the 8-byte UDP header are all there.
    out.extend_from_slice(&original[..ip_len + 4]); // IP header, source and destination ports
    out.extend_from_slice(&(udp_len as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(payload);
    let mut sum = 0u32;
    if version == 4 {
        out[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        out[10..12].copy_from_slice(&[0, 0]);
        let header_sum = !fold(ones_sum(0, &out[..ip_len]));
        out[10..12].copy_from_slice(&header_sum.to_be_bytes());
        sum = ones_sum(sum, &out[12..20]); // source, destination
        sum += 17 + udp_len as u32;
    } else {
        out[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
        sum = ones_sum(sum, &out[8..40]);
        sum += udp_len as u32 + 17;
    }
    sum = ones_sum(sum, &out[ip_len..]);
    let udp_sum = match !fold(sum) {
        0 => 0xffff,
        s => s,
    };
    out[ip_len + 6..ip_len + 8].copy_from_slice(&udp_sum.to_be_bytes());
    Ok(())
}

/// One's-complement sum of big-endian 16-bit words (an odd last byte padded with zero),
/// added to `sum` without folding (a u32 holds 65535 words of carries: enough for 64 KiB).
fn ones_sum(mut sum: u32, bytes: &[u8]) -> u32 {
    let mut chunks = bytes.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Build an IPv4/UDP packet (checksums zero): for tests and the benchmark generator.
pub fn build_udp_v4(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let (IpAddr::V4(s), IpAddr::V4(d)) = (src.ip(), dst.ip()) else {
        return Vec::new();
    };
    let total = 20 + 8 + payload.len();
    let mut p = Vec::with_capacity(total);
    p.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0]);
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&s.octets());
    p.extend_from_slice(&d.octets());
    p.extend_from_slice(&src.port().to_be_bytes());
    p.extend_from_slice(&dst.port().to_be_bytes());
    p.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use sipwall_wire::Header;
    use std::net::Ipv6Addr;

    #[test]
    fn ipv4_udp_round_trip() {
        let src: SocketAddr = "203.0.113.9:5070".parse().unwrap();
        let dst: SocketAddr = "192.0.2.10:5060".parse().unwrap();
        let mut pkt = build_udp_v4(src, dst, b"OPTIONS sip:100@192.0.2.10 SIP/2.0\r\n");
        pkt.extend_from_slice(&[0; 6]); // link padding beyond the IP total length
        let v = parse(&pkt).unwrap();
        assert_eq!((v.src, v.dst, v.l4), (src, dst, L4::Udp));
        assert_eq!(v.payload, b"OPTIONS sip:100@192.0.2.10 SIP/2.0\r\n");
    }

    #[test]
    fn ipv6_tcp_with_extension_header() {
        let mut p = vec![0x60, 0, 0, 0, 0, 0, 0, 64];
        let src: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let dst: Ipv6Addr = "2001:db8::2".parse().unwrap();
        p.extend_from_slice(&src.octets());
        p.extend_from_slice(&dst.octets());
        // destination-options header (8 bytes) then TCP (20 bytes) then payload
        p.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]);
        let mut tcp = vec![0u8; 20];
        tcp[0..2].copy_from_slice(&5061u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&5060u16.to_be_bytes());
        tcp[4..8].copy_from_slice(&77u32.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = 0x18;
        p.extend_from_slice(&tcp);
        p.extend_from_slice(b"INVITE");
        p[6] = 60;
        let plen = (p.len() - 40) as u16;
        p[4..6].copy_from_slice(&plen.to_be_bytes());
        let v = parse(&p).unwrap();
        assert_eq!(v.l4, L4::Tcp);
        assert_eq!(v.src, SocketAddr::new(IpAddr::V6(src), 5061));
        assert_eq!(v.tcp, Some(TcpInfo { seq: 77, syn: false, fin: false, rst: false }));
        assert_eq!(v.payload, b"INVITE");
    }

    fn check_udp_sums(pkt: &[u8], payload: &[u8]) {
        use etherparse::{IpHeaders, UdpHeader};
        let (ip, rest) = IpHeaders::from_slice(pkt).expect("IP header");
        let (udp, body) = UdpHeader::from_slice(rest.payload).expect("UDP header");
        assert_eq!(body, payload);
        assert_eq!(usize::from(udp.length), 8 + payload.len());
        let want = match &ip {
            IpHeaders::Ipv4(h, _) => {
                assert_eq!(usize::from(h.total_len), pkt.len());
                assert_eq!(h.header_checksum, h.calc_header_checksum(), "IPv4 header checksum");
                udp.calc_checksum_ipv4_raw(h.source, h.destination, payload).unwrap()
            }
            IpHeaders::Ipv6(h, _) => {
                assert_eq!(usize::from(h.payload_length), pkt.len() - 40);
                udp.calc_checksum_ipv6_raw(h.source, h.destination, payload).unwrap()
            }
        };
        assert_eq!(udp.checksum, want, "UDP checksum");
    }

    #[test]
    fn rebuild_udp_grows_and_shrinks_with_valid_lengths_and_checksums() {
        let src: SocketAddr = "192.0.2.10:5060".parse().unwrap();
        let dst: SocketAddr = "203.0.113.9:5070".parse().unwrap();
        let mut orig = build_udp_v4(src, dst, b"SIP/2.0 404 Not Found\r\n\r\n");
        orig[8] = 63; // TTL kept
        orig[1] = 0xb8; // DSCP EF kept
        let mut out = Vec::new();
        for new in
            [&b"SIP/2.0 401 Unauthorized\r\nWWW-Authenticate: Digest x\r\n\r\n"[..], b"x", b""]
        {
            rebuild_udp(&orig, new, &mut out).unwrap();
            check_udp_sums(&out, new);
            assert_eq!((out[1], out[8]), (0xb8, 63));
            let v = parse(&out).unwrap();
            assert_eq!((v.src, v.dst, v.payload), (src, dst, new));
        }
        // An odd-length payload and a checksum that computes to zero must still verify.
        for n in 0..64 {
            let new = vec![b'a' + (n % 26) as u8; n as usize + 1];
            rebuild_udp(&orig, &new, &mut out).unwrap();
            check_udp_sums(&out, &new);
        }
    }

    #[test]
    fn rebuild_udp_ipv6_and_refusals() {
        let mut v6 = v6_udp_behind(17, &[], b"SIP/2.0 404 Not Found\r\n\r\n");
        v6[7] = 50;
        let mut out = Vec::new();
        let new = b"SIP/2.0 407 Proxy Authentication Required\r\n\r\n";
        rebuild_udp(&v6, new, &mut out).unwrap();
        check_udp_sums(&out, new);
        assert_eq!(out[7], 50);
        // Refused shapes leave `out` empty.
        let dst_opts: &[u8] = &[17, 0, 1, 4, 0, 0, 0, 0];
        let ext = v6_udp_behind(60, &[dst_opts], b"SIP/2.0 404 Not Found\r\n\r\n");
        assert_eq!(
            rebuild_udp(&ext, new, &mut out),
            Err(PacketError::NotRewritable("IPv6 extension headers"))
        );
        assert!(out.is_empty());
        let mut frag =
            build_udp_v4("192.0.2.1:5060".parse().unwrap(), "203.0.113.9:1".parse().unwrap(), b"x");
        frag[6] = 0x20; // more fragments
        assert_eq!(
            rebuild_udp(&frag, new, &mut out),
            Err(PacketError::NotRewritable("IPv4 fragment"))
        );
        let ok =
            build_udp_v4("192.0.2.1:5060".parse().unwrap(), "203.0.113.9:1".parse().unwrap(), b"x");
        let huge = vec![b'x'; MAX_REWRITTEN_PACKET];
        assert!(rebuild_udp(&ok, &huge, &mut out).is_err());
        for n in 0..ok.len() {
            let _ = rebuild_udp(&ok[..n], new, &mut out);
        }
    }

    #[test]
    fn hostile_inputs_are_errors_not_panics() {
        assert_eq!(parse(&[]), Err(PacketError::Truncated("IP")));
        assert_eq!(parse(&[0x45; 10]), Err(PacketError::Truncated("IPv4")));
        assert_eq!(parse(&[0x25; 30]), Err(PacketError::Version(2)));
        let mut frag =
            build_udp_v4("203.0.113.9:1".parse().unwrap(), "192.0.2.1:5060".parse().unwrap(), b"x");
        frag[7] = 5; // fragment offset 5
        assert_eq!(parse(&frag), Err(PacketError::Fragment));
        // every prefix of a valid packet is handled without panicking
        let ok = build_udp_v4(
            "203.0.113.9:1".parse().unwrap(),
            "192.0.2.1:5060".parse().unwrap(),
            b"hello",
        );
        for n in 0..ok.len() {
            let _ = parse(&ok[..n]);
        }
    }

    /// IPv6 + `exts` (each `[next, len, ...]`, chained in order) + UDP to 5060 + payload.
    fn v6_udp_behind(first: u8, exts: &[&[u8]], payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 0, first, 64];
        p.extend_from_slice(&"2001:db8:113::5".parse::<Ipv6Addr>().unwrap().octets());
        p.extend_from_slice(&"2001:db8:10::10".parse::<Ipv6Addr>().unwrap().octets());
        for e in exts {
            p.extend_from_slice(e);
        }
        p.extend_from_slice(&5070u16.to_be_bytes());
        p.extend_from_slice(&5060u16.to_be_bytes());
        p.extend_from_slice(&u16::try_from(8 + payload.len()).unwrap().to_be_bytes());
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(payload);
        let plen = u16::try_from(p.len() - 40).unwrap();
        p[4..6].copy_from_slice(&plen.to_be_bytes());
        p
    }

    #[test]
    fn ipv6_udp_behind_authentication_header_is_viewed() {
        // AH: next UDP, length 4 -> 24 octets. Before the shared view this was "unparsed" and
        // the queue accepted it uninspected.
        let mut ah = vec![17, 4, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
        ah.extend_from_slice(&[0xab; 12]);
        let p = v6_udp_behind(51, &[&ah], b"INVITE sip:100@[2001:db8:10::10] SIP/2.0\r\n");
        let v = parse(&p).unwrap();
        assert_eq!(v.l4, L4::Udp);
        assert_eq!(v.dst.port(), 5060);
        assert!(v.payload.starts_with(b"INVITE "));
    }

    #[test]
    fn overlong_extension_chain_and_fragments_are_told_apart() {
        let dst_opts: &[u8] = &[60, 0, 1, 4, 0, 0, 0, 0];
        let last: &[u8] = &[17, 0, 1, 4, 0, 0, 0, 0];
        let mut chain = vec![dst_opts; sipwall_wire::MAX_EXTENSION_HEADERS];
        chain.push(last);
        assert_eq!(
            parse(&v6_udp_behind(60, &chain, b"INVITE")),
            Err(PacketError::TooManyExtensionHeaders)
        );
        // Fragment header, offset 8: a non-first fragment.
        let frag: &[u8] = &[17, 0, 0, 8, 0, 0, 0, 1];
        assert_eq!(parse(&v6_udp_behind(44, &[frag], b"x")), Err(PacketError::Fragment));
        // ESP ends the walk: another protocol, not "malformed".
        let p = v6_udp_behind(50, &[], b"x");
        assert_eq!(parse(&p), Err(PacketError::Protocol(50)));
        assert_eq!(
            PacketError::from(WireError::Truncated(Header::Udp)),
            PacketError::Truncated("UDP")
        );
    }
}
