//! Text, JSON and CSV renderings of an [`Analysis`].
use std::fmt::Write;

use super::{Analysis, SourceReport};

pub use crate::time::{human_ms as fmt_duration, rfc3339_millis as fmt_ms};

fn counts<K: std::fmt::Display>(m: &std::collections::BTreeMap<K, u64>) -> String {
    let mut v: Vec<(&K, &u64)> = m.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1));
    v.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ")
}

/// `a, b, c (+N more)`.
pub fn users_line(s: &SourceReport) -> String {
    let mut line = s.users.iter().take(12).cloned().collect::<Vec<_>>().join(", ");
    let shown = s.users.len().min(12) as u64;
    if s.users_count > shown {
        let _ = write!(line, " (+{} more)", s.users_count - shown);
    }
    line
}

pub fn verdicts_line(s: &SourceReport) -> String {
    let mut parts = Vec::new();
    if s.accepted > 0 {
        parts.push(format!("accepted {}", s.accepted));
    }
    if s.dropped > 0 {
        parts.push(format!("dropped {}", s.dropped));
    }
    if s.rejected > 0 {
        parts.push(format!("rejected {}", s.rejected));
    }
    parts.join(", ")
}

/// The report for a person.
pub fn text(a: &Analysis) -> String {
    let mut o = String::new();
    let span = match (a.first_ms, a.last_ms) {
        (Some(f), Some(l)) => {
            format!(", {} to {} ({})", fmt_ms(f), fmt_ms(l), fmt_duration(l - f))
        }
        _ => String::new(),
    };
    let _ = writeln!(
        o,
        "sipwall inspect: {} SIP messages from {} source{}{span}",
        a.messages,
        a.sources.len(),
        if a.sources.len() == 1 { "" } else { "s" }
    );
    for f in &a.files {
        let _ = write!(o, "  {}: {} records, {} SIP messages", f.path, f.frames, f.sip_messages);
        if f.fragments_reassembled > 0 {
            let _ = write!(o, " ({} reassembled from IP fragments)", f.fragments_reassembled);
        }
        match &f.error {
            Some(e) => {
                let _ = writeln!(o, "; STOPPED: {e}");
            }
            None => o.push('\n'),
        }
        for w in &f.warnings {
            let _ = writeln!(o, "    note: {w}");
        }
    }
    let scanners = a.scanners();
    let _ = writeln!(o, "\nScanners found: {scanners} of {} sources", a.sources.len());
    let _ = writeln!(o, "Bans sipwall would have set: {}", a.bans.len());
    for b in &a.bans {
        let _ = writeln!(
            o,
            "  {:<20} at {} for {} ({}): {}",
            b.net,
            fmt_ms(b.since_ms),
            fmt_duration(b.until_ms.saturating_sub(b.since_ms)),
            b.rule,
            b.reason
        );
    }
    learning_text(&mut o, a);
    if a.unitemised_messages > 0 {
        let _ = writeln!(
            o,
            "({} messages from sources past the first {} are not itemised)",
            a.unitemised_messages,
            super::MAX_SOURCES
        );
    }
    if a.sources.is_empty() {
        return o;
    }
    let _ = writeln!(o, "\nSources, most dangerous first:");
    for s in &a.sources {
        let tag = if !s.bans.is_empty() {
            "SCANNER, banned"
        } else if s.scanner {
            "SCANNER"
        } else {
            "ok"
        };
        let _ = writeln!(o, "\n{}  [{tag}]", s.address);
        let _ = writeln!(
            o,
            "  seen      {} ({})",
            crate::time::span_millis(s.first_seen_ms, s.last_seen_ms),
            fmt_duration(s.last_seen_ms - s.first_seen_ms)
        );
        let _ = writeln!(o, "  messages  {}: {}", s.messages, counts(&s.methods));
        if !s.answers_to_it.is_empty() {
            let _ = writeln!(o, "  answered  {}", counts(&s.answers_to_it));
        }
        if !s.user_agents.is_empty() {
            let _ = writeln!(
                o,
                "  agents    {}",
                s.user_agents.iter().cloned().collect::<Vec<_>>().join("; ")
            );
        }
        if s.users_count > 0 {
            let _ = writeln!(o, "  users     {} distinct: {}", s.users_count, users_line(s));
        }
        let _ = writeln!(o, "  verdicts  {}", verdicts_line(s));
        let mut reasons: Vec<_> = s.reasons.iter().collect();
        reasons.sort_by(|x, y| y.1.count.cmp(&x.1.count).then(x.0.cmp(y.0)));
        for (rule, r) in reasons {
            let _ = writeln!(o, "  reason    {rule} x{}: {}", r.count, r.summary);
        }
    }
    o
}

/// The learning section: what would have been learned, and the campaigns.
fn learning_text(o: &mut String, a: &Analysis) {
    let l = &a.learning;
    if l.mode == "off" {
        let _ = writeln!(o, "Learning: off ([learn] mode)");
        return;
    }
    let state = if l.enforcing {
        "an upstream was learned: unsolicited INVITEs are ghost calls"
    } else {
        "no upstream learned: not enforcing the unsolicited-INVITE rule"
    };
    let _ = writeln!(o, "Learned from the traffic: {} facts ({state})", l.learned.len());
    for f in &l.learned {
        let _ = writeln!(
            o,
            "  {:<10} {:<20} {}: {}",
            f.kind,
            f.value,
            crate::time::span_millis(f.first_seen_ms, f.last_seen_ms),
            f.evidence
        );
    }
    if !l.campaigns.is_empty() {
        let _ = writeln!(o, "Campaigns: {}", l.campaigns.len());
        for c in &l.campaigns {
            let _ = writeln!(
                o,
                "  {} {} ({}): {} new sources, {}",
                c.kind,
                c.key,
                c.label,
                c.sources,
                crate::time::span_millis(c.first_seen_ms, c.last_seen_ms)
            );
        }
    }
}

/// One JSON document.
pub fn json(a: &Analysis) -> anyhow::Result<String> {
    let mut s = serde_json::to_string_pretty(&serde_json::json!({
        "messages": a.messages,
        "first_seen_ms": a.first_ms,
        "last_seen_ms": a.last_ms,
        "scanners": a.scanners(),
        "files": a.files,
        "bans": a.bans,
        "sources": a.sources,
        "unitemised_messages": a.unitemised_messages,
        "learning": a.learning,
    }))?;
    s.push('\n');
    Ok(s)
}

/// One CSV cell. Cells are mostly taken from the wire (User-Agent, user names, methods), so
/// a cell a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, a tab or a
/// carriage return) is neutralised with a leading `'`, as OWASP advises; no cell sipwall itself
/// writes (numbers, addresses, RFC 3339 times, rule names) starts with one of them.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// One row per source.
pub fn csv(a: &Analysis) -> String {
    let mut o = String::from(
        "address,scanner,banned,first_seen,last_seen,messages,methods,answers_to_it,user_agents,users_count,users,accepted,dropped,rejected,rules\n",
    );
    for s in &a.sources {
        let rules =
            s.reasons.iter().map(|(k, r)| format!("{k}={}", r.count)).collect::<Vec<_>>().join(";");
        let methods =
            s.methods.iter().map(|(k, n)| format!("{k}={n}")).collect::<Vec<_>>().join(";");
        let answers =
            s.answers_to_it.iter().map(|(k, n)| format!("{k}={n}")).collect::<Vec<_>>().join(";");
        let agents = s.user_agents.iter().cloned().collect::<Vec<_>>().join(";");
        let users = s.users.iter().cloned().collect::<Vec<_>>().join(";");
        let row = [
            s.address.to_string(),
            s.scanner.to_string(),
            (!s.bans.is_empty()).to_string(),
            fmt_ms(s.first_seen_ms),
            fmt_ms(s.last_seen_ms),
            s.messages.to_string(),
            methods,
            answers,
            agents,
            s.users_count.to_string(),
            users,
            s.accepted.to_string(),
            s.dropped.to_string(),
            s.rejected.to_string(),
            rules,
        ];
        o.push_str(&row.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(","));
        o.push('\n');
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("plain"), "plain");
    }

    /// Cells from the wire that a spreadsheet would evaluate are neutralised, then quoted as
    /// usual; harmless cells are untouched.
    #[test]
    fn csv_formula_cells_are_neutralised() {
        let hostile = [
            (
                "=HYPERLINK(\"http://203.0.113.9/x\",\"click\")",
                "\"'=HYPERLINK(\"\"http://203.0.113.9/x\"\",\"\"click\"\")\"",
            ),
            ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
            ("\t=1", "'\t=1"),
            ("\r=1", "\"'\r=1\""),
            ("friendly-scanner", "friendly-scanner"),
            ("2001:db8::1", "2001:db8::1"),
            ("2026-12-02T22:45:00.000Z", "2026-12-02T22:45:00.000Z"),
        ];
        for (cell, want) in hostile {
            assert_eq!(csv_field(cell), want, "{cell:?}");
        }
    }
}
