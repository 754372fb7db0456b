//! `sipwall feed export`: the active bans as a block-list feed for other firewalls (see
//! [`crate::feeds::render`]), from the running daemon over the control socket, or from the
//! store (read-only) when no daemon answers, as `sipwall bans` does.
use std::path::PathBuf;
use std::process::ExitCode;

use super::{emit, store_path, SocketArgs};
use crate::client;
use crate::feeds::render::{render, FeedFormat};
use crate::protocol::Request;
use crate::time;

/// `sipwall feed ...`.
#[derive(Debug, clap::Subcommand)]
pub enum FeedCommand {
    /// Print the active bans as a feed: `plain` (one address or network per line), `nft`
    /// (an `nft -f` file), `ipset` (an `ipset restore` file), `mikrotik` (a RouterOS
    /// script) or `json`. Simulated bans are left out.
    Export(ExportArgs),
}

/// `sipwall feed export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Feed format.
    #[arg(long, value_enum, default_value = "plain")]
    pub format: FeedFormat,
    /// State directory holding sipwall.db, read (read-only) when no daemon answers (default:
    /// the config's `enforce.state_dir`, else /var/lib/sipwall).
    #[arg(long)]
    pub state: Option<PathBuf>,
    #[command(flatten)]
    pub socket: SocketArgs,
}

/// Entry point.
pub fn main(cmd: FeedCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        FeedCommand::Export(args) => export(args),
    }
}

fn export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let sock = args.socket.path()?;
    let bans = match client::call(&sock, &Request::Bans) {
        Ok(r) if r.ok => r.bans.unwrap_or_default(),
        Ok(r) => anyhow::bail!("{}", r.error.as_deref().unwrap_or("refused")),
        Err(e) if client::daemon_absent(&e) => {
            let db = store_path(args.state.as_deref(), args.socket.config.as_deref())?;
            let bans = super::bans::stored_bans(&db).map_err(|se| {
                anyhow::anyhow!("{e:#}; and no stored bans to export instead: {se:#}")
            })?;
            eprintln!(
                "sipwall: no daemon answers at {}; exporting the bans stored in {} (read-only)",
                sock.display(),
                db.display()
            );
            bans
        }
        Err(e) => return Err(e),
    };
    emit(&render(&bans, args.format, time::now_ms()))?;
    Ok(ExitCode::SUCCESS)
}
