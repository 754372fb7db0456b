//! IPv4 / IPv6 header parsing and bounded fragment reassembly.
//!
//! Reassembly bounds (see [`crate::Limits`]): at most `max_pending_datagrams` datagrams
//! in reassembly at once (the oldest is dropped to make room), at most
//! `max_fragments_per_datagram` fragments and `max_datagram_bytes` bytes per datagram,
//! at most `max_defrag_bytes` bytes held in total, and a datagram whose first fragment is
//! older than `fragment_timeout` *capture time* is dropped. Overlapping fragments are
//! accepted (later bytes win); a datagram is delivered once fragments cover 0..end
//! without a hole and the last fragment (more-fragments = 0) has been seen.
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::Limits;

/// Fragment information of one IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frag {
    /// IPv4 identification (16 bits) or IPv6 fragment identification (32 bits).
    pub id: u32,
    /// Byte offset of this fragment's data in the original payload.
    pub offset: usize,
    /// More fragments follow.
    pub more: bool,
}

/// A parsed IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpPacket<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Upper-layer protocol (6 TCP, 17 UDP, ...), after IPv6 extension headers.
    pub proto: u8,
    /// Upper-layer bytes (trimmed to the length the header states, e.g. Ethernet padding cut).
    pub payload: &'a [u8],
    /// Set when this packet is a fragment (not the whole datagram).
    pub frag: Option<Frag>,
}

/// Most IPv6 extension headers walked before giving up on a packet.
const MAX_IPV6_EXT_HEADERS: usize = 8;

/// Parse an IPv4 packet. `None` when malformed.
pub fn parse_ipv4(b: &[u8]) -> Option<IpPacket<'_>> {
    if b.len() < 20 || b[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(b[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([b[2], b[3]]));
    if ihl < 20 || total < ihl || b.len() < ihl {
        return None;
    }
    // A capture cut by the snap length keeps less than `total`: take what is there.
    let end = total.min(b.len());
    let flags_off = u16::from_be_bytes([b[6], b[7]]);
    let more = flags_off & 0x2000 != 0;
    let offset = usize::from(flags_off & 0x1fff) * 8;
    let frag = (more || offset != 0).then_some(Frag {
        id: u32::from(u16::from_be_bytes([b[4], b[5]])),
        offset,
        more,
    });
    Some(IpPacket {
        src: IpAddr::V4(Ipv4Addr::new(b[12], b[13], b[14], b[15])),
        dst: IpAddr::V4(Ipv4Addr::new(b[16], b[17], b[18], b[19])),
        proto: b[9],
        payload: &b[ihl..end],
        frag,
    })
}

/// Parse an IPv6 packet, walking extension headers. `None` when malformed.
pub fn parse_ipv6(b: &[u8]) -> Option<IpPacket<'_>> {
    if b.len() < 40 || b[0] >> 4 != 6 {
        return None;
    }
    let plen = usize::from(u16::from_be_bytes([b[4], b[5]]));
    // Payload length 0 means a jumbogram: take the captured bytes.
    let end = if plen == 0 { b.len() } else { (40 + plen).min(b.len()) };
    let src: [u8; 16] = b[8..24].try_into().ok()?;
    let dst: [u8; 16] = b[24..40].try_into().ok()?;
    let mut next = b[6];
    let mut at = 40;
    let mut frag = None;
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        match next {
            // Hop-by-hop, routing, destination options: (len + 1) * 8 bytes.
            0 | 43 | 60 => {
                let h = b.get(at..at + 2)?;
                next = h[0];
                at += (usize::from(h[1]) + 1) * 8;
            }
            // Fragment header: next(1) reserved(1) offset+flags(2) id(4).
            44 => {
                let h = b.get(at..at + 8)?;
                next = h[0];
                let v = u16::from_be_bytes([h[2], h[3]]);
                frag = Some(Frag {
                    id: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
                    offset: usize::from(v >> 3) * 8,
                    more: v & 1 != 0,
                });
                at += 8;
            }
            // Authentication header: (len + 2) * 4 bytes.
            51 => {
                let h = b.get(at..at + 2)?;
                next = h[0];
                at += (usize::from(h[1]) + 2) * 4;
            }
            _ => break,
        }
    }
    if at > end {
        return None;
    }
    // A fragment header with offset 0 and no more fragments is an atomic fragment: whole.
    let frag = frag.filter(|f| f.more || f.offset != 0);
    Some(IpPacket {
        src: IpAddr::V6(Ipv6Addr::from(src)),
        dst: IpAddr::V6(Ipv6Addr::from(dst)),
        proto: next,
        payload: &b[at..end],
        frag,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FragKey {
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    id: u32,
}

#[derive(Debug)]
struct Pending {
    first_ts: Duration,
    parts: Vec<(usize, Vec<u8>)>,
    /// Known once the last fragment (more = false) arrived.
    total: Option<usize>,
    bytes: usize,
}

/// What happened to a fragment.
#[derive(Debug, PartialEq, Eq)]
pub enum DefragOutcome {
    /// The datagram is whole: its upper-layer payload.
    Complete(Vec<u8>),
    /// Kept, waiting for more fragments.
    Pending,
    /// Dropped because a bound was hit (counted by the caller).
    Dropped,
}

/// Bounded IP fragment reassembly keyed by (src, dst, protocol, id).
#[derive(Debug)]
pub struct Defragmenter {
    pending: HashMap<FragKey, Pending>,
    held_bytes: usize,
    last_sweep: Duration,
    /// Datagrams dropped by a bound or the timeout.
    pub dropped: u64,
    limits: Limits,
}

impl Defragmenter {
    pub fn new(limits: Limits) -> Self {
        Defragmenter {
            pending: HashMap::new(),
            held_bytes: 0,
            last_sweep: Duration::ZERO,
            dropped: 0,
            limits,
        }
    }

    /// Datagrams currently in reassembly.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Bytes currently held.
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    fn remove(&mut self, key: &FragKey) -> Option<Pending> {
        let p = self.pending.remove(key)?;
        self.held_bytes -= p.bytes;
        Some(p)
    }

    /// Drop datagrams older than the timeout (capture time). Cheap: runs at most once per
    /// second of capture time.
    fn sweep(&mut self, now: Duration) {
        if now.saturating_sub(self.last_sweep) < Duration::from_secs(1) {
            return;
        }
        self.last_sweep = now;
        let timeout = self.limits.fragment_timeout;
        let old: Vec<FragKey> = self
            .pending
            .iter()
            .filter(|(_, p)| now.saturating_sub(p.first_ts) > timeout)
            .map(|(k, _)| *k)
            .collect();
        for k in old {
            self.remove(&k);
            self.dropped += 1;
        }
    }

    /// Add one fragment of the datagram (`src`, `dst`, `proto`, `frag.id`).
    pub fn push(
        &mut self,
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        frag: Frag,
        data: &[u8],
        now: Duration,
    ) -> DefragOutcome {
        self.sweep(now);
        let key = FragKey { src, dst, proto, id: frag.id };
        let end = frag.offset + data.len();
        if end > self.limits.max_datagram_bytes {
            if self.remove(&key).is_some() {
                self.dropped += 1;
            }
            self.dropped += 1;
            return DefragOutcome::Dropped;
        }
        if !self.pending.contains_key(&key) {
            if self.pending.len() >= self.limits.max_pending_datagrams {
                // Make room: drop the datagram that started first.
                if let Some(oldest) =
                    self.pending.iter().min_by_key(|(_, p)| p.first_ts).map(|(k, _)| *k)
                {
                    self.remove(&oldest);
                    self.dropped += 1;
                }
            }
            self.pending
                .insert(key, Pending { first_ts: now, parts: Vec::new(), total: None, bytes: 0 });
        }
        // Total-bytes bound: drop whole datagrams, oldest first, until this one fits.
        while self.held_bytes + data.len() > self.limits.max_defrag_bytes {
            let victim = self
                .pending
                .iter()
                .filter(|(k, _)| **k != key)
                .min_by_key(|(_, p)| p.first_ts)
                .map(|(k, _)| *k);
            match victim {
                Some(v) => {
                    self.remove(&v);
                    self.dropped += 1;
                }
                None => {
                    self.remove(&key);
                    self.dropped += 1;
                    return DefragOutcome::Dropped;
                }
            }
        }
        let max_frags = self.limits.max_fragments_per_datagram;
        let Some(p) = self.pending.get_mut(&key) else {
            return DefragOutcome::Dropped;
        };
        if p.parts.len() >= max_frags {
            self.remove(&key);
            self.dropped += 1;
            return DefragOutcome::Dropped;
        }
        p.parts.push((frag.offset, data.to_vec()));
        p.bytes += data.len();
        self.held_bytes += data.len();
        if !frag.more {
            p.total = Some(end);
        }
        let Some(total) = p.total else {
            return DefragOutcome::Pending;
        };
        // Complete when the parts, in offset order, leave no hole before `total`.
        p.parts.sort_by_key(|(o, _)| *o);
        let mut covered = 0;
        for (o, d) in &p.parts {
            if *o > covered {
                return DefragOutcome::Pending;
            }
            covered = covered.max(o + d.len());
        }
        if covered < total {
            return DefragOutcome::Pending;
        }
        let Some(p) = self.remove(&key) else {
            return DefragOutcome::Dropped;
        };
        let mut out = vec![0u8; total];
        for (o, d) in &p.parts {
            let stop = (o + d.len()).min(total);
            if *o < stop {
                out[*o..stop].copy_from_slice(&d[..stop - o]);
            }
        }
        DefragOutcome::Complete(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, a))
    }

    fn frag(offset: usize, more: bool) -> Frag {
        Frag { id: 7, offset, more }
    }

    #[test]
    fn ipv4_header_fields_and_padding_trimmed() {
        let mut p = vec![0x45, 0, 0, 24, 0, 9, 0x20, 0x01, 64, 17, 0, 0];
        p.extend_from_slice(&[192, 0, 2, 1, 192, 0, 2, 2, 1, 2, 3, 4, 0xee, 0xee]);
        let ip = parse_ipv4(&p).unwrap();
        assert_eq!(ip.payload, &[1, 2, 3, 4]);
        assert_eq!(ip.proto, 17);
        assert_eq!(ip.frag, Some(Frag { id: 9, offset: 8, more: true }));
        assert!(parse_ipv4(&p[..19]).is_none());
    }

    #[test]
    fn ipv6_walks_hop_by_hop_and_fragment_headers() {
        let mut p = vec![0x60, 0, 0, 0, 0, 20, 0, 64];
        p.extend_from_slice(&[0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        p.extend_from_slice(&[0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        p.extend_from_slice(&[44, 0, 0, 0, 0, 0, 0, 0]); // hop-by-hop, next = fragment
        p.extend_from_slice(&[17, 0, 0, 0x11, 0, 0, 0, 5]); // offset 2*8, more
        p.extend_from_slice(&[9, 9, 9, 9]);
        let ip = parse_ipv6(&p).unwrap();
        assert_eq!(ip.proto, 17);
        assert_eq!(ip.payload, &[9, 9, 9, 9]);
        assert_eq!(ip.frag, Some(Frag { id: 5, offset: 16, more: true }));
    }

    #[test]
    fn reassembles_out_of_order_and_overlapping_fragments() {
        let mut d = Defragmenter::new(Limits::default());
        let t = Duration::from_secs(100);
        assert_eq!(d.push(v4(1), v4(2), 17, frag(16, false), b"CCCC", t), DefragOutcome::Pending);
        assert_eq!(d.push(v4(1), v4(2), 17, frag(0, true), b"AAAAAAAA", t), DefragOutcome::Pending);
        assert_eq!(
            d.push(v4(1), v4(2), 17, frag(6, true), b"xxBBBBBBBB", t),
            DefragOutcome::Complete(b"AAAAAAxxBBBBBBBBCCCC".to_vec())
        );
        assert_eq!(d.pending(), 0);
        assert_eq!(d.held_bytes(), 0);
    }

    #[test]
    fn times_out_by_capture_time() {
        let mut d = Defragmenter::new(Limits::default());
        d.push(v4(1), v4(2), 17, frag(0, true), b"AAAAAAAA", Duration::from_secs(10));
        // 31 s later (default timeout 30 s) the first fragment is gone: the last alone is pending.
        let late = Duration::from_secs(41);
        assert_eq!(d.push(v4(1), v4(2), 17, frag(8, false), b"BB", late), DefragOutcome::Pending);
        assert_eq!(d.dropped, 1);
    }

    #[test]
    fn bounds_on_datagrams_fragments_and_size() {
        let limits =
            Limits { max_pending_datagrams: 2, max_fragments_per_datagram: 3, ..Limits::default() };
        let mut d = Defragmenter::new(limits);
        let t = Duration::from_secs(1);
        for id in 0..5u32 {
            d.push(v4(1), v4(2), 17, Frag { id, offset: 0, more: true }, b"AAAAAAAA", t);
        }
        assert_eq!(d.pending(), 2);
        assert_eq!(d.dropped, 3);
        for i in 0..4 {
            d.push(v4(3), v4(2), 17, frag(8 * (i + 1), true), b"AAAAAAAA", t);
        }
        // the 4th fragment of one datagram exceeds the bound: dropped
        assert!(d.dropped >= 4);
        assert_eq!(
            d.push(v4(4), v4(2), 17, frag(65_530, false), b"AAAAAAAAAA", t),
            DefragOutcome::Dropped
        );
    }
}
