//! `--html FILE`: one self-contained page (inline CSS, SVG and a little JS; nothing loaded
//! from the network) with a timeline of traffic per source, scanners against legitimate,
//! and the summary, bans and sources tables.
use std::fmt::Write;

use super::report::{fmt_duration, fmt_ms, users_line, verdicts_line};
use super::Analysis;

/// Sources drawn as lanes in the timeline (the most dangerous first); all are in the table.
const LANES: usize = 40;
/// Columns of the timeline.
const COLUMNS: u64 = 120;

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const STYLE: &str = r#"
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d2330;background:#f7f8fa}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px}
.sub{color:#5b6475}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin:16px 0}
.card{background:#fff;border:1px solid #dde1e8;border-radius:8px;padding:10px 16px;min-width:140px}
.card b{display:block;font-size:24px}
.card.bad b{color:#c62828} .card.good b{color:#2e7d32}
table{border-collapse:collapse;background:#fff;width:100%;font-size:13px}
th,td{border-bottom:1px solid #e5e8ee;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#eef1f5;position:sticky;top:0}
tr.scanner td:first-child{border-left:4px solid #c62828} tr.ok td:first-child{border-left:4px solid #2e7d32}
.tag{display:inline-block;padding:0 6px;border-radius:4px;font-size:11px;color:#fff}
.tag.s{background:#c62828}.tag.b{background:#6a1b9a}.tag.o{background:#2e7d32}
svg{background:#fff;border:1px solid #dde1e8;border-radius:8px}
svg text{font:11px ui-monospace,monospace;fill:#333}
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:-2px}
input{padding:5px 8px;margin:0 0 8px;width:280px;border:1px solid #c8cdd6;border-radius:4px}
.err{color:#c62828}
"#;

const SCRIPT: &str = r#"
function filterRows(q){q=q.toLowerCase();for(const tr of document.querySelectorAll('#sources tbody tr')){tr.style.display=tr.textContent.toLowerCase().includes(q)?'':'none';}}
for(const g of document.querySelectorAll('g.lane')){g.addEventListener('click',()=>{const box=document.getElementById('filter');box.value=g.dataset.addr;filterRows(g.dataset.addr);document.getElementById('sources').scrollIntoView();});}
"#;

/// The page.
pub fn page(a: &Analysis) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>sipwall inspect</title><style>{STYLE}</style></head><body>\n"
    );
    let span = match (a.first_ms, a.last_ms) {
        (Some(f), Some(l)) => {
            format!("{} to {} ({})", fmt_ms(f), fmt_ms(l), fmt_duration(l - f))
        }
        _ => "no SIP messages".into(),
    };
    let _ = writeln!(o, "<h1>sipwall inspect</h1><div class=\"sub\">{}</div>", esc(&span));
    let scanners = a.scanners();
    let _ = writeln!(
        o,
        "<div class=\"cards\"><div class=\"card\"><b>{}</b>SIP messages</div><div class=\"card\"><b>{}</b>sources</div>\
         <div class=\"card bad\"><b>{scanners}</b>scanners</div><div class=\"card good\"><b>{}</b>legitimate</div>\
         <div class=\"card bad\"><b>{}</b>bans sipwall would set</div></div>",
        a.messages,
        a.sources.len(),
        a.sources.len() - scanners,
        a.bans.len()
    );
    timeline(&mut o, a);

    let _ = writeln!(o, "<h2>Captures</h2><table><thead><tr><th>file</th><th>records</th><th>SIP messages</th><th>reassembled</th><th>status</th></tr></thead><tbody>");
    for f in &a.files {
        let mut status = match &f.error {
            Some(e) => format!("<span class=\"err\">stopped: {}</span>", esc(e)),
            None => "read to the end".into(),
        };
        for w in &f.warnings {
            let _ = write!(status, "<br><span class=\"err\">{}</span>", esc(w));
        }
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{status}</td></tr>",
            esc(&f.path),
            f.frames,
            f.sip_messages,
            f.fragments_reassembled
        );
    }
    let _ = writeln!(o, "</tbody></table>");

    let _ = writeln!(o, "<h2>Bans sipwall would have set</h2>");
    if a.bans.is_empty() {
        let _ = writeln!(o, "<p>None.</p>");
    } else {
        let _ = writeln!(o, "<table><thead><tr><th>network</th><th>from</th><th>for</th><th>rule</th><th>reason</th></tr></thead><tbody>");
        for b in &a.bans {
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&b.net),
                fmt_ms(b.since_ms),
                fmt_duration(b.until_ms.saturating_sub(b.since_ms)),
                esc(&b.rule),
                esc(&b.reason)
            );
        }
        let _ = writeln!(o, "</tbody></table>");
    }

    learning_html(&mut o, a);

    let _ = writeln!(
        o,
        "<h2>Sources, most dangerous first</h2><input id=\"filter\" placeholder=\"filter: address, agent, rule...\" oninput=\"filterRows(this.value)\">\
         <table id=\"sources\"><thead><tr><th>source</th><th>first / last seen</th><th>messages</th><th>answers to it</th><th>User-Agents</th><th>users targeted</th><th>verdicts</th><th>reasons</th></tr></thead><tbody>"
    );
    for s in &a.sources {
        let tag = if !s.bans.is_empty() {
            "<span class=\"tag b\">banned</span> <span class=\"tag s\">scanner</span>"
        } else if s.scanner {
            "<span class=\"tag s\">scanner</span>"
        } else {
            "<span class=\"tag o\">ok</span>"
        };
        let methods = s
            .methods
            .iter()
            .map(|(k, n)| format!("{} {n}", esc(k)))
            .collect::<Vec<_>>()
            .join("<br>");
        let answers = s
            .answers_to_it
            .iter()
            .map(|(k, n)| format!("{k} &times;{n}"))
            .collect::<Vec<_>>()
            .join("<br>");
        let agents = s.user_agents.iter().map(|u| esc(u)).collect::<Vec<_>>().join("<br>");
        let reasons = s
            .reasons
            .iter()
            .map(|(k, r)| format!("<b>{}</b> &times;{}: {}", esc(k), r.count, esc(&r.summary)))
            .collect::<Vec<_>>()
            .join("<br>");
        let _ = writeln!(
            o,
            "<tr class=\"{}\"><td>{}<br>{tag}</td><td>{}<br>{}</td><td>{methods}</td><td>{answers}</td><td>{agents}</td><td>{} {}</td><td>{}</td><td>{reasons}</td></tr>",
            if s.scanner { "scanner" } else { "ok" },
            esc(&s.address.to_string()),
            fmt_ms(s.first_seen_ms),
            fmt_ms(s.last_seen_ms),
            s.users_count,
            if s.users_count > 0 { format!("({})", esc(&users_line(s))) } else { String::new() },
            verdicts_line(s)
        );
    }
    let _ = writeln!(o, "</tbody></table>\n<script>{SCRIPT}</script>\n</body></html>");
    o
}

/// The SVG timeline: a stacked total (scanners red, legitimate green), then one lane per source.
fn timeline(o: &mut String, a: &Analysis) {
    let (Some(first), Some(last)) = (a.first_ms, a.last_ms) else {
        return;
    };
    let span = (last - first).max(1);
    let col_ms = span.div_ceil(COLUMNS).max(1);
    let lanes: Vec<_> = a.sources.iter().take(LANES).collect();
    let (left, top, colw, laneh, toph) = (150u64, 30u64, 6u64, 16u64, 80u64);
    let width = left + COLUMNS * colw + 20;
    let height = top + toph + 24 + lanes.len() as u64 * laneh + 30;
    // Totals per column.
    let mut bad = vec![0u64; COLUMNS as usize];
    let mut good = vec![0u64; COLUMNS as usize];
    for s in &a.sources {
        for (&t, &n) in &s.timeline {
            let c = ((t.max(first) - first) / col_ms).min(COLUMNS - 1) as usize;
            if s.scanner {
                bad[c] += u64::from(n);
            } else {
                good[c] += u64::from(n);
            }
        }
    }
    let peak = bad.iter().zip(&good).map(|(b, g)| b + g).max().unwrap_or(1).max(1);
    let _ = writeln!(
        o,
        "<h2>Timeline</h2><div class=\"legend\">messages per {}:<span style=\"background:#c62828\"></span>scanners<span style=\"background:#2e7d32\"></span>legitimate (click a lane to filter the table)</div>",
        esc(&fmt_duration(col_ms))
    );
    let _ = writeln!(o, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\">");
    let _ = writeln!(
        o,
        "<text x=\"8\" y=\"{}\">all sources</text><text x=\"8\" y=\"{}\">peak {peak}</text>",
        top + toph / 2,
        top + toph / 2 + 14
    );
    for c in 0..COLUMNS as usize {
        let x = left + c as u64 * colw;
        let hb = bad[c] * toph / peak;
        let hg = good[c] * toph / peak;
        let base = top + toph;
        if hg > 0 || good[c] > 0 {
            let hg = hg.max(1);
            let _ = write!(o, "<rect x=\"{x}\" y=\"{}\" width=\"{}\" height=\"{hg}\" fill=\"#2e7d32\"><title>{} legitimate</title></rect>", base - hg, colw - 1, good[c]);
        }
        if bad[c] > 0 {
            let hb = hb.max(1);
            let y = base - hb - if good[c] > 0 { (good[c] * toph / peak).max(1) } else { 0 };
            let _ = write!(o, "<rect x=\"{x}\" y=\"{y}\" width=\"{}\" height=\"{hb}\" fill=\"#c62828\"><title>{} from scanners</title></rect>", colw - 1, bad[c]);
        }
    }
    o.push('\n');
    let lanes_top = top + toph + 24;
    for (i, s) in lanes.iter().enumerate() {
        let y = lanes_top + i as u64 * laneh;
        let color = if s.scanner { "#c62828" } else { "#2e7d32" };
        let addr = s.address.to_string();
        let _ = write!(o, "<g class=\"lane\" data-addr=\"{}\" style=\"cursor:pointer\"><text x=\"8\" y=\"{}\" fill=\"{color}\">{}</text>", esc(&addr), y + 11, esc(&addr));
        let _ = write!(
            o,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"#eee\"/>",
            left + COLUMNS * colw,
            y + 7,
            y + 7
        );
        let mut cols = vec![0u64; COLUMNS as usize];
        for (&t, &n) in &s.timeline {
            let c = ((t.max(first) - first) / col_ms).min(COLUMNS - 1) as usize;
            cols[c] += u64::from(n);
        }
        let lane_peak = cols.iter().copied().max().unwrap_or(1).max(1);
        for (c, &n) in cols.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let opacity = 0.35 + 0.65 * (n as f64).ln_1p() / (lane_peak as f64).ln_1p().max(1e-9);
            let _ = write!(
                o,
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{color}\" fill-opacity=\"{opacity:.2}\"><title>{} messages at {}</title></rect>",
                left + c as u64 * colw,
                y + 1,
                colw - 1,
                laneh - 3,
                n,
                fmt_ms(first + c as u64 * col_ms)
            );
        }
        o.push_str("</g>\n");
    }
    let axis_y = lanes_top + lanes.len() as u64 * laneh + 16;
    let _ = writeln!(
        o,
        "<text x=\"{left}\" y=\"{axis_y}\">{}</text><text x=\"{}\" y=\"{axis_y}\" text-anchor=\"end\">{}</text></svg>",
        fmt_ms(first),
        left + COLUMNS * colw,
        fmt_ms(last)
    );
    if a.sources.len() > LANES {
        let _ = writeln!(
            o,
            "<p class=\"sub\">{} more sources in the table below.</p>",
            a.sources.len() - LANES
        );
    }
}

/// Learned facts and campaigns.
fn learning_html(o: &mut String, a: &Analysis) {
    let l = &a.learning;
    let _ = writeln!(o, "<h2>Learned from the traffic</h2>");
    if l.mode == "off" {
        let _ = writeln!(o, "<p>Learning is off (<code>[learn] mode</code>).</p>");
        return;
    }
    let _ = writeln!(
        o,
        "<p>{}</p>",
        if l.enforcing {
            "An upstream was learned: unsolicited INVITEs are dropped as ghost calls."
        } else {
            "No upstream learned: the unsolicited-INVITE rule would not be enforcing yet."
        }
    );
    if l.learned.is_empty() {
        let _ = writeln!(o, "<p>Nothing learned.</p>");
    } else {
        let _ = writeln!(o, "<table><thead><tr><th>kind</th><th>value</th><th>first / last seen</th><th>evidence</th></tr></thead><tbody>");
        for f in &l.learned {
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&f.kind),
                esc(&f.value),
                esc(&crate::time::span_millis(f.first_seen_ms, f.last_seen_ms)),
                esc(&f.evidence)
            );
        }
        let _ = writeln!(o, "</tbody></table>");
    }
    let _ = writeln!(o, "<h2>Campaigns</h2>");
    if l.campaigns.is_empty() {
        let _ = writeln!(o, "<p>None.</p>");
        return;
    }
    let _ = writeln!(o, "<table><thead><tr><th>kind</th><th>key</th><th>what</th><th>new sources</th><th>first / last seen</th></tr></thead><tbody>");
    for c in &l.campaigns {
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&c.kind),
            esc(&c.key),
            esc(&c.label),
            c.sources,
            esc(&crate::time::span_millis(c.first_seen_ms, c.last_seen_ms))
        );
    }
    let _ = writeln!(o, "</tbody></table>");
}
