//! `sipwall run`: the inline daemon.
//!
//! Start-up order (each step only after the previous one succeeded):
//! 1. config: the engine's policy and `[enforce]` (see [`crate::config`]), checked up front;
//! 2. the store (`STATE_DIR/sipwall.db`), and the engine with every unexpired stored ban and
//!    the stored offence history (so repeat offenders keep escalating across restarts). A
//!    store that cannot be opened (corrupt file, read-only or missing state directory) does
//!    NOT stop the start: fail open is the promise, and a host without sipwall is unprotected.
//!    The daemon protects with the kernel rules and an in-memory store instead, loudly: an
//!    error at start and every [`STORE_NAG_EVERY`], `store: unavailable (in memory)` in
//!    `sipwall bans`, every ban listed as not durable (lost on restart). The unreadable file
//!    is left exactly as it is, for forensics ([`open_store_or_memory`]). The
//!    control socket (`[enforce] control_socket`, mode 0600) is bound here, with every
//!    capability still held ([`control_server`]);
//! 3. the `inet` table with its ban sets (leftovers of a crashed run are removed first), and
//!    every restored ban put into the kernel sets — BEFORE any packet is queued;
//! 4. the queue rules (nft `queue` if the kernel has it, else iptables NFQUEUE; logged), and
//!    one bound NFQUEUE per queue number;
//! 5. capabilities reduced to CAP_NET_ADMIN ([`privs`]); then the threads: one per queue, one
//!    ban worker owning the store and ban sets ([`ban_worker`]), one serving the control socket.
//!
//! Signals: SIGHUP re-reads the config and replaces the engine's policy (bans and behaviour
//! state kept); SIGTERM/SIGINT stop the queues, flush pending bans, remove every rule and exit
//! 0; the control socket file is removed on every exit path. Every error path after step 3
//! removes the rules too (drop guard); `sipwall run --cleanup` removes leftovers by hand (rules,
//! table and a stale control socket). Packets are accepted by the kernel while no queue is bound
//! (fail open, `--queue-bypass`) unless `fail_closed`.
//!
//! Shape: [`main`] = [`Daemon::start`] (the steps above; returns the running daemon),
//! [`Daemon::supervise`] (the loop: SIGHUP reload, ban expiry, history pruning, until the
//! one [`Shutdown`] is requested by a signal or a failed thread) and [`Daemon::stop`] (join
//! the threads in order, flush the ban worker, remove the rules).
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use sipwall_engine::{Engine, Timestamp};
use sipwall_netfilter::{BanSet, Firewall, Queue, QueueConfig, QueueError};

pub mod ban_worker;
pub mod control_server;
pub mod privs;
pub mod queue_thread;
pub mod status;
pub mod tcp;

use crate::config::{self, Config, EnforceConfig};
use crate::time::wall_clock;
use ban_worker::{BanStore, Work, WorkerStats};
use queue_thread::{DirectionRule, InlineStats, QueueSettings};

/// Arguments of `sipwall run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Policy file (TOML): the engine's policy plus an `[enforce]` table.
    #[arg(long, short)]
    pub config: PathBuf,
    /// State directory (overrides `enforce.state_dir`).
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Remove sipwall's rules and table left by an earlier run, then exit.
    #[arg(long)]
    pub cleanup: bool,
    /// Control socket (overrides `enforce.control_socket`).
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// Keep all capabilities (for debugging).
    #[arg(long, hide = true)]
    pub keep_caps: bool,
}

/// How often the store forgets ban history older than `bans.forget_after_secs`.
const PRUNE_HISTORY_EVERY: Duration = Duration::from_secs(3600);
/// How often the supervising loop looks at its flags.
const SUPERVISE_TICK: Duration = Duration::from_millis(50);
/// How often a daemon running without its store says so again in the log.
const STORE_NAG_EVERY: Duration = Duration::from_secs(600);
/// Room in the channel to the ban worker.
const WORK_QUEUE: usize = 65_536;

/// The daemon's one shutdown signal: set by SIGTERM/SIGINT, or by a thread that failed (then
/// [`Shutdown::failed`] says so and the exit code is 1). Every thread polls the same flag.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    requested: Arc<AtomicBool>,
    failed: Arc<AtomicBool>,
}

impl Shutdown {
    /// A shutdown signal set by SIGTERM and SIGINT.
    pub fn on_signals() -> anyhow::Result<Shutdown> {
        let s = Shutdown::default();
        for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            signal_hook::flag::register(sig, s.requested.clone())
                .context("installing signal handler")?;
        }
        Ok(s)
    }
    /// Ask every thread to stop.
    pub fn request(&self) {
        self.requested.store(true, Ordering::Relaxed);
    }
    /// Stop because something failed.
    pub fn fail(&self) {
        self.failed.store(true, Ordering::Relaxed);
        self.request();
    }
    /// True once a stop was asked for.
    pub fn requested(&self) -> bool {
        self.requested.load(Ordering::Relaxed)
    }
    /// True when a thread failed.
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }
    /// The flag itself, for threads that poll it.
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.requested.clone()
    }
}

/// Entry point of `sipwall run`.
pub fn main(args: RunArgs) -> anyhow::Result<ExitCode> {
    let config = config::load(&args.config)?;
    for (file, load) in &config.blocklists {
        log::info!("block list {}: {load:?}", file.display());
    }
    if args.cleanup {
        let ruleset = config.enforce.ruleset(&config.policy.ports_to_guard())?;
        sipwall_netfilter::remove_all(&ruleset.table).context("removing leftover rules")?;
        log::info!("removed sipwall rules and table inet {}", ruleset.table);
        // A killed daemon's socket file; a live daemon's is kept (and said so).
        let socket = args.socket.clone().unwrap_or_else(|| config.enforce.control_socket.clone());
        control_server::remove_stale(&socket).context("--cleanup")?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut daemon = Daemon::start(&args, config)?;
    daemon.supervise();
    daemon.stop()
}

/// A running daemon: its threads, the channel to the ban worker, and the installed rules.
pub struct Daemon {
    enforce: EnforceConfig,
    engine: Arc<Mutex<Engine>>,
    work: mpsc::SyncSender<Work>,
    shutdown: Shutdown,
    reload: Arc<AtomicBool>,
    queues: Vec<QueueHandle>,
    control: JoinHandle<()>,
    worker: JoinHandle<WorkerStats>,
    firewall: Firewall,
    /// Why the daemon runs on an in-memory store (None: the store on disk is in use).
    store_unavailable: Option<String>,
    /// The config reloader shared with the control socket (`sipwall reload`).
    reloader: Arc<status::Reloader>,
    /// The HTTP API's thread (`[api] enabled`).
    api: Option<JoinHandle<()>>,
}

/// Open `STATE_DIR/sipwall.db`, creating the directory if needed; when that fails, an
/// in-memory store and the reason (logged as an error here). The failing file is never
/// touched: no repair, no rename, no new file beside it.
pub fn open_store_or_memory(
    state_dir: &std::path::Path,
) -> anyhow::Result<(sipwall_store::Store, Option<String>)> {
    let db = state_dir.join(config::STORE_FILE);
    // 0700: the store holds callers' User-Agents and Call-IDs (systemd's StateDirectory does
    // the same; this covers runs outside systemd).
    let opened =
        std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
            .create(state_dir)
            .map_err(|e| format!("creating state directory {}: {e}", state_dir.display()))
            // The store's error already names the file: no second "opening the store X" around it.
            .and_then(|()| sipwall_store::Store::open(&db).map_err(|e| e.to_string()));
    match opened {
        Ok(store) => Ok((store, None)),
        Err(why) => {
            log::error!(
                "STORE UNAVAILABLE: {why}. Protecting anyway with the kernel rules and an \
                 in-memory store: bans are NOT durable (lost on restart) and no stored ban or \
                 offence history is restored; {} is left untouched for inspection. Fix or move \
                 it and restart sipwall.",
                db.display()
            );
            let store = sipwall_store::Store::open_in_memory()
                .context("opening an in-memory store instead")?;
            Ok((store, Some(why)))
        }
    }
}

impl Daemon {
    /// Start-up steps 1-5 of the module docs; on error, what was installed is removed again.
    pub fn start(args: &RunArgs, config: Config) -> anyhow::Result<Daemon> {
        let Config { policy, enforce, blocklists: _, api } = config;
        let ruleset = enforce.ruleset(&policy.ports_to_guard())?;
        let state_dir = args.state.clone().unwrap_or_else(|| enforce.state_dir.clone());
        let db = state_dir.join(config::STORE_FILE);
        let (mut store, store_unavailable) = open_store_or_memory(&state_dir)?;

        // Signals first, so a SIGTERM during start-up still ends in a clean removal.
        let shutdown = Shutdown::on_signals()?;
        let reload = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGHUP, reload.clone())
            .context("installing SIGHUP handler")?;

        let now = wall_clock();
        let blocklist: Vec<ipnet::IpNet> = policy.blocklist.iter().copied().collect();
        let mut engine = Engine::new(policy);
        let restored = restore_state(&mut engine, &mut store, now)?;
        let socket_path = args.socket.clone().unwrap_or_else(|| enforce.control_socket.clone());
        // Bound before capabilities are dropped; removed when dropped (every return below).
        let control_sock = control_server::ControlSocket::bind(&socket_path)?;
        // The HTTP API's token and listener (`[api]`), likewise bound before anything is
        // installed: a bad token file stops the start with its key and line.
        let api_bound = if api.enabled { Some(crate::api::bind(&api)?) } else { None };

        let mut firewall =
            Firewall::install(ruleset.clone()).context("installing the nft table")?;
        let mut banset = BanSet::new(&ruleset.table).with_netlink();
        banset
            .apply(&ban_worker::add_ops(&restored, now))
            .context("restoring stored bans into the kernel sets")?;
        log::info!("restored {} ban(s) from {} into the kernel sets", restored.len(), db.display());
        banset.replace_blocklist(&blocklist).context("loading the block list into the kernel")?;
        log::info!("block list: {} network(s) in the kernel sets", blocklist.len());
        let backend =
            firewall.enable_queue(enforce.backend()).context("installing the queue rules")?;
        log::info!(
            "queue backend: {backend}; queues {}..={}; mode {:?}; fail {}",
            ruleset.queue_first,
            ruleset.queue_first + ruleset.queue_count - 1,
            enforce.mode,
            if ruleset.fail_closed { "closed" } else { "open" }
        );
        let facts = status::Facts::new(&enforce, &ruleset, backend);
        if facts.observe {
            log::warn!(
                "OBSERVE MODE: every decision is made and recorded, but no packet is dropped \
                 and no ban reaches the kernel or the store"
            );
        } else if !facts.simulate.is_empty() {
            log::warn!(
                "simulated rule families (decided and recorded, not enforced): {}",
                facts.simulate.families().join(", ")
            );
        }
        let counters = Arc::new(status::Counters::new(ruleset.queue_first, ruleset.queue_count));
        let queues = open_queues(&ruleset)?;
        // Queues bound, bans restored: systemd (Type=notify) may start what depends on us.
        let _ = crate::sd_notify::ready();
        if !args.keep_caps {
            privs::keep_only_net_admin().context("dropping capabilities")?;
        }
        log::info!("capabilities kept: {}", privs::effective());

        let engine = Arc::new(Mutex::new(engine));
        let (work, rx) = mpsc::sync_channel::<Work>(WORK_QUEUE);
        let durable = if store_unavailable.is_some() {
            ban_worker::DurableBans::disabled()
        } else {
            ban_worker::DurableBans::new()
        };
        durable.mark(&restored); // they came from the store
        let worker_durable = durable.clone();
        let worker = std::thread::Builder::new()
            .name("sipwall-bans".into())
            .spawn(move || {
                ban_worker::run(rx, &mut store, &mut banset, &wall_clock, &worker_durable)
            })
            .context("starting the ban worker")?;
        let settings = QueueSettings {
            direction: DirectionRule::of(&enforce, &ruleset),
            record_decisions: enforce.record_decisions,
            max_tcp_flows: enforce.max_tcp_flows,
            counters: counters.clone(),
            simulate: facts.simulate.clone(),
        };
        let reloader = Arc::new(status::Reloader::new(args.config.clone(), enforce.clone()));
        let mut threads = Vec::new();
        for q in queues {
            threads.push(spawn_queue(q, &engine, &work, &settings, &shutdown)?);
        }
        let api_ready = Arc::new(AtomicBool::new(false));
        let api_thread = match api_bound {
            None => None,
            Some(bound) => {
                let ctx = control_server::Ctx {
                    engine: engine.clone(),
                    work: work.clone(),
                    clock: wall_clock,
                    durable: durable.clone(),
                    store_unavailable: store_unavailable.clone(),
                    facts: facts.clone(),
                    counters: counters.clone(),
                    rates: status::Rates::default(),
                    reloader: Some(reloader.clone()),
                };
                let ready = api_ready.clone();
                Some(crate::api::spawn(bound, ctx, db.clone(), ready, shutdown.flag())?)
            }
        };
        let control = {
            let ctx = control_server::Ctx {
                engine: engine.clone(),
                work: work.clone(),
                clock: wall_clock,
                durable,
                store_unavailable: store_unavailable.clone(),
                facts,
                counters,
                rates: status::Rates::default(),
                reloader: Some(reloader.clone()),
            };
            let stop = shutdown.flag();
            std::thread::Builder::new()
                .name("sipwall-control".into())
                .spawn(move || control_server::serve(control_sock, ctx, stop))
                .context("starting the control socket thread")?
        };
        log::info!("sipwall running: {} queue thread(s)", threads.len());
        // Queues bound and bans restored: `/readyz` answers 200 from now on.
        api_ready.store(true, Ordering::Relaxed);
        Ok(Daemon {
            api: api_thread,
            enforce,
            engine,
            work,
            shutdown,
            reload,
            queues: threads,
            control,
            worker,
            firewall,
            store_unavailable,
            reloader,
        })
    }

    /// Until shutdown: re-read the config on SIGHUP, expire bans, prune old ban history.
    pub fn supervise(&mut self) {
        let expire_every = Duration::from_millis(self.enforce.expire_interval_ms.max(100));
        let mut last_expire = Instant::now();
        let mut last_prune = Instant::now();
        let mut last_nag = Instant::now();
        while !self.shutdown.requested() {
            std::thread::sleep(SUPERVISE_TICK);
            if let Some(why) = &self.store_unavailable {
                if last_nag.elapsed() >= STORE_NAG_EVERY {
                    last_nag = Instant::now();
                    log::error!("STORE UNAVAILABLE (running on an in-memory store since start; bans are not durable): {why}");
                }
            }
            if self.reload.swap(false, Ordering::Relaxed) {
                self.reload_config();
            }
            if last_expire.elapsed() >= expire_every {
                last_expire = Instant::now();
                let removed = lock(&self.engine).expire(wall_clock());
                if !removed.is_empty() {
                    let _ = self.work.send(Work::Bans(removed));
                }
            }
            if last_prune.elapsed() >= PRUNE_HISTORY_EVERY {
                last_prune = Instant::now();
                let forget =
                    Duration::from_millis(lock(&self.engine).policy().bans.forget_after_ms);
                let before = Timestamp(wall_clock().0.saturating_sub(forget));
                let _ = self.work.send(Work::PruneHistory(before));
            }
        }
        if self.shutdown.failed() {
            log::error!("a queue thread failed; shutting down");
        }
    }

    /// SIGHUP: replace the engine's policy (bans and behaviour state kept), or keep the
    /// current one when the file does not load (the reloader `sipwall reload` shares).
    fn reload_config(&mut self) {
        self.reloader.reload(&self.engine, &self.work, "SIGHUP");
    }

    /// Stop in order: queue threads, then the control thread (a command being served still
    /// gets its ban applied), then the ban worker (after flushing), then the rules.
    pub fn stop(self) -> anyhow::Result<ExitCode> {
        log::info!("stopping");
        let _ = crate::sd_notify::stopping();
        self.shutdown.request();
        let mut failed = self.shutdown.failed();
        for (num, h) in self.queues {
            match h.join() {
                Ok(Ok(s)) => log::info!(
                    "queue {num}: {} packets, {} dropped, {} would drop (simulated), {} unparsed",
                    s.packets,
                    s.dropped,
                    s.would_drop,
                    s.unparsed
                ),
                Ok(Err(e)) => {
                    failed = true;
                    log::error!("queue {num}: {e}");
                }
                Err(_) => {
                    failed = true;
                    log::error!("queue {num}: thread panicked");
                }
            }
        }
        if self.control.join().is_err() {
            log::error!("control socket thread panicked");
        }
        if self.api.is_some_and(|h| h.join().is_err()) {
            log::error!("HTTP API thread panicked");
        }
        let _ = self.work.send(Work::Stop);
        drop(self.work);
        if let Ok(s) = self.worker.join() {
            log::info!(
                "bans: {} stored+active, {} removed, {} decisions stored, {} store errors, {} kernel errors",
                s.bans_active,
                s.bans_removed,
                s.decisions,
                s.store_errors,
                s.kernel_errors
            );
        }
        let mut firewall = self.firewall;
        firewall.remove().context("removing the rules")?;
        log::info!("rules removed; bye");
        Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
    }
}

/// Bind one NFQUEUE per queue number of the ruleset.
fn open_queues(ruleset: &sipwall_netfilter::Ruleset) -> anyhow::Result<Vec<Queue>> {
    let mut queues = Vec::new();
    for i in 0..ruleset.queue_count {
        let mut qc = QueueConfig::new(ruleset.queue_first + i);
        qc.fail_open = !ruleset.fail_closed;
        let q = Queue::open(qc).context("opening NFQUEUE")?;
        log::info!("queue {} bound, netlink receive buffer {} bytes", qc.num, q.rcvbuf_effective());
        queues.push(q);
    }
    Ok(queues)
}

/// A queue thread's handle with its queue number.
type QueueHandle = (u16, JoinHandle<Result<InlineStats, QueueError>>);

/// Start the thread of one queue; a queue error ends it and requests the shutdown as failed.
fn spawn_queue(
    q: Queue,
    engine: &Arc<Mutex<Engine>>,
    work: &mpsc::SyncSender<Work>,
    settings: &QueueSettings,
    shutdown: &Shutdown,
) -> anyhow::Result<QueueHandle> {
    let (e, t, c, s) = (engine.clone(), work.clone(), settings.clone(), shutdown.clone());
    let num = q.config_used().num;
    let h = std::thread::Builder::new()
        .name(format!("sipwall-q{num}"))
        .spawn(move || {
            let r = queue_thread::run_queue(q, e, t, c, s.flag());
            if r.is_err() {
                s.fail();
            }
            r
        })
        .context("starting a queue thread")?;
    Ok((num, h))
}

/// Put the store's unexpired bans and offence history into the engine (repeat offenders keep
/// escalating across restarts). Returns the bans the engine took back.
fn restore_state(
    engine: &mut Engine,
    store: &mut sipwall_store::Store,
    now: Timestamp,
) -> anyhow::Result<Vec<sipwall_engine::Ban>> {
    let stored = BanStore::load_active_bans(store, now).context("loading stored bans")?;
    let restored: Vec<_> =
        stored.into_iter().filter(|b| engine.restore_ban(b.clone(), now)).collect();
    let offences = store.load_offences().context("loading stored offence history")?;
    let kept = offences
        .iter()
        .filter(|o| engine.restore_offence(o.net, o.count, o.last_until, now))
        .count();
    log::info!("restored offence history of {kept} of {} stored network(s)", offences.len());
    Ok(restored)
}

/// The shared engine, also after a panic in another thread while it held the lock: every
/// engine mutation is complete before the lock is released, so the data stays consistent, and
/// deciding on goes on protecting rather than stopping.
pub(crate) fn lock(engine: &Mutex<Engine>) -> std::sync::MutexGuard<'_, Engine> {
    match engine.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A corrupt store file or an unusable state directory gives an in-memory store and the
    /// reason, said once; the corrupt file is left byte for byte as it was.
    #[test]
    fn an_unusable_store_falls_back_to_memory_and_is_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join(config::STORE_FILE);
        let garbage: Vec<u8> = (0..8192u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&db, &garbage).unwrap();
        let (mut store, why) = open_store_or_memory(dir.path()).unwrap();
        let why = why.expect("a corrupt store was opened as if fine");
        assert!(why.contains(&db.display().to_string()), "{why}");
        assert_eq!(why.matches("opening").count(), 1, "the reason repeats itself: {why}");
        // the in-memory store works
        assert!(BanStore::load_active_bans(&mut store, wall_clock()).unwrap().is_empty());
        assert_eq!(std::fs::read(&db).unwrap(), garbage, "the corrupt file was changed");
        let names: Vec<_> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from(config::STORE_FILE)],
            "files added beside it"
        );
        // a state directory that cannot be created (a file is in the way; root ignores modes)
        let blocked = dir.path().join(config::STORE_FILE).join("state");
        let (_, why) = open_store_or_memory(&blocked).unwrap();
        assert!(why.unwrap().contains("creating state directory"));
        // a good directory: the real store, no reason
        let good = dir.path().join("good");
        let (_, why) = open_store_or_memory(&good).unwrap();
        assert_eq!(why, None);
        assert!(good.join(config::STORE_FILE).exists());
    }
}
