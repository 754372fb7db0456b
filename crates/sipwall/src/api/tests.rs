//! Routing and auth through the real router (`tower::ServiceExt::oneshot`), with the real
//! engine and `execute`; only the ban worker is a stand-in (it acknowledges batches: the
//! kernel and store path is tested by the namespace test `api_http`).
use std::sync::mpsc;

use axum::body::Body;
use axum::http::Request as HttpRequest;
use http_body_util::BodyExt as _;
use sipwall_engine::{Engine, Policy, Timestamp};
use tower::ServiceExt as _;

use super::*;
use crate::daemon::ban_worker::{Applied, Work};

const TOKEN: &str = "test-token-0123456789abcdef";

fn clock() -> Timestamp {
    Timestamp::from_millis(1_000_000)
}

fn state(reads_need_token: bool) -> (Arc<ApiState>, std::thread::JoinHandle<Vec<Work>>) {
    let policy = Policy::from_toml_str("[trusted]\nnetworks = [\"198.51.100.0/24\"]\n").unwrap();
    let (tx, rx) = mpsc::sync_channel(16);
    let worker = std::thread::spawn(move || {
        let mut seen = Vec::new();
        while let Ok(w) = rx.recv() {
            match w {
                Work::Apply(_, ack) => {
                    let _ = ack.send(Applied { kernel_ok: true, store_ok: true });
                }
                Work::Stop => break,
                other => seen.push(other),
            }
        }
        seen
    });
    let ctx = Ctx::for_tests(Engine::new(policy), tx, clock);
    let s = ApiState {
        ctx,
        token: Some(TOKEN.as_bytes().to_vec()),
        reads_need_token,
        db: PathBuf::from("/nonexistent/sipwall.db"),
        ready: Arc::new(AtomicBool::new(false)),
    };
    (Arc::new(s), worker)
}

async fn call(
    s: &Arc<ApiState>,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (StatusCode, String) {
    let mut b = HttpRequest::builder().method(method).uri(uri);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    if body.is_some() {
        b = b.header("content-type", "application/json");
    }
    let req = b.body(Body::from(body.unwrap_or("").to_string())).unwrap();
    let resp = router(s.clone()).oneshot(req).await.unwrap();
    let code = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (code, String::from_utf8_lossy(&bytes).into_owned())
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn mutations_need_the_token_and_go_through_execute() {
    rt().block_on(async {
        let (s, worker) = state(false);
        assert_eq!(call(&s, "GET", "/healthz", None, None).await.0, StatusCode::OK);
        assert_eq!(call(&s, "GET", "/readyz", None, None).await.0, StatusCode::SERVICE_UNAVAILABLE);
        s.ready.store(true, Ordering::Relaxed);
        assert_eq!(call(&s, "GET", "/readyz", None, None).await.0, StatusCode::OK);

        let body = r#"{"net":"203.0.113.0/24","secs":600,"reason":"scanner"}"#;
        let (code, text) = call(&s, "POST", "/api/v1/bans", None, Some(body)).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED, "{text}");
        let (code, _) =
            call(&s, "POST", "/api/v1/bans", Some("test-token-0123456789abcdeX"), Some(body)).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED);
        assert!(crate::daemon::lock(&s.ctx.engine).bans().next().is_none());
        let (code, text) = call(&s, "POST", "/api/v1/bans", Some(TOKEN), Some(body)).await;
        assert_eq!(code, StatusCode::OK, "{text}");
        assert!(text.contains("manual ban by api token"), "{text}");
        // the socket's checks: host bits, trusted networks
        let (code, text) = call(
            &s,
            "POST",
            "/api/v1/bans",
            Some(TOKEN),
            Some(r#"{"net":"203.0.113.7/16","secs":60}"#),
        )
        .await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{text}");
        let (code, text) = call(
            &s,
            "POST",
            "/api/v1/bans",
            Some(TOKEN),
            Some(r#"{"net":"198.51.100.7","secs":60}"#),
        )
        .await;
        assert_eq!(code, StatusCode::CONFLICT, "{text}");
        assert!(text.contains("trusted"), "{text}");

        // reads are open by default; an address finds its range
        let (code, text) = call(&s, "GET", "/api/v1/bans?ip=203.0.113.77", None, None).await;
        assert_eq!(code, StatusCode::OK);
        assert!(text.contains("\"net\":\"203.0.113.0/24\""), "{text}");
        let (_, text) = call(&s, "GET", "/api/v1/bans?ip=192.0.2.1", None, None).await;
        assert!(!text.contains("203.0.113.0/24"), "{text}");
        let (_, text) = call(&s, "GET", "/api/v1/bans?origin=detection", None, None).await;
        assert!(!text.contains("203.0.113.0/24"), "{text}");

        let (code, text) = call(
            &s,
            "POST",
            "/api/v1/bans/extend",
            Some(TOKEN),
            Some(r#"{"net":"203.0.113.0/24","secs":7200}"#),
        )
        .await;
        assert_eq!(code, StatusCode::OK, "{text}");
        assert!(text.contains("extended"), "{text}");

        // delete: URL-encoded network in the path
        assert_eq!(
            call(&s, "DELETE", "/api/v1/bans/203.0.113.0%2F24", None, None).await.0,
            StatusCode::UNAUTHORIZED
        );
        let (code, text) =
            call(&s, "DELETE", "/api/v1/bans/203.0.113.0%2F24", Some(TOKEN), None).await;
        assert_eq!(code, StatusCode::OK, "{text}");
        assert!(crate::daemon::lock(&s.ctx.engine).bans().next().is_none());
        let (code, _) =
            call(&s, "DELETE", "/api/v1/bans?net=203.0.113.0/24", Some(TOKEN), None).await;
        assert_eq!(code, StatusCode::NOT_FOUND);

        let (code, text) = call(&s, "GET", "/api/v1/status", None, None).await;
        assert_eq!(code, StatusCode::OK);
        assert!(text.contains("\"status\""), "{text}");
        let (code, text) = call(&s, "GET", "/metrics", None, None).await;
        assert_eq!(code, StatusCode::OK);
        assert!(text.contains(crate::metrics::SIGNATURE_HITS), "{text}");
        // no reloader here: refused with the reason
        let (code, text) = call(&s, "POST", "/api/v1/reload", Some(TOKEN), None).await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{text}");

        let _ = s.ctx.work.send(Work::Stop);
        let seen = worker.join().unwrap();
        let audited: Vec<&str> = seen
            .iter()
            .filter_map(|w| match w {
                Work::Decision(d) => Some(d.record.summary.as_str()),
                _ => None,
            })
            .collect();
        assert!(
            audited.iter().any(|a| a.contains("manual unban of 203.0.113.0/24 by api token")),
            "{audited:?}"
        );
    });
}

#[test]
fn reads_can_require_the_token() {
    rt().block_on(async {
        let (s, worker) = state(true);
        assert_eq!(call(&s, "GET", "/api/v1/bans", None, None).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(call(&s, "GET", "/metrics", None, None).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(call(&s, "GET", "/api/v1/bans", Some(TOKEN), None).await.0, StatusCode::OK);
        // health checks never need it
        assert_eq!(call(&s, "GET", "/healthz", None, None).await.0, StatusCode::OK);
        let _ = s.ctx.work.send(Work::Stop);
        worker.join().unwrap();
    });
}

#[test]
fn the_default_listen_address_is_loopback() {
    let cfg = ApiConfig::default();
    assert!(!cfg.enabled);
    assert!(cfg.listen.ip().is_loopback());
    // binding the default shape on an ephemeral port works without a token file
    let bound = bind(&ApiConfig { listen: "127.0.0.1:0".parse().unwrap(), ..cfg }).unwrap();
    assert!(bound.local_addr().unwrap().ip().is_loopback());
    assert!(bound.token.is_none());
}

/// The feed in each format from the engine's bans, open to reads by default, closed when
/// reads need the token; an unknown format is a 400.
#[test]
fn the_feed_is_served_in_every_format() {
    rt().block_on(async {
        let (s, worker) = state(false);
        let body = r#"{"net":"203.0.113.0/24","secs":600,"reason":"scanner \"x\""}"#;
        assert_eq!(
            call(&s, "POST", "/api/v1/bans", Some(TOKEN), Some(body)).await.0,
            StatusCode::OK
        );
        for (uri, want) in [
            ("/api/v1/feed", "\n203.0.113.0/24\n"),
            ("/api/v1/feed.txt", "\n203.0.113.0/24\n"),
            ("/api/v1/feed?format=nft", "feed4 { 203.0.113.0/24 timeout 600s }"),
            ("/api/v1/feed.nft", "feed4 { 203.0.113.0/24 timeout 600s }"),
            ("/api/v1/feed?format=ipset", "add sipwall_feed4 203.0.113.0/24 timeout 600\n"),
            ("/api/v1/feed.ipset", "add sipwall_feed4 203.0.113.0/24 timeout 600\n"),
            ("/api/v1/feed?format=mikrotik", "address=203.0.113.0/24 timeout=10m"),
            ("/api/v1/feed.rsc", "address=203.0.113.0/24 timeout=10m"),
            ("/api/v1/feed?format=json", "\"net\": \"203.0.113.0/24\""),
            ("/api/v1/feed.json", "\"count\": 1"),
        ] {
            let (code, text) = call(&s, "GET", uri, None, None).await;
            assert_eq!(code, StatusCode::OK, "{uri}: {text}");
            assert!(text.contains(want), "{uri}:\n{text}");
        }
        let (code, _) = call(&s, "GET", "/api/v1/feed?format=pf", None, None).await;
        assert_eq!(code, StatusCode::BAD_REQUEST);
        let _ = s.ctx.work.send(Work::Stop);
        worker.join().unwrap();
        let (s, worker) = state(true);
        assert_eq!(call(&s, "GET", "/api/v1/feed", None, None).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(call(&s, "GET", "/api/v1/feed.nft", Some(TOKEN), None).await.0, StatusCode::OK);
        let _ = s.ctx.work.send(Work::Stop);
        worker.join().unwrap();
    });
}
