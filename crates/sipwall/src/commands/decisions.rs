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
}

/// `sipwall decisions`: read the store directly.
pub fn decisions(args: DecisionsArgs) -> anyhow::Result<ExitCode> {
    let db = store_path(args.state.as_deref(), args.config.as_deref())?;
    // Read-only: never creates an empty store by looking at a wrong directory.
    let rows = open_store(&db)?.recent_decisions(args.limit)?;
    match args.format {
        Format::Json => {
            let v: Vec<_> = rows
                .iter()
                .map(|d| {
                    serde_json::json!({
                        "at_ms": d.at.as_millis(),
                        "src": d.src.to_string(),
                        "verdict": d.verdict,
                        "rule": d.rule,
                        "summary": d.summary,
                        "evidence": d.evidence,
                    })
                })
                .collect();
            emit(&(serde_json::to_string_pretty(&v)? + "\n"))?;
        }
        Format::Text => {
            let mut out = String::new();
            for d in &rows {
                let verdict = match d.verdict {
                    sipwall_engine::Verdict::Accept => "accept".to_string(),
                    sipwall_engine::Verdict::Drop => "drop".to_string(),
                    sipwall_engine::Verdict::Reject(c) => format!("reject {c}"),
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
