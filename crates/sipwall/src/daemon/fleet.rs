//! `[fleet]` in the daemon: the fleet adapter (`sipwall-fleet`) wired to the engine and the
//! ban worker. The adapter knows Redis; this module knows the engine.
//!
//! CONTRACTS
//! * Received bans take the path of every other ban: into the engine (under its lock, briefly,
//!   on the fleet reader thread: never on a queue thread) through [`Engine::ban_shared`], then
//!   as `Work::Bans` to the ban worker, which puts them in the kernel set and the store. Their
//!   origin is [`BanOrigin::Fleet`] and their reason names the node that made them.
//! * Local policy wins: a received ban covering a trusted network, an address of this host,
//!   `bans.local_addresses` or a known-good address is refused by the engine and logged.
//! * No loops: the ban worker publishes (through [`publish_hook`]) only the bans it applies
//!   whose origin is not `Fleet`, and only the removals of operator commands (`Work::Apply`):
//!   expiries, lifts by a reload and received unbans are never published.
//! * Judging never waits on Redis: publishing is a `try_send`; the reader thread alone waits
//!   on the network; a full ban-worker channel makes it retry briefly, then leave the ban to
//!   the engine and the next reconcile (as the queue threads do).
//! * At start ([`boot`], before the kernel sets are reconciled and before any queue opens)
//!   the whole fleet state is read into the engine, bounded by `sync_timeout_ms`; an
//!   unreachable Redis is logged and the start goes on (the reader resyncs once connected; after
//!   a later outage it resumes from the stream, see `sipwall-fleet`).
use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ipnet::IpNet;
use sipwall_engine::{Ban, BanAction, BanError, BanOrigin, Engine, Evidence, Timestamp};
use sipwall_fleet::{
    entry, Change, Cursor, Fleet, FleetBan, Incoming, Publisher, Settings, Stats, TlsFiles,
};

use super::ban_worker::Work;
use super::{lock, status::Simulate};
use crate::config::FleetConfig;
use crate::protocol::FleetStatus;
use crate::time::wall_clock;

/// Bans applied per engine lock during a resync of the running daemon.
const RESYNC_SLICE: usize = 512;
/// Largest secret file read (password, HMAC key).
const MAX_SECRET_FILE: u64 = 4096;
/// Shortest HMAC key accepted.
pub const MIN_KEY_LEN: usize = 16;

/// What `status` reads: fixed facts and the adapter's live counters (set once at start).
struct Shown {
    node_id: String,
    redis: String,
    signed: bool,
    stats: Arc<Stats>,
}

static SHOWN: OnceLock<Shown> = OnceLock::new();

/// The fleet part of `sipwall status` (None when `[fleet]` is off).
pub fn status() -> Option<FleetStatus> {
    let s = SHOWN.get()?;
    let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let st = &s.stats;
    let connected = st.connected.load(Ordering::Relaxed);
    Some(FleetStatus {
        node_id: s.node_id.clone(),
        redis: s.redis.clone(),
        connected,
        error: if connected { None } else { st.last_error() },
        last_sync_ms: n(&st.last_sync_ms),
        last_sync_bans: n(&st.last_sync_bans),
        resyncs: n(&st.resyncs),
        lag_ms: n(&st.lag_ms),
        received: n(&st.received),
        published: n(&st.published),
        queued: n(&st.queued),
        dropped: n(&st.dropped),
        refused_local: n(&st.refused_local),
        rejected_signature: n(&st.rejected_signature),
        rejected_width: n(&st.rejected_width),
        rejected_rate: n(&st.rejected_rate),
        rejected_malformed: n(&st.rejected_malformed),
        signed: s.signed,
    })
}

/// Read a secret file of `[fleet]` (`key` written at `line`): 0600 or stricter, at most
/// 4 KiB, trimmed. Errors name the key and the line.
fn read_secret(path: &Path, key: &str, line: usize) -> anyhow::Result<String> {
    let at = if line > 0 { format!("line {line}: fleet.{key}") } else { format!("fleet.{key}") };
    crate::config::read_secret_file(path, &at, MAX_SECRET_FILE)
}

/// This host's name, the default node id (`/proc/sys/kernel/hostname`).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| entry::valid_node_id(h))
        .unwrap_or_else(|| "sipwall".to_string())
}

/// The adapter's settings from `[fleet]`, secret files read and checked.
pub fn settings(cfg: &FleetConfig) -> anyhow::Result<Settings> {
    let password = match &cfg.password_file {
        Some(p) => Some(read_secret(p, "password_file", cfg.lines.password_file)?),
        None => None,
    };
    let hmac_key = match &cfg.hmac_key_file {
        Some(p) => {
            let k = read_secret(p, "hmac_key_file", cfg.lines.hmac_key_file)?;
            let line = cfg.lines.hmac_key_file;
            anyhow::ensure!(
                k.len() >= MIN_KEY_LEN,
                "line {line}: fleet.hmac_key_file: {} holds a key shorter than {MIN_KEY_LEN} \
                 characters",
                p.display()
            );
            Some(k.into_bytes())
        }
        None => None,
    };
    let (ca, cert) = cfg.read_tls_certs()?;
    let client = match (cert, &cfg.tls_key_file) {
        (Some(cert), Some(k)) => {
            let key = read_secret(k, "tls_key_file", cfg.lines.tls_key_file)?;
            Some((cert, key.into_bytes()))
        }
        _ => None,
    };
    Ok(Settings {
        redis_url: cfg.redis_url.clone(),
        password,
        username: cfg.username.clone(),
        node_id: cfg.node_id.clone().unwrap_or_else(hostname),
        key_prefix: cfg.key_prefix.clone(),
        hmac_key,
        max_prefix_v4: cfg.max_prefix_v4,
        max_prefix_v6: cfg.max_prefix_v6,
        max_bans_per_origin_per_minute: cfg.max_bans_per_origin_per_minute,
        outage_queue: cfg.outage_queue,
        stream_max_len: cfg.stream_max_len,
        timeout: Duration::from_millis(cfg.timeout_ms),
        tls: TlsFiles { ca, client },
    })
}

/// The fleet after the first sync, before its threads run.
pub struct Boot {
    settings: Settings,
    stats: Arc<Stats>,
    cursor: Option<Cursor>,
    /// Bans the first sync put into the engine: for the ban worker (kernel set, store).
    pub actions: Vec<BanAction>,
}

/// Start-up: settings, then the first sync straight into the engine (bounded by
/// `sync_timeout_ms`). Unreachable Redis: logged, the start goes on.
pub fn boot(
    cfg: &FleetConfig,
    engine: &mut Engine,
    simulate: &Simulate,
    observe: bool,
) -> anyhow::Result<Boot> {
    let settings = settings(cfg)?;
    let stats = Arc::new(Stats::default());
    let _ = SHOWN.set(Shown {
        node_id: settings.node_id.clone(),
        redis: settings.url_for_log(),
        signed: settings.hmac_key.is_some(),
        stats: stats.clone(),
    });
    let t0 = Instant::now();
    let deadline = Duration::from_millis(cfg.sync_timeout_ms);
    let (cursor, actions) = match sipwall_fleet::first_sync(&settings, &stats, deadline) {
        Ok((bans, cursor)) => {
            let n = bans.len();
            let actions = real(resync(engine, bans, wall_clock(), &stats), simulate, observe);
            log::info!(
                "fleet: node {} joined {} ({}): {n} active fleet ban(s) read, {} applied, in {} ms",
                settings.node_id,
                settings.url_for_log(),
                if settings.hmac_key.is_some() { "signed entries only" } else { "unsigned" },
                actions.iter().filter(|a| matches!(a, BanAction::Add(_))).count(),
                t0.elapsed().as_millis()
            );
            (Some(cursor), actions)
        }
        Err(e) => {
            log::error!(
                "fleet: {e}; starting without the fleet's bans (local protection unchanged); \
                 they are read once Redis answers"
            );
            stats.set_error(Some(e.to_string()));
            (None, Vec::new())
        }
    };
    Ok(Boot { settings, stats, cursor, actions })
}

/// A fleet ban as the engine holds it.
fn to_ban(b: &FleetBan) -> Ban {
    let mut reason = format!("fleet node {}: {}", b.origin, b.reason);
    if !b.evidence.is_empty() {
        reason.push_str(&format!(" [{}]", b.evidence));
    }
    Ban {
        net: b.net,
        since: Timestamp::from_millis(b.since_ms),
        until: Timestamp::from_millis(b.until_ms),
        count: 1,
        rule: b.rule.clone(),
        reason: entry::bounded(&reason),
        evidence: Evidence::default(),
        origin: BanOrigin::Fleet,
    }
}

/// One line of evidence for the fleet (signatures, User-Agent, counters).
fn evidence_summary(e: &Evidence) -> String {
    let mut parts = Vec::new();
    if let Some(m) = &e.method {
        parts.push(m.clone());
    }
    if let Some(ua) = &e.user_agent {
        parts.push(format!("UA {ua:?}"));
    }
    if !e.signatures.is_empty() {
        parts.push(format!("signatures {}", e.signatures.join(",")));
    }
    for (k, v) in e.counters.iter().take(4) {
        parts.push(format!("{k}={v}"));
    }
    entry::bounded(&parts.join("; "))
}

/// Put one received ban into the engine; its action for the ban worker, if any.
fn apply_ban(
    engine: &mut Engine,
    b: &FleetBan,
    now: Timestamp,
    stats: &Stats,
) -> Option<BanAction> {
    match engine.ban_shared(to_ban(b), now) {
        Ok(a) => Some(a),
        Err(e @ BanError::CoversProtected { .. }) => {
            stats.refused_local.fetch_add(1, Ordering::Relaxed);
            log::warn!(
                "fleet: ban of {} from node {} refused here (local policy wins): {e}",
                b.net,
                b.origin
            );
            None
        }
        Err(BanError::AlreadyBanned { .. } | BanError::Ended { .. }) => None,
        Err(e) => {
            log::warn!("fleet: ban of {} from node {} not applied: {e}", b.net, b.origin);
            None
        }
    }
}

/// What a full resync lifts: the received bans the fleet state no longer holds (lifted
/// meanwhile). This node's own bans are never lifted by a resync. Shared by the start-up
/// sync ([`resync`]) and the running reader's sliced resync ([`start`]).
fn stale_received(engine: &Engine, state: &[FleetBan]) -> Vec<IpNet> {
    let nets: HashSet<IpNet> = state.iter().map(|b| b.net).collect();
    engine
        .bans()
        .filter(|b| b.origin == BanOrigin::Fleet && !nets.contains(&b.net))
        .map(|b| b.net)
        .collect()
}

fn log_stale_lifted(n: usize) {
    if n > 0 {
        log::info!("fleet: resync lifted {n} received ban(s) no longer in the fleet state");
    }
}

/// Make the engine's fleet bans equal `bans` in one go (the start-up sync, before any queue
/// opens): [`stale_received`] bans go, the others are applied (or extended).
fn resync(
    engine: &mut Engine,
    bans: Vec<FleetBan>,
    now: Timestamp,
    stats: &Stats,
) -> Vec<BanAction> {
    let gone = stale_received(engine, &bans);
    let mut actions: Vec<BanAction> = gone.into_iter().filter_map(|n| engine.unban(n)).collect();
    log_stale_lifted(actions.len());
    actions.extend(bans.iter().filter_map(|b| apply_ban(engine, b, now, stats)));
    actions
}

/// The actions that reach the kernel and the store: bans of simulated rule families stay in
/// the engine, and in observe mode every received ban does (it is no operator's ban here).
fn real(actions: Vec<BanAction>, simulate: &Simulate, observe: bool) -> Vec<BanAction> {
    let actions = simulate.split(actions).0;
    if observe {
        return actions.into_iter().filter(|a| matches!(a, BanAction::Remove(_))).collect();
    }
    actions
}

/// Hand actions to the ban worker: a few short retries on a full channel, then left to the
/// engine and the next reconcile (the reader thread never blocks for long).
fn hand_over(work: &SyncSender<Work>, mut actions: Vec<BanAction>) {
    if actions.is_empty() {
        return;
    }
    for _ in 0..200 {
        match work.try_send(Work::Bans(actions)) {
            Ok(()) => return,
            Err(TrySendError::Full(Work::Bans(back))) => actions = back,
            Err(_) => return,
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    log::warn!(
        "fleet: the ban worker is busy; {} received change(s) left to the next reconcile",
        actions.len()
    );
}

/// The running fleet threads and their own stop flag (set after the ban worker stopped, so
/// its last bans are still published).
pub struct Link {
    fleet: Fleet,
    stop: Arc<AtomicBool>,
    /// Publishes what the ban worker applied.
    pub publisher: Publisher,
    node_id: String,
    settings: Settings,
}

/// Start the reader and the writer.
pub fn start(
    boot: Boot,
    engine: Arc<Mutex<Engine>>,
    work: SyncSender<Work>,
    simulate: Simulate,
    observe: bool,
) -> anyhow::Result<Link> {
    let Boot { settings, stats, cursor, actions: _ } = boot;
    let stop = Arc::new(AtomicBool::new(false));
    let st = stats.clone();
    let deliver = Box::new(move |incoming: Incoming| {
        let now = wall_clock();
        let actions = {
            if let Incoming::Resync(bans) = incoming {
                // In slices, so a large resync never holds the engine for long: the queue
                // threads judge between two slices.
                let gone = stale_received(&lock(&engine), &bans);
                let mut lifted = 0;
                for slice in gone.chunks(RESYNC_SLICE) {
                    let a: Vec<BanAction> = {
                        let mut e = lock(&engine);
                        slice.iter().filter_map(|n| e.unban(*n)).collect()
                    };
                    lifted += a.len();
                    hand_over(&work, a);
                }
                log_stale_lifted(lifted);
                for slice in bans.chunks(RESYNC_SLICE) {
                    let a: Vec<BanAction> = {
                        let mut e = lock(&engine);
                        slice.iter().filter_map(|b| apply_ban(&mut e, b, now, &st)).collect()
                    };
                    hand_over(&work, real(a, &simulate, observe));
                }
                return;
            }
            let mut e = lock(&engine);
            match incoming {
                Incoming::Change(Change::Ban(b)) => {
                    apply_ban(&mut e, &b, now, &st).into_iter().collect()
                }
                Incoming::Change(Change::Unban { net, origin, .. }) => {
                    let a: Vec<BanAction> = e.unban(net).into_iter().collect();
                    if !a.is_empty() {
                        log::info!("fleet: ban of {net} lifted by an operator on node {origin}");
                    }
                    a
                }
                Incoming::Resync(_) => Vec::new(), // handled above
            }
        };
        hand_over(&work, real(actions, &simulate, observe));
    });
    let fleet = Fleet::start(settings.clone(), stats, cursor, deliver, stop.clone())
        .context("starting the fleet link")?;
    Ok(Link {
        publisher: fleet.publisher(),
        fleet,
        stop,
        node_id: settings.node_id.clone(),
        settings,
    })
}

impl Link {
    /// The ban worker's publishing hook: bans this node made (not received ones) and operator
    /// unbans; bans wider than the fleet's cap are kept local (other nodes would ignore them).
    pub fn hook(&self) -> impl Fn(&[Ban], &[IpNet]) + Send + 'static {
        let (publisher, node, settings) =
            (self.publisher.clone(), self.node_id.clone(), self.settings.clone());
        move |adds: &[Ban], unbans: &[IpNet]| {
            publish_hook(&publisher, &node, &settings, adds, unbans, wall_clock())
        }
    }

    /// Stop both threads, waiting for them until `deadline` (the writer publishes what it
    /// still holds if Redis answers).
    pub fn stop(self, deadline: Instant) {
        self.stop.store(true, Ordering::Relaxed);
        while !self.fleet.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if !self.fleet.is_finished() {
            log::warn!("fleet: threads still busy at the stop deadline; left");
        }
    }
}

/// What the ban worker publishes after applying a batch (see the module docs, "No loops").
pub fn publish_hook(
    publisher: &Publisher,
    node: &str,
    settings: &Settings,
    adds: &[Ban],
    unbans: &[IpNet],
    now: Timestamp,
) {
    for b in adds.iter().filter(|b| b.origin != BanOrigin::Fleet) {
        if !settings.width_ok(&b.net) {
            log::info!("fleet: ban of {} kept local: wider than the fleet's cap", b.net);
            continue;
        }
        publisher.publish(Change::Ban(FleetBan {
            net: b.net,
            since_ms: b.since.as_millis(),
            until_ms: b.until.as_millis(),
            rule: entry::bounded(&b.rule),
            reason: entry::bounded(&b.reason),
            evidence: evidence_summary(&b.evidence),
            origin: node.to_string(),
        }));
    }
    for n in unbans {
        publisher.publish(Change::Unban {
            net: *n,
            at_ms: now.as_millis(),
            origin: node.to_string(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn fleet_ban(net: &str, origin: &str, until_ms: u64) -> FleetBan {
        FleetBan {
            net: net.parse().unwrap(),
            since_ms: 1000,
            until_ms,
            rule: "signature.sipvicious-ua".into(),
            reason: "User-Agent friendly-scanner".into(),
            evidence: "OPTIONS; UA \"friendly-scanner\"".into(),
            origin: origin.into(),
        }
    }

    #[test]
    fn a_resync_makes_received_bans_equal_the_state_and_keeps_own_and_trusted_rules() {
        let policy =
            sipwall_engine::Policy::from_toml_str("[trusted]\nnetworks = [\"198.51.100.0/24\"]\n")
                .unwrap();
        let mut e = Engine::new(policy);
        let now = Timestamp::from_millis(2000);
        let stats = Stats::default();
        // an own (manual) ban, and a received one that the state no longer holds
        e.ban_manual("192.0.2.77/32".parse().unwrap(), Duration::from_secs(60), "x", now).unwrap();
        e.ban_shared(to_ban(&fleet_ban("203.0.113.50/32", "n2", 900_000)), now).unwrap();
        let actions = resync(
            &mut e,
            vec![
                fleet_ban("203.0.113.9/32", "n2", 900_000),
                fleet_ban("198.51.100.0/24", "n2", 900_000),
            ],
            now,
            &stats,
        );
        let nets: Vec<String> = e.bans().map(|b| b.net.to_string()).collect();
        assert!(nets.contains(&"192.0.2.77/32".to_string()), "own ban lifted: {nets:?}");
        assert!(nets.contains(&"203.0.113.9/32".to_string()));
        assert!(!nets.contains(&"203.0.113.50/32".to_string()), "stale received ban kept");
        assert!(!nets.contains(&"198.51.100.0/24".to_string()), "trusted network banned");
        assert_eq!(stats.refused_local.load(Ordering::Relaxed), 1);
        assert!(actions.contains(&BanAction::Remove("203.0.113.50/32".parse().unwrap())));
        let b = e.ban_for("203.0.113.9".parse().unwrap(), now).unwrap();
        assert_eq!(b.origin, BanOrigin::Fleet);
        assert!(b.reason.starts_with("fleet node n2: User-Agent friendly-scanner"), "{}", b.reason);
    }

    #[test]
    fn the_tls_client_key_must_be_private_and_is_handed_over_with_its_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        std::fs::write(dir.path().join("c.pem"), pem).unwrap();
        let key = dir.path().join("c.key");
        std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n")
            .unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let text = format!(
            "[fleet]\nredis_url = \"rediss://192.0.2.1:6380\"\ntls_cert_file = \"{}\"\n\
             tls_key_file = \"{}\"\n",
            dir.path().join("c.pem").display(),
            key.display()
        );
        let cfg = crate::config::parse_fleet(&text).unwrap().unwrap();
        let e = format!("{:#}", settings(&cfg).unwrap_err());
        assert!(e.contains("line 4: fleet.tls_key_file") && e.contains("0600"), "{e}");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let s = settings(&cfg).unwrap();
        let (cert, k) = s.tls.client.unwrap();
        assert_eq!(cert, pem.as_bytes());
        assert!(String::from_utf8(k).unwrap().starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_eq!(s.tls.ca, None);
    }

    #[test]
    fn only_own_bans_and_operator_unbans_are_published() {
        let (publisher, rx) = Publisher::channel(16, Arc::new(Stats::default()));
        let settings = Settings {
            redis_url: "redis://192.0.2.1".into(),
            password: None,
            username: None,
            node_id: "n1".into(),
            key_prefix: "sipwall".into(),
            hmac_key: None,
            max_prefix_v4: 16,
            max_prefix_v6: 48,
            max_bans_per_origin_per_minute: 10,
            outage_queue: 10,
            stream_max_len: 1000,
            timeout: Duration::from_secs(1),
            tls: TlsFiles::default(),
        };
        let now = Timestamp::from_millis(5000);
        let own =
            Ban { origin: BanOrigin::Detection, ..to_ban(&fleet_ban("203.0.113.9/32", "x", 9000)) };
        let received = to_ban(&fleet_ban("203.0.113.10/32", "n2", 9000));
        let wide = Ban { net: "203.0.0.0/15".parse().unwrap(), ..own.clone() };
        publish_hook(
            &publisher,
            "n1",
            &settings,
            &[own, received, wide],
            &["192.0.2.5/32".parse().unwrap()],
            now,
        );
        let sent: Vec<Change> = rx.try_iter().collect();
        assert_eq!(sent.len(), 2, "{sent:?}");
        assert!(
            matches!(&sent[0], Change::Ban(b) if b.net.to_string() == "203.0.113.9/32" && b.origin == "n1")
        );
        assert!(matches!(&sent[1], Change::Unban { at_ms: 5000, .. }));
    }
}
