//! Per-flow TCP reassembly for SIP, framed by Content-Length.
//!
//! Policy (documented contract):
//! * One flow per direction (src, dst). A flow seen from its SYN is followed when its first
//!   data (after any CRLF keep-alives) looks like a SIP start line, and is otherwise
//!   remembered as "not SIP" (its segments then cost one lookup). A flow first seen
//!   mid-connection is followed from its first segment that starts a SIP message.
//! * In order only. The next expected sequence number is tracked (from the SYN, or from the
//!   first SIP-looking segment when the capture started mid-connection). Retransmitted bytes
//!   (at or before the expected number) are dropped, a partial overlap keeps only its new
//!   tail. A segment from the future is held (at most `max_ooo_segments` segments and
//!   `max_ooo_bytes` bytes per flow) until the hole is filled; when the hold is full the hole
//!   is declared lost: the flow drops its buffer and resynchronises on the next segment that
//!   begins with a SIP start line.
//! * A framing error (no/invalid Content-Length, buffer over the framer's bound) also makes
//!   the flow resynchronise.
//! * FIN or RST ends the flow. At most `max_tcp_flows` flows are kept; the least recently
//!   used is evicted, as is any flow idle longer than `tcp_idle_timeout` of capture time.
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use sipwall_sip::{Framed, StreamFramer};

use crate::{looks_like_sip, Limits};

/// One direction of a TCP connection: its segments are reassembled apart from the other's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Sender of the segments.
    pub src: SocketAddr,
    /// Their receiver.
    pub dst: SocketAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FlowState {
    /// SYN seen, no data yet.
    Opening,
    /// Following a SIP stream.
    Sip,
    /// Lost sync (hole or framing error): waiting for a segment that starts a SIP message.
    Resync,
    /// First data was not SIP: ignored.
    NotSip,
}

#[derive(Debug)]
struct Flow {
    state: FlowState,
    next_seq: u32,
    framer: StreamFramer,
    held: Vec<(u32, Vec<u8>)>,
    held_bytes: usize,
    tick: u64,
    last_ts: Duration,
}

/// TCP segment flags the reassembler cares about.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpFlags {
    /// SYN: a new connection (sequence numbers start over).
    pub syn: bool,
    /// FIN: the sender is done; the flow can be forgotten.
    pub fin: bool,
    /// RST: the connection is gone; the flow is forgotten.
    pub rst: bool,
}

/// Counters kept by the reassembler.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpStats {
    /// Flows started.
    pub flows_opened: u64,
    /// Flows dropped to stay within the flow limit (least recently seen first).
    pub flows_evicted: u64,
    /// Segments whose bytes were already seen.
    pub retransmits: u64,
    /// Segments that arrived ahead of a gap (held while the hold has room).
    pub out_of_order: u64,
    /// Gaps given up on (bytes never seen): the stream resumes after them.
    pub gaps: u64,
    /// Stream bytes the SIP framer refused (over its buffer, or no message head).
    pub framing_errors: u64,
}

/// The flow table.
#[derive(Debug)]
pub struct TcpReassembler {
    flows: HashMap<FlowKey, Flow>,
    lru: BTreeMap<u64, FlowKey>,
    tick: u64,
    last_sweep: Duration,
    limits: Limits,
    /// Counters.
    pub stats: TcpStats,
}

/// `a - b` in sequence space (RFC 1982 style): negative when `a` is before `b`.
fn seq_diff(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

impl TcpReassembler {
    /// An empty flow table bounded by `limits`.
    pub fn new(limits: Limits) -> Self {
        TcpReassembler {
            flows: HashMap::new(),
            lru: BTreeMap::new(),
            tick: 0,
            last_sweep: Duration::ZERO,
            limits,
            stats: TcpStats::default(),
        }
    }

    /// Flows currently tracked.
    pub fn flows(&self) -> usize {
        self.flows.len()
    }

    fn remove(&mut self, key: &FlowKey) {
        if let Some(f) = self.flows.remove(key) {
            self.lru.remove(&f.tick);
        }
    }

    fn sweep(&mut self, now: Duration) {
        if now.saturating_sub(self.last_sweep) < Duration::from_secs(1) {
            return;
        }
        self.last_sweep = now;
        // Oldest first; stop at the first flow still fresh (capture time is nearly monotonic).
        while let Some((_, key)) = self.lru.first_key_value() {
            let key = *key;
            let idle = self
                .flows
                .get(&key)
                .map(|f| now.saturating_sub(f.last_ts) > self.limits.tcp_idle_timeout)
                .unwrap_or(true);
            if !idle {
                break;
            }
            self.remove(&key);
            self.stats.flows_evicted += 1;
        }
    }

    /// Feed one segment; every complete SIP message is passed to `emit`.
    pub fn segment(
        &mut self,
        key: FlowKey,
        seq: u32,
        flags: TcpFlags,
        payload: &[u8],
        now: Duration,
        emit: &mut dyn FnMut(&[u8]),
    ) {
        self.sweep(now);
        if flags.rst {
            self.remove(&key);
            return;
        }
        if !self.flows.contains_key(&key) {
            let state = if flags.syn {
                FlowState::Opening
            } else if !payload.is_empty() && looks_like_sip(payload) {
                FlowState::Sip
            } else if payload.is_empty() {
                // A bare ACK of a flow we never saw start: nothing to follow yet.
                return;
            } else {
                // The capture began mid-connection, maybe mid-message: wait for a segment
                // that starts a SIP message rather than writing the flow off.
                FlowState::Resync
            };
            if self.flows.len() >= self.limits.max_tcp_flows {
                if let Some((_, victim)) = self.lru.pop_first() {
                    self.flows.remove(&victim);
                    self.stats.flows_evicted += 1;
                }
            }
            self.stats.flows_opened += 1;
            let next_seq = if flags.syn { seq.wrapping_add(1) } else { seq };
            self.flows.insert(
                key,
                Flow {
                    state,
                    next_seq,
                    framer: StreamFramer::new(),
                    held: Vec::new(),
                    held_bytes: 0,
                    tick: 0,
                    last_ts: now,
                },
            );
            if flags.syn {
                // The SYN's own sequence number is consumed; any data on it is ignored (TFO).
                self.touch(&key, now);
                return;
            }
        }
        self.touch(&key, now);
        let limits = self.limits;
        let stats = &mut self.stats;
        let Some(flow) = self.flows.get_mut(&key) else {
            return;
        };
        if flow.state != FlowState::NotSip && !payload.is_empty() {
            flow.accept(seq, payload, &limits, stats, emit);
        }
        if flags.fin {
            self.remove(&key);
        }
    }

    fn touch(&mut self, key: &FlowKey, now: Duration) {
        self.tick += 1;
        let tick = self.tick;
        if let Some(f) = self.flows.get_mut(key) {
            self.lru.remove(&f.tick);
            f.tick = tick;
            f.last_ts = now;
            self.lru.insert(tick, *key);
        }
    }
}

impl Flow {
    fn accept(
        &mut self,
        seq: u32,
        payload: &[u8],
        limits: &Limits,
        stats: &mut TcpStats,
        emit: &mut dyn FnMut(&[u8]),
    ) {
        match self.state {
            FlowState::NotSip => return,
            FlowState::Opening => {
                if !looks_like_sip(payload) {
                    self.state = FlowState::NotSip;
                    return;
                }
                self.state = FlowState::Sip;
            }
            FlowState::Resync => {
                if !looks_like_sip(payload) {
                    return;
                }
                self.resync_at(seq);
            }
            FlowState::Sip => {}
        }
        let d = seq_diff(seq, self.next_seq);
        if d > 0 {
            // From the future: hold it, or give up on the hole when the hold is full.
            stats.out_of_order += 1;
            if self.held.len() < limits.max_ooo_segments
                && self.held_bytes + payload.len() <= limits.max_ooo_bytes
            {
                self.held.push((seq, payload.to_vec()));
                self.held_bytes += payload.len();
                return;
            }
            stats.gaps += 1;
            self.state = FlowState::Resync;
            self.held.clear();
            self.held_bytes = 0;
            if looks_like_sip(payload) {
                self.resync_at(seq);
                self.take(seq, payload, stats, emit);
            }
            return;
        }
        self.take(seq, payload, stats, emit);
        // Drain held segments that have become contiguous.
        while let Some(i) = self.held.iter().position(|(s, _)| seq_diff(*s, self.next_seq) <= 0) {
            let (s, data) = self.held.swap_remove(i);
            self.held_bytes -= data.len();
            self.take(s, &data, stats, emit);
            if self.state != FlowState::Sip {
                break;
            }
        }
    }

    fn resync_at(&mut self, seq: u32) {
        self.state = FlowState::Sip;
        self.framer = StreamFramer::new();
        self.next_seq = seq;
        self.held.clear();
        self.held_bytes = 0;
    }

    /// Take a segment that starts at or before `next_seq`: push its new bytes, emit messages.
    fn take(
        &mut self,
        seq: u32,
        payload: &[u8],
        stats: &mut TcpStats,
        emit: &mut dyn FnMut(&[u8]),
    ) {
        let d = seq_diff(seq, self.next_seq);
        let skip = usize::try_from(-i64::from(d)).unwrap_or(0);
        if skip >= payload.len() {
            stats.retransmits += 1;
            return;
        }
        let fresh = &payload[skip..];
        self.next_seq = self.next_seq.wrapping_add(fresh.len() as u32);
        if self.framer.push(fresh).is_err() {
            stats.framing_errors += 1;
            self.state = FlowState::Resync;
            return;
        }
        loop {
            match self.framer.next_message() {
                Ok(Framed::Message(m)) => emit(m),
                Ok(Framed::NeedMore) => break,
                Err(_) => {
                    stats.framing_errors += 1;
                    self.state = FlowState::Resync;
                    break;
                }
            }
        }
    }
}
