//! Active bans, offence history (escalation) and range aggregation.
//!
//! CONTRACT:
//! * A ban covers a network (an address is a /32 or /128); a look-up costs one hash probe per
//!   prefix length in use.
//! * A ban is active while `now < until`; [`BanTable::expire`] removes ended ones and returns
//!   their `Remove` actions. Look-ups ignore ended bans even before `expire` runs.
//! * Repeat offenders: the n-th ban of a network within `forget_after` of its last ban lasts
//!   `duration x factor^(n-1)`, capped at `max_duration`.
//! * Aggregation: when `threshold` addresses of one IPv4 /24 (IPv6 /64, configurable) are
//!   banned at once, the range is banned, unless it overlaps a trusted network.
//! * Bounded: at most `max_bans` bans and `max_ban_history` history entries.
use std::net::IpAddr;

use ipnet::IpNet;

use crate::decision::{Ban, BanAction, BanOrigin, Evidence, Timestamp};
use crate::fasthash::FastMap;
use crate::netset::{canonical, net_of, NetSet};
use crate::policy::Policy;

#[derive(Debug, Clone, Copy)]
struct Offence {
    count: u32,
    last_until: Timestamp,
}

/// What a new ban should say.
pub(crate) struct BanRequest<'a> {
    pub net: IpNet,
    pub rule: &'a str,
    pub reason: String,
    pub evidence: Evidence,
    pub origin: BanOrigin,
    /// Fixed duration (manual bans); None = policy duration with escalation.
    pub duration_ms: Option<u64>,
}

#[derive(Debug, Default)]
pub(crate) struct BanTable {
    bans: FastMap<IpNet, Ban>,
    lens: Vec<(bool, u8, u32)>, // (is_v4, prefix len, how many bans use it)
    range_counts: FastMap<IpNet, u32>,
    history: FastMap<IpNet, Offence>,
    pub refused: u64,
}

fn is_host(net: &IpNet) -> bool {
    net.prefix_len() == net.max_prefix_len()
}

impl BanTable {
    pub(crate) fn len(&self) -> usize {
        self.bans.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Ban> + '_ {
        self.bans.values()
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

    /// Add a ban (and maybe a range ban). Returns the `Add` actions; empty if the net is
    /// trusted, already banned, or the table is full.
    pub(crate) fn add(
        &mut self,
        req: BanRequest<'_>,
        now: Timestamp,
        policy: &Policy,
        trusted: &NetSet,
    ) -> Vec<BanAction> {
        let mut out = Vec::new();
        let net = req.net.trunc();
        if trusted.overlaps(net) {
            return out;
        }
        if let Some(b) = self.bans.get(&net) {
            if now < b.until {
                return out;
            }
            // Ended but not yet expired: replace it.
            let old = self.remove(&net, policy);
            debug_assert!(old.is_some());
        }
        if self.bans.len() >= policy.max_bans {
            self.expire_into(now, policy, &mut Vec::new());
            if self.bans.len() >= policy.max_bans {
                self.refused += 1;
                return out;
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
        self.bans.insert(net, ban.clone());
        out.push(BanAction::Add(ban));

        if is_host(&net) && policy.bans.aggregate && req.origin != BanOrigin::Manual {
            let range = Self::range_of(&net, policy);
            let c = self.range_counts.entry(range).or_insert(0);
            *c += 1;
            let n = *c;
            let threshold = if net.addr().is_ipv4() {
                policy.bans.v4_threshold
            } else {
                policy.bans.v6_threshold
            };
            let range_active = self.bans.get(&range).is_some_and(|b| now < b.until);
            if n >= threshold && !range_active && !trusted.overlaps(range) {
                let mut evidence = Evidence::default();
                evidence.counters.push(("banned_addresses_in_range".into(), n as u64));
                // Sorted: the reason must not depend on the map's (seeded) iteration order.
                let mut hosts: Vec<IpAddr> = self
                    .bans
                    .values()
                    .filter(|b| is_host(&b.net) && range.contains(&b.net.addr()) && now < b.until)
                    .map(|b| b.net.addr())
                    .collect();
                hosts.sort_unstable();
                let members: Vec<String> = hosts.iter().take(16).map(|a| a.to_string()).collect();
                evidence.users_probed = Vec::new();
                let reason = format!(
                    "{n} addresses of {range} banned (e.g. {}): range banned",
                    members.join(", ")
                );
                let sub = self.add(
                    BanRequest {
                        net: range,
                        rule: "ban.aggregate",
                        reason,
                        evidence,
                        origin: BanOrigin::Aggregate,
                        duration_ms: None,
                    },
                    now,
                    policy,
                    trusted,
                );
                out.extend(sub);
            }
        }
        out
    }

    /// Put back a stored ban as it was (no escalation). False if ended, trusted or present.
    pub(crate) fn restore(
        &mut self,
        ban: Ban,
        now: Timestamp,
        policy: &Policy,
        trusted: &NetSet,
    ) -> bool {
        let net = ban.net.trunc();
        if ban.until <= now
            || trusted.overlaps(net)
            || self.bans.contains_key(&net)
            || self.bans.len() >= policy.max_bans
        {
            return false;
        }
        self.remember(net, ban.count.max(1), ban.until, now, policy);
        self.add_len(&net);
        if is_host(&net) && ban.origin != BanOrigin::Manual {
            *self.range_counts.entry(Self::range_of(&net, policy)).or_insert(0) += 1;
        }
        self.bans.insert(net, Ban { net, ..ban });
        true
    }

    /// Put back a stored offence (count, end of its last ban) so escalation survives a
    /// restart. Keeps the higher count and later end when history is already present (a
    /// restored ban). False if trusted, `count == 0`, or already forgotten (`forget_after`
    /// passed at `now`); bounded by `max_ban_history` like every history entry.
    pub(crate) fn restore_offence(
        &mut self,
        net: IpNet,
        count: u32,
        last_until: Timestamp,
        now: Timestamp,
        policy: &Policy,
        trusted: &NetSet,
    ) -> bool {
        let net = net.trunc();
        let forgotten =
            now.as_millis() >= last_until.as_millis().saturating_add(policy.bans.forget_after_ms);
        if count == 0 || forgotten || trusted.overlaps(net) || policy.max_ban_history == 0 {
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
        if is_host(net) && b.origin != BanOrigin::Manual {
            let range = Self::range_of(net, policy);
            if let Some(c) = self.range_counts.get_mut(&range) {
                *c = c.saturating_sub(1);
                if *c == 0 {
                    self.range_counts.remove(&range);
                }
            }
        }
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

    /// Remove bans covering trusted networks (after a reload made them trusted).
    pub(crate) fn drop_trusted(&mut self, trusted: &NetSet, policy: &Policy) -> Vec<BanAction> {
        let mut hit: Vec<IpNet> =
            self.bans.keys().filter(|n| trusted.overlaps(**n)).copied().collect();
        hit.sort_unstable();
        hit.into_iter()
            .filter_map(|n| self.remove(&n, policy).map(|_| BanAction::Remove(n)))
            .collect()
    }
}
