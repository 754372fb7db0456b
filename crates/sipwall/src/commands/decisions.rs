//! `sipwall decisions`: recent non-accept decisions and operator actions, read from the store
//! (read-only), whether or not the daemon runs.
use std::path::PathBuf;
use std::process::ExitCode;

use super::{emit, open_store, plural, store_path, Format};
use crate::time;

/// `sipwall decisions`.
#[derive(Debug, clap::Args)]
pub struct DecisionsArgs {
    /// How many (newest first).
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// State directory holding sipwall.db (default: the config's `enforce.state_dir`, else
    /// /var/lib/sipwall).
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Config file to take `enforce.state_dir` from.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Only decisions about sources inside this address or network.
    #[arg(long)]
    pub ip: Option<String>,
    /// Only decisions since then: a duration back from now (1h, 30m, 2d) or an RFC 3339 time
    /// (2026-12-01T10:00:00Z).
    #[arg(long)]
    pub since: Option<String>,
    /// Only decisions of this rule (`signature.friendly-scanner`) or family (`behaviour`).
    #[arg(long)]
    pub rule: Option<String>,
}

/// Most stored decisions looked through when filtering (newest first).
pub const SCAN_LIMIT: usize = 100_000;

/// The filters of `--ip`, `--since` and `--rule`, checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// Source inside.
    pub net: Option<ipnet::IpNet>,
    /// At or after (ms since the epoch).
    pub since_ms: Option<u64>,
    /// Rule or family.
    pub rule: Option<String>,
}

impl Filter {
    /// From the arguments; `now_ms` anchors a relative `--since`.
    pub fn parse(
        ip: Option<&str>,
        since: Option<&str>,
        rule: Option<&str>,
        now_ms: u64,
    ) -> anyhow::Result<Filter> {
        let net = match ip {
            Some(s) => match s.parse::<std::net::IpAddr>() {
                Ok(a) => Some(ipnet::IpNet::from(a)),
                Err(_) => {
                    Some(crate::protocol::parse_net(s).map_err(|e| anyhow::anyhow!("--ip: {e}"))?)
                }
            },
            None => None,
        };
        let since_ms = match since {
            None => None,
            Some(s) => Some(match s.parse::<jiff::Timestamp>() {
                Ok(t) => u64::try_from(t.as_millisecond()).unwrap_or(0),
                Err(_) => {
                    let d = time::parse_duration(s).map_err(|e| {
                        anyhow::anyhow!(
                            "--since '{s}': neither a duration nor an RFC 3339 time ({e:#})"
                        )
                    })?;
                    now_ms.saturating_sub(d.as_millis() as u64)
                }
            }),
        };
        Ok(Filter { net, since_ms, rule: rule.map(str::to_string) })
    }
    /// True when nothing filters.
    pub fn is_empty(&self) -> bool {
        self == &Filter::default()
    }
    /// Does a decision pass?
    pub fn keeps(&self, at_ms: u64, src: std::net::IpAddr, rule: &str) -> bool {
        self.net.is_none_or(|n| n.contains(&src))
            && self.since_ms.is_none_or(|s| at_ms >= s)
            && self.rule.as_deref().is_none_or(|r| {
                rule == r || (!r.contains('.') && crate::config::family_of(rule) == r)
            })
    }
}

/// The newest `limit` recorded decisions passing `filter`, newest first, from the store opened
/// read-only: what `sipwall decisions` and the HTTP API's `/api/v1/decisions` both list. The
/// store answers "the newest N" only, so a filter looks at the newest [`SCAN_LIMIT`].
pub fn read(
    db: &std::path::Path,
    filter: &Filter,
    limit: usize,
) -> anyhow::Result<Vec<sipwall_store::StoredDecision>> {
    if filter.is_empty() {
        return Ok(open_store(db)?.recent_decisions(limit)?);
    }
    let mut rows = open_store(db)?.recent_decisions(SCAN_LIMIT)?;
    rows.retain(|d| filter.keeps(d.at.as_millis(), d.src.ip(), &d.rule));
    rows.truncate(limit);
    Ok(rows)
}

/// One decision in the JSON form shared by `decisions --format json` and the HTTP API.
pub fn to_json(d: &sipwall_store::StoredDecision) -> serde_json::Value {
    serde_json::json!({
        "at_ms": d.at.as_millis(),
        "src": d.src.to_string(),
        "verdict": d.verdict,
        "rule": d.rule,
        "summary": d.summary,
        "evidence": d.evidence,
    })
}

/// `sipwall decisions`: read the store directly.
pub fn decisions(args: DecisionsArgs) -> anyhow::Result<ExitCode> {
    let db = store_path(args.state.as_deref(), args.config.as_deref())?;
    // Read-only: never creates an empty store by looking at a wrong directory.
    let filter = Filter::parse(
        args.ip.as_deref(),
        args.since.as_deref(),
        args.rule.as_deref(),
        time::now_ms(),
    )?;
    let rows = read(&db, &filter, args.limit)?;
    match args.format {
        Format::Json => {
            let v: Vec<_> = rows.iter().map(to_json).collect();
            emit(&(serde_json::to_string_pretty(&v)? + "\n"))?;
        }
        Format::Text => {
            let mut out = String::new();
            for d in &rows {
                // Simulated (observe mode): accepted, the summary says what it would do.
                let verdict = if d.summary.starts_with("[would ") {
                    "observed".to_string()
                } else {
                    d.verdict.to_string()
                };
                out.push_str(&format!(
                    "{}  {}  {}  {}  {}\n",
                    time::rfc3339(d.at.as_millis()),
                    d.src,
                    verdict,
                    d.rule,
                    d.summary
                ));
            }
            out.push_str(&format!(
                "{} decision{} (newest first)\n",
                rows.len(),
                plural(rows.len())
            ));
            emit(&out)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_by_address_range_time_and_rule_or_family() {
        let now = 10 * 3_600_000;
        let f = Filter::parse(Some("198.51.100.0/24"), Some("1h"), Some("behaviour"), now).unwrap();
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        assert!(f.keeps(now - 1000, ip("198.51.100.7"), "behaviour.flood"));
        assert!(!f.keeps(now - 1000, ip("203.0.113.7"), "behaviour.flood"));
        assert!(!f.keeps(now - 3_600_001, ip("198.51.100.7"), "behaviour.flood"));
        assert!(!f.keeps(now - 1000, ip("198.51.100.7"), "signature.sipvicious"));
        let exact = Filter::parse(Some("203.0.113.9"), None, Some("tripwire"), now).unwrap();
        assert!(exact.keeps(0, ip("203.0.113.9"), "tripwire"));
        assert!(!exact.keeps(0, ip("203.0.113.10"), "tripwire"));
        let at = Filter::parse(None, Some("1970-01-01T01:00:00Z"), None, now).unwrap();
        assert_eq!(at.since_ms, Some(3_600_000));
        assert!(Filter::parse(None, None, None, now).unwrap().is_empty());
        let e = Filter::parse(None, Some("yesterday"), None, now).unwrap_err().to_string();
        assert!(e.contains("--since 'yesterday'"), "{e}");
        assert!(Filter::parse(Some("198.51.100.7/16"), None, None, now).is_err());
    }
}
