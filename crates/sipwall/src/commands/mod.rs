//! Operator commands: one file per subcommand family, each owning its clap arguments, what
//! it does and how it prints. Commands that talk to the daemon use [`crate::client`] and the
//! [`crate::protocol`] model; offline queries open the state store read-only. Adding a
//! subcommand: one file here, one variant in `main.rs`'s `Command`.
//!
//! `sipwall decisions` does not use the socket: it reads the store (`STATE_DIR/sipwall.db`)
//! directly, which works whether or not the daemon runs (the store is SQLite in WAL mode, so
//! reading it beside the running daemon is safe). Decisions appear there once the daemon's
//! ban worker wrote its current batch. `sipwall bans` asks the daemon, and when no daemon
//! listens on the socket (no socket file, or nobody accepting) lists the store's active
//! bans instead, saying so on stderr. Both open the store with
//! [`sipwall_store::Store::open_read_only`]: an offline query never creates, migrates or
//! writes the state file, and a missing one is an error naming its path.
use std::path::{Path, PathBuf};

use crate::config;

pub mod ban;
pub mod bans;
pub mod check_config;
pub mod decisions;
pub mod feed;
pub mod generate;
pub mod status;

/// Where the client finds the daemon.
#[derive(Debug, Clone, clap::Args)]
pub struct SocketArgs {
    /// Control socket of the running daemon (default: the config's `enforce.control_socket`,
    /// else /run/sipwall/control.sock).
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// Config file to take `enforce.control_socket` from.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

impl SocketArgs {
    /// `--socket`, else the config's `enforce.control_socket`, else the default.
    pub fn path(&self) -> anyhow::Result<PathBuf> {
        if let Some(p) = &self.socket {
            return Ok(p.clone());
        }
        match &self.config {
            Some(c) => Ok(config::load(c)?.enforce.control_socket),
            None => Ok(PathBuf::from(config::DEFAULT_CONTROL_SOCKET)),
        }
    }
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns.
    Text,
    /// One JSON document.
    Json,
}

/// The store file of `--state`, else the config's `enforce.state_dir`, else the default.
pub fn store_path(state: Option<&Path>, config: Option<&Path>) -> anyhow::Result<PathBuf> {
    let dir = match (state, config) {
        (Some(d), _) => d.to_path_buf(),
        (None, Some(c)) => config::load(c)?.enforce.state_dir,
        (None, None) => PathBuf::from(config::DEFAULT_STATE_DIR),
    };
    Ok(dir.join(config::STORE_FILE))
}

/// Open the state store read-only: never creates, migrates or writes it.
pub fn open_store(db: &Path) -> anyhow::Result<sipwall_store::Store> {
    sipwall_store::Store::open_read_only(db).map_err(|e| {
        if matches!(e, sipwall_store::StoreError::Missing { .. }) {
            anyhow::anyhow!("{e} (see --state)")
        } else {
            e.into()
        }
    })
}

/// Standard output was closed by its reader (`sipwall bans | head -0`): not an error. `main`
/// exits quietly with status 0, as the coreutils do, instead of panicking.
#[derive(Debug)]
pub struct ClosedPipe;

impl std::fmt::Display for ClosedPipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("standard output closed by its reader")
    }
}

impl std::error::Error for ClosedPipe {}

/// Write `text` to standard output (`println!` panics on a closed pipe: Rust ignores
/// SIGPIPE, so the write fails with EPIPE). A closed pipe is [`ClosedPipe`].
pub fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(ClosedPipe.into()),
        r => Ok(r?),
    }
}

/// "s" unless exactly one.
pub fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
