//! `sipwall inspect`: offline analysis of captures — who probed, and what sipwall would
//! have done.
//!
//! Every SIP message found by `sipwall-capture` goes through the real engine, in capture
//! order, with the capture's own timestamps as the clock. Per source (the remote peer) it
//! collects first/last seen, messages by method, answers sent to it, User-Agents, users
//! targeted, verdicts, rule ids and one sentence per rule, and the bans the engine set.
//!
//! Direction (which side is protected), decided per message:
//! 1. `--local CIDR,...` given: a message to a local address is Inbound, from one Outbound.
//! 2. Else by port: toward a guarded SIP port (the policy's guarded and tripwire ports, 5060
//!    by default, or `--ports`) and not from one: Inbound; from one and not toward one:
//!    Outbound.
//! 3. Else (both ends on SIP ports, e.g. scanners binding 5060): requests are Inbound,
//!    answers Outbound.
//!
//! The peer of an Inbound message is its source, of an Outbound one its destination.
//!
//! Several captures go through ONE engine as one stream merged by timestamp (a k-way merge:
//! captures of the same period, e.g. one per interface, or a rotated set cut oddly, are
//! interleaved, so flood and enumeration windows and bans see time move forward across
//! files). Equal timestamps go to the file given first on the command line. The merge is
//! across files only: a file whose own records are out of order is not sorted but read in
//! its own order, as a single capture would be. Each file is read, counted and reported
//! (in command-line order) on its own: a corrupt or truncated file contributes what was
//! read before the problem and its error or warnings name the byte offset; a file that
//! cannot be opened is reported and the others go on.
//!
//! Memory: the readers stream; a file's next message waits in its own reader (one pending
//! message per file, not copied; the merge heap holds one timestamp per file). Every file is
//! open at once until it ends, each with its read buffer ([`Limits::read_buffer`], 1 MiB,
//! plus 64 KiB of file buffering) and its own IP/TCP reassembly state bounded by
//! [`Limits`] (a few KiB per file in practice), so at most [`MAX_FILES`] captures are taken
//! per run (more is an error asking to merge some first, e.g. with `mergecap`): at most
//! about 272 MiB of read buffers.
//! The report keeps one bounded record per source (at most [`MAX_SOURCES`] sources
//! itemised, each with at most 8 User-Agents, 32 users and 128 timeline points, a few KiB),
//! so it does not grow with the captures' size. Messages of further sources still go
//! through the engine and are counted in the summary.
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::io::IsTerminal;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use ipnet::IpNet;
use sipwall_capture::{CaptureReader, Limits, SipPacket};
use sipwall_engine::{BanAction, Direction, Engine, Packet, Policy, Timestamp, Transport, Verdict};
use sipwall_sip::Message;

mod html;
mod report;

/// Sources itemised in the report; traffic of further sources is counted in the summary only.
pub const MAX_SOURCES: usize = 10_000;
/// Distinct User-Agents kept per source.
const MAX_AGENTS: usize = 8;
/// Distinct targeted users kept per source (the count goes on past it).
const MAX_USERS: usize = 32;
/// Timeline points per source before its resolution is halved.
const MAX_TIMELINE: usize = 128;

/// Output format of the report on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// For a person.
    Text,
    /// One JSON document.
    Json,
    /// One row per source.
    Csv,
}

/// Arguments of `sipwall inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Policy file (TOML); the built-in defaults when absent.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Only packets from or to these ports (comma separated); also taken as the SIP ports
    /// for deciding direction. Default: SIP found on any port.
    #[arg(long, value_delimiter = ',')]
    pub ports: Vec<u16>,
    /// The protected side's networks (comma separated CIDRs or addresses): messages toward
    /// them are inbound. Default: decided by port and message type.
    #[arg(long, value_delimiter = ',')]
    pub local: Vec<String>,
    /// Report format on stdout.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Also write a self-contained HTML page (timeline chart and tables) to this file.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Capture files (pcap or pcapng).
    #[arg(required = true)]
    pub captures: Vec<PathBuf>,
}

/// What happened to one capture file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FileReport {
    pub path: String,
    pub bytes_read: u64,
    pub frames: u64,
    pub sip_messages: u64,
    pub udp: u64,
    pub tcp_segments: u64,
    pub fragments_reassembled: u64,
    pub skipped_not_sip: u64,
    pub skipped_malformed: u64,
    pub skipped_other: u64,
    /// Corrupt stretches skipped (with byte offsets) where the reader could resynchronise.
    pub warnings: Vec<String>,
    /// Why reading stopped early (with the byte offset), if it did.
    pub error: Option<String>,
}

/// A ban the engine would have set.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BanReport {
    pub net: String,
    pub since_ms: u64,
    pub until_ms: u64,
    pub count: u32,
    pub rule: String,
    pub reason: String,
}

/// Everything about one remote source.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SourceReport {
    pub address: IpAddr,
    pub first_seen_ms: u64,
    pub last_seen_ms: u64,
    /// Messages from it (requests and answers).
    pub messages: u64,
    /// Requests from it, by method.
    pub methods: BTreeMap<String, u64>,
    /// Answers it received, by status code.
    pub answers_to_it: BTreeMap<u16, u64>,
    /// User-Agent values seen (bounded; `(none)` for requests without one).
    pub user_agents: BTreeSet<String>,
    /// Users targeted (request-URI or To user; bounded sample).
    pub users: BTreeSet<String>,
    /// Distinct users targeted: exact while under the sample bound, then estimated by
    /// linear counting over a 2048-bit map (a few % off up to ~10 000 users).
    pub users_count: u64,
    #[serde(skip)]
    users_bits: Box<[u64; 32]>,
    pub accepted: u64,
    pub dropped: u64,
    pub rejected: u64,
    /// Rule id -> (times, first sentence).
    pub reasons: BTreeMap<String, Reason>,
    pub bans: Vec<BanReport>,
    /// Verdict: any message refused or any ban.
    pub scanner: bool,
    /// (bucket start ms, messages); buckets of `timeline_step_ms`.
    #[serde(skip)]
    pub timeline: BTreeMap<u64, u32>,
    #[serde(skip)]
    pub timeline_step_ms: u64,
}

/// One rule that fired for a source.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Reason {
    pub count: u64,
    pub summary: String,
}

impl SourceReport {
    fn new(address: IpAddr, ms: u64) -> Self {
        SourceReport {
            address,
            first_seen_ms: ms,
            last_seen_ms: ms,
            messages: 0,
            methods: BTreeMap::new(),
            answers_to_it: BTreeMap::new(),
            user_agents: BTreeSet::new(),
            users: BTreeSet::new(),
            users_count: 0,
            users_bits: Box::new([0; 32]),
            accepted: 0,
            dropped: 0,
            rejected: 0,
            reasons: BTreeMap::new(),
            bans: Vec::new(),
            scanner: false,
            timeline: BTreeMap::new(),
            timeline_step_ms: 1000,
        }
    }

    /// Danger, for ordering: banned first, then refused messages, distinct users, messages.
    pub fn danger(&self) -> (bool, bool, u64, u64, u64) {
        (
            !self.bans.is_empty(),
            self.scanner,
            self.dropped + self.rejected,
            self.users_count,
            self.messages,
        )
    }

    fn count_user(&mut self, user: &[u8]) {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        user.hash(&mut h);
        let bit = (h.finish() % 2048) as usize;
        self.users_bits[bit / 64] |= 1 << (bit % 64);
        if self.users.len() < MAX_USERS {
            self.users_count = self.users.len() as u64;
        } else {
            let zeros: u32 = self.users_bits.iter().map(|w| w.count_zeros()).sum();
            let m = 2048.0f64;
            let est = -m * (f64::from(zeros.max(1)) / m).ln();
            self.users_count = (est.round() as u64).max(self.users.len() as u64);
        }
    }

    fn tick(&mut self, ms: u64) {
        let step = self.timeline_step_ms;
        *self.timeline.entry(ms / step * step).or_default() += 1;
        if self.timeline.len() > MAX_TIMELINE {
            // Halve the resolution: merge neighbouring buckets.
            let step = step * 2;
            let old = std::mem::take(&mut self.timeline);
            for (t, n) in old {
                *self.timeline.entry(t / step * step).or_default() += n;
            }
            self.timeline_step_ms = step;
        }
    }
}

/// The whole analysis.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Analysis {
    pub files: Vec<FileReport>,
    pub messages: u64,
    /// Messages from sources past the itemised bound (decided by the engine, counted only here).
    pub unitemised_messages: u64,
    pub first_ms: Option<u64>,
    pub last_ms: Option<u64>,
    pub sources: Vec<SourceReport>,
    pub bans: Vec<BanReport>,
}

impl Analysis {
    pub fn scanners(&self) -> usize {
        self.sources.iter().filter(|s| s.scanner).count()
    }
}

/// Count `key` in `map`, allocating only the first time a key is seen (the hot path of a
/// large capture is a handful of methods and agents seen millions of times).
fn bump(map: &mut BTreeMap<String, u64>, key: &[u8]) {
    match std::str::from_utf8(key).ok().and_then(|k| map.get_mut(k)) {
        Some(n) => *n += 1,
        None => *map.entry(lossy(key, 32)).or_default() += 1,
    }
}

/// Insert `value` (as text) into a bounded set; allocates only for a new value.
fn remember(set: &mut BTreeSet<String>, value: &[u8], max_len: usize, cap: usize) -> bool {
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
    local: Vec<IpNet>,
    sip_ports: Vec<u16>,
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

/// Called with the bytes read so far (all files) as the read progresses.
pub type Progress<'a> = &'a mut dyn FnMut(u64);

/// Most capture files `inspect` takes in one run (see the module docs: every file is open
/// at once, each with its own read buffer and reassembly state).
pub const MAX_FILES: usize = 256;

/// The engine and what is gathered from its decisions, fed one message at a time.
struct Tally {
    rule: DirectionRule,
    engine: Engine,
    sources: HashMap<IpAddr, SourceReport>,
    analysis: Analysis,
}

/// One capture being read: its report so far and, while it has messages left, its reader.
struct Input {
    file: FileReport,
    reader: Option<CaptureReader>,
}

impl Input {
    fn open(path: &Path, ports: &[u16]) -> Self {
        let mut file = FileReport {
            path: path.display().to_string(),
            bytes_read: 0,
            frames: 0,
            sip_messages: 0,
            udp: 0,
            tcp_segments: 0,
            fragments_reassembled: 0,
            skipped_not_sip: 0,
            skipped_malformed: 0,
            skipped_other: 0,
            warnings: Vec::new(),
            error: None,
        };
        let opened =
            std::fs::File::open(path).map_err(sipwall_capture::CaptureError::from).and_then(|f| {
                CaptureReader::new(std::io::BufReader::with_capacity(1 << 16, f), Limits::default())
            });
        let reader = match opened {
            Ok(mut r) => {
                if !ports.is_empty() {
                    r.set_ports(Some(ports.to_vec()));
                }
                Some(r)
            }
            Err(e) => {
                file.error = Some(e.to_string());
                None
            }
        };
        Input { file, reader }
    }

    /// Timestamp of this file's next message; `None` once it has none left, when its
    /// counters are copied into the report and the file is closed.
    fn next_ts(&mut self) -> Option<Duration> {
        let reader = self.reader.as_mut()?;
        match reader.peek_ts() {
            Ok(Some(ts)) => return Some(ts),
            Ok(None) => {}
            Err(e) => self.file.error = Some(e.to_string()),
        }
        let file = &mut self.file;
        file.warnings = reader.warnings().to_vec();
        let st = reader.stats();
        file.bytes_read = st.bytes;
        file.frames = st.frames;
        file.sip_messages = st.sip_messages;
        file.udp = st.udp;
        file.tcp_segments = st.tcp_segments;
        file.fragments_reassembled = st.reassembled;
        file.skipped_not_sip = st.not_sip + st.port_filtered;
        file.skipped_malformed = st.malformed;
        file.skipped_other =
            st.not_ip + st.unsupported_linktype + st.fragments_dropped + st.tcp_gaps;
        self.reader = None;
        None
    }

    /// Bytes of the file read so far.
    fn position(&self) -> u64 {
        self.reader.as_ref().map_or(self.file.bytes_read, CaptureReader::position)
    }
}

/// Run the engine over the captures, merged by timestamp, and gather the report.
/// The caller bounds the number of files ([`MAX_FILES`]): all are open at once.
pub fn analyse(
    captures: &[PathBuf],
    policy: Policy,
    ports: &[u16],
    local: Vec<IpNet>,
    progress: Progress<'_>,
) -> Analysis {
    let sip_ports = if ports.is_empty() { policy.ports_to_guard() } else { ports.to_vec() };
    let mut tally = Tally {
        rule: DirectionRule { local, sip_ports },
        engine: Engine::new(policy),
        sources: HashMap::new(),
        analysis: Analysis {
            files: Vec::new(),
            messages: 0,
            unitemised_messages: 0,
            first_ms: None,
            last_ms: None,
            sources: Vec::new(),
            bans: Vec::new(),
        },
    };
    let mut inputs: Vec<Input> = captures.iter().map(|p| Input::open(p, ports)).collect();
    // K-way merge: the heap holds each open file's next timestamp, the message itself stays
    // in its reader. Ties go to the file given first; within a file, its own order.
    let mut heap: BinaryHeap<Reverse<(Duration, usize)>> = BinaryHeap::new();
    for (i, input) in inputs.iter_mut().enumerate() {
        if let Some(ts) = input.next_ts() {
            heap.push(Reverse((ts, i)));
        }
    }
    let mut n = 0u64;
    while let Some(Reverse((_, i))) = heap.pop() {
        if n % 4096 == 0 {
            progress(inputs.iter().map(Input::position).sum());
        }
        n += 1;
        let input = &mut inputs[i];
        if let Some(reader) = input.reader.as_mut() {
            // Peeked, so a message is there (an error would have come at the peek).
            if let Ok(Some(pkt)) = reader.next_packet() {
                tally.message(&pkt);
            }
        }
        if let Some(ts) = input.next_ts() {
            heap.push(Reverse((ts, i)));
        }
    }
    progress(inputs.iter().map(Input::position).sum());
    let Tally { sources, mut analysis, .. } = tally;
    analysis.files = inputs.into_iter().map(|i| i.file).collect();
    let mut list: Vec<SourceReport> = sources.into_values().collect();
    list.sort_by(|a, b| b.danger().cmp(&a.danger()).then(a.address.cmp(&b.address)));
    analysis.sources = list;
    analysis
}

impl Tally {
    /// One SIP message through the engine, and into the report.
    fn message(&mut self, pkt: &SipPacket<'_>) {
        let Tally { rule, engine, sources, analysis } = self;
        let ms = pkt.ts.as_millis() as u64;
        analysis.first_ms = Some(analysis.first_ms.map_or(ms, |f| f.min(ms)));
        analysis.last_ms = Some(analysis.last_ms.map_or(ms, |l| l.max(ms)));
        analysis.messages += 1;
        let msg = Message::parse(pkt.payload).ok();
        let is_request =
            msg.as_ref().map_or_else(|| !pkt.payload.starts_with(b"SIP/"), |m| m.is_request());
        let direction = rule.direction(pkt.src, pkt.dst, is_request);
        let transport = match pkt.transport {
            sipwall_capture::Transport::Udp => Transport::Udp,
            sipwall_capture::Transport::Tcp => Transport::Tcp,
        };
        let packet =
            Packet { src: pkt.src, dst: pkt.dst, transport, direction, payload: pkt.payload };
        let decision = engine.decide(&packet, Timestamp(pkt.ts));
        let peer = match direction {
            Direction::Inbound => pkt.src.ip(),
            Direction::Outbound => pkt.dst.ip(),
        };
        let peer = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
            v4 => v4,
        };
        for action in &decision.bans {
            if let BanAction::Add(b) = action {
                let br = BanReport {
                    net: b.net.to_string(),
                    since_ms: b.since.as_millis(),
                    until_ms: b.until.as_millis(),
                    count: b.count,
                    rule: b.rule.clone(),
                    reason: b.reason.clone(),
                };
                if let Some(s) = sources.get_mut(&peer) {
                    if b.net.contains(&peer) {
                        s.bans.push(br.clone());
                    }
                }
                analysis.bans.push(br);
            }
        }
        if !sources.contains_key(&peer) && sources.len() >= MAX_SOURCES {
            analysis.unitemised_messages += 1;
            return;
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
        s.first_seen_ms = s.first_seen_ms.min(ms);
        s.last_seen_ms = s.last_seen_ms.max(ms);
        s.tick(ms);
        match decision.verdict {
            Verdict::Accept => s.accepted += 1,
            Verdict::Drop => s.dropped += 1,
            Verdict::Reject(_) => s.rejected += 1,
        }
        if decision.verdict != Verdict::Accept || !decision.bans.is_empty() {
            s.scanner = true;
        }
        if let Some(rec) = &decision.record {
            let r = s
                .reasons
                .entry(rec.rule.to_string())
                .or_insert_with(|| Reason { count: 0, summary: rec.summary.clone() });
            r.count += 1;
        }
        match (&msg, direction) {
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
}

fn load_policy(config: Option<&Path>) -> anyhow::Result<Policy> {
    match config {
        Some(path) => Ok(crate::config::load(path)?.policy),
        None => Ok(Policy::default()),
    }
}

fn parse_local(list: &[String]) -> anyhow::Result<Vec<IpNet>> {
    list.iter()
        .map(|s| {
            let s = s.trim();
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .with_context(|| format!("--local: `{s}` is not an address or CIDR"))
        })
        .collect()
}

pub fn main(args: InspectArgs) -> anyhow::Result<ExitCode> {
    if args.captures.len() > MAX_FILES {
        anyhow::bail!(
            "{} capture files given, at most {MAX_FILES} are read at once (each stays open for \
             the merge by time): merge some first, e.g. `mergecap -w merged.pcapng a.pcap b.pcap`",
            args.captures.len()
        );
    }
    let policy = load_policy(args.config.as_deref())?;
    let local = parse_local(&args.local)?;
    let total: u64 =
        args.captures.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} reading captures {bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Some(bar)
    } else {
        None
    };
    let mut progress = |done: u64| {
        if let Some(b) = &bar {
            b.set_position(done);
        }
    };
    let analysis = analyse(&args.captures, policy, &args.ports, local, &mut progress);
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let out = match args.format {
        Format::Text => report::text(&analysis),
        Format::Json => report::json(&analysis)?,
        Format::Csv => report::csv(&analysis),
    };
    {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(out.as_bytes()).context("writing the report")?;
    }
    if let Some(path) = &args.html {
        std::fs::write(path, html::page(&analysis))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    for f in &analysis.files {
        for w in &f.warnings {
            eprintln!("sipwall inspect: {}: {w}", f.path);
        }
        if let Some(e) = &f.error {
            eprintln!(
                "sipwall inspect: {}: {e} (read {} records, {} SIP messages before that)",
                f.path, f.frames, f.sip_messages
            );
        }
    }
    // Non-zero only when nothing at all could be read.
    if analysis.files.iter().all(|f| f.frames == 0 && f.error.is_some()) {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_users_exact_then_estimated() {
        let mut s = SourceReport::new("203.0.113.10".parse().unwrap(), 0);
        for round in 0..3 {
            for i in 0..20 {
                let u = format!("{}", 100 + i);
                remember(&mut s.users, u.as_bytes(), 64, MAX_USERS);
                s.count_user(u.as_bytes());
            }
            assert_eq!(s.users_count, 20, "round {round}: repeats do not count");
        }
        for i in 0..2000 {
            let u = format!("{}", 5000 + i);
            remember(&mut s.users, u.as_bytes(), 64, MAX_USERS);
            s.count_user(u.as_bytes());
        }
        assert_eq!(s.users.len(), MAX_USERS, "sample bounded");
        let n = s.users_count as f64;
        assert!((n - 2020.0).abs() / 2020.0 < 0.1, "estimate {n}");
    }

    #[test]
    fn direction_rule() {
        let rule = DirectionRule { local: vec![], sip_ports: vec![5060] };
        let a = |s: &str| s.parse::<std::net::SocketAddr>().unwrap();
        assert_eq!(
            rule.direction(a("198.51.100.20:5070"), a("192.0.2.10:5060"), true),
            Direction::Inbound
        );
        assert_eq!(
            rule.direction(a("192.0.2.10:5060"), a("198.51.100.20:5070"), false),
            Direction::Outbound
        );
        // both on 5060 (a scanner binding 5060): requests in, answers out
        assert_eq!(
            rule.direction(a("203.0.113.10:5060"), a("192.0.2.10:5060"), true),
            Direction::Inbound
        );
        assert_eq!(
            rule.direction(a("192.0.2.10:5060"), a("203.0.113.10:5060"), false),
            Direction::Outbound
        );
        // --local wins: the PBX calling out to a provider on 5060
        let rule =
            DirectionRule { local: vec!["192.0.2.0/24".parse().unwrap()], sip_ports: vec![5060] };
        assert_eq!(
            rule.direction(a("192.0.2.10:5060"), a("198.51.100.20:5060"), true),
            Direction::Outbound
        );
        assert_eq!(
            rule.direction(a("198.51.100.20:5060"), a("192.0.2.10:5060"), false),
            Direction::Inbound
        );
    }

    #[test]
    fn timeline_stays_bounded() {
        let mut s = SourceReport::new("203.0.113.10".parse().unwrap(), 0);
        for i in 0..100_000u64 {
            s.tick(i * 1000);
        }
        assert!(s.timeline.len() <= MAX_TIMELINE);
        assert_eq!(s.timeline.values().map(|&n| u64::from(n)).sum::<u64>(), 100_000);
    }
}
