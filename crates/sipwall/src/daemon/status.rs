//! What `sipwall status` is made of, on the daemon's side: the queue threads' published
//! counters, what simulate/observe means for a decision, the facts fixed at start, the
//! packet-rate sampler, and the one config reloader (SIGHUP and `sipwall reload`).
//!
//! CONTRACT (cost to the queue threads): a queue thread counts in its own plain
//! `InlineStats` and publishes them once per batch into its own [`QueueCounters`] with
//! relaxed atomic stores: no lock, no shared cache line written per packet, no read-modify-
//! write. A status request reads those atomics (a batch may be half counted: counters are
//! monotonic and at most one batch behind) and takes the engine lock once, for a count of
//! bans and tracked sources (O(bans)), never while doing I/O.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use sipwall_engine::{Ban, BanAction, Engine};

use super::ban_worker::Work;
use super::lock;
use super::queue_thread::InlineStats;
use crate::config::{self, family_of, Config, EnforceConfig, RestartOnly};
use crate::protocol::{parse_nfnetlink_queue, QueueStatus, ReloadStatus, Status};
use crate::time::now_ms;

/// Where the kernel reports per-queue counters (per network namespace).
pub const NFNETLINK_QUEUE_PROC: &str = "/proc/net/netfilter/nfnetlink_queue";

/// The published counters of one queue thread (written by it alone).
#[derive(Debug, Default)]
pub struct QueueCounters {
    packets: AtomicU64,
    dropped: AtomicU64,
    would_drop: AtomicU64,
    unparsed: AtomicU64,
    fragments: AtomicU64,
}

impl QueueCounters {
    /// Publish the thread's running totals (called once per batch by the owning thread).
    pub fn publish(&self, s: &InlineStats) {
        self.packets.store(s.packets, Ordering::Relaxed);
        self.dropped.store(s.dropped, Ordering::Relaxed);
        self.would_drop.store(s.would_drop, Ordering::Relaxed);
        self.unparsed.store(s.unparsed, Ordering::Relaxed);
        self.fragments.store(s.fragments, Ordering::Relaxed);
    }
    /// The last published totals.
    pub fn read(&self) -> InlineStats {
        InlineStats {
            packets: self.packets.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            would_drop: self.would_drop.load(Ordering::Relaxed),
            unparsed: self.unparsed.load(Ordering::Relaxed),
            fragments: self.fragments.load(Ordering::Relaxed),
            ..InlineStats::default()
        }
    }
}

/// The counters of every queue, by queue number.
#[derive(Debug, Default)]
pub struct Counters {
    queues: Vec<(u16, QueueCounters)>,
}

impl Counters {
    /// Counters for queues `first..first + count`.
    pub fn new(first: u16, count: u16) -> Counters {
        Counters {
            queues: (0..count)
                .map(|i| (first.saturating_add(i), QueueCounters::default()))
                .collect(),
        }
    }
    /// The counters of queue `num`.
    pub fn queue(&self, num: u16) -> Option<&QueueCounters> {
        self.queues.iter().find(|(n, _)| *n == num).map(|(_, c)| c)
    }
    /// Every queue's number and totals.
    pub fn read(&self) -> Vec<(u16, InlineStats)> {
        self.queues.iter().map(|(n, c)| (*n, c.read())).collect()
    }
}

/// Which decisions are only simulated (`[enforce] simulate`, or all in observe mode).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Simulate {
    families: Vec<String>,
}

impl Simulate {
    /// From `[enforce]`.
    pub fn of(enforce: &EnforceConfig) -> Simulate {
        Simulate { families: enforce.simulated_families() }
    }
    /// The simulated families (sorted).
    pub fn families(&self) -> &[String] {
        &self.families
    }
    /// Nothing simulated: the fast path tests this first.
    pub fn is_empty(&self) -> bool {
        self.families.is_empty()
    }
    /// Is a decision or ban of `rule` only simulated? Operator bans (`manual`) never are.
    pub fn covers(&self, rule: &str) -> bool {
        !self.families.is_empty() && self.families.iter().any(|f| f == family_of(rule))
    }
    /// Is `ban` simulated (kept in the engine only)?
    pub fn ban(&self, ban: &Ban) -> bool {
        self.covers(&ban.rule)
    }
    /// Split ban actions: the real ones (for the ban worker) and how many were simulated.
    /// A removal always goes to the worker (removing an absent element is harmless).
    pub fn split(&self, actions: Vec<BanAction>) -> (Vec<BanAction>, usize) {
        if self.is_empty() {
            return (actions, 0);
        }
        let before = actions.len();
        let real: Vec<BanAction> = actions
            .into_iter()
            .filter(|a| !matches!(a, BanAction::Add(b) if self.ban(b)))
            .collect();
        let simulated = before - real.len();
        (real, simulated)
    }
}

/// Facts fixed at start.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// When the daemon started (ms since the epoch).
    pub started_ms: u64,
    /// `host`, `router`, `both` or `observe`.
    pub mode: String,
    /// Observe mode.
    pub observe: bool,
    /// Simulated families.
    pub simulate: Simulate,
    /// `nft` or `iptables`.
    pub queue_backend: String,
    /// `udp:5060`, ...
    pub guarded_ports: Vec<String>,
    /// The kernel's trusted fast path (None: `[enforce] trusted_fast_path = false`).
    pub fast_path: Option<sipwall_netfilter::FastPath>,
    /// The early drop's ingress chains, as the supervisor last made them (None: `[enforce]
    /// ingress_drop = false`).
    pub ingress_drop: Option<Arc<Mutex<sipwall_netfilter::IngressReport>>>,
}

impl Facts {
    /// From the settings and the installed ruleset.
    pub fn new(
        enforce: &EnforceConfig,
        ruleset: &sipwall_netfilter::Ruleset,
        backend: sipwall_netfilter::QueueBackend,
    ) -> Facts {
        let mode = match enforce.mode {
            config::Mode::Host => "host",
            config::Mode::Router => "router",
            config::Mode::Both => "both",
            config::Mode::Observe => "observe",
        };
        Facts {
            started_ms: now_ms(),
            mode: mode.into(),
            observe: enforce.observe(),
            simulate: Simulate::of(enforce),
            queue_backend: match backend {
                sipwall_netfilter::QueueBackend::Nft => "nft".into(),
                sipwall_netfilter::QueueBackend::Xtables => "iptables".into(),
                other => other.to_string(),
            },
            guarded_ports: ruleset
                .ports
                .iter()
                .map(|p| {
                    let l4 = match (p.l4, p.inspect) {
                        (_, false) => "tls",
                        (sipwall_netfilter::L4::Tcp, true) => "tcp",
                        _ => "udp",
                    };
                    format!("{l4}:{}", p.port)
                })
                .collect(),
            fast_path: None,
            ingress_drop: None,
        }
    }
}

/// Packets-per-second over the last interval: the control thread samples the counters about
/// once a second ([`Rates::sample`]); a status reports the rate between the last two samples.
#[derive(Debug, Default)]
pub struct Rates {
    inner: Mutex<RateState>,
}

#[derive(Debug, Default)]
struct RateState {
    last: Option<(Instant, Vec<(u16, u64)>)>,
    rates: Vec<(u16, f64)>,
}

impl Rates {
    /// Take a sample of `counters` now.
    pub fn sample(&self, counters: &Counters) {
        let now = Instant::now();
        let cur: Vec<(u16, u64)> =
            counters.read().into_iter().map(|(n, s)| (n, s.packets)).collect();
        let mut st = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, prev)) = &st.last {
            let secs = now.duration_since(*at).as_secs_f64();
            if secs > 0.0 {
                st.rates = cur
                    .iter()
                    .map(|(n, p)| {
                        let before = prev.iter().find(|(m, _)| m == n).map_or(0, |x| x.1);
                        (*n, p.saturating_sub(before) as f64 / secs)
                    })
                    .collect();
            }
        }
        st.last = Some((now, cur));
    }
    /// The last rate of queue `num` (0 before two samples).
    pub fn of(&self, num: u16) -> f64 {
        let st = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        st.rates.iter().find(|(n, _)| *n == num).map_or(0.0, |x| x.1)
    }
}

/// The one config reloader: SIGHUP (the supervising loop) and `sipwall reload` (a control
/// connection) both call [`Reloader::reload`], which remembers the outcome for `status`.
#[derive(Debug)]
pub struct Reloader {
    path: PathBuf,
    /// The sections a reload cannot apply, as the daemon started with them.
    started_with: RestartOnly,
    last: Mutex<Option<ReloadStatus>>,
    /// Serialises reloads (a SIGHUP and a `sipwall reload` at once).
    busy: Mutex<()>,
    /// The block-list loader thread: each reload hands it the new list (loaded in batches,
    /// off the ban path).
    blocklist: std::sync::mpsc::Sender<Vec<ipnet::IpNet>>,
    /// Run-time trust, added to every reloaded policy (`super::trust`).
    trust: Option<std::sync::Arc<super::trust::RuntimeTrust>>,
}

impl Reloader {
    /// Keep run-time trust (`sipwall trust add`) on top of every reloaded config.
    pub fn with_trust(mut self, trust: std::sync::Arc<super::trust::RuntimeTrust>) -> Reloader {
        self.trust = Some(trust);
        self
    }

    /// For the config file at `path`, whose restart-only sections the daemon started with.
    pub fn new(
        path: PathBuf,
        started_with: RestartOnly,
        blocklist: std::sync::mpsc::Sender<Vec<ipnet::IpNet>>,
    ) -> Reloader {
        Reloader {
            path,
            started_with,
            last: Mutex::new(None),
            busy: Mutex::new(()),
            blocklist,
            trust: None,
        }
    }

    /// Re-read the file and replace the engine's policy (bans and behaviour state kept), or
    /// keep the current policy when the file does not load. `why` is `SIGHUP` or who asked.
    pub fn reload(
        &self,
        engine: &Mutex<Engine>,
        work: &SyncSender<Work>,
        why: &str,
    ) -> ReloadStatus {
        let _one = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        // systemd (Type=notify) sees the reload and its outcome as the unit's status line.
        let _ = crate::sd_notify::reloading();
        let outcome = match config::load(&self.path) {
            Ok(loaded) => {
                let changed = self.started_with.changed_in(&RestartOnly::of(&loaded));
                let Config { policy, blocklists, .. } = loaded;
                for (file, load) in &blocklists {
                    log::info!("{why}: block list {}: {load:?}", file.display());
                }
                let mut message = format!("policy reloaded from {}", self.path.display());
                if !changed.is_empty() {
                    let what = format!(
                        "{} changed: restart sipwall to apply {}",
                        changed.join(", "),
                        if changed.len() == 1 { "it" } else { "them" }
                    );
                    log::warn!("{why}: {what}");
                    message.push_str("; ");
                    message.push_str(&what);
                }
                super::log_policy_warnings(&format!("{why}: "), &policy);
                let nets: Vec<ipnet::IpNet> = policy.blocklist.iter().copied().collect();
                // Read before taking the lock: no I/O under it.
                let addrs = super::local_addrs::read_logged();
                // Bans the new policy makes trusted, or that cover an address this host has
                // gained, are lifted in the kernel and the store.
                // Trust changes one at a time; networks leaving [trusted] leave the kernel's
                // fast path before the engine stops trusting them, new ones join after.
                let _change = self.trust.as_ref().map(|t| t.changing());
                let narrowed = match &self.trust {
                    Some(t) => t.narrow_fast_path(&policy.trusted),
                    None => Ok(()),
                };
                if let Err(e) = narrowed {
                    // The door stays shut: a network leaving [trusted] could still skip the
                    // queue, so the engine keeps trusting what the kernel does.
                    let message = format!("{e}; keeping the current policy");
                    log::error!("{why}: {message}");
                    return self.finish(ReloadStatus { at_ms: now_ms(), ok: false, message });
                }
                let (mut lifted, local) = {
                    let mut e = lock(engine);
                    let lifted = match &self.trust {
                        Some(t) => t.reload_engine(&mut e, policy),
                        None => e.reload(policy),
                    };
                    (lifted, e.set_local_addresses(&addrs))
                };
                if let Some(t) = &self.trust {
                    t.sync_fast_path();
                }
                drop(_change);
                super::local_addrs::log_lifted(&local);
                lifted.extend(local);
                // Never wait on a busy ban worker (a storm): the periodic reconcile removes
                // what the kernel still holds, and the engine already lets them through.
                if !lifted.is_empty() && work.try_send(Work::Bans(lifted)).is_err() {
                    log::warn!("{why}: ban worker busy; lifted bans leave the kernel at the next reconcile");
                }
                if self.blocklist.send(nets).is_err() {
                    log::error!("{why}: the block-list loader thread is gone; list not reloaded");
                }
                log::info!("{why}: {message}");
                ReloadStatus { at_ms: now_ms(), ok: true, message }
            }
            Err(e) => {
                let message = format!("{e:#}; keeping the current policy");
                log::error!("{why}: {message}");
                ReloadStatus { at_ms: now_ms(), ok: false, message }
            }
        };
        self.finish(outcome)
    }

    /// Tell systemd and keep the outcome for `status`.
    fn finish(&self, outcome: ReloadStatus) -> ReloadStatus {
        let _ = crate::sd_notify::status(&if outcome.ok {
            "policy reloaded".to_string()
        } else {
            format!("reload failed: {}", outcome.message)
        });
        let _ = crate::sd_notify::ready();
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome.clone());
        outcome
    }

    /// The last outcome.
    pub fn last(&self) -> Option<ReloadStatus> {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The kernel's per-queue counters, when the file is there and readable.
fn kernel_queues() -> Vec<crate::protocol::KernelQueue> {
    std::fs::read_to_string(NFNETLINK_QUEUE_PROC)
        .map(|t| parse_nfnetlink_queue(&t))
        .unwrap_or_default()
}

/// One status snapshot at `now` (ms since the epoch). The engine is locked once, to count.
pub fn snapshot(
    facts: &Facts,
    counters: &Counters,
    rates: &Rates,
    reloader: Option<&Reloader>,
    engine: &Mutex<Engine>,
    store_unavailable: Option<&str>,
    now: u64,
) -> Status {
    let (tripwire_ports, tracked, by_rule, active, simulated, learn) = {
        let e = lock(engine);
        let learn = crate::protocol::LearnSummary::of(&e.learn_status());
        let mut by_rule: BTreeMap<String, u64> = BTreeMap::new();
        let (mut active, mut simulated) = (0u64, 0u64);
        for b in e.bans().filter(|b| now < b.until.as_millis()) {
            active += 1;
            simulated += u64::from(facts.simulate.ban(b));
            *by_rule.entry(b.rule.clone()).or_default() += 1;
        }
        let tripwire = e.policy().tripwire_ports.clone();
        (tripwire, e.tracked_sources() as u64, by_rule, active, simulated, learn)
    };
    let kernel = kernel_queues();
    let queues = counters
        .read()
        .into_iter()
        .map(|(num, s)| {
            let k = kernel.iter().find(|k| k.num == num);
            QueueStatus {
                num,
                packets_per_sec: rates.of(num),
                packets: s.packets,
                dropped: s.dropped,
                would_drop: s.would_drop,
                unparsed: s.unparsed,
                fragments: s.fragments,
                kernel_waiting: k.map(|k| k.waiting),
                kernel_dropped: k.map(|k| k.dropped),
                user_dropped: k.map(|k| k.user_dropped),
            }
        })
        .collect();
    let ingress = facts
        .ingress_drop
        .as_ref()
        .map(|i| i.lock().unwrap_or_else(PoisonError::into_inner).clone());
    Status {
        version: env!("CARGO_PKG_VERSION").to_string(),
        pid: std::process::id(),
        started_ms: facts.started_ms,
        now_ms: now,
        mode: facts.mode.clone(),
        observe: facts.observe,
        simulate: facts.simulate.families().to_vec(),
        queue_backend: facts.queue_backend.clone(),
        guarded_ports: facts.guarded_ports.clone(),
        trusted_fast_path: facts
            .fast_path
            .as_ref()
            .map(|f| f.networks().iter().map(ToString::to_string).collect()),
        trusted_fast_path_packets: facts.fast_path.as_ref().and_then(|f| f.packets()),
        trusted_fast_path_unavailable: facts.fast_path.as_ref().and_then(|f| f.unavailable()),
        early_drop: ingress.as_ref().map(|i| i.active.clone()),
        early_drop_refused: ingress
            .as_ref()
            .map(|i| i.refused.iter().map(|(d, why)| format!("{d}: {why}")).collect())
            .unwrap_or_default(),
        tripwire_ports,
        queues,
        bans_active: active,
        bans_by_rule: by_rule,
        bans_simulated: simulated,
        tracked_sources: tracked,
        store: match store_unavailable {
            None => "ok".into(),
            Some(why) => format!("unavailable (in memory): {why}"),
        },
        last_reload: reloader.and_then(Reloader::last),
        learn: Some(learn),
        fleet: super::fleet::status(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_counters_are_read_back_and_rates_are_deltas() {
        let c = Counters::new(4, 2);
        assert!(c.queue(3).is_none() && c.queue(6).is_none());
        let r = Rates::default();
        r.sample(&c);
        c.queue(5).unwrap().publish(&InlineStats {
            packets: 100,
            dropped: 3,
            ..Default::default()
        });
        std::thread::sleep(std::time::Duration::from_millis(20));
        r.sample(&c);
        assert_eq!(
            c.read()[1],
            (5, InlineStats { packets: 100, dropped: 3, ..Default::default() })
        );
        assert_eq!(r.of(4), 0.0);
        assert!(r.of(5) > 0.0, "100 packets between two samples give a rate");
    }

    #[test]
    fn simulated_families_cover_their_rules_never_manual_bans() {
        let e = config::parse_enforce("[enforce]\nsimulate = [\"behaviour\", \"signature\"]\n")
            .unwrap();
        let s = Simulate::of(&e);
        assert!(s.covers("behaviour.flood") && s.covers("signature.friendly-scanner"));
        assert!(!s.covers("tripwire") && !s.covers("manual") && !s.covers("ban.active"));
        let observe = config::parse_enforce("[enforce]\nmode = \"observe\"\n").unwrap();
        let all = Simulate::of(&observe);
        assert!(all.covers("tripwire") && all.covers("ban.aggregate") && !all.covers("manual"));
        assert!(Simulate::default().is_empty() && !Simulate::default().covers("tripwire"));
        let err = config::parse_enforce("[enforce]\nmode = \"host\"\nsimulate = [\"scanners\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3") && err.contains("enforce.simulate"), "{err}");
    }
}
