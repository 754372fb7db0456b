//! `sipwall run`: the inline daemon.
//!
//! Start-up order (each step only after the previous one succeeded):
//! 1. config: the engine's policy and `[enforce]` (see [`crate::config`]), checked up front;
//! 2. the store (`STATE_DIR/sipwall.db`), and the engine with every unexpired stored ban and
//!    the stored offence history (so repeat offenders keep escalating across restarts); the
//!    control socket (`[enforce] control_socket`, mode 0600) is bound here, with every
//!    capability still held ([`control`]);
//! 3. the `inet` table with its ban sets (leftovers of a crashed run are removed first), and
//!    every restored ban put into the kernel sets — BEFORE any packet is queued;
//! 4. the queue rules (nft `queue` if the kernel has it, else iptables NFQUEUE; logged), and
//!    one bound NFQUEUE per queue number;
//! 5. capabilities reduced to CAP_NET_ADMIN ([`privs`]); then the threads: one per queue, one
//!    ban worker owning the store and ban sets ([`state`]), one serving the control socket.
//!
//! Signals: SIGHUP re-reads the config and replaces the engine's policy (bans and behaviour
//! state kept); SIGTERM/SIGINT stop the queues, flush pending bans, remove every rule and exit
//! 0; the control socket file is removed on every exit path. Every error path after step 3 removes the rules too (drop guard); `sipwall run --cleanup`
//! removes leftovers by hand. Packets are accepted by the kernel while no queue is bound
//! (fail open, `--queue-bypass`) unless `fail_closed`.
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use sipwall_engine::{Engine, Timestamp};
use sipwall_netfilter::{BanSet, Firewall, Queue, QueueConfig};

pub mod control;
pub mod inline;
pub mod privs;
pub mod state;
pub mod tcp;

use state::{BanStore, Work};

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

fn wall_clock() -> Timestamp {
    Timestamp(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default(),
    )
}

/// How often the store forgets ban history older than `bans.forget_after_secs`.
const PRUNE_HISTORY_EVERY: Duration = Duration::from_secs(3600);

/// Entry point of `sipwall run`.
pub fn main(args: RunArgs) -> anyhow::Result<ExitCode> {
    let crate::config::Config { policy, enforce, blocklists } = crate::config::load(&args.config)?;
    for (file, load) in &blocklists {
        log::info!("block list {}: {load:?}", file.display());
    }
    let ruleset = enforce.ruleset(&policy.ports_to_guard())?;
    if args.cleanup {
        sipwall_netfilter::remove_all(&ruleset.table).context("removing leftover rules")?;
        log::info!("removed sipwall rules and table inet {}", ruleset.table);
        return Ok(ExitCode::SUCCESS);
    }
    let state_dir = args.state.clone().unwrap_or_else(|| enforce.state_dir.clone());
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(&state_dir)
        .with_context(|| format!("creating state directory {}", state_dir.display()))?;
    let db = state_dir.join("sipwall.db");
    let mut store = sipwall_store::Store::open(&db)
        .with_context(|| format!("opening the store {}", db.display()))?;

    // Signals first, so a SIGTERM during start-up still ends in a clean removal.
    let stop = Arc::new(AtomicBool::new(false));
    let reload = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handler")?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, reload.clone())
        .context("installing SIGHUP handler")?;

    let now = wall_clock();
    let blocklist: Vec<ipnet::IpNet> = policy.blocklist.iter().copied().collect();
    let mut engine = Engine::new(policy);
    let stored = BanStore::load_active_bans(&mut store, now).context("loading stored bans")?;
    let mut restored = Vec::new();
    for ban in stored {
        if engine.restore_ban(ban.clone(), now) {
            restored.push(ban);
        }
    }
    let offences = store.load_offences().context("loading stored offence history")?;
    let kept = offences
        .iter()
        .filter(|o| engine.restore_offence(o.net, o.count, o.last_until, now))
        .count();
    log::info!("restored offence history of {kept} of {} stored network(s)", offences.len());
    let socket_path = args.socket.clone().unwrap_or_else(|| enforce.control_socket.clone());
    // Bound before capabilities are dropped; removed when dropped (every return below).
    let control_sock = control::ControlSocket::bind(&socket_path)?;

    let mut fw = Firewall::install(ruleset.clone()).context("installing the nft table")?;
    let mut banset = BanSet::new(&ruleset.table).with_netlink();
    banset
        .apply(&state::add_ops(&restored, now))
        .context("restoring stored bans into the kernel sets")?;
    log::info!("restored {} ban(s) from {} into the kernel sets", restored.len(), db.display());
    banset.replace_blocklist(&blocklist).context("loading the block list into the kernel")?;
    log::info!("block list: {} network(s) in the kernel sets", blocklist.len());
    let backend = fw.enable_queue(enforce.backend()?).context("installing the queue rules")?;
    log::info!(
        "queue backend: {backend}; queues {}..={}; mode {:?}; fail {}",
        ruleset.queue_first,
        ruleset.queue_first + ruleset.queue_count - 1,
        enforce.mode,
        if ruleset.fail_closed { "closed" } else { "open" }
    );
    let mut queues = Vec::new();
    for i in 0..ruleset.queue_count {
        let mut qc = QueueConfig::new(ruleset.queue_first + i);
        qc.fail_open = !ruleset.fail_closed;
        let q = Queue::open(qc).context("opening NFQUEUE")?;
        log::info!("queue {} bound, netlink receive buffer {} bytes", qc.num, q.rcvbuf_effective());
        queues.push(q);
    }
    let _ = crate::sd_notify::ready(); // queues bound, bans restored: systemd may go on
    if !args.keep_caps {
        privs::keep_only_net_admin().context("dropping capabilities")?;
    }
    log::info!("capabilities kept: {}", privs::effective());

    let engine = Arc::new(Mutex::new(engine));
    let (tx, rx) = mpsc::sync_channel::<Work>(65_536);
    let worker = std::thread::Builder::new()
        .name("sipwall-bans".into())
        .spawn(move || state::run(rx, &mut store, &mut banset, &wall_clock))
        .context("starting the ban worker")?;
    let classifier = inline::Classifier {
        protected: enforce.protected.clone(),
        guarded: ruleset
            .ports
            .iter()
            .filter(|p| p.inspect)
            .map(|p| {
                let l4 = match p.l4 {
                    sipwall_netfilter::L4Proto::Udp => sipwall_netfilter::L4::Udp,
                    sipwall_netfilter::L4Proto::Tcp => sipwall_netfilter::L4::Tcp,
                };
                (l4, p.port)
            })
            .collect(),
        record_decisions: enforce.record_decisions,
    };
    let queue_stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for q in queues {
        let (e, t, c, s) = (engine.clone(), tx.clone(), classifier.clone(), queue_stop.clone());
        let num = q.config_used().num;
        let max = enforce.max_tcp_flows;
        let h = std::thread::Builder::new()
            .name(format!("sipwall-q{num}"))
            .spawn(move || {
                let r = inline::run_queue(q, e, t, c, max, s.clone());
                if r.is_err() {
                    s.store(true, Ordering::Relaxed);
                }
                r
            })
            .context("starting a queue thread")?;
        threads.push((num, h));
    }
    let control_stop = Arc::new(AtomicBool::new(false));
    let control_thread = {
        let ctx = control::Ctx { engine: engine.clone(), work: tx.clone(), clock: wall_clock };
        let stop = control_stop.clone();
        std::thread::Builder::new()
            .name("sipwall-control".into())
            .spawn(move || control::serve(control_sock, ctx, stop))
            .context("starting the control socket thread")?
    };
    log::info!("sipwall running: {} queue thread(s)", threads.len());

    let expire_every = Duration::from_millis(enforce.expire_interval_ms.max(100));
    let mut last_expire = Instant::now();
    let mut last_prune = Instant::now();
    let mut failed = false;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        if queue_stop.load(Ordering::Relaxed) {
            log::error!("a queue thread failed; shutting down");
            failed = true;
            break;
        }
        if reload.swap(false, Ordering::Relaxed) {
            match crate::config::load(&args.config) {
                Ok(crate::config::Config { policy, enforce: new_enforce, blocklists }) => {
                    for (file, load) in &blocklists {
                        log::info!("SIGHUP: block list {}: {load:?}", file.display());
                    }
                    if new_enforce != enforce {
                        log::warn!("SIGHUP: [enforce] changed; restart sipwall to apply it");
                    }
                    let nets: Vec<ipnet::IpNet> = policy.blocklist.iter().copied().collect();
                    // Bans the new policy makes trusted are lifted in the kernel and the store.
                    let lifted = lock(&engine).reload(policy);
                    if !lifted.is_empty() {
                        let _ = tx.send(Work::Bans(lifted));
                    }
                    let _ = tx.send(Work::Blocklist(nets));
                    log::info!("SIGHUP: policy reloaded from {}", args.config.display());
                }
                Err(e) => log::error!("SIGHUP: keeping the current policy: {e:#}"),
            }
        }
        if last_expire.elapsed() >= expire_every {
            last_expire = Instant::now();
            let removed = lock(&engine).expire(wall_clock());
            if !removed.is_empty() {
                let _ = tx.send(Work::Bans(removed));
            }
        }
        if last_prune.elapsed() >= PRUNE_HISTORY_EVERY {
            last_prune = Instant::now();
            let forget = Duration::from_millis(lock(&engine).policy().bans.forget_after_ms);
            let before = Timestamp(wall_clock().0.saturating_sub(forget));
            let _ = tx.send(Work::PruneHistory(before));
        }
    }
    log::info!("stopping");
    let _ = crate::sd_notify::stopping();
    queue_stop.store(true, Ordering::Relaxed);
    for (num, h) in threads {
        match h.join() {
            Ok(Ok(s)) => log::info!(
                "queue {num}: {} packets, {} dropped, {} unparsed",
                s.packets,
                s.dropped,
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
    // Before the worker stops: a command being served still gets its ban applied.
    control_stop.store(true, Ordering::Relaxed);
    if control_thread.join().is_err() {
        log::error!("control socket thread panicked");
    }
    let _ = tx.send(Work::Stop);
    drop(tx);
    if let Ok(s) = worker.join() {
        log::info!(
            "bans: {} stored+active, {} removed, {} decisions stored, {} store errors, {} kernel errors",
            s.bans_active,
            s.bans_removed,
            s.decisions,
            s.store_errors,
            s.kernel_errors
        );
    }
    fw.remove().context("removing the rules")?;
    log::info!("rules removed; bye");
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
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
