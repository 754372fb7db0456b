//! The report's model: what `inspect` learns per file, per source and per ban, bounded per
//! source (module docs of [`super`]). Filled by [`super::tally`], rendered by `report` and
//! `html`.
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// Sources itemised in the report; traffic of further sources is counted in the summary only.
pub const MAX_SOURCES: usize = 10_000;
/// Distinct User-Agents kept per source.
pub(super) const MAX_AGENTS: usize = 8;
/// Distinct targeted users kept per source (the count goes on past it).
pub(super) const MAX_USERS: usize = 32;
/// Timeline points per source before its resolution is halved.
pub(super) const MAX_TIMELINE: usize = 128;

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
    pub(super) fn new(address: IpAddr, ms: u64) -> Self {
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

    pub(super) fn count_user(&mut self, user: &[u8]) {
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

    pub(super) fn tick(&mut self, ms: u64) {
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

/// One fact the engine's learning would have learned from the captures (`[learn]`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct LearnedReport {
    /// `upstream`, `user` or `known-good`.
    pub kind: String,
    /// The address or the user.
    pub value: String,
    pub first_seen_ms: u64,
    pub last_seen_ms: u64,
    /// Which transaction proved it.
    pub evidence: String,
}

/// A campaign (many new sources sharing a target user or a fingerprint) seen in the captures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CampaignReport {
    /// `target-user` or `fingerprint`.
    pub kind: String,
    /// The user, or the fingerprint in hex.
    pub key: String,
    pub label: String,
    pub sources: u64,
    pub first_seen_ms: u64,
    pub last_seen_ms: u64,
}

/// What learning made of the captures.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LearningReport {
    /// `auto` or `off` (`[learn] mode`).
    pub mode: String,
    /// Whether the unsolicited-INVITE rule was in force by the end (an upstream was learned).
    pub enforcing: bool,
    pub learned: Vec<LearnedReport>,
    pub campaigns: Vec<CampaignReport>,
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
    /// Learned facts and campaigns (the same learning `sipwall run` does).
    pub learning: LearningReport,
}

impl Analysis {
    pub fn scanners(&self) -> usize {
        self.sources.iter().filter(|s| s.scanner).count()
    }
}
