//! Per-source behaviour state, bounded in memory.
//!
//! CONTRACT:
//! * At most `cap` sources are tracked; inserting one more evicts the least recently seen
//!   (an intrusive doubly-linked LRU list over a slab, O(1) per packet).
//! * All storage is allocated up front ([`SourceTable::new`]): touching, inserting and
//!   evicting allocate nothing, so the accept path stays allocation-free even under a flood of
//!   forged sources. The index map is sized to twice the cap so hashbrown can always clean its
//!   tombstones in place instead of growing.
//! * Each source costs [`BYTES_PER_SOURCE`] bytes at most (slab slot + index entry), a bound
//!   checked by a test: `limits.max_tracked_sources` x that is the engine's behaviour memory.
//!
//! Counters are sliding-window estimates with two buckets (current and previous window, the
//! previous weighted by how much of it still overlaps the window): fixed 16 bytes per counter,
//! exact for bursts shorter than one window, and never off by more than the previous bucket's
//! share. Distinct target users are exact within the window up to [`USER_SLOTS`].
use std::net::IpAddr;

use crate::fasthash::{map_with_capacity, FastMap};

/// Distinct target users remembered per source (also the largest enumeration threshold).
pub(crate) const USER_SLOTS: usize = 16;
/// Call-IDs remembered per source to tell a first auth challenge from a repeated one.
pub(crate) const CALLID_SLOTS: usize = 8;
/// Target users kept verbatim per source as evidence.
pub(crate) const SAMPLE_USERS: usize = 4;
/// Bytes kept of each sampled user.
pub(crate) const SAMPLE_LEN: usize = 23;
/// Upper bound of memory per tracked source, in bytes (slab slot + index map entry at the
/// map's 2x sizing and 7/8 load). Checked against `size_of` in a test.
pub const BYTES_PER_SOURCE: usize = 512;

const NIL: u32 = u32::MAX;

/// A two-bucket sliding window counter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Window {
    start_ms: u64,
    cur: u32,
    prev: u32,
}

impl Window {
    fn roll(&mut self, now: u64, win: u64) {
        if self.start_ms == 0 && self.cur == 0 && self.prev == 0 {
            self.start_ms = now;
            return;
        }
        if now < self.start_ms {
            return; // time went back (reordered capture): count in the current bucket
        }
        let elapsed = now - self.start_ms;
        if elapsed >= 2 * win {
            self.prev = 0;
            self.cur = 0;
            self.start_ms = now;
        } else if elapsed >= win {
            self.prev = self.cur;
            self.cur = 0;
            self.start_ms += win;
        }
    }

    /// Estimated events in the last `win` ms.
    pub(crate) fn estimate(&self, now: u64, win: u64) -> u32 {
        let elapsed = now.saturating_sub(self.start_ms);
        if elapsed >= 2 * win {
            return 0;
        }
        if elapsed >= win {
            // `cur` has become the previous bucket.
            let overlap = 2 * win - elapsed;
            return ((self.cur as u64 * overlap) / win) as u32;
        }
        let overlap = win - elapsed;
        self.cur + ((self.prev as u64 * overlap) / win) as u32
    }

    /// Count one event; returns the estimate including it.
    pub(crate) fn add(&mut self, now: u64, win: u64) -> u32 {
        self.roll(now, win);
        self.cur = self.cur.saturating_add(1);
        self.estimate(now, win)
    }
}

/// Behaviour of one source.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SourceState {
    pub first_seen_ms: u64,
    pub last_seen_ms: u64,
    pub requests: Window,
    pub auth_failures: Window,
    pub challenges: Window,
    pub not_found: Window,
    pub invites: Window,
    /// (hash of target user, seconds when last seen); hash 0 = empty.
    users: [(u32, u32); USER_SLOTS],
    /// Recent requests (Call-ID + CSeq keys) that carried credentials; 0 = empty; a ring.
    challenged: [u32; CALLID_SLOTS],
    challenged_next: u8,
    sample: [[u8; SAMPLE_LEN]; SAMPLE_USERS],
    sample_len: [u8; SAMPLE_USERS],
    sample_next: u8,
    /// Answers seen by code family, for evidence: 401/407, 403, 404/480/484.
    pub total_requests: u32,
}

impl SourceState {
    /// Record a target user; returns the distinct users seen within `win_ms`.
    pub(crate) fn add_user(&mut self, user: &[u8], hash: u32, now_ms: u64, win_ms: u64) -> u32 {
        let now_s = (now_ms / 1000) as u32;
        let win_s = win_ms.div_ceil(1000) as u32;
        let live = |seen: u32| seen.saturating_add(win_s) > now_s;
        let mut found = false;
        let mut free: Option<usize> = None;
        let mut oldest = 0usize;
        for slot in self.users.iter_mut() {
            if slot.0 == hash {
                slot.1 = now_s;
                found = true;
                break;
            }
        }
        if !found {
            for (i, slot) in self.users.iter().enumerate() {
                if slot.0 == 0 || !live(slot.1) {
                    free = Some(i);
                    break;
                }
                if slot.1 < self.users[oldest].1 {
                    oldest = i;
                }
            }
            let i = free.unwrap_or(oldest);
            self.users[i] = (hash, now_s);
            let s = self.sample_next as usize % SAMPLE_USERS;
            let n = user.len().min(SAMPLE_LEN);
            self.sample[s][..n].copy_from_slice(&user[..n]);
            self.sample_len[s] = n as u8;
            self.sample_next = self.sample_next.wrapping_add(1);
        }
        self.users.iter().filter(|s| s.0 != 0 && live(s.1)).count() as u32
    }

    /// Distinct users within the window (without recording).
    pub(crate) fn distinct_users(&self, now_ms: u64, win_ms: u64) -> u32 {
        let now_s = (now_ms / 1000) as u32;
        let win_s = win_ms.div_ceil(1000) as u32;
        self.users.iter().filter(|s| s.0 != 0 && s.1.saturating_add(win_s) > now_s).count() as u32
    }

    /// The most recent sampled target users (evidence), oldest first.
    pub(crate) fn sampled_users(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(SAMPLE_USERS);
        let n = self.sample_next as usize;
        for k in 0..SAMPLE_USERS {
            let i = (n + k) % SAMPLE_USERS;
            let len = self.sample_len[i] as usize;
            if len > 0 {
                out.push(String::from_utf8_lossy(&self.sample[i][..len]).into_owned());
            }
        }
        out
    }

    /// Remember that the request keyed `key` (Call-ID hash and CSeq, see [`attempt_key`])
    /// carried credentials.
    pub(crate) fn note_credentials(&mut self, key: u32) {
        if self.challenged.contains(&key) {
            return;
        }
        let i = self.challenged_next as usize % CALLID_SLOTS;
        self.challenged[i] = key;
        self.challenged_next = self.challenged_next.wrapping_add(1);
    }

    /// True if the request answered by a 401/407 keyed `key` carried credentials: the
    /// challenge then means "wrong password", not the normal first challenge.
    pub(crate) fn had_credentials(&self, key: u32) -> bool {
        self.challenged.contains(&key)
    }
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    ip: IpAddr,
    state: SourceState,
}

/// Bounded LRU table of sources. The LRU links live in their own small array (8 bytes per
/// source) so re-linking a source touches its neighbours' links, not their whole state.
#[derive(Debug)]
pub(crate) struct SourceTable {
    map: FastMap<IpAddr, u32>,
    slots: Vec<Slot>,
    /// (prev, next) per slot, same index as `slots`.
    links: Vec<(u32, u32)>,
    head: u32,
    tail: u32,
    cap: usize,
    pub evicted: u64,
}

impl SourceTable {
    pub(crate) fn new(cap: usize) -> Self {
        let cap = cap.max(1);
        SourceTable {
            map: map_with_capacity(cap * 2),
            slots: Vec::with_capacity(cap),
            links: Vec::with_capacity(cap),
            head: NIL,
            tail: NIL,
            cap,
            evicted: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn get(&self, ip: &IpAddr) -> Option<&SourceState> {
        self.map.get(ip).map(|&i| &self.slots[i as usize].state)
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next) = self.links[i as usize];
        if prev != NIL {
            self.links[prev as usize].1 = next;
        } else {
            self.head = next;
        }
        if next != NIL {
            self.links[next as usize].0 = prev;
        } else {
            self.tail = prev;
        }
    }

    fn push_front(&mut self, i: u32) {
        let old = self.head;
        self.links[i as usize] = (NIL, old);
        if old != NIL {
            self.links[old as usize].0 = i;
        } else {
            self.tail = i;
        }
        self.head = i;
    }

    /// The state of `ip`, created if new (evicting the least recently seen source when full),
    /// and marked most recently seen.
    #[inline]
    pub(crate) fn touch(&mut self, ip: IpAddr, now_ms: u64) -> &mut SourceState {
        let i = match self.map.get(&ip) {
            Some(&i) => {
                if self.head != i {
                    self.unlink(i);
                    self.push_front(i);
                }
                i
            }
            None => {
                let fresh = SourceState { first_seen_ms: now_ms, ..SourceState::default() };
                let i = if self.slots.len() < self.cap {
                    self.slots.push(Slot { ip, state: fresh });
                    self.links.push((NIL, NIL));
                    (self.slots.len() - 1) as u32
                } else {
                    let victim = self.tail;
                    self.unlink(victim);
                    let old_ip = self.slots[victim as usize].ip;
                    self.map.remove(&old_ip);
                    self.evicted += 1;
                    self.slots[victim as usize] = Slot { ip, state: fresh };
                    victim
                };
                self.map.insert(ip, i);
                self.push_front(i);
                i
            }
        };
        let st = &mut self.slots[i as usize].state;
        st.last_seen_ms = st.last_seen_ms.max(now_ms);
        st
    }

    /// Forget a source (after it is banned: its packets no longer reach the engine).
    pub(crate) fn remove(&mut self, ip: &IpAddr) {
        let Some(i) = self.map.remove(ip) else { return };
        self.unlink(i);
        // Move the last slot into the hole so the slab stays dense.
        let last = (self.slots.len() - 1) as u32;
        if i != last {
            let moved_ip = self.slots[last as usize].ip;
            let (p, n) = self.links[last as usize];
            self.slots.swap(i as usize, last as usize);
            self.links.swap(i as usize, last as usize);
            if p != NIL {
                self.links[p as usize].1 = i;
            } else {
                self.head = i;
            }
            if n != NIL {
                self.links[n as usize].0 = i;
            } else {
                self.tail = i;
            }
            self.map.insert(moved_ip, i);
        }
        self.slots.pop();
        self.links.pop();
    }

    /// Change the cap (policy reload), evicting the least recently seen down to it.
    pub(crate) fn set_cap(&mut self, cap: usize) {
        let cap = cap.max(1);
        while self.len() > cap {
            let victim = self.slots[self.tail as usize].ip;
            self.remove(&victim);
            self.evicted += 1;
        }
        if cap > self.cap {
            self.slots.reserve_exact(cap - self.slots.len());
            self.links.reserve_exact(cap - self.links.len());
            self.map.reserve(cap * 2 - self.map.len());
        }
        self.cap = cap;
    }

    /// Sources from most to least recently seen (for tests and introspection).
    #[cfg(test)]
    pub(crate) fn order(&self) -> Vec<IpAddr> {
        let mut out = Vec::new();
        let mut i = self.head;
        while i != NIL {
            out.push(self.slots[i as usize].ip);
            i = self.links[i as usize].1;
        }
        out
    }
}

/// Key of one request attempt: Call-ID and CSeq number (a retry with credentials uses a new CSeq).
pub(crate) fn attempt_key(call_id: &[u8], cseq: u32) -> u32 {
    (crate::fasthash::hash32(call_id) ^ cseq.wrapping_mul(0x9E37_79B9)) | 1
}

/// Bytes one tracked source costs: its slab slot plus its share of the index map.
pub fn bytes_per_source() -> usize {
    let slot = std::mem::size_of::<Slot>() + std::mem::size_of::<(u32, u32)>();
    // Index entry (key + u32) at 2x sizing and 7/8 max load, plus 2 control bytes.
    let entry = std::mem::size_of::<(IpAddr, u32)>();
    slot + (entry * 2 * 8).div_ceil(7) + 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(n))
    }

    #[test]
    fn window_counts_and_slides() {
        let mut w = Window::default();
        let win = 10_000;
        for k in 0..5 {
            assert_eq!(w.add(1_000 + k, win), k as u32 + 1);
        }
        // Half a window later the old bucket still counts fully (it is the current one).
        assert_eq!(w.estimate(6_000, win), 5);
        // 1.5 windows after the start: the old bucket is previous, half overlapping.
        assert_eq!(w.add(16_000, win), 1 + 2);
        // Two windows of silence forget everything.
        assert_eq!(w.estimate(40_000, win), 0);
        assert_eq!(w.add(40_000, win), 1);
    }

    #[test]
    fn window_tolerates_time_going_back() {
        let mut w = Window::default();
        w.add(5_000, 1_000);
        assert_eq!(w.add(4_000, 1_000), 2);
    }

    #[test]
    fn distinct_users_window_and_sample() {
        let mut s = SourceState::default();
        let win = 60_000;
        for (k, u) in ["100", "101", "102", "100", "103"].iter().enumerate() {
            let h = crate::fasthash::hash32(u.as_bytes());
            let n = s.add_user(u.as_bytes(), h, 1_000 + k as u64 * 1000, win);
            assert_eq!(n, [1, 2, 3, 3, 4][k]);
        }
        assert_eq!(s.sampled_users(), vec!["100", "101", "102", "103"]);
        assert_eq!(s.distinct_users(63_500, win), 2); // 100 (seen at 4 s) and 103 (5 s)
        assert_eq!(s.distinct_users(200_000, win), 0);
        // More users than slots: the count saturates at USER_SLOTS, oldest replaced.
        for k in 0..40u32 {
            let u = format!("u{k}");
            s.add_user(u.as_bytes(), crate::fasthash::hash32(u.as_bytes()), 300_000, win);
        }
        assert_eq!(s.distinct_users(300_000, win), USER_SLOTS as u32);
        assert_eq!(s.sampled_users().len(), SAMPLE_USERS);
    }

    #[test]
    fn credential_memory() {
        let mut s = SourceState::default();
        let k = attempt_key(b"abc@host", 2);
        assert!(!s.had_credentials(k));
        s.note_credentials(k);
        assert!(s.had_credentials(k));
        assert!(!s.had_credentials(attempt_key(b"abc@host", 3)));
        for n in 10..30 {
            s.note_credentials(attempt_key(b"x", n));
        }
        assert!(!s.had_credentials(k), "old attempts are forgotten");
    }

    #[test]
    fn lru_evicts_least_recently_seen() {
        let mut t = SourceTable::new(3);
        t.touch(ip(1), 1);
        t.touch(ip(2), 2);
        t.touch(ip(3), 3);
        t.touch(ip(1), 4); // 1 is now most recent; 2 is least
        t.touch(ip(4), 5);
        assert_eq!(t.len(), 3);
        assert!(t.get(&ip(2)).is_none());
        assert_eq!(t.order(), vec![ip(4), ip(1), ip(3)]);
        assert_eq!(t.evicted, 1);
        t.remove(&ip(1));
        assert_eq!(t.order(), vec![ip(4), ip(3)]);
        t.touch(ip(5), 6);
        t.touch(ip(6), 7);
        assert_eq!(t.order(), vec![ip(6), ip(5), ip(4)]);
        t.set_cap(2);
        assert_eq!(t.order(), vec![ip(6), ip(5)]);
    }

    #[test]
    fn million_forged_sources_stay_under_cap() {
        let cap = 10_000;
        let mut t = SourceTable::new(cap);
        for n in 0..1_000_000u32 {
            t.touch(ip(0xC000_0000 ^ n.wrapping_mul(2_654_435_761)), n as u64);
            assert!(t.len() <= cap);
        }
        assert_eq!(t.len(), cap);
        assert_eq!(t.evicted, 1_000_000 - cap as u64);
        assert!(t.slots.capacity() <= cap, "slab grew past its cap");
    }

    #[test]
    fn documented_bytes_per_source_holds() {
        let b = bytes_per_source();
        println!("bytes per tracked source: {b} (slot {})", std::mem::size_of::<Slot>());
        assert!(b <= BYTES_PER_SOURCE, "{b} bytes per source > documented {BYTES_PER_SOURCE}");
    }
}
