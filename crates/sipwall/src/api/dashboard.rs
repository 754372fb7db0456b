//! The live dashboard at `/`: one page, its script and its style sheet, all compiled into the
//! binary (`crates/sipwall/assets/`, `include_str!`): nothing is loaded from the network, so it
//! works on a host without internet. The style sheet is the `inspect --html` report's
//! (`assets/report.css`, shared with `inspect::html`) plus a few dashboard rules.
//!
//! CONTRACT:
//! * The page, script and style sheet carry no data and are served without a token (also when
//!   reads need one); the data comes from `GET /api/v1/dashboard` ([`protocol::Dashboard`])
//!   and `GET /api/v1/events` (server-sent events, [`super::events`]), which are reading
//!   endpoints like the others. The page sends the token the operator types into it as a
//!   bearer token (kept in the page's memory only), for reads when required and for unban.
//! * Served with a Content-Security-Policy that allows only this origin's script, style and
//!   API (no inline script, no framing), and the script writes wire-derived text with
//!   `textContent` only: a scanner's User-Agent is data, never markup.
//! * `/api/v1/dashboard` reads the store read-only in `spawn_blocking` (at most
//!   [`SCAN`] decisions of the last hour) and asks `status` and `bans` through `execute`,
//!   which lock the engine as briefly as the control socket does.
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::Json;
use tokio::sync::broadcast::error::RecvError;

use super::{answer, events, run, ApiState};
use crate::protocol::{
    self, BanView, Command, Dashboard, DecisionView, LearnedFactView, Response, SourceCount,
    TimelineBucket, TIMELINE_BUCKETS, TOP_SOURCES,
};

/// The page.
pub const PAGE: &str = include_str!("../../assets/dashboard.html");
/// Its script.
pub const SCRIPT: &str = include_str!("../../assets/dashboard.js");
/// The report's style sheet, shared with `inspect --html`.
pub const REPORT_CSS: &str = include_str!("../../assets/report.css");
/// The dashboard's own rules.
pub const DASHBOARD_CSS: &str = include_str!("../../assets/dashboard.css");
/// Most recorded decisions one dashboard answer reads from the store.
pub const SCAN: usize = 20_000;
/// Newest decisions listed.
pub const RECENT: usize = 50;
/// How often a stream that has nothing to send checks whether the daemon stops.
const STOP_POLL: Duration = Duration::from_millis(250);

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: String) -> HttpResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// `GET /`.
pub async fn page() -> HttpResponse {
    asset("text/html; charset=utf-8", PAGE.to_string())
}

/// `GET /assets/dashboard.js`.
pub async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", SCRIPT.to_string())
}

/// `GET /assets/dashboard.css`: the report's sheet, then the dashboard's.
pub async fn style() -> HttpResponse {
    asset("text/css; charset=utf-8", format!("{REPORT_CSS}\n{DASHBOARD_CSS}"))
}

/// The learned facts (upstreams, local users, known-good clients), through the same
/// `execute` as `sipwall learned` (so off the runtime's threads, one short engine lock).
pub async fn learned(s: &Arc<ApiState>) -> Vec<LearnedFactView> {
    super::run(s, Command::Learned).await.learned.map(|v| v.facts).unwrap_or_default()
}

/// The learned fact about `ip` among `facts` (a learned upstream or known-good client), for
/// `/api/v1/sources/{ip}`.
pub fn learned_status(
    facts: Vec<LearnedFactView>,
    ip: std::net::IpAddr,
) -> Option<LearnedFactView> {
    facts.into_iter().find(|f| {
        f.value.parse::<std::net::IpAddr>().is_ok_and(|a| a == ip)
            || f.value.parse::<std::net::SocketAddr>().is_ok_and(|a| a.ip() == ip)
            || f.value.parse::<ipnet::IpNet>().is_ok_and(|n| n.contains(&ip))
    })
}

/// A stored decision as the dashboard shows it.
pub fn view(d: &sipwall_store::StoredDecision) -> DecisionView {
    DecisionView {
        at_ms: d.at.as_millis(),
        src: d.src.ip().to_string(),
        verdict: match d.verdict {
            sipwall_engine::Verdict::Accept => "accept".into(),
            v => v.to_string(),
        },
        rule: d.rule.clone(),
        summary: d.summary.clone(),
        simulated: events::is_simulated(&d.summary),
    }
}

/// The minute buckets and top sources of the decisions `rows` (any order) at `now_ms`.
/// Operator records (`manual.*`) are not attacks and are left out; so is anything older than
/// the timeline.
pub fn summarize(
    rows: &[DecisionView],
    bans: &[BanView],
    now_ms: u64,
) -> (Vec<TimelineBucket>, Vec<SourceCount>) {
    const MIN: u64 = 60_000;
    let last_start = now_ms - now_ms % MIN;
    let first_start = last_start.saturating_sub((TIMELINE_BUCKETS as u64 - 1) * MIN);
    let mut timeline: Vec<TimelineBucket> = (0..TIMELINE_BUCKETS as u64)
        .map(|i| TimelineBucket { start_ms: first_start + i * MIN, ..Default::default() })
        .collect();
    let mut by_src: HashMap<&str, SourceCount> = HashMap::new();
    for d in rows {
        if d.rule.starts_with("manual.") || d.at_ms < first_start || d.at_ms > now_ms {
            continue;
        }
        let i = ((d.at_ms - first_start) / MIN) as usize;
        if let Some(b) = timeline.get_mut(i) {
            if d.simulated {
                b.simulated += 1;
            } else {
                b.dropped += 1;
            }
        }
        let s = by_src.entry(&d.src).or_insert_with(|| SourceCount {
            ip: d.src.clone(),
            decisions: 0,
            last_ms: 0,
            last_rule: String::new(),
            last_summary: String::new(),
            banned: false,
        });
        s.decisions += 1;
        if d.at_ms >= s.last_ms {
            s.last_ms = d.at_ms;
            s.last_rule = d.rule.clone();
            s.last_summary = d.summary.clone();
        }
    }
    let mut top: Vec<SourceCount> = by_src.into_values().collect();
    top.sort_by(|a, b| b.decisions.cmp(&a.decisions).then(b.last_ms.cmp(&a.last_ms)));
    top.truncate(TOP_SOURCES);
    // A simulated ban (observe mode) drops nothing: not "banned" here.
    let real: Vec<BanView> = bans.iter().filter(|b| !b.simulated).cloned().collect();
    for s in &mut top {
        if let Ok(ip) = s.ip.parse() {
            s.banned = !protocol::bans_containing(real.clone(), ip).is_empty();
        }
    }
    (timeline, top)
}

/// The decisions of the last hour, newest first (at most [`SCAN`]).
fn last_hour(db: &std::path::Path, now_ms: u64) -> anyhow::Result<Vec<DecisionView>> {
    let since = now_ms.saturating_sub(TIMELINE_BUCKETS as u64 * 60_000);
    let rows = crate::commands::open_store(db)?.recent_decisions(SCAN)?;
    Ok(rows.iter().take_while(|d| d.at.as_millis() >= since).map(view).collect())
}

/// `GET /api/v1/dashboard`.
pub async fn data(State(s): State<Arc<ApiState>>) -> HttpResponse {
    let status = run(&s, Command::Status).await;
    let Some(status) = status.status else {
        return answer(StatusCode::INTERNAL_SERVER_ERROR, status);
    };
    let bans = run(&s, Command::Bans).await.bans.unwrap_or_default();
    let now_ms = crate::time::now_ms();
    let db = s.db.clone();
    let (rows, store_error) =
        match tokio::task::spawn_blocking(move || last_hour(&db, now_ms)).await {
            Ok(Ok(rows)) => (rows, None),
            Ok(Err(e)) => (Vec::new(), Some(format!("{e:#}"))),
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
    let (timeline, top_sources) = summarize(&rows, &bans, now_ms);
    let recent = rows.into_iter().take(RECENT).collect();
    Json(Dashboard {
        status: *status,
        bans,
        timeline,
        top_sources,
        recent,
        learned: learned(&s).await,
        store_error,
    })
    .into_response()
}

/// `GET /api/v1/events`: server-sent events (`decision`, `ban`, `unban`; `lagged` with the
/// number of events a slow reader missed). Ends when the daemon stops.
pub async fn stream(State(s): State<Arc<ApiState>>) -> HttpResponse {
    let Some(sub) = events::hub().subscribe() else {
        return answer(
            StatusCode::SERVICE_UNAVAILABLE,
            Response::error(format!(
                "{} event streams are open already; try again later",
                events::MAX_SUBSCRIBERS
            )),
        );
    };
    let stop = s.stop.clone();
    let body = futures_util::stream::unfold(sub, move |mut sub| {
        let stop = stop.clone();
        async move {
            loop {
                if stop.load(Ordering::Relaxed) {
                    return None;
                }
                let ev = match tokio::time::timeout(STOP_POLL, sub.rx.recv()).await {
                    Err(_) => continue,
                    Ok(Ok(e)) => SseEvent::default()
                        .event(e.name())
                        .json_data(&*e)
                        .unwrap_or_else(|_| SseEvent::default().comment("unencodable event")),
                    Ok(Err(RecvError::Lagged(n))) => {
                        SseEvent::default().event("lagged").data(n.to_string())
                    }
                    Ok(Err(RecvError::Closed)) => return None,
                };
                return Some((Ok::<_, Infallible>(ev), sub));
            }
        }
    });
    Sse::new(body).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(at_ms: u64, src: &str, rule: &str, simulated: bool) -> DecisionView {
        DecisionView {
            at_ms,
            src: src.into(),
            verdict: if simulated { "accept" } else { "drop" }.into(),
            rule: rule.into(),
            summary: format!("{rule} from {src}"),
            simulated,
        }
    }

    #[test]
    fn the_last_hour_is_bucketed_per_minute_and_sources_ranked() {
        let now = 10 * 3_600_000 + 30_000; // 10:00:30
        let rows = vec![
            d(now - 1_000, "203.0.113.7", "signature.sipvicious-ua", false),
            d(now - 2_000, "203.0.113.7", "signature.sipvicious-ua", false),
            d(now - 61_000, "203.0.113.7", "behaviour.flood", false),
            d(now - 5_000, "203.0.113.8", "signature.sipvicious-ua", true),
            d(now - 5_000, "203.0.113.9", "manual.ban", false), // operator: no attack
            d(now - 2 * 3_600_000, "203.0.113.10", "behaviour.flood", false), // too old
        ];
        let bans = vec![BanView {
            net: "203.0.113.0/29".into(),
            since_ms: 0,
            until_ms: u64::MAX,
            count: 1,
            rule: "aggregate".into(),
            reason: String::new(),
            origin: "aggregate".into(),
            durable: true,
            simulated: false,
        }];
        let (t, top) = summarize(&rows, &bans, now);
        assert_eq!(t.len(), TIMELINE_BUCKETS);
        assert_eq!(t.last().unwrap().start_ms, 10 * 3_600_000);
        assert_eq!((t[59].dropped, t[59].simulated), (2, 1));
        assert_eq!((t[58].dropped, t[58].simulated), (1, 0));
        assert_eq!(t.iter().map(|b| b.dropped + b.simulated).sum::<u64>(), 4);
        assert_eq!(top.len(), 2);
        assert_eq!((top[0].ip.as_str(), top[0].decisions), ("203.0.113.7", 3));
        assert_eq!(top[0].last_rule, "signature.sipvicious-ua");
        assert!(top[0].banned, "203.0.113.7 is in 203.0.113.0/29");
        assert_eq!((top[1].ip.as_str(), top[1].banned), ("203.0.113.8", false));
    }

    #[test]
    fn assets_are_self_contained() {
        // The SVG namespace is a name, not a download.
        let all = format!("{PAGE}{SCRIPT}{REPORT_CSS}{DASHBOARD_CSS}")
            .replace("'http://www.w3.org/2000/svg'", "");
        for remote in ["http://", "https://", "//cdn", "@import"] {
            assert!(!all.contains(remote), "an asset refers to {remote}");
        }
        assert!(PAGE.contains("/assets/dashboard.js") && PAGE.contains("/assets/dashboard.css"));
        // No inline script or style: the CSP forbids both.
        assert!(!PAGE.contains("<script>") && !PAGE.contains("style=") && !PAGE.contains("<style"));
        for handler in ["onclick=", "onload=", "oninput=", "onerror="] {
            assert!(!PAGE.contains(handler), "inline handler {handler}");
        }
        // Wire text is never written as markup.
        assert!(!SCRIPT.contains("innerHTML") && !SCRIPT.contains("insertAdjacentHTML"));
    }
}
