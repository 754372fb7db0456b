//! The HTTP API and `/metrics` of the real daemon, in the namespaces of
//! `tests/e2e/topology.sh` (prefix `swa-`), with `[api] enabled` on its default loopback
//! address inside the PBX namespace, asked with curl there: `/healthz` and `/readyz`; a ban
//! refused without the token and, with it, put into the kernel set; `GET /api/v1/bans?ip=`
//! finding it; `/metrics` scraped and parsed (every metric name of `src/metrics.rs` present,
//! the ban active, packets counted after SIPp OPTIONS, the ban's latencies observed); `DELETE`
//! taking it out of the kernel set.
//!
//! Needs root, SIPp and curl; FAILS with a clear message otherwise. Every command runs under
//! `timeout`; a drop guard ends the daemon and the tools and deletes the namespaces even when
//! an assertion fails. Run it under `flock /tmp/sipwall-netns.lock`.
use std::fs;
use std::os::unix::fs::PermissionsExt as _;

use ipnet::IpNet;

mod common;
use common::{
    in_ns, is_root, kernel_set, no_rules_left, only_bans_left, output, require_tools, sipp_options,
    start_sipp_uas, wait_udp_listening, Stage,
};

/// The real metric-name constants of the daemon.
#[allow(dead_code)]
#[path = "../src/metrics.rs"]
mod metrics;

const PBX: &str = "swa-pbx";
const PROVIDER: &str = "swa-provider";
const TOKEN: &str = "api-test-token-4b1d0c3e9f27a6d8";
const API: &str = "http://127.0.0.1:9360";

/// `curl` in the PBX namespace: (HTTP status, body).
fn curl(method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> (u16, String) {
    let url = format!("{API}{path}");
    let auth = token.map(|t| format!("Authorization: Bearer {t}"));
    let mut args = vec!["-sS", "-m", "10", "-X", method, "-w", "\n%{http_code}"];
    if let Some(a) = &auth {
        args.extend(["-H", a]);
    }
    if let Some(b) = body {
        args.extend(["-H", "Content-Type: application/json", "--data", b]);
    }
    args.push(&url);
    let (ok, out) = output(in_ns(PBX, 20, "curl", &args));
    assert!(ok, "curl {method} {path} failed:\n{out}");
    let (text, code) = out.trim_end().rsplit_once('\n').unwrap_or(("", out.trim_end()));
    (code.trim().parse().unwrap_or_else(|_| panic!("no status from curl:\n{out}")), text.into())
}

fn kernel_bans() -> Vec<IpNet> {
    let mut v = kernel_set(PBX, "ban_addr4");
    v.extend(kernel_set(PBX, "ban_net4"));
    v
}

/// The value of the sample line `name{labels} value` (labels exactly as written), if any.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Sum of the samples of `name` whose labels hold every one of `with`.
fn sum(text: &str, name: &str, with: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && with.iter().all(|w| l.contains(w)))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

#[test]
#[ignore = "needs root, network namespaces, SIPp and curl: run by scripts/test.sh"]
fn http_api_and_metrics_of_the_real_daemon() {
    assert!(
        is_root(),
        "api_http needs root: it creates network namespaces (swa-*) and nftables rules and \
         runs `sipwall run` in them. Run: sudo -E cargo test -p sipwall --test api_http"
    );
    require_tools("api_http", &["sipp", "nft", "curl"], "apt-get install sip-tester nftables curl");
    let mut env = Stage::new("topology.sh", &[("SWD_PREFIX", "swa-")], PBX);
    assert!(env.up(), "tests/e2e/topology.sh up failed");
    let token = env.path("api.token");
    fs::write(&token, format!("{TOKEN}\n")).unwrap();
    fs::set_permissions(&token, fs::Permissions::from_mode(0o600)).unwrap();
    let config = format!(
        "[trusted]\nnetworks = [\"198.51.100.0/24\"]\n\n[ports]\nguarded = [5060]\n\n\
         [enforce]\nmode = \"host\"\nqueues = 1\n\n\
         [api]\nenabled = true\ntoken_file = \"{}\"\n",
        token.display()
    );
    fs::write(env.path("sipwall.toml"), &config).unwrap();
    env.tools.push(start_sipp_uas(PBX, env.dir.path(), &[]));
    wait_udp_listening(PBX, 5060);
    env.daemon.start();
    assert!(env.daemon.log().contains("HTTP API and /metrics on http://127.0.0.1:9360"));

    assert_eq!(curl("GET", "/healthz", None, None).0, 200);
    assert_eq!(curl("GET", "/readyz", None, None).0, 200);

    // A ban: refused without the token (and with a wrong one), applied with it.
    let body = r#"{"net":"203.0.113.9","secs":600,"reason":"api test"}"#;
    let (code, text) = curl("POST", "/api/v1/bans", None, Some(body));
    assert_eq!(code, 401, "{text}");
    let (code, _) =
        curl("POST", "/api/v1/bans", Some("api-test-token-wrong-0000000000"), Some(body));
    assert_eq!(code, 401);
    assert_eq!(kernel_bans(), Vec::<IpNet>::new(), "a refused ban reached the kernel");
    let (code, text) = curl("POST", "/api/v1/bans", Some(TOKEN), Some(body));
    assert_eq!(code, 200, "{text}\n{}", env.daemon.log());
    assert!(text.contains("manual ban by api token"), "{text}");
    let banned: IpNet = "203.0.113.9/32".parse().unwrap();
    assert_eq!(kernel_bans(), vec![banned]);

    let (code, text) = curl("GET", "/api/v1/bans?ip=203.0.113.9", None, None);
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["bans"][0]["net"], "203.0.113.9/32", "{text}");
    assert_eq!(v["bans"][0]["rule"], "manual", "{text}");
    let (_, text) = curl("GET", "/api/v1/bans?ip=203.0.113.10", None, None);
    assert!(!text.contains("203.0.113.9/32"), "{text}");

    // Packets from the provider are judged and counted.
    sipp_options(PROVIDER, "198.51.100.1:5060", "198.51.100.2");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let text = loop {
        let (code, text) = curl("GET", "/metrics", None, None);
        assert_eq!(code, 200, "{text}");
        if sum(&text, "sipwall_packets_total", &["verdict=\"accept\""]) >= 3.0 {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "OPTIONS not counted:\n{text}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    for name in metrics::ALL {
        assert!(text.contains(&format!("# TYPE {name} ")), "{name} missing:\n{text}");
    }
    assert_eq!(
        sample(&text, "sipwall_bans_active{rule=\"manual\",origin=\"manual\"}"),
        Some(1.0),
        "{text}"
    );
    assert!(sum(&text, "sipwall_bans_added_total", &["rule=\"manual\""]) >= 1.0, "{text}");
    assert!(
        sample(&text, "sipwall_ban_kernel_set_seconds_count").is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(sum(&text, "sipwall_decisions_total", &["rule=\"manual.ban\""]) >= 1.0, "{text}");
    assert_eq!(sample(&text, "sipwall_queue_kernel_drops_total{queue=\"0\"}"), Some(0.0), "{text}");
    assert!(text.trim_end().ends_with("# EOF"));

    // The source view: the ban and the recorded manual decision.
    let (code, text) = curl("GET", "/api/v1/sources/203.0.113.9", None, None);
    assert_eq!(code, 200, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["banned"], true, "{text}");

    // Unban: the token again, the network URL-encoded; out of the kernel set.
    assert_eq!(curl("DELETE", "/api/v1/bans/203.0.113.9%2F32", None, None).0, 401);
    let (code, text) = curl("DELETE", "/api/v1/bans/203.0.113.9%2F32", Some(TOKEN), None);
    assert_eq!(code, 200, "{text}");
    assert_eq!(kernel_bans(), Vec::<IpNet>::new());
    let (_, text) = curl("GET", "/metrics", None, None);
    assert_eq!(sample(&text, "sipwall_bans_active{rule=\"manual\",origin=\"manual\"}"), None);

    env.daemon.stop();
    only_bans_left(PBX); // a stop keeps the ban sets; --cleanup removes everything
    env.daemon.cleanup();
    no_rules_left(PBX);
}
