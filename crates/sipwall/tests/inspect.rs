//! `sipwall inspect` end to end: the real binary on captures recorded with real tools
//! (scripts/record-captures.sh): SIPVicious svmap/svwar/svcrack (plain and -c) from
//! 203.0.113.10 and 2001:db8:a::10; SIPp calls (UDP with IP fragments, TCP, IPv6) and
//! digest-authenticated registrations from the provider 198.51.100.20 / 2001:db8:b::20.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn inspect(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sipwall"))
        .current_dir(root())
        .arg("inspect")
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run sipwall")
}

fn json(args: &[&str]) -> Value {
    let mut a = vec!["--format", "json"];
    a.extend_from_slice(args);
    let out = inspect(&a);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("valid JSON")
}

/// (address, scanner?) of every source.
fn verdicts(v: &Value) -> Vec<(String, bool)> {
    v["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["address"].as_str().unwrap().to_string(), s["scanner"].as_bool().unwrap()))
        .collect()
}

const ATTACKERS: [&str; 2] = ["203.0.113.10", "2001:db8:a::10"];
const PROVIDERS: [&str; 2] = ["198.51.100.20", "2001:db8:b::20"];

fn assert_classified(file: &str, expect_scanners: &[&str], expect_legit: &[&str]) {
    let v = json(&[file]);
    let got = verdicts(&v);
    for s in expect_scanners {
        assert!(got.contains(&(s.to_string(), true)), "{file}: {s} not flagged: {got:?}");
    }
    for s in expect_legit {
        assert!(got.contains(&(s.to_string(), false)), "{file}: {s} flagged or missing: {got:?}");
    }
    for (addr, scanner) in &got {
        if *scanner {
            assert!(ATTACKERS.contains(&addr.as_str()), "{file}: {addr} flagged");
        } else {
            assert!(PROVIDERS.contains(&addr.as_str()), "{file}: scanner {addr} not flagged");
        }
    }
}

#[test]
fn every_scanner_flagged_in_each_capture() {
    assert_classified("testdata/captures/svmap.pcap", &["203.0.113.10"], &[]);
    assert_classified("testdata/captures/svwar.pcapng", &["203.0.113.10"], &[]);
    assert_classified("testdata/captures/svcrack.pcap", &["203.0.113.10"], &[]);
}

#[test]
fn legitimate_provider_never_flagged() {
    // UDP calls (IP-fragmented on the 400-byte MTU link), TCP calls, digest registration.
    let v = json(&["testdata/captures/legit.pcap"]);
    assert_eq!(verdicts(&v), vec![("198.51.100.20".to_string(), false)]);
    assert_eq!(v["bans"].as_array().unwrap().len(), 0);
    let s = &v["sources"][0];
    assert_eq!(s["methods"]["INVITE"], 7, "4 UDP + 3 TCP calls: {s}");
    assert_eq!(s["methods"]["REGISTER"], 6);
    assert!(v["files"][0]["fragments_reassembled"].as_u64().unwrap() > 0);
}

#[test]
fn scanner_and_provider_in_one_linux_cooked_pcapng() {
    // tshark -i any: Linux cooked v1 in pcapng; the scanner starts with svmap -c (compact
    // headers, no User-Agent) while the provider places calls.
    assert_classified("testdata/captures/mixed-any.pcapng", &["203.0.113.10"], &["198.51.100.20"]);
    let v = json(&["testdata/captures/mixed-any.pcapng"]);
    let attacker =
        v["sources"].as_array().unwrap().iter().find(|s| s["address"] == "203.0.113.10").unwrap();
    assert!(
        attacker["user_agents"].as_array().unwrap().iter().any(|u| u == "(none)"),
        "{attacker}"
    );
    assert_eq!(
        attacker["first_seen_ms"], v["bans"][0]["since_ms"],
        "banned on its first (compact) probe"
    );
}

#[test]
fn ipv6_sll2_capture() {
    assert_classified("testdata/captures/ipv6-sll2.pcap", &["2001:db8:a::10"], &["2001:db8:b::20"]);
}

/// The engine's sentences are the engine's to word (and its tests check them): the snapshots
/// pin this report's layout and figures, with each sentence replaced by a marker after
/// checking it is there and names the address.
fn redact_text(text: &str) -> String {
    text.lines()
        .map(|l| {
            let t = l.trim_start();
            if t.starts_with("reason ") {
                let (head, sentence) = l.split_once(": ").expect("reason line has a sentence");
                assert!(sentence.len() > 20, "{l}");
                format!("{head}: <engine summary>")
            } else if l.starts_with("  ")
                && (t.contains("/32 ") || t.contains("/128 ") || t.contains("/24 "))
            {
                let (head, sentence) = l.split_once("): ").expect("ban line has a reason");
                let addr = t.split('/').next().unwrap();
                assert!(sentence.contains(addr), "{l}");
                format!("{head}): <engine summary>")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn redact_json(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, x) in map.iter_mut() {
                if (k == "reason" || k == "summary") && x.is_string() {
                    assert!(x.as_str().unwrap().len() > 20, "{x}");
                    *x = Value::String("<engine summary>".into());
                } else {
                    redact_json(x);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(redact_json),
        _ => {}
    }
}

#[test]
fn text_report_snapshot() {
    let mut files: Vec<String> = std::fs::read_dir(root().join("testdata/captures"))
        .unwrap()
        .map(|e| format!("testdata/captures/{}", e.unwrap().file_name().to_string_lossy()))
        .filter(|f| !f.contains("corrupt") && !f.contains("truncated"))
        .collect();
    files.sort();
    let args: Vec<&str> = files.iter().map(String::as_str).collect();
    let out = inspect(&args);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("Scanners found: 2 of 4 sources"), "{text}");
    insta::assert_snapshot!("inspect_text_all", redact_text(&text));
}

#[test]
fn json_report_snapshot() {
    let mut v = json(&["testdata/captures/svmap.pcap", "testdata/captures/legit.pcap"]);
    redact_json(&mut v);
    insta::assert_snapshot!("inspect_json_svmap_legit", serde_json::to_string_pretty(&v).unwrap());
}

#[test]
fn csv_one_row_per_source() {
    let out = inspect(&["--format", "csv", "testdata/captures/mixed-any.pcapng"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("address,scanner,banned,"));
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[1].starts_with("203.0.113.10,true,true,"), "{text}");
    assert!(lines[2].starts_with("198.51.100.20,false,false,"), "{text}");
}

#[test]
fn corrupt_capture_reports_where_and_why_and_keeps_going() {
    // corrupt.pcap is svcrack.pcap with the 10th record's length set to 0x7fffff00: the reader
    // says where, skips that record and reads on.
    let out = inspect(&["--format", "json", "testdata/captures/corrupt.pcap"]);
    assert!(out.status.success(), "something was read: exit 0");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("corrupt at byte 4002"), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let whole = json(&["testdata/captures/svcrack.pcap"]);
    assert_eq!(
        v["files"][0]["frames"].as_u64().unwrap(),
        whole["files"][0]["frames"].as_u64().unwrap() - 1
    );
    assert!(v["files"][0]["error"].is_null());
    let w = v["files"][0]["warnings"][0].as_str().unwrap();
    assert!(w.starts_with("corrupt at byte 4002: ") && w.contains("resumed at byte"), "{w}");
    assert_eq!(verdicts(&v), vec![("203.0.113.10".to_string(), true)]);

    let out = inspect(&["testdata/captures/truncated.pcapng"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("STOPPED: truncated: the record at byte 20032"), "{text}");
}

#[test]
fn exit_non_zero_only_when_nothing_could_be_read() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pcap");
    std::fs::write(&junk, b"this is not a capture").unwrap();
    let missing = dir.path().join("missing.pcap");
    let out = inspect(&[junk.to_str().unwrap(), missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a pcap or pcapng capture"), "{stderr}");
    // one good file among bad ones: success
    let out = inspect(&[junk.to_str().unwrap(), "testdata/captures/svmap.pcap"]);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn ports_filter() {
    let v = json(&["--ports", "9999", "testdata/captures/legit.pcap"]);
    assert_eq!(v["messages"], 0);
    let v = json(&["--ports", "5060", "testdata/captures/legit.pcap"]);
    assert_eq!(v["messages"], 54);
}

#[test]
fn html_page_is_self_contained() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    let out = inspect(&[
        "--html",
        page.to_str().unwrap(),
        "testdata/captures/mixed-any.pcapng",
        "testdata/captures/legit.pcap",
    ]);
    assert!(out.status.success());
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<svg") && html.contains("<table"));
    assert!(html.contains("203.0.113.10") && html.contains("198.51.100.20"));
    for needle in ["src=", "href=", "@import", "url("] {
        assert!(!html.contains(needle), "page loads something: {needle}");
    }
}

#[test]
fn summary_line_counts_sources_in_plain_words() {
    let out = inspect(&["testdata/captures/svwar.pcapng"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("sipwall inspect: 73 SIP messages from 1 source, "), "{text}");
}
