//! Active bans, offence history (escalation) and range aggregation.
//!
//! CONTRACT:
//! * A ban covers a network (an address is a /32 or /128); a look-up costs one hash probe per
//!   prefix length in use.
//! * A ban is active while `now < until`; [`BanTable::expire`] removes ended ones and returns
//!   their `Remove` actions. Look-ups ignore ended bans even before `expire` runs.
//! * Repeat offenders: the n-th ban of a network within `forget_after` of its last ban lasts
//!   `duration x factor^(n-1)`, capped at `max_duration`.
//! * PROTECTED addresses are never covered by a ban: trusted networks, `bans.local_addresses`,
//!   the host's own addresses ([`BanTable::set_local`]), known-good addresses
//!   ([`BanTable::set_known_good`]) and what the engine LEARNED ([`BanTable::protect_learned`]:
//!   upstreams and known-good clients, see `learn.rs`). One exception: a learned known-good
//!   client may still get an EXACT address ban from a signature (`signature.*` rules), never
//!   one from behaviour, a campaign or an aggregate. An automatic ban of such an address is not made; an
//!   automatic aggregate that would cover one is SPLIT into the largest CIDR blocks of the
//!   range that avoid every protected address (at most [`MAX_SPLIT_PIECES`] blocks, else no
//!   aggregate: the address bans stay). Splitting keeps the storm protection of the range for
//!   all but the protected addresses, at a bounded cost (one more prefix length per piece in
//!   the look-up, at most 8 pieces for one protected address in a /24). Manual bans covering a
//!   protected address are refused by the engine with an error naming it.
//! * Aggregation, two levels: when `threshold` addresses of one range (IPv4 /24, IPv6 /64,
//!   configurable) are banned at once, the range is banned; when `wide_threshold` distinct
//!   ranges of one wide range (IPv4 /16, IPv6 /48) hold automatic bans at once, the wide range
//!   is banned. So a storm of distinct sources ends in a few wide bans, not one per address.
//! * Rate cap: at most `bans.max_per_second` automatic ADDRESS bans per second of packet time;
//!   beyond it, a new one is folded into its range (one range ban covers the source and its
//!   neighbours), so the excess is not lost, only widened. Where the range is protected, the
//!   address ban is made anyway (never lost).
//! * Bounded: at most `max_bans` bans and `max_ban_history` history entries; the per-range
//!   counters only hold ranges that contain an active automatic ban, so they are bounded by
//!   `max_bans` too.
use std::net::IpAddr;

use ipnet::IpNet;

use crate::decision::{Ban, BanAction, BanOrigin, Evidence, Timestamp};
use crate::fasthash::FastMap;
use crate::netset::{canonical, net_of, NetSet};
use crate::policy::Policy;

/// Most blocks an aggregate is split into around protected addresses; beyond it the
/// aggregate is not made (its address bans stay).
pub(crate) const MAX_SPLIT_PIECES: usize = 16;

#[derive(Debug, Clone, Copy)]
struct Offence {
    count: u32,
    last_until: Timestamp,
}

/// What a new ban should say.
pub(crate) struct BanRequest<'a> {
    pub(crate) net: IpNet,
    pub(crate) rule: &'a str,
    pub(crate) reason: String,
    pub(crate) evidence: Evidence,
    pub(crate) origin: BanOrigin,
    /// Fixed duration (manual bans); None = policy duration with escalation.
    pub(crate) duration_ms: Option<u64>,
}

/// Which kind of protected address a ban would cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProtectedKind {
    Trusted,
    Local,
    KnownGood,
    /// A learned upstream.
    Upstream,
    /// A learned known-good client (completed digest authentication).
    LearnedGood,
}

impl ProtectedKind {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            ProtectedKind::Trusted => "a trusted network ([trusted] networks)",
            ProtectedKind::Local => "an address of this host",
            ProtectedKind::KnownGood => "a known-good address",
            ProtectedKind::Upstream => "a learned upstream (sipwall learned)",
            ProtectedKind::LearnedGood => "a learned known-good client (sipwall learned)",
        }
    }
}

/// Per range: active automatic address bans in it, and active automatic bans of any other
/// kind inside it (the range ban itself, split pieces). A range with both zero is dropped.
#[derive(Debug, Default, Clone, Copy)]
struct RangeCount {
    hosts: u32,
    others: u32,
}

#[derive(Debug, Default)]
pub(crate) struct BanTable {
    bans: FastMap<IpNet, Ban>,
    lens: Vec<(bool, u8, u32)>, // (is_v4, prefix len, how many bans use it)
    /// Ranges (`/24`, `/64`) holding active automatic bans.
    range_counts: FastMap<IpNet, RangeCount>,
    /// Wide ranges (`/16`, `/48`): how many distinct ranges in them hold automatic bans.
    wide_counts: FastMap<IpNet, u32>,
    history: FastMap<IpNet, Offence>,
    /// The host's own addresses, from the caller.
    local: NetSet,
    /// Known-good addresses, from the caller.
    known_good: NetSet,
    /// Learned upstreams (exact addresses).
    upstream: NetSet,
    /// Learned known-good clients (exact addresses).
    learned_good: NetSet,
    /// (second of packet time, automatic address bans made in it).
    rate: (u64, u32),
    pub(crate) refused: u64,
    pub(crate) protected_skipped: u64,
    pub(crate) folded: u64,
}

fn is_host(net: &IpNet) -> bool {
    net.prefix_len() == net.max_prefix_len()
}

/// Split `range` into the largest CIDR blocks that overlap none of `protected`. False when
/// that takes more than `max` blocks.
fn split_around(range: IpNet, protected: &[IpNet], out: &mut Vec<IpNet>, max: usize) -> bool {
    if protected.iter().any(|p| p.contains(&range)) {
        return true;
    }
    if !protected.iter().any(|p| range.contains(p)) {
        out.push(range);
        return out.len() <= max;
    }
    let Ok(halves) = range.subnets(range.prefix_len() + 1) else {
        return true; // a single address: contained above, cannot happen
    };
    halves.into_iter().all(|h| split_around(h, protected, out, max))
}

impl BanTable {
    pub(crate) fn len(&self) -> usize {
        self.bans.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Ban> + '_ {
        self.bans.values()
    }

    /// Number of ranges and wide ranges with counters (bounded by the active bans).
    #[cfg(test)]
    pub(crate) fn counters(&self) -> (usize, usize) {
        (self.range_counts.len(), self.wide_counts.len())
    }

    /// Replace the host's own addresses. Returns `Remove` actions for bans now covering one.
    pub(crate) fn set_local(&mut self, local: NetSet, policy: &Policy) -> Vec<BanAction> {
        self.local = local;
        self.drop_protected(policy)
    }

    /// Replace the known-good addresses. Returns `Remove` actions for bans now covering one.
    pub(crate) fn set_known_good(&mut self, good: NetSet, policy: &Policy) -> Vec<BanAction> {
        self.known_good = good;
        self.drop_protected(policy)
    }

    /// Protect (`on`) or stop protecting a learned address. Returns `Remove` actions for bans
    /// now covering it (a known-good client keeps an exact signature ban).
    pub(crate) fn protect_learned(
        &mut self,
        kind: ProtectedKind,
        ip: IpAddr,
        on: bool,
        policy: &Policy,
    ) -> Vec<BanAction> {
        let set = match kind {
            ProtectedKind::Upstream => &mut self.upstream,
            ProtectedKind::LearnedGood => &mut self.learned_good,
            _ => return Vec::new(),
        };
        let net = IpNet::from(canonical(ip));
        if !on {
            set.remove(net);
            return Vec::new();
        }
        if !set.insert(net) || self.bans.is_empty() {
            return Vec::new();
        }
        self.drop_protected(policy)
    }

    /// Learned addresses protected (upstreams and known-good clients).
    pub(crate) fn learned_len(&self) -> usize {
        self.upstream.len() + self.learned_good.len()
    }

    /// The protection that stops a ban of `net` by `rule`, if any: every protected overlap,
    /// except a learned known-good client under an exact signature ban.
    fn blocking(&self, net: IpNet, rule: &str, policy: &Policy) -> Option<(ProtectedKind, IpNet)> {
        self.protected_overlap(net, policy).filter(|(kind, _)| {
            !(*kind == ProtectedKind::LearnedGood
                && is_host(&net)
                && rule.starts_with("signature."))
        })
    }

    /// Every set of networks no automatic ban may cover, with its kind: the one list that
    /// manual bans, aggregation, shared bans and fetched block lists all check.
    fn protected_sets<'a>(&'a self, policy: &'a Policy) -> [(ProtectedKind, &'a NetSet); 6] {
        [
            (ProtectedKind::Trusted, &policy.trusted),
            (ProtectedKind::Local, &policy.bans.local_addresses),
            (ProtectedKind::Local, &self.local),
            (ProtectedKind::KnownGood, &self.known_good),
            (ProtectedKind::Upstream, &self.upstream),
            (ProtectedKind::LearnedGood, &self.learned_good),
        ]
    }

    /// The first protected network that `net` overlaps, and what kind it is.
    pub(crate) fn protected_overlap(
        &self,
        net: IpNet,
        policy: &Policy,
    ) -> Option<(ProtectedKind, IpNet)> {
        self.protected_sets(policy)
            .into_iter()
            .find_map(|(kind, set)| set.first_overlapping(net).map(|m| (kind, m)))
    }

    /// Every protected network with what it is (trusted, local, known-good, learned), for callers that
    /// check many candidates outside the engine's lock (fetched block lists).
    pub(crate) fn protected_all(&self, policy: &Policy) -> Vec<(IpNet, &'static str)> {
        self.protected_sets(policy)
            .into_iter()
            .flat_map(|(kind, set)| set.iter().map(move |n| (*n, kind.describe())))
            .collect()
    }

    /// Every protected network overlapping `range`, or None when there are more than
    /// `MAX_SPLIT_PIECES` (the split would be too fragmented anyway).
    fn protected_in(&self, range: IpNet, policy: &Policy) -> Option<Vec<IpNet>> {
        let mut out = Vec::new();
        for (_, set) in self.protected_sets(policy) {
            if let Some(m) = set.find(range.network()).filter(|m| m.contains(&range)) {
                out.push(m); // contains the whole range
                continue;
            }
            for m in set.iter().filter(|m| range.contains(*m)) {
                if out.len() >= MAX_SPLIT_PIECES {
                    return None;
                }
                out.push(*m);
            }
        }
        // Sorted: the sets iterate in their (seeded) hash order, and the aggregate's reason
        // lists these; the same packets must give the same sentence.
        out.sort_unstable();
        out.dedup();
        Some(out)
    }

    /// The active ban covering `ip`, most specific first.
    #[inline]
    pub(crate) fn find(&self, ip: IpAddr, now: Timestamp) -> Option<&Ban> {
        if self.bans.is_empty() {
            return None;
        }
        let ip = canonical(ip);
        let v4 = ip.is_ipv4();
        for &(fam, len, _) in &self.lens {
            if fam != v4 {
                continue;
            }
            if let Some(b) = self.bans.get(&net_of(ip, len)) {
                if now < b.until {
                    return Some(b);
                }
            }
        }
        None
    }

    /// The active ban of exactly `net`, if any.
    pub(crate) fn active(&self, net: &IpNet, now: Timestamp) -> Option<&Ban> {
        self.bans.get(net).filter(|b| now < b.until)
    }

    fn add_len(&mut self, net: &IpNet) {
        let key = (net.addr().is_ipv4(), net.prefix_len());
        match self.lens.iter_mut().find(|(f, l, _)| (*f, *l) == key) {
            Some(e) => e.2 += 1,
            None => {
                self.lens.push((key.0, key.1, 1));
                self.lens.sort_unstable_by_key(|e| std::cmp::Reverse(e.1));
            }
        }
    }

    fn drop_len(&mut self, net: &IpNet) {
        let key = (net.addr().is_ipv4(), net.prefix_len());
        if let Some(pos) = self.lens.iter().position(|(f, l, _)| (*f, *l) == key) {
            self.lens[pos].2 -= 1;
            if self.lens[pos].2 == 0 {
                self.lens.remove(pos);
            }
        }
    }

    fn range_of(net: &IpNet, policy: &Policy) -> IpNet {
        match net {
            IpNet::V4(_) => net_of(net.addr(), policy.bans.v4_prefix),
            IpNet::V6(_) => net_of(net.addr(), policy.bans.v6_prefix),
        }
    }

    fn wide_of(net: &IpNet, policy: &Policy) -> IpNet {
        match net {
            IpNet::V4(_) => net_of(net.addr(), policy.bans.v4_wide_prefix),
            IpNet::V6(_) => net_of(net.addr(), policy.bans.v6_wide_prefix),
        }
    }

    /// Keep the per-range counters in step with an automatic ban added (`up`) or removed.
    /// Bans wider than a range (wide aggregates) are not counted.
    fn count(&mut self, net: &IpNet, origin: BanOrigin, up: bool, policy: &Policy) {
        if origin == BanOrigin::Manual {
            return;
        }
        let range = Self::range_of(net, policy);
        if net.prefix_len() < range.prefix_len() {
            return;
        }
        let c = self.range_counts.entry(range).or_default();
        let before = c.hosts + c.others;
        let field = if is_host(net) { &mut c.hosts } else { &mut c.others };
        *field = if up { *field + 1 } else { field.saturating_sub(1) };
        let after = c.hosts + c.others;
        if after == 0 {
            self.range_counts.remove(&range);
        }
        let wide = Self::wide_of(&range, policy);
        if before == 0 && after > 0 {
            *self.wide_counts.entry(wide).or_insert(0) += 1;
        } else if before > 0 && after == 0 {
            if let Some(w) = self.wide_counts.get_mut(&wide) {
                *w = w.saturating_sub(1);
                if *w == 0 {
                    self.wide_counts.remove(&wide);
                }
            }
        }
    }

    fn duration_for(&self, net: &IpNet, now: Timestamp, policy: &Policy) -> (u64, u32) {
        let p = &policy.bans;
        let count = match self.history.get(net) {
            Some(o)
                if now.as_millis() < o.last_until.as_millis().saturating_add(p.forget_after_ms) =>
            {
                o.count + 1
            }
            _ => 1,
        };
        let mut d = p.duration_ms;
        for _ in 1..count {
            d = d.saturating_mul(p.escalation_factor as u64);
            if d >= p.max_duration_ms {
                break;
            }
        }
        (d.min(p.max_duration_ms), count)
    }

    fn remember(
        &mut self,
        net: IpNet,
        count: u32,
        until: Timestamp,
        now: Timestamp,
        policy: &Policy,
    ) {
        if self.history.len() >= policy.max_ban_history && !self.history.contains_key(&net) {
            // Forget what is forgettable; if still full, the oldest half.
            let keep = policy.bans.forget_after_ms;
            self.history
                .retain(|_, o| now.as_millis() < o.last_until.as_millis().saturating_add(keep));
            if self.history.len() >= policy.max_ban_history {
                let mut ends: Vec<u64> =
                    self.history.values().map(|o| o.last_until.as_millis()).collect();
                ends.sort_unstable();
                let cut = ends[ends.len() / 2];
                self.history.retain(|_, o| o.last_until.as_millis() > cut);
            }
        }
        self.history.insert(net, Offence { count, last_until: until });
    }

    /// True when this automatic address ban is beyond `bans.max_per_second` (and counts it
    /// otherwise).
    fn over_rate(&mut self, now: Timestamp, policy: &Policy) -> bool {
        let cap = policy.bans.max_per_second;
        if cap == 0 {
            return false;
        }
        let sec = now.as_millis() / 1000;
        if self.rate.0 != sec {
            self.rate = (sec, 0);
        }
        if self.rate.1 >= cap {
            return true;
        }
        self.rate.1 += 1;
        false
    }

    /// Add a ban (and maybe range bans). Returns the `Add` actions; empty if the net covers a
    /// protected address, is already banned, or the table is full. Manual bans are checked by
    /// the caller first (it reports why), so here every refusal is silent.
    pub(crate) fn add(
        &mut self,
        req: BanRequest<'_>,
        now: Timestamp,
        policy: &Policy,
    ) -> Vec<BanAction> {
        let mut out = Vec::new();
        let net = req.net.trunc();
        if self.blocking(net, req.rule, policy).is_some() {
            self.protected_skipped += 1;
            return out;
        }
        let automatic = req.origin != BanOrigin::Manual;
        let aggregate = is_host(&net) && policy.bans.aggregate && automatic;
        if aggregate && req.origin == BanOrigin::Detection && self.over_rate(now, policy) {
            let range = Self::range_of(&net, policy);
            if self.active(&range, now).is_some() {
                return out;
            }
            if self.protected_overlap(range, policy).is_none() {
                self.folded += 1;
                let reason = format!(
                    "{}; more than {} address bans this second: folded into range {range}",
                    req.reason, policy.bans.max_per_second
                );
                let req = BanRequest {
                    net: range,
                    rule: "ban.aggregate",
                    reason,
                    evidence: req.evidence,
                    origin: BanOrigin::Aggregate,
                    duration_ms: None,
                };
                if self.insert(req, now, policy, &mut out) {
                    self.check_wide(range, now, policy, &mut out);
                }
                return out;
            }
            // The range holds a protected address: the address ban is made anyway.
        }
        if !self.insert(BanRequest { net, ..req }, now, policy, &mut out) {
            return out;
        }
        if aggregate {
            let range = Self::range_of(&net, policy);
            let n = self.range_counts.get(&range).map_or(0, |c| c.hosts);
            let threshold = if net.addr().is_ipv4() {
                policy.bans.v4_threshold
            } else {
                policy.bans.v6_threshold
            };
            if n >= threshold && self.active(&range, now).is_none() {
                self.aggregate(range, n, "addresses", now, policy, &mut out);
            }
            self.check_wide(range, now, policy, &mut out);
        }
        out
    }

    /// Ban the wide range of `range` if enough distinct ranges in it hold bans.
    fn check_wide(
        &mut self,
        range: IpNet,
        now: Timestamp,
        policy: &Policy,
        out: &mut Vec<BanAction>,
    ) {
        if !policy.bans.aggregate {
            return;
        }
        let threshold = if range.addr().is_ipv4() {
            policy.bans.v4_wide_threshold
        } else {
            policy.bans.v6_wide_threshold
        };
        let wide = Self::wide_of(&range, policy);
        let n = self.wide_counts.get(&wide).copied().unwrap_or(0);
        if threshold > 0 && n >= threshold && self.active(&wide, now).is_none() {
            self.aggregate(wide, n, "ranges", now, policy, out);
        }
    }

    /// Ban `range` because `n` banned `what` lie in it, split around protected addresses.
    fn aggregate(
        &mut self,
        range: IpNet,
        n: u32,
        what: &str,
        now: Timestamp,
        policy: &Policy,
        out: &mut Vec<BanAction>,
    ) {
        let Some(protected) = self.protected_in(range, policy) else {
            self.protected_skipped += 1;
            return;
        };
        let mut pieces = Vec::new();
        if !split_around(range, &protected, &mut pieces, MAX_SPLIT_PIECES) {
            self.protected_skipped += 1;
            return;
        }
        let mut evidence = Evidence::default();
        let key = if what == "addresses" {
            "banned_addresses_in_range"
        } else {
            "banned_ranges_in_range"
        };
        evidence.counters.push((key.into(), n as u64));
        // Sorted: the reason must not depend on the map's (seeded) iteration order.
        let mut members: Vec<IpNet> = self
            .bans
            .values()
            .filter(|b| b.net != range && range.contains(&b.net) && now < b.until)
            .map(|b| b.net)
            .collect();
        members.sort_unstable();
        let sample: Vec<String> = members.iter().take(16).map(|a| a.to_string()).collect();
        let mut reason =
            format!("{n} {what} of {range} banned (e.g. {}): range banned", sample.join(", "));
        if pieces.len() != 1 || pieces[0] != range {
            let kept: Vec<String> = protected.iter().map(|p| p.to_string()).collect();
            reason += &format!(" except protected {} ({} blocks)", kept.join(", "), pieces.len());
        }
        for piece in pieces {
            if self.active(&piece, now).is_some() {
                continue;
            }
            self.insert(
                BanRequest {
                    net: piece,
                    rule: "ban.aggregate",
                    reason: reason.clone(),
                    evidence: evidence.clone(),
                    origin: BanOrigin::Aggregate,
                    duration_ms: None,
                },
                now,
                policy,
                out,
            );
        }
    }

    /// Insert one ban (no aggregation). False if already banned or the table is full.
    fn insert(
        &mut self,
        req: BanRequest<'_>,
        now: Timestamp,
        policy: &Policy,
        out: &mut Vec<BanAction>,
    ) -> bool {
        let net = req.net.trunc();
        if let Some(b) = self.bans.get(&net) {
            if now < b.until {
                return false;
            }
            // Ended but not yet expired: replace it.
            let old = self.remove(&net, policy);
            debug_assert!(old.is_some());
        }
        if self.bans.len() >= policy.max_bans {
            self.expire_into(now, policy, &mut Vec::new());
            if self.bans.len() >= policy.max_bans {
                self.refused += 1;
                return false;
            }
        }
        let (dur, count) = match req.duration_ms {
            Some(d) => (d, self.history.get(&net).map_or(1, |o| o.count + 1)),
            None => self.duration_for(&net, now, policy),
        };
        let until = Timestamp::from_millis(now.as_millis().saturating_add(dur));
        let ban = Ban {
            net,
            since: now,
            until,
            count,
            rule: req.rule.to_string(),
            reason: req.reason,
            evidence: req.evidence,
            origin: req.origin,
        };
        self.remember(net, count, until, now, policy);
        self.add_len(&net);
        self.count(&net, ban.origin, true, policy);
        self.bans.insert(net, ban.clone());
        out.push(BanAction::Add(ban));
        true
    }

    /// Put back a stored ban as it was (no escalation). False if ended, protected or present.
    pub(crate) fn restore(&mut self, ban: Ban, now: Timestamp, policy: &Policy) -> bool {
        let net = ban.net.trunc();
        if ban.until <= now
            || self.blocking(net, &ban.rule, policy).is_some()
            || self.bans.contains_key(&net)
            || self.bans.len() >= policy.max_bans
        {
            return false;
        }
        self.remember(net, ban.count.max(1), ban.until, now, policy);
        self.add_len(&net);
        self.count(&net, ban.origin, true, policy);
        self.bans.insert(net, Ban { net, ..ban });
        true
    }

    /// Put back a stored offence (count, end of its last ban) so escalation survives a
    /// restart. Keeps the higher count and later end when history is already present (a
    /// restored ban). False if protected, `count == 0`, or already forgotten (`forget_after`
    /// passed at `now`); bounded by `max_ban_history` like every history entry.
    pub(crate) fn restore_offence(
        &mut self,
        net: IpNet,
        count: u32,
        last_until: Timestamp,
        now: Timestamp,
        policy: &Policy,
    ) -> bool {
        let net = net.trunc();
        let forgotten =
            now.as_millis() >= last_until.as_millis().saturating_add(policy.bans.forget_after_ms);
        if count == 0
            || forgotten
            || self.protected_overlap(net, policy).is_some()
            || policy.max_ban_history == 0
        {
            return false;
        }
        let (count, last_until) = match self.history.get(&net) {
            Some(o) => (o.count.max(count), o.last_until.max(last_until)),
            None => (count, last_until),
        };
        self.remember(net, count, last_until, now, policy);
        true
    }

    /// Remove a ban (unban or expiry).
    pub(crate) fn remove(&mut self, net: &IpNet, policy: &Policy) -> Option<Ban> {
        let b = self.bans.remove(net)?;
        self.drop_len(net);
        self.count(net, b.origin, false, policy);
        Some(b)
    }

    fn expire_into(&mut self, now: Timestamp, policy: &Policy, out: &mut Vec<BanAction>) {
        let mut ended: Vec<IpNet> =
            self.bans.values().filter(|b| b.until <= now).map(|b| b.net).collect();
        ended.sort_unstable(); // deterministic order of actions
        for net in ended {
            self.remove(&net, policy);
            out.push(BanAction::Remove(net));
        }
    }

    pub(crate) fn expire(&mut self, now: Timestamp, policy: &Policy) -> Vec<BanAction> {
        let mut out = Vec::new();
        self.expire_into(now, policy, &mut out);
        out
    }

    /// Remove bans covering protected addresses (after a reload or a new set of local or
    /// known-good addresses made them protected).
    pub(crate) fn drop_protected(&mut self, policy: &Policy) -> Vec<BanAction> {
        let mut hit: Vec<IpNet> = self
            .bans
            .values()
            .filter(|b| self.blocking(b.net, &b.rule, policy).is_some())
            .map(|b| b.net)
            .collect();
        hit.sort_unstable();
        hit.into_iter()
            .filter_map(|n| self.remove(&n, policy).map(|_| BanAction::Remove(n)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(net: IpNet) -> BanRequest<'static> {
        BanRequest {
            net,
            rule: "test",
            reason: "test".into(),
            evidence: Evidence::default(),
            origin: BanOrigin::Detection,
            duration_ms: None,
        }
    }

    /// A spoofed flood of distinct sources (v4 and v6, many ranges and wide ranges): the
    /// per-range counters never outgrow the bans they count, which `max_bans` bounds.
    #[test]
    fn range_counters_stay_bounded_under_a_spoofed_flood() {
        let policy = Policy::from_toml_str(
            "[bans]\nduration_secs = 5\nmax_per_second = 50\n[limits]\nmax_bans = 1000\n",
        )
        .unwrap();
        let mut t = BanTable::default();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..200_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let ip: IpAddr = if i % 2 == 0 {
                IpAddr::V4(std::net::Ipv4Addr::from(x as u32))
            } else {
                IpAddr::V6(std::net::Ipv6Addr::from(u128::from(x) << 64 | u128::from(i)))
            };
            let now = Timestamp::from_millis(i / 10);
            t.add(req(IpNet::from(ip)), now, &policy);
            if i % 5000 == 0 {
                t.expire(now, &policy);
            }
            let (ranges, wides) = t.counters();
            assert!(t.len() <= 1000, "{} bans", t.len());
            assert!(ranges <= t.len() && wides <= ranges, "{ranges} {wides} {}", t.len());
        }
        assert!(t.refused > 0 && t.folded > 0, "the flood filled the table and hit the cap");
        // Everything expires: every counter goes with the bans.
        t.expire(Timestamp::from_millis(u64::MAX / 2), &policy);
        assert_eq!((t.len(), t.counters()), (0, (0, 0)));
    }

    #[test]
    fn split_around_one_address_gives_the_largest_blocks() {
        let range: IpNet = "203.0.113.0/24".parse().unwrap();
        let mut out = Vec::new();
        assert!(split_around(range, &["203.0.113.10/32".parse().unwrap()], &mut out, 16));
        out.sort_unstable();
        let got: Vec<String> = out.iter().map(|n| n.to_string()).collect();
        assert_eq!(
            got,
            [
                "203.0.113.0/29",
                "203.0.113.8/31",
                "203.0.113.11/32",
                "203.0.113.12/30",
                "203.0.113.16/28",
                "203.0.113.32/27",
                "203.0.113.64/26",
                "203.0.113.128/25"
            ]
        );
        // Too many protected addresses: no split (the caller makes no aggregate).
        let many: Vec<IpNet> =
            (0..8).map(|i| format!("203.0.113.{}/32", i * 32).parse().unwrap()).collect();
        assert!(!split_around(range, &many, &mut Vec::new(), 16));
        // A protected network containing the range: nothing to ban.
        let mut out = Vec::new();
        assert!(split_around(range, &["203.0.0.0/16".parse().unwrap()], &mut out, 16));
        assert!(out.is_empty());
    }
}
