//! The HTTP API and Prometheus `/metrics` (`[api]`, off by default): a second transport for
//! the control protocol of [`crate::protocol`], served through the SAME
//! [`control_server::execute`] as the control socket, so ban, unban, extend, list, status and
//! reload have one implementation.
//!
//! CONTRACT:
//! * Runs on its own thread (`sipwall-api`) with its own single-threaded tokio runtime; the
//!   queue threads never wait for it. It locks the engine only inside `execute` (as briefly as
//!   the control socket does) and for one count per `/metrics` scrape; everything that may
//!   block (the engine lock, waiting for the ban worker, reading the store) runs in
//!   `spawn_blocking` (at most [`MAX_BLOCKING`] threads).
//! * Loopback only by default (`127.0.0.1:9360`); another address is allowed and warned about.
//! * Mutating endpoints (POST, DELETE) need `Authorization: Bearer TOKEN`, the token read at
//!   start from `[api] token_file` (mode 0600 or stricter, else the daemon refuses to start);
//!   without a token file they are refused (403). Reading endpoints need it when
//!   `require_token_for_reads`; `/healthz` and `/readyz` never do. A missing or wrong token
//!   is 401, compared in constant time.
//! * Manual actions are audited as over the socket, with "api token" for the operator
//!   ("manual ban by api token").
//! * At most `limit::MAX_CONNECTIONS` connections are open at once (one more is closed at
//!   once), so a client that never finishes a request cannot take the daemon's descriptors.
//! * Request bodies are at most `protocol::MAX_REQUEST` bytes and checked by
//!   `protocol::parse_request` (the socket's checks).
//!
//! Endpoints (JSON answers are `protocol::Response`: `ok`, `error`, `message`, `bans`, ...):
//! `GET /api/v1/bans?ip=&rule=&origin=`, `POST /api/v1/bans` (`{"net","secs","reason"}`),
//! `POST /api/v1/bans/extend`, `DELETE /api/v1/bans/{net}` (or `?net=`),
//! `GET /api/v1/decisions?ip=&since=&rule=&limit=`, `GET /api/v1/sources/{ip}`,
//! `GET /api/v1/trust`, `POST /api/v1/trust` (`{"net","reason"}`), `DELETE
//! /api/v1/trust/{net}` (or `?net=`), `POST /api/v1/reload`, `GET /api/v1/status`, `GET
//! /api/v1/learned`, `POST /api/v1/learned` (`{"pin":"upstream 198.51.100.2"}` or
//! `{"forget":"user 100"}`), `GET /healthz`, `GET /readyz`, `GET /metrics`,
//! `GET /api/v1/feed?format=plain|nft|ipset|mikrotik|json` (also `/api/v1/feed.txt`, `.nft`,
//! `.ipset`, `.rsc`, `.json`: the active bans as a block-list feed, see `feed.rs`);
//! the live dashboard: `GET /` (page, script and style sheet: no token), `GET
//! /api/v1/dashboard` (its data) and `GET /api/v1/events` (server-sent events), see
//! [`dashboard`] and [`events`].
use std::net::{IpAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::config::ApiConfig;
use crate::daemon::control_server::{execute, Ctx, Peer};
use crate::protocol::{self, BanView, Command, Response};

pub mod auth;
pub mod dashboard;
pub mod events;
pub mod feed;
pub mod limit;

/// Most threads doing blocking work for the API at once.
pub const MAX_BLOCKING: usize = 4;
/// Most decisions one answer lists.
pub const MAX_DECISIONS: usize = 1000;

/// What the handlers share.
pub struct ApiState {
    /// The control protocol's context (a second one, sharing engine, worker and counters).
    pub ctx: Ctx,
    /// The token (None: mutating endpoints refused).
    pub token: Option<Vec<u8>>,
    /// Reading endpoints need the token too.
    pub reads_need_token: bool,
    /// The state store, opened read-only for `decisions` and `sources`.
    pub db: PathBuf,
    /// Set once the queues are bound and the bans restored (`/readyz`).
    pub ready: Arc<AtomicBool>,
    /// Set when the daemon stops: open event streams end (a graceful shutdown waits for them).
    pub stop: Arc<AtomicBool>,
}

/// The bound listener and its settings, made at start (before capabilities are dropped).
pub struct Bound {
    listener: TcpListener,
    token: Option<Vec<u8>>,
    reads_need_token: bool,
}

/// Read the token and bind `[api] listen`. Errors name the key and the line.
pub fn bind(cfg: &ApiConfig) -> anyhow::Result<Bound> {
    let token = match &cfg.token_file {
        Some(p) => Some(auth::read_token(p, cfg.token_file_line)?),
        None => None,
    };
    if !cfg.listen.ip().is_loopback() {
        log::warn!(
            "api.listen {}: the HTTP API is reachable from the network, not only from this host",
            cfg.listen
        );
    }
    if token.is_none() {
        log::warn!("api: no token_file: mutating endpoints (ban, unban, reload) are refused");
    }
    let listener = TcpListener::bind(cfg.listen)
        .with_context(|| format!("api.listen: binding {}", cfg.listen))?;
    listener.set_nonblocking(true).context("api: non-blocking listener")?;
    Ok(Bound { listener, token, reads_need_token: cfg.require_token_for_reads })
}

impl Bound {
    /// The bound address.
    #[cfg(test)]
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }
}

/// Serve on a thread of its own until `stop`.
pub fn spawn(
    bound: Bound,
    ctx: Ctx,
    db: PathBuf,
    ready: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let Bound { listener, token, reads_need_token } = bound;
    let addr = listener.local_addr()?;
    let state = Arc::new(ApiState { ctx, token, reads_need_token, db, ready, stop: stop.clone() });
    std::thread::Builder::new()
        .name("sipwall-api".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .enable_time()
                .max_blocking_threads(MAX_BLOCKING)
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    log::error!("api: starting its runtime: {e}");
                    return;
                }
            };
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => limit::Limited::new(l, limit::MAX_CONNECTIONS),
                    Err(e) => return log::error!("api: {e}"),
                };
                log::info!("HTTP API and /metrics on http://{addr}");
                let rates_state = state.clone();
                let stop_rates = stop.clone();
                // The packet rates of `status`, sampled like the control socket's loop does.
                tokio::spawn(async move {
                    while !stop_rates.load(Ordering::Relaxed) {
                        rates_state.ctx.rates.sample(&rates_state.ctx.counters);
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                });
                let shutdown = async move {
                    while !stop.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                };
                if let Err(e) =
                    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
                {
                    log::error!("api: {e}");
                }
            });
        })
        .context("starting the API thread")
}

/// The routes.
pub fn router(state: Arc<ApiState>) -> Router {
    let guarded = Router::new()
        .route("/api/v1/bans", get(list_bans).post(add_ban).delete(delete_ban_query))
        .route("/api/v1/bans/extend", post(extend_ban))
        .route("/api/v1/bans/{net}", delete(delete_ban))
        .route("/api/v1/decisions", get(decisions))
        .route("/api/v1/sources/{ip}", get(source))
        .route("/api/v1/reload", post(reload))
        .route("/api/v1/status", get(status))
        .route("/api/v1/learned", get(learned).post(learned_change))
        .route("/metrics", get(metrics))
        .route("/api/v1/feed", get(feed::feed))
        .route("/api/v1/feed.txt", get(feed::plain))
        .route("/api/v1/feed.nft", get(feed::nft))
        .route("/api/v1/feed.ipset", get(feed::ipset))
        .route("/api/v1/feed.rsc", get(feed::mikrotik))
        .route("/api/v1/feed.json", get(feed::json))
        .route("/api/v1/trust", get(list_trust).post(add_trust).delete(del_trust_query))
        .route("/api/v1/trust/{net}", delete(del_trust))
        .route("/api/v1/dashboard", get(dashboard::data))
        .route("/api/v1/events", get(dashboard::stream))
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/", get(dashboard::page))
        .route("/assets/dashboard.js", get(dashboard::script))
        .route("/assets/dashboard.css", get(dashboard::style))
        .merge(guarded)
        .layer(DefaultBodyLimit::max(protocol::MAX_REQUEST))
        .with_state(state)
}

/// The token check: always for POST and DELETE, for reads when configured.
async fn authorize(State(s): State<Arc<ApiState>>, req: Request, next: Next) -> HttpResponse {
    let mutating = !matches!(*req.method(), axum::http::Method::GET | axum::http::Method::HEAD);
    if !mutating && !s.reads_need_token {
        return next.run(req).await;
    }
    let Some(expected) = &s.token else {
        return answer(
            StatusCode::FORBIDDEN,
            Response::error("no [api] token_file is configured: this endpoint is disabled"),
        );
    };
    let given = auth::bearer(req.headers().get(header::AUTHORIZATION).map(|v| v.as_bytes()));
    if given.is_some_and(|g| auth::same_token(g, expected)) {
        return next.run(req).await;
    }
    let mut r = answer(
        StatusCode::UNAUTHORIZED,
        Response::error("missing or wrong bearer token (Authorization: Bearer TOKEN)"),
    );
    r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    r
}

fn answer(code: StatusCode, r: Response) -> HttpResponse {
    (code, Json(r)).into_response()
}

/// A protocol answer: 200 when ok, else `failed`.
fn reply(r: Response, failed: StatusCode) -> HttpResponse {
    let code = if r.ok { StatusCode::OK } else { failed };
    answer(code, r)
}

/// Run `cmd` through the control protocol's `execute` off the runtime's thread.
async fn run(s: &Arc<ApiState>, cmd: Command) -> Response {
    let s = s.clone();
    tokio::task::spawn_blocking(move || execute(cmd, &s.ctx, Peer::API_TOKEN))
        .await
        .unwrap_or_else(|e| Response::error(format!("internal error: {e}")))
}

async fn readyz(State(s): State<Arc<ApiState>>) -> HttpResponse {
    if s.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response()
    }
}

/// Filters of `GET /api/v1/bans`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BanFilter {
    /// An address: the bans whose network holds it.
    pub ip: Option<String>,
    /// Rule.
    pub rule: Option<String>,
    /// Origin (detection, manual, aggregate, restored).
    pub origin: Option<String>,
}

async fn list_bans(State(s): State<Arc<ApiState>>, Query(f): Query<BanFilter>) -> HttpResponse {
    let ip = match f.ip.as_deref().map(str::parse::<IpAddr>) {
        Some(Err(_)) => {
            return answer(StatusCode::BAD_REQUEST, Response::error("ip: not an IP address"))
        }
        Some(Ok(a)) => Some(a),
        None => None,
    };
    let mut r = run(&s, Command::Bans).await;
    if let Some(bans) = r.bans.take() {
        let mut bans = match ip {
            Some(a) => protocol::bans_containing(bans, a),
            None => bans,
        };
        bans.retain(|b| {
            f.rule.as_deref().is_none_or(|x| b.rule == x)
                && f.origin.as_deref().is_none_or(|x| b.origin == x)
        });
        r.message = Some(format!("{} active ban(s)", bans.len()));
        r.bans = Some(bans);
    }
    reply(r, StatusCode::INTERNAL_SERVER_ERROR)
}

/// The body of `POST /api/v1/bans` checked as the socket's `ban` request.
fn ban_command(body: serde_json::Value, extend: bool) -> Result<Command, String> {
    let serde_json::Value::Object(mut m) = body else {
        return Err("the body must be a JSON object {\"net\",\"secs\",\"reason\"}".into());
    };
    m.insert("cmd".into(), "ban".into());
    if extend {
        m.insert("extend".into(), true.into());
    }
    let line = serde_json::to_vec(&m).map_err(|e| e.to_string())?;
    protocol::parse_request(&line).map_err(|e| format!("{e:#}"))
}

async fn add_ban(
    State(s): State<Arc<ApiState>>,
    Json(body): Json<serde_json::Value>,
) -> HttpResponse {
    match ban_command(body, false) {
        Ok(cmd) => reply(run(&s, cmd).await, StatusCode::CONFLICT),
        Err(e) => answer(StatusCode::BAD_REQUEST, Response::error(e)),
    }
}

async fn extend_ban(
    State(s): State<Arc<ApiState>>,
    Json(body): Json<serde_json::Value>,
) -> HttpResponse {
    match ban_command(body, true) {
        Ok(cmd) => reply(run(&s, cmd).await, StatusCode::CONFLICT),
        Err(e) => answer(StatusCode::BAD_REQUEST, Response::error(e)),
    }
}

async fn unban(s: &Arc<ApiState>, net: &str) -> HttpResponse {
    match protocol::parse_net(net) {
        Ok(n) => reply(run(s, Command::Unban(n)).await, StatusCode::NOT_FOUND),
        Err(e) => answer(StatusCode::BAD_REQUEST, Response::error(format!("{e:#}"))),
    }
}

async fn delete_ban(State(s): State<Arc<ApiState>>, Path(net): Path<String>) -> HttpResponse {
    unban(&s, &net).await
}

/// `DELETE /api/v1/bans?net=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetQuery {
    /// Network.
    pub net: String,
}

async fn delete_ban_query(
    State(s): State<Arc<ApiState>>,
    Query(q): Query<NetQuery>,
) -> HttpResponse {
    unban(&s, &q.net).await
}

async fn list_trust(State(s): State<Arc<ApiState>>) -> HttpResponse {
    reply(run(&s, Command::TrustList).await, StatusCode::INTERNAL_SERVER_ERROR)
}

/// `POST /api/v1/trust` with `{"net","reason"}`, checked as the socket's `trust-add`.
async fn add_trust(
    State(s): State<Arc<ApiState>>,
    Json(body): Json<serde_json::Value>,
) -> HttpResponse {
    let serde_json::Value::Object(mut m) = body else {
        return answer(
            StatusCode::BAD_REQUEST,
            Response::error("the body must be a JSON object {\"net\",\"reason\"}"),
        );
    };
    m.insert("cmd".into(), "trust-add".into());
    let line = serde_json::to_vec(&m).unwrap_or_default();
    match protocol::parse_request(&line) {
        Ok(cmd) => reply(run(&s, cmd).await, StatusCode::CONFLICT),
        Err(e) => answer(StatusCode::BAD_REQUEST, Response::error(format!("{e:#}"))),
    }
}

async fn learned(State(s): State<Arc<ApiState>>) -> HttpResponse {
    reply(run(&s, Command::Learned).await, StatusCode::INTERNAL_SERVER_ERROR)
}

/// `POST /api/v1/learned`: exactly one of `pin` or `forget`, naming a fact.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LearnedChange {
    pin: Option<String>,
    forget: Option<String>,
}

async fn learned_change(
    State(s): State<Arc<ApiState>>,
    Json(body): Json<serde_json::Value>,
) -> HttpResponse {
    let cmd = serde_json::from_value::<LearnedChange>(body)
        .map_err(|e| anyhow::anyhow!("bad request: {e}"))
        .and_then(|c| match (c.pin, c.forget) {
            (Some(p), None) => Ok(Command::LearnedPin(protocol::parse_fact(&p)?)),
            (None, Some(f)) => Ok(Command::LearnedForget(protocol::parse_fact(&f)?)),
            _ => Err(anyhow::anyhow!("give exactly one of \"pin\" or \"forget\"")),
        });
    match cmd {
        Ok(cmd) => reply(run(&s, cmd).await, StatusCode::NOT_FOUND),
        Err(e) => answer(StatusCode::BAD_REQUEST, Response::error(format!("{e:#}"))),
    }
}

async fn untrust(s: &Arc<ApiState>, net: &str) -> HttpResponse {
    match protocol::parse_net(net) {
        Ok(n) => reply(run(s, Command::TrustDel(n)).await, StatusCode::NOT_FOUND),
        Err(e) => answer(StatusCode::BAD_REQUEST, Response::error(format!("{e:#}"))),
    }
}

async fn del_trust(State(s): State<Arc<ApiState>>, Path(net): Path<String>) -> HttpResponse {
    untrust(&s, &net).await
}

async fn del_trust_query(
    State(s): State<Arc<ApiState>>,
    Query(q): Query<NetQuery>,
) -> HttpResponse {
    untrust(&s, &q.net).await
}

async fn reload(State(s): State<Arc<ApiState>>) -> HttpResponse {
    reply(run(&s, Command::Reload).await, StatusCode::UNPROCESSABLE_ENTITY)
}

async fn status(State(s): State<Arc<ApiState>>) -> HttpResponse {
    reply(run(&s, Command::Status).await, StatusCode::INTERNAL_SERVER_ERROR)
}

/// Filters of `GET /api/v1/decisions` (those of `sipwall decisions`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionQuery {
    /// Address or network holding the source.
    pub ip: Option<String>,
    /// Duration back from now (`1h`) or RFC 3339 time.
    pub since: Option<String>,
    /// Rule or family.
    pub rule: Option<String>,
    /// Most listed (default 100, at most [`MAX_DECISIONS`]).
    pub limit: Option<usize>,
}

/// Recorded decisions passing `filter`, newest first, in the CLI's JSON form.
fn read_decisions(
    db: &std::path::Path,
    filter: &crate::commands::decisions::Filter,
    limit: usize,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let rows = crate::commands::decisions::read(db, filter, limit)?;
    Ok(rows.iter().map(crate::commands::decisions::to_json).collect())
}

async fn decisions(State(s): State<Arc<ApiState>>, Query(q): Query<DecisionQuery>) -> HttpResponse {
    let now = crate::time::now_ms();
    let filter = match crate::commands::decisions::Filter::parse(
        q.ip.as_deref(),
        q.since.as_deref(),
        q.rule.as_deref(),
        now,
    ) {
        Ok(f) => f,
        Err(e) => return answer(StatusCode::BAD_REQUEST, Response::error(format!("{e:#}"))),
    };
    let limit = q.limit.unwrap_or(100).min(MAX_DECISIONS);
    let db = s.db.clone();
    match tokio::task::spawn_blocking(move || read_decisions(&db, &filter, limit)).await {
        Ok(Ok(rows)) => Json(serde_json::json!({"ok": true, "decisions": rows})).into_response(),
        Ok(Err(e)) => answer(StatusCode::INTERNAL_SERVER_ERROR, Response::error(format!("{e:#}"))),
        Err(e) => answer(StatusCode::INTERNAL_SERVER_ERROR, Response::error(e)),
    }
}

/// `GET /api/v1/sources/{ip}`: the bans holding it, its offence history (escalation count and
/// last ban end of the networks holding it), the engine's per-source counters (`counters`,
/// null when the engine does not track it; `tracked`), its learned status (`learned`: the
/// learned entry covering it, null while learning does not exist) and its recent decisions
/// with their sentences.
async fn source(State(s): State<Arc<ApiState>>, Path(ip): Path<String>) -> HttpResponse {
    let Ok(addr) = ip.parse::<IpAddr>() else {
        return answer(
            StatusCode::BAD_REQUEST,
            Response::error(format!("'{ip}' is not an IP address")),
        );
    };
    // The engine's per-source state: one short lock, off the runtime's thread.
    let ctx_state = s.clone();
    let counters = tokio::task::spawn_blocking(move || {
        let now = (ctx_state.ctx.clock)();
        crate::daemon::lock(&ctx_state.ctx.engine).source_counters(addr, now)
    })
    .await
    .ok()
    .flatten();
    let listed = run(&s, Command::Bans).await;
    let bans: Vec<BanView> =
        listed.bans.map(|b| protocol::bans_containing(b, addr)).unwrap_or_default();
    let db = s.db.clone();
    let filter = crate::commands::decisions::Filter {
        net: Some(ipnet::IpNet::from(addr)),
        ..Default::default()
    };
    let stored = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let rows = read_decisions(&db, &filter, 50)?;
        let offences: Vec<serde_json::Value> = crate::commands::open_store(&db)?
            .load_offences()?
            .into_iter()
            .filter(|o| o.net.contains(&addr))
            .map(|o| {
                serde_json::json!({
                    "net": o.net.to_string(),
                    "count": o.count,
                    "last_until_ms": o.last_until.as_millis(),
                })
            })
            .collect();
        Ok((rows, offences))
    })
    .await;
    let (decisions, offences, store_error) = match stored {
        Ok(Ok((d, o))) => (d, o, None),
        Ok(Err(e)) => (Vec::new(), Vec::new(), Some(format!("{e:#}"))),
        Err(e) => (Vec::new(), Vec::new(), Some(e.to_string())),
    };
    Json(serde_json::json!({
        "ok": true,
        "ip": addr.to_string(),
        "banned": !bans.is_empty(),
        "bans": bans,
        "offences": offences,
        "tracked": counters.is_some(),
        "counters": counters,
        "learned": dashboard::learned_status(dashboard::learned(&s).await, addr),
        "decisions": decisions,
        "store_error": store_error,
    }))
    .into_response()
}

async fn metrics(State(s): State<Arc<ApiState>>) -> HttpResponse {
    let state = s.clone();
    let text =
        tokio::task::spawn_blocking(move || crate::metrics::render(&metrics_snapshot(&state.ctx)))
            .await;
    match text {
        Ok(t) => (
            [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
            t,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// What `/metrics` reads of the daemon: the queue threads' published counters, the kernel's
/// queue counters, and ONE short engine lock to count bans and tracked sources.
pub fn metrics_snapshot(ctx: &Ctx) -> crate::metrics::Snapshot {
    let now = (ctx.clock)();
    let (bans, tracked) = {
        let e = crate::daemon::lock(&ctx.engine);
        let mut by: std::collections::BTreeMap<(String, String), u64> = Default::default();
        for b in e.bans().filter(|b| now < b.until) {
            *by.entry((b.rule.clone(), b.origin.to_string())).or_default() += 1;
        }
        (by, e.tracked_sources() as u64)
    };
    let text =
        std::fs::read_to_string(crate::daemon::status::NFNETLINK_QUEUE_PROC).unwrap_or_default();
    let kernel = protocol::parse_nfnetlink_queue(&text);
    let queues = ctx
        .counters
        .read()
        .into_iter()
        .map(|(num, q)| crate::metrics::QueueSample {
            num,
            packets: q.packets,
            dropped: q.dropped,
            would_drop: q.would_drop,
            kernel: kernel
                .iter()
                .find(|k| k.num == num)
                .map(|k| (k.waiting, k.dropped, k.user_dropped)),
        })
        .collect();
    let fast_path_packets = ctx.facts.fast_path.as_ref().and_then(|f| f.packets());
    crate::metrics::Snapshot { queues, bans, tracked_sources: tracked, fast_path_packets }
}

#[cfg(test)]
mod tests;
