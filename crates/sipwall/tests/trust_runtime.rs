//! Run-time trust against the real daemon, in the namespaces of `tests/e2e/topology.sh`
//! (prefix `swt-`): svmap from the attacker is banned in the kernel; `sipwall trust add` of
//! its network lifts that ban at once and a second scan is no longer banned; the trust
//! survives a restart (kept in the store) and is listed as `runtime` beside the config's;
//! `sipwall trust del` ends it and the next scan is banned again. The HTTP API's
//! `/api/v1/trust` is the same command (refused without the token). The kernel's trusted
//! fast path (the iptables RETURN rules before the queue) follows every change, and `status`
//! reports it.
//!
//! Needs root, SIPVicious, nft and curl; FAILS with a clear message otherwise. Every command
//! runs under `timeout`; a drop guard ends the daemon and deletes the namespaces even when an
//! assertion fails. Run it under `flock /tmp/sipwall-netns.lock`.
use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt as _;

use ipnet::IpNet;

mod common;
use common::{in_ns, is_root, kernel_set, output, require_tools, run_bounded, tail, Stage};

const PBX: &str = "swt-pbx";
const ATTACKER: &str = "swt-attacker";
const TOKEN: &str = "trust-test-token-90c1e2b3a4d5";
const SCANNER: &str = "203.0.113.5";

fn scanner_banned() -> bool {
    kernel_set(PBX, "ban_addr4").contains(&IpNet::from(SCANNER.parse::<IpAddr>().unwrap()))
}

/// The networks whose UDP requests skip the queue: the source of each RETURN rule in the
/// queue chain (the xt backend: this kernel has no nft `queue` expression).
fn fast_path() -> Vec<String> {
    let (ok, out) = output(in_ns(PBX, 10, "iptables", &["-S", "SIPWALL-IN"]));
    assert!(ok, "iptables -S SIPWALL-IN: {out}");
    out.lines()
        .filter(|l| l.ends_with("-j RETURN"))
        .filter_map(|l| l.split_whitespace().skip_while(|w| *w != "-s").nth(1).map(String::from))
        .collect()
}

fn svmap() {
    let (_, out) = output(in_ns(
        ATTACKER,
        90,
        "sipvicious_svmap",
        &["-b", SCANNER, "-x", SCANNER, "203.0.113.1"],
    ));
    eprintln!("--- svmap\n{}", tail(&out, 6));
}

/// `sipwall ARGS --socket SOCK` (the control socket is a path: reachable from the host).
fn sipwall(env: &Stage, args: &[&str]) -> (bool, String) {
    let sock = env.path("control.sock");
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--socket", sock.to_str().unwrap()]);
    run_bounded(20, env!("CARGO_BIN_EXE_sipwall"), &all)
}

fn curl(method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> (u16, String) {
    let url = format!("http://127.0.0.1:9360{path}");
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
    (code.trim().parse().unwrap(), text.into())
}

#[test]
#[ignore = "needs root, network namespaces, SIPVicious, nft and curl: run by scripts/test.sh"]
fn runtime_trust_lifts_bans_at_once_and_persists() {
    assert!(
        is_root(),
        "trust_runtime needs root: it creates network namespaces (swt-*) and nftables rules \
         and runs `sipwall run` in them. Run: sudo -E cargo test -p sipwall --test trust_runtime"
    );
    require_tools(
        "trust_runtime",
        &["nft", "sipvicious_svmap", "curl"],
        "scripts/install-test-deps.sh",
    );
    let mut env = Stage::new("topology.sh", &[("SWD_PREFIX", "swt-")], PBX);
    assert!(env.up(), "tests/e2e/topology.sh up failed");
    let token = env.path("api.token");
    fs::write(&token, format!("{TOKEN}\n")).unwrap();
    fs::set_permissions(&token, fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(
        env.path("sipwall.toml"),
        format!(
            "[trusted]\nnetworks = [\"198.51.100.0/24\"]\n\n[ports]\nguarded = [5060]\n\n\
             [enforce]\nmode = \"host\"\nqueues = 1\n\n[api]\nenabled = true\ntoken_file = \"{}\"\n",
            token.display()
        ),
    )
    .unwrap();
    env.daemon.start();
    assert_eq!(fast_path(), ["198.51.100.0/24"], "the config's network is on the fast path");
    let (ok, out) = sipwall(&env, &["status", "--format", "json"]);
    assert!(ok, "{out}");
    let st: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(st["trusted_fast_path"], serde_json::json!(["198.51.100.0/24"]), "{out}");

    svmap();
    assert!(scanner_banned(), "svmap was not banned:\n{}", tail(&env.daemon.log(), 20));

    // Trusting its network lifts the ban in the kernel at once.
    let (ok, out) = sipwall(&env, &["trust", "add", "203.0.113.0/24", "--reason", "lab scanner"]);
    assert!(ok, "trust add failed: {out}");
    assert!(out.contains("trusted 203.0.113.0/24") && out.contains("1 ban(s)"), "{out}");
    assert!(!scanner_banned(), "the trusted scanner is still in the kernel set");
    assert_eq!(fast_path(), ["198.51.100.0/24", "203.0.113.0/24"], "trust add: fast path");
    // ...and a new scan from it is accepted, not banned (trusted wins).
    svmap();
    assert!(!scanner_banned(), "a trusted source was banned again");
    // Its requests skipped the queue: the kernel counted them, status and /metrics say so.
    std::thread::sleep(std::time::Duration::from_millis(1100)); // past the counters' cache
    let (ok, out) = sipwall(&env, &["status", "--format", "json"]);
    assert!(ok, "{out}");
    let st: serde_json::Value = serde_json::from_str(&out).unwrap();
    let fast = st["trusted_fast_path_packets"].as_u64().unwrap_or(0);
    assert!(fast > 0, "no packet counted on the fast path after a trusted scan: {out}");
    let (code, text) = curl("GET", "/metrics", None, None);
    assert_eq!(code, 200, "{text}");
    assert!(text.contains("sipwall_fast_path_packets_total "), "{text}");
    let (ok, out) = sipwall(&env, &["ban", SCANNER]);
    assert!(!ok && out.contains("trusted"), "a manual ban of a trusted network: {out}");
    // Twice: refused.
    let (ok, out) = sipwall(&env, &["trust", "add", "203.0.113.0/24"]);
    assert!(!ok && out.contains("already"), "{out}");

    // Kept across a restart, listed beside the config's baseline.
    env.daemon.stop();
    env.daemon.start();
    let (ok, out) = sipwall(&env, &["trust", "list", "--format", "json"]);
    assert!(ok, "{out}");
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    let origins: Vec<(String, String)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["net"].as_str().unwrap().into(), t["origin"].as_str().unwrap().into()))
        .collect();
    assert_eq!(
        origins,
        [("198.51.100.0/24".into(), "config".into()), ("203.0.113.0/24".into(), "runtime".into())]
    );
    assert!(list[1]["reason"].as_str().unwrap().starts_with("lab scanner; trusted by uid 0"));
    svmap();
    assert!(!scanner_banned(), "trust was lost at restart");
    assert_eq!(fast_path(), ["198.51.100.0/24", "203.0.113.0/24"], "restart: fast path");

    // The API serves the same command: the token is needed to change it.
    assert_eq!(curl("DELETE", "/api/v1/trust/203.0.113.0%2F24", None, None).0, 401);
    let (code, text) = curl("GET", "/api/v1/trust", None, None);
    assert_eq!(code, 200, "{text}");
    assert!(text.contains("\"origin\":\"runtime\""), "{text}");
    let (code, text) = curl("DELETE", "/api/v1/trust/198.51.100.0%2F24", Some(TOKEN), None);
    assert_eq!(code, 404, "the config's trust cannot be removed at run time: {text}");
    let (code, text) = curl("DELETE", "/api/v1/trust/203.0.113.0%2F24", Some(TOKEN), None);
    assert_eq!(code, 200, "{text}");
    assert_eq!(fast_path(), ["198.51.100.0/24"], "trust del: the network left the fast path");

    // No longer trusted: the next scan is banned again (it is queued and judged again).
    svmap();
    assert!(scanner_banned(), "untrusted scanner not banned:\n{}", tail(&env.daemon.log(), 20));
    let (ok, out) = sipwall(&env, &["trust", "del", "203.0.113.0/24"]);
    assert!(!ok && out.contains("not trusted"), "{out}");

    // A reload that drops the config's network takes it off the fast path too.
    let cfg = fs::read_to_string(env.path("sipwall.toml")).unwrap();
    fs::write(env.path("sipwall.toml"), cfg.replace("\"198.51.100.0/24\"", "")).unwrap();
    let (ok, out) = sipwall(&env, &["reload"]);
    assert!(ok, "reload: {out}");
    assert!(fast_path().is_empty(), "a network no longer trusted stayed on the fast path");
    env.daemon.stop();
    env.daemon.cleanup();
}
