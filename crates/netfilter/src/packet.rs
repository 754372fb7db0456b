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
