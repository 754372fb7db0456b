//! # sipwall-wire — one view of IPv4/IPv6 and UDP/TCP headers
//!
//! The single place where sipwall reads network headers: the capture reader (pcap files) and
//! the inline path (NFQUEUE) both call it, so a packet shape that one of them can see through
//! the other can too. Pure: no I/O, no clock, no allocation.
//!
//! Layers, each a small zero-copy view borrowing the caller's bytes:
//! * [`parse_ip`] (or [`parse_ipv4`] / [`parse_ipv6`]) reads the IP header into an
//!   [`IpPacket`]: addresses, the upper-layer protocol and the offset where its header starts,
//!   fragment information ([`Frag`]) and the upper-layer bytes, trimmed to the length the IP
//!   header states (link padding cut; a capture or copy range shorter than that keeps what is
//!   there).
//! * IPv6 extension headers are walked: Hop-by-Hop Options, Routing and Destination Options
//!   (`(length + 1) * 8` octets), Fragment (8 octets; its offset, M flag and identification
//!   become the packet's [`Frag`]) and Authentication Header (`(length + 2) * 4` octets). At
//!   most [`MAX_EXTENSION_HEADERS`] are walked; one more is [`WireError::TooManyExtensionHeaders`].
//!   ESP, No Next Header and any other protocol end the walk: that number is the packet's
//!   [`IpPacket::protocol`], which is then not UDP or TCP.
//! * [`parse_udp`] and [`parse_tcp`] read the transport header ([`UdpDatagram`],
//!   [`TcpSegment`]) and give its payload.
//! * [`parse_packet`] does both for one packet that is not a non-first fragment.
//!
//! CONTRACT (checked by the unit tests, a property test over arbitrary bytes, a fuzz target
//! and its replayed corpus):
//! * Never panics and never reads out of bounds, on any input: every read goes through
//!   `slice::get`, every length taken from a header is checked against the bytes present
//!   before it is used, offsets are added in `usize` from values of at most 16 bits.
//! * Bounded work: one pass over at most [`MAX_EXTENSION_HEADERS`] extension headers.
//! * No allocation, no `unsafe` (`#![forbid(unsafe_code)]`).
//! * Checksums are not verified (the kernel has done it on the inline path; a capture keeps
//!   what was on the wire, and a firewall must judge a packet whatever its checksum says).
//! * Anything that is not a complete-enough packet is a [`WireError`] naming what was wrong.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Most IPv6 extension headers walked in front of the upper layer. Real traffic carries one
/// or two; the bound keeps the work per packet constant on hostile input.
pub const MAX_EXTENSION_HEADERS: usize = 8;

/// IP protocol / IPv6 next-header numbers this crate knows.
pub mod protocol {
    /// IPv6 Hop-by-Hop Options.
    pub const HOP_BY_HOP: u8 = 0;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// IPv6 Routing header.
    pub const ROUTING: u8 = 43;
    /// IPv6 Fragment header.
    pub const FRAGMENT: u8 = 44;
    /// Encapsulating Security Payload (opaque: ends the walk).
    pub const ESP: u8 = 50;
    /// Authentication Header.
    pub const AH: u8 = 51;
    /// IPv6 No Next Header.
    pub const NO_NEXT_HEADER: u8 = 59;
    /// IPv6 Destination Options.
    pub const DESTINATION_OPTIONS: u8 = 60;
}

/// Transport protocol carrying SIP.
///
/// Deliberately exhaustive: code that handles one protocol must handle all, so a new one
/// should be a compile error at every `match`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum L4 {
    /// UDP
    Udp,
    /// TCP
    Tcp,
}

impl L4 {
    /// The transport for an IP protocol number, if it is UDP or TCP.
    pub fn from_protocol(p: u8) -> Option<L4> {
        match p {
            protocol::UDP => Some(L4::Udp),
            protocol::TCP => Some(L4::Tcp),
            _ => None,
        }
    }

    /// The IP protocol number.
    pub fn protocol(self) -> u8 {
        match self {
            L4::Udp => protocol::UDP,
            L4::Tcp => protocol::TCP,
        }
    }
}

/// A header the view reads (named in errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Header {
    /// The first byte, before the version is known.
    Ip,
    /// IPv4 header (with options).
    Ipv4,
    /// IPv6 fixed header.
    Ipv6,
    /// An IPv6 extension header other than Fragment (the next-header number that named it).
    Ipv6Extension(u8),
    /// IPv6 Fragment header.
    Ipv6Fragment,
    /// UDP header.
    Udp,
    /// TCP header (with options).
    Tcp,
}

impl Header {
    /// Short name, as used in log lines and counters.
    pub fn name(self) -> &'static str {
        match self {
            Header::Ip => "IP",
            Header::Ipv4 => "IPv4",
            Header::Ipv6 => "IPv6",
            Header::Ipv6Extension(_) => "IPv6 extension",
            Header::Ipv6Fragment => "IPv6 fragment",
            Header::Udp => "UDP",
            Header::Tcp => "TCP",
        }
    }
}

impl fmt::Display for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Header::Ipv6Extension(n) => write!(f, "IPv6 extension (next header {n})"),
            h => f.write_str(h.name()),
        }
    }
}

/// Why bytes are not a packet this view can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The bytes end inside a header.
    #[error("packet truncated in the {0} header")]
    Truncated(Header),
    /// The version nibble is neither 4 nor 6.
    #[error("IP version {0} is not 4 or 6")]
    Version(u8),
    /// IPv4 header length (IHL * 4) under the 20-byte minimum.
    #[error("IPv4 header length {0} is under 20 bytes")]
    Ipv4HeaderLength(usize),
    /// IPv4 total length shorter than the header it contains.
    #[error("IPv4 total length {total} is shorter than its header ({header} bytes)")]
    Ipv4TotalLength {
        /// Total length field.
        total: usize,
        /// Header length (IHL * 4).
        header: usize,
    },
    /// More IPv6 extension headers than [`MAX_EXTENSION_HEADERS`].
    #[error("more than {MAX_EXTENSION_HEADERS} IPv6 extension headers")]
    TooManyExtensionHeaders,
    /// TCP data offset under the 20-byte minimum.
    #[error("TCP data offset {0} is under 20 bytes")]
    TcpDataOffset(usize),
    /// A fragment other than the first: it has no transport header.
    #[error("non-first IP fragment (offset {offset})")]
    NonFirstFragment {
        /// Byte offset of the fragment in the datagram.
        offset: usize,
    },
    /// The upper-layer protocol is not UDP or TCP (ESP, No Next Header, ICMP, ...).
    #[error("IP protocol {0} is not UDP or TCP")]
    NotUdpOrTcp(u8),
}

/// Fragment information of one IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frag {
    /// IPv4 identification (16 bits) or IPv6 fragment identification (32 bits).
    pub id: u32,
    /// Byte offset of this fragment's data in the original upper-layer payload.
    pub offset: usize,
    /// More fragments follow.
    pub more: bool,
}

/// One IP packet's header, read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpPacket<'a> {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Upper-layer protocol, after any IPv6 extension headers (6 TCP, 17 UDP, 50 ESP, ...).
    pub protocol: u8,
    /// Offset of the upper-layer header from the start of the IP header.
    pub header_len: usize,
    /// IPv6 extension headers walked (0 for IPv4).
    pub extension_headers: usize,
    /// Set when this packet is a fragment, not a whole datagram (an IPv6 atomic fragment,
    /// offset 0 and no more fragments, is whole).
    pub frag: Option<Frag>,
    /// Upper-layer bytes, trimmed to the length the IP header states.
    pub payload: &'a [u8],
}

impl IpPacket<'_> {
    /// UDP or TCP, if the upper layer is one of them.
    pub fn l4(&self) -> Option<L4> {
        L4::from_protocol(self.protocol)
    }

    /// True for a fragment whose offset is not 0: its payload starts mid-datagram, without a
    /// transport header.
    pub fn is_non_first_fragment(&self) -> bool {
        self.frag.is_some_and(|f| f.offset != 0)
    }
}

fn byte(b: &[u8], at: usize, h: Header) -> Result<u8, WireError> {
    b.get(at).copied().ok_or(WireError::Truncated(h))
}

fn be16(b: &[u8], at: usize, h: Header) -> Result<u16, WireError> {
    Ok(u16::from_be_bytes([byte(b, at, h)?, byte(b, at + 1, h)?]))
}

fn be32(b: &[u8], at: usize, h: Header) -> Result<u32, WireError> {
    Ok(u32::from_be_bytes([
        byte(b, at, h)?,
        byte(b, at + 1, h)?,
        byte(b, at + 2, h)?,
        byte(b, at + 3, h)?,
    ]))
}

fn array<const N: usize>(b: &[u8], at: usize, h: Header) -> Result<[u8; N], WireError> {
    b.get(at..at + N).and_then(|s| s.try_into().ok()).ok_or(WireError::Truncated(h))
}

/// Read an IPv4 or IPv6 packet, by its version nibble.
pub fn parse_ip(b: &[u8]) -> Result<IpPacket<'_>, WireError> {
    match byte(b, 0, Header::Ip)? >> 4 {
        4 => parse_ipv4(b),
        6 => parse_ipv6(b),
        v => Err(WireError::Version(v)),
    }
}

/// Read an IPv4 packet (options skipped by IHL).
pub fn parse_ipv4(b: &[u8]) -> Result<IpPacket<'_>, WireError> {
    const H: Header = Header::Ipv4;
    let fixed: [u8; 20] = array(b, 0, H)?;
    if fixed[0] >> 4 != 4 {
        return Err(WireError::Version(fixed[0] >> 4));
    }
    let ihl = usize::from(fixed[0] & 0x0f) * 4;
    if ihl < 20 {
        return Err(WireError::Ipv4HeaderLength(ihl));
    }
    if b.len() < ihl {
        return Err(WireError::Truncated(H));
    }
    let total = usize::from(u16::from_be_bytes([fixed[2], fixed[3]]));
    if total < ihl {
        return Err(WireError::Ipv4TotalLength { total, header: ihl });
    }
    // A snap length or copy range may keep less than `total`: take what is there.
    let end = total.min(b.len());
    let flags_off = u16::from_be_bytes([fixed[6], fixed[7]]);
    let more = flags_off & 0x2000 != 0;
    let offset = usize::from(flags_off & 0x1fff) * 8;
    let frag = (more || offset != 0).then_some(Frag {
        id: u32::from(u16::from_be_bytes([fixed[4], fixed[5]])),
        offset,
        more,
    });
    let src = Ipv4Addr::new(fixed[12], fixed[13], fixed[14], fixed[15]);
    let dst = Ipv4Addr::new(fixed[16], fixed[17], fixed[18], fixed[19]);
    Ok(IpPacket {
        src: IpAddr::V4(src),
        dst: IpAddr::V4(dst),
        protocol: fixed[9],
        header_len: ihl,
        extension_headers: 0,
        frag,
        payload: b.get(ihl..end).ok_or(WireError::Truncated(H))?,
    })
}

/// Read an IPv6 packet, walking its extension headers (see the crate docs for which).
pub fn parse_ipv6(b: &[u8]) -> Result<IpPacket<'_>, WireError> {
    const H: Header = Header::Ipv6;
    let first = byte(b, 0, H)?;
    if first >> 4 != 6 {
        return Err(WireError::Version(first >> 4));
    }
    let plen = usize::from(be16(b, 4, H)?);
    let mut next = byte(b, 6, H)?;
    let src = Ipv6Addr::from(array::<16>(b, 8, H)?);
    let dst = Ipv6Addr::from(array::<16>(b, 24, H)?);
    // Payload length 0 is a jumbogram (the real length is in a hop-by-hop option): take what
    // was captured. Otherwise trim link padding; a shorter buffer keeps what is there.
    let end = if plen == 0 { b.len() } else { (40 + plen).min(b.len()) };
    let mut at = 40usize;
    let mut frag = None;
    let mut walked = 0usize;
    loop {
        let len = match next {
            protocol::HOP_BY_HOP | protocol::ROUTING | protocol::DESTINATION_OPTIONS => {
                let h = Header::Ipv6Extension(next);
                (usize::from(byte(b, at + 1, h)?) + 1) * 8
            }
            protocol::AH => {
                let h = Header::Ipv6Extension(next);
                (usize::from(byte(b, at + 1, h)?) + 2) * 4
            }
            protocol::FRAGMENT => {
                let h = Header::Ipv6Fragment;
                let v = be16(b, at + 2, h)?;
                frag = Some(Frag {
                    id: be32(b, at + 4, h)?,
                    offset: usize::from(v >> 3) * 8,
                    more: v & 1 != 0,
                });
                8
            }
            // UDP, TCP, ESP, No Next Header or anything else: the upper layer.
            _ => break,
        };
        if walked == MAX_EXTENSION_HEADERS {
            return Err(WireError::TooManyExtensionHeaders);
        }
        let h = if next == protocol::FRAGMENT {
            Header::Ipv6Fragment
        } else {
            Header::Ipv6Extension(next)
        };
        // The whole extension header must lie within the stated payload.
        if at + len > end {
            return Err(WireError::Truncated(h));
        }
        next = byte(b, at, h)?;
        at += len;
        walked += 1;
    }
    Ok(IpPacket {
        src: IpAddr::V6(src),
        dst: IpAddr::V6(dst),
        protocol: next,
        header_len: at,
        extension_headers: walked,
        frag: frag.filter(|f| f.more || f.offset != 0),
        payload: b.get(at..end).ok_or(WireError::Truncated(H))?,
    })
}

/// A UDP header and its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpDatagram<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Length field (header + payload), as written.
    pub length: u16,
    /// Payload: up to the length field when it is sane (8 or more), else every byte after the
    /// header; never past the bytes present.
    pub payload: &'a [u8],
}

/// Read a UDP header.
pub fn parse_udp(b: &[u8]) -> Result<UdpDatagram<'_>, WireError> {
    let h: [u8; 8] = array(b, 0, Header::Udp)?;
    let length = u16::from_be_bytes([h[4], h[5]]);
    let ulen = usize::from(length);
    let end = if ulen >= 8 { ulen.min(b.len()) } else { b.len() };
    Ok(UdpDatagram {
        src_port: u16::from_be_bytes([h[0], h[1]]),
        dst_port: u16::from_be_bytes([h[2], h[3]]),
        length,
        payload: b.get(8..end).ok_or(WireError::Truncated(Header::Udp))?,
    })
}

/// TCP flags byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// FIN
    pub fn fin(self) -> bool {
        self.0 & 0x01 != 0
    }
    /// SYN
    pub fn syn(self) -> bool {
        self.0 & 0x02 != 0
    }
    /// RST
    pub fn rst(self) -> bool {
        self.0 & 0x04 != 0
    }
    /// PSH
    pub fn psh(self) -> bool {
        self.0 & 0x08 != 0
    }
    /// ACK
    pub fn ack(self) -> bool {
        self.0 & 0x10 != 0
    }
}

/// A TCP header and its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSegment<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Header length in bytes (data offset * 4).
    pub header_len: usize,
    /// Flags.
    pub flags: TcpFlags,
    /// Payload (every byte after the header and its options).
    pub payload: &'a [u8],
}

/// Read a TCP header (options skipped by the data offset).
pub fn parse_tcp(b: &[u8]) -> Result<TcpSegment<'_>, WireError> {
    let h: [u8; 20] = array(b, 0, Header::Tcp)?;
    let header_len = usize::from(h[12] >> 4) * 4;
    if header_len < 20 {
        return Err(WireError::TcpDataOffset(header_len));
    }
    Ok(TcpSegment {
        src_port: u16::from_be_bytes([h[0], h[1]]),
        dst_port: u16::from_be_bytes([h[2], h[3]]),
        seq: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
        ack: u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
        header_len,
        flags: TcpFlags(h[13]),
        payload: b.get(header_len..).ok_or(WireError::Truncated(Header::Tcp))?,
    })
}

/// The transport header of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport<'a> {
    /// UDP
    Udp(UdpDatagram<'a>),
    /// TCP
    Tcp(TcpSegment<'a>),
}

impl<'a> Transport<'a> {
    /// Read the transport header of upper-layer bytes carried as protocol `l4`.
    pub fn parse(l4: L4, b: &'a [u8]) -> Result<Self, WireError> {
        match l4 {
            L4::Udp => parse_udp(b).map(Transport::Udp),
            L4::Tcp => parse_tcp(b).map(Transport::Tcp),
        }
    }

    /// UDP or TCP.
    pub fn l4(&self) -> L4 {
        match self {
            Transport::Udp(_) => L4::Udp,
            Transport::Tcp(_) => L4::Tcp,
        }
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        match self {
            Transport::Udp(u) => u.src_port,
            Transport::Tcp(t) => t.src_port,
        }
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        match self {
            Transport::Udp(u) => u.dst_port,
            Transport::Tcp(t) => t.dst_port,
        }
    }

    /// The transport payload.
    pub fn payload(&self) -> &'a [u8] {
        match self {
            Transport::Udp(u) => u.payload,
            Transport::Tcp(t) => t.payload,
        }
    }
}

/// An IP packet with its UDP or TCP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// The IP layer.
    pub ip: IpPacket<'a>,
    /// The transport layer (of a first fragment: its payload is cut at the fragment's end).
    pub transport: Transport<'a>,
}

/// Read a whole packet down to the UDP/TCP payload. A non-first fragment is
/// [`WireError::NonFirstFragment`] (it has no transport header); another upper layer is
/// [`WireError::NotUdpOrTcp`].
pub fn parse_packet(b: &[u8]) -> Result<Packet<'_>, WireError> {
    let ip = parse_ip(b)?;
    if let Some(f) = ip.frag.filter(|f| f.offset != 0) {
        return Err(WireError::NonFirstFragment { offset: f.offset });
    }
    let l4 = ip.l4().ok_or(WireError::NotUdpOrTcp(ip.protocol))?;
    Ok(Packet { ip, transport: Transport::parse(l4, ip.payload)? })
}

/// Reads every field of every layer of `b` and folds them into a number (so an optimiser
/// cannot drop the work). Shared by the fuzz target, the property test and the corpus replay.
#[doc(hidden)]
pub fn exercise(b: &[u8]) -> usize {
    let mut n = 0usize;
    match parse_ip(b) {
        Ok(ip) => {
            n += ip.header_len + ip.extension_headers + ip.payload.len() + usize::from(ip.protocol);
            n += ip.frag.map_or(0, |f| f.offset + usize::from(f.more) + f.id as usize);
            n += usize::from(ip.src.is_ipv4()) + usize::from(ip.dst.is_loopback());
            // Whatever the protocol says, try both transports on the upper-layer bytes.
            for l4 in [L4::Udp, L4::Tcp] {
                if let Ok(t) = Transport::parse(l4, ip.payload) {
                    n += usize::from(t.src_port()) + usize::from(t.dst_port()) + t.payload().len();
                    if let Transport::Tcp(s) = t {
                        n += s.seq as usize + s.header_len + usize::from(s.flags.syn());
                    }
                }
            }
        }
        Err(e) => n += e.to_string().len(),
    }
    match parse_packet(b) {
        Ok(p) => n += p.transport.payload().len() + usize::from(p.transport.l4() == L4::Tcp),
        Err(e) => n += e.to_string().len(),
    }
    n
}
