//! Prometheus metrics (OpenMetrics text, `prometheus-client`), served at `/metrics` by
//! [`crate::api`]. Every metric name is a constant here; the namespace test scrapes the real
//! daemon and finds each of them.
//!
//! CONTRACT (what is counted where, and what it costs the packet path):
//! * Nothing here is touched by the queue threads. Per-queue packets come from the counters
//!   they already publish with relaxed atomics (`daemon::status::Counters`), the kernel's
//!   per-queue drops from `/proc/net/netfilter/nfnetlink_queue`; bans and tracked sources
//!   from ONE short lock of the engine per scrape (the same look `status` takes).
//! * Decisions by verdict and rule, and signature hits, are counted by the ban worker from
//!   the decision records it stores: the engine does not expose per-rule counters, so these
//!   count RECORDED decisions (`[enforce] record_decisions`, on by default), not every packet.
//!   Every built-in signature has a series from the start (zero until it matches), so a rule
//!   that never matches is visible.
//! * Bans added (by rule and origin) and the two latencies of the ban worker (decision batch
//!   to kernel set, and to store commit) are written by the ban worker alone into [`shared`];
//!   the scraper only reads them (the histogram's own short lock: worker and scraper only).
//! * The packet verdicts per queue: `accept` = judged - dropped - would-drop; `would_drop` are
//!   packets a simulated rule would have dropped (observe mode). The kernel does not count
//!   packets that bypass a full fail-open queue, so there is no bypass series.
//! * The trusted fast path's packets (never queued, so never counted above) come from the
//!   kernel's own rule counters (`FastPath::packets`: it starts `iptables`/`nft`, at most
//!   once a second, on the scraper's blocking thread).
use std::collections::BTreeMap;
use std::sync::OnceLock;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// Packets judged, by queue and verdict (`accept`, `drop`, `would_drop`). Counter.
pub const PACKETS: &str = "sipwall_packets";
/// Recorded decisions by verdict and rule. Counter.
pub const DECISIONS: &str = "sipwall_decisions";
/// Recorded decisions of each built-in signature (zero series for those never matched). Counter.
pub const SIGNATURE_HITS: &str = "sipwall_signature_hits";
/// Active bans by rule and origin. Gauge.
pub const BANS_ACTIVE: &str = "sipwall_bans_active";
/// Bans put into the kernel set and store, by rule and origin. Counter.
pub const BANS_ADDED: &str = "sipwall_bans_added";
/// Seconds from a ban batch reaching the ban worker to the kernel set holding it. Histogram.
pub const BAN_KERNEL_SECONDS: &str = "sipwall_ban_kernel_set_seconds";
/// Seconds from a ban batch reaching the ban worker to its store commit. Histogram.
pub const BAN_STORE_SECONDS: &str = "sipwall_ban_store_commit_seconds";
/// Packets the kernel dropped because the queue was full (fail closed), by queue. Counter.
pub const QUEUE_KERNEL_DROPS: &str = "sipwall_queue_kernel_drops";
/// Packets the kernel could not hand to sipwall's socket (buffer full), by queue. Counter.
pub const QUEUE_USER_DROPS: &str = "sipwall_queue_user_drops";
/// Packets waiting in the kernel queue now, by queue. Gauge.
pub const QUEUE_WAITING: &str = "sipwall_queue_waiting";
/// Sources whose behaviour the engine tracks. Gauge.
pub const TRACKED_SOURCES: &str = "sipwall_tracked_sources";
/// Packets the kernel's trusted fast path let through without queueing them (UDP requests
/// from trusted networks; read from the kernel's rule counters, at most once a second).
/// Counter; present while the fast path is on.
pub const FAST_PATH_PACKETS: &str = "sipwall_fast_path_packets";
/// Build information (version). Info.
pub const BUILD: &str = "sipwall_build";

/// Every metric name, for the scrape tests. A labelled family appears in a scrape with its
/// first series: [`DECISIONS`] with the first recorded decision, [`BANS_ADDED`] with the
/// first ban, [`BANS_ACTIVE`] while a ban is active, the queue families once the kernel
/// reports the queue (the namespace test includes this file).
#[cfg_attr(not(test), allow(dead_code))]
pub const ALL: &[&str] = &[
    PACKETS,
    DECISIONS,
    SIGNATURE_HITS,
    BANS_ACTIVE,
    BANS_ADDED,
    BAN_KERNEL_SECONDS,
    BAN_STORE_SECONDS,
    QUEUE_KERNEL_DROPS,
    QUEUE_USER_DROPS,
    QUEUE_WAITING,
    TRACKED_SOURCES,
    FAST_PATH_PACKETS,
    BUILD,
];

type Labels = Vec<(String, String)>;

/// The metrics the ban worker writes and the scraper reads.
#[derive(Debug)]
pub struct Shared {
    decisions: Family<Labels, Counter>,
    signature_hits: Family<Labels, Counter>,
    bans_added: Family<Labels, Counter>,
    kernel_seconds: Histogram,
    store_seconds: Histogram,
}

/// The process's one [`Shared`].
pub fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| Shared {
        decisions: Family::default(),
        signature_hits: Family::default(),
        bans_added: Family::default(),
        // 50 us .. ~1.6 s: the kernel set takes ~0.1 ms, a store commit ms to tens of ms.
        kernel_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
        store_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
    })
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

impl Shared {
    /// A recorded decision (ban worker).
    pub fn decision(&self, verdict: &str, rule: &str) {
        self.decisions.get_or_create(&labels(&[("verdict", verdict), ("rule", rule)])).inc();
        if rule.starts_with("signature.") {
            self.signature_hits.get_or_create(&labels(&[("rule", rule)])).inc();
        }
    }
    /// A ban put into the kernel set (ban worker).
    pub fn ban_added(&self, rule: &str, origin: &str) {
        self.bans_added.get_or_create(&labels(&[("rule", rule), ("origin", origin)])).inc();
    }
    /// The latency of a batch to the kernel set (ban worker).
    pub fn kernel_set_in(&self, d: std::time::Duration) {
        self.kernel_seconds.observe(d.as_secs_f64());
    }
    /// The latency of a batch to its store commit (ban worker).
    pub fn store_commit_in(&self, d: std::time::Duration) {
        self.store_seconds.observe(d.as_secs_f64());
    }
}

/// What a scrape reads besides [`shared`]: one snapshot of the daemon.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Per queue: number, judged, dropped, would-drop, and the kernel's waiting, dropped and
    /// user-dropped (absent when the kernel does not say).
    pub queues: Vec<QueueSample>,
    /// Active bans by (rule, origin).
    pub bans: BTreeMap<(String, String), u64>,
    /// Tracked sources.
    pub tracked_sources: u64,
    /// Packets on the trusted fast path (None: off, or the kernel's counters unreadable).
    pub fast_path_packets: Option<u64>,
}

/// One queue's numbers.
#[derive(Debug, Clone, Default)]
pub struct QueueSample {
    /// Queue number.
    pub num: u16,
    /// Packets judged.
    pub packets: u64,
    /// Dropped by a verdict.
    pub dropped: u64,
    /// Would have been dropped (simulated).
    pub would_drop: u64,
    /// Kernel: waiting, dropped (queue full), user dropped (socket buffer full).
    pub kernel: Option<(u64, u64, u64)>,
}

/// The OpenMetrics text of `snap` and [`shared`].
pub fn render(snap: &Snapshot) -> String {
    let mut reg = Registry::default();
    let s = shared();
    let packets = Family::<Labels, Counter>::default();
    let kdrops = Family::<Labels, Counter>::default();
    let udrops = Family::<Labels, Counter>::default();
    let waiting = Family::<Labels, Gauge>::default();
    for q in &snap.queues {
        let n = q.num.to_string();
        let accept = q.packets.saturating_sub(q.dropped).saturating_sub(q.would_drop);
        for (verdict, v) in [("accept", accept), ("drop", q.dropped), ("would_drop", q.would_drop)]
        {
            packets.get_or_create(&labels(&[("queue", &n), ("verdict", verdict)])).inc_by(v);
        }
        if let Some((w, d, u)) = q.kernel {
            let l = labels(&[("queue", &n)]);
            waiting.get_or_create(&l).set(i64::try_from(w).unwrap_or(i64::MAX));
            kdrops.get_or_create(&l).inc_by(d);
            udrops.get_or_create(&l).inc_by(u);
        }
    }
    for sig in sipwall_engine::BUILTIN {
        // zero series: a signature that never matched shows as 0
        let _ = s.signature_hits.get_or_create(&labels(&[("rule", sig.rule)]));
    }
    let active = Family::<Labels, Gauge>::default();
    for ((rule, origin), n) in &snap.bans {
        active
            .get_or_create(&labels(&[("rule", rule), ("origin", origin)]))
            .set(i64::try_from(*n).unwrap_or(i64::MAX));
    }
    let tracked = Gauge::<i64>::default();
    tracked.set(i64::try_from(snap.tracked_sources).unwrap_or(i64::MAX));
    // Counters get `_total` appended by the encoder; the names here are the families'.
    reg.register(PACKETS, "Packets judged, by queue and verdict", packets);
    reg.register(DECISIONS, "Recorded decisions by verdict and rule", s.decisions.clone());
    reg.register(
        SIGNATURE_HITS,
        "Recorded decisions of each built-in signature",
        s.signature_hits.clone(),
    );
    reg.register(BANS_ACTIVE, "Active bans by rule and origin", active);
    reg.register(
        BANS_ADDED,
        "Bans put into the kernel set, by rule and origin",
        s.bans_added.clone(),
    );
    reg.register(
        BAN_KERNEL_SECONDS,
        "Seconds from a ban batch reaching the ban worker to the kernel set holding it",
        s.kernel_seconds.clone(),
    );
    reg.register(
        BAN_STORE_SECONDS,
        "Seconds from a ban batch reaching the ban worker to its store commit",
        s.store_seconds.clone(),
    );
    reg.register(QUEUE_KERNEL_DROPS, "Packets the kernel dropped: queue full", kdrops);
    reg.register(QUEUE_USER_DROPS, "Packets the kernel dropped: socket buffer full", udrops);
    reg.register(QUEUE_WAITING, "Packets waiting in the kernel queue", waiting);
    reg.register(TRACKED_SOURCES, "Sources whose behaviour the engine tracks", tracked);
    if let Some(n) = snap.fast_path_packets {
        let c = Counter::<u64>::default();
        c.inc_by(n);
        reg.register(
            FAST_PATH_PACKETS,
            "Packets the kernel's trusted fast path let through without queueing them",
            c,
        );
    }
    reg.register(
        BUILD,
        "Build information",
        Info::new(vec![("version".to_string(), env!("CARGO_PKG_VERSION").to_string())]),
    );
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &reg);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_exposed_with_zero_series_for_unmatched_signatures() {
        let snap = Snapshot {
            queues: vec![QueueSample {
                num: 0,
                packets: 10,
                dropped: 3,
                would_drop: 1,
                kernel: Some((2, 5, 7)),
            }],
            bans: [(("manual".to_string(), "manual".to_string()), 2)].into_iter().collect(),
            tracked_sources: 4,
            fast_path_packets: Some(48_213),
        };
        // Families of labelled counters appear with their first series (the decision and
        // ban families), except the signature hits, which have a zero series from the start.
        shared().decision("drop", "signature.test-only");
        shared().ban_added("manual", "manual");
        let text = render(&snap);
        for name in ALL {
            assert!(text.contains(&format!("# TYPE {name} ")), "{name} missing:\n{text}");
        }
        assert!(text.contains("sipwall_packets_total{queue=\"0\",verdict=\"accept\"} 6"), "{text}");
        assert!(text.contains("sipwall_packets_total{queue=\"0\",verdict=\"drop\"} 3"));
        assert!(text.contains("sipwall_queue_kernel_drops_total{queue=\"0\"} 5"));
        assert!(text.contains("sipwall_bans_active{rule=\"manual\",origin=\"manual\"} 2"));
        assert!(text.contains("sipwall_tracked_sources 4"));
        assert!(text.contains("sipwall_fast_path_packets_total 48213"), "{text}");
        // fast path off: no series
        let off = render(&Snapshot { fast_path_packets: None, ..snap.clone() });
        assert!(!off.contains(FAST_PATH_PACKETS), "{off}");
        let sig = sipwall_engine::BUILTIN[0].rule;
        assert!(text.contains(&format!("sipwall_signature_hits_total{{rule=\"{sig}\"}}")));
        assert!(text.trim_end().ends_with("# EOF"));
    }
}
