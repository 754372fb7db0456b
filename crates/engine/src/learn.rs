//! Learning from the wire: what an operator would otherwise have to type.
//!
//! CONTRACT:
//! * Pure and bounded like the rest of the engine: time is passed in, every table has a
//!   capacity from `[learn]`, and nothing grows with the number of sources an attacker forges.
//! * Four kinds of facts, each with first seen, last seen and evidence (which transaction
//!   proved it), and a `pinned` flag (pinned facts are never evicted nor forgotten):
//!   - **upstream** (an address): a peer that answered one of the protected side's own
//!     outbound requests: an outbound REGISTER answered 2xx, or an outbound initial INVITE
//!     answered 2xx or 1xx with a To tag. Accepted like a trusted network, never banned.
//!   - **local user**: the To user of a REGISTER answered 2xx (our registration at an upstream,
//!     or a phone's authenticated registration that the protected side accepted), and the
//!     From user of an outbound INVITE answered as above.
//!   - **known-good client** (an address): a source whose request carried digest credentials
//!     after the protected side challenged it (401/407 on the same Call-ID) and that the
//!     protected side then answered 2xx. Never inside an automatic aggregate; an exact ban from
//!     a strong signature still applies. Expires `known_good_secs` after its last success.
//! * EVIDENCE RULES (what a forged packet cannot give):
//!   - Only the protected side's outbound packets start or complete learning: an outbound
//!     REGISTER or initial INVITE opens a pending transaction; an outbound 401/407 marks a
//!     challenge; an outbound 2xx completes a registration or authentication.
//!   - An inbound answer teaches only if it comes from the exact address AND port the request
//!     was sent to, within `pending_timeout_secs`, and matches the request's Call-ID, CSeq
//!     number and method, and top Via branch (all chosen by the protected side and unseen by an
//!     off-path attacker). A reply to a request never sent, a forged 2xx from any other
//!     address or port, and a REGISTER 200 sent *to* the host teach nothing.
//!   - Never learned from: outbound requests other than REGISTER and initial INVITE (an
//!     attacker can make a PBX send BYE, OPTIONS or NOTIFY to an address of its choosing).
//! * Campaigns: a first request (initial INVITE or OPTIONS) from a NEW source (not tracked yet,
//!   not trusted, upstream or known-good) is counted under two keys: its target user and its
//!   message fingerprint ([`fingerprint`]). `[learn.campaign] sources` distinct new sources of
//!   one key within `window_secs` make a campaign; from then on (until `hold_secs` after its
//!   last source) every new source whose first request has that key is banned at once
//!   (`campaign.target-user`, `campaign.fingerprint`). Keys are counted in two generations of
//!   at most `max_tracked / 2` each (a full generation replaces the older one), so a
//!   spoofed-source flood costs O(1) per packet and bounded memory; it can push a slow
//!   campaign's counts out, never grow memory.
//! * Deterministic: listings are sorted; fingerprints use a fixed hash (FNV-1a), so the same
//!   traffic gives the same fingerprint in every run.
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use sipwall_sip::{Message, Method};

use crate::decision::Timestamp;
use crate::fasthash::{hash32, hash64, map_with_capacity, FastMap};
use crate::netset::canonical;
use crate::policy::{LearnMode, LearnPolicy};

/// Source slots per campaign key (the largest `[learn.campaign] sources`).
pub(crate) const CAMPAIGN_SLOTS: usize = 32;

/// Longest user (bytes) learned; longer ones are not learned (a phone's user is short).
const MAX_USER_LEN: usize = 64;
/// Longest Call-ID / branch kept for a pending transaction; longer ones are not tracked.
const MAX_TOKEN_LEN: usize = 256;
/// Longest evidence text.
const MAX_EVIDENCE_LEN: usize = 240;
/// A fact's last-seen move bumps the generation at most this often (persisting callers poll it).
const TOUCH_BUMP_MS: u64 = 60_000;

/// What a learned fact is about. Serialised as `{"kind": "upstream" | "user" | "known-good",
/// "value": ADDR | NAME}`, the same words as its `Display` form.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(tag = "kind", content = "value", rename_all = "kebab-case")]
pub enum FactKey {
    /// A learned upstream (registrar, provider, called peer): accepted like a trusted network.
    Upstream(IpAddr),
    /// A learned local user (account or number of the protected side).
    #[serde(rename = "user")]
    LocalUser(String),
    /// A known-good client (completed digest authentication).
    KnownGood(IpAddr),
}

impl FactKey {
    /// The kind word: `upstream`, `user`, `known-good`.
    pub fn kind(&self) -> &'static str {
        match self {
            FactKey::Upstream(_) => "upstream",
            FactKey::LocalUser(_) => "user",
            FactKey::KnownGood(_) => "known-good",
        }
    }
    /// The value: the address or the user.
    pub fn value(&self) -> String {
        match self {
            FactKey::Upstream(a) | FactKey::KnownGood(a) => a.to_string(),
            FactKey::LocalUser(u) => u.clone(),
        }
    }
}

impl fmt::Display for FactKey {
    /// `upstream 198.51.100.1`, `user 100`, `known-good 203.0.113.7` (read back by `FromStr`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind(), self.value())
    }
}

impl FromStr for FactKey {
    type Err = LearnError;
    /// `upstream ADDR`, `user NAME`, `known-good ADDR` (also `kind:value`).
    fn from_str(s: &str) -> Result<Self, LearnError> {
        let bad = || LearnError::ParseKey { text: s.to_string() };
        let (kind, value) = s.trim().split_once([' ', ':']).ok_or_else(bad)?;
        let value = value.trim();
        match kind {
            "upstream" => Ok(FactKey::Upstream(canonical(value.parse().map_err(|_| bad())?))),
            "known-good" => Ok(FactKey::KnownGood(canonical(value.parse().map_err(|_| bad())?))),
            "user" => {
                if valid_user(value.as_bytes()) {
                    Ok(FactKey::LocalUser(value.to_string()))
                } else {
                    Err(bad())
                }
            }
            _ => Err(bad()),
        }
    }
}

/// One learned fact, as listed, persisted and restored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LearnedFact {
    /// What it is about.
    pub key: FactKey,
    /// First seen (packet time).
    pub first_seen: Timestamp,
    /// Last confirmed (packet time).
    pub last_seen: Timestamp,
    /// Which transaction proved it, in a short sentence.
    pub evidence: String,
    /// Pinned by the operator: never evicted, never forgotten.
    pub pinned: bool,
}

impl LearnedFact {
    /// When it will be forgotten under `policy` (None: pinned, or never).
    pub fn expires(&self, policy: &LearnPolicy) -> Option<Timestamp> {
        if self.pinned {
            return None;
        }
        let keep = match self.key {
            FactKey::KnownGood(_) => policy.known_good_ms,
            _ if policy.forget_after_ms == 0 => return None,
            _ => policy.forget_after_ms,
        };
        Some(Timestamp::from_millis(self.last_seen.as_millis().saturating_add(keep)))
    }
}

/// Why a learn operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LearnError {
    /// The text is not `upstream ADDR`, `user NAME` or `known-good ADDR`.
    #[error("`{text}` is not a learned fact (expected `upstream ADDR`, `user NAME` or `known-good ADDR`)")]
    ParseKey {
        /// The text given.
        text: String,
    },
    /// Pinning would exceed the table's capacity and every entry is pinned.
    #[error("cannot pin {key}: every entry of its table is pinned ([learn] max_*)")]
    PinTableFull {
        /// The fact asked for.
        key: FactKey,
    },
    /// No such fact.
    #[error("{key} is not learned")]
    ForgetUnknown {
        /// The fact asked for.
        key: FactKey,
    },
}

/// What learning is doing, for `status` and the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct LearnStatus {
    /// `[learn] mode`.
    pub mode: LearnMode,
    /// True when the unsolicited-INVITE rule is in force (auto mode and an upstream is
    /// learned or pinned); false means "learning, not enforcing yet".
    pub enforcing: bool,
    /// Learned upstreams.
    pub upstreams: usize,
    /// Learned local users.
    pub local_users: usize,
    /// Known-good clients (including ones past their expiry not yet removed by `expire`).
    pub known_good: usize,
    /// Outbound transactions awaiting an answer.
    pub pending: usize,
    /// Active campaigns.
    pub campaigns: usize,
    /// Changes whenever a fact is added, removed or pinned (and when a last-seen moves by a
    /// minute or more): persist the facts when it differs from the last value saved.
    pub generation: u64,
}

impl fmt::Display for LearnStatus {
    /// One line for `status` and the log: `learning off`, `learning, not enforcing yet (no
    /// upstream learned; 2 local users, 1 known-good client)`, or `learning and enforcing (1
    /// upstream, ...)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mode == LearnMode::Off {
            return write!(f, "learning off");
        }
        let plural =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let tables = format!(
            "{}, {}, {}",
            plural(self.local_users, "local user", "local users"),
            plural(self.known_good, "known-good client", "known-good clients"),
            plural(self.campaigns, "active campaign", "active campaigns")
        );
        if self.enforcing {
            write!(
                f,
                "learning and enforcing ({}, {tables})",
                plural(self.upstreams, "upstream", "upstreams")
            )
        } else {
            write!(f, "learning, not enforcing yet (no upstream learned; {tables})")
        }
    }
}

/// Which key a campaign is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CampaignKind {
    /// The same target user.
    TargetUser,
    /// The same message fingerprint.
    Fingerprint,
}

impl CampaignKind {
    /// The rule id its bans carry.
    pub fn rule(self) -> &'static str {
        match self {
            CampaignKind::TargetUser => "campaign.target-user",
            CampaignKind::Fingerprint => "campaign.fingerprint",
        }
    }
}

/// A campaign: many distinct new sources sharing a target user or a fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Campaign {
    /// Target user or fingerprint.
    pub kind: CampaignKind,
    /// The target user, or the fingerprint as 16 hex digits.
    pub key: String,
    /// What the fingerprint is made of (method, User-Agent, header names), or the user.
    pub label: String,
    /// Distinct new sources counted so far (the ones that made it plus every one banned).
    pub sources: u64,
    /// First source counted.
    pub first_seen: Timestamp,
    /// Last source counted.
    pub last_seen: Timestamp,
}

// ------------------------------------------------------------------------------ internals

#[derive(Debug, Clone)]
struct Fact {
    first_ms: u64,
    last_ms: u64,
    /// `last_ms` when the generation was last bumped for this fact.
    bumped_ms: u64,
    evidence: String,
    pinned: bool,
}

/// A map in two generations of at most `half` entries each: inserting into a full current
/// generation makes it the previous one (the older is dropped). O(1) amortised, bounded,
/// allocation-free after construction (both maps are allocated with their capacity).
#[derive(Debug)]
struct TwoGen<K, V> {
    cur: FastMap<K, V>,
    prev: FastMap<K, V>,
    half: usize,
}

impl<K: std::hash::Hash + Eq + Clone, V> TwoGen<K, V> {
    fn new(cap: usize) -> Self {
        let half = (cap / 2).max(1);
        TwoGen { cur: map_with_capacity(half), prev: map_with_capacity(half), half }
    }
    fn len(&self) -> usize {
        self.cur.len() + self.prev.len()
    }
    fn get(&self, k: &K) -> Option<&V> {
        self.cur.get(k).or_else(|| self.prev.get(k))
    }
    /// The entry, moved into the current generation (so a live key survives a rotation).
    fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        if !self.cur.contains_key(k) {
            let v = self.prev.remove(k)?;
            self.insert(k.clone(), v);
        }
        self.cur.get_mut(k)
    }
    fn insert(&mut self, k: K, v: V) {
        if self.cur.len() >= self.half && !self.cur.contains_key(&k) {
            std::mem::swap(&mut self.cur, &mut self.prev);
            self.cur.clear();
        }
        self.prev.remove(&k);
        self.cur.insert(k, v);
    }
    fn remove(&mut self, k: &K) -> Option<V> {
        self.cur.remove(k).or_else(|| self.prev.remove(k))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxMethod {
    Register,
    Invite,
}

/// A short byte string held inline (no allocation per packet).
#[derive(Debug, Clone, Copy)]
struct Short {
    len: u8,
    buf: [u8; MAX_USER_LEN],
}

impl Short {
    fn of(b: &[u8]) -> Short {
        let n = b.len().min(MAX_USER_LEN);
        let mut buf = [0u8; MAX_USER_LEN];
        buf[..n].copy_from_slice(&b[..n]);
        Short { len: n as u8, buf }
    }
    fn get(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }
}

/// An outbound REGISTER or initial INVITE awaiting its answer. Call-ID and branch are kept as
/// 64-bit hashes under the per-process seed: an off-path attacker never sees them, so it
/// cannot aim at a collision.
#[derive(Debug)]
struct Pending {
    method: TxMethod,
    call_id: u64,
    branch: u64,
    /// REGISTER: the To user; INVITE: the From user (the caller on the protected side).
    user: Option<Short>,
    sent_ms: u64,
}

/// An inbound request with credentials, sent after a challenge, awaiting the protected side's
/// answer.
#[derive(Debug)]
struct Auth {
    /// Call-ID and CSeq ([`crate::behaviour::attempt_key`]).
    attempt: u32,
    method: TxMethod,
    user: Short,
    port: u16,
    seen_ms: u64,
}

#[derive(Debug, Clone, Copy)]
struct Tracker {
    /// (source hash, second seen); hash 0 = empty.
    slots: [(u32, u32); CAMPAIGN_SLOTS],
}

#[derive(Debug, Clone)]
struct CampaignState {
    kind: CampaignKind,
    key: String,
    label: String,
    sources: u64,
    first_ms: u64,
    last_ms: u64,
}

/// The learner: facts, pending transactions, challenges, campaigns.
#[derive(Debug)]
pub(crate) struct Learner {
    upstreams: FastMap<IpAddr, Fact>,
    users: FastMap<Vec<u8>, Fact>,
    good: FastMap<IpAddr, Fact>,
    pending: TwoGen<(SocketAddr, u32, u32), Pending>,
    /// (peer, Call-ID hash) -> when the protected side challenged it.
    challenged: TwoGen<(IpAddr, u32), u64>,
    /// peer -> its latest request with credentials (one attempt at a time per source), so an
    /// outbound 2xx needs parsing only when its peer has one.
    auths: TwoGen<IpAddr, Auth>,
    trackers: TwoGen<u64, Tracker>,
    campaigns: FastMap<u64, CampaignState>,
    generation: u64,
    /// Addresses evicted from the upstream or known-good table since the engine last took
    /// them ([`Learner::take_evicted`]): the ban table stops protecting them.
    evicted: Vec<Change>,
}

/// What a learning step changed, for the engine to keep the ban table's protected sets in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    Nothing,
    NewUpstream(IpAddr),
    NewKnownGood(IpAddr),
}

pub(crate) fn valid_user(u: &[u8]) -> bool {
    !u.is_empty()
        && u.len() <= MAX_USER_LEN
        && u.iter().all(|&b| b.is_ascii_graphic() && b != b'@' && b != b'"')
}

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).chars().map(|c| if c.is_control() { '.' } else { c }).collect()
}

fn clip(mut s: String) -> String {
    if s.len() > MAX_EVIDENCE_LEN {
        let mut end = MAX_EVIDENCE_LEN;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

/// How long the protected side's 2xx to a request with credentials may take: a REGISTER is
/// answered at once, an INVITE only when someone picks up (RFC 3261 timer C: 3 minutes).
fn answer_window(m: TxMethod, p: &LearnPolicy) -> u64 {
    match m {
        TxMethod::Register => p.pending_timeout_ms,
        TxMethod::Invite => p.pending_timeout_ms.max(180_000),
    }
}

fn method_word(m: TxMethod) -> &'static str {
    match m {
        TxMethod::Register => "REGISTER",
        TxMethod::Invite => "INVITE",
    }
}

fn tx_method(m: Option<Method<'_>>) -> Option<TxMethod> {
    match m {
        Some(Method::Register) => Some(TxMethod::Register),
        Some(Method::Invite) => Some(TxMethod::Invite),
        _ => None,
    }
}

/// FNV-1a 64: fixed, so fingerprints are the same in every run.
#[derive(Clone, Copy)]
struct Fnv(u64);
impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn bytes(mut self, b: &[u8]) -> Self {
        for &x in b {
            self.0 ^= x.to_ascii_lowercase() as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.sep()
    }
    fn num(self, n: u64) -> Self {
        self.bytes(&n.to_le_bytes())
    }
    fn sep(mut self) -> Self {
        self.0 ^= 0xff;
        self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        self
    }
}

/// Length class of a token: 0, 1-8, 9-16, 17-32, 33-64, longer.
fn len_class(n: usize) -> u64 {
    match n {
        0 => 0,
        1..=8 => 1,
        9..=16 => 2,
        17..=32 => 3,
        33..=64 => 4,
        _ => 5,
    }
}

/// Character class of a token: digits only, hex only, alphanumeric, other (bit 4: has `@`).
fn char_class(b: &[u8]) -> u64 {
    let mut c = if b.iter().all(u8::is_ascii_digit) {
        0
    } else if b.iter().all(u8::is_ascii_hexdigit) {
        1
    } else if b.iter().all(u8::is_ascii_alphanumeric) {
        2
    } else {
        3
    };
    if b.contains(&b'@') {
        c |= 16;
    }
    c
}

/// The fingerprint of a request: what a tool or bot repeats from every address and a
/// different sender would not share. FNV-1a over the method; every header NAME in order (long
/// form); the User-Agent; Max-Forwards and the CSeq number; the shapes (length and character
/// class) of the top Via branch, the From tag and the Call-ID; whether the branch has the RFC
/// 3261 magic cookie; the Content-Type; whether there is a body. Never an address, a port, a
/// user or a random value itself. Computed without allocating; [`fingerprint_label`] says
/// what it is made of.
pub fn fingerprint(msg: &Message<'_>) -> u64 {
    let method = msg.method().map(|m| m.as_bytes()).unwrap_or(b"?");
    let mut h = Fnv::new().bytes(method);
    for (name, _) in msg.headers() {
        h = h.bytes(name.as_bytes());
    }
    let ua = msg.user_agent().unwrap_or(b"");
    h = h.bytes(ua).num(msg.max_forwards().map_or(u64::MAX, u64::from));
    h = h.num(msg.cseq().map_or(u64::MAX, |c| u64::from(c.number)));
    let branch = msg.top_via().and_then(|v| v.branch).unwrap_or(b"");
    h = h
        .num(len_class(branch.len()))
        .num(char_class(branch.get(7..).unwrap_or(b"")))
        .num(u64::from(branch.starts_with(b"z9hG4bK")));
    let tag = msg.from().and_then(|f| f.tag).unwrap_or(b"");
    h = h.num(len_class(tag.len())).num(char_class(tag));
    let cid = msg.call_id().unwrap_or(b"");
    h = h.num(len_class(cid.len())).num(char_class(cid));
    h = h.bytes(msg.content_type().unwrap_or(b"")).num(u64::from(!msg.body().is_empty()));
    h.0
}

/// A short description of what [`fingerprint`] hashed: method, header count and User-Agent.
pub fn fingerprint_label(msg: &Message<'_>) -> String {
    let method = msg.method().map(|m| m.as_bytes()).unwrap_or(b"?");
    let ua = msg.user_agent().unwrap_or(b"");
    clip(format!(
        "{} with {} headers, User-Agent '{}'",
        show(method),
        msg.headers().count(),
        if ua.is_empty() { "(none)".to_string() } else { show(ua) }
    ))
}

impl Learner {
    pub(crate) fn new(p: &LearnPolicy) -> Self {
        Learner {
            upstreams: FastMap::default(),
            users: FastMap::default(),
            good: FastMap::default(),
            pending: TwoGen::new(p.max_pending),
            challenged: TwoGen::new(p.max_pending),
            auths: TwoGen::new(p.max_pending),
            trackers: TwoGen::new(p.campaign.max_tracked),
            campaigns: FastMap::default(),
            generation: 0,
            evicted: Vec::new(),
        }
    }

    /// After a reload: tables sized by the new policy (pending state and counts start over;
    /// facts and campaigns are kept, trimmed to the new capacities).
    pub(crate) fn resize(&mut self, p: &LearnPolicy) {
        if self.pending.half != (p.max_pending / 2).max(1) {
            self.pending = TwoGen::new(p.max_pending);
            self.challenged = TwoGen::new(p.max_pending);
            self.auths = TwoGen::new(p.max_pending);
        }
        if self.trackers.half != (p.campaign.max_tracked / 2).max(1) {
            self.trackers = TwoGen::new(p.campaign.max_tracked);
        }
        while self.upstreams.len() > p.max_upstreams && self.evict(Table::Upstreams) {}
        while self.users.len() > p.max_users && self.evict(Table::Users) {}
        while self.good.len() > p.max_known_good && self.evict(Table::Good) {}
        self.generation += 1;
    }

    /// Make room in a table: evict its least recently seen unpinned fact. False if all pinned.
    fn evict(&mut self, t: Table) -> bool {
        let gone = match t {
            Table::Upstreams => evict_oldest(&mut self.upstreams).map(Change::NewUpstream),
            Table::Users => evict_oldest(&mut self.users).map(|_| Change::Nothing),
            Table::Good => evict_oldest(&mut self.good).map(Change::NewKnownGood),
        };
        match gone {
            Some(Change::Nothing) => true,
            Some(c) => {
                self.evicted.push(c);
                true
            }
            None => false,
        }
    }

    /// Addresses evicted since the last call (as the `Change` that once protected them).
    pub(crate) fn take_evicted(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.evicted)
    }

    pub(crate) fn has_upstream(&self) -> bool {
        !self.upstreams.is_empty()
    }

    #[inline]
    pub(crate) fn is_upstream(&self, ip: IpAddr) -> bool {
        !self.upstreams.is_empty() && self.upstreams.contains_key(&ip)
    }

    pub(crate) fn is_known_good(&self, ip: IpAddr, now_ms: u64, p: &LearnPolicy) -> bool {
        self.good.get(&ip).is_some_and(|f| f.pinned || now_ms < f.last_ms + p.known_good_ms)
    }

    /// True if `ip` has a known-good entry (expired or not).
    pub(crate) fn has_known_good_entry(&self, ip: IpAddr) -> bool {
        self.good.contains_key(&ip)
    }

    pub(crate) fn is_local_user(&self, user: &[u8]) -> bool {
        self.users.contains_key(user)
    }

    pub(crate) fn has_pending(&self) -> bool {
        self.pending.len() > 0
    }

    /// True if `peer` sent a request with credentials that awaits its answer.
    #[inline]
    pub(crate) fn has_auth(&self, peer: IpAddr) -> bool {
        self.auths.len() > 0 && self.auths.get(&peer).is_some()
    }

    pub(crate) fn status(&self, mode: LearnMode) -> LearnStatus {
        LearnStatus {
            mode,
            enforcing: mode == LearnMode::Auto && self.has_upstream(),
            upstreams: self.upstreams.len(),
            local_users: self.users.len(),
            known_good: self.good.len(),
            pending: self.pending.len(),
            campaigns: self.campaigns.len(),
            generation: self.generation,
        }
    }

    // -------------------------------------------------------------- facts

    /// Record a fact seen at `now_ms` (`evidence` is built only for a new fact). Returns true
    /// if it is new. Refreshing a known fact allocates nothing.
    fn learn(
        &mut self,
        key: &FactKey,
        now_ms: u64,
        evidence: impl FnOnce() -> String,
        p: &LearnPolicy,
    ) -> bool {
        let (map_len, cap) = match key {
            FactKey::Upstream(_) => (self.upstreams.len(), p.max_upstreams),
            FactKey::LocalUser(_) => (self.users.len(), p.max_users),
            FactKey::KnownGood(_) => (self.good.len(), p.max_known_good),
        };
        let existing = match key {
            FactKey::Upstream(a) => self.upstreams.get_mut(a),
            FactKey::LocalUser(u) => self.users.get_mut(u.as_bytes()),
            FactKey::KnownGood(a) => self.good.get_mut(a),
        };
        if let Some(f) = existing {
            f.last_ms = f.last_ms.max(now_ms);
            if f.last_ms >= f.bumped_ms + TOUCH_BUMP_MS {
                f.bumped_ms = f.last_ms;
                self.generation += 1;
            }
            return false;
        }
        if map_len >= cap {
            let evicted = self.evict(Table::of(key));
            if !evicted {
                return false; // all pinned
            }
        }
        let fact = Fact {
            first_ms: now_ms,
            last_ms: now_ms,
            bumped_ms: now_ms,
            evidence: clip(evidence()),
            pinned: false,
        };
        match key {
            FactKey::Upstream(a) => self.upstreams.insert(*a, fact),
            FactKey::LocalUser(u) => self.users.insert(u.as_bytes().to_vec(), fact),
            FactKey::KnownGood(a) => self.good.insert(*a, fact),
        };
        self.generation += 1;
        true
    }

    fn learn_user(
        &mut self,
        user: &[u8],
        now_ms: u64,
        evidence: impl FnOnce() -> String,
        p: &LearnPolicy,
    ) {
        if !valid_user(user) {
            return;
        }
        if let Some(f) = self.users.get_mut(user) {
            // Refresh without building a key (no allocation on a refresh).
            f.last_ms = f.last_ms.max(now_ms);
            if f.last_ms >= f.bumped_ms + TOUCH_BUMP_MS {
                f.bumped_ms = f.last_ms;
                self.generation += 1;
            }
            return;
        }
        self.learn(&FactKey::LocalUser(show(user)), now_ms, evidence, p);
    }

    /// Every fact, sorted by key.
    pub(crate) fn facts(&self) -> Vec<LearnedFact> {
        let out_of = |key: FactKey, f: &Fact| LearnedFact {
            key,
            first_seen: Timestamp::from_millis(f.first_ms),
            last_seen: Timestamp::from_millis(f.last_ms),
            evidence: f.evidence.clone(),
            pinned: f.pinned,
        };
        let mut v: Vec<LearnedFact> = self
            .upstreams
            .iter()
            .map(|(a, f)| out_of(FactKey::Upstream(*a), f))
            .chain(self.users.iter().map(|(u, f)| out_of(FactKey::LocalUser(show(u)), f)))
            .chain(self.good.iter().map(|(a, f)| out_of(FactKey::KnownGood(*a), f)))
            .collect();
        v.sort_by(|a, b| a.key.cmp(&b.key));
        v
    }

    /// Put back a persisted fact (kept if not expired at `now`; pinned always). Returns the
    /// change for the ban table, or None if skipped.
    pub(crate) fn restore(
        &mut self,
        fact: LearnedFact,
        now_ms: u64,
        p: &LearnPolicy,
    ) -> Option<Change> {
        if let FactKey::LocalUser(u) = &fact.key {
            if !valid_user(u.as_bytes()) {
                return None;
            }
        }
        if fact.expires(p).is_some_and(|t| t.as_millis() <= now_ms) {
            return None;
        }
        let f = Fact {
            first_ms: fact.first_seen.as_millis(),
            last_ms: fact.last_seen.as_millis(),
            bumped_ms: fact.last_seen.as_millis(),
            evidence: clip(fact.evidence),
            pinned: fact.pinned,
        };
        let (len, cap) = match fact.key {
            FactKey::Upstream(_) => (self.upstreams.len(), p.max_upstreams),
            FactKey::LocalUser(_) => (self.users.len(), p.max_users),
            FactKey::KnownGood(_) => (self.good.len(), p.max_known_good),
        };
        let present = match &fact.key {
            FactKey::Upstream(a) => self.upstreams.contains_key(a),
            FactKey::LocalUser(u) => self.users.contains_key(u.as_bytes()),
            FactKey::KnownGood(a) => self.good.contains_key(a),
        };
        if !present && len >= cap && !f.pinned {
            return None;
        }
        self.generation += 1;
        Some(match fact.key {
            FactKey::Upstream(a) => {
                let a = canonical(a);
                self.upstreams.insert(a, f);
                Change::NewUpstream(a)
            }
            FactKey::LocalUser(u) => {
                self.users.insert(u.into_bytes(), f);
                Change::Nothing
            }
            FactKey::KnownGood(a) => {
                let a = canonical(a);
                self.good.insert(a, f);
                Change::NewKnownGood(a)
            }
        })
    }

    /// Pin a fact (creating it, with the operator as evidence, when absent).
    pub(crate) fn pin(
        &mut self,
        key: FactKey,
        pinned: bool,
        now_ms: u64,
        p: &LearnPolicy,
    ) -> Result<Change, LearnError> {
        let key = match key {
            FactKey::Upstream(a) => FactKey::Upstream(canonical(a)),
            FactKey::KnownGood(a) => FactKey::KnownGood(canonical(a)),
            FactKey::LocalUser(u) if valid_user(u.as_bytes()) => FactKey::LocalUser(u),
            k @ FactKey::LocalUser(_) => return Err(LearnError::ParseKey { text: k.to_string() }),
        };
        let slot = match &key {
            FactKey::Upstream(a) => self.upstreams.get_mut(a),
            FactKey::LocalUser(u) => self.users.get_mut(u.as_bytes()),
            FactKey::KnownGood(a) => self.good.get_mut(a),
        };
        if let Some(f) = slot {
            f.pinned = pinned;
            if !pinned {
                // Unpinned: counts as seen now, so it is not forgotten at once.
                f.last_ms = f.last_ms.max(now_ms);
            }
            self.generation += 1;
            return Ok(Change::Nothing);
        }
        if !pinned {
            return Err(LearnError::ForgetUnknown { key });
        }
        let (len, cap) = match key {
            FactKey::Upstream(_) => (self.upstreams.len(), p.max_upstreams),
            FactKey::LocalUser(_) => (self.users.len(), p.max_users),
            FactKey::KnownGood(_) => (self.good.len(), p.max_known_good),
        };
        if len >= cap {
            let ok = self.evict(Table::of(&key));
            if !ok {
                return Err(LearnError::PinTableFull { key });
            }
        }
        let f = Fact {
            first_ms: now_ms,
            last_ms: now_ms,
            bumped_ms: now_ms,
            evidence: "pinned by the operator".into(),
            pinned: true,
        };
        self.generation += 1;
        Ok(match key {
            FactKey::Upstream(a) => {
                self.upstreams.insert(a, f);
                Change::NewUpstream(a)
            }
            FactKey::LocalUser(u) => {
                self.users.insert(u.into_bytes(), f);
                Change::Nothing
            }
            FactKey::KnownGood(a) => {
                self.good.insert(a, f);
                Change::NewKnownGood(a)
            }
        })
    }

    /// Forget a fact (pinned or not).
    pub(crate) fn forget(&mut self, key: &FactKey) -> Result<LearnedFact, LearnError> {
        let removed = match key {
            FactKey::Upstream(a) => self.upstreams.remove(&canonical(*a)),
            FactKey::LocalUser(u) => self.users.remove(u.as_bytes()),
            FactKey::KnownGood(a) => self.good.remove(&canonical(*a)),
        };
        let f = removed.ok_or_else(|| LearnError::ForgetUnknown { key: key.clone() })?;
        self.generation += 1;
        Ok(LearnedFact {
            key: key.clone(),
            first_seen: Timestamp::from_millis(f.first_ms),
            last_seen: Timestamp::from_millis(f.last_ms),
            evidence: f.evidence,
            pinned: f.pinned,
        })
    }

    /// Drop expired facts and campaigns; returns the addresses no longer protected.
    pub(crate) fn expire(&mut self, now_ms: u64, p: &LearnPolicy) -> Vec<IpAddr> {
        let mut gone = Vec::new();
        let before = self.upstreams.len() + self.users.len() + self.good.len();
        let forget = p.forget_after_ms;
        let keep = |f: &Fact, ms: u64| f.pinned || ms == 0 || now_ms < f.last_ms.saturating_add(ms);
        self.upstreams.retain(|a, f| {
            let k = keep(f, forget);
            if !k {
                gone.push(*a);
            }
            k
        });
        self.users.retain(|_, f| keep(f, forget));
        self.good.retain(|a, f| {
            let k = keep(f, p.known_good_ms.max(1));
            if !k {
                gone.push(*a);
            }
            k
        });
        if self.upstreams.len() + self.users.len() + self.good.len() != before {
            self.generation += 1;
        }
        let hold = p.campaign.hold_ms;
        self.campaigns.retain(|_, c| now_ms < c.last_ms.saturating_add(hold));
        gone.sort_unstable();
        gone
    }

    // -------------------------------------------------------------- transactions

    /// An outbound request: a REGISTER or an initial INVITE opens a pending transaction keyed
    /// on the destination address and port, Call-ID and CSeq.
    pub(crate) fn outbound_request(&mut self, msg: &Message<'_>, dst: SocketAddr, now_ms: u64) {
        let Some(method) = tx_method(msg.method()) else { return };
        let (Some(call_id), Some(cseq), Some(via)) = (msg.call_id(), msg.cseq(), msg.top_via())
        else {
            return;
        };
        let Some(branch) = via.branch else { return };
        if call_id.len() > MAX_TOKEN_LEN || branch.len() > MAX_TOKEN_LEN || branch.is_empty() {
            return;
        }
        let user = match method {
            TxMethod::Register => msg.to().and_then(|t| t.uri.user),
            TxMethod::Invite => {
                if msg.to().is_some_and(|t| t.tag.is_some()) {
                    return; // a re-INVITE: not a call the protected side starts
                }
                msg.from().and_then(|f| f.uri.user)
            }
        };
        let dst = SocketAddr::new(canonical(dst.ip()), dst.port());
        self.pending.insert(
            (dst, cseq.number, hash32(call_id)),
            Pending {
                method,
                call_id: hash64(call_id),
                branch: hash64(branch),
                user: user.filter(|u| valid_user(u)).map(Short::of),
                sent_ms: now_ms,
            },
        );
    }

    /// An inbound answer from `src`: teaches when it answers a pending transaction exactly.
    pub(crate) fn inbound_answer(
        &mut self,
        msg: &Message<'_>,
        src: SocketAddr,
        now_ms: u64,
        p: &LearnPolicy,
    ) -> Change {
        let (Some(status), Some(call_id), Some(cseq)) = (msg.status(), msg.call_id(), msg.cseq())
        else {
            return Change::Nothing;
        };
        let src = SocketAddr::new(canonical(src.ip()), src.port());
        let key = (src, cseq.number, hash32(call_id));
        let Some(pend) = self.pending.get(&key) else { return Change::Nothing };
        let branch = msg.top_via().and_then(|v| v.branch);
        let fresh = now_ms >= pend.sent_ms && now_ms - pend.sent_ms <= p.pending_timeout_ms;
        if !fresh
            || pend.call_id != hash64(call_id)
            || branch.map(hash64) != Some(pend.branch)
            || tx_method(Some(cseq.method)) != Some(pend.method)
        {
            if !fresh {
                self.pending.remove(&key);
            }
            return Change::Nothing;
        }
        let proves = match pend.method {
            TxMethod::Register => (200..300).contains(&status),
            TxMethod::Invite => {
                (200..300).contains(&status)
                    || ((101..200).contains(&status) && msg.to().is_some_and(|t| t.tag.is_some()))
            }
        };
        if !proves {
            if status >= 200 {
                self.pending.remove(&key);
            }
            return Change::Nothing;
        }
        let Some(pend) = self.pending.remove(&key) else { return Change::Nothing };
        let what = method_word(pend.method);
        let evidence = || {
            let user_text = pend.user.as_ref().map(|u| show(u.get())).unwrap_or_default();
            format!(
                "{what}{} (Call-ID {}, CSeq {}) sent to {src} answered {status} by it",
                if user_text.is_empty() { String::new() } else { format!(" for {user_text}") },
                show(call_id),
                cseq.number
            )
        };
        if let Some(u) = pend.user.as_ref() {
            self.learn_user(u.get(), now_ms, evidence, p);
        }
        if self.learn(&FactKey::Upstream(src.ip()), now_ms, evidence, p) {
            Change::NewUpstream(src.ip())
        } else {
            Change::Nothing
        }
    }

    /// The protected side challenged `peer` (an outbound 401/407).
    pub(crate) fn outbound_challenge(&mut self, msg: &Message<'_>, peer: IpAddr, now_ms: u64) {
        if let Some(c) = msg.call_id() {
            self.challenged.insert((peer, hash32(c)), now_ms);
        }
    }

    /// An inbound request carrying credentials: remembered if the protected side challenged
    /// this Call-ID (or the source is known-good already, refreshing it), until its answer.
    pub(crate) fn inbound_credentials(
        &mut self,
        msg: &Message<'_>,
        src: SocketAddr,
        now_ms: u64,
        p: &LearnPolicy,
    ) {
        let peer = canonical(src.ip());
        let (Some(call_id), Some(cseq)) = (msg.call_id(), msg.cseq()) else { return };
        let Some(method) = tx_method(msg.method()) else { return };
        let challenged = self
            .challenged
            .get(&(peer, hash32(call_id)))
            .is_some_and(|&t| now_ms >= t && now_ms - t <= p.pending_timeout_ms);
        if !challenged && !self.is_known_good(peer, now_ms, p) {
            return;
        }
        let creds = msg.authorization().or_else(|| msg.proxy_authorization());
        let user = creds
            .and_then(|c| c.username)
            .or_else(|| msg.from().and_then(|f| f.uri.user))
            .unwrap_or(b"");
        self.auths.insert(
            peer,
            Auth {
                attempt: crate::behaviour::attempt_key(call_id, cseq.number),
                method,
                user: Short::of(user),
                port: src.port(),
                seen_ms: now_ms,
            },
        );
    }

    /// An outbound 2xx to `peer`: completes an authentication (known-good) and, for a
    /// REGISTER, teaches its To user as a local user.
    pub(crate) fn outbound_success(
        &mut self,
        msg: &Message<'_>,
        peer: IpAddr,
        now_ms: u64,
        p: &LearnPolicy,
    ) -> Change {
        let (Some(call_id), Some(cseq)) = (msg.call_id(), msg.cseq()) else {
            return Change::Nothing;
        };
        let status = msg.status().unwrap_or(0);
        let register = cseq.method == Method::Register;
        let attempt = crate::behaviour::attempt_key(call_id, cseq.number);
        let auth = match self.auths.get(&peer) {
            Some(a)
                if a.attempt == attempt
                    && tx_method(Some(cseq.method)) == Some(a.method)
                    && now_ms >= a.seen_ms
                    && now_ms - a.seen_ms <= answer_window(a.method, p) =>
            {
                self.auths.remove(&peer)
            }
            _ => None,
        };
        // Only an authenticated registration teaches its user (a PBX that accepts REGISTERs
        // without a password teaches nothing: its answers are not parsed at all).
        if register && auth.is_some() {
            if let Some(user) = msg.to().and_then(|t| t.uri.user) {
                let ev = || {
                    format!(
                        "REGISTER for {} from {peer} answered {status} by the protected side (Call-ID {})",
                        show(user),
                        show(call_id)
                    )
                };
                self.learn_user(user, now_ms, ev, p);
            }
        }
        let Some(a) = auth else { return Change::Nothing };
        let evidence = || {
            format!(
                "{} from {peer}:{} with digest credentials for {} answered {status} after a challenge (Call-ID {}, CSeq {})",
                method_word(a.method),
                a.port,
                show(a.user.get()),
                show(call_id),
                cseq.number
            )
        };
        if self.learn(&FactKey::KnownGood(peer), now_ms, evidence, p) {
            Change::NewKnownGood(peer)
        } else {
            Change::Nothing
        }
    }

    // -------------------------------------------------------------- campaigns

    /// The active campaign for a key, if any.
    fn active(&self, key: u64, now_ms: u64, hold_ms: u64) -> bool {
        self.campaigns.get(&key).is_some_and(|c| now_ms < c.last_ms.saturating_add(hold_ms))
    }

    /// Count a new source's first request under its keys (target user, fingerprint). Returns
    /// the campaign it belongs to (already active, or made by this source), if any, with the
    /// number of its sources.
    pub(crate) fn campaign_observe(
        &mut self,
        src: IpAddr,
        user: Option<&[u8]>,
        msg: &Message<'_>,
        now_ms: u64,
        p: &LearnPolicy,
    ) -> Option<Campaign> {
        let c = &p.campaign;
        let user_key = user.map(|u| Fnv::new().bytes(b"user").bytes(u).0);
        let fp = fingerprint(msg);
        let fp_key = Fnv::new().bytes(b"fp").num(fp).0;
        // An active campaign first: every further source is one of it (counted in each
        // campaign it matches; the target user's is reported first).
        if !self.campaigns.is_empty() {
            let mut hit = None;
            for key in [user_key, Some(fp_key)].into_iter().flatten() {
                if self.active(key, now_ms, c.hold_ms) {
                    if let Some(st) = self.campaigns.get_mut(&key) {
                        st.sources += 1;
                        st.last_ms = st.last_ms.max(now_ms);
                        hit = hit.or_else(|| Some(campaign_of(st)));
                    }
                }
            }
            if hit.is_some() {
                return hit;
            }
        }
        let src_hash = match src {
            IpAddr::V4(a) => hash32(&a.octets()),
            IpAddr::V6(a) => hash32(&a.octets()),
        };
        let now_s = (now_ms / 1000) as u32;
        let win_s = c.window_ms.div_ceil(1000) as u32;
        let mut made = None;
        for (key, kind) in
            [(user_key, CampaignKind::TargetUser), (Some(fp_key), CampaignKind::Fingerprint)]
        {
            let Some(key) = key else { continue };
            let n = match self.trackers.get_mut(&key) {
                Some(t) => t.add(src_hash, now_s, win_s),
                None => {
                    let mut t = Tracker { slots: [(0, 0); CAMPAIGN_SLOTS] };
                    let n = t.add(src_hash, now_s, win_s);
                    self.trackers.insert(key, t);
                    n
                }
            };
            if n >= c.sources {
                let first_s = self.trackers.get(&key).map_or(now_s, Tracker::first);
                self.trackers.remove(&key);
                let (key_text, label) = match kind {
                    CampaignKind::TargetUser => {
                        let u = show(user.unwrap_or_default());
                        (u.clone(), format!("target user {u}"))
                    }
                    CampaignKind::Fingerprint => (format!("{fp:016x}"), fingerprint_label(msg)),
                };
                if self.campaigns.len() >= c.max_campaigns {
                    // Drop the campaign seen least recently (ties: smallest key, for determinism).
                    if let Some(k) =
                        self.campaigns.iter().min_by_key(|(k, s)| (s.last_ms, **k)).map(|(k, _)| *k)
                    {
                        self.campaigns.remove(&k);
                    }
                }
                let st = CampaignState {
                    kind,
                    key: key_text,
                    label,
                    sources: u64::from(n),
                    first_ms: u64::from(first_s) * 1000,
                    last_ms: now_ms,
                };
                made = made.or_else(|| Some(campaign_of(&st)));
                self.campaigns.insert(key, st);
            }
        }
        made
    }

    /// Active campaigns at `now`, most sources first.
    pub(crate) fn campaigns(&self, now_ms: u64, hold_ms: u64) -> Vec<Campaign> {
        let mut v: Vec<Campaign> = self
            .campaigns
            .values()
            .filter(|c| now_ms < c.last_ms.saturating_add(hold_ms))
            .map(campaign_of)
            .collect();
        v.sort_by(|a, b| {
            b.sources.cmp(&a.sources).then_with(|| (a.kind, &a.key).cmp(&(b.kind, &b.key)))
        });
        v
    }

    /// Entries held, all tables together (for the bounded-state tests).
    pub(crate) fn footprint(&self) -> usize {
        self.upstreams.len()
            + self.users.len()
            + self.good.len()
            + self.pending.len()
            + self.challenged.len()
            + self.auths.len()
            + self.trackers.len()
            + self.campaigns.len()
    }
}

fn campaign_of(s: &CampaignState) -> Campaign {
    Campaign {
        kind: s.kind,
        key: s.key.clone(),
        label: s.label.clone(),
        sources: s.sources,
        first_seen: Timestamp::from_millis(s.first_ms),
        last_seen: Timestamp::from_millis(s.last_ms),
    }
}

impl Tracker {
    /// Add a source seen at `now_s`; returns the distinct sources within the window.
    fn add(&mut self, src: u32, now_s: u32, win_s: u32) -> u32 {
        let live = |t: u32| t.saturating_add(win_s) > now_s;
        if let Some(s) = self.slots.iter_mut().find(|s| s.0 == src) {
            s.1 = now_s;
        } else {
            let i = self.slots.iter().position(|s| s.0 == 0 || !live(s.1)).unwrap_or_else(|| {
                (0..CAMPAIGN_SLOTS).min_by_key(|&i| self.slots[i].1).unwrap_or(0)
            });
            self.slots[i] = (src, now_s);
        }
        self.slots.iter().filter(|s| s.0 != 0 && live(s.1)).count() as u32
    }
    fn first(&self) -> u32 {
        self.slots.iter().filter(|s| s.0 != 0).map(|s| s.1).min().unwrap_or(0)
    }
}

/// Remove the least recently seen unpinned fact (ties: smallest key); returns its key, None
/// if all are pinned.
fn evict_oldest<K: Ord + Clone + std::hash::Hash + Eq>(map: &mut FastMap<K, Fact>) -> Option<K> {
    let victim = map
        .iter()
        .filter(|(_, f)| !f.pinned)
        .min_by(|(ka, a), (kb, b)| a.last_ms.cmp(&b.last_ms).then_with(|| ka.cmp(kb)))
        .map(|(k, _)| k.clone())?;
    map.remove(&victim).map(|_| victim)
}

/// The three fact tables.
#[derive(Clone, Copy)]
enum Table {
    Upstreams,
    Users,
    Good,
}

impl Table {
    fn of(key: &FactKey) -> Table {
        match key {
            FactKey::Upstream(_) => Table::Upstreams,
            FactKey::LocalUser(_) => Table::Users,
            FactKey::KnownGood(_) => Table::Good,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_reads_well() {
        let mut st = LearnStatus {
            mode: LearnMode::Auto,
            enforcing: false,
            upstreams: 0,
            local_users: 2,
            known_good: 1,
            pending: 0,
            campaigns: 0,
            generation: 3,
        };
        assert_eq!(
            st.to_string(),
            "learning, not enforcing yet (no upstream learned; 2 local users, 1 known-good client, 0 active campaigns)"
        );
        st.enforcing = true;
        st.upstreams = 1;
        assert_eq!(
            st.to_string(),
            "learning and enforcing (1 upstream, 2 local users, 1 known-good client, 0 active campaigns)"
        );
        st.mode = LearnMode::Off;
        assert_eq!(st.to_string(), "learning off");
    }

    #[test]
    fn fact_keys_serialise_with_the_display_words() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct W {
            k: FactKey,
        }
        for k in [
            FactKey::Upstream("198.51.100.1".parse().unwrap()),
            FactKey::LocalUser("100".into()),
            FactKey::KnownGood("2001:db8::7".parse().unwrap()),
        ] {
            let text = toml::to_string(&W { k: k.clone() }).unwrap();
            assert!(text.contains(&format!("kind = \"{}\"", k.kind())), "{text}");
            assert_eq!(toml::from_str::<W>(&text).unwrap(), W { k });
        }
    }

    #[test]
    fn fact_keys_read_back() {
        for k in [
            FactKey::Upstream("198.51.100.1".parse().unwrap()),
            FactKey::LocalUser("100".into()),
            FactKey::KnownGood("2001:db8::7".parse().unwrap()),
        ] {
            assert_eq!(k.to_string().parse::<FactKey>().unwrap(), k);
        }
        assert!("user a@b".parse::<FactKey>().is_err());
        assert!("upstream nope".parse::<FactKey>().is_err());
        assert!("bogus 1".parse::<FactKey>().is_err());
    }

    #[test]
    fn two_generations_stay_bounded_and_keep_live_keys() {
        let mut t: TwoGen<u32, u32> = TwoGen::new(8);
        for i in 0..1000 {
            t.insert(i, i);
            assert!(t.len() <= 8);
            // key 0 is used all along: it survives every rotation
            assert!(t.get_mut(&0).is_some() || i == 0);
        }
        assert_eq!(t.get(&999), Some(&999));
        assert!(t.get(&0).is_some());
    }

    #[test]
    fn tracker_counts_distinct_sources_in_the_window() {
        let mut t = Tracker { slots: [(0, 0); CAMPAIGN_SLOTS] };
        assert_eq!(t.add(1, 100, 60), 1);
        assert_eq!(t.add(1, 101, 60), 1);
        assert_eq!(t.add(2, 102, 60), 2);
        assert_eq!(t.add(3, 200, 60), 1, "the first two left the window");
        for s in 10..100 {
            assert!(t.add(s, 300, 60) <= CAMPAIGN_SLOTS as u32);
        }
    }
}
