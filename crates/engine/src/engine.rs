//! The engine: one [`Decision`] per packet.
//!
//! Order of checks for a packet (the first that applies decides):
//! 1. port not guarded (and not a tripwire) -> accept, untouched;
//! 0. learning (`[learn] mode = "auto"`, before everything else, acting on nothing): outbound
//!    REGISTER/initial INVITE open pending transactions, inbound answers complete them
//!    (upstreams, local users), outbound 401/407 and 2xx complete authentications (known-good
//!    clients); see `learn.rs`;
//! 2. peer in a trusted network, or a learned upstream -> accept (a hostile-looking request is
//!    recorded as an oddity with rule `trusted.oddity`, never acted on: UDP sources can be
//!    forged);
//! 3. peer under an active ban -> `actions.banned` (also our answers to it: silence);
//! 4. peer on a block list -> `actions.blocklist`;
//! 5. outbound answers: 401/403/407 and 404/480/484 feed the peer's behaviour counters; one that
//!    reaches a threshold bans the peer and is itself dropped;
//! 6. inbound to a tripwire port (anything but a keep-alive) -> ban;
//! 7. keep-alives accepted; malformed payloads -> `actions.malformed` (User-Agent still checked);
//! 8. requests: signatures, then campaigns (a new source's first INVITE/OPTIONS sharing a
//!    target user or fingerprint with a campaign), then behaviour (flood, enumeration,
//!    untrusted INVITEs) -> ban; then trusted-only mode, direct-call rules and the
//!    unsolicited-INVITE rule (`ghost.unsolicited-invite`, once an upstream is learned) -> drop
//!    without a ban.
//!
//! The peer is the source of an inbound packet and the destination of an outbound one.
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use sipwall_sip::{Host, Message, Method, ParseError};

use crate::bans::ProtectedKind;
use crate::bans::{BanRequest, BanTable};
use crate::behaviour::{attempt_key, SourceState, SourceTable};
use crate::decision::*;
use crate::fasthash::{hash32, FastSet};
use crate::learn::{Campaign, Change, FactKey, LearnError, LearnStatus, LearnedFact, Learner};
use crate::netset::canonical;
use crate::netset::NetSet;
use crate::policy::{Action, Behaviour, LearnMode, Policy, Threshold};
use crate::signatures::{Fields, Hits, Matcher};

/// Counters for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct EngineStats {
    /// Packets decided.
    pub packets: u64,
    /// Accepted.
    pub accepted: u64,
    /// Dropped.
    pub dropped: u64,
    /// Rejected with a status.
    pub rejected: u64,
    /// Bans added (including aggregated and manual).
    pub bans_added: u64,
    /// Sources currently tracked.
    pub tracked_sources: u64,
    /// Automatic bans (or aggregates) not made because they would cover a protected address
    /// (trusted, local or known-good) or split into too many blocks.
    pub bans_protected: u64,
    /// Automatic address bans beyond `bans.max_per_second`, folded into a range ban.
    pub bans_folded: u64,
    /// Sources evicted from tracking (least recently seen first).
    pub evicted_sources: u64,
    /// Active bans.
    pub active_bans: u64,
    /// Bans not added because `limits.max_bans` was reached.
    pub bans_refused: u64,
    /// Hostile-looking packets from trusted sources (accepted).
    pub trusted_oddities: u64,
    /// Payloads that did not parse (keep-alives excluded).
    pub malformed: u64,
}

/// Why [`Engine::ban_manual`] refused a ban.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BanError {
    /// The network covers (or lies in) a protected network.
    #[error("refusing to ban {net}: it covers {member}, {what}, which is never banned")]
    CoversProtected {
        /// The network asked for.
        net: IpNet,
        /// The protected network it overlaps.
        member: IpNet,
        /// What the protected network is ("a trusted network ([trusted] networks)", ...).
        what: &'static str,
    },
    /// The exact network is banned already.
    #[error("{net} is already banned; unban it first to change it")]
    AlreadyBanned {
        /// The network asked for.
        net: IpNet,
        /// When its ban ends.
        until: Timestamp,
    },
    /// `limits.max_bans` is reached.
    #[error("refusing to ban {net}: the ban table is full (limits.max_bans)")]
    TableFull {
        /// The network asked for.
        net: IpNet,
    },
    /// A shared ban that is already over ([`Engine::ban_shared`]).
    #[error("not banning {net}: the shared ban is already over")]
    Ended {
        /// The network.
        net: IpNet,
    },
}

/// The decision engine. See the crate docs for its contract.
pub struct Engine {
    rules: Arc<Rules>,
    sources: SourceTable,
    bans: BanTable,
    learn: Learner,
    stats: EngineStats,
}

/// The read-only half of an engine: the policy and what is compiled from it. An engine shares
/// it ([`Engine::rules`]) with threads that [`Rules::analyse`] packets before they take the
/// engine's lock; [`Engine::reload`] replaces it and never mutates it.
#[derive(Debug)]
pub struct Rules {
    /// Unique per `Rules` value, so an [`Analysis`] made under other rules is recognised.
    id: u64,
    policy: Policy,
    matcher: Matcher,
    local_users: FastSet<Vec<u8>>,
}

impl Rules {
    fn new(policy: Policy) -> Rules {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Rules {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            matcher: Matcher::new(&policy),
            local_users: policy.local_users.iter().map(|u| u.as_bytes().to_vec()).collect(),
            policy,
        }
    }

    /// The policy these rules were compiled from.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The stateless part of deciding on `packet`: parse it and, for a request, read its fields
    /// and match the signatures, exactly as [`Engine::decide`] would. Needs no per-source
    /// state, so it runs without the engine's lock; [`Engine::decide_analysed`] then does only
    /// the state lookups and updates. Skips the work wherever the decision will not need it
    /// (unguarded port, keep-alive, TLS, an outbound answer that feeds no counter, an outbound
    /// request learning does not read: see `learn_wants_outbound`). Allocates nothing.
    pub fn analyse<'a>(&self, packet: &Packet<'a>) -> Analysis<'a> {
        let p = packet;
        let pending = Analysis { rules_id: self.id, parsed: Parsed::Pending };
        let inbound = p.direction == Direction::Inbound;
        let (peer, local_port) =
            if inbound { (p.src.ip(), p.dst.port()) } else { (p.dst.ip(), p.src.port()) };
        let tripwire = inbound && self.policy.tripwire_ports.contains(&local_port);
        let guarded = &self.policy.guarded_ports;
        let learn_out = !inbound
            && self.policy.learn.mode == LearnMode::Auto
            && learn_wants_outbound(p.payload);
        if (!tripwire && !guarded.is_empty() && !guarded.contains(&local_port))
            || p.transport == Transport::Tls
            || is_keepalive(p.payload)
            || (!inbound && answer_kind(p.payload).is_none() && !learn_out)
        {
            return pending;
        }
        Analysis { rules_id: self.id, parsed: self.parse(p, canonical(peer)) }
    }

    /// [`Rules::analyse`] for a caller that has already parsed the payload (offline
    /// `inspect` parses once to learn the direction before it can build the [`Packet`]):
    /// `parsed` must be `Message::parse(packet.payload)`. Never skips: the message is kept in
    /// the analysis whatever the decision needs, so the caller reads it back with
    /// [`Analysis::message`] instead of parsing a second time. Decides exactly as
    /// [`Engine::decide`] (an eager analysis is what the engine would work out lazily).
    pub fn analyse_parsed<'a>(
        &self,
        packet: &Packet<'a>,
        parsed: Result<Message<'a>, ParseError<'a>>,
    ) -> Analysis<'a> {
        let peer =
            if packet.direction == Direction::Inbound { packet.src.ip() } else { packet.dst.ip() };
        Analysis { rules_id: self.id, parsed: self.classify(packet, parsed, canonical(peer)) }
    }

    /// Parse `p` (and, inbound, scan it): what [`Rules::analyse`] stores, and what the engine
    /// works out under its lock when the analysis was skipped or made under other rules.
    fn parse<'a>(&self, p: &Packet<'a>, peer: IpAddr) -> Parsed<'a> {
        self.classify(p, Message::parse(p.payload), peer)
    }

    /// The parse of `p`'s payload, with an inbound request's fields and signature hits.
    // Inlined into `parse` so the hot path builds the message in place (not moved: ~1.4 KB).
    #[inline(always)]
    fn classify<'a>(
        &self,
        p: &Packet<'a>,
        parsed: Result<Message<'a>, ParseError<'a>>,
        peer: IpAddr,
    ) -> Parsed<'a> {
        match parsed {
            Ok(msg) if msg.is_request() && p.direction == Direction::Inbound => {
                let x = Fields::of(&msg);
                let hits = self.matcher.scan(&msg, &x, peer);
                Parsed::Request(msg, x, hits)
            }
            Ok(msg) => Parsed::Other(msg),
            Err(e) => Parsed::Malformed(e, self.matcher.scan_partial(e.partial.user_agent)),
        }
    }
}

/// What [`Rules::analyse`] found out about a packet, for [`Engine::decide_analysed`].
pub struct Analysis<'a> {
    rules_id: u64,
    parsed: Parsed<'a>,
}

impl<'a> Analysis<'a> {
    /// No work done in advance: the engine parses when (and if) the decision needs it.
    pub fn none() -> Self {
        Analysis { rules_id: 0, parsed: Parsed::Pending }
    }

    /// The parsed message, where the analysis parsed one (always after
    /// [`Rules::analyse_parsed`] of a message that parsed).
    pub fn message(&self) -> Option<&Message<'a>> {
        match &self.parsed {
            Parsed::Request(m, ..) | Parsed::Other(m) => Some(m),
            Parsed::Pending | Parsed::Malformed(..) => None,
        }
    }
}

// Boxing the large variants would allocate per packet (the accept path allocates nothing);
// the value moves only a few times per packet, which costs far less than parsing.
#[allow(clippy::large_enum_variant)]
enum Parsed<'a> {
    /// Not parsed (yet).
    Pending,
    /// An inbound request, its fields and signature hits.
    Request(Message<'a>, Fields<'a>, Hits),
    /// Any other message that parsed (an answer, or an outbound request).
    Other(Message<'a>),
    /// Malformed, with the hits of what could be read of it.
    Malformed(ParseError<'a>, Hits),
}

/// Which behaviour counter an outbound answer feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AnswerKind {
    /// 401/407: a challenge, or an authentication failure when the request had credentials.
    Challenge,
    /// 403: an authentication failure.
    Forbidden,
    /// 404/480/484: no such user.
    NotFound,
}

/// Outbound requests learning reads: REGISTER and INVITE (they open pending transactions).
/// An outbound 2xx is read only when its peer has a request with credentials awaiting its
/// answer (known under the engine's lock: [`Engine::decide`] parses it then); 401/407 are
/// read anyway (behaviour counters).
#[inline]
fn learn_wants_outbound(p: &[u8]) -> bool {
    p.starts_with(b"REGISTER ") || p.starts_with(b"INVITE ")
}

/// The counter `p` feeds, or None for every other message (requests, other statuses).
fn answer_kind(p: &[u8]) -> Option<AnswerKind> {
    if !p.starts_with(b"SIP/2.0 ") || p.len() < 12 {
        return None;
    }
    match &p[8..11] {
        b"401" | b"407" => Some(AnswerKind::Challenge),
        b"403" => Some(AnswerKind::Forbidden),
        b"404" | b"480" | b"484" => Some(AnswerKind::NotFound),
        _ => None,
    }
}

/// Count one outbound answer of `kind` to a source: the rule it may trigger, its threshold,
/// the count now in the window and what is counted (for the sentence).
fn count_answer(
    st: &mut SourceState,
    kind: AnswerKind,
    msg: &Message<'_>,
    b: &Behaviour,
    now_ms: u64,
) -> (RuleId, Threshold, u32, &'static str) {
    let add = |w: &mut crate::behaviour::Window, t: &Threshold| {
        if t.enabled {
            w.add(now_ms, t.window_ms)
        } else {
            0
        }
    };
    match kind {
        AnswerKind::Challenge => {
            let key = match (msg.call_id(), msg.cseq()) {
                (Some(c), Some(s)) => attempt_key(c, s.number),
                _ => 0,
            };
            if key != 0 && st.had_credentials(key) {
                let n = add(&mut st.auth_failures, &b.auth_failures);
                (
                    "behaviour.auth-failures",
                    b.auth_failures,
                    n,
                    "failed authentications (credentials refused)",
                )
            } else {
                let n = add(&mut st.challenges, &b.challenges);
                (
                    "behaviour.challenges",
                    b.challenges,
                    n,
                    "authentication challenges without success",
                )
            }
        }
        AnswerKind::Forbidden => {
            let n = add(&mut st.auth_failures, &b.auth_failures);
            (
                "behaviour.auth-failures",
                b.auth_failures,
                n,
                "failed authentications (403 Forbidden)",
            )
        }
        AnswerKind::NotFound => {
            let n = add(&mut st.not_found, &b.not_found);
            ("behaviour.not-found", b.not_found, n, "\"no such user\" answers (404/480/484)")
        }
    }
}

fn is_keepalive(p: &[u8]) -> bool {
    p.len() <= 16 && p.iter().all(|b| matches!(b, b'\r' | b'\n' | b' ' | b'\t' | 0))
}

fn looks_like_request(p: &[u8]) -> bool {
    !p.starts_with(b"SIP/")
}

/// Text for a person: lossy UTF-8, control characters replaced, at most 120 chars.
fn show(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(&b[..b.len().min(160)]);
    let mut out: String =
        s.chars().map(|c| if c.is_control() { '.' } else { c }).take(120).collect();
    if b.len() > 160 || s.chars().count() > 120 {
        out.push('…');
    }
    out
}

/// "1h", "4h", "2d 16h", "30m", "45s".
pub fn human_duration(ms: u64) -> String {
    let s = ms / 1000;
    let (d, h, m, sec) = (s / 86_400, (s % 86_400) / 3600, (s % 3600) / 60, s % 60);
    let mut parts = Vec::new();
    if d > 0 {
        parts.push(format!("{d}d"));
    }
    if h > 0 {
        parts.push(format!("{h}h"));
    }
    if m > 0 && d == 0 {
        parts.push(format!("{m}m"));
    }
    if sec > 0 && d == 0 && h == 0 {
        parts.push(format!("{sec}s"));
    }
    if parts.is_empty() {
        parts.push(format!("{ms}ms"));
    }
    parts.join(" ")
}

fn method_text(m: Option<Method<'_>>) -> String {
    m.map(|m| show(m.as_bytes())).unwrap_or_else(|| "?".into())
}

/// What a request says, for evidence and sentences.
struct Seen<'a> {
    method: Option<Method<'a>>,
    ruri: Option<&'a [u8]>,
    ua: Option<&'a [u8]>,
    call_id: Option<&'a [u8]>,
    target: Option<&'a [u8]>,
}

impl Seen<'_> {
    fn evidence(&self) -> Evidence {
        Evidence {
            method: self.method.map(|m| show(m.as_bytes())),
            user_agent: self.ua.map(show),
            call_id: self.call_id.map(show),
            target_user: self.target.map(show),
            ..Evidence::default()
        }
    }
    fn sentence(&self, peer: IpAddr) -> String {
        let ua = match self.ua {
            Some(ua) => format!("with User-Agent '{}'", show(ua)),
            None => "with no User-Agent".to_string(),
        };
        format!(
            "{peer} sent {} {} {ua}",
            method_text(self.method),
            self.ruri.map(show).unwrap_or_default()
        )
    }
}

impl Engine {
    /// A new engine. Allocates the per-source table for `limits.max_tracked_sources` up front.
    pub fn new(policy: Policy) -> Self {
        Engine {
            sources: SourceTable::new(policy.max_tracked_sources),
            learn: Learner::new(&policy.learn),
            rules: Arc::new(Rules::new(policy)),
            bans: BanTable::default(),
            stats: EngineStats::default(),
        }
    }

    /// The rules in force, to [`Rules::analyse`] packets without holding the engine. Replaced
    /// (a new `Arc`) by [`Engine::reload`]; compare with [`Arc::ptr_eq`] to notice.
    pub fn rules(&self) -> &Arc<Rules> {
        &self.rules
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.rules.policy
    }

    /// Replace the policy, keeping bans and behaviour state. Returns `Remove` actions for bans
    /// that now cover trusted networks (trusted always wins).
    pub fn reload(&mut self, policy: Policy) -> Vec<BanAction> {
        self.rules = Arc::new(Rules::new(policy));
        self.sources.set_cap(self.rules.policy.max_tracked_sources);
        self.learn.resize(&self.rules.policy.learn);
        self.unprotect_evicted();
        self.sync_learned_protection();
        self.bans.drop_protected(&self.rules.policy)
    }

    /// Set this host's own addresses (the daemon reads them from its interfaces), in addition
    /// to `bans.local_addresses`: no ban, automatic or manual, ever covers one. Replaces the
    /// previous set; returns `Remove` actions for bans that now cover one.
    pub fn set_local_addresses(&mut self, addrs: &[IpAddr]) -> Vec<BanAction> {
        let mut set = NetSet::new();
        for a in addrs {
            set.insert(IpNet::from(canonical(*a)));
        }
        self.bans.set_local(set, &self.rules.policy)
    }

    /// Set known-good networks (e.g. learnt from completed calls): protected like local
    /// addresses. Replaces the previous set; returns `Remove` actions for bans covering one.
    pub fn set_known_good(&mut self, nets: &[IpNet]) -> Vec<BanAction> {
        let mut set = NetSet::new();
        for n in nets {
            set.insert(*n);
        }
        self.bans.set_known_good(set, &self.rules.policy)
    }

    /// Every network no ban may cover, with what it is ("a trusted network ([trusted]
    /// networks)", "an address of this host", "a known-good address", "a learned upstream ..."): trusted networks,
    /// `bans.local_addresses`, this host's addresses, the known-good set and the learned upstreams and known-good clients. A copy (small: the
    /// operator's and the host's networks), so a caller checking many candidates (a fetched
    /// block list) takes the engine's lock only to copy it.
    pub fn protected_networks(&self) -> Vec<(IpNet, &'static str)> {
        self.bans.protected_all(&self.rules.policy)
    }

    /// Does sipwall vouch for `ip`: a trusted network, a local or known-good address (the
    /// protected addresses no ban covers)? The enumeration shield leaves answers to these
    /// peers untouched.
    pub fn vouches_for(&self, ip: IpAddr) -> bool {
        self.bans.protected_overlap(IpNet::from(canonical(ip)), &self.rules.policy).is_some()
    }

    /// Decide on one packet at time `now`.
    pub fn decide(&mut self, packet: &Packet<'_>, now: Timestamp) -> Decision {
        self.decide_analysed(packet, &Analysis::none(), now)
    }

    /// Decide on one packet whose stateless part was done by [`Rules::analyse`] (typically
    /// without holding this engine's lock). The decision is the one [`Engine::decide`] gives:
    /// an analysis made under rules that have since been replaced is ignored and redone.
    pub fn decide_analysed<'a>(
        &mut self,
        packet: &Packet<'a>,
        analysis: &Analysis<'a>,
        now: Timestamp,
    ) -> Decision {
        // By reference: the analysis is ~1.4 KB, and copying it around cost more than the lock.
        let parsed =
            if analysis.rules_id == self.rules.id { &analysis.parsed } else { &Parsed::Pending };
        self.stats.packets += 1;
        let d = self.decide_inner(packet, parsed, now);
        match d.verdict {
            Verdict::Accept => self.stats.accepted += 1,
            Verdict::Drop => self.stats.dropped += 1,
            Verdict::Reject(_) => self.stats.rejected += 1,
        }
        d
    }

    /// `parsed` as analysed, or (`Pending` where it is needed means "parse now") parsed into
    /// `slot`, a `Pending` placeholder of the caller's.
    fn complete<'s, 'a>(
        rules: &Rules,
        parsed: &'s Parsed<'a>,
        slot: &'s mut Parsed<'a>,
        p: &Packet<'a>,
        peer: IpAddr,
    ) -> &'s Parsed<'a> {
        match parsed {
            Parsed::Pending => {
                *slot = rules.parse(p, peer);
                slot
            }
            done => done,
        }
    }

    fn decide_inner<'a>(
        &mut self,
        p: &Packet<'a>,
        parsed: &Parsed<'a>,
        now: Timestamp,
    ) -> Decision {
        let inbound = p.direction == Direction::Inbound;
        let (peer, local_port) =
            if inbound { (p.src.ip(), p.dst.port()) } else { (p.dst.ip(), p.src.port()) };
        let peer = canonical(peer);
        let tripwire = inbound && self.rules.policy.tripwire_ports.contains(&local_port);
        let guarded = &self.rules.policy.guarded_ports;
        if !tripwire && !guarded.is_empty() && !guarded.contains(&local_port) {
            return Decision::accept();
        }
        let learning = self.rules.policy.learn.mode == LearnMode::Auto;
        let mut learn_slot = Parsed::Pending;
        let mut unbans = Vec::new();
        let parsed = if learning
            && p.transport != Transport::Tls
            && if inbound {
                self.learn.has_pending() && p.payload.starts_with(b"SIP/2.0 ")
            } else {
                answer_kind(p.payload).is_some()
                    || learn_wants_outbound(p.payload)
                    || (p.payload.starts_with(b"SIP/2.0 2") && self.learn.has_auth(peer))
            } {
            let parsed = Self::complete(&self.rules, parsed, &mut learn_slot, p, peer);
            if let Parsed::Other(msg) = parsed {
                unbans = self.learn_from(p, msg, peer, inbound, now);
            }
            parsed
        } else {
            parsed
        };
        let mut d = self.decide_checks(p, parsed, peer, inbound, tripwire, local_port, now);
        if !unbans.is_empty() {
            // Learning made an address protected: lift the bans now covering it.
            d.bans.extend(unbans);
        }
        d
    }

    /// Everything after learning: the checks in the module's order.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn decide_checks<'a>(
        &mut self,
        p: &Packet<'a>,
        parsed: &Parsed<'a>,
        peer: IpAddr,
        inbound: bool,
        tripwire: bool,
        local_port: u16,
        now: Timestamp,
    ) -> Decision {
        if self.rules.policy.trusted.contains_ip(peer)
            || (self.rules.policy.learn.mode == LearnMode::Auto && self.learn.is_upstream(peer))
        {
            return self.trusted(p, parsed, peer, inbound);
        }
        if let Some(d) = self.banned_or_blocked(p, peer, inbound, now) {
            return d;
        }
        if !inbound {
            return self.outbound(p, parsed, peer, now);
        }
        if is_keepalive(p.payload) {
            return Decision::accept();
        }
        if tripwire {
            return self.tripwire(p, parsed, peer, local_port, now);
        }
        if p.transport == Transport::Tls {
            return Decision::accept(); // opaque: only address-level policy applies
        }
        let mut slot = Parsed::Pending;
        match Self::complete(&self.rules, parsed, &mut slot, p, peer) {
            Parsed::Request(msg, x, hits) => self.request(msg, x, hits, p.src, now),
            Parsed::Other(_) | Parsed::Pending => Decision::accept(), // an answer to our request
            &Parsed::Malformed(e, hits) => self.malformed(e, hits, peer, now),
        }
    }

    /// Steps 3-4: the peer under an active ban, or on a block list.
    fn banned_or_blocked(
        &self,
        p: &Packet<'_>,
        peer: IpAddr,
        inbound: bool,
        now: Timestamp,
    ) -> Option<Decision> {
        if let Some(ban) = self.bans.find(peer, now) {
            let is_req = inbound && looks_like_request(p.payload);
            let verdict = self.rules.policy.actions.banned.verdict(is_req);
            let summary = format!(
                "{peer} is banned for another {} ({}): {}",
                human_duration(ban.until.as_millis().saturating_sub(now.as_millis())),
                ban.reason,
                if is_req { "request dropped" } else { "packet dropped" }
            );
            return Some(Decision {
                verdict,
                bans: Vec::new(),
                record: Some(DecisionRecord {
                    rule: "ban.active",
                    evidence: ban.evidence.clone(),
                    summary,
                }),
            });
        }
        if let Some(net) = self.rules.policy.blocklist.find(peer) {
            let is_req = inbound && looks_like_request(p.payload);
            let summary = format!("{peer} is on the block list ({net}): dropped");
            return Some(Decision {
                verdict: self.rules.policy.actions.blocklist.verdict(is_req),
                bans: Vec::new(),
                record: Some(DecisionRecord {
                    rule: "blocklist",
                    evidence: Evidence::default(),
                    summary,
                }),
            });
        }
        None
    }

    /// Step 5: anything but a keep-alive to a tripwire port bans the peer.
    fn tripwire<'a>(
        &mut self,
        p: &Packet<'a>,
        parsed: &Parsed<'a>,
        peer: IpAddr,
        local_port: u16,
        now: Timestamp,
    ) -> Decision {
        let seen = Seen { method: None, ruri: None, ua: None, call_id: None, target: None };
        let mut slot = Parsed::Pending;
        let msg = match Self::complete(&self.rules, parsed, &mut slot, p, peer) {
            Parsed::Request(m, ..) | Parsed::Other(m) => Some(m),
            _ => None,
        };
        let seen = msg.as_ref().map_or(seen, |m| Seen {
            method: m.method(),
            ruri: m.request_uri().map(|u| u.raw),
            ua: m.user_agent(),
            call_id: m.call_id(),
            target: None,
        });
        let mut ev = seen.evidence();
        ev.counters.push(("tripwire_port".into(), local_port as u64));
        let core = format!("{} on tripwire port {local_port}", seen.sentence(peer));
        self.ban(peer, "tripwire", self.rules.policy.actions.tripwire, true, ev, core, now)
    }

    /// Step 6: a payload that does not parse as SIP.
    fn malformed(
        &mut self,
        e: ParseError<'_>,
        hits: Hits,
        peer: IpAddr,
        now: Timestamp,
    ) -> Decision {
        self.stats.malformed += 1;
        let seen = Seen {
            method: e.partial.method,
            ruri: None,
            ua: e.partial.user_agent,
            call_id: e.partial.call_id,
            target: None,
        };
        if hits.score >= self.rules.policy.ban_score {
            return self.signature_ban(&hits, &seen, peer, now);
        }
        let st = self.sources.touch(peer, now.as_millis());
        let flood = &self.rules.policy.behaviour.flood;
        let n = if flood.enabled { st.requests.add(now.as_millis(), flood.window_ms) } else { 0 };
        if flood.enabled && n >= flood.max {
            return self.flood_ban(&seen, peer, n, now);
        }
        match self.rules.policy.actions.malformed {
            Action::Accept => Decision::accept(),
            a => Decision {
                verdict: a.verdict(true),
                bans: Vec::new(),
                record: Some(DecisionRecord {
                    rule: "malformed",
                    evidence: seen.evidence(),
                    summary: format!("{peer} sent a malformed message ({e}): dropped"),
                }),
            },
        }
    }

    fn trusted<'a>(
        &mut self,
        p: &Packet<'a>,
        parsed: &Parsed<'a>,
        peer: IpAddr,
        inbound: bool,
    ) -> Decision {
        if !inbound || is_keepalive(p.payload) || p.transport == Transport::Tls {
            return Decision::accept();
        }
        let mut slot = Parsed::Pending;
        let Parsed::Request(_, x, hits) = Self::complete(&self.rules, parsed, &mut slot, p, peer)
        else {
            return Decision::accept(); // not a request, or malformed
        };
        if hits.score < self.rules.policy.ban_score {
            return Decision::accept();
        }
        self.stats.trusted_oddities += 1;
        let seen = seen_of(x);
        let mut ev = seen.evidence();
        ev.signatures = self.hit_ids(hits);
        let what = if self.rules.policy.trusted.contains_ip(peer) {
            "is trusted"
        } else {
            "is a learned upstream"
        };
        let summary = format!(
            "{} matching {}: accepted, {peer} {what} (never blocked; the source may be forged)",
            seen.sentence(peer),
            ev.signatures.join(", ")
        );
        Decision {
            verdict: Verdict::Accept,
            bans: Vec::new(),
            record: Some(DecisionRecord { rule: "trusted.oddity", evidence: ev, summary }),
        }
    }

    fn hit_ids(&self, hits: &Hits) -> Vec<String> {
        let mut v: Vec<String> = hits.builtin().map(|s| s.id.to_string()).collect();
        v.extend(
            hits.custom()
                .iter()
                .map(|&i| format!("custom.{}", self.rules.matcher.custom()[i as usize].id)),
        );
        v
    }

    fn outbound<'a>(
        &mut self,
        p: &Packet<'a>,
        parsed: &Parsed<'a>,
        peer: IpAddr,
        now: Timestamp,
    ) -> Decision {
        // Only answers matter: requests we send out are our own calls.
        let Some(kind) = answer_kind(p.payload) else { return Decision::accept() };
        let mut slot = Parsed::Pending;
        let (Parsed::Other(msg) | Parsed::Request(msg, ..)) =
            Self::complete(&self.rules, parsed, &mut slot, p, peer)
        else {
            return Decision::accept();
        };
        let status = msg.status().unwrap_or(0);
        let now_ms = now.as_millis();
        let st = self.sources.touch(peer, now_ms);
        let (rule, t, n, what) = count_answer(st, kind, msg, &self.rules.policy.behaviour, now_ms);
        if !t.enabled || n < t.max {
            return Decision::accept();
        }
        let mut ev = Evidence {
            method: msg.cseq().map(|c| show(c.method.as_bytes())),
            call_id: msg.call_id().map(show),
            target_user: msg.to().and_then(|t| t.uri.user).map(show),
            ..Evidence::default()
        };
        ev.users_probed = st.sampled_users();
        ev.counters.push((format!("answers_{status}_family_in_window"), n as u64));
        let core = format!(
            "{peer} got {n} {what} within {}s (last: {status} to {} for user {})",
            t.window_ms / 1000,
            ev.method.clone().unwrap_or_default(),
            ev.target_user.clone().unwrap_or_default()
        );
        // The answer itself is withheld: silence makes scanners give up.
        self.ban(peer, rule, Action::Drop, false, ev, core, now)
    }

    fn request(
        &mut self,
        msg: &Message<'_>,
        x: &Fields<'_>,
        hits: &Hits,
        src: std::net::SocketAddr,
        now: Timestamp,
    ) -> Decision {
        let peer = canonical(src.ip());
        let seen = seen_of(x);
        if hits.score >= self.rules.policy.ban_score {
            return self.signature_ban(hits, &seen, peer, now);
        }
        let initial_invite =
            seen.method == Some(Method::Invite) && x.to.is_none_or(|t| t.tag.is_none());
        // A REGISTER or INVITE with digest credentials (behaviour counts failed ones; learning
        // remembers it until the protected side's answer).
        let credentials = matches!(x.method, Some(Method::Register | Method::Invite))
            && (msg.authorization().is_some() || msg.proxy_authorization().is_some());
        let lp = &self.rules.policy.learn;
        if lp.mode == LearnMode::Auto {
            let now_ms = now.as_millis();
            if credentials {
                self.learn.inbound_credentials(msg, src, now_ms, lp);
            }
            if lp.campaign.enabled
                && (initial_invite || x.method == Some(Method::Options))
                && self.sources.get(&peer).is_none()
                && !self.learn.is_known_good(peer, now_ms, lp)
            {
                if let Some(c) = self.learn.campaign_observe(peer, seen.target, msg, now_ms, lp) {
                    return self.campaign_ban(&c, &seen, peer, now);
                }
            }
        }
        if let Some(d) = self.behaviour(msg, x, &seen, initial_invite, credentials, peer, now) {
            return d;
        }
        self.call_policy(x, &seen, initial_invite, peer, now)
    }

    /// A new source's first request belongs to a campaign: ban it at once.
    fn campaign_ban(
        &mut self,
        c: &Campaign,
        seen: &Seen<'_>,
        peer: IpAddr,
        now: Timestamp,
    ) -> Decision {
        let lp = &self.rules.policy.learn.campaign;
        let mut ev = seen.evidence();
        ev.counters.push(("campaign_sources".into(), c.sources));
        ev.counters.push((
            "campaign_seconds".into(),
            (c.last_seen.as_millis().saturating_sub(c.first_seen.as_millis())) / 1000,
        ));
        let what = match c.kind {
            crate::learn::CampaignKind::TargetUser => format!("the same target user {}", c.key),
            crate::learn::CampaignKind::Fingerprint => {
                format!("the same message fingerprint {} ({})", c.key, c.label)
            }
        };
        let core = format!(
            "{} as one of {} new sources sending {what} (campaign: {} or more new sources within {}s)",
            seen.sentence(peer),
            c.sources,
            lp.sources,
            lp.window_ms / 1000
        );
        self.ban(peer, c.kind.rule(), self.rules.policy.actions.behaviour, true, ev, core, now)
    }

    /// What one parsed message teaches (step 0). Returns `Remove` actions for bans that now
    /// cover a newly protected address.
    fn learn_from(
        &mut self,
        p: &Packet<'_>,
        msg: &Message<'_>,
        peer: IpAddr,
        inbound: bool,
        now: Timestamp,
    ) -> Vec<BanAction> {
        let lp = &self.rules.policy.learn;
        let now_ms = now.as_millis();
        let change = if inbound {
            if msg.is_request() {
                return Vec::new();
            }
            self.learn.inbound_answer(msg, p.src, now_ms, lp)
        } else if msg.is_request() {
            self.learn.outbound_request(msg, p.dst, now_ms);
            Change::Nothing
        } else {
            match msg.status() {
                Some(401 | 407) => {
                    self.learn.outbound_challenge(msg, peer, now_ms);
                    Change::Nothing
                }
                Some(200..=299) => self.learn.outbound_success(msg, peer, now_ms, lp),
                _ => Change::Nothing,
            }
        };
        self.apply_change(change)
    }

    fn apply_change(&mut self, change: Change) -> Vec<BanAction> {
        self.unprotect_evicted();
        let policy = &self.rules.policy;
        match change {
            Change::Nothing => Vec::new(),
            Change::NewUpstream(ip) => {
                // Its source state is moot now: it is accepted like a trusted network.
                self.sources.remove(&ip);
                self.bans.protect_learned(ProtectedKind::Upstream, ip, true, policy)
            }
            Change::NewKnownGood(ip) => {
                self.bans.protect_learned(ProtectedKind::LearnedGood, ip, true, policy)
            }
        }
    }

    /// Stop protecting the addresses the learner evicted to make room (so the ban table's
    /// learned sets stay as bounded as the learner's tables).
    fn unprotect_evicted(&mut self) {
        let policy = &self.rules.policy;
        for c in self.learn.take_evicted() {
            match c {
                Change::NewUpstream(ip) if !self.learn.is_upstream(ip) => {
                    self.bans.protect_learned(ProtectedKind::Upstream, ip, false, policy);
                }
                Change::NewKnownGood(ip) if !self.learn.has_known_good_entry(ip) => {
                    self.bans.protect_learned(ProtectedKind::LearnedGood, ip, false, policy);
                }
                _ => {}
            }
        }
    }

    /// Make the ban table's learned sets equal the learner's facts (after reload/forget).
    fn sync_learned_protection(&mut self) {
        let policy = &self.rules.policy;
        for f in self.learn.facts() {
            let _ = match f.key {
                FactKey::Upstream(ip) => {
                    self.bans.protect_learned(ProtectedKind::Upstream, ip, true, policy)
                }
                FactKey::KnownGood(ip) => {
                    self.bans.protect_learned(ProtectedKind::LearnedGood, ip, true, policy)
                }
                FactKey::LocalUser(_) => Vec::new(),
            };
        }
    }

    // ------------------------------------------------------------------ learned facts (API)

    /// What learning is doing: mode, whether the unsolicited-INVITE rule is in force yet
    /// ("learning, not enforcing yet" while `enforcing` is false), table sizes, and a
    /// generation that changes whenever the facts do (persist when it moves).
    pub fn learn_status(&self) -> LearnStatus {
        self.learn.status(self.rules.policy.learn.mode)
    }

    /// Every learned fact (upstreams, local users, known-good clients), sorted by key: for
    /// listing and for persisting. Known-good clients past their time are listed until
    /// [`Engine::expire`] removes them; [`LearnedFact::expires`] says when.
    pub fn learned(&self) -> Vec<LearnedFact> {
        self.learn.facts()
    }

    /// Put back a persisted fact at start (before or after [`Engine::restore_ban`]). Skipped
    /// (None) when it has expired at `now` or its table is full; otherwise the `Remove`
    /// actions of bans that now cover a protected address (usually none).
    pub fn restore_learned(&mut self, fact: LearnedFact, now: Timestamp) -> Option<Vec<BanAction>> {
        let change = self.learn.restore(fact, now.as_millis(), &self.rules.policy.learn)?;
        Some(self.apply_change(change))
    }

    /// Pin a fact: never evicted, never forgotten. A fact not learned yet is created with
    /// "pinned by the operator" as its evidence (so an operator can name an upstream before it
    /// is seen). Returns `Remove` actions of bans now covering a protected address.
    pub fn pin_learned(
        &mut self,
        key: FactKey,
        now: Timestamp,
    ) -> Result<Vec<BanAction>, LearnError> {
        let change = self.learn.pin(key, true, now.as_millis(), &self.rules.policy.learn)?;
        Ok(self.apply_change(change))
    }

    /// Unpin a fact: it ages like a learned one again, from `now`.
    pub fn unpin_learned(&mut self, key: FactKey, now: Timestamp) -> Result<(), LearnError> {
        self.learn.pin(key, false, now.as_millis(), &self.rules.policy.learn).map(|_| ())
    }

    /// Forget a fact (pinned or not); an address stops being protected at once.
    pub fn forget_learned(&mut self, key: &FactKey) -> Result<LearnedFact, LearnError> {
        let f = self.learn.forget(key)?;
        let policy = &self.rules.policy;
        match f.key {
            FactKey::Upstream(ip) => {
                self.bans.protect_learned(ProtectedKind::Upstream, ip, false, policy);
            }
            FactKey::KnownGood(ip) => {
                self.bans.protect_learned(ProtectedKind::LearnedGood, ip, false, policy);
            }
            FactKey::LocalUser(_) => {}
        }
        Ok(f)
    }

    /// Active campaigns at `now`, most sources first.
    pub fn campaigns(&self, now: Timestamp) -> Vec<Campaign> {
        self.learn.campaigns(now.as_millis(), self.rules.policy.learn.campaign.hold_ms)
    }

    /// True if `ip` is a learned (or pinned) upstream. In `mode = "off"` upstreams are kept
    /// but not used: this still answers from the table.
    pub fn is_learned_upstream(&self, ip: IpAddr) -> bool {
        self.learn.is_upstream(canonical(ip))
    }

    /// True if `ip` is a known-good client at `now`.
    pub fn is_known_good(&self, ip: IpAddr, now: Timestamp) -> bool {
        self.learn.is_known_good(canonical(ip), now.as_millis(), &self.rules.policy.learn)
    }

    /// Entries held for learning: the learner's tables and the ban table's sets of learned
    /// (protected) addresses, together (bounded by the `[learn]` capacities).
    pub fn learn_footprint(&self) -> usize {
        self.learn.footprint() + self.bans.learned_len()
    }

    /// Step 7, behaviour: count the request in the source's windows (flood, distinct users,
    /// new INVITEs) and ban the source that reaches a threshold.
    #[allow(clippy::too_many_arguments)]
    fn behaviour(
        &mut self,
        msg: &Message<'_>,
        x: &Fields<'_>,
        seen: &Seen<'_>,
        initial_invite: bool,
        credentials: bool,
        peer: IpAddr,
        now: Timestamp,
    ) -> Option<Decision> {
        let now_ms = now.as_millis();
        let b = &self.rules.policy.behaviour;
        let st = self.sources.touch(peer, now_ms);
        st.total_requests = st.total_requests.saturating_add(1);
        if credentials {
            if let (Some(c), Some(s)) = (x.call_id, msg.cseq()) {
                st.note_credentials(attempt_key(c, s.number));
            }
        }
        let flood = if b.flood.enabled { st.requests.add(now_ms, b.flood.window_ms) } else { 0 };
        let distinct = match (b.enumeration.enabled, seen.target) {
            (true, Some(u)) => st.add_user(u, hash32(u), now_ms, b.enumeration.window_ms),
            _ => 0,
        };
        let invites = if initial_invite && b.untrusted_invites.enabled {
            st.invites.add(now_ms, b.untrusted_invites.window_ms)
        } else {
            0
        };
        if b.flood.enabled && flood >= b.flood.max {
            return Some(self.flood_ban(seen, peer, flood, now));
        }
        if b.enumeration.enabled && distinct >= b.enumeration.max {
            let mut ev = seen.evidence();
            ev.users_probed = st.sampled_users();
            ev.counters.push(("distinct_users_in_window".into(), distinct as u64));
            ev.counters.push((
                "seconds_since_first_seen".into(),
                (now_ms.saturating_sub(st.first_seen_ms)) / 1000,
            ));
            let core = format!(
                "{} after probing {distinct} distinct users within {}s (recent: {}): extension enumeration",
                seen.sentence(peer),
                b.enumeration.window_ms / 1000,
                ev.users_probed.join(", ")
            );
            return Some(self.ban(
                peer,
                "behaviour.enumeration",
                self.rules.policy.actions.behaviour,
                true,
                ev,
                core,
                now,
            ));
        }
        if b.untrusted_invites.enabled && invites >= b.untrusted_invites.max {
            let mut ev = seen.evidence();
            ev.users_probed = st.sampled_users();
            ev.counters.push(("untrusted_invites_in_window".into(), invites as u64));
            let core = format!(
                "{} as its {invites}th new INVITE within {}s from an untrusted source",
                seen.sentence(peer),
                b.untrusted_invites.window_ms / 1000
            );
            return Some(self.ban(
                peer,
                "behaviour.untrusted-invites",
                self.rules.policy.actions.behaviour,
                true,
                ev,
                core,
                now,
            ));
        }
        None
    }

    /// Step 7, last: trusted-only mode and direct-call rules drop without a ban.
    fn call_policy(
        &self,
        x: &Fields<'_>,
        seen: &Seen<'_>,
        initial_invite: bool,
        peer: IpAddr,
        now: Timestamp,
    ) -> Decision {
        let method = seen.method.map(|m| m.as_bytes()).unwrap_or(b"");
        if self.rules.policy.trusted_only
            && (self.rules.policy.trusted_only_methods.is_empty()
                || self.rules.policy.trusted_only_methods.iter().any(|m| m.as_bytes() == method))
        {
            return Decision {
                verdict: self.rules.policy.actions.trusted_only.verdict(true),
                bans: Vec::new(),
                record: Some(DecisionRecord {
                    rule: "policy.trusted-only",
                    evidence: seen.evidence(),
                    summary: format!(
                        "{}: not a trusted source (trusted-only mode): dropped",
                        seen.sentence(peer)
                    ),
                }),
            };
        }
        if initial_invite {
            let ru = x.ruri;
            let ip_host = matches!(ru.and_then(|u| u.host), Some(Host::Ip(_)));
            let user = ru.and_then(|u| u.user);
            let unknown_user = !self.rules.local_users.is_empty()
                && user.is_none_or(|u| !self.rules.local_users.contains(u));
            if (self.rules.policy.block_ip_calls && ip_host) || unknown_user {
                let why =
                    if unknown_user { "names no local account" } else { "is a direct IP call" };
                return Decision {
                    verdict: self.rules.policy.actions.direct_call.verdict(true),
                    bans: Vec::new(),
                    record: Some(DecisionRecord {
                        rule: "policy.direct-call",
                        evidence: seen.evidence(),
                        summary: format!("{}: the INVITE {why}: dropped", seen.sentence(peer)),
                    }),
                };
            }
            if let Some(d) = self.unsolicited_invite(x, seen, peer, now) {
                return d;
            }
        }
        Decision::accept()
    }

    /// `ghost.unsolicited-invite`: in auto mode once an upstream is learned, a new INVITE from
    /// a source that is not trusted, upstream (both accepted before) or known-good is a ghost
    /// call when its request-URI is an IP literal or names no learned or configured local user.
    fn unsolicited_invite(
        &self,
        x: &Fields<'_>,
        seen: &Seen<'_>,
        peer: IpAddr,
        now: Timestamp,
    ) -> Option<Decision> {
        let lp = &self.rules.policy.learn;
        if lp.mode != LearnMode::Auto
            || !self.learn.has_upstream()
            || self.learn.is_known_good(peer, now.as_millis(), lp)
        {
            return None;
        }
        let ru = x.ruri;
        let ip_host = matches!(ru.and_then(|u| u.host), Some(Host::Ip(_)));
        let user = ru.and_then(|u| u.user);
        let local =
            user.is_some_and(|u| self.rules.local_users.contains(u) || self.learn.is_local_user(u));
        if !ip_host && local {
            return None;
        }
        let why = if ip_host {
            "its request-URI is an IP literal"
        } else {
            "its request-URI names no learned or configured local user"
        };
        Some(Decision {
            verdict: self.rules.policy.actions.direct_call.verdict(true),
            bans: Vec::new(),
            record: Some(DecisionRecord {
                rule: "ghost.unsolicited-invite",
                evidence: seen.evidence(),
                summary: format!(
                    "{}: unsolicited INVITE ({why}) from a source that is not trusted, not a \
                     learned upstream and not a known-good client: dropped as a ghost call",
                    seen.sentence(peer)
                ),
            }),
        })
    }

    fn signature_ban(
        &mut self,
        hits: &Hits,
        seen: &Seen<'_>,
        peer: IpAddr,
        now: Timestamp,
    ) -> Decision {
        let mut ev = seen.evidence();
        ev.signatures = self.hit_ids(hits);
        ev.counters.push(("signature_score".into(), hits.score as u64));
        let first = hits.builtin().min_by_key(|s| std::cmp::Reverse(s.score));
        let rule: RuleId = match first {
            Some(s) => s.rule,
            None => "signature.custom",
        };
        // The tool named is the one of the strongest signature (custom ones when only they hit).
        let tool = match first {
            Some(s) => s.tool.to_string(),
            None => hits
                .custom()
                .iter()
                .map(|&i| self.rules.matcher.custom()[i as usize].tool.clone())
                .find(|t| !t.is_empty())
                .unwrap_or_default(),
        };
        let tag = match hits.tag_data() {
            Some(t) => match svmap_target(&t) {
                Some(target) => format!("; its From tag encodes the scanned target {target}"),
                None => format!("; its From tag encodes '{t}'"),
            },
            None => String::new(),
        };
        let core = format!("{} ({tool}: {}){tag}", seen.sentence(peer), ev.signatures.join(", "));
        // svwar hides the probed extension in its From tag, svcrack the user it attacks.
        if let Some(t) = hits.tag_data().filter(|t| svmap_target(t).is_none()) {
            let user = t.split(':').next().unwrap_or_default().to_string();
            if !user.is_empty() && !ev.users_probed.contains(&user) {
                ev.users_probed.push(user);
            }
        }
        self.ban(peer, rule, self.rules.policy.actions.signature, true, ev, core, now)
    }

    fn flood_ban(&mut self, seen: &Seen<'_>, peer: IpAddr, n: u32, now: Timestamp) -> Decision {
        let w = self.rules.policy.behaviour.flood.window_ms / 1000;
        let mut ev = seen.evidence();
        ev.counters.push(("requests_in_window".into(), n as u64));
        let core =
            format!("{} as its {n}th request within {w}s: request flood", seen.sentence(peer));
        self.ban(peer, "behaviour.flood", self.rules.policy.actions.behaviour, true, ev, core, now)
    }

    /// Ban `peer` (if bans are on) and refuse the packet.
    #[allow(clippy::too_many_arguments)]
    fn ban(
        &mut self,
        peer: IpAddr,
        rule: RuleId,
        action: Action,
        is_req: bool,
        ev: Evidence,
        core: String,
        now: Timestamp,
    ) -> Decision {
        let mut actions = Vec::new();
        let summary = if self.rules.policy.bans.enabled {
            actions = self.bans.add(
                BanRequest {
                    net: IpNet::from(peer),
                    rule,
                    reason: core.clone(),
                    evidence: ev.clone(),
                    origin: BanOrigin::Detection,
                    duration_ms: None,
                },
                now,
                &self.rules.policy,
            );
            self.sources.remove(&peer);
            self.stats.bans_added += actions.len() as u64;
            let mut s = core;
            for a in &actions {
                if let BanAction::Add(b) = a {
                    let d = human_duration(b.until.as_millis() - b.since.as_millis());
                    if b.net.prefix_len() == b.net.max_prefix_len() {
                        s += &format!(": banned for {d}");
                        if b.count > 1 {
                            s += &format!(" (ban #{})", b.count);
                        }
                    } else {
                        s += &format!("; range {} banned for {d} ({})", b.net, b.reason);
                    }
                }
            }
            if actions.is_empty() {
                s += if self.bans.protected_overlap(IpNet::from(peer), &self.rules.policy).is_some()
                {
                    ": dropped (a protected address: never banned)"
                } else {
                    ": dropped (ban table full)"
                };
            }
            s
        } else {
            format!("{core}: dropped (bans are off)")
        };
        Decision {
            verdict: action.verdict(is_req),
            bans: actions,
            record: Some(DecisionRecord { rule, evidence: ev, summary }),
        }
    }

    /// Ban by hand. Refused, with the reason, for a network that covers a protected address
    /// (trusted, local or known-good), one already banned, or a full table.
    pub fn ban_manual(
        &mut self,
        net: IpNet,
        duration: Duration,
        reason: &str,
        now: Timestamp,
    ) -> Result<BanAction, BanError> {
        let net = net.trunc();
        if let Some((kind, member)) = self.bans.protected_overlap(net, &self.rules.policy) {
            return Err(BanError::CoversProtected { net, member, what: kind.describe() });
        }
        if let Some(b) = self.bans.active(&net, now) {
            return Err(BanError::AlreadyBanned { net, until: b.until });
        }
        let actions = self.bans.add(
            BanRequest {
                net,
                rule: "manual",
                reason: reason.to_string(),
                evidence: Evidence::default(),
                origin: BanOrigin::Manual,
                duration_ms: Some(duration.as_millis() as u64),
            },
            now,
            &self.rules.policy,
        );
        self.stats.bans_added += actions.len() as u64;
        actions.into_iter().next().ok_or(BanError::TableFull { net })
    }

    /// Take a ban made by another node of the fleet (`ban.origin` should be
    /// [`BanOrigin::Fleet`]): local policy wins, so it is refused, like a manual ban, when it
    /// covers a protected address (trusted, local or known-good) or the table is full; a ban of
    /// the same network that ends as late or later stays (`AlreadyBanned`); an earlier-ending
    /// one is replaced (extended); one already over is refused (`Ended`). The ban keeps its
    /// times, rule, reason and evidence, and its offence is remembered like a restored ban's
    /// (a source the fleet banned that offends here too escalates).
    pub fn ban_shared(&mut self, ban: Ban, now: Timestamp) -> Result<BanAction, BanError> {
        let net = ban.net.trunc();
        if let Some((kind, member)) = self.bans.protected_overlap(net, &self.rules.policy) {
            return Err(BanError::CoversProtected { net, member, what: kind.describe() });
        }
        if ban.until <= now {
            return Err(BanError::Ended { net });
        }
        if let Some(b) = self.bans.active(&net, now) {
            if b.until >= ban.until {
                return Err(BanError::AlreadyBanned { net, until: b.until });
            }
        }
        // The earlier-ending (or already ended, not yet expired) ban of the net gives way.
        self.bans.remove(&net, &self.rules.policy);
        let ban = Ban { net, ..ban };
        if self.bans.restore(ban.clone(), now, &self.rules.policy) {
            self.stats.bans_added += 1;
            Ok(BanAction::Add(ban))
        } else {
            Err(BanError::TableFull { net })
        }
    }

    /// Lift a ban (exact network). Returns its `Remove` action, or None if it was not banned.
    pub fn unban(&mut self, net: IpNet) -> Option<BanAction> {
        let net = net.trunc();
        self.bans.remove(&net, &self.rules.policy).map(|_| BanAction::Remove(net))
    }

    /// Put back a ban loaded from the store (skipped if expired or covering a protected
    /// address: call [`Engine::set_local_addresses`] first).
    pub fn restore_ban(&mut self, ban: Ban, now: Timestamp) -> bool {
        self.bans.restore(ban, now, &self.rules.policy)
    }

    /// Put back a network's offence history loaded from the store (`count` bans so far, the
    /// last ending at `last_until`), so a repeat offender whose ban ended before a restart
    /// still gets an escalated ban. Skipped (false) if trusted or already forgotten.
    pub fn restore_offence(
        &mut self,
        net: IpNet,
        count: u32,
        last_until: Timestamp,
        now: Timestamp,
    ) -> bool {
        self.bans.restore_offence(net, count, last_until, now, &self.rules.policy)
    }

    /// Remove expired bans (returns their Remove actions), and forget expired learned facts
    /// (known-good clients past `known_good_secs`, upstreams and users past
    /// `forget_after_secs`, never pinned ones) and ended campaigns.
    pub fn expire(&mut self, now: Timestamp) -> Vec<BanAction> {
        let policy = &self.rules.policy;
        let gone = self.learn.expire(now.as_millis(), &policy.learn);
        if !gone.is_empty() {
            // Rebuild both learned sets from what is left (an address may be in one only).
            for ip in gone {
                self.bans.protect_learned(ProtectedKind::Upstream, ip, false, policy);
                self.bans.protect_learned(ProtectedKind::LearnedGood, ip, false, policy);
            }
            self.sync_learned_protection();
        }
        self.bans.expire(now, &self.rules.policy)
    }

    /// Active (and not yet expired) bans, in no particular order.
    pub fn bans(&self) -> impl Iterator<Item = &Ban> + '_ {
        self.bans.iter()
    }

    /// The active ban covering `ip` at `now`, if any.
    pub fn ban_for(&self, ip: IpAddr, now: Timestamp) -> Option<&Ban> {
        self.bans.find(ip, now)
    }

    /// Counters.
    pub fn stats(&self) -> EngineStats {
        EngineStats {
            tracked_sources: self.sources.len() as u64,
            evicted_sources: self.sources.evicted,
            active_bans: self.bans.len() as u64,
            bans_refused: self.bans.refused,
            bans_protected: self.bans.protected_skipped,
            bans_folded: self.bans.folded,
            ..self.stats
        }
    }

    /// Number of sources whose behaviour is tracked (at most `limits.max_tracked_sources`).
    pub fn tracked_sources(&self) -> usize {
        self.sources.len()
    }

    /// Distinct target users seen from `ip` within the enumeration window (0 if untracked).
    pub fn distinct_users(&self, ip: IpAddr, now: Timestamp) -> u32 {
        let w = self.rules.policy.behaviour.enumeration.window_ms;
        self.sources.get(&canonical(ip)).map_or(0, |s| s.distinct_users(now.as_millis(), w))
    }

    /// What the engine tracks of `ip` at `now` (None: not tracked), each behaviour counter
    /// over its own window, as the ban thresholds see it. Read-only, O(1): for operators'
    /// "what do you know about this address" (`/api/v1/sources/{ip}`).
    pub fn source_counters(&self, ip: IpAddr, now: Timestamp) -> Option<SourceCounters> {
        let s = self.sources.get(&canonical(ip))?;
        let b = &self.rules.policy.behaviour;
        let t = now.as_millis();
        Some(SourceCounters {
            first_seen_ms: s.first_seen_ms,
            last_seen_ms: s.last_seen_ms,
            total_requests: u64::from(s.total_requests),
            requests_in_window: s.requests.estimate(t, b.flood.window_ms),
            distinct_users_in_window: s.distinct_users(t, b.enumeration.window_ms),
            auth_failures_in_window: s.auth_failures.estimate(t, b.auth_failures.window_ms),
            challenges_in_window: s.challenges.estimate(t, b.challenges.window_ms),
            not_found_in_window: s.not_found.estimate(t, b.not_found.window_ms),
            invites_in_window: s.invites.estimate(t, b.untrusted_invites.window_ms),
        })
    }
}

/// The engine's per-source state of one address ([`Engine::source_counters`]); each
/// `*_in_window` counts over the window of the behaviour rule of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SourceCounters {
    /// First packet seen since it was tracked, ms since the epoch.
    pub first_seen_ms: u64,
    /// Last packet seen, ms since the epoch.
    pub last_seen_ms: u64,
    /// Requests seen since it was tracked.
    pub total_requests: u64,
    /// Requests (flood window).
    pub requests_in_window: u32,
    /// Distinct target users (enumeration window).
    pub distinct_users_in_window: u32,
    /// Failed authentications answered to it.
    pub auth_failures_in_window: u32,
    /// First challenges answered to it.
    pub challenges_in_window: u32,
    /// 404/480/484 answered to it.
    pub not_found_in_window: u32,
    /// New INVITEs from it.
    pub invites_in_window: u32,
}

/// svmap's tag data is the scanned address and port in hex (`7f0000013b56` = 127.0.0.1:15190).
fn svmap_target(data: &str) -> Option<String> {
    // A letter is required so a 12-digit extension (svwar) is not taken for an address.
    if data.len() != 12
        || !data.bytes().all(|b| b.is_ascii_hexdigit())
        || data.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let v = u64::from_str_radix(data, 16).ok()?;
    let ip = std::net::Ipv4Addr::from((v >> 16) as u32);
    Some(format!("{ip}:{}", v & 0xffff))
}

fn seen_of<'a>(x: &Fields<'a>) -> Seen<'a> {
    let to_user = x.to.and_then(|t| t.uri.user);
    let target = match x.method {
        Some(Method::Register) => to_user,
        _ => x.ruri.and_then(|u| u.user).or(to_user),
    };
    Seen { method: x.method, ruri: x.ruri.map(|u| u.raw), ua: x.ua, call_id: x.call_id, target }
}

#[cfg(test)]
mod tests {

    #[test]
    fn source_counters_show_what_the_thresholds_see() {
        let mut e = Engine::new(Policy::from_toml_str("").unwrap());
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        assert_eq!(e.source_counters(ip, Timestamp::from_millis(1_000)), None);
        for (i, user) in ["100", "101", "102"].iter().enumerate() {
            let msg = format!(
                "REGISTER sip:{user}@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.7:5070;branch=z9hG4bK-{i}\r\nFrom: <sip:{user}@192.0.2.10>;tag=a{i}\r\nTo: <sip:{user}@192.0.2.10>\r\nCall-ID: c{i}@203.0.113.7\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n"
            );
            let p = Packet {
                src: "203.0.113.7:5070".parse().unwrap(),
                dst: "192.0.2.10:5060".parse().unwrap(),
                transport: Transport::Udp,
                direction: Direction::Inbound,
                payload: msg.as_bytes(),
            };
            e.decide(&p, Timestamp::from_millis(1_000 + i as u64));
        }
        let c = e.source_counters(ip, Timestamp::from_millis(1_010)).expect("tracked");
        assert_eq!((c.first_seen_ms, c.last_seen_ms), (1_000, 1_002));
        assert_eq!(c.total_requests, 3);
        assert_eq!(c.requests_in_window, 3);
        assert_eq!(c.distinct_users_in_window, 3);
        assert_eq!(c.auth_failures_in_window, 0);
    }

    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(3_600_000), "1h");
        assert_eq!(human_duration(4 * 3_600_000), "4h");
        assert_eq!(human_duration(64 * 3_600_000), "2d 16h");
        assert_eq!(human_duration(90_000), "1m 30s");
        assert_eq!(human_duration(604_800_000), "7d");
    }

    #[test]
    fn svmap_tag_target() {
        assert_eq!(svmap_target("7f0000013b56").as_deref(), Some("127.0.0.1:15190"));
        assert_eq!(svmap_target("1785151455"), None);
        assert_eq!(svmap_target("100000000000"), None);
        assert_eq!(svmap_target("202:***"), None);
    }

    #[test]
    fn keepalives() {
        assert!(is_keepalive(b"\r\n\r\n"));
        assert!(is_keepalive(b""));
        assert!(!is_keepalive(b"OPTIONS sip:x SIP/2.0\r\n"));
    }

    #[test]
    fn restored_offence_makes_the_next_ban_escalate() {
        let p = Policy::from_toml_str(
            "[trusted]\nnetworks = [\"198.51.100.0/24\"]\n[bans]\nduration_secs = 60\nescalation_factor = 3\nforget_after_secs = 300\n",
        )
        .unwrap();
        let now = Timestamp::from_millis(500_000);
        let ban = |e: &mut Engine, net: &str| {
            let req = BanRequest {
                net: net.parse().unwrap(),
                rule: "test",
                reason: "test".into(),
                evidence: Evidence::default(),
                origin: BanOrigin::Detection,
                duration_ms: None,
            };
            let policy = e.policy().clone();
            match e.bans.add(req, now, &policy).first() {
                Some(BanAction::Add(b)) => (b.count, b.until.as_millis() - b.since.as_millis()),
                other => panic!("no ban: {other:?}"),
            }
        };
        let mut e = Engine::new(p.clone());
        // 2 bans so far, the last ended 100 s ago: the next is ban #3, 60 s x 3^2.
        assert!(e.restore_offence(
            "203.0.113.9/32".parse().unwrap(),
            2,
            Timestamp::from_millis(400_000),
            now
        ));
        assert_eq!(ban(&mut e, "203.0.113.9/32"), (3, 540_000));
        // without the restore: a first-time ban
        assert_eq!(ban(&mut Engine::new(p.clone()), "203.0.113.9/32"), (1, 60_000));
        // forgotten (ended more than forget_after ago) and trusted offences are not restored
        let mut e = Engine::new(p);
        assert!(!e.restore_offence(
            "203.0.113.7/32".parse().unwrap(),
            4,
            Timestamp::from_millis(1),
            now
        ));
        assert!(!e.restore_offence(
            "198.51.100.7/32".parse().unwrap(),
            4,
            Timestamp::from_millis(400_000),
            now
        ));
        assert_eq!(ban(&mut e, "203.0.113.7/32"), (1, 60_000));
    }

    #[test]
    fn show_is_safe() {
        assert_eq!(show(b"a\x01b\r\n"), "a.b..");
        assert!(show(&[b'x'; 500]).ends_with('…'));
    }
}
