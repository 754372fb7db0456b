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

/// Run a Wireshark tool (wireshark-common: editcap, mergecap); fails the test if it cannot.
fn wireshark_tool(tool: &str, args: &[&str]) {
    let out = Command::new(tool).current_dir(root()).args(args).output().unwrap_or_else(|e| {
        panic!("`{tool}` could not run ({e}): install wireshark-common (editcap, mergecap)")
    });
    assert!(out.status.success(), "{tool} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The report without its per-file part (one merged file vs several give other file rows).
fn without_files(mut v: Value) -> Value {
    v.as_object_mut().unwrap().remove("files");
    v
}

fn files_total(v: &Value, key: &str) -> u64 {
    v["files"].as_array().unwrap().iter().map(|f| f[key].as_u64().unwrap()).sum()
}

#[test]
#[ignore = "needs editcap and mergecap (Wireshark tools): run by scripts/test.sh"]
fn overlapping_captures_are_merged_by_time_like_mergecap() {
    // svcrack and svwar (the same scanner) shifted into legit.pcap's time span: captures of
    // the same seconds, the scanner's two runs interleaved with the provider's calls.
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    wireshark_tool("editcap", &["-t", "17", "testdata/captures/svcrack.pcap", &p("svcrack.pcap")]);
    wireshark_tool("editcap", &["-t", "31", "testdata/captures/svwar.pcapng", &p("svwar.pcapng")]);
    // And a flood split across two more captures of those seconds (see `flood_halves`).
    let (eth0, eth1) = flood_halves(dir.path(), 1_795_698_958);
    let inputs =
        [p("svcrack.pcap"), "testdata/captures/legit.pcap".into(), p("svwar.pcapng"), eth0, eth1];
    let mut args = vec!["-w".to_string(), p("merged.pcapng")];
    args.extend(inputs.iter().cloned());
    wireshark_tool("mergecap", &args.iter().map(String::as_str).collect::<Vec<_>>());

    let several = json(&inputs.iter().map(String::as_str).collect::<Vec<_>>());
    let merged = json(&[&p("merged.pcapng")]);
    for key in ["frames", "sip_messages"] {
        assert_eq!(files_total(&several, key), files_total(&merged, key), "{key}");
    }
    // Reported in the order given, whatever their times.
    let paths: Vec<&str> =
        several["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(paths, inputs.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(flood_bans(&several).len(), 1, "only banned when interleaved: {several}");
    assert_eq!(without_files(several), without_files(merged));
}

/// One UDP datagram: (seconds, microseconds, src, sport, dst, dport, payload).
type Datagram = (u32, u32, [u8; 4], u16, [u8; 4], u16, Vec<u8>);

/// A pcap file (microseconds, Ethernet) of UDP datagrams.
fn write_pcap(path: &Path, records: &[Datagram]) {
    let mut f = Vec::new();
    for w in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65535, 1] {
        f.extend_from_slice(&w.to_le_bytes()); // magic, version 2.4, zone, sigfigs, snaplen, link
    }
    for (sec, usec, src, sport, dst, dport, payload) in records {
        let udp_len = 8 + payload.len();
        let ip_len = 20 + udp_len;
        let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0];
        ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
        ip.extend_from_slice(src);
        ip.extend_from_slice(dst);
        let sum = ip.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).sum::<u32>();
        let sum = (sum & 0xffff) + (sum >> 16);
        ip[10..12].copy_from_slice(&(!((sum & 0xffff) + (sum >> 16)) as u16).to_be_bytes());
        let mut frame = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&sport.to_be_bytes());
        frame.extend_from_slice(&dport.to_be_bytes());
        frame.extend_from_slice(&(udp_len as u16).to_be_bytes());
        frame.extend_from_slice(&[0, 0]);
        frame.extend_from_slice(payload);
        for w in [*sec, *usec, frame.len() as u32, frame.len() as u32] {
            f.extend_from_slice(&w.to_le_bytes());
        }
        f.extend_from_slice(&frame);
    }
    std::fs::write(path, f).unwrap();
}

/// One source floods a PBX with OPTIONS (same user: no enumeration), half of them seen on
/// each of two interfaces: 60 + 60 within 6 s from `base`, over the default 100 per 10 s;
/// neither half alone is. The first interface's capture runs on and sees it once more 15 min
/// later. Writes eth0.pcap and eth1.pcap into `dir`.
fn flood_halves(dir: &Path, base: u32) -> (String, String) {
    let (scanner, pbx) = ([203, 0, 113, 50], [192, 0, 2, 10]);
    let options = |i: u32| {
        format!(
            "OPTIONS sip:100@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.50:5070;branch=z9hG4bK-{i}\r\nFrom: <sip:probe@203.0.113.50>;tag={i}\r\nTo: <sip:100@192.0.2.10>\r\nCall-ID: flood-{i}@203.0.113.50\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
        .into_bytes()
    };
    let rec = |sec: u32, usec: u32, i: u32| (sec, usec, scanner, 5070, pbx, 5060, options(i));
    let mut first: Vec<_> = (0..60).map(|i| rec(base + i / 10, (i % 10) * 100_000, i)).collect();
    first.push(rec(base + 900, 0, 999));
    let second: Vec<_> =
        (0..60).map(|i| rec(base + i / 10, (i % 10) * 100_000 + 50_000, 100 + i)).collect();
    let (a, b) = (dir.join("eth0.pcap"), dir.join("eth1.pcap"));
    write_pcap(&a, &first);
    write_pcap(&b, &second);
    (a.to_str().unwrap().to_string(), b.to_str().unwrap().to_string())
}

/// (net, since_ms) of the flood bans in a report.
fn flood_bans(v: &Value) -> Vec<(String, u64)> {
    v["bans"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["rule"] == "behaviour.flood")
        .map(|x| (x["net"].as_str().unwrap().to_string(), x["since_ms"].as_u64().unwrap()))
        .collect()
}

#[test]
#[ignore = "needs editcap and mergecap (Wireshark tools): run by scripts/test.sh"]
fn flood_split_across_two_interfaces_captures_is_banned() {
    const BASE: u32 = 1_795_700_000;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = flood_halves(dir.path(), BASE);
    let (a, b) = (a.as_str(), b.as_str());
    let sequential = dir.path().join("sequential.pcap");
    let sequential = sequential.to_str().unwrap();
    wireshark_tool("mergecap", &["-a", "-F", "pcap", "-w", sequential, a, b]);
    let merged = dir.path().join("merged.pcap");
    let merged = merged.to_str().unwrap();
    wireshark_tool("mergecap", &["-F", "pcap", "-w", merged, a, b]);

    // Each half alone is below the threshold.
    assert!(flood_bans(&json(&[a])).is_empty());
    assert!(flood_bans(&json(&[b])).is_empty());
    // Merged by time: the 100th request within 10 s is banned, as in one capture of both.
    let both = json(&[a, b]);
    let banned_at = u64::from(BASE) * 1000 + 4_950; // request 100: second file's 50th, 4.95 s in
    assert_eq!(flood_bans(&both), vec![("203.0.113.50/32".to_string(), banned_at)], "{both}");
    assert_eq!(without_files(both.clone()), without_files(json(&[merged])));
    // Read one after another (what `inspect` did, and what it still does inside one file
    // whose records are out of order): the late record resets the window, no ban.
    let one_after_another = json(&[sequential]);
    assert_eq!(one_after_another["messages"], 121);
    assert!(flood_bans(&one_after_another).is_empty(), "{one_after_another}");
}

#[test]
fn too_many_files_is_a_clear_error() {
    let many = vec!["testdata/captures/svmap.pcap"; 257];
    let out = inspect(&many);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("257 capture files given, at most 256"), "{stderr}");
    assert!(out.stdout.is_empty());
    // 256 is fine (the same file, read 256 times through one engine).
    let v = json(&vec!["testdata/captures/svmap.pcap"; 256]);
    assert_eq!(v["files"].as_array().unwrap().len(), 256);
    assert_eq!(v["messages"], 256 * 6);
}

#[test]
fn equal_timestamps_go_to_the_file_given_first() {
    // Two captures of one instant: a SIPVicious OPTIONS in one, its REGISTER in the other.
    // The ban is set on whichever the engine sees first, which its sentence names.
    let (scanner, pbx) = ([203, 0, 113, 10], [192, 0, 2, 10]);
    let request = |method: &str| {
        format!(
            "{method} sip:100@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bK-1;rport\r\nFrom: \"sipvicious\"<sip:100@1.1.1.1>;tag=6162\r\nTo: \"sipvicious\"<sip:100@1.1.1.1>\r\nCall-ID: 1234567\r\nCSeq: 1 {method}\r\nUser-Agent: friendly-scanner\r\nContent-Length: 0\r\n\r\n"
        )
        .into_bytes()
    };
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.pcap"), dir.path().join("b.pcap"));
    write_pcap(&a, &[(1_795_700_000, 0, scanner, 5060, pbx, 5060, request("OPTIONS"))]);
    write_pcap(&b, &[(1_795_700_000, 0, scanner, 5060, pbx, 5060, request("REGISTER"))]);
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let ban_reason = |files: &[&str]| {
        let v = json(files);
        assert_eq!(v["bans"].as_array().unwrap().len(), 1, "{v}");
        v["bans"][0]["reason"].as_str().unwrap().to_string()
    };
    for _ in 0..3 {
        assert!(ban_reason(&[a, b]).contains("sent OPTIONS"), "{}", ban_reason(&[a, b]));
        assert!(ban_reason(&[b, a]).contains("sent REGISTER"), "{}", ban_reason(&[b, a]));
    }
}

/// `sipwall inspect ... | head -0`: the reader is gone before the report is written. The run
/// ends quietly with status 0 (as `cat` would), and an `--html` page is still written.
#[test]
fn a_report_into_a_closed_pipe_exits_quietly_and_still_writes_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader); // every write to stdout fails with EPIPE
    let out = Command::new(env!("CARGO_BIN_EXE_sipwall"))
        .current_dir(root())
        .args(["inspect", "testdata/captures/svmap.pcap", "--html"])
        .arg(&page)
        .stdin(std::process::Stdio::null())
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "inspect into a closed pipe:\n{stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("error"), "{stderr}");
    let html = std::fs::read_to_string(&page).expect("the HTML page was not written");
    assert!(html.contains("203.0.113.10"), "page without the scanner");
}

/// A recorded message of the engine's scenario fixtures (real SIPp traffic, CRLF).
fn scenario_msg(scenario: &str, n: &str) -> Vec<u8> {
    let dir = root().join("crates/engine/tests/scenarios").join(scenario);
    let name = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .find(|f| f.starts_with(&format!("{n}-")))
        .unwrap();
    std::fs::read(dir.join(name)).unwrap()
}

/// A capture of a PBX (192.0.2.10) that registers to its provider (198.51.100.20) and calls
/// out through it: the recorded phone scenario as the PBX's own traffic (its `in` messages are
/// the PBX's, its `out` messages the provider's answers). Then a botnet: 30 addresses, one clean
/// INVITE each (a phone's User-Agent, no tool tell) to extension 202 at the PBX's address; and
/// the provider's own INVITE.
fn trunk_and_botnet_capture(path: &Path) {
    let (pbx, provider) = ([192, 0, 2, 10], [198, 51, 100, 20]);
    let base = 1_795_800_000u32;
    let dir = root().join("crates/engine/tests/scenarios/phone-register-and-calls");
    let meta = std::fs::read_to_string(dir.join("meta.txt")).unwrap();
    let mut records: Vec<Datagram> = Vec::new();
    for line in meta.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let bytes = std::fs::read(dir.join(format!("{}-{}.sip", f[0], f[1]))).unwrap();
        let ms: u32 = f[2].parse().unwrap();
        let (src, dst) = if f[1] == "in" { (pbx, provider) } else { (provider, pbx) };
        records.push((base + ms / 1000, (ms % 1000) * 1000, src, 5060, dst, 5060, bytes));
    }
    let invite = String::from_utf8(scenario_msg("phone-register-and-calls", "009")).unwrap();
    let invite = invite.replace("User-Agent", "X-Ignored").replacen(
        "Content-Type",
        "User-Agent: Yealink SIP-T46S 66.86.0.15\r\nContent-Type",
        1,
    );
    for i in 0..30u32 {
        let call = invite.replace("1-23427@", &format!("{i:02}-bot@"));
        let src = [203, 0, 113, 100 + i as u8];
        records.push((base + 10 + i, 0, src, 5060, pbx, 5060, call.into_bytes()));
    }
    let prov = scenario_msg("provider-invites-and-options", "011");
    records.push((base + 60, 0, provider, 5060, pbx, 5060, prov));
    write_pcap(path, &records);
}

#[test]
fn inspect_reports_what_would_be_learned_and_the_campaign() {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("trunk.pcap");
    trunk_and_botnet_capture(&cap);
    let cap = cap.to_str().unwrap();
    let v = json(&["--local", "192.0.2.10", cap]);
    let l = &v["learning"];
    assert_eq!(l["mode"], "auto");
    assert_eq!(l["enforcing"], true, "{l}");
    let facts: Vec<(String, String)> = l["learned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["kind"].as_str().unwrap().into(), f["value"].as_str().unwrap().into()))
        .collect();
    let want = [("upstream", "198.51.100.20"), ("user", "201"), ("user", "sipp")];
    assert_eq!(facts, want.map(|(k, v)| (k.to_string(), v.to_string())), "{l}");
    let up = &l["learned"][0];
    assert!(
        up["evidence"].as_str().unwrap().contains("sent to 198.51.100.20:5060 answered 200 by it"),
        "{up}"
    );
    // The campaign: ten bots made it (nine ghost calls dropped first), the rest were banned.
    let camps = l["campaigns"].as_array().unwrap();
    let by_user = camps.iter().find(|c| c["kind"] == "target-user").expect("a campaign");
    assert_eq!(by_user["key"], "202");
    assert!(by_user["sources"].as_u64().unwrap() >= 10, "{by_user}");
    // No bot rang: each is a scanner; the provider is not, its INVITE accepted.
    for s in v["sources"].as_array().unwrap() {
        let addr = s["address"].as_str().unwrap();
        if addr == "198.51.100.20" {
            assert_eq!(s["scanner"], false, "{s}");
            assert_eq!(s["dropped"], 0);
        } else {
            assert!(addr.starts_with("203.0.113."), "{addr}");
            assert_eq!(s["scanner"], true, "{s}");
            assert_eq!(s["accepted"], 0, "{s}");
            let rules: Vec<&String> = s["reasons"].as_object().unwrap().keys().collect();
            assert!(
                rules.iter().any(|r| {
                    ["ghost.unsolicited-invite", "campaign.target-user", "ban.active"]
                        .contains(&r.as_str())
                }),
                "{s}"
            );
        }
    }
    // Text and HTML say the same.
    let out = inspect(&["--local", "192.0.2.10", "--html", &format!("{cap}.html"), cap]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("Learned from the traffic: 3 facts (an upstream was learned"), "{text}");
    assert!(text.contains("  upstream   198.51.100.20"), "{text}");
    assert!(text.contains("Campaigns: "), "{text}");
    let html = std::fs::read_to_string(format!("{cap}.html")).unwrap();
    assert!(html.contains("<h2>Campaigns</h2>") && html.contains("<td>198.51.100.20</td>"));
    // Without the protected side's address, inspect cannot tell our REGISTER from one sent
    // to us (both ends use port 5060): nothing is learned, and it says so.
    let v = json(&[cap]);
    assert_eq!(v["learning"]["enforcing"], false);
}
