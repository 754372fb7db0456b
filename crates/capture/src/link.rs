//! Link-layer decoding: from a captured frame to the IP packet inside it.
//!
//! Supported link types (pcap `LINKTYPE_*` / `DLT_*` values):
//! Ethernet (1) with any stack of 802.1Q / 802.1ad / QinQ VLAN tags, Linux cooked capture
//! v1 (113) and v2 (276), raw IP (101, and the historical DLT_RAW values 12 and 14),
//! raw IPv4 (228) / raw IPv6 (229), BSD loopback NULL (0, host byte order) and LOOP (108,
//! network byte order). Anything else is counted and skipped by the reader.

/// The network layer found inside a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L3<'a> {
    /// An IPv4 packet (header first).
    Ipv4(&'a [u8]),
    /// An IPv6 packet (header first).
    Ipv6(&'a [u8]),
}

/// Why a frame yielded no IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkSkip {
    /// The link type is not one this crate decodes.
    UnsupportedLinktype(u32),
    /// A well-formed frame that carries something other than IP (ARP, LLDP, ...).
    NotIp,
    /// The frame is shorter than its link header.
    Truncated,
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;
/// More VLAN tags than this on one frame is not a real network: stop peeling.
const MAX_VLAN_TAGS: usize = 4;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn by_ethertype(ethertype: u16, rest: &[u8]) -> Result<L3<'_>, LinkSkip> {
    match ethertype {
        ETHERTYPE_IPV4 => Ok(L3::Ipv4(rest)),
        ETHERTYPE_IPV6 => Ok(L3::Ipv6(rest)),
        _ => Err(LinkSkip::NotIp),
    }
}

fn by_version(data: &[u8]) -> Result<L3<'_>, LinkSkip> {
    match data.first().map(|b| b >> 4) {
        Some(4) => Ok(L3::Ipv4(data)),
        Some(6) => Ok(L3::Ipv6(data)),
        Some(_) => Err(LinkSkip::NotIp),
        None => Err(LinkSkip::Truncated),
    }
}

/// Decode one frame of the given link type.
pub fn decode(linktype: u32, frame: &[u8]) -> Result<L3<'_>, LinkSkip> {
    match linktype {
        // Ethernet: dst(6) src(6) ethertype(2), VLAN tags insert 4 bytes each.
        1 => {
            let mut ethertype = be16(frame, 12).ok_or(LinkSkip::Truncated)?;
            let mut at = 14;
            let mut tags = 0;
            while matches!(ethertype, ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD) {
                tags += 1;
                if tags > MAX_VLAN_TAGS {
                    return Err(LinkSkip::NotIp);
                }
                ethertype = be16(frame, at + 2).ok_or(LinkSkip::Truncated)?;
                at += 4;
            }
            by_ethertype(ethertype, frame.get(at..).ok_or(LinkSkip::Truncated)?)
        }
        // Linux cooked v1: packet type(2) arphrd(2) addr len(2) addr(8) protocol(2).
        113 => {
            let proto = be16(frame, 14).ok_or(LinkSkip::Truncated)?;
            by_ethertype(proto, &frame[16..])
        }
        // Linux cooked v2: protocol(2) reserved(2) ifindex(4) arphrd(2) pkttype(1) addrlen(1) addr(8).
        276 => {
            let proto = be16(frame, 0).ok_or(LinkSkip::Truncated)?;
            if frame.len() < 20 {
                return Err(LinkSkip::Truncated);
            }
            by_ethertype(proto, &frame[20..])
        }
        // Raw IP: LINKTYPE_RAW (101) and the DLT_RAW values some systems write (12, 14).
        101 | 12 | 14 => by_version(frame),
        228 => Ok(L3::Ipv4(frame)),
        229 => Ok(L3::Ipv6(frame)),
        // NULL: 4-byte address family in the *capturing* host's byte order, so accept both.
        // LOOP: the same in network byte order.
        0 | 108 => {
            let fam = frame.get(..4).ok_or(LinkSkip::Truncated)?;
            let le = u32::from_le_bytes([fam[0], fam[1], fam[2], fam[3]]);
            let be = u32::from_be_bytes([fam[0], fam[1], fam[2], fam[3]]);
            let family = if le < 0x100 { le } else { be };
            match family {
                2 => Ok(L3::Ipv4(&frame[4..])),
                // AF_INET6 is 24 (NetBSD/OpenBSD), 28 (FreeBSD), 30 (macOS), 10 (Linux).
                10 | 24 | 28 | 30 => Ok(L3::Ipv6(&frame[4..])),
                _ => Err(LinkSkip::NotIp),
            }
        }
        other => Err(LinkSkip::UnsupportedLinktype(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ethernet_with_two_vlan_tags() {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x88, 0xa8, 0, 10, 0x81, 0x00, 0, 20, 0x08, 0x00, 0x45, 0]);
        assert_eq!(decode(1, &f), Ok(L3::Ipv4(&[0x45, 0][..])));
    }

    #[test]
    fn ethernet_arp_is_not_ip_and_short_frame_is_truncated() {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x06, 1, 2]);
        assert_eq!(decode(1, &f), Err(LinkSkip::NotIp));
        assert_eq!(decode(1, &f[..10]), Err(LinkSkip::Truncated));
    }

    #[test]
    fn sll_v1_v2_raw_null_loop() {
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&[0x86, 0xdd, 0x60]);
        assert_eq!(decode(113, &sll), Ok(L3::Ipv6(&[0x60][..])));
        let mut sll2 = vec![0x08, 0x00];
        sll2.extend_from_slice(&[0u8; 18]);
        sll2.push(0x45);
        assert_eq!(decode(276, &sll2), Ok(L3::Ipv4(&[0x45][..])));
        assert_eq!(decode(101, &[0x60, 1]), Ok(L3::Ipv6(&[0x60, 1][..])));
        assert_eq!(decode(12, &[0x45]), Ok(L3::Ipv4(&[0x45][..])));
        assert_eq!(decode(0, &[2, 0, 0, 0, 0x45]), Ok(L3::Ipv4(&[0x45][..])));
        assert_eq!(decode(0, &[0, 0, 0, 30, 0x60]), Ok(L3::Ipv6(&[0x60][..])));
        assert_eq!(decode(108, &[0, 0, 0, 2, 0x45]), Ok(L3::Ipv4(&[0x45][..])));
        assert_eq!(decode(147, &[0x45]), Err(LinkSkip::UnsupportedLinktype(147)));
    }
}
