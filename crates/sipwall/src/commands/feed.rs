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
    /// The block lists of `[blocklist] urls` as the daemon last fetched them: each URL's
    /// last try and its result, and the list in force (entries, from when). Reads
    /// STATE_DIR/feeds/status.json.
    Status(StatusArgs),
}

/// `sipwall feed status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: super::Format,
    /// State directory (default: the config's `enforce.state_dir`, else /var/lib/sipwall).
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Config file to take `enforce.state_dir` from.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
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
        FeedCommand::Status(args) => status(args),
    }
}

fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    use crate::feeds::fetch::{UrlStatus, FEEDS_DIR, STATUS_FILE};
    let db = store_path(args.state.as_deref(), args.config.as_deref())?;
    let file = db.parent().unwrap_or(std::path::Path::new(".")).join(FEEDS_DIR).join(STATUS_FILE);
    let text = match crate::config::read_bounded(&file, 1 << 20) {
        Ok(t) => t,
        Err(e) => {
            eprintln!(
                "sipwall: no block-list status ({e:#}): no `[blocklist] urls` fetched yet by                  `sipwall run` with this state directory (see --state)"
            );
            return Ok(ExitCode::from(1));
        }
    };
    let list: Vec<UrlStatus> = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: not a block-list status: {e}", file.display()))?;
    let out = match args.format {
        super::Format::Json => serde_json::to_string_pretty(&list)? + "\n",
        super::Format::Text => status_text(&list, time::now_ms()),
    };
    emit(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// Two lines per URL: its last try, and the list in force.
pub fn status_text(list: &[crate::feeds::fetch::UrlStatus], now_ms: u64) -> String {
    let ago = |ms: u64| {
        let secs = now_ms.saturating_sub(ms) / 1000;
        format!("{} ({} ago)", time::rfc3339(ms), time::human(std::time::Duration::from_secs(secs)))
    };
    let mut out = String::new();
    for u in list {
        out += &format!("{}\n", u.url);
        if u.last_try_ms == 0 {
            out += &format!("  last try:  {}\n", u.result);
        } else {
            out += &format!("  last try:  {}: {}\n", ago(u.last_try_ms), u.result);
        }
        match u.copy_ms {
            Some(ms) => {
                out += &format!("  in force:  {} entries, list of {}\n", u.entries, ago(ms))
            }
            None => out += "  in force:  nothing (no good download yet)\n",
        }
    }
    out
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
