//! One queue thread: receive a batch, view each packet, ask the engine, answer the batch.
//!
//! The engine is shared by the queue threads behind a mutex. Each thread first analyses a
//! packet on its own copy of the engine's immutable [`Rules`] (parse, fields, signature scan:
//! most of a decision's cost) WITHOUT the lock, then locks the engine only for the per-source
//! state and bans (`decide_analysed`), so queue threads on several cores decide in parallel
//! instead of taking turns for whole batches. After a reload the thread picks up the new
//! rules at its next packet; a packet analysed under the old ones is redone by the engine.
//! Ban actions and decision records go to the ban worker over a channel, so no store or `nft`
//! latency ever stalls the queue.
//!
//! CONTRACT (judging never waits): a queue thread never blocks on the ban worker. Ban actions
//! are collected per batch and handed over with `try_send`; when the channel is full they stay
//! in a small per-thread [`PendingBans`] buffer (coalesced per net, last action wins) and are
//! retried after the next batch. Past [`PENDING_BANS_MAX`] nets the newest are counted as
//! overflow and not sent: the engine still holds those bans (their sources are dropped here,
//! in user space) and the ban worker's periodic reconcile puts them into the kernel. The engine
//! lock is held only for `decide_analysed` (no I/O, no allocation beyond the engine's own).
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use ipnet::IpNet;
use sipwall_engine::{BanAction, Direction, Engine, Packet, Rules, Transport, Verdict};
use sipwall_netfilter::{
    packet, pin_current_thread, Hook, Queue, QueueConfig, QueueVerdict, QueuedPacket, Ruleset, L4,
};

use super::ban_worker::{DecisionItem, Work};
use super::lock;
use super::shield::{self, AnswerKind, Shield};
use super::tcp::TcpTracker;
use crate::time::wall_clock;
use sipwall_engine::Timestamp;

/// What a queue thread is told at start.
#[derive(Debug, Clone)]
pub struct QueueSettings {
    /// Which way a packet goes.
    pub direction: DirectionRule,
    /// Send non-accept decisions to the ban worker to be stored.
    pub record_decisions: bool,
    /// Most TCP connections tracked by this thread.
    pub max_tcp_flows: usize,
    /// Decision records handed to the ban worker and not yet taken by it, all queue threads
    /// together; past [`DECISIONS_IN_FLIGHT_MAX`] records are counted and not sent, so a storm
    /// cannot fill the worker's channel with records (each holds its evidence) and memory.
    pub decisions_in_flight: Arc<AtomicUsize>,
    /// Where each queue thread publishes its counters once per batch (`sipwall status`).
    pub counters: Arc<super::status::Counters>,
    /// Rule families only simulated (observe mode): their drops are accepted and counted as
    /// `would_drop`, their bans kept out of the kernel and the store.
    pub simulate: super::status::Simulate,
    /// The enumeration shield ([`super::shield`]), shared by the queue threads; None in
    /// observe mode (nothing is changed on the wire then).
    pub shield: Option<Arc<Shield>>,
    /// `[enforce] cpus`: queue `n` pins its thread to `cpus[n % cpus.len()]`; empty: unpinned.
    pub cpus: Vec<usize>,
}

/// Most decision records in flight to the ban worker (see [`QueueSettings`]).
pub const DECISIONS_IN_FLIGHT_MAX: usize = 4096;

/// The direction rule: is a packet inbound (towards the protected side) or outbound? By the
/// netfilter hook where the kernel saw it; on FORWARD (router mode) by the protected
/// networks, else by the guarded destination port.
#[derive(Debug, Clone)]
pub struct DirectionRule {
    /// Router mode: networks behind the router (their packets are outbound).
    pub protected: Vec<IpNet>,
    /// Guarded (inspected) ports, for the direction fallback in router mode.
    pub guarded: Vec<(L4, u16)>,
}

impl DirectionRule {
    /// The rule `[enforce]` and its ruleset describe.
    pub fn of(enforce: &crate::config::EnforceConfig, ruleset: &Ruleset) -> DirectionRule {
        let guarded = ruleset.ports.iter().filter(|p| p.inspect).map(|p| (p.l4, p.port)).collect();
        DirectionRule { protected: enforce.protected.clone(), guarded }
    }

    /// Direction of a packet relative to the protected side.
    pub fn direction(&self, hook: Hook, src: SocketAddr, dst: SocketAddr, l4: L4) -> Direction {
        match hook {
            Hook::LocalIn | Hook::PreRouting => Direction::Inbound,
            Hook::LocalOut | Hook::PostRouting => Direction::Outbound,
            _ => {
                if !self.protected.is_empty() {
                    if self.protected.iter().any(|n| n.contains(&src.ip())) {
                        Direction::Outbound
                    } else {
                        Direction::Inbound
                    }
                } else if self.guarded.contains(&(l4, dst.port())) {
                    Direction::Inbound
                } else {
                    Direction::Outbound
                }
            }
        }
    }
}

/// Counters of one queue thread.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct InlineStats {
    /// Packets judged.
    pub packets: u64,
    /// Dropped.
    pub dropped: u64,
    /// Not parseable as UDP/TCP (accepted).
    pub unparsed: u64,
    /// Non-first IP fragments (accepted: no transport header).
    pub fragments: u64,
    /// Would have been dropped by a simulated rule family; accepted.
    pub would_drop: u64,
    /// Ban actions not kept because the worker's channel and the pending buffer were full.
    pub ban_overflow: u64,
    /// Ban actions still pending when the thread stopped.
    pub bans_lost_at_stop: u64,
    /// "No such user" answers replaced by a challenge (enumeration shield).
    pub shielded: u64,
}

/// Most nets a queue thread holds back while the ban worker's channel is full.
pub const PENDING_BANS_MAX: usize = 4096;

/// Ban actions a queue thread has not handed to the ban worker yet (bounded, coalesced).
#[derive(Debug, Default)]
pub struct PendingBans {
    actions: Vec<BanAction>,
    /// Actions added since the last coalescing: a full buffer is coalesced again only after
    /// a quarter of it is new, so a storm against a full buffer costs O(1) per action, not a
    /// pass over the whole buffer for every one.
    fresh: usize,
    /// Actions not kept because the buffer was full (the engine still holds the bans).
    pub overflow: u64,
}

fn action_net(a: &BanAction) -> IpNet {
    match a {
        BanAction::Add(b) => b.net,
        BanAction::Remove(n) => *n,
    }
}

impl PendingBans {
    /// Keep `actions` for the next hand-over; past [`PENDING_BANS_MAX`] they are counted as
    /// overflow instead.
    pub fn push(&mut self, actions: Vec<BanAction>) {
        for a in actions {
            if self.actions.len() >= PENDING_BANS_MAX && self.fresh >= PENDING_BANS_MAX / 4 {
                self.coalesce();
            }
            if self.actions.len() >= PENDING_BANS_MAX {
                self.overflow += 1;
            } else {
                self.actions.push(a);
                self.fresh += 1;
            }
        }
    }

    /// One action per net, the last one (the engine's latest decision), in decision order.
    fn coalesce(&mut self) {
        let mut seen = HashSet::new();
        let mut kept: Vec<BanAction> =
            self.actions.drain(..).rev().filter(|a| seen.insert(action_net(a))).collect();
        kept.reverse();
        self.actions = kept;
        self.fresh = 0;
    }

    /// Hand everything to the worker without waiting; on a full channel keep it (coalesced)
    /// for the next try. Returns false when the worker is gone.
    pub fn flush(&mut self, work: &SyncSender<Work>) -> bool {
        if self.actions.is_empty() {
            return true;
        }
        match work.try_send(Work::Bans(std::mem::take(&mut self.actions))) {
            Ok(()) => true,
            Err(TrySendError::Full(Work::Bans(back))) => {
                self.actions = back;
                self.coalesce();
                true
            }
            Err(_) => false,
        }
    }

    /// Actions waiting.
    pub fn len(&self) -> usize {
        self.actions.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
}

/// The time of one batch, read when its first packet is judged, i.e. AFTER the blocking
/// receive returned, never before it (a clock read before `process_batch` stamped bans and
/// decisions up to the receive timeout, 200 ms, early). One clock read per batch.
pub struct BatchClock<C: Fn() -> Timestamp> {
    clock: C,
    now: Option<Timestamp>,
}

impl<C: Fn() -> Timestamp> BatchClock<C> {
    /// Nothing read yet.
    pub fn new(clock: C) -> Self {
        BatchClock { clock, now: None }
    }
    /// A new batch is about to be received: forget the last batch's time.
    pub fn next_batch(&mut self) {
        self.now = None;
    }
    /// The batch's time: read on the first call after [`BatchClock::next_batch`].
    pub fn now(&mut self) -> Timestamp {
        *self.now.get_or_insert_with(&self.clock)
    }
}

/// Hand a new challenge form to the ban worker to store (best effort: on a full channel the
/// next new form is stored instead; the running shield has it either way).
fn learned_template(
    work: &SyncSender<Work>,
    host: std::net::IpAddr,
    challenge: &[u8],
    at: Timestamp,
) {
    let method = sipwall_sip::Message::parse(challenge)
        .ok()
        .and_then(|m| m.cseq())
        .and_then(|c| shield::method_name(c.method));
    if let Some(method) = method {
        let write = super::learned::LearnedWrite::ShieldTemplate {
            host,
            method,
            template: challenge.to_vec(),
            at,
        };
        let _ = work.try_send(Work::Learned(write));
    }
}

/// Whose challenges a template is: this host's own answers (OUTPUT) all share one key, since
/// a PBX answers from whichever of its addresses faces the peer; a forwarded answer (router
/// mode) is its sender's.
fn shield_host(hook: Hook, src: SocketAddr) -> std::net::IpAddr {
    match hook {
        Hook::LocalOut => std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        _ => src.ip(),
    }
}

/// The enumeration shield's hook for an accepted outbound UDP packet: when it is a "no such
/// user" answer to a peer the engine does not vouch for, write the packet carrying the forged
/// challenge into `rewrite` and return true. Costs one status-code comparison for every other
/// packet; the engine is locked only for a "no such user" answer, and only to ask about the
/// peer, never while forging or rebuilding.
fn shield_rewrite(
    shield: Option<&Shield>,
    engine: &Mutex<Engine>,
    view: &packet::PacketView<'_>,
    qp: &QueuedPacket<'_>,
    forged: &mut Vec<u8>,
    rewrite: &mut Vec<u8>,
) -> bool {
    let Some(shield) = shield else { return false };
    if shield::answer_kind(view.payload) != Some(AnswerKind::NoSuchUser) {
        return false;
    }
    if lock(engine).vouches_for(view.dst.ip()) {
        return false;
    }
    if !shield.forge(shield_host(qp.hook, view.src), view.payload, forged) {
        return false;
    }
    match packet::rebuild_udp(qp.payload, forged, rewrite) {
        Ok(()) => {
            log::debug!("shield: {} -> {}: 404 answered as a challenge", view.src, view.dst);
            true
        }
        Err(e) => {
            log::debug!("shield: {} -> {}: not rewritten: {e}", view.src, view.dst);
            rewrite.clear();
            false
        }
    }
}

/// Environment variable with queue-client settings for benchmarks (`scripts/bench-sustained.sh`
/// measures each lever alone with it): comma-separated `batch=N` (packets per receive, 1..=1024),
/// `copy_range=N` (bytes copied per packet), `verdict_batch=0|1`, `gso=0|1`. Not a configuration
/// interface: unknown or malformed items are logged and ignored.
pub const QUEUE_TUNING_ENV: &str = "SIPWALL_QUEUE_TUNING";

/// Apply [`QUEUE_TUNING_ENV`] (when set) to a queue's settings.
pub fn tune_from_env(qc: &mut QueueConfig) {
    if let Ok(spec) = std::env::var(QUEUE_TUNING_ENV) {
        apply_tuning(qc, &spec);
    }
}

fn apply_tuning(qc: &mut QueueConfig, spec: &str) {
    for item in spec.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let ok = match item.split_once('=') {
            Some(("batch", v)) => v.parse().map(|n: usize| qc.batch = n.clamp(1, 1024)).is_ok(),
            Some(("copy_range", v)) => v.parse().map(|n: u16| qc.copy_range = n.max(64)).is_ok(),
            Some(("verdict_batch", v)) => v.parse().map(|b: u8| qc.verdict_batch = b != 0).is_ok(),
            Some(("gso", v)) => v.parse().map(|b: u8| qc.gso = b != 0).is_ok(),
            _ => false,
        };
        if !ok {
            log::warn!("{QUEUE_TUNING_ENV}: ignoring '{item}'");
        }
    }
}

/// Run one queue until `stop`. Returns its counters, or the queue error that ended it.
pub fn run_queue(
    mut queue: Queue,
    engine: Arc<Mutex<Engine>>,
    work: SyncSender<Work>,
    settings: QueueSettings,
    stop: Arc<AtomicBool>,
) -> Result<InlineStats, sipwall_netfilter::QueueError> {
    let mut tcp = TcpTracker::new(settings.max_tcp_flows);
    let mut stats = InlineStats::default();
    let mut decision_overflow = 0u64;
    let mut pending = PendingBans::default();
    let mut rules: Arc<Rules> = lock(&engine).rules().clone();
    let mut clock = BatchClock::new(wall_clock);
    let published = settings.counters.queue(queue.config_used().num);
    if !settings.cpus.is_empty() {
        let num = queue.config_used().num;
        let cpu = settings.cpus[num as usize % settings.cpus.len()];
        // Fail safe: an unpinned queue still judges every packet.
        match pin_current_thread(cpu) {
            Ok(()) => log::info!("queue {num}: thread pinned to CPU {cpu} (enforce.cpus)"),
            Err(e) => log::warn!("enforce.cpus: pinning queue {num} to CPU {cpu}: {e}; unpinned"),
        }
    }
    let mut would_drop = 0u64;
    // The forged answer before it is put into a packet; grows once, then reused.
    let mut forged: Vec<u8> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        clock.next_batch();
        queue.process_batch_rewriting(|qp: &QueuedPacket<'_>, rewrite: &mut Vec<u8>| {
            // Inside the callback: the receive has returned, a packet is here.
            let now = clock.now();
            let now_ms = now.as_millis();
            stats.packets += 1;
            let view = match packet::parse(qp.payload) {
                Ok(view) => view,
                // No transport header to judge; the first fragment (SIP start line) is judged.
                Err(packet::PacketError::Fragment) => {
                    stats.fragments += 1;
                    return QueueVerdict::Accept;
                }
                // Cannot be judged, and no SIP user agent chains this many: fail closed.
                Err(packet::PacketError::TooManyExtensionHeaders) => {
                    stats.dropped += 1;
                    return QueueVerdict::Drop;
                }
                Err(_) => {
                    stats.unparsed += 1;
                    return QueueVerdict::Accept;
                }
            };
            let direction = settings.direction.direction(qp.hook, view.src, view.dst, view.l4);
            let mut judge = |payload: &[u8], transport: Transport| -> bool {
                let p = Packet { src: view.src, dst: view.dst, transport, direction, payload };
                let analysis = rules.analyse(&p); // unlocked: the expensive, stateless half
                let (mut d, simulated) = {
                    let mut e = lock(&engine);
                    let d = e.decide_analysed(&p, &analysis, now);
                    if !Arc::ptr_eq(&rules, e.rules()) {
                        rules = e.rules().clone(); // reloaded
                    }
                    // Simulated: a drop by a simulated family, or by a ban that is itself
                    // only simulated (`ban.active` names the ban, not its cause).
                    let simulated = !settings.simulate.is_empty()
                        && d.verdict != Verdict::Accept
                        && d.record.as_ref().is_some_and(|r| {
                            if r.rule == "ban.active" {
                                // The engine's peer: the source inbound, the destination
                                // outbound (answers to a banned scanner are dropped too).
                                let peer = match direction {
                                    Direction::Inbound => view.src.ip(),
                                    _ => view.dst.ip(),
                                };
                                e.ban_for(peer, now).is_some_and(|b| settings.simulate.ban(b))
                            } else {
                                settings.simulate.covers(r.rule)
                            }
                        });
                    (d, simulated)
                };
                let bans = std::mem::take(&mut d.bans);
                let (bans, simulated_bans) = settings.simulate.split(bans);
                if !bans.is_empty() {
                    // Handed over after the batch, never waiting (module contract).
                    pending.push(bans);
                }
                if simulated || simulated_bans > 0 {
                    if let Some(r) = &mut d.record {
                        let what = match (simulated, simulated_bans > 0) {
                            (true, true) => "would drop and ban",
                            (true, false) => "would drop",
                            _ => "would ban",
                        };
                        r.summary = format!("[{what}: simulated] {}", r.summary);
                        // A would-ban is rare (once per scanner) and said at info; each
                        // would-drop only at debug, so a flood cannot flood the log.
                        if simulated_bans > 0 {
                            log::info!(
                                "{what} {} (simulated): {}: {}",
                                view.src,
                                r.rule,
                                r.summary
                            );
                        } else {
                            log::debug!(
                                "{what} {} (simulated): {}: {}",
                                view.src,
                                r.rule,
                                r.summary
                            );
                        }
                    }
                }
                if simulated {
                    would_drop += 1;
                    d.verdict = Verdict::Accept;
                }
                let drop = d.verdict != Verdict::Accept;
                if let Some(r) = &d.record {
                    log::debug!(
                        "{:?} {} -> {}: {}: {}",
                        d.verdict,
                        view.src,
                        view.dst,
                        r.rule,
                        r.summary
                    );
                }
                if !drop && direction == Direction::Outbound {
                    if let Some(shield) = &settings.shield {
                        // A real challenge from the protected side: the form to copy. Off the
                        // engine lock (the shield has its own).
                        if shield::answer_kind(payload) == Some(AnswerKind::Challenge) {
                            let host = shield_host(qp.hook, view.src);
                            if shield.learn(host, payload) == Some(true) {
                                // A new form (rare): made durable by the ban worker, never
                                // waited for.
                                learned_template(&work, host, payload, now);
                            }
                        }
                    }
                }
                if settings.record_decisions {
                    if let Some(record) = d.record {
                        let in_flight = &settings.decisions_in_flight;
                        if in_flight.load(Ordering::Relaxed) >= DECISIONS_IN_FLIGHT_MAX {
                            decision_overflow += 1;
                        } else {
                            let item =
                                DecisionItem { at: now, src: view.src, verdict: d.verdict, record };
                            in_flight.fetch_add(1, Ordering::Relaxed);
                            if work.try_send(Work::Decision(Box::new(item))).is_err() {
                                in_flight.fetch_sub(1, Ordering::Relaxed);
                                decision_overflow += 1;
                            }
                        }
                    }
                }
                drop
            };
            let v = match (view.l4, view.tcp) {
                (L4::Tcp, Some(info)) => {
                    tcp.on_segment(view.src, view.dst, info, view.payload, now_ms, |m| {
                        judge(m, Transport::Tcp)
                    })
                }
                _ => {
                    if judge(view.payload, Transport::Udp) {
                        QueueVerdict::Drop
                    } else if direction == Direction::Outbound
                        && shield_rewrite(
                            settings.shield.as_deref(),
                            &engine,
                            &view,
                            qp,
                            &mut forged,
                            rewrite,
                        )
                    {
                        stats.shielded += 1;
                        QueueVerdict::AcceptRewritten
                    } else {
                        QueueVerdict::Accept
                    }
                }
            };
            if v == QueueVerdict::Drop {
                stats.dropped += 1;
            }
            v
        })?;
        pending.flush(&work);
        if let Some(c) = published {
            stats.would_drop = would_drop;
            c.publish(&stats);
        }
    }
    // At stop: a few quick tries; the daemon's stop deadline must not wait on a full channel.
    for _ in 0..20 {
        if !pending.flush(&work) || pending.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    if !pending.is_empty() || pending.overflow > 0 {
        log::warn!(
            "queue {}: {} ban action(s) never reached the ban worker ({} lost at stop, {} over \
             the buffer while the worker was busy: those reached the kernel by reconcile, not \
             the store)",
            queue.config_used().num,
            pending.len() as u64 + pending.overflow,
            pending.len(),
            pending.overflow
        );
    }
    if stats.shielded > 0 {
        log::info!(
            "queue {}: {} \"no such user\" answer(s) sent as challenges (enumeration shield)",
            queue.config_used().num,
            stats.shielded
        );
    }
    stats.ban_overflow = pending.overflow;
    stats.bans_lost_at_stop = pending.len() as u64;
    if decision_overflow > 0 {
        log::warn!(
            "queue {}: {decision_overflow} decision records not stored (worker busy)",
            queue.config_used().num
        );
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(net: &str, count: u32) -> BanAction {
        BanAction::Add(sipwall_engine::Ban {
            net: net.parse().unwrap(),
            since: sipwall_engine::Timestamp::from_millis(1000),
            until: sipwall_engine::Timestamp::from_millis(61_000),
            count,
            rule: "test".into(),
            reason: "storm".into(),
            evidence: Default::default(),
            origin: sipwall_engine::BanOrigin::Detection,
        })
    }

    #[test]
    fn pending_bans_never_block_and_stay_bounded() {
        // A channel of one slot, already full: a blocking send would hang this test.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Work>(1);
        tx.try_send(Work::Stop).unwrap();
        let mut p = PendingBans::default();
        p.push(vec![add("203.0.113.1/32", 1), add("203.0.113.1/32", 2)]);
        p.push(vec![BanAction::Remove("203.0.113.2/32".parse().unwrap())]);
        assert!(p.flush(&tx)); // full: kept, coalesced per net
        assert_eq!(p.len(), 2);
        assert!(matches!(&p.actions[0], BanAction::Add(b) if b.count == 2));
        // A storm of distinct nets: bounded, the rest counted.
        let storm: Vec<BanAction> = (0..PENDING_BANS_MAX as u32 + 100)
            .map(|i| add(&format!("2001:db8:{:x}::1/128", i % 65536), 1))
            .collect();
        p.push(storm);
        assert_eq!(p.len(), PENDING_BANS_MAX);
        assert_eq!(p.overflow, 102);
        // Room again: everything goes in one message, in order.
        assert!(matches!(rx.recv().unwrap(), Work::Stop));
        assert!(p.flush(&tx));
        assert!(p.is_empty());
        match rx.recv().unwrap() {
            Work::Bans(a) => {
                assert_eq!(a.len(), PENDING_BANS_MAX);
                assert_eq!(action_net(&a[0]), "203.0.113.1/32".parse::<IpNet>().unwrap());
            }
            other => panic!("unexpected {other:?}"),
        }
        drop(rx);
        p.push(vec![add("203.0.113.3/32", 1)]);
        assert!(!p.flush(&tx)); // worker gone
    }

    #[test]
    fn a_full_buffer_of_repeats_coalesces_and_takes_new_nets() {
        let mut p = PendingBans::default();
        // One net decided over and over (a source hammering while the worker is busy).
        p.push((0..PENDING_BANS_MAX as u32).map(|i| add("203.0.113.7/32", i)).collect());
        assert_eq!(p.len(), PENDING_BANS_MAX);
        p.push(vec![add("203.0.113.8/32", 1)]); // full: coalesced first, so it fits
        assert_eq!((p.len(), p.overflow), (2, 0));
        let last = PENDING_BANS_MAX as u32 - 1;
        assert!(matches!(&p.actions[0], BanAction::Add(b) if b.count == last));
        // Full of distinct nets: coalescing frees nothing, further actions are counted.
        p.push(
            (0..PENDING_BANS_MAX as u32).map(|i| add(&format!("2001:db8::{i:x}/128"), 1)).collect(),
        );
        assert_eq!(p.len(), PENDING_BANS_MAX);
        let before = p.overflow;
        p.push(vec![add("198.51.100.1/32", 1)]);
        assert_eq!(p.overflow, before + 1);
    }

    #[test]
    fn the_batch_time_is_read_at_the_first_packet_not_before_the_receive() {
        let reads = std::cell::Cell::new(0u64);
        let mut c = BatchClock::new(|| {
            reads.set(reads.get() + 1);
            Timestamp::from_millis(1000 * reads.get())
        });
        c.next_batch();
        // the receive blocks here: no clock read has happened yet
        assert_eq!(reads.get(), 0);
        assert_eq!(c.now(), Timestamp::from_millis(1000)); // first packet
        assert_eq!(c.now(), Timestamp::from_millis(1000)); // same batch: one read
        assert_eq!(reads.get(), 1);
        c.next_batch();
        assert_eq!(reads.get(), 1, "read before the next receive");
        assert_eq!(c.now(), Timestamp::from_millis(2000));
    }

    #[test]
    fn queue_tuning_items_apply_and_bad_ones_are_ignored() {
        let mut qc = QueueConfig::new(0);
        apply_tuning(&mut qc, "batch=1, copy_range=1500,verdict_batch=0,gso=1,bogus,batch=x");
        assert_eq!((qc.batch, qc.copy_range, qc.verdict_batch, qc.gso), (1, 1500, false, true));
        apply_tuning(&mut qc, "batch=100000,copy_range=3");
        assert_eq!((qc.batch, qc.copy_range), (1024, 64));
    }

    #[test]
    fn direction_by_hook_then_protected_nets_then_port() {
        let c = DirectionRule {
            protected: vec!["192.0.2.0/24".parse().unwrap()],
            guarded: vec![(L4::Udp, 5060)],
        };
        let phone: SocketAddr = "192.0.2.10:5060".parse().unwrap();
        let out: SocketAddr = "203.0.113.5:5060".parse().unwrap();
        assert_eq!(c.direction(Hook::LocalIn, phone, out, L4::Udp), Direction::Inbound);
        assert_eq!(c.direction(Hook::LocalOut, out, phone, L4::Udp), Direction::Outbound);
        assert_eq!(c.direction(Hook::Forward, phone, out, L4::Udp), Direction::Outbound);
        assert_eq!(c.direction(Hook::Forward, out, phone, L4::Udp), Direction::Inbound);
        let c2 = DirectionRule { protected: vec![], ..c };
        assert_eq!(c2.direction(Hook::Forward, out, phone, L4::Udp), Direction::Inbound);
        let ephemeral: SocketAddr = "192.0.2.10:40000".parse().unwrap();
        assert_eq!(c2.direction(Hook::Forward, out, ephemeral, L4::Udp), Direction::Outbound);
    }

    #[test]
    fn the_shield_rewrites_a_404_to_an_unvouched_peer_only() {
        let policy =
            sipwall_engine::Policy::from_toml_str("[trusted]\nnetworks = [\"198.51.100.0/24\"]\n")
                .unwrap();
        let engine = Mutex::new(Engine::new(policy));
        let shield = Shield::new();
        let answer =
            b"SIP/2.0 404 Not Found\r\nVia: SIP/2.0/UDP 203.0.113.9:5060;branch=z9hG4bK-1\r\n\
            From: <sip:7@192.0.2.10>;tag=1\r\nTo: <sip:7@192.0.2.10>;tag=as1\r\nCall-ID: 42\r\n\
            CSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n";
        let pbx: SocketAddr = "192.0.2.10:5060".parse().unwrap();
        let (mut forged, mut rewrite) = (Vec::new(), Vec::new());
        let mut run = |peer: &str, hook: Hook| {
            let pkt = packet::build_udp_v4(pbx, peer.parse().unwrap(), answer);
            let view = packet::parse(&pkt).unwrap();
            let qp = QueuedPacket { id: 1, hook, payload: &pkt, truncated: false };
            let done =
                shield_rewrite(Some(&shield), &engine, &view, &qp, &mut forged, &mut rewrite);
            (done, rewrite.clone())
        };
        let (done, pkt) = run("203.0.113.9:5060", Hook::LocalOut);
        assert!(done);
        let v = packet::parse(&pkt).unwrap();
        assert!(v.payload.starts_with(b"SIP/2.0 401 Unauthorized\r\n"));
        assert_eq!((v.src, v.dst.to_string().as_str()), (pbx, "203.0.113.9:5060"));
        // A trusted peer keeps its 404; so does this host's own address.
        assert!(!run("198.51.100.2:5060", Hook::LocalOut).0);
        lock(&engine).set_local_addresses(&["192.0.2.10".parse().unwrap()]);
        assert!(!run("192.0.2.10:5070", Hook::LocalOut).0);
        // Without a shield (observe mode) nothing changes.
        let pkt = packet::build_udp_v4(pbx, "203.0.113.9:5060".parse().unwrap(), answer);
        let view = packet::parse(&pkt).unwrap();
        let qp = QueuedPacket { id: 1, hook: Hook::LocalOut, payload: &pkt, truncated: false };
        assert!(!shield_rewrite(None, &engine, &view, &qp, &mut forged, &mut rewrite));
        assert_eq!(shield_host(Hook::LocalOut, pbx), std::net::IpAddr::from([0u16; 8]));
        assert_eq!(shield_host(Hook::Forward, pbx), pbx.ip());
    }
}
