//! The ban worker: the one thread that owns the store and the kernel ban sets.
//!
//! CONTRACT (durability): a ban is reported as active ("ban active" log line, counters) only
//! after it is written to the store (one transaction, fsync'd). The kernel element is added
//! first, because it is the fast path (nf_tables netlink, ~0.07 ms; `nft -i` as fallback)
//! while an fsync may take
//! tens of ms on a slow disk; a crash in between loses only a ban that was never acknowledged
//! (the kernel table is rebuilt from the store at start). Everything decided while a batch is being written goes
//! into the next batch: one fsync and one `nft` call per batch, whatever the ban rate.
//!
//! CONTRACT (kernel equals bans): every [`WorkerOptions::reconcile_every`] the worker takes
//! the engine's active bans ([`WorkerOptions::desired`], a short copy under the engine lock)
//! and makes the kernel sets equal them ([`BanSet::reconcile`], one transaction); repairs are
//! logged as warnings and counted. Taking the snapshot here, between two batches and only when
//! the channel is empty (or four periods are overdue), keeps the order right and the count
//! honest: a ban decided before the snapshot is in it (and, the channel being empty, already
//! in the kernel), one decided after reaches the worker after it. Bans a queue thread held back while the channel was full are in the
//! engine, so the next reconcile puts them into the kernel.
//!
//! Static block lists are not written here: a separate loader thread with its own `BanSet`
//! does it in batches, so a large list never delays a ban.
//!
//! What is durable is published in [`DurableBans`] after each commit, for `sipwall bans` to
//! mark the others pending; only this thread writes it, and the queue threads never touch it.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use sipwall_engine::{Ban, BanAction, DecisionRecord, Timestamp, Verdict};
use sipwall_netfilter::{BanOp, BanSet, DesiredBan};

/// What the daemon needs from a state store. Implemented by `sipwall_store::Store`; a small
/// trait so the worker can be tested without a file and another backend (Redis) can plug in.
pub trait BanStore: Send {
    /// Durably record bans (all or none).
    fn record_bans(&mut self, bans: &[Ban]) -> anyhow::Result<()>;
    /// Remove the current ban of a net.
    fn remove_ban(&mut self, net: IpNet) -> anyhow::Result<()>;
    /// Every ban active at `now`.
    fn load_active_bans(&mut self, now: Timestamp) -> anyhow::Result<Vec<Ban>>;
    /// Record non-accept decisions.
    fn record_decisions(&mut self, items: &[DecisionItem]) -> anyhow::Result<()>;
    /// Forget ban history and offence counts of bans that ended before `before`, so the
    /// store stays bounded however many sources were ever banned. Returns rows deleted.
    fn prune_history(&mut self, before: Timestamp) -> anyhow::Result<usize>;
    /// Make a learned fact or shield template durable (a store without them ignores it).
    fn save_learned(&mut self, _write: &super::learned::LearnedWrite) -> anyhow::Result<()> {
        Ok(())
    }
}

impl BanStore for sipwall_store::Store {
    fn save_learned(&mut self, write: &super::learned::LearnedWrite) -> anyhow::Result<()> {
        write.apply(self)
    }
    fn record_bans(&mut self, bans: &[Ban]) -> anyhow::Result<()> {
        Ok(sipwall_store::Store::record_bans(self, bans)?)
    }
    fn remove_ban(&mut self, net: IpNet) -> anyhow::Result<()> {
        sipwall_store::Store::remove_ban(self, net)?;
        Ok(())
    }
    fn load_active_bans(&mut self, now: Timestamp) -> anyhow::Result<Vec<Ban>> {
        Ok(sipwall_store::Store::load_active_bans(self, now)?)
    }
    fn record_decisions(&mut self, items: &[DecisionItem]) -> anyhow::Result<()> {
        sipwall_store::Store::record_decisions(
            self,
            items.iter().map(|d| (d.at, d.src, d.verdict, &d.record)),
        )?;
        Ok(())
    }
    fn prune_history(&mut self, before: Timestamp) -> anyhow::Result<usize> {
        Ok(sipwall_store::Store::prune_history(self, before)?)
    }
}

/// A decision to keep.
#[derive(Debug, Clone)]
pub struct DecisionItem {
    /// When.
    pub at: Timestamp,
    /// Source.
    pub src: SocketAddr,
    /// Verdict.
    pub verdict: Verdict,
    /// Why.
    pub record: DecisionRecord,
}

/// Messages to the worker.
#[derive(Debug)]
pub enum Work {
    /// Ban actions from the engine.
    Bans(Vec<BanAction>),
    /// A decision to record.
    Decision(Box<DecisionItem>),
    /// Forget ban history of bans that ended before this time (sent periodically).
    PruneHistory(Timestamp),
    /// Ban actions of an operator command: applied like `Bans`, then the batch's outcome is
    /// sent back (the command answers only once its ban is in the kernel set and the store).
    Apply(Vec<BanAction>, std::sync::mpsc::SyncSender<Applied>),
    /// Finish the pending batch and stop.
    Stop,
    /// A learned fact or shield template to make durable (see [`super::learned`]).
    Learned(super::learned::LearnedWrite),
}

/// How a batch ended, for [`Work::Apply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// The kernel ban sets took every operation (or there was none).
    pub kernel_ok: bool,
    /// The store took every ban and removal (or there was none).
    pub store_ok: bool,
}

/// The bans the worker has committed to the store: net → the start (`since`) of the stored ban,
/// so a re-ban of the same net (escalation: a new start) is pending again until its own
/// commit. Written by the ban worker after each store commit and removal, read by the control
/// server for `sipwall bans`; bounded by the ban table (removed and expired bans are
/// forgotten). A disabled set (the daemon runs without a store) never calls a ban durable.
#[derive(Debug, Clone)]
pub struct DurableBans {
    stored: Arc<Mutex<HashMap<IpNet, Timestamp>>>,
    enabled: bool,
}

impl DurableBans {
    /// Bans are durable once stored.
    pub fn new() -> DurableBans {
        DurableBans { stored: Arc::default(), enabled: true }
    }
    /// No store: nothing is ever durable.
    pub fn disabled() -> DurableBans {
        DurableBans { enabled: false, ..DurableBans::new() }
    }
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<IpNet, Timestamp>> {
        // Only inserts and removes under the lock: a panic elsewhere leaves it consistent.
        self.stored.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    /// These bans are in the store now.
    pub fn mark(&self, bans: &[Ban]) {
        if self.enabled {
            let mut m = self.map();
            for b in bans {
                m.insert(b.net, b.since);
            }
        }
    }
    /// These nets' bans are lifted.
    pub fn forget(&self, nets: &[IpNet]) {
        let mut m = self.map();
        for n in nets {
            m.remove(n);
        }
    }
    /// Is exactly this ban (net and start) in the store?
    pub fn is_durable(&self, b: &Ban) -> bool {
        self.map().get(&b.net) == Some(&b.since)
    }
}

/// Kernel timeout for a ban ending at `until`.
pub fn kernel_timeout(until: Timestamp, now: Timestamp) -> Option<Duration> {
    until.0.checked_sub(now.0).filter(|d| !d.is_zero())
}

/// Ban-set operations for bans (skipping those already over).
pub fn add_ops(bans: &[Ban], now: Timestamp) -> Vec<BanOp> {
    bans.iter()
        .filter_map(|b| {
            kernel_timeout(b.until, now).map(|t| BanOp::Add { net: b.net, timeout: Some(t) })
        })
        .collect()
}

/// Counters of the worker.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WorkerStats {
    /// Bans durably stored and pushed to the kernel.
    pub bans_active: u64,
    /// Bans removed.
    pub bans_removed: u64,
    /// Decisions stored.
    pub decisions: u64,
    /// Store failures.
    pub store_errors: u64,
    /// Kernel set failures.
    pub kernel_errors: u64,
    /// Reconciliations of the kernel sets with the active bans done.
    pub reconciles: u64,
    /// Kernel elements repaired by them (added, removed or timeout fixed).
    pub reconcile_repairs: u64,
    /// Work items still queued when the worker had to give up at stop (not applied).
    pub lost_at_stop: u64,
}

/// The fleet's publishing hook: (bans added, operator unbans) of one batch.
pub type Publish = dyn Fn(&[Ban], &[IpNet]);

/// How the worker keeps the kernel equal to the active bans, and when it gives up at stop.
pub struct WorkerOptions<'a> {
    /// Period of the reconciliation (None = never).
    pub reconcile_every: Option<Duration>,
    /// The engine's active bans now (the list REPLACES what the ban set knew).
    pub desired: &'a dyn Fn() -> Vec<DesiredBan>,
    /// Set by the daemon when its stop deadline passed: whatever is still queued is counted
    /// as lost (the kernel keeps what it has; the engine's bans were never acknowledged).
    pub give_up: &'a AtomicBool,
    /// The queue threads' count of decision records in flight; decremented as they are taken.
    pub decisions_in_flight: &'a AtomicUsize,
    /// `[fleet]`: called after each batch reached the kernel step with the bans added and the
    /// removals operator commands asked for (`Work::Apply`; expiries are never passed). It
    /// must not block (the fleet adapter's `try_send`).
    pub publish: Option<&'a Publish>,
}

/// Reconcile once: log repairs as warnings; count them. `caught_up` = no work was queued
/// (else bans still on their way to the kernel show up as missing: added, logged, but not
/// counted as repairs).
pub fn reconcile(
    banset: &mut BanSet,
    desired: &[DesiredBan],
    stats: &mut WorkerStats,
    caught_up: bool,
) {
    let t0 = Instant::now();
    match banset.reconcile(desired) {
        Ok(r) if !caught_up => {
            stats.reconciles += 1;
            let real = r.stale_removed + r.timeouts_fixed;
            stats.reconcile_repairs += real as u64;
            let log_level = if real > 0 { log::Level::Warn } else { log::Level::Info };
            log::log!(
                log_level,
                "kernel ban sets reconciled while the ban worker is behind: {} added (bans \
                 still queued for the kernel among them), {} stale removed, {} timeouts \
                 fixed; {} element(s) for {} ban(s) ({} ms)",
                r.missing_added,
                r.stale_removed,
                r.timeouts_fixed,
                r.kernel_elements,
                desired.len(),
                t0.elapsed().as_millis()
            );
        }
        Ok(r) => {
            stats.reconciles += 1;
            stats.reconcile_repairs += r.repairs() as u64;
            if r.repairs() > 0 {
                log::warn!(
                    "kernel ban sets repaired: {} missing added, {} stale removed, {} timeouts \
                     fixed; {} element(s) for {} ban(s) ({} ms)",
                    r.missing_added,
                    r.stale_removed,
                    r.timeouts_fixed,
                    r.kernel_elements,
                    desired.len(),
                    t0.elapsed().as_millis()
                );
            } else {
                log::debug!(
                    "kernel ban sets match {} ban(s) ({} ms)",
                    desired.len(),
                    t0.elapsed().as_millis()
                );
            }
        }
        Err(e) => {
            stats.kernel_errors += 1;
            log::error!("reconciling the kernel ban sets: {e}");
        }
    }
}

/// Fold ban actions into the pending batch: the last action on a net wins.
fn merge(adds: &mut Vec<Ban>, removes: &mut Vec<IpNet>, actions: Vec<BanAction>) {
    for a in actions {
        match a {
            BanAction::Add(b) => {
                removes.retain(|n| *n != b.net);
                adds.retain(|x| x.net != b.net);
                adds.push(b);
            }
            BanAction::Remove(n) => {
                adds.retain(|x| x.net != n);
                removes.push(n);
            }
        }
    }
}

/// Run until `Work::Stop` or the channel closes.
pub fn run(
    rx: Receiver<Work>,
    store: &mut dyn BanStore,
    banset: &mut BanSet,
    clock: &dyn Fn() -> Timestamp,
    durable: &DurableBans,
    opts: WorkerOptions<'_>,
) -> WorkerStats {
    let mut stats = WorkerStats::default();
    let mut stop = false;
    let mut last_reconcile = Instant::now();
    while !stop {
        if opts.give_up.load(Ordering::Relaxed) {
            // Bounded: the channel holds at most its capacity.
            while rx.try_recv().is_ok() {
                stats.lost_at_stop += 1;
            }
            break;
        }
        let mut held: Option<Work> = None;
        if let Some(every) = opts.reconcile_every.filter(|e| last_reconcile.elapsed() >= *e) {
            // Only when caught up with the channel: a ban still queued here is in the engine's
            // snapshot but not yet in the kernel, and would be counted as a repair. In a storm
            // that never lets up, the reconcile runs anyway once four periods have passed.
            held = rx.try_recv().ok();
            if held.is_none() || last_reconcile.elapsed() >= every * 4 {
                last_reconcile = Instant::now();
                let desired = (opts.desired)();
                reconcile(banset, &desired, &mut stats, held.is_none());
            }
        }
        let first = match held.map_or_else(|| rx.recv_timeout(Duration::from_millis(200)), Ok) {
            Ok(w) => w,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut adds: Vec<Ban> = Vec::new();
        let mut removes: Vec<IpNet> = Vec::new();
        let mut decisions: Vec<DecisionItem> = Vec::new();
        let mut prune_before: Option<Timestamp> = None;
        let mut flushes: Vec<std::sync::mpsc::SyncSender<Applied>> = Vec::new();
        let mut learned: Vec<super::learned::LearnedWrite> = Vec::new();
        let mut unbans: Vec<IpNet> = Vec::new();
        let mut take = |w: Work, stop: &mut bool| match w {
            Work::Learned(l) => learned.push(l),
            Work::Bans(actions) => merge(&mut adds, &mut removes, actions),
            Work::Apply(actions, ack) => {
                unbans.extend(actions.iter().filter_map(|a| match a {
                    BanAction::Remove(n) => Some(*n),
                    BanAction::Add(_) => None,
                }));
                merge(&mut adds, &mut removes, actions);
                flushes.push(ack);
            }
            Work::Decision(d) => {
                crate::metrics::shared().decision(&d.verdict.to_string(), d.record.rule);
                // The dashboard's live stream (never waits: `api::events`).
                crate::api::events::publish_decision(&d);
                // Saturating: the control thread's audit records are not counted.
                let _ = opts.decisions_in_flight.fetch_update(
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                    |v| Some(v.saturating_sub(1)),
                );
                decisions.push(*d)
            }
            Work::PruneHistory(before) => prune_before = Some(before),
            Work::Stop => *stop = true,
        };
        take(first, &mut stop);
        // Everything queued meanwhile joins this batch (bounded).
        for _ in 0..4096 {
            match rx.try_recv() {
                Ok(w) => take(w, &mut stop),
                Err(_) => break,
            }
        }
        let now = clock();
        for l in &learned {
            if let Err(e) = store.save_learned(l) {
                stats.store_errors += 1;
                log::error!("storing {l}: {e:#}");
            }
        }
        if let Some(before) = prune_before {
            match store.prune_history(before) {
                Ok(n) if n > 0 => {
                    log::info!("forgot {n} ban history row(s) past bans.forget_after")
                }
                Ok(_) => {}
                Err(e) => {
                    stats.store_errors += 1;
                    log::error!("pruning ban history: {e:#}");
                }
            }
        }
        let t0 = std::time::Instant::now();
        // Kernel first (the fast path: the source is dropped from now on), then the store;
        // a ban is acknowledged (logged, counted) only once it is durable. A crash between
        // the two loses only an unacknowledged ban: the kernel table is rebuilt at start from
        // the store.
        let mut ops = add_ops(&adds, now);
        ops.extend(removes.iter().map(|n| BanOp::Remove(*n)));
        let mut kernel_in = None;
        let mut applied = Applied { kernel_ok: true, store_ok: true };
        if !ops.is_empty() {
            match banset.apply(&ops) {
                Ok(()) => {
                    stats.bans_removed += removes.len() as u64;
                    kernel_in = Some(t0.elapsed());
                    // /metrics (the scraper reads these; only this thread writes them)
                    let m = crate::metrics::shared();
                    if !adds.is_empty() {
                        m.kernel_set_in(t0.elapsed());
                    }
                    for b in &adds {
                        m.ban_added(&b.rule, &b.origin.to_string());
                    }
                    crate::api::events::publish_bans(&adds, &removes);
                }
                Err(e) => {
                    stats.kernel_errors += 1;
                    applied.kernel_ok = false;
                    log::error!("updating kernel ban sets: {e}");
                }
            }
        }
        if let Some(publish) = opts.publish {
            // Only what the batch still removes (a later ban of the same net wins).
            unbans.retain(|n| removes.contains(n));
            if !adds.is_empty() || !unbans.is_empty() {
                publish(&adds, &unbans);
            }
        }
        let mut stored_in = None;
        if !adds.is_empty() {
            match store.record_bans(&adds) {
                Ok(()) => {
                    stats.bans_active += adds.len() as u64;
                    stored_in = Some(t0.elapsed());
                    crate::metrics::shared().store_commit_in(t0.elapsed());
                    durable.mark(&adds);
                }
                Err(e) => {
                    stats.store_errors += 1;
                    applied.store_ok = false;
                    log::error!("storing {} ban(s) failed (kernel ban only): {e:#}", adds.len());
                }
            }
        }
        durable.forget(&removes);
        for n in &removes {
            if let Err(e) = store.remove_ban(*n) {
                stats.store_errors += 1;
                applied.store_ok = false;
                log::error!("removing ban of {n} from the store: {e:#}");
            }
        }
        if let Some(stored) = stored_in {
            let kernel =
                kernel_in.map_or("failed".to_string(), |k| format!("{} us", k.as_micros()));
            for b in &adds {
                log::warn!(
                    "ban active: {} until {} ({} #{}; {}) [in kernel set after {kernel}, durable after {} us]",
                    b.net,
                    crate::time::rfc3339(b.until.as_millis()),
                    b.rule,
                    b.count,
                    b.reason,
                    stored.as_micros(),
                );
            }
        }
        for n in &removes {
            log::info!("ban lifted: {n}");
        }
        for ack in flushes {
            // The asker may have given up waiting; nothing to do then.
            let _ = ack.try_send(applied);
        }
        if !decisions.is_empty() {
            match store.record_decisions(&decisions) {
                Ok(()) => stats.decisions += decisions.len() as u64,
                Err(e) => {
                    stats.store_errors += 1;
                    log::error!("storing {} decision(s): {e:#}", decisions.len());
                }
            }
        }
    }
    stats
}

/// An in-memory store, for tests.
#[cfg(test)]
#[derive(Debug, Default)]
pub struct MemStore {
    pub bans: Vec<Ban>,
    pub decisions: Vec<DecisionItem>,
}

#[cfg(test)]
impl BanStore for MemStore {
    fn record_bans(&mut self, bans: &[Ban]) -> anyhow::Result<()> {
        for b in bans {
            self.bans.retain(|x| x.net != b.net);
            self.bans.push(b.clone());
        }
        Ok(())
    }
    fn remove_ban(&mut self, net: IpNet) -> anyhow::Result<()> {
        self.bans.retain(|x| x.net != net);
        Ok(())
    }
    fn load_active_bans(&mut self, now: Timestamp) -> anyhow::Result<Vec<Ban>> {
        Ok(self.bans.iter().filter(|b| b.until > now).cloned().collect())
    }
    fn record_decisions(&mut self, items: &[DecisionItem]) -> anyhow::Result<()> {
        self.decisions.extend_from_slice(items);
        Ok(())
    }
    fn prune_history(&mut self, _before: Timestamp) -> anyhow::Result<usize> {
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sipwall_engine::{BanOrigin, Evidence};

    fn ban(net: &str, until_ms: u64) -> Ban {
        Ban {
            net: net.parse().unwrap(),
            since: Timestamp::from_millis(1000),
            until: Timestamp::from_millis(until_ms),
            count: 1,
            rule: "test".into(),
            reason: "because".into(),
            evidence: Evidence::default(),
            origin: BanOrigin::Detection,
        }
    }

    #[test]
    fn expired_bans_get_no_kernel_element() {
        let now = Timestamp::from_millis(5000);
        let ops = add_ops(&[ban("192.0.2.1/32", 4000), ban("192.0.2.2/32", 65_000)], now);
        assert_eq!(
            ops,
            vec![BanOp::Add {
                net: "192.0.2.2/32".parse().unwrap(),
                timeout: Some(Duration::from_secs(60))
            }]
        );
    }

    /// A store whose commits fail, as a full disk's would.
    struct FailingStore;
    impl BanStore for FailingStore {
        fn record_bans(&mut self, _: &[Ban]) -> anyhow::Result<()> {
            anyhow::bail!("disk full")
        }
        fn remove_ban(&mut self, _: IpNet) -> anyhow::Result<()> {
            Ok(())
        }
        fn load_active_bans(&mut self, _: Timestamp) -> anyhow::Result<Vec<Ban>> {
            Ok(Vec::new())
        }
        fn record_decisions(&mut self, _: &[DecisionItem]) -> anyhow::Result<()> {
            Ok(())
        }
        fn prune_history(&mut self, _: Timestamp) -> anyhow::Result<usize> {
            Ok(0)
        }
    }

    /// Run the worker on `store` for the given work, each `Apply` waited for; returns the
    /// durable set it kept. The kernel half targets a table that does not exist (nothing on
    /// the host changes; its failure is the kernel half's, not the store's).
    fn durable_after(
        store: &mut dyn BanStore,
        durable: DurableBans,
        steps: Vec<Vec<BanAction>>,
        check: impl Fn(usize, &DurableBans),
    ) {
        let (tx, rx) = std::sync::mpsc::sync_channel(16);
        let d2 = durable.clone();
        std::thread::scope(|s| {
            let w = s.spawn(move || {
                let mut banset = BanSet::new("sipwall_no_such_table");
                let give_up = AtomicBool::new(false);
                let opts = WorkerOptions {
                    reconcile_every: None,
                    desired: &Vec::new,
                    give_up: &give_up,
                    decisions_in_flight: &AtomicUsize::new(0),
                    publish: None,
                };
                run(rx, store, &mut banset, &|| Timestamp::from_millis(2000), &d2, opts)
            });
            for (i, actions) in steps.into_iter().enumerate() {
                let (ack, done) = std::sync::mpsc::sync_channel(1);
                tx.send(Work::Apply(actions, ack)).unwrap();
                done.recv_timeout(Duration::from_secs(60)).unwrap();
                check(i, &durable);
            }
            tx.send(Work::Stop).unwrap();
            w.join().unwrap();
        });
    }

    #[test]
    fn only_committed_bans_are_durable() {
        let first = ban("203.0.113.9/32", 900_000);
        let mut again = first.clone();
        again.since = Timestamp::from_millis(5000);
        let net = first.net;
        let durable = DurableBans::new();
        assert!(!durable.is_durable(&first), "durable before any commit");
        let (f, a) = (first.clone(), again.clone());
        durable_after(
            &mut MemStore::default(),
            durable,
            vec![vec![BanAction::Add(first)], vec![BanAction::Remove(net)]],
            move |step, d| match step {
                0 => {
                    assert!(d.is_durable(&f), "committed but not durable");
                    // the same net banned anew (a later start) is not the stored ban
                    assert!(!d.is_durable(&a));
                }
                _ => assert!(!d.is_durable(&f), "lifted but still listed durable"),
            },
        );
        // a failed commit leaves the ban pending; a daemon without a store has none durable
        for (store, durable) in [
            (&mut FailingStore as &mut dyn BanStore, DurableBans::new()),
            (&mut MemStore::default() as &mut dyn BanStore, DurableBans::disabled()),
        ] {
            let b = ban("203.0.113.10/32", 900_000);
            let b2 = b.clone();
            durable_after(store, durable, vec![vec![BanAction::Add(b)]], move |_, d| {
                assert!(!d.is_durable(&b2), "an uncommitted ban is listed durable");
            });
        }
    }

    #[test]
    fn a_worker_told_to_give_up_counts_the_queued_work_as_lost_and_returns() {
        let (tx, rx) = std::sync::mpsc::sync_channel(16);
        for i in 0..5u8 {
            let b = ban(&format!("203.0.113.{i}/32"), 900_000);
            tx.send(Work::Bans(vec![BanAction::Add(b)])).unwrap();
        }
        // No Stop is ever sent and the sender stays open: only the flag can end the worker.
        let give_up = AtomicBool::new(true);
        let mut store = MemStore::default();
        let mut banset = BanSet::new("sipwall_no_such_table");
        let opts = WorkerOptions {
            reconcile_every: None,
            desired: &Vec::new,
            give_up: &give_up,
            decisions_in_flight: &AtomicUsize::new(0),
            publish: None,
        };
        let durable = DurableBans::new();
        let stats =
            run(rx, &mut store, &mut banset, &|| Timestamp::from_millis(2000), &durable, opts);
        assert_eq!(stats.lost_at_stop, 5);
        assert!(store.bans.is_empty(), "work applied after the give-up");
        drop(tx);
    }

    #[test]
    fn mem_store_round_trip() {
        let mut s = MemStore::default();
        s.record_bans(&[ban("192.0.2.1/32", 9000), ban("192.0.2.2/32", 2000)]).unwrap();
        let active = s.load_active_bans(Timestamp::from_millis(3000)).unwrap();
        assert_eq!(active.len(), 1);
        s.remove_ban("192.0.2.1/32".parse().unwrap()).unwrap();
        assert!(s.load_active_bans(Timestamp::from_millis(3000)).unwrap().is_empty());
    }
}
