//! `sipwall run`: the inline daemon.
//!
//! Start-up order (each step only after the previous one succeeded):
//! 1. config: the engine's policy and `[enforce]` (see [`crate::config`]), checked up front;
//! 2. the store (`STATE_DIR/sipwall.db`), and the engine with the stored learned facts and the
//!    shield with its stored challenge forms ([`learned`]), then every unexpired stored ban and
//!    the stored offence history (so repeat offenders keep escalating across restarts). A
//!    store that cannot be opened (corrupt file, read-only or missing state directory) does
//!    NOT stop the start: fail open is the promise, and a host without sipwall is unprotected.
//!    The daemon protects with the kernel rules and an in-memory store instead, loudly: an
//!    error at start and every [`STORE_NAG_EVERY`], `store: unavailable (in memory)` in
//!    `sipwall bans`, every ban listed as not durable (lost on restart). The unreadable file
//!    is left exactly as it is, for forensics ([`open_store_or_memory`]). The
//!    control socket (`[enforce] control_socket`, mode 0600) is bound here, with every
//!    capability still held ([`control_server`]);
//!    With `[fleet]`, every active fleet ban is then read into the engine ([`fleet::boot`],
//!    bounded by `sync_timeout_ms`; an unreachable Redis is logged, not fatal), so a node
//!    that starts has the fleet's bans in its kernel sets before its queues open;
//! 3. the `inet` table ADOPTED ([`Firewall::install`]: the ban and block-list sets a previous
//!    run kept stay in the kernel, so banned sources are dropped throughout a restart), then
//!    the kernel ban sets reconciled with the engine's active bans ([`BanSet::reconcile`]:
//!    missing ones added, stale ones removed, in one transaction) — BEFORE any ban is applied
//!    and before any packet is queued;
//! 4. the block list starts loading on its own thread ([`blocklist_loader`], in batches, with
//!    progress logged): queues may open while a large list is still loading, since the bans
//!    are already in place. It includes the last good copies of the `[blocklist] urls`
//!    ([`crate::feeds::fetch`]), whose download and merge threads start with the engine
//!    shared and hand every new union to the same loader;
//! 5. the queue rules (nft `queue` if the kernel has it, else iptables NFQUEUE; logged), and
//!    one bound NFQUEUE per queue number;
//! 6. capabilities reduced to CAP_NET_ADMIN ([`privs`]); then the threads: one per queue, one
//!    ban worker owning the store and ban sets ([`ban_worker`], which also reconciles the
//!    kernel sets every `[enforce] reconcile_interval_secs`), one serving the control socket.
//!
//! Signals: SIGHUP re-reads the config, replaces the engine's policy (bans and behaviour state
//! kept) and hands the new block list to the loader thread. SIGTERM/SIGINT stop (below) and
//! exit 0; the control socket file is removed on every exit path.
//!
//! Stop (CONTRACT: the door stays shut, and stop is bounded in time):
//! 1. the queue rules are removed FIRST ([`Firewall::stop_keeping_bans`]): from then on
//!    guarded traffic passes to the services as without sipwall, minus the banned sources,
//!    which the kernel keeps dropping from the ban and block-list sets (each ban until its own
//!    kernel timeout) while no daemon runs. The next start adopts them. A supervisor's SIGKILL
//!    after this step leaves exactly that safe state; a SIGKILL before it (a window of one
//!    `nft`/`iptables` call) leaves queue rules without a consumer: fail open (the default,
//!    `--queue-bypass`) lets the traffic pass, `fail_closed` drops guarded traffic until the
//!    next start, which is what that setting asks for while no daemon runs;
//! 2. the queue threads, the control thread and the ban worker are joined against ONE
//!    deadline ([`STOP_DEADLINE`]); what is still pending then (ban actions not yet handed
//!    over, work items not yet applied) is logged as lost with its count, not waited for;
//!    the block-list loader is not waited for at all (each of its batches is one kernel
//!    transaction, and the next start reads the sets back and writes only the difference);
//! 3. `sipwall run --cleanup` (and a package purge) removes everything, sets included, and a
//!    stale control socket.
//!
//! Every error path after step 3 stops queueing the same way (the [`Firewall`] drop guard).
//! Packets are accepted by the kernel while no queue is bound (fail open, `--queue-bypass`)
//! unless `fail_closed`.
//!
//! Shape: [`main`] = [`Daemon::start`] (the steps above; returns the running daemon),
//! [`Daemon::supervise`] (the loop: SIGHUP reload, ban expiry, history pruning, until the
//! one [`Shutdown`] is requested by a signal or a failed thread) and [`Daemon::stop`].
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::TrySendError;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use sipwall_engine::{Engine, Timestamp};
use sipwall_netfilter::{BanSet, DesiredBan, Firewall, Queue, QueueConfig, QueueError, Ruleset};

pub mod ban_worker;
pub mod control_server;
pub mod fleet;
pub mod learned;
pub mod local_addrs;
pub mod privs;
pub mod queue_thread;
pub mod shield;
pub mod status;
pub mod tcp;
pub mod trust;

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
    /// Remove everything sipwall put in the kernel (rules, table, ban and block-list sets) and
    /// a stale control socket, then exit. For uninstalling: banned sources are let in again.
    #[arg(long, conflicts_with = "stop_queueing")]
    pub cleanup: bool,
    /// Remove only the queue rules a killed run left and keep the ban and block-list sets
    /// (what a clean stop leaves), then exit. For a supervisor after the daemon ended
    /// (systemd `ExecStopPost`): a run killed mid-stop leaves no queue without a consumer.
    #[arg(long)]
    pub stop_queueing: bool,
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
/// How long a stop waits, in all, for the threads to finish their work after the queue rules
/// are gone; what is left then is logged as lost.
pub const STOP_DEADLINE: Duration = Duration::from_secs(3);
/// Block-list element changes per kernel transaction of the loader thread.
const BLOCKLIST_BATCH: usize = 10_000;

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
        log::info!(
            "removed sipwall rules, ban and block-list sets (table inet {}) and empty filter \
             tables the iptables fallback left",
            ruleset.table
        );
        // A killed daemon's socket file; a live daemon's is kept (and said so).
        let socket = args.socket.clone().unwrap_or_else(|| config.enforce.control_socket.clone());
        control_server::remove_stale(&socket).context("--cleanup")?;
        return Ok(ExitCode::SUCCESS);
    }
    if args.stop_queueing {
        // The early drop as the config says: its chains stay with the ban chain.
        let ruleset = config.enforce.ruleset_here(&config.policy.ports_to_guard())?;
        // Adopting the table removes leftover queue rules and rewrites the ban chain in one
        // transaction with the sets kept; stopping then removes the queue chains.
        let mut firewall = Firewall::install(ruleset).context("adopting the nft table")?;
        firewall.stop_keeping_bans().context("removing the queue rules")?;
        log::info!("queue rules removed; ban and block-list sets kept in the kernel");
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
    worker_give_up: Arc<AtomicBool>,
    firewall: Firewall,
    /// Expired-ban removals the worker's full channel did not take yet (bounded).
    expired_pending: Vec<sipwall_engine::BanAction>,
    /// Why the daemon runs on an in-memory store (None: the store on disk is in use).
    store_unavailable: Option<String>,
    /// The config reloader shared with the control socket (`sipwall reload`).
    reloader: Arc<status::Reloader>,
    /// The HTTP API's thread (`[api] enabled`).
    api: Option<JoinHandle<()>>,
    /// Writes the engine's learned facts to the store when they change.
    learned: learned::Persist,
    /// The fleet link (`[fleet]`), stopped after the ban worker so its last bans go out.
    fleet: Option<fleet::Link>,
    /// The early drop's report, shared with status (`[enforce] ingress_drop`).
    ingress: Option<Arc<Mutex<sipwall_netfilter::IngressReport>>>,
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
        let restart_only = config::RestartOnly::of(&config);
        let Config { policy, enforce, blocklists: _, api, feeds, fleet } = config;
        let ruleset = enforce.ruleset_here(&policy.ports_to_guard())?;
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
        log_policy_warnings("", &policy);
        // Run-time trust (`sipwall trust add`) on top of the config's, before any ban is back.
        let trust = Arc::new(trust::RuntimeTrust::load(&store, &policy, &db, &store_unavailable));
        let policy = trust.merged(policy);
        let mut engine = Engine::new(policy);
        // Before the stored bans come back: none of them may cover this host.
        local_addrs::log_lifted(&engine.set_local_addresses(&local_addrs::read_logged()));
        // The shield's challenge forms and the learned facts, before any queue opens, and the
        // facts before the stored bans (none comes back over a learned upstream).
        let shield = (!enforce.observe()).then(|| Arc::new(shield::Shield::new()));
        let (learned_back, facts) = learned::restore(&store, shield.as_deref());
        let taken = learned::restore_into(&mut engine, &facts, now);
        log::info!(
            "learned state restored: {} shield template(s), {taken} of {} stored fact(s); {}",
            learned_back.templates,
            learned_back.facts,
            crate::protocol::LearnSummary::of(&engine.learn_status()).line()
        );
        let restored = restore_state(&mut engine, &mut store, now)?;
        let simulate = status::Simulate::of(&enforce);
        // `[fleet]`: every active fleet ban into the engine before the kernel sets are
        // reconciled and any queue opens (bounded; an unreachable Redis is logged, not fatal).
        let mut fleet_boot = fleet
            .as_ref()
            .map(|f| fleet::boot(f, &mut engine, &simulate, enforce.observe()))
            .transpose()?;
        let socket_path = args.socket.clone().unwrap_or_else(|| enforce.control_socket.clone());
        // Bound before capabilities are dropped; removed when dropped (every return below).
        let control_sock = control_server::ControlSocket::bind(&socket_path)?;
        // The HTTP API's token and listener (`[api]`), likewise bound before anything is
        // installed: a bad token file stops the start with its key and line.
        let api_bound = if api.enabled { Some(crate::api::bind(&api)?) } else { None };

        // The trusted fast path starts with the merged trusted networks and follows them.
        let ruleset = if enforce.trusted_fast_path {
            Ruleset { fast_path: trust.fast_path_networks(&enforce.protected), ..ruleset }
        } else {
            ruleset
        };
        let mut firewall =
            Firewall::install(ruleset.clone()).context("installing the nft table")?;
        let mut banset = BanSet::new(&ruleset.table).with_netlink();
        let reconcile_every = adopt_kernel_sets(
            &mut banset,
            &engine,
            &simulate,
            store_unavailable.is_some(),
            &enforce,
            &format!("{} stored ban(s) from {}", restored.len(), db.display()),
            now,
        )?;
        // `[blocklist] urls`: their last good copies join the first load (allowlist first).
        let fetcher = crate::feeds::fetch::Fetcher::new(&feeds, &state_dir);
        let first = crate::feeds::fetch::first_list(&blocklist, &fetcher, &feeds, &engine);
        let blocklist_tx = blocklist_loader(&ruleset.table, first)?;
        let backend =
            firewall.enable_queue(enforce.backend()).context("installing the queue rules")?;
        log::info!(
            "queue backend: {backend}; queues {}..={}; mode {:?}; fail {}",
            ruleset.queue_first,
            ruleset.queue_first + ruleset.queue_count - 1,
            enforce.mode,
            if ruleset.fail_closed { "closed" } else { "open" }
        );
        let mut facts = status::Facts::new(&enforce, &ruleset, backend);
        let ingress =
            enforce.ingress_drop.then(|| Arc::new(Mutex::new(firewall.ingress().clone())));
        facts.ingress_drop = ingress.clone();
        if enforce.trusted_fast_path {
            trust.attach_fast_path(firewall.fast_path(), enforce.protected.clone());
            facts.fast_path = Some(firewall.fast_path());
            let nets: Vec<String> =
                firewall.fast_path().networks().iter().map(ToString::to_string).collect();
            log::info!(
                "trusted fast path: {} (their UDP requests skip the queue)",
                if nets.is_empty() { "nothing trusted yet".to_string() } else { nets.join(", ") }
            );
        }
        log_enforcement(&facts);
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
        let worker_give_up = Arc::new(AtomicBool::new(false));
        let decisions_in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let fleet_link = match fleet_boot.as_mut() {
            Some(boot) => {
                // The first sync's bans are in the kernel already (reconciled above); the
                // worker stores them like any other.
                let _ = work.try_send(Work::Bans(std::mem::take(&mut boot.actions)));
                let boot = fleet_boot.take().expect("matched Some");
                Some(fleet::start(
                    boot,
                    engine.clone(),
                    work.clone(),
                    simulate.clone(),
                    enforce.observe(),
                )?)
            }
            None => None,
        };
        let worker = spawn_ban_worker(
            rx,
            store,
            banset,
            BanWorkerShare {
                engine: engine.clone(),
                simulate: simulate.clone(),
                durable: worker_durable,
                give_up: worker_give_up.clone(),
                decisions_in_flight: decisions_in_flight.clone(),
                publish: fleet_link.as_ref().map(|l| Box::new(l.hook()) as PublishHook),
            },
            reconcile_every,
        )?;
        let settings = QueueSettings {
            direction: DirectionRule::of(&enforce, &ruleset),
            record_decisions: enforce.record_decisions,
            max_tcp_flows: enforce.max_tcp_flows,
            decisions_in_flight: decisions_in_flight.clone(),
            counters: counters.clone(),
            simulate: facts.simulate.clone(),
            shield,
            cpus: enforce.cpus.iter().map(|c| c.0 as usize).collect(),
        };
        // Fetched block lists merge with the configured one (each reload's) on their own threads.
        let blocklist_tx = crate::feeds::fetch::spawn(
            fetcher,
            feeds,
            blocklist,
            blocklist_tx,
            engine.clone(),
            shutdown.flag(),
        )?;
        let reloader = Arc::new(
            status::Reloader::new(args.config.clone(), restart_only, blocklist_tx.clone())
                .with_trust(trust.clone()),
        );
        let mut threads = Vec::new();
        for q in queues {
            threads.push(spawn_queue(q, &engine, &work, &settings, &shutdown)?);
        }
        // The control socket and the HTTP API serve one model through one `execute`.
        let serving = || control_server::Ctx {
            engine: engine.clone(),
            work: work.clone(),
            clock: wall_clock,
            durable: durable.clone(),
            store_unavailable: store_unavailable.clone(),
            facts: facts.clone(),
            counters: counters.clone(),
            rates: status::Rates::default(),
            reloader: Some(reloader.clone()),
            trust: trust.clone(),
        };
        let api_ready = Arc::new(AtomicBool::new(false));
        let api_thread = match api_bound {
            None => None,
            Some(bound) => Some(crate::api::spawn(
                bound,
                serving(),
                db.clone(),
                api_ready.clone(),
                shutdown.flag(),
            )?),
        };
        let control = {
            let ctx = serving();
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
            worker_give_up,
            firewall,
            expired_pending: Vec::new(),
            store_unavailable,
            reloader,
            learned: learned::Persist::default(),
            fleet: fleet_link,
            ingress,
        })
    }

    /// Until shutdown: re-read the config on SIGHUP, expire bans, prune old ban history.
    pub fn supervise(&mut self) {
        let expire_every = Duration::from_millis(self.enforce.expire_interval_ms.max(100));
        let mut last_expire = Instant::now();
        let mut last_prune = Instant::now();
        let mut last_nag = Instant::now();
        let mut last_ingress = Instant::now();
        let ingress_every = Duration::from_secs(self.enforce.reconcile_interval_secs);
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
            self.learned.tick(&self.engine, &self.work);
            if last_expire.elapsed() >= expire_every {
                last_expire = Instant::now();
                let removed = lock(&self.engine).expire(wall_clock());
                self.hand_over(removed);
            }
            if !ingress_every.is_zero() && last_ingress.elapsed() >= ingress_every {
                last_ingress = Instant::now();
                self.refresh_early_drop();
            }
            if last_prune.elapsed() >= PRUNE_HISTORY_EVERY {
                last_prune = Instant::now();
                let forget =
                    Duration::from_millis(lock(&self.engine).policy().bans.forget_after_ms);
                let before = Timestamp(wall_clock().0.saturating_sub(forget));
                // Skipped when the worker is busy; the next prune takes it.
                let _ = self.work.try_send(Work::PruneHistory(before));
            }
        }
        // What was learned since the last tick reaches the store before the worker stops.
        self.learned.tick(&self.engine, &self.work);
        if self.shutdown.failed() {
            log::error!("a queue thread failed; shutting down");
        }
    }

    /// The early drop follows the devices: a device that came (or came back, on kernels that
    /// drop a device's chains with it) gets its chain, one that went loses it, and status
    /// says what the kernel holds. Runs `nft` only when something changed.
    fn refresh_early_drop(&mut self) {
        let Some(shared) = &self.ingress else { return };
        if let Some(report) = self.firewall.refresh_ingress(self.enforce.ingress_devices_here()) {
            *shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = report;
        }
    }

    /// Hand ban actions of the supervisor (expiries, SIGHUP lifts) to the worker without
    /// waiting: the supervisor must stay responsive to SIGTERM in a storm. Kept (bounded) and
    /// retried at the next tick while the channel is full; past the bound they are dropped:
    /// the kernel ends expired elements by itself and the reconcile removes lifted ones.
    fn hand_over(&mut self, actions: Vec<sipwall_engine::BanAction>) {
        self.expired_pending.extend(actions);
        if self.expired_pending.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.expired_pending);
        if let Err(TrySendError::Full(Work::Bans(mut back))) = self.work.try_send(Work::Bans(batch))
        {
            back.truncate(queue_thread::PENDING_BANS_MAX);
            self.expired_pending = back;
        }
    }

    /// SIGHUP: replace the engine's policy (bans and behaviour state kept), or keep the
    /// current one when the file does not load (the reloader `sipwall reload` shares).
    fn reload_config(&mut self) {
        self.reloader.reload(&self.engine, &self.work, "SIGHUP");
    }

    /// Stop (module docs): queue rules first, then every thread against one deadline.
    pub fn stop(self) -> anyhow::Result<ExitCode> {
        let t0 = Instant::now();
        log::info!("stopping");
        let _ = crate::sd_notify::stopping();
        self.shutdown.request();
        let mut failed = self.shutdown.failed();
        let mut firewall = self.firewall;
        match firewall.stop_keeping_bans() {
            Ok(()) => log::info!(
                "queue rules removed after {} ms; ban and block-list sets kept in the kernel \
                 (`sipwall run --cleanup` removes them)",
                t0.elapsed().as_millis()
            ),
            Err(e) => {
                failed = true;
                log::error!("removing the queue rules: {e}");
            }
        }
        let deadline = t0 + STOP_DEADLINE;
        let (mut ban_overflow, mut lost) = (0u64, 0u64);
        for (num, h) in self.queues {
            match join_by(h, deadline).ok() {
                Some(Ok(Ok(s))) => {
                    ban_overflow += s.ban_overflow;
                    lost += s.bans_lost_at_stop;
                    log::info!(
                        "queue {num}: {} packets, {} dropped, {} would drop (simulated), {} \
                         unparsed",
                        s.packets,
                        s.dropped,
                        s.would_drop,
                        s.unparsed
                    )
                }
                Some(Ok(Err(e))) => {
                    failed = true;
                    log::error!("queue {num}: {e}");
                }
                Some(Err(_)) => {
                    failed = true;
                    log::error!("queue {num}: thread panicked");
                }
                None => log::warn!("queue {num}: thread still busy at the stop deadline; left"),
            }
        }
        match join_by(self.control, deadline) {
            Ok(Err(_)) => log::error!("control socket thread panicked"),
            Err(_) => log::warn!("control socket thread still busy at the stop deadline; left"),
            Ok(Ok(())) => {}
        }
        // The HTTP API, like the control thread: a command being served still gets its ban.
        if let Some(h) = self.api {
            match join_by(h, deadline) {
                Ok(Err(_)) => log::error!("HTTP API thread panicked"),
                Err(_) => log::warn!("HTTP API thread still busy at the stop deadline; left"),
                Ok(Ok(())) => {}
            }
        }
        // Never block on a full channel: try until the deadline, then tell the worker to give
        // up on what is queued.
        while self.work.try_send(Work::Stop).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(self.work);
        let mut worker = Some(self.worker);
        if let Some(h) = worker.take() {
            worker = match join_by(h, deadline) {
                Ok(r) => {
                    report_worker(r.ok(), ban_overflow, lost);
                    None
                }
                Err(h) => Some(h),
            };
        }
        if let Some(h) = worker {
            // Past the deadline: the worker counts what is still queued as lost and returns
            // after the batch in flight (one kernel transaction and one fsync at most).
            self.worker_give_up.store(true, Ordering::Relaxed);
            match join_by(h, Instant::now() + STOP_GRACE) {
                Ok(r) => report_worker(r.ok(), ban_overflow, lost),
                Err(_) => log::warn!(
                    "ban worker still busy {} ms after the stop deadline; left (its work is \
                     lost; the kernel keeps the bans it has)",
                    STOP_GRACE.as_millis()
                ),
            }
        }
        if let Some(link) = self.fleet {
            link.stop(deadline.max(Instant::now() + STOP_GRACE));
        }
        log::info!("stopped after {} ms; bye", t0.elapsed().as_millis());
        Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
    }
}

/// Log the policy's risky-but-valid settings, each with its key and line.
pub(crate) fn log_policy_warnings(prefix: &str, policy: &sipwall_engine::Policy) {
    for w in policy.warnings() {
        log::warn!("{prefix}config: {w}");
    }
}

/// Extra time the ban worker gets after [`STOP_DEADLINE`] to notice it must give up.
const STOP_GRACE: Duration = Duration::from_millis(500);

/// Join `h` if it finishes before `deadline`; else hand it back (the thread is left running;
/// the process exit ends it).
fn join_by<T>(
    h: JoinHandle<T>,
    deadline: Instant,
) -> Result<std::thread::Result<T>, JoinHandle<T>> {
    while !h.is_finished() {
        if Instant::now() >= deadline {
            return Err(h);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(h.join())
}

/// The stop log line of the ban worker, with what the queue threads could not hand over.
fn report_worker(stats: Option<WorkerStats>, ban_overflow: u64, lost_in_queues: u64) {
    let Some(s) = stats else {
        log::error!("ban worker panicked");
        return;
    };
    log::info!(
        "bans: {} stored+active, {} removed, {} decisions stored, {} store errors, {} kernel \
         errors, {} reconciles with {} repair(s), {} over the queue buffers (kernel by reconcile)",
        s.bans_active,
        s.bans_removed,
        s.decisions,
        s.store_errors,
        s.kernel_errors,
        s.reconciles,
        s.reconcile_repairs,
        ban_overflow
    );
    if s.lost_at_stop + lost_in_queues > 0 {
        log::warn!(
            "stop: {} pending work item(s) of the ban worker and {} ban action(s) of the queue \
             threads not applied (lost: not durable; the engine's copy ends with the process)",
            s.lost_at_stop,
            lost_in_queues
        );
    }
}

/// The kernel's view of active bans: remaining time of each (over ones skipped).
pub fn desired_bans(
    bans: impl Iterator<Item = (ipnet::IpNet, Timestamp)>,
    now: Timestamp,
) -> Vec<DesiredBan> {
    bans.filter_map(|(net, until)| {
        ban_worker::kernel_timeout(until, now).map(|t| DesiredBan { net, remaining: Some(t) })
    })
    .collect()
}

/// The block-list loader: its own thread with its own [`BanSet`] (own netlink socket), so a
/// large list never delays a ban. Loads `first` now, then every list sent on the returned
/// channel (SIGHUP); when several wait, only the newest is loaded. Progress is logged.
fn blocklist_loader(
    table: &str,
    first: Vec<ipnet::IpNet>,
) -> anyhow::Result<mpsc::Sender<Vec<ipnet::IpNet>>> {
    let (tx, rx) = mpsc::channel::<Vec<ipnet::IpNet>>();
    let mut set = BanSet::new(table).with_netlink();
    std::thread::Builder::new()
        .name("sipwall-blocklist".into())
        .spawn(move || {
            let mut next = Some(first);
            while let Some(mut nets) = next.take().or_else(|| rx.recv().ok()) {
                while let Ok(newer) = rx.try_recv() {
                    nets = newer;
                }
                let t0 = Instant::now();
                let mut last_log = Instant::now();
                let r = set.replace_blocklist_in_batches(&nets, BLOCKLIST_BATCH, |done, total| {
                    if last_log.elapsed() >= Duration::from_secs(2) {
                        last_log = Instant::now();
                        log::info!("block list loading: transaction {done} of {total}");
                    }
                });
                match r {
                    Ok(r) => log::info!(
                        "block list: {} network(s) in the kernel sets ({} range(s) added, {} \
                         removed, {} transaction(s), {} ms)",
                        nets.len(),
                        r.added,
                        r.removed,
                        r.transactions,
                        t0.elapsed().as_millis()
                    ),
                    Err(e) => log::error!("loading the block list into the kernel: {e}"),
                }
            }
        })
        .context("starting the block-list loader thread")?;
    Ok(tx)
}

/// Make the adopted kernel ban sets equal the engine's (restored) bans, BEFORE any apply: the
/// sets a previous run kept may hold bans this writer does not know of. Returns how often the
/// ban worker reconciles from then on (0: never).
///
/// Without the store the engine knows no ban, and the kernel sets a previous run kept are the
/// only record left: reconciling would remove them all, so they are kept as they are (each
/// ends at its kernel timeout) and never reconciled in this run.
fn adopt_kernel_sets(
    banset: &mut BanSet,
    engine: &Engine,
    simulate: &status::Simulate,
    store_unavailable: bool,
    enforce: &EnforceConfig,
    restored: &str,
    now: Timestamp,
) -> anyhow::Result<u64> {
    if store_unavailable {
        log::warn!(
            "kernel ban sets adopted as they are: without the store their bans are unknown, \
             so they are not reconciled in this run (each ends at its kernel timeout)"
        );
        return Ok(0);
    }
    // Simulated bans (observe mode, `[enforce] simulate`) stay out of the kernel.
    let real = engine.bans().filter(|b| !simulate.ban(b));
    let desired = desired_bans(real.map(|b| (b.net, b.until)), now);
    let r = banset
        .reconcile(&desired)
        .context("reconciling the kernel ban sets with the stored bans")?;
    log::info!(
        "kernel ban sets adopted and reconciled with {restored}: {} added, {} stale removed, \
         {} timeouts fixed, {} element(s)",
        r.missing_added,
        r.stale_removed,
        r.timeouts_fixed,
        r.kernel_elements
    );
    Ok(enforce.reconcile_interval_secs)
}

/// Say loudly when rule families are only simulated (observe mode or `[enforce] simulate`).
fn log_enforcement(facts: &status::Facts) {
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
}

/// The fleet's publishing hook, owned by the ban worker thread.
type PublishHook = Box<dyn Fn(&[sipwall_engine::Ban], &[ipnet::IpNet]) + Send>;

/// What the ban worker shares with the rest of the daemon.
struct BanWorkerShare {
    engine: Arc<Mutex<Engine>>,
    simulate: status::Simulate,
    durable: ban_worker::DurableBans,
    give_up: Arc<AtomicBool>,
    decisions_in_flight: Arc<std::sync::atomic::AtomicUsize>,
    publish: Option<PublishHook>,
}

/// Start the ban worker, the one thread that owns the store and the kernel ban sets.
fn spawn_ban_worker(
    rx: mpsc::Receiver<Work>,
    mut store: sipwall_store::Store,
    mut banset: BanSet,
    share: BanWorkerShare,
    reconcile_every: u64,
) -> anyhow::Result<JoinHandle<WorkerStats>> {
    std::thread::Builder::new()
        .name("sipwall-bans".into())
        .spawn(move || {
            let BanWorkerShare { engine, simulate, durable, give_up, decisions_in_flight, publish } =
                share;
            // A short copy under the lock; the remaining times are computed outside.
            let desired = || {
                let snapshot: Vec<_> = lock(&engine)
                    .bans()
                    .filter(|b| !simulate.ban(b))
                    .map(|b| (b.net, b.until))
                    .collect();
                desired_bans(snapshot.into_iter(), wall_clock())
            };
            let opts = ban_worker::WorkerOptions {
                reconcile_every: (reconcile_every > 0)
                    .then(|| Duration::from_secs(reconcile_every)),
                desired: &desired,
                give_up: &give_up,
                decisions_in_flight: &decisions_in_flight,
                publish: publish.as_deref().map(|p| p as &ban_worker::Publish),
            };
            ban_worker::run(rx, &mut store, &mut banset, &wall_clock, &durable, opts)
        })
        .context("starting the ban worker")
}

/// Bind one NFQUEUE per queue number of the ruleset.
fn open_queues(ruleset: &sipwall_netfilter::Ruleset) -> anyhow::Result<Vec<Queue>> {
    let mut queues = Vec::new();
    for i in 0..ruleset.queue_count {
        let mut qc = QueueConfig::new(ruleset.queue_first + i);
        qc.fail_open = !ruleset.fail_closed;
        queue_thread::tune_from_env(&mut qc);
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
