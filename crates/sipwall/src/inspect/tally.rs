//! One message at a time through the engine, and into the report: the direction rule, the
//! engine's decision, the bans it set, and the per-source counts.
//!
//! Each message is parsed once: here, because the direction (needed to build the engine's
//! `Packet`) depends on whether it is a request; the parse is then handed to the engine
//! (`Rules::analyse_parsed`), which keeps it in its `Analysis`, and the counts read it back
//! from there (`Analysis::message`).
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;
use sipwall_capture::SipPacket;
use sipwall_engine::{
    BanAction, Decision, Direction, Engine, Packet, Timestamp, Transport, Verdict,
};
use sipwall_sip::Message;

use super::model::{Analysis, BanReport, Reason, SourceReport, MAX_AGENTS, MAX_SOURCES, MAX_USERS};

/// Count `key` in `map`, allocating only the first time a key is seen (the hot path of a
/// large capture is a handful of methods and agents seen millions of times).
pub(super) fn bump(map: &mut BTreeMap<String, u64>, key: &[u8]) {
    match std::str::from_utf8(key).ok().and_then(|k| map.get_mut(k)) {
        Some(n) => *n += 1,
        None => *map.entry(lossy(key, 32)).or_default() += 1,
    }
}

/// Insert `value` (as text) into a bounded set; allocates only for a new value.
pub(super) fn remember(
    set: &mut BTreeSet<String>,
    value: &[u8],
    max_len: usize,
    cap: usize,
) -> bool {
    if std::str::from_utf8(value).is_ok_and(|v| set.contains(v)) {
        return false;
    }
    let v = lossy(value, max_len);
    if set.contains(&v) {
        return false;
    }
    if set.len() < cap {
        set.insert(v);
    }
    true
}

fn lossy(b: &[u8], max: usize) -> String {
    let s = String::from_utf8_lossy(&b[..b.len().min(max)]);
    s.chars().filter(|c| !c.is_control()).collect()
}

/// Which way a message goes (see the module docs).
pub struct DirectionRule {
    pub(super) local: Vec<IpNet>,
    pub(super) sip_ports: Vec<u16>,
}

impl DirectionRule {
    pub fn direction(
        &self,
        src: std::net::SocketAddr,
        dst: std::net::SocketAddr,
        is_request: bool,
    ) -> Direction {
        if !self.local.is_empty() {
            let dst_local = self.local.iter().any(|n| n.contains(&dst.ip()));
            let src_local = self.local.iter().any(|n| n.contains(&src.ip()));
            if dst_local && !src_local {
                return Direction::Inbound;
            }
            if src_local && !dst_local {
                return Direction::Outbound;
            }
        }
        let to_sip = self.sip_ports.contains(&dst.port());
        let from_sip = self.sip_ports.contains(&src.port());
        match (to_sip, from_sip) {
            (true, false) => Direction::Inbound,
            (false, true) => Direction::Outbound,
            _ if is_request => Direction::Inbound,
            _ => Direction::Outbound,
        }
    }
}

/// The engine and what is gathered from its decisions, fed one message at a time.
pub(super) struct Tally {
    pub(super) rule: DirectionRule,
    pub(super) engine: Engine,
    pub(super) sources: HashMap<IpAddr, SourceReport>,
    pub(super) analysis: Analysis,
}

impl Tally {
    /// One SIP message through the engine, and into the report.
    pub(super) fn message(&mut self, pkt: &SipPacket<'_>) {
        let ms = pkt.ts.as_millis() as u64;
        self.observe_time(ms);
        // Parsed once: here for the direction, then handed to the engine, which keeps it.
        let parsed = Message::parse(pkt.payload);
        let is_request =
            parsed.as_ref().map_or_else(|_| !pkt.payload.starts_with(b"SIP/"), |m| m.is_request());
        let direction = self.rule.direction(pkt.src, pkt.dst, is_request);
        let packet = self.packet(pkt, direction);
        let rules = self.engine.rules().clone();
        let analysis = rules.analyse_parsed(&packet, parsed);
        let decision = self.engine.decide_analysed(&packet, &analysis, Timestamp(pkt.ts));
        let msg = analysis.message();
        let peer = peer_of(pkt, direction);
        self.record_bans(&decision.bans, peer);
        let Some(s) = self.source(peer, ms) else {
            self.analysis.unitemised_messages += 1;
            return;
        };
        s.first_seen_ms = s.first_seen_ms.min(ms);
        s.last_seen_ms = s.last_seen_ms.max(ms);
        s.tick(ms);
        count_verdict(s, &decision);
        count_message(s, msg, direction);
    }

    /// The capture's span and message count.
    fn observe_time(&mut self, ms: u64) {
        let a = &mut self.analysis;
        a.first_ms = Some(a.first_ms.map_or(ms, |f| f.min(ms)));
        a.last_ms = Some(a.last_ms.map_or(ms, |l| l.max(ms)));
        a.messages += 1;
    }

    /// The engine's view of a captured message.
    fn packet<'a>(&self, pkt: &SipPacket<'a>, direction: Direction) -> Packet<'a> {
        let transport = match pkt.transport {
            sipwall_capture::Transport::Udp => Transport::Udp,
            sipwall_capture::Transport::Tcp => Transport::Tcp,
        };
        Packet { src: pkt.src, dst: pkt.dst, transport, direction, payload: pkt.payload }
    }

    /// Bans the engine set: into the report's list, and to the peer's record when it is
    /// covered and already itemised.
    fn record_bans(&mut self, bans: &[BanAction], peer: IpAddr) {
        for action in bans {
            if let BanAction::Add(b) = action {
                let br = BanReport {
                    net: b.net.to_string(),
                    since_ms: b.since.as_millis(),
                    until_ms: b.until.as_millis(),
                    count: b.count,
                    rule: b.rule.clone(),
                    reason: b.reason.clone(),
                };
                if let Some(s) = self.sources.get_mut(&peer) {
                    if b.net.contains(&peer) {
                        s.bans.push(br.clone());
                    }
                }
                self.analysis.bans.push(br);
            }
        }
    }

    /// The peer's record, created on first sight (with a ban set on this very message);
    /// `None` past [`MAX_SOURCES`].
    fn source(&mut self, peer: IpAddr, ms: u64) -> Option<&mut SourceReport> {
        let Tally { sources, analysis, .. } = self;
        if !sources.contains_key(&peer) && sources.len() >= MAX_SOURCES {
            return None;
        }
        let s = sources.entry(peer).or_insert_with(|| SourceReport::new(peer, ms));
        if s.bans.is_empty() {
            // A ban created on this very message (the source was just inserted).
            for b in &analysis.bans {
                if b.since_ms == ms && b.net.parse::<IpNet>().is_ok_and(|n| n.contains(&peer)) {
                    s.bans.push(b.clone());
                }
            }
        }
        Some(s)
    }
}

/// The remote side: the source of an inbound message, the destination of an outbound one
/// (IPv4-mapped IPv6 as IPv4).
fn peer_of(pkt: &SipPacket<'_>, direction: Direction) -> IpAddr {
    let peer = match direction {
        Direction::Inbound => pkt.src.ip(),
        Direction::Outbound => pkt.dst.ip(),
    };
    match peer {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
        v4 => v4,
    }
}

/// Verdicts, the scanner flag, and the rule that spoke with its sentence.
fn count_verdict(s: &mut SourceReport, decision: &Decision) {
    match decision.verdict {
        Verdict::Accept => s.accepted += 1,
        Verdict::Drop => s.dropped += 1,
        Verdict::Reject(_) => s.rejected += 1,
    }
    // A decision may also lift bans (learning made an address protected): not a scanner's.
    if decision.verdict != Verdict::Accept
        || decision.bans.iter().any(|b| matches!(b, BanAction::Add(_)))
    {
        s.scanner = true;
    }
    if let Some(rec) = &decision.record {
        let r = s
            .reasons
            .entry(rec.rule.to_string())
            .or_insert_with(|| Reason { count: 0, summary: rec.summary.clone() });
        r.count += 1;
    }
}

/// What the message says about the peer: its requests (method, User-Agent, users targeted),
/// its answers, and the answers the protected side gave it.
fn count_message(s: &mut SourceReport, msg: Option<&Message<'_>>, direction: Direction) {
    match (msg, direction) {
        (Some(m), Direction::Inbound) if m.is_request() => {
            s.messages += 1;
            bump(&mut s.methods, m.method().map_or(&b"?"[..], |x| x.as_bytes()));
            remember(&mut s.user_agents, m.user_agent().unwrap_or(b"(none)"), 80, MAX_AGENTS);
            let user = m
                .request_uri()
                .and_then(|u| u.user)
                .filter(|u| !u.is_empty())
                .or_else(|| m.to().and_then(|t| t.uri.user));
            if let Some(u) = user {
                remember(&mut s.users, u, 64, MAX_USERS);
                s.count_user(u);
            }
        }
        (Some(m), Direction::Outbound) if !m.is_request() => {
            if let Some(code) = m.status() {
                *s.answers_to_it.entry(code).or_default() += 1;
            }
        }
        (Some(m), Direction::Inbound) => {
            // An answer from the peer (to a call we placed).
            s.messages += 1;
            if let Some(code) = m.status() {
                *s.methods.entry(format!("answer {code}")).or_default() += 1;
            }
        }
        // A request the protected side sent to the peer: nothing to count for it.
        (Some(_), Direction::Outbound) => {}
        (None, Direction::Inbound) => {
            s.messages += 1;
            *s.methods.entry("(malformed)".into()).or_default() += 1;
        }
        (None, Direction::Outbound) => {}
    }
}
