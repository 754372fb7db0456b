//! The control socket: operator commands (`sipwall ban/unban/bans/status/reload`) to the
//! running daemon. Protocol and limits: [`crate::protocol`]; what `status` reads and how
//! `reload` works: [`super::status`].
//!
//! CONTRACT:
//! * The socket is bound at start, while the daemon still holds all its capabilities, with
//!   mode 0600 (root only: a ban is as strong as a firewall rule); a stale socket file of a
//!   crashed run is replaced, a live one (another daemon answers) is an error. It is removed
//!   when [`ControlSocket`] is dropped (every exit path of `sipwall run`).
//! * Clients are served concurrently, each on its own short-lived thread, at most
//!   [`MAX_CLIENTS`] at once (one more is answered "busy" and closed at once). Each
//!   connection is bounded by a deadline for the WHOLE request: [`READ_TIMEOUT`] from accept
//!   to send a request of at most `MAX_REQUEST` bytes, however it is trickled (the socket's
//!   timeout is re-armed before every read with the time left, never reset by a byte), then
//!   [`WRITE_TIMEOUT`] to take the answer. So a slow or hostile client holds one slot for at
//!   most a few seconds and never delays another client.
//! * Every accepted connection is checked by the kernel's word on who is at the other end
//!   (`SO_PEERCRED`), not only by the file mode: only uid 0 and the daemon's own effective uid
//!   may command it. Anyone else gets one refusal line naming their uid and pid (logged the
//!   same way) and is closed before a byte of the request is read; a peer whose credentials
//!   cannot be read is refused too. Why both: a mode can be loosened by mistake (a chmod, a
//!   bind mount into a container, a umask), the kernel's credentials cannot be forged.
//! * The operator is in the audit trail: a manual ban's reason ends with
//!   `manual ban by uid U (pid P)` (in the engine, the listing, the kernel-then-store path and
//!   the store's ban and history rows), and every manual ban and unban is logged with the uid
//!   and pid and recorded as a decision (`manual.ban` / `manual.unban`, shown by
//!   `sipwall decisions`; the source column holds the network's first address, port 0).
//! * `status` locks the engine once, to count; `reload` re-reads the config through the
//!   `Reloader` SIGHUP uses and answers `ok: false` with the error when the file does not
//!   load (the old policy stays). `ban` with `extend` moves an active ban's end later, never
//!   earlier; a ban that is only simulated (observe mode) gives way to an operator's ban.
//! * The engine is locked only to decide (ban/unban/list), never during I/O. Manual bans and
//!   unbans go to the ban worker as `Work::Apply`, the same kernel-then-store path as detected
//!   bans; the answer is sent once the worker reports the batch applied (or after
//!   [`APPLY_TIMEOUT`], saying so).
use std::io::BufReader;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, PermissionsExt as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::lock;
use anyhow::Context as _;
use sipwall_engine::{BanAction, DecisionRecord, Engine, Evidence, Timestamp, Verdict};

use super::ban_worker::{DecisionItem, DurableBans, Work};
use super::status::{snapshot, Counters, Facts, Rates, Reloader};
use crate::protocol::{parse_request, read_request, write_line, BanView, Command, Response};
use crate::time::{human, rfc3339};

/// Time a client has to send its request.
pub const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// Time a client has to take the answer.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for the ban worker to apply a manual ban or unban.
pub const APPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// Most connections served at once; one more is answered "busy" and closed.
pub const MAX_CLIENTS: usize = 8;
/// How often the accept loop looks at the stop flag (the longest a blocked accept waits).
const POLL: Duration = Duration::from_millis(100);

/// The bound socket; removes its file when dropped.
#[derive(Debug)]
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
    ino: u64,
}

impl ControlSocket {
    /// Bind `path` (mode 0600), replacing a stale socket file, refusing a live one or any
    /// other kind of file. Creates a missing parent directory with mode 0700.
    pub fn bind(path: &Path) -> anyhow::Result<ControlSocket> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                    .with_context(|| format!("chmod 0700 {}", dir.display()))?;
            }
        }
        remove_stale(path)?;
        let listener = UnixListener::bind(path)
            .with_context(|| format!("binding control socket {}", path.display()))?;
        // From here on the file is ours: dropping `sock` removes it, also on the errors below.
        let mut sock = ControlSocket { listener, path: path.to_path_buf(), ino: 0 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("chmod 0600 {}", path.display()))?;
        sock.ino = std::fs::metadata(path)?.ino();
        // A blocking accept that gives up after POLL: a client is served the moment it
        // connects, and the loop still sees the stop flag every POLL. (A non-blocking accept
        // polled every POLL made every command wait up to 100 ms before it was read.)
        sys::set_accept_timeout(&sock.listener, POLL)
            .context("control socket: accept timeout (SO_RCVTIMEO)")?;
        Ok(sock)
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Remove the socket file at `path` when it is stale (a socket nobody answers on: a crashed or
/// killed daemon's); a live one (a daemon answers) or any other kind of file is an error.
/// Returns whether a file was removed. Used by [`ControlSocket::bind`] and `run --cleanup`.
pub fn remove_stale(path: &Path) -> anyhow::Result<bool> {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return Ok(false) };
    anyhow::ensure!(
        meta.file_type().is_socket(),
        "control socket {}: a file that is not a socket is in the way",
        path.display()
    );
    anyhow::ensure!(
        UnixStream::connect(path).is_err(),
        "control socket {} answers: is another `sipwall run` running?",
        path.display()
    );
    std::fs::remove_file(path)
        .with_context(|| format!("removing stale control socket {}", path.display()))?;
    log::info!("removed stale control socket {}", path.display());
    Ok(true)
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        // Only our own file: a second daemon started by mistake must not remove the socket of
        // the first (it refuses to bind a live socket, but be safe).
        let ours = std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.ino() == self.ino);
        if ours {
            if let Err(e) = std::fs::remove_file(&self.path) {
                log::warn!("removing control socket {}: {e}", self.path.display());
            }
        }
    }
}

/// What the control threads work with (shared by the connection threads).
pub struct Ctx {
    /// The engine (locked briefly).
    pub engine: Arc<Mutex<Engine>>,
    /// The ban worker.
    pub work: SyncSender<Work>,
    /// The clock.
    pub clock: fn() -> Timestamp,
    /// Which bans the ban worker has committed to the store (the others list as pending).
    pub durable: DurableBans,
    /// `None` normally; why there is no store when the daemon runs on an in-memory one
    /// (shown by `sipwall bans` as `store: unavailable (in memory): ...`).
    pub store_unavailable: Option<String>,
    /// Facts fixed at start (mode, backend, ports, simulated families), for `status`.
    pub facts: Facts,
    /// The queue threads' published counters.
    pub counters: Arc<Counters>,
    /// Packet rates, sampled by the accept loop about once a second.
    pub rates: Rates,
    /// The config reloader shared with SIGHUP (None: `reload` is refused).
    pub reloader: Option<Arc<Reloader>>,
    /// Run-time trust (`trust add|del|list`), shared with the reloader.
    pub trust: Arc<super::trust::RuntimeTrust>,
}

#[cfg(test)]
impl Ctx {
    /// A context over `engine` for unit tests (control socket and HTTP API alike): a store
    /// that works, default facts, one queue's counters, no reloader.
    pub(crate) fn for_tests(
        engine: Engine,
        work: SyncSender<Work>,
        clock: fn() -> Timestamp,
    ) -> Ctx {
        Ctx {
            engine: Arc::new(Mutex::new(engine)),
            work,
            clock,
            durable: DurableBans::new(),
            store_unavailable: None,
            facts: Facts::default(),
            counters: Arc::new(Counters::new(0, 1)),
            rates: Rates::default(),
            reloader: None,
            trust: Arc::new(super::trust::RuntimeTrust::new(
                &sipwall_engine::Policy::from_toml_str("").expect("the default policy"),
                Vec::new(),
                None,
            )),
        }
    }
}

/// How often the accept loop samples the packet counters for the rates of `status`.
const RATE_INTERVAL: Duration = Duration::from_secs(1);

/// Serve until `stop`; the socket file is removed on return.
pub fn serve(sock: ControlSocket, ctx: Ctx, stop: Arc<AtomicBool>) {
    let euid = sys::euid();
    log::info!(
        "control socket {} (mode 0600; peers allowed: uid 0 and uid {euid})",
        sock.path().display()
    );
    let ctx = Arc::new(ctx);
    let active = Arc::new(AtomicUsize::new(0));
    let mut clients: Vec<std::thread::JoinHandle<()>> = Vec::new();
    let mut sampled = Instant::now();
    ctx.rates.sample(&ctx.counters);
    while !stop.load(Ordering::Relaxed) {
        clients.retain(|h| !h.is_finished());
        if sampled.elapsed() >= RATE_INTERVAL {
            sampled = Instant::now();
            ctx.rates.sample(&ctx.counters);
        }
        match sock.listener.accept() {
            Ok((stream, _)) => {
                if active.load(Ordering::Acquire) >= MAX_CLIENTS {
                    // Best effort, never blocking the accept loop: the socket buffer takes it.
                    let _ = stream.set_nonblocking(true);
                    let _ = send(&stream, &Response::error(BUSY));
                    log::warn!("control socket: {MAX_CLIENTS} clients being served; one refused");
                    continue;
                }
                active.fetch_add(1, Ordering::AcqRel);
                let (c, a) = (ctx.clone(), active.clone());
                let spawned =
                    std::thread::Builder::new().name("sipwall-ctl-conn".into()).spawn(move || {
                        if let Err(e) = serve_one(stream, &c, euid) {
                            log::warn!("control socket: {e:#}");
                        }
                        a.fetch_sub(1, Ordering::AcqRel);
                    });
                match spawned {
                    Ok(h) => clients.push(h),
                    Err(e) => {
                        active.fetch_sub(1, Ordering::AcqRel);
                        log::warn!("control socket: starting a connection thread: {e}");
                    }
                }
            }
            // The accept timeout (POLL) passed, or a signal interrupted the wait (accept with
            // a timeout is never restarted): look at the stop flag and wait again.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                log::warn!("control socket accept: {e}");
                std::thread::sleep(POLL);
            }
        }
    }
    // Commands being served still get their answer (each is bounded by its deadlines and
    // APPLY_TIMEOUT); the ban worker is stopped only after this returns.
    for h in clients {
        let _ = h.join();
    }
}

/// The answer to a client over [`MAX_CLIENTS`].
pub const BUSY: &str = "busy: too many control clients at once; try again";

/// A reader whose reads all end by one deadline: before every read the socket's timeout is
/// set to the time left, so a client trickling one byte at a time cannot stretch the request
/// past the deadline (a plain read timeout would restart with every byte).
struct DeadlineReader<'a> {
    stream: &'a UnixStream,
    deadline: Instant,
}

impl std::io::Read for DeadlineReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))?;
        std::io::Read::read(&mut &*self.stream, buf)
    }
}

/// Who is at the other end of a control connection, as the kernel saw it at `connect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// Effective uid of the connecting process.
    pub uid: u32,
    /// Its pid (0 if it is in a pid namespace this daemon cannot see into).
    pub pid: i32,
}

impl Peer {
    /// The HTTP API's caller, who proved the API token (`crate::api`): in the audit trail as
    /// "api token". pid -1 is never a socket peer's (the kernel reports 0 for an unseen pid).
    pub const API_TOKEN: Peer = Peer { uid: u32::MAX, pid: -1 };
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if *self == Peer::API_TOKEN {
            return f.write_str("api token");
        }
        write!(f, "uid {} (pid {})", self.uid, self.pid)
    }
}

/// May `peer` command a daemon whose effective uid is `euid`? Root always, and the daemon's
/// own user (a daemon run unprivileged for tests); nobody else, whatever the socket's mode.
pub fn authorize(peer: Peer, euid: u32) -> Result<(), String> {
    if peer.uid == 0 || peer.uid == euid {
        return Ok(());
    }
    Err(format!(
        "refused: {peer} may not use the control socket (only uid 0 and the daemon's uid {euid} may)"
    ))
}

fn send(stream: &UnixStream, resp: &Response) -> anyhow::Result<()> {
    write_line(&mut &*stream, resp).context("sending the answer")
}

fn serve_one(stream: UnixStream, ctx: &Ctx, euid: u32) -> anyhow::Result<()> {
    let deadline = Instant::now() + READ_TIMEOUT;
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    // Fail closed: no credentials, no command.
    let peer = match sys::peer_cred(&stream) {
        Ok(p) => p,
        Err(e) => {
            let _ = send(&stream, &Response::error("refused: peer credentials unreadable"));
            anyhow::bail!("refused a connection whose peer credentials are unreadable: {e}");
        }
    };
    if let Err(why) = authorize(peer, euid) {
        log::warn!("control socket: {why}");
        // Best effort: the refusal is logged whether or not the peer reads it.
        let _ = send(&stream, &Response::error(&why));
        return Ok(());
    }
    let mut reader = BufReader::new(DeadlineReader { stream: &stream, deadline });
    let resp = match read_request(&mut reader).and_then(|l| parse_request(&l)) {
        Ok(cmd) => execute(cmd, ctx, peer),
        Err(e) => Response::error(format!("{e:#}")),
    };
    send(&stream, &resp)
}

/// The only `unsafe` of the binary crate: three libc calls that std does not offer on stable
/// (`UnixStream::peer_cred` is unstable, and a listener has no accept timeout). Plain `libc` rather than a wrapper crate because
/// the kernel reports pid 0 for a peer in a pid namespace we cannot see, which a wrapper
/// holding the pid as a non-zero type would have to reject or mis-handle.
#[allow(unsafe_code)]
mod sys {
    use std::os::fd::AsRawFd as _;
    use std::os::unix::net::UnixStream;

    use super::Peer;

    /// `getsockopt(SO_PEERCRED)`: the credentials the peer had when it connected.
    pub fn peer_cred(stream: &UnixStream) -> std::io::Result<Peer> {
        // uid u32::MAX (no user) until the kernel fills it, so a short answer cannot pass as root.
        let mut cred = libc::ucred { pid: 0, uid: u32::MAX, gid: u32::MAX };
        let size = std::mem::size_of::<libc::ucred>();
        let mut len = size as libc::socklen_t;
        // SAFETY: the fd is open for the whole call (borrowed from `stream`); `cred` is a
        // writable local `ucred` (three integers: any bit pattern is valid) and `len` holds
        // its exact size, so the kernel writes at most `size` bytes into it.
        let rc = unsafe {
            libc::getsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERCRED,
                (&raw mut cred).cast::<libc::c_void>(),
                &raw mut len,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if len as usize != size {
            return Err(std::io::Error::other(format!(
                "SO_PEERCRED answered {len} bytes, not {size}"
            )));
        }
        Ok(Peer { uid: cred.uid, pid: cred.pid })
    }

    /// `setsockopt(SO_RCVTIMEO)` on a listening socket: Linux applies the receive timeout to
    /// a blocking `accept`, which then fails with `WouldBlock` once `timeout` passes.
    pub fn set_accept_timeout(
        listener: &std::os::unix::net::UnixListener,
        timeout: std::time::Duration,
    ) -> std::io::Result<()> {
        listener.set_nonblocking(false)?;
        let tv = libc::timeval {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_usec: timeout.subsec_micros() as libc::suseconds_t,
        };
        // SAFETY: the fd is open for the whole call (borrowed from `listener`); `tv` is a
        // local `timeval` the kernel only reads, and the length passed is its exact size.
        let rc = unsafe {
            libc::setsockopt(
                listener.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                std::ptr::addr_of!(tv).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    /// This process's effective uid.
    pub fn euid() -> u32 {
        // SAFETY: geteuid takes nothing, cannot fail and touches no memory of ours.
        unsafe { libc::geteuid() }
    }
}

/// Hand actions to the ban worker and wait (bounded) until they are applied.
fn apply(ctx: &Ctx, actions: Vec<BanAction>) -> Result<(), String> {
    // Blocking send, like the queue threads: the engine already changed, the action must
    // not be lost. The worker drains the channel continuously. Actions and the answer channel
    // travel together, so the outcome reported is that of the batch holding these actions.
    let (tx, rx) = mpsc::sync_channel(1);
    ctx.work
        .send(Work::Apply(actions, tx))
        .map_err(|_| "the ban worker has stopped".to_string())?;
    match rx.recv_timeout(APPLY_TIMEOUT) {
        Ok(a) if a.kernel_ok && a.store_ok => Ok(()),
        Ok(a) => Err(format!(
            "{}{} failed (see the daemon's log)",
            if a.kernel_ok { "" } else { "updating the kernel ban set" },
            if a.store_ok {
                ""
            } else if a.kernel_ok {
                "writing the store"
            } else {
                " and writing the store"
            }
        )),
        Err(_) => Err(format!(
            "queued, but not confirmed applied within {} s (see the daemon's log)",
            APPLY_TIMEOUT.as_secs()
        )),
    }
}

/// The audit record of an operator action, kept with the decisions (`sipwall decisions`).
fn audit(
    ctx: &Ctx,
    at: Timestamp,
    net: ipnet::IpNet,
    verdict: Verdict,
    rule: &'static str,
    summary: String,
) {
    let item = DecisionItem {
        at,
        src: std::net::SocketAddr::new(net.network(), 0),
        verdict,
        record: DecisionRecord { rule, evidence: Evidence::default(), summary },
    };
    if ctx.work.send(Work::Decision(Box::new(item))).is_err() {
        log::error!("the ban worker has stopped: the audit record of an operator command is lost");
    }
}

/// The stored reason of a manual ban: the operator's words, then who it was.
pub fn manual_reason(reason: &str, peer: Peer) -> String {
    if reason.is_empty() {
        format!("manual ban by {peer}")
    } else {
        format!("{reason}; manual ban by {peer}")
    }
}

/// Run one checked command for `peer` (already authorized).
pub fn execute(cmd: Command, ctx: &Ctx, peer: Peer) -> Response {
    let now = (ctx.clock)();
    match cmd {
        Command::Ban { net, duration, reason, extend } => {
            let reason = manual_reason(&reason, peer);
            let action = {
                let mut e = lock(&ctx.engine);
                if e.policy().trusted.overlaps(net) {
                    return Response::error(format!(
                        "{net} is (or overlaps) a trusted network ([trusted] networks): \
                         trusted networks are never banned"
                    ));
                }
                let mut existing = e.bans().find(|b| b.net == net && now < b.until).cloned();
                // A simulated ban (observe mode) gives way to an operator's real one.
                if existing.as_ref().is_some_and(|b| ctx.facts.simulate.ban(b)) {
                    let _ = e.unban(net);
                    existing = None;
                }
                if let Some(b) = existing {
                    if !extend {
                        return Response::error(format!(
                            "{net} is already banned until {} ({}: {}); unban it first to \
                             change it, or --extend it",
                            rfc3339(b.until.as_millis()),
                            b.rule,
                            b.reason
                        ));
                    }
                    let extended = match extend_in_engine(ctx, &mut e, b, duration, now, peer) {
                        Ok(ban) => ban,
                        Err(resp) => return resp,
                    };
                    drop(e); // never wait for the ban worker with the engine locked
                    return extend_apply(ctx, extended, &reason, now, peer);
                }
                e.ban_manual(net, duration, &reason, now)
            };
            let ban = match action {
                Ok(BanAction::Add(ban)) => ban,
                Ok(other) => {
                    return Response::error(format!(
                        "unexpected engine answer for {net}: {other:?}"
                    ))
                }
                Err(e) => return Response::error(e.to_string()),
            };
            let view = BanView::of(&ban);
            // `reason` ends with the operator ("manual ban by uid 0 (pid 1234)").
            log::warn!("manual ban of {net} for {}: {reason}", human(duration));
            match apply(ctx, vec![BanAction::Add(ban)]) {
                Ok(()) => {
                    audit(
                        ctx,
                        now,
                        net,
                        Verdict::Drop,
                        "manual.ban",
                        format!("manual ban of {net} for {}: {reason}", human(duration)),
                    );
                    let (durable, where_) = match &ctx.store_unavailable {
                        None => (true, "in the kernel set and the store"),
                        Some(_) => {
                            (false, "in the kernel set; NOT durable: the store is unavailable")
                        }
                    };
                    Response::done(
                        format!(
                            "banned {net} until {} (ban #{}): {where_}",
                            rfc3339(view.until_ms),
                            view.count
                        ),
                        Some(vec![BanView { durable, ..view }]),
                    )
                }
                Err(e) => Response::error(format!("banned {net} in the engine, but: {e}")),
            }
        }
        Command::Unban(net) => {
            let action = lock(&ctx.engine).unban(net);
            let Some(action) = action else {
                return Response::error(format!(
                    "{net} is not banned (give the network exactly as `sipwall bans` shows it)"
                ));
            };
            log::warn!("manual unban of {net} by {peer}");
            match apply(ctx, vec![action]) {
                Ok(()) => {
                    audit(
                        ctx,
                        now,
                        net,
                        Verdict::Accept,
                        "manual.unban",
                        format!("manual unban of {net} by {peer}"),
                    );
                    Response::done(
                        format!(
                            "unbanned {net}: removed from the engine, the kernel set and the store"
                        ),
                        None,
                    )
                }
                Err(e) => Response::error(format!("unbanned {net} in the engine, but: {e}")),
            }
        }
        Command::Status => Response::status(snapshot(
            &ctx.facts,
            &ctx.counters,
            &ctx.rates,
            ctx.reloader.as_deref(),
            &ctx.engine,
            ctx.store_unavailable.as_deref(),
            now.as_millis(),
        )),
        Command::Reload => {
            let Some(r) = &ctx.reloader else {
                return Response::error("this daemon cannot reload (no config file)");
            };
            let out = r.reload(&ctx.engine, &ctx.work, &format!("reload by {peer}"));
            if out.ok {
                Response::done(out.message, None)
            } else {
                Response::error(out.message)
            }
        }
        Command::TrustAdd { net, reason } => {
            let reason = if reason.is_empty() {
                format!("trusted by {peer}")
            } else {
                format!("{reason}; trusted by {peer}")
            };
            let lifted = match ctx.trust.add(&ctx.engine, net, &reason, now) {
                Ok(l) => l,
                Err(e) => return Response::error(e),
            };
            log::warn!("{net} trusted at run time: {reason}; {} ban(s) lifted", lifted.len());
            let n = lifted.len();
            let applied = if lifted.is_empty() { Ok(()) } else { apply(ctx, lifted) };
            audit(ctx, now, net, Verdict::Accept, "manual.trust", format!("{net} {reason}"));
            let durable = if ctx.trust.durable() {
                "kept in the store"
            } else {
                "NOT durable: the store is unavailable"
            };
            let mut r = match applied {
                Ok(()) => Response::done(
                    format!("trusted {net} ({durable}); {n} ban(s) it covers lifted"),
                    None,
                ),
                Err(e) => Response::error(format!(
                    "trusted {net} ({durable}), but lifting the {n} ban(s) it covers: {e}"
                )),
            };
            r.trusted = Some(ctx.trust.list());
            r
        }
        Command::TrustDel(net) => {
            if let Err(e) = ctx.trust.del(&ctx.engine, net) {
                return Response::error(e);
            }
            log::warn!("{net} no longer trusted at run time (by {peer})");
            audit(
                ctx,
                now,
                net,
                Verdict::Accept,
                "manual.untrust",
                format!("{net} no longer trusted, by {peer}"),
            );
            let mut r = Response::done(format!("{net} is no longer trusted"), None);
            r.trusted = Some(ctx.trust.list());
            r
        }
        Command::TrustList => {
            let list = ctx.trust.list();
            let mut r = Response::done(format!("{} trusted network(s)", list.len()), None);
            r.trusted = Some(list);
            r
        }
        Command::Bans => {
            let mut bans: Vec<BanView> = {
                let e = lock(&ctx.engine);
                e.bans()
                    .filter(|b| now < b.until)
                    .map(|b| {
                        let simulated = ctx.facts.simulate.ban(b);
                        BanView {
                            durable: !simulated && ctx.durable.is_durable(b),
                            simulated,
                            ..BanView::of(b)
                        }
                    })
                    .collect()
            };
            bans.sort_by(|a, b| a.until_ms.cmp(&b.until_ms).then_with(|| a.net.cmp(&b.net)));
            let mut r = Response::done(format!("{} active ban(s)", bans.len()), Some(bans));
            r.store =
                ctx.store_unavailable.as_ref().map(|why| format!("unavailable (in memory): {why}"));
            r
        }
        Command::Learned | Command::LearnedPin(_) | Command::LearnedForget(_) => {
            super::learned::execute(cmd, &ctx.engine, &ctx.work, now, peer)
        }
    }
}

/// `ban --extend` of the active ban `old`, in the engine: its end moves to `now + duration`
/// when that is later (an extension never shortens a ban). `Err` is the answer to give.
// The error IS the operator's answer, on a rare path: boxing it would only add noise.
#[allow(clippy::result_large_err)]
fn extend_in_engine(
    ctx: &Ctx,
    e: &mut Engine,
    old: sipwall_engine::Ban,
    duration: Duration,
    now: Timestamp,
    peer: Peer,
) -> Result<sipwall_engine::Ban, Response> {
    let net = old.net;
    let asked = Timestamp(now.0.saturating_add(duration));
    if asked <= old.until {
        return Err(Response::done(
            format!(
                "{net} stays banned until {}: already longer than asked (nothing changed)",
                rfc3339(old.until.as_millis())
            ),
            Some(vec![BanView { durable: ctx.durable.is_durable(&old), ..BanView::of(&old) }]),
        ));
    }
    // The engine has no "extend" of its own: lift the ban and put it back with the new end,
    // keeping its start, count, rule and evidence; the kernel and the store then get one Add
    // (which replaces the element and the row).
    let ban = sipwall_engine::Ban {
        until: asked,
        reason: format!("{}; extended by {peer}", old.reason),
        ..old.clone()
    };
    let _ = e.unban(net);
    if !e.restore_ban(ban.clone(), now) {
        let _ = e.restore_ban(old, now); // nothing changed
        return Err(Response::error(format!("the engine refused to extend the ban of {net}")));
    }
    Ok(ban)
}

/// `ban --extend`, after the engine: the kernel-then-store path and the audit record.
fn extend_apply(
    ctx: &Ctx,
    ban: sipwall_engine::Ban,
    reason: &str,
    now: Timestamp,
    peer: Peer,
) -> Response {
    let (net, until) = (ban.net, rfc3339(ban.until.as_millis()));
    log::warn!("manual extension of the ban of {net} to {until} by {peer}");
    match apply(ctx, vec![BanAction::Add(ban.clone())]) {
        Ok(()) => {
            audit(
                ctx,
                now,
                net,
                Verdict::Drop,
                "manual.extend",
                format!("ban of {net} extended to {until}: {reason}"),
            );
            Response::done(
                format!("extended the ban of {net} until {until}"),
                Some(vec![BanView {
                    durable: ctx.store_unavailable.is_none(),
                    ..BanView::of(&ban)
                }]),
            )
        }
        Err(err) => Response::error(format!("extended the ban of {net} in the engine, but: {err}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sipwall_engine::Policy;
    use std::io::{BufRead as _, Read as _, Write as _};

    fn clock() -> Timestamp {
        Timestamp::from_millis(1_000_000)
    }

    fn ctx() -> (Ctx, mpsc::Receiver<Work>) {
        let policy =
            Policy::from_toml_str("[trusted]\nnetworks = [\"198.51.100.0/24\"]\n").unwrap();
        let (tx, rx) = mpsc::sync_channel(16);
        (Ctx::for_tests(Engine::new(policy), tx, clock), rx)
    }

    const ROOT: Peer = Peer { uid: 0, pid: 4242 };

    /// A stand-in for the ban worker: records actions and decisions, acknowledges flushes.
    fn worker(
        rx: mpsc::Receiver<Work>,
    ) -> std::thread::JoinHandle<(Vec<BanAction>, Vec<DecisionItem>)> {
        std::thread::spawn(move || {
            let (mut seen, mut decided) = (Vec::new(), Vec::new());
            while let Ok(w) = rx.recv() {
                match w {
                    Work::Apply(a, ack) => {
                        seen.extend(a);
                        let _ = ack.send(super::super::ban_worker::Applied {
                            kernel_ok: true,
                            store_ok: true,
                        });
                    }
                    Work::Decision(d) => decided.push(*d),
                    Work::Stop => break,
                    _ => {}
                }
            }
            (seen, decided)
        })
    }

    #[test]
    fn only_root_and_the_daemons_own_uid_may_command() {
        assert!(authorize(Peer { uid: 0, pid: 1 }, 0).is_ok());
        assert!(authorize(Peer { uid: 0, pid: 1 }, 1000).is_ok());
        assert!(authorize(Peer { uid: 1000, pid: 7 }, 1000).is_ok());
        let why = authorize(Peer { uid: 1001, pid: 77 }, 1000).unwrap_err();
        assert!(why.contains("uid 1001 (pid 77)") && why.contains("refused"), "{why}");
        assert!(authorize(Peer { uid: 65534, pid: 9 }, 0).is_err());
    }

    #[test]
    fn peer_credentials_are_the_connecting_process() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sock");
        let l = UnixListener::bind(&path).unwrap();
        let _c = UnixStream::connect(&path).unwrap();
        let (s, _) = l.accept().unwrap();
        let p = sys::peer_cred(&s).unwrap();
        assert_eq!(p, Peer { uid: sys::euid(), pid: std::process::id() as i32 });
        // not a socket: an error, never a default identity
        let f = std::fs::File::open(dir.path()).unwrap();
        let not_sock = UnixStream::from(std::os::fd::OwnedFd::from(f));
        assert!(sys::peer_cred(&not_sock).is_err());
    }

    /// `ban --extend` moves the end later, never earlier, keeps the ban's count and rule,
    /// and hands one Add with the new end to the worker; `status` counts it by rule.
    #[test]
    fn extend_lengthens_never_shortens_and_status_counts_bans() {
        let (ctx, rx) = ctx();
        let w = worker(rx);
        let net: ipnet::IpNet = "203.0.113.0/24".parse().unwrap();
        let ban = |secs, extend| Command::Ban {
            net,
            duration: Duration::from_secs(secs),
            reason: "x".into(),
            extend,
        };
        assert!(execute(ban(600, false), &ctx, ROOT).ok);
        let longer = execute(ban(3600, true), &ctx, ROOT);
        assert!(longer.message.as_deref().unwrap().contains("extended"), "{longer:?}");
        assert_eq!(longer.bans.as_ref().unwrap()[0].until_ms, 1_000_000 + 3_600_000);
        let shorter = execute(ban(60, true), &ctx, ROOT);
        assert!(shorter.ok && shorter.message.unwrap().contains("nothing changed"));
        let listed = execute(Command::Bans, &ctx, ROOT).bans.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].until_ms, listed[0].count), (1_000_000 + 3_600_000, 1));
        let st = execute(Command::Status, &ctx, ROOT).status.unwrap();
        assert_eq!(st.bans_active, 1);
        assert_eq!(st.bans_by_rule.get("manual"), Some(&1));
        assert_eq!(st.store, "ok");
        assert_eq!(st.queues.len(), 1);
        // no config file: reload is refused, not faked
        assert!(!execute(Command::Reload, &ctx, ROOT).ok);
        ctx.work.send(Work::Stop).unwrap();
        let (seen, decided) = w.join().unwrap();
        assert_eq!(seen.len(), 2, "the first ban and its extension: {seen:?}");
        assert!(matches!(&seen[1], BanAction::Add(b) if b.until.as_millis() == 4_600_000));
        assert!(decided.iter().any(|d| d.record.rule == "manual.extend"));
    }

    /// In observe mode a detected ban is simulated (listed as such, never durable); an
    /// operator's ban of the same network replaces it with a real one.
    #[test]
    fn a_simulated_ban_is_listed_as_such_and_gives_way_to_a_manual_ban() {
        let (mut ctx, rx) = ctx();
        let observe = crate::config::parse_enforce("[enforce]\nmode = \"observe\"\n").unwrap();
        ctx.facts.simulate = super::super::status::Simulate::of(&observe);
        let w = worker(rx);
        let net: ipnet::IpNet = "203.0.113.5/32".parse().unwrap();
        let detected = sipwall_engine::Ban {
            net,
            since: clock(),
            until: Timestamp::from_millis(2_000_000),
            count: 1,
            rule: "signature.sipvicious-ua".into(),
            reason: "scanner".into(),
            evidence: Evidence::default(),
            origin: sipwall_engine::BanOrigin::Detection,
        };
        assert!(lock(&ctx.engine).restore_ban(detected, clock()));
        let listed = execute(Command::Bans, &ctx, ROOT).bans.unwrap();
        assert!(listed[0].simulated && !listed[0].durable, "{listed:?}");
        let st = execute(Command::Status, &ctx, ROOT).status.unwrap();
        assert_eq!((st.bans_active, st.bans_simulated), (1, 1));
        let r = execute(
            Command::Ban {
                net,
                duration: Duration::from_secs(60),
                reason: String::new(),
                extend: false,
            },
            &ctx,
            ROOT,
        );
        assert!(r.ok, "{r:?}");
        let listed = execute(Command::Bans, &ctx, ROOT).bans.unwrap();
        assert_eq!((listed.len(), listed[0].rule.as_str()), (1, "manual"));
        assert!(!listed[0].simulated);
        ctx.work.send(Work::Stop).unwrap();
        let (seen, _) = w.join().unwrap();
        assert!(matches!(&seen[..], [BanAction::Add(b)] if b.rule == "manual"), "{seen:?}");
    }

    #[test]
    fn ban_list_unban_and_refusals() {
        let (ctx, rx) = ctx();
        let w = worker(rx);
        let net: ipnet::IpNet = "203.0.113.9/32".parse().unwrap();
        let ban = Command::Ban {
            net,
            duration: Duration::from_secs(600),
            reason: "test".into(),
            extend: false,
        };
        let r = execute(ban.clone(), &ctx, ROOT);
        assert!(r.ok, "{r:?}");
        assert!(r.message.unwrap().contains("in the kernel set and the store"));
        let again = execute(ban, &ctx, ROOT);
        assert!(again.error.unwrap().contains("already banned"));
        let trusted = execute(
            Command::Ban {
                net: "198.51.100.0/25".parse().unwrap(),
                duration: Duration::from_secs(60),
                reason: String::new(),
                extend: false,
            },
            &ctx,
            ROOT,
        );
        assert!(trusted.error.unwrap().contains("trusted"));
        let list = execute(Command::Bans, &ctx, ROOT).bans.unwrap();
        assert_eq!(list.len(), 1);
        // this stand-in worker commits nothing: the ban is listed, pending
        assert!(!list[0].durable, "listed durable before any store commit");
        let stored = lock(&ctx.engine).bans().next().unwrap().clone();
        ctx.durable.mark(std::slice::from_ref(&stored));
        assert!(execute(Command::Bans, &ctx, ROOT).bans.unwrap()[0].durable);
        assert_eq!(
            (
                list[0].net.as_str(),
                list[0].until_ms,
                list[0].rule.as_str(),
                list[0].reason.as_str()
            ),
            ("203.0.113.9/32", 1_600_000, "manual", "test; manual ban by uid 0 (pid 4242)")
        );
        let other = Peer { uid: 1000, pid: 99 };
        assert!(execute(Command::Unban(net), &ctx, other).ok);
        assert!(execute(Command::Unban(net), &ctx, ROOT).error.unwrap().contains("not banned"));
        assert!(execute(Command::Bans, &ctx, ROOT).bans.unwrap().is_empty());
        // no reason given: the operator alone
        let r = execute(
            Command::Ban {
                net: "203.0.113.0/24".parse().unwrap(),
                duration: Duration::from_secs(60),
                reason: String::new(),
                extend: false,
            },
            &ctx,
            other,
        );
        assert_eq!(r.bans.unwrap()[0].reason, "manual ban by uid 1000 (pid 99)");
        ctx.work.send(Work::Stop).unwrap();
        let (seen, decided) = w.join().unwrap();
        assert_eq!(seen.len(), 3);
        assert!(matches!(&seen[0], BanAction::Add(b) if b.net == net
            && b.reason == "test; manual ban by uid 0 (pid 4242)"));
        assert_eq!(seen[1], BanAction::Remove(net));
        // the audit trail: one decision per applied operator action, none for refusals
        let audit: Vec<_> = decided
            .iter()
            .map(|d| (d.src.to_string(), d.verdict, d.record.rule, d.record.summary.as_str()))
            .collect();
        assert_eq!(
            audit,
            vec![
                (
                    "203.0.113.9:0".to_string(),
                    Verdict::Drop,
                    "manual.ban",
                    "manual ban of 203.0.113.9/32 for 10m: test; manual ban by uid 0 (pid 4242)"
                ),
                (
                    "203.0.113.9:0".to_string(),
                    Verdict::Accept,
                    "manual.unban",
                    "manual unban of 203.0.113.9/32 by uid 1000 (pid 99)"
                ),
                (
                    "203.0.113.0:0".to_string(),
                    Verdict::Drop,
                    "manual.ban",
                    "manual ban of 203.0.113.0/24 for 1m: manual ban by uid 1000 (pid 99)"
                ),
            ]
        );
    }

    #[test]
    fn socket_is_private_bounded_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/control.sock");
        let sock = ControlSocket::bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // a second daemon is refused while the first answers (the listener's backlog accepts)
        assert!(format!("{:#}", ControlSocket::bind(&path).unwrap_err()).contains("answers"));
        let (ctx, rx) = ctx();
        let w = worker(rx);
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let server = std::thread::spawn(move || serve(sock, ctx, s2));
        // an oversized request gets an error answer, not a hang
        let mut c = UnixStream::connect(&path).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = c.write_all(&vec![b'x'; 3 * crate::protocol::MAX_REQUEST]);
        let mut line = String::new();
        std::io::BufReader::new(&c).read_line(&mut line).unwrap();
        assert!(line.contains("longer than 4096"), "{line}");
        // a client that sends nothing is dropped after the read timeout, and the next served
        let silent = UnixStream::connect(&path).unwrap();
        let t0 = std::time::Instant::now();
        let r = crate::client::call(&path, &crate::protocol::Request::Bans).unwrap();
        assert!(r.ok && t0.elapsed() < READ_TIMEOUT + Duration::from_secs(3));
        let mut rest = Vec::new();
        let _ = (&silent).read_to_end(&mut rest);
        assert!(String::from_utf8_lossy(&rest).contains("not received in time"));
        stop.store(true, Ordering::Relaxed);
        server.join().unwrap();
        assert!(!path.exists(), "socket file left behind");
        drop(w);
    }

    /// A client sending one byte every 100 ms (for up to 20 s, longer than the CLI waits)
    /// neither holds the socket past its request deadline nor delays another client.
    #[test]
    fn a_trickling_client_neither_holds_the_socket_nor_delays_another() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let sock = ControlSocket::bind(&path).unwrap();
        let (ctx, rx) = ctx();
        let w = worker(rx);
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let server = std::thread::spawn(move || serve(sock, ctx, s2));
        let trickler = UnixStream::connect(&path).unwrap();
        let t = trickler.try_clone().unwrap();
        let writer = std::thread::spawn(move || {
            let mut sent = 0u32;
            // `{"cmd":"bans"` never ends: one byte at a time, each within any read timeout.
            for b in b"{\"cmd\":\"bans\"".iter().cycle().take(200) {
                if (&t).write_all(&[*b]).is_err() {
                    break;
                }
                sent += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            sent
        });
        // served while the trickler is still connected, not after it
        let r = crate::client::call(&path, &crate::protocol::Request::Bans).unwrap();
        assert!(r.ok, "{r:?}");
        let ban = crate::protocol::Request::Ban {
            net: "203.0.113.9".into(),
            secs: 60,
            reason: "concurrent".into(),
            extend: false,
        };
        let r = crate::client::call(&path, &ban).unwrap();
        assert!(r.ok, "{r:?}");
        // the trickler is cut off by its request deadline, told why, and stops writing
        trickler.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut answer = String::new();
        std::io::BufReader::new(&trickler).read_line(&mut answer).unwrap();
        assert!(answer.contains("not received in time"), "{answer}");
        let sent = writer.join().unwrap();
        assert!(sent < 200, "the trickler was never cut off");
        stop.store(true, Ordering::Relaxed);
        server.join().unwrap();
        drop(w);
    }

    /// Concurrency is bounded: with MAX_CLIENTS silent clients being served, one more is told
    /// "busy" at once; once the silent ones hit their deadline, clients are served again.
    #[test]
    fn clients_beyond_the_cap_are_told_busy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let sock = ControlSocket::bind(&path).unwrap();
        let (ctx, rx) = ctx();
        let w = worker(rx);
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let server = std::thread::spawn(move || serve(sock, ctx, s2));
        let silent: Vec<UnixStream> =
            (0..MAX_CLIENTS).map(|_| UnixStream::connect(&path).unwrap()).collect();
        // the cap is reached once the accept loop has taken all of them (bounded wait)
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let busy = loop {
            let r = crate::client::call(&path, &crate::protocol::Request::Bans).unwrap();
            if !r.ok {
                break r.error.unwrap();
            }
            assert!(std::time::Instant::now() < deadline, "never busy");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(busy, BUSY);
        for s in &silent {
            let mut line = String::new();
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            std::io::BufReader::new(s).read_line(&mut line).unwrap();
            assert!(line.contains("not received in time"), "{line}");
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !crate::client::call(&path, &crate::protocol::Request::Bans).unwrap().ok {
            assert!(std::time::Instant::now() < deadline, "still busy after the deadlines");
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, Ordering::Relaxed);
        server.join().unwrap();
        drop(w);
    }

    #[test]
    fn a_stale_socket_is_replaced_but_no_other_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        drop(UnixListener::bind(&path).unwrap()); // file stays, nobody listens
        let sock = ControlSocket::bind(&path).unwrap();
        drop(sock);
        assert!(!path.exists());
        std::fs::write(&path, b"not a socket").unwrap();
        assert!(format!("{:#}", ControlSocket::bind(&path).unwrap_err()).contains("not a socket"));
        assert!(path.exists());
    }
}
