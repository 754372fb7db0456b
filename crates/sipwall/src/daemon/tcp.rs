//! Per-connection TCP state for the inline path: each direction of a connection has a
//! `StreamFramer` that cuts the byte stream into SIP messages; each complete message is judged.
//!
//! Design (kept simple on purpose):
//! * The verdict is per segment, the decision per connection: once a message of a connection is
//!   dropped, the connection is marked and every later segment (retransmissions included) is
//!   dropped, so the receiver never completes that message.
//! * Only in-order bytes are framed (`seq == next_seq`). Retransmissions of accepted bytes are
//!   accepted again without reframing; a gap (lost or reordered segment) resets the framer at
//!   the new position (the stream may resynchronise only at a later message).
//! * Memory is bounded: at most `max_flows` connections; when full, idle ones (> 120 s) go
//!   first, then the least recently seen. A framer buffers at most `MAX_STREAM_BUFFER`; a
//!   connection that overflows it is dropped (no legitimate SIP message is that large).
//! * SYN starts (or restarts) a flow; FIN/RST end it after the segment is judged.
use std::collections::HashMap;
use std::net::SocketAddr;

use sipwall_netfilter::{QueueVerdict, TcpInfo};
use sipwall_sip::{Framed, StreamFramer};

/// Idle time after which a flow is the first to be evicted, in milliseconds.
const IDLE_MS: u64 = 120_000;

#[derive(Debug)]
struct Flow {
    framer: StreamFramer,
    next_seq: Option<u32>,
    dropped: bool,
    last_seen_ms: u64,
}

/// TCP flows of one queue.
#[derive(Debug)]
pub struct TcpTracker {
    flows: HashMap<(SocketAddr, SocketAddr), Flow>,
    max_flows: usize,
    /// Flows evicted to stay within the bound.
    pub evicted: u64,
}

impl TcpTracker {
    /// Track at most `max_flows` connection directions.
    pub fn new(max_flows: usize) -> Self {
        TcpTracker { flows: HashMap::new(), max_flows: max_flows.max(1), evicted: 0 }
    }

    /// Flows tracked.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    fn make_room(&mut self, now_ms: u64) {
        if self.flows.len() < self.max_flows {
            return;
        }
        let before = self.flows.len();
        self.flows.retain(|_, f| now_ms.saturating_sub(f.last_seen_ms) < IDLE_MS);
        if self.flows.len() >= self.max_flows {
            if let Some(k) = self.flows.iter().min_by_key(|(_, f)| f.last_seen_ms).map(|(k, _)| *k)
            {
                self.flows.remove(&k);
            }
        }
        self.evicted += (before - self.flows.len()) as u64;
    }

    /// Judge one segment. `judge(message)` returns true to drop the message (and the
    /// connection from then on).
    pub fn on_segment(
        &mut self,
        src: SocketAddr,
        dst: SocketAddr,
        tcp: TcpInfo,
        payload: &[u8],
        now_ms: u64,
        mut judge: impl FnMut(&[u8]) -> bool,
    ) -> QueueVerdict {
        let key = (src, dst);
        if tcp.syn {
            self.flows.remove(&key);
        }
        if !self.flows.contains_key(&key) {
            if payload.is_empty() && !tcp.syn {
                return QueueVerdict::Accept; // bare ACK/FIN of an untracked flow
            }
            self.make_room(now_ms);
            let next_seq = if tcp.syn { tcp.seq.wrapping_add(1) } else { tcp.seq };
            self.flows.insert(
                key,
                Flow {
                    framer: StreamFramer::new(),
                    next_seq: Some(next_seq),
                    dropped: false,
                    last_seen_ms: now_ms,
                },
            );
        }
        let end = tcp.fin || tcp.rst;
        let verdict = match self.flows.get_mut(&key) {
            None => QueueVerdict::Accept,
            Some(flow) => {
                flow.last_seen_ms = now_ms;
                Self::segment(flow, tcp, payload, &mut judge)
            }
        };
        if end {
            self.flows.remove(&key);
        }
        verdict
    }

    fn segment(
        flow: &mut Flow,
        tcp: TcpInfo,
        payload: &[u8],
        judge: &mut impl FnMut(&[u8]) -> bool,
    ) -> QueueVerdict {
        if flow.dropped {
            return QueueVerdict::Drop;
        }
        if payload.is_empty() {
            return QueueVerdict::Accept;
        }
        let len = payload.len() as u32;
        let seq = if tcp.syn { tcp.seq.wrapping_add(1) } else { tcp.seq };
        match flow.next_seq {
            Some(next) if seq == next => {}
            Some(next) if (next.wrapping_sub(seq) as i32) > 0 => {
                // Retransmission of bytes already framed and accepted.
                return QueueVerdict::Accept;
            }
            _ => {
                // Gap: restart framing here.
                flow.framer = StreamFramer::new();
            }
        }
        flow.next_seq = Some(seq.wrapping_add(len));
        if flow.framer.push(payload).is_err() {
            flow.dropped = true;
            return QueueVerdict::Drop;
        }
        loop {
            match flow.framer.next_message() {
                Ok(Framed::Message(m)) => {
                    if judge(m) {
                        flow.dropped = true;
                        return QueueVerdict::Drop;
                    }
                }
                Ok(Framed::NeedMore) => return QueueVerdict::Accept,
                Err(_) => {
                    flow.dropped = true;
                    return QueueVerdict::Drop;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(seq: u32) -> TcpInfo {
        TcpInfo { seq, syn: false, fin: false, rst: false }
    }

    const MSG: &[u8] =
        b"OPTIONS sip:100@192.0.2.1 SIP/2.0\r\nUser-Agent: friendly-scanner\r\nContent-Length: 0\r\n\r\n";

    fn addrs() -> (SocketAddr, SocketAddr) {
        ("203.0.113.5:40000".parse().unwrap(), "192.0.2.1:5060".parse().unwrap())
    }

    #[test]
    fn message_split_across_segments_is_judged_once_whole_and_the_flow_stays_dropped() {
        let (s, d) = addrs();
        let mut t = TcpTracker::new(8);
        let syn = TcpInfo { seq: 99, syn: true, fin: false, rst: false };
        let mut judged = Vec::new();
        let mut j = |m: &[u8]| {
            judged.push(m.to_vec());
            m.windows(16).any(|w| w == b"friendly-scanner")
        };
        assert_eq!(t.on_segment(s, d, syn, &[], 0, &mut j), QueueVerdict::Accept);
        assert_eq!(t.on_segment(s, d, info(100), &MSG[..30], 1, &mut j), QueueVerdict::Accept);
        // retransmission of the first part: accepted, not framed twice
        assert_eq!(t.on_segment(s, d, info(100), &MSG[..30], 2, &mut j), QueueVerdict::Accept);
        assert_eq!(t.on_segment(s, d, info(130), &MSG[30..], 3, &mut j), QueueVerdict::Drop);
        assert_eq!(t.on_segment(s, d, info(130), &MSG[30..], 4, &mut j), QueueVerdict::Drop);
        assert_eq!(judged, vec![MSG.to_vec()]);
    }

    #[test]
    fn flows_are_bounded() {
        let d: SocketAddr = "192.0.2.1:5060".parse().unwrap();
        let mut t = TcpTracker::new(4);
        for p in 0..10u16 {
            let s = SocketAddr::new("203.0.113.5".parse().unwrap(), 40000 + p);
            t.on_segment(s, d, info(1), b"OPT", p as u64, |_| false);
        }
        assert_eq!(t.len(), 4);
        assert_eq!(t.evicted, 6);
    }
}
