//! `sipwall bans`: the active bans, from the daemon, or from the store (read-only) when no
//! daemon runs.
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::{emit, open_store, plural, store_path, Format, SocketArgs};
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
    /// Only the bans that cover this address (a range holding it counts).
    #[arg(long)]
    pub ip: Option<std::net::IpAddr>,
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

/// The text listing of `sipwall bans`: every column as wide as its widest cell, a ban whose
/// store commit is still pending marked `pending` in the STORED column, and the store's
/// condition first when it is not the normal one (`store: unavailable (in memory)`).
pub fn bans_text(bans: &[BanView], now_ms: u64, store: Option<&str>) -> String {
    let mut out = String::new();
    if let Some(state) = store {
        out.push_str(&format!("store: {state}\n"));
    }
    let head = ["NET", "UNTIL", "LEFT", "COUNT", "RULE", "STORED", "REASON"];
    let rows: Vec<[String; 7]> = bans
        .iter()
        .map(|b| {
            [
                b.net.clone(),
                time::rfc3339(b.until_ms),
                left(b.until_ms, now_ms),
                b.count.to_string(),
                b.rule.clone(),
                match (b.simulated, b.durable) {
                    (true, _) => "simulated",
                    (false, true) => "yes",
                    (false, false) => "pending",
                }
                .to_string(),
                b.reason.clone(),
            ]
        })
        .collect();
    let mut w = head.map(str::len);
    for r in &rows {
        for (w, cell) in w.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 7]| {
        format!(
            "{:<w0$}  {:<w1$}  {:>w2$}  {:>w3$}  {:<w4$}  {:<w5$}  {}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            cells[4],
            cells[5],
            cells[6],
            w0 = w[0],
            w1 = w[1],
            w2 = w[2],
            w3 = w[3],
            w4 = w[4],
            w5 = w[5],
        )
        .trim_end()
        .to_string()
            + "\n"
    };
    out.push_str(&line(head));
    for r in &rows {
        out.push_str(&line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5], &r[6]]));
    }
    let pending = bans.iter().filter(|b| !b.durable).count();
    out.push_str(&format!("{} active ban{}", bans.len(), plural(bans.len())));
    if pending > 0 {
        out.push_str(&format!(" ({pending} not yet in the store)"));
    }
    out.push('\n');
    out
}

/// The active bans of the store, as the daemon would list them.
pub fn stored_bans(db: &Path) -> anyhow::Result<Vec<BanView>> {
    let store = open_store(db)?;
    let now = sipwall_engine::Timestamp::from_millis(time::now_ms());
    let mut bans: Vec<BanView> = store.load_active_bans(now)?.iter().map(BanView::of).collect();
    bans.sort_by(|a, b| a.until_ms.cmp(&b.until_ms).then_with(|| a.net.cmp(&b.net)));
    Ok(bans)
}

/// `sipwall bans`: from the daemon, or from the store (read-only) when no daemon runs.
pub fn bans(args: BansArgs) -> anyhow::Result<ExitCode> {
    let sock = args.socket.path()?;
    let mut store = None;
    let bans = match client::call(&sock, &Request::Bans) {
        Ok(r) if r.ok => {
            store = r.store;
            r.bans.unwrap_or_default()
        }
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
    let bans = match args.ip {
        Some(ip) => crate::protocol::bans_containing(bans, ip),
        None => bans,
    };
    let out = match args.format {
        Format::Json => {
            let mut doc = serde_json::json!({"count": bans.len(), "bans": bans});
            if let Some(state) = &store {
                doc["store"] = serde_json::Value::from(state.as_str());
            }
            serde_json::to_string_pretty(&doc)? + "\n"
        }
        Format::Text => bans_text(&bans, time::now_ms(), store.as_deref()),
    };
    emit(&out)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(net: &str, until_ms: u64, rule: &str, durable: bool) -> BanView {
        BanView {
            net: net.into(),
            since_ms: 0,
            until_ms,
            count: 2,
            rule: rule.into(),
            reason: "test".into(),
            origin: "manual".into(),
            durable,
            simulated: false,
        }
    }

    #[test]
    fn listing_reads_well() {
        let t = bans_text(&[view("203.0.113.9/32", 600_000, "manual", true)], 1000, None);
        assert!(
            t.contains("203.0.113.9/32  1970-01-01T00:10:00Z  9m 59s      2  manual  yes     test"),
            "{t}"
        );
        assert!(t.ends_with("1 active ban\n"), "{t}");
        assert_eq!(left(600_000, 599_001), "0s");
        assert_eq!(left(600_000, 700_000), "0s");
        assert_eq!(left(5_400_000, 0), "1h 30m");
    }

    /// Every column starts at the same offset on every line, whatever the width of the rule
    /// (a long detection rule name pushed REASON right on its line only) or the net.
    #[test]
    fn columns_line_up_and_pending_bans_are_marked() {
        let bans = [
            view("203.0.113.9/32", 600_000, "manual", true),
            view("2001:db8:4:5::/64", 5_400_000, "scanner.user_agent.friendly_scanner", false),
        ];
        let t = bans_text(&bans, 1000, Some("unavailable (in memory): corrupt"));
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "store: unavailable (in memory): corrupt");
        for col in ["UNTIL", "LEFT", "COUNT", "RULE", "STORED", "REASON"] {
            let at = lines[1].find(col).unwrap();
            let end = at + col.len();
            for row in &lines[2..4] {
                // left-aligned columns start at the header, right-aligned ones end with it
                let cell_edge = if matches!(col, "LEFT" | "COUNT") {
                    row.as_bytes()[end - 1] != b' ' && row.as_bytes().get(end) == Some(&b' ')
                } else {
                    row.as_bytes()[at - 1] == b' ' && row.as_bytes()[at] != b' '
                };
                assert!(cell_edge, "{col} misaligned:\n{t}");
            }
        }
        assert!(lines[2].contains(" yes ") && lines[3].contains(" pending "), "{t}");
        assert!(t.ends_with("2 active bans (1 not yet in the store)\n"), "{t}");
    }
}
