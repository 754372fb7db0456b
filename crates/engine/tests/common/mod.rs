//! Helpers shared by the engine's integration tests: packets, and recorded scenarios.
#![allow(dead_code)]
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use sipwall_engine::{Decision, Direction, Engine, Packet, Timestamp, Transport};

/// The protected PBX.
pub const PBX: &str = "192.0.2.10:5060";
/// Base time of replays (2025-01-01T00:00:00Z).
pub const T0: u64 = 1_735_689_600_000;

pub fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub fn inbound<'a>(src: &str, payload: &'a [u8]) -> Packet<'a> {
    Packet {
        src: sa(src),
        dst: sa(PBX),
        transport: Transport::Udp,
        direction: Direction::Inbound,
        payload,
    }
}

pub fn outbound<'a>(dst: &str, payload: &'a [u8]) -> Packet<'a> {
    Packet {
        src: sa(PBX),
        dst: sa(dst),
        transport: Transport::Udp,
        direction: Direction::Outbound,
        payload,
    }
}

pub fn at(ms: u64) -> Timestamp {
    Timestamp::from_millis(T0 + ms)
}

/// One recorded datagram.
#[derive(Clone, Debug)]
pub struct Datagram {
    pub n: usize,
    pub inbound: bool,
    pub t_ms: u64,
    pub bytes: Vec<u8>,
}

/// A recorded scenario (see scripts/record-scanner-scenarios.py).
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: String,
    pub meta: Vec<(String, String)>,
    pub datagrams: Vec<Datagram>,
}

pub fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios")
}

pub fn load(name: &str) -> Scenario {
    let dir = scenarios_dir().join(name);
    let meta_text = std::fs::read_to_string(dir.join("meta.txt")).unwrap_or_else(|e| {
        panic!("scenario {name}: {e} (record with scripts/record-scanner-scenarios.py)")
    });
    let mut meta = Vec::new();
    let mut datagrams = Vec::new();
    for line in meta_text.lines() {
        if let Some(kv) = line.strip_prefix("# ") {
            if let Some((k, v)) = kv.split_once(": ") {
                meta.push((k.to_string(), v.to_string()));
            }
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 3 {
            continue;
        }
        let n: usize = f[0].parse().unwrap();
        let bytes = std::fs::read(dir.join(format!("{}-{}.sip", f[0], f[1]))).unwrap();
        datagrams.push(Datagram { n, inbound: f[1] == "in", t_ms: f[2].parse().unwrap(), bytes });
    }
    assert!(!datagrams.is_empty(), "scenario {name} is empty");
    Scenario { name: name.to_string(), meta, datagrams }
}

/// How to alter a scanner's User-Agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ua {
    AsRecorded,
    /// Rewritten to an ordinary phone's (added when the tool sent none).
    Forged,
    /// Removed.
    Removed,
}

pub const FORGED_UA: &[u8] = b"Yealink SIP-T46S 66.86.0.15";

/// Rewrite or remove the User-Agent header line of a message.
pub fn alter_ua(msg: &[u8], ua: Ua) -> Vec<u8> {
    if ua == Ua::AsRecorded {
        return msg.to_vec();
    }
    let mut out = Vec::with_capacity(msg.len() + 32);
    let mut rest = msg;
    let mut in_headers = true;
    while !rest.is_empty() {
        let end = rest.iter().position(|&b| b == b'\n').map_or(rest.len(), |i| i + 1);
        let line = &rest[..end];
        rest = &rest[end..];
        if in_headers && (line == b"\r\n" || line == b"\n") {
            in_headers = false;
        }
        if in_headers && line.len() > 11 && line[..11].eq_ignore_ascii_case(b"user-agent:") {
            if ua == Ua::Forged {
                out.extend_from_slice(b"User-Agent: ");
                out.extend_from_slice(FORGED_UA);
                out.extend_from_slice(b"\r\n");
            }
            continue;
        }
        out.extend_from_slice(line);
    }
    if ua == Ua::Forged && out.len() == msg.len() {
        // No User-Agent was sent (compact mode): add the forged one after the start line.
        let first = out.iter().position(|&b| b == b'\n').map_or(out.len(), |i| i + 1);
        let mut line = b"User-Agent: ".to_vec();
        line.extend_from_slice(FORGED_UA);
        line.extend_from_slice(b"\r\n");
        out.splice(first..first, line);
    }
    out
}

/// Result of replaying a scenario.
pub struct Replay {
    pub decisions: Vec<(Datagram, Decision)>,
    /// Index (1-based, counting inbound datagrams only) of the first inbound datagram whose
    /// decision banned the peer, if any.
    pub banned_at_inbound: Option<usize>,
    pub end: Timestamp,
}

/// Replay `sc` with the peer at `peer` (ip:port), altering inbound User-Agents as asked.
pub fn replay(engine: &mut Engine, sc: &Scenario, peer: &str, ua: Ua, start_ms: u64) -> Replay {
    let mut decisions = Vec::new();
    let mut banned_at = None;
    let mut n_in = 0;
    let mut end = at(start_ms);
    for d in &sc.datagrams {
        let bytes = if d.inbound { alter_ua(&d.bytes, ua) } else { d.bytes.clone() };
        let p = if d.inbound { inbound(peer, &bytes) } else { outbound(peer, &bytes) };
        if d.inbound {
            n_in += 1;
        }
        let now = at(start_ms + d.t_ms);
        end = now;
        let dec = engine.decide(&p, now);
        if banned_at.is_none() && !dec.bans.is_empty() {
            banned_at = Some(n_in);
        }
        decisions.push((d.clone(), dec));
    }
    Replay { decisions, banned_at_inbound: banned_at, end }
}
