//! `sipwall learned`: what the running daemon learned from the wire (upstreams, local users,
//! known-good clients, each with first and last seen and the evidence), and `learned pin` /
//! `learned forget` to keep or drop one fact. Asks the daemon over the control socket; when
//! no daemon answers, lists the facts stored in the state store (read-only).
use std::path::PathBuf;
use std::process::ExitCode;

use super::{emit, open_store, plural, store_path, Format, SocketArgs};
use crate::client;
use crate::protocol::{LearnedFactView, LearnedView, Request};
use crate::time;

/// `sipwall learned [pin|forget ENTRY]`.
#[derive(Debug, clap::Args)]
pub struct LearnedArgs {
    #[command(subcommand)]
    pub action: Option<LearnedAction>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text", global = true)]
    pub format: Format,
    /// State directory holding sipwall.db, read (read-only) when no daemon answers.
    #[arg(long)]
    pub state: Option<PathBuf>,
    #[command(flatten)]
    pub socket: SocketArgs,
}

/// What to do with one fact.
#[derive(Debug, clap::Subcommand)]
pub enum LearnedAction {
    /// Keep a fact for good (never expires); a fact not seen yet is created, e.g.
    /// `sipwall learned pin upstream 198.51.100.2` before the provider is first seen.
    Pin {
        /// `upstream ADDR`, `user NAME` or `known-good ADDR`.
        #[arg(required = true, num_args = 1..=2)]
        entry: Vec<String>,
    },
    /// Forget a fact (pinned or not): an address stops being protected at once.
    Forget {
        /// `upstream ADDR`, `user NAME` or `known-good ADDR`.
        #[arg(required = true, num_args = 1..=2)]
        entry: Vec<String>,
    },
}

/// The text listing: one line per fact, columns aligned, the learning state first.
pub fn learned_text(v: &LearnedView) -> String {
    let state = match (v.mode.as_str(), v.enforcing) {
        ("off", _) => "learning: off (facts kept, not used)".to_string(),
        (_, true) => "learning: auto, enforcing (an upstream is known)".to_string(),
        _ => "learning: auto, learning, not enforcing yet (no upstream learned)".to_string(),
    };
    let mut out = format!("{state}\n");
    let head = ["KIND", "VALUE", "FIRST SEEN", "LAST SEEN", "EXPIRES", "EVIDENCE"];
    let rows: Vec<[String; 6]> = v
        .facts
        .iter()
        .map(|f: &LearnedFactView| {
            [
                f.kind.clone(),
                f.value.clone(),
                time::rfc3339(f.first_seen_ms),
                time::rfc3339(f.last_seen_ms),
                match (f.pinned, f.expires_ms) {
                    (true, _) => "pinned".to_string(),
                    (false, Some(ms)) => time::rfc3339(ms),
                    (false, None) => "never".to_string(),
                },
                f.evidence.clone(),
            ]
        })
        .collect();
    let mut w = head.map(str::len);
    for r in &rows {
        for (w, cell) in w.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |c: [&str; 6]| {
        let mut l = String::new();
        for (i, cell) in c.iter().enumerate() {
            if i + 1 == c.len() {
                l.push_str(cell);
            } else {
                l.push_str(&format!("{cell:<width$}  ", width = w[i]));
            }
        }
        l.trim_end().to_string() + "\n"
    };
    out.push_str(&line(head));
    for r in &rows {
        out.push_str(&line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]]));
    }
    out.push_str(&format!("{} learned fact{}\n", v.facts.len(), plural(v.facts.len())));
    out
}

/// The facts of the store, when no daemon runs (no policy at hand: expiry not shown).
fn stored(db: &std::path::Path) -> anyhow::Result<LearnedView> {
    let store = open_store(db)?;
    let facts = store
        .load_learned()?
        .into_iter()
        .map(|f| LearnedFactView {
            kind: f.kind,
            value: f.key,
            first_seen_ms: f.first_seen.as_millis(),
            last_seen_ms: f.last_seen.as_millis(),
            expires_ms: None,
            evidence: f.evidence,
            pinned: f.pinned,
        })
        .collect();
    Ok(LearnedView { mode: "unknown (no daemon)".into(), enforcing: false, facts })
}

/// `sipwall learned`.
pub fn learned(args: LearnedArgs) -> anyhow::Result<ExitCode> {
    let sock = args.socket.path()?;
    let req = match &args.action {
        None => Request::Learned,
        Some(LearnedAction::Pin { entry }) => Request::LearnedPin { entry: entry.join(" ") },
        Some(LearnedAction::Forget { entry }) => Request::LearnedForget { entry: entry.join(" ") },
    };
    let (message, view) = match client::call(&sock, &req) {
        Ok(r) if r.ok => (r.message, r.learned.map(|l| *l).unwrap_or_default()),
        Ok(r) => anyhow::bail!("{}", r.error.as_deref().unwrap_or("refused")),
        Err(e) if args.action.is_none() && client::daemon_absent(&e) => {
            let db = store_path(args.state.as_deref(), args.socket.config.as_deref())?;
            let view = stored(&db).map_err(|se| {
                anyhow::anyhow!("{e:#}; and no stored facts to list instead: {se:#}")
            })?;
            eprintln!(
                "sipwall: no daemon answers at {}; facts stored in {} (read-only)",
                sock.display(),
                db.display()
            );
            (None, view)
        }
        Err(e) => return Err(e),
    };
    let out = match args.format {
        Format::Json => serde_json::to_string_pretty(&view)? + "\n",
        Format::Text => {
            let mut t = String::new();
            if args.action.is_some() {
                if let Some(m) = message {
                    t.push_str(&format!("{m}\n"));
                }
            }
            t + &learned_text(&view)
        }
    };
    emit(&out)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_shows_state_expiry_and_evidence_in_columns() {
        let v = LearnedView {
            mode: "auto".into(),
            enforcing: true,
            facts: vec![
                LearnedFactView {
                    kind: "upstream".into(),
                    value: "198.51.100.2".into(),
                    first_seen_ms: 1000,
                    last_seen_ms: 61_000,
                    expires_ms: None,
                    evidence: "REGISTER 200 from 198.51.100.2:5060".into(),
                    pinned: true,
                },
                LearnedFactView {
                    kind: "known-good".into(),
                    value: "203.0.113.7".into(),
                    first_seen_ms: 2000,
                    last_seen_ms: 2000,
                    expires_ms: Some(86_402_000),
                    evidence: "digest 200".into(),
                    pinned: false,
                },
            ],
        };
        let t = learned_text(&v);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "learning: auto, enforcing (an upstream is known)");
        assert!(lines[2].starts_with("upstream    198.51.100.2  1970-01-01T00:00:01Z"), "{t}");
        assert!(lines[2].contains("pinned") && lines[3].contains("1970-01-02T00:00:02Z"), "{t}");
        let at = lines[1].find("EVIDENCE").unwrap();
        assert_eq!(lines[2].find("REGISTER"), Some(at), "{t}");
        assert!(t.ends_with("2 learned facts\n"));
        let off = LearnedView { enforcing: false, ..v };
        assert!(learned_text(&off).starts_with("learning: auto, learning, not enforcing yet"));
    }
}
