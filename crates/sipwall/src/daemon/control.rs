//! The control socket: operator commands (`sipwall ban/unban/bans`) to the running daemon.
//! Protocol and limits: [`crate::control`].
//!
//! CONTRACT:
//! * The socket is bound at start, while the daemon still holds all its capabilities, with
//!   mode 0600 (root only: a ban is as strong as a firewall rule); a stale socket file of a
//!   crashed run is replaced, a live one (another daemon answers) is an error. It is removed
//!   when [`ControlSocket`] is dropped (every exit path of `sipwall run`).
//! * One thread serves the connections one at a time. Each is bounded: [`READ_TIMEOUT`] to
//!   send a request of at most `MAX_REQUEST` bytes, [`WRITE_TIMEOUT`] to take the answer, so
//!   a stuck client delays the next one by seconds, never wedges the daemon.
//! * The engine is locked only to decide (ban/unban/list), never during I/O. Manual bans and
//!   unbans go to the ban worker as `Work::Apply`, the same kernel-then-store path as detected
//!   bans; the answer is sent once the worker reports the batch applied (or after
//!   [`APPLY_TIMEOUT`], saying so).
use std::io::{BufReader, Write as _};
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, PermissionsExt as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use sipwall_engine::{BanAction, Engine, Timestamp};

use super::state::Work;
use crate::control::{fmt_utc, parse_request, read_request, BanView, Command, Response};

/// Time a client has to send its request.
pub const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// Time a client has to take the answer.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for the ban worker to apply a manual ban or unban.
pub const APPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the accept loop looks at the stop flag.
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
        if let Ok(meta) = std::fs::symlink_metadata(path) {
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
        }
        let listener = UnixListener::bind(path)
            .with_context(|| format!("binding control socket {}", path.display()))?;
        // From here on the file is ours: dropping `sock` removes it, also on the errors below.
        let mut sock = ControlSocket { listener, path: path.to_path_buf(), ino: 0 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("chmod 0600 {}", path.display()))?;
        sock.ino = std::fs::metadata(path)?.ino();
        sock.listener.set_nonblocking(true).context("control socket: non-blocking accept")?;
        Ok(sock)
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }
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

/// What the control thread works with.
pub struct Ctx {
    /// The engine (locked briefly).
    pub engine: Arc<Mutex<Engine>>,
    /// The ban worker.
    pub work: SyncSender<Work>,
    /// The clock.
    pub clock: fn() -> Timestamp,
}

/// Serve until `stop`; the socket file is removed on return.
pub fn serve(sock: ControlSocket, ctx: Ctx, stop: Arc<AtomicBool>) {
    log::info!("control socket {} (mode 0600)", sock.path().display());
    while !stop.load(Ordering::Relaxed) {
        match sock.listener.accept() {
            Ok((stream, _)) => {
                if let Err(e) = serve_one(stream, &ctx) {
                    log::warn!("control socket: {e:#}");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(e) => {
                log::warn!("control socket accept: {e}");
                std::thread::sleep(POLL);
            }
        }
    }
}

fn serve_one(stream: UnixStream, ctx: &Ctx) -> anyhow::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let resp = match read_request(&mut BufReader::new(&stream)).and_then(|l| parse_request(&l)) {
        Ok(cmd) => execute(cmd, ctx),
        Err(e) => Response::error(format!("{e:#}")),
    };
    let mut line = serde_json::to_vec(&resp)?;
    line.push(b'\n');
    (&stream).write_all(&line).context("sending the answer")?;
    Ok(())
}

fn lock(engine: &Mutex<Engine>) -> std::sync::MutexGuard<'_, Engine> {
    match engine.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
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

/// Run one checked command.
pub fn execute(cmd: Command, ctx: &Ctx) -> Response {
    let now = (ctx.clock)();
    match cmd {
        Command::Ban { net, duration, reason } => {
            let action = {
                let mut e = lock(&ctx.engine);
                if e.policy().trusted.overlaps(net) {
                    return Response::error(format!(
                        "{net} is (or overlaps) a trusted network ([trusted] networks): \
                         trusted networks are never banned"
                    ));
                }
                if let Some(b) = e.bans().find(|b| b.net == net && now < b.until) {
                    return Response::error(format!(
                        "{net} is already banned until {} UTC ({}: {}); unban it first to change it",
                        fmt_utc(b.until.as_millis()),
                        b.rule,
                        b.reason
                    ));
                }
                e.ban_manual(net, duration, &reason, now)
            };
            let Some(BanAction::Add(ban)) = action else {
                return Response::error(format!(
                    "the engine refused to ban {net} (ban table full? see limits.max_bans)"
                ));
            };
            let view = BanView::of(&ban);
            log::warn!("manual ban of {net} for {} s: {reason}", duration.as_secs());
            match apply(ctx, vec![BanAction::Add(ban)]) {
                Ok(()) => Response::done(
                    format!(
                        "banned {net} until {} UTC (ban #{}): in the kernel set and the store",
                        fmt_utc(view.until_ms),
                        view.count
                    ),
                    Some(vec![view]),
                ),
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
            log::warn!("manual unban of {net}");
            match apply(ctx, vec![action]) {
                Ok(()) => Response::done(
                    format!(
                        "unbanned {net}: removed from the engine, the kernel set and the store"
                    ),
                    None,
                ),
                Err(e) => Response::error(format!("unbanned {net} in the engine, but: {e}")),
            }
        }
        Command::Bans => {
            let mut bans: Vec<BanView> = {
                let e = lock(&ctx.engine);
                e.bans().filter(|b| now < b.until).map(BanView::of).collect()
            };
            bans.sort_by(|a, b| a.until_ms.cmp(&b.until_ms).then_with(|| a.net.cmp(&b.net)));
            Response::done(format!("{} active ban(s)", bans.len()), Some(bans))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sipwall_engine::Policy;
    use std::io::{BufRead as _, Read as _};

    fn clock() -> Timestamp {
        Timestamp::from_millis(1_000_000)
    }

    fn ctx() -> (Ctx, mpsc::Receiver<Work>) {
        let policy =
            Policy::from_toml_str("[trusted]\nnetworks = [\"198.51.100.0/24\"]\n").unwrap();
        let (tx, rx) = mpsc::sync_channel(16);
        (Ctx { engine: Arc::new(Mutex::new(Engine::new(policy))), work: tx, clock }, rx)
    }

    /// A stand-in for the ban worker: records actions, acknowledges flushes.
    fn worker(rx: mpsc::Receiver<Work>) -> std::thread::JoinHandle<Vec<BanAction>> {
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            while let Ok(w) = rx.recv() {
                match w {
                    Work::Apply(a, ack) => {
                        seen.extend(a);
                        let _ = ack
                            .send(super::super::state::Applied { kernel_ok: true, store_ok: true });
                    }
                    Work::Stop => break,
                    _ => {}
                }
            }
            seen
        })
    }

    #[test]
    fn ban_list_unban_and_refusals() {
        let (ctx, rx) = ctx();
        let w = worker(rx);
        let net: ipnet::IpNet = "203.0.113.9/32".parse().unwrap();
        let ban = Command::Ban { net, duration: Duration::from_secs(600), reason: "test".into() };
        let r = execute(ban.clone(), &ctx);
        assert!(r.ok, "{r:?}");
        assert!(r.message.unwrap().contains("in the kernel set and the store"));
        let again = execute(ban, &ctx);
        assert!(again.error.unwrap().contains("already banned"));
        let trusted = execute(
            Command::Ban {
                net: "198.51.100.0/25".parse().unwrap(),
                duration: Duration::from_secs(60),
                reason: String::new(),
            },
            &ctx,
        );
        assert!(trusted.error.unwrap().contains("trusted"));
        let list = execute(Command::Bans, &ctx).bans.unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(
            (
                list[0].net.as_str(),
                list[0].until_ms,
                list[0].rule.as_str(),
                list[0].reason.as_str()
            ),
            ("203.0.113.9/32", 1_600_000, "manual", "test")
        );
        assert!(execute(Command::Unban(net), &ctx).ok);
        assert!(execute(Command::Unban(net), &ctx).error.unwrap().contains("not banned"));
        assert!(execute(Command::Bans, &ctx).bans.unwrap().is_empty());
        ctx.work.send(Work::Stop).unwrap();
        let seen = w.join().unwrap();
        assert_eq!(seen.len(), 2);
        assert!(matches!(&seen[0], BanAction::Add(b) if b.net == net));
        assert_eq!(seen[1], BanAction::Remove(net));
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
        let _ = c.write_all(&vec![b'x'; 3 * crate::control::MAX_REQUEST]);
        let mut line = String::new();
        std::io::BufReader::new(&c).read_line(&mut line).unwrap();
        assert!(line.contains("longer than 4096"), "{line}");
        // a client that sends nothing is dropped after the read timeout, and the next served
        let silent = UnixStream::connect(&path).unwrap();
        let t0 = std::time::Instant::now();
        let r = crate::control::call(&path, &crate::control::Request::Bans).unwrap();
        assert!(r.ok && t0.elapsed() < READ_TIMEOUT + Duration::from_secs(3));
        let mut rest = Vec::new();
        let _ = (&silent).read_to_end(&mut rest);
        assert!(String::from_utf8_lossy(&rest).contains("not received in time"));
        stop.store(true, Ordering::Relaxed);
        server.join().unwrap();
        assert!(!path.exists(), "socket file left behind");
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
