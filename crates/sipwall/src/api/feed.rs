//! `GET /api/v1/feed?format=plain|nft|ipset|mikrotik|json` and the same under file names
//! (`/api/v1/feed.txt`, `.nft`, `.ipset`, `.rsc`, `.json`) for consumers that save what they
//! fetch by its name: the active bans rendered by [`crate::feeds::render`], the renderer of
//! `sipwall feed export`. A read: open unless `[api] require_token_for_reads`.
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response as HttpResponse};
use serde::Deserialize;

use super::{answer, run, ApiState};
use crate::feeds::render::{render, FeedFormat};
use crate::protocol::{Command, Response};

/// The query of `/api/v1/feed`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedQuery {
    /// Format (default `plain`).
    pub format: Option<FeedFormat>,
}

/// The bans as a feed in `format`.
pub async fn feed_as(s: &Arc<ApiState>, format: FeedFormat) -> HttpResponse {
    let r = run(s, Command::Bans).await;
    let Some(bans) = r.bans.filter(|_| r.ok) else {
        let why = r.error.unwrap_or_else(|| "no ban list".into());
        return answer(StatusCode::INTERNAL_SERVER_ERROR, Response::error(why));
    };
    let body = render(&bans, format, (s.ctx.clock)().as_millis());
    ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
}

/// `GET /api/v1/feed?format=`.
pub async fn feed(State(s): State<Arc<ApiState>>, Query(q): Query<FeedQuery>) -> HttpResponse {
    feed_as(&s, q.format.unwrap_or(FeedFormat::Plain)).await
}

/// `GET /api/v1/feed.txt`.
pub async fn plain(State(s): State<Arc<ApiState>>) -> HttpResponse {
    feed_as(&s, FeedFormat::Plain).await
}
/// `GET /api/v1/feed.nft`.
pub async fn nft(State(s): State<Arc<ApiState>>) -> HttpResponse {
    feed_as(&s, FeedFormat::Nft).await
}
/// `GET /api/v1/feed.ipset`.
pub async fn ipset(State(s): State<Arc<ApiState>>) -> HttpResponse {
    feed_as(&s, FeedFormat::Ipset).await
}
/// `GET /api/v1/feed.rsc`.
pub async fn mikrotik(State(s): State<Arc<ApiState>>) -> HttpResponse {
    feed_as(&s, FeedFormat::Mikrotik).await
}
/// `GET /api/v1/feed.json`.
pub async fn json(State(s): State<Arc<ApiState>>) -> HttpResponse {
    feed_as(&s, FeedFormat::Json).await
}
