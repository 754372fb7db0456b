//! Bounded IP fragment reassembly. The headers themselves are read by the shared packet
//! view, [`sipwall_wire`] (the same code the inline path uses, so IPv6 extension headers,
//! fragment headers included, are walked the same way in both).
//!
//! Reassembly bounds (see [`crate::Limits`]): at most `max_pending_datagrams` datagrams
//! in reassembly at once (the oldest is dropped to make room), at most
//! `max_fragments_per_datagram` fragments and `max_datagram_bytes` bytes per datagram,
//! at most `max_defrag_bytes` bytes held in total, and a datagram whose first fragment is
//! older than `fragment_timeout` *capture time* is dropped. Overlapping fragments are
//! accepted (later bytes win); a datagram is delivered once fragments cover 0..end
//! without a hole and the last fragment (more-fragments = 0) has been seen.
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

pub use sipwall_wire::Frag;

use crate::Limits;

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
    /// No datagram pending; bounded by `limits`.
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
    use std::net::Ipv4Addr;

    fn v4(a: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, a))
    }

    fn frag(offset: usize, more: bool) -> Frag {
        Frag { id: 7, offset, more }
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
