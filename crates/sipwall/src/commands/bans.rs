//! `sipwall bans`: the active bans, from the daemon, or from the store (read-only) when no
//! daemon runs.
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::{open_store, plural, store_path, Format, SocketArgs};
use crate::client;
use crate::protocol::{BanView, Request};
use crate::time;

/// `sipwall bans`.
#[derive(Debug, clap::Args)]
pub struct BansArgs {
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// State directory holding sipwall.db, read (read-only) when no daemon answers (default:
    /// the config's `enforce.state_dir`, else /var/lib/sipwall).
    #[arg(long)]
    pub state: Option<PathBuf>,
    #[command(flatten)]
    pub socket: SocketArgs,
}

/// Time left, in whole seconds (a ban with 999 ms left shows `0s`, not a rounded-up `1s`).
fn left(until_ms: u64, now_ms: u64) -> String {
    match until_ms.saturating_sub(now_ms) / 1000 {
        0 => "0s".to_string(),
        s => time::human(std::time::Duration::from_secs(s)),
    }
}

/// The text listing of `sipwall bans`.
pub fn bans_text(bans: &[BanView], now_ms: u64) -> String {
    let mut out = String::new();
    let w = bans.iter().map(|b| b.net.len()).max().unwrap_or(3).max(3);
    out.push_str(&format!(
        "{:<w$}  {:<20}  {:>7}  {:>5}  {:<20}  REASON\n",
        "NET", "UNTIL", "LEFT", "COUNT", "RULE"
    ));
    for b in bans {
        out.push_str(&format!(
            "{:<w$}  {:<20}  {:>7}  {:>5}  {:<20}  {}\n",
            b.net,
            time::rfc3339(b.until_ms),
            left(b.until_ms, now_ms),
            b.count,
            b.rule,
            b.reason
        ));
    }
    out.push_str(&format!("{} active ban{}\n", bans.len(), plural(bans.len())));
    out
}

/// The active bans of the store, as the daemon would list them.
fn stored_bans(db: &Path) -> anyhow::Result<Vec<BanView>> {
    let store = open_store(db)?;
    let now = sipwall_engine::Timestamp::from_millis(time::now_ms());
    let mut bans: Vec<BanView> = store.load_active_bans(now)?.iter().map(BanView::of).collect();
    bans.sort_by(|a, b| a.until_ms.cmp(&b.until_ms).then_with(|| a.net.cmp(&b.net)));
    Ok(bans)
}

/// `sipwall bans`: from the daemon, or from the store (read-only) when no daemon runs.
pub fn bans(args: BansArgs) -> anyhow::Result<ExitCode> {
    let sock = args.socket.path()?;
    let bans = match client::call(&sock, &Request::Bans) {
        Ok(r) if r.ok => r.bans.unwrap_or_default(),
        Ok(r) => anyhow::bail!("{}", r.error.as_deref().unwrap_or("refused")),
        Err(e) if client::daemon_absent(&e) => {
            let db = store_path(args.state.as_deref(), args.socket.config.as_deref())?;
            let bans = stored_bans(&db).map_err(|se| {
                anyhow::anyhow!("{e:#}; and no stored bans to list instead: {se:#}")
            })?;
            eprintln!(
                "sipwall: no daemon answers at {}; bans stored in {} (read-only)",
                sock.display(),
                db.display()
            );
            bans
        }
        Err(e) => return Err(e),
    };
    match args.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"count": bans.len(), "bans": bans}))?
        ),
        Format::Text => print!("{}", bans_text(&bans, time::now_ms())),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_reads_well() {
        let b = BanView {
            net: "203.0.113.9/32".into(),
            since_ms: 0,
            until_ms: 600_000,
            count: 2,
            rule: "manual".into(),
            reason: "test".into(),
            origin: "manual".into(),
        };
        let t = bans_text(&[b], 1000);
        assert!(t.contains("203.0.113.9/32  1970-01-01T00:10:00Z   9m 59s      2  manual"), "{t}");
        assert!(t.ends_with("1 active ban\n"), "{t}");
        assert_eq!(left(600_000, 599_001), "0s");
        assert_eq!(left(600_000, 700_000), "0s");
        assert_eq!(left(5_400_000, 0), "1h 30m");
    }
}
