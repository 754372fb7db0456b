//! Zero-copy, bounds-checked view of a queued IPv4/IPv6 packet's UDP or TCP header and payload.
//!
//! CONTRACT: never panics or reads out of bounds on any input; returns [`PacketError`] for
//! anything that is not a complete-enough UDP/TCP packet. Non-first IP fragments have no L4
//! header and are reported as [`PacketError::Fragment`] (the daemon accepts them: the first
//! fragment carries the SIP start line and is what gets judged).
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Layer-4 protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum L4 {
    /// UDP
    Udp,
    /// TCP
    Tcp,
}

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
pub enum PacketError {
    /// Shorter than its headers.
    #[error("packet truncated in the {0} header")]
    Truncated(&'static str),
    /// Not IPv4 or IPv6.
    #[error("IP version {0} is not 4 or 6")]
    Version(u8),
    /// Not UDP or TCP (protocol number).
    #[error("IP protocol {0} is not UDP or TCP")]
    Protocol(u8),
    /// Non-first fragment: no L4 header.
    #[error("non-first IP fragment")]
    Fragment,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Parse a layer-3 packet (as queued by NFQUEUE).
pub fn parse(packet: &[u8]) -> Result<PacketView<'_>, PacketError> {
    let first = *packet.first().ok_or(PacketError::Truncated("IP"))?;
    match first >> 4 {
        4 => parse_v4(packet),
        6 => parse_v6(packet),
        v => Err(PacketError::Version(v)),
    }
}

fn parse_v4(p: &[u8]) -> Result<PacketView<'_>, PacketError> {
    if p.len() < 20 {
        return Err(PacketError::Truncated("IPv4"));
    }
    let ihl = ((p[0] & 0x0f) as usize) * 4;
    if ihl < 20 || p.len() < ihl {
        return Err(PacketError::Truncated("IPv4"));
    }
    // Total length bounds the payload (Ethernet padding may follow); a copy-range cut may make
    // the buffer shorter than it, which is fine.
    let total = be16(p, 2).ok_or(PacketError::Truncated("IPv4"))? as usize;
    let end = total.clamp(ihl, p.len());
    let frag = be16(p, 6).ok_or(PacketError::Truncated("IPv4"))?;
    if frag & 0x1fff != 0 {
        return Err(PacketError::Fragment);
    }
    let src = IpAddr::V4(Ipv4Addr::new(p[12], p[13], p[14], p[15]));
    let dst = IpAddr::V4(Ipv4Addr::new(p[16], p[17], p[18], p[19]));
    parse_l4(p[9], src, dst, &p[ihl..end])
}

fn parse_v6(p: &[u8]) -> Result<PacketView<'_>, PacketError> {
    if p.len() < 40 {
        return Err(PacketError::Truncated("IPv6"));
    }
    let payload_len = be16(p, 4).ok_or(PacketError::Truncated("IPv6"))? as usize;
    let end = (40 + payload_len).min(p.len());
    let mut src = [0u8; 16];
    src.copy_from_slice(&p[8..24]);
    let mut dst = [0u8; 16];
    dst.copy_from_slice(&p[24..40]);
    let (src, dst) = (IpAddr::V6(Ipv6Addr::from(src)), IpAddr::V6(Ipv6Addr::from(dst)));
    let mut next = p[6];
    let mut off = 40usize;
    // Walk at most 8 extension headers: bounded work on hostile input.
    for _ in 0..8 {
        match next {
            // hop-by-hop, routing, destination options
            0 | 43 | 60 => {
                let nh = *p.get(off).ok_or(PacketError::Truncated("IPv6 extension"))?;
                let len =
                    (*p.get(off + 1).ok_or(PacketError::Truncated("IPv6 extension"))? as usize + 1)
                        * 8;
                next = nh;
                off += len;
            }
            44 => {
                let nh = *p.get(off).ok_or(PacketError::Truncated("IPv6 fragment"))?;
                let fo = be16(p, off + 2).ok_or(PacketError::Truncated("IPv6 fragment"))?;
                if fo & 0xfff8 != 0 {
                    return Err(PacketError::Fragment);
                }
                next = nh;
                off += 8;
            }
            _ => break,
        }
    }
    if off > end {
        return Err(PacketError::Truncated("IPv6 extension"));
    }
    parse_l4(next, src, dst, &p[off..end])
}

fn parse_l4(proto: u8, src: IpAddr, dst: IpAddr, l4: &[u8]) -> Result<PacketView<'_>, PacketError> {
    match proto {
        17 => {
            if l4.len() < 8 {
                return Err(PacketError::Truncated("UDP"));
            }
            let (sp, dp) = (be16(l4, 0).unwrap_or(0), be16(l4, 2).unwrap_or(0));
            let ulen = be16(l4, 4).unwrap_or(0) as usize;
            let end = if ulen >= 8 { ulen.min(l4.len()) } else { l4.len() };
            Ok(PacketView {
                src: SocketAddr::new(src, sp),
                dst: SocketAddr::new(dst, dp),
                l4: L4::Udp,
                tcp: None,
                payload: &l4[8..end],
            })
        }
        6 => {
            if l4.len() < 20 {
                return Err(PacketError::Truncated("TCP"));
            }
            let doff = ((l4[12] >> 4) as usize) * 4;
            if doff < 20 || l4.len() < doff {
                return Err(PacketError::Truncated("TCP"));
            }
            let flags = l4[13];
            let seq = u32::from_be_bytes([l4[4], l4[5], l4[6], l4[7]]);
            Ok(PacketView {
                src: SocketAddr::new(src, be16(l4, 0).unwrap_or(0)),
                dst: SocketAddr::new(dst, be16(l4, 2).unwrap_or(0)),
                l4: L4::Tcp,
                tcp: Some(TcpInfo {
                    seq,
                    fin: flags & 0x01 != 0,
                    syn: flags & 0x02 != 0,
                    rst: flags & 0x04 != 0,
                }),
                payload: &l4[doff..],
            })
        }
        p => Err(PacketError::Protocol(p)),
    }
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
}
