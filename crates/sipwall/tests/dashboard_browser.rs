//! The live dashboard in a real headless Chromium (Debian's `chromium` and `chromium-driver`),
//! driven over WebDriver with `fantoccini`, against the real daemon in the namespaces of
//! `tests/e2e/topology.sh` (prefix `swb-`):
//! * the page loads from the daemon's API (loopback of the PBX namespace) and follows the
//!   event stream;
//! * svmap scans the PBX from the attacker namespace: its decision (a row added live, not by a
//!   reload) and its ban appear on the page within 2 s of the scan's end;
//! * the token is typed into the page and the ban's unban button clicked: the address leaves
//!   the kernel set and the page;
//! * the browser's console holds no error (read from ChromeDriver's browser log, whose
//!   capture is first proven to work with a probe message);
//! * a screenshot is saved under `target/tmp/dashboard-browser/` (path printed);
//! * restarted in observe mode, the page says OBSERVING, and a second scanner's decision
//!   appears live marked simulated while the kernel bans nothing.
//!
//! Why `fantoccini`: it is a plain async WebDriver client over hyper (already built for the
//! API's tests' dependencies), without TLS here (`default-features = false`: ChromeDriver is
//! on loopback); `thirtyfour` wraps more (its own query layer, more dependencies) for nothing
//! this test needs.
//!
//! How the browser reaches the API: the test re-runs itself (`SIPWALL_BROWSER_INNER`) inside
//! the PBX namespace under `timeout`, where it starts ChromeDriver on a loopback port, so
//! ChromeDriver, Chromium and the API share one loopback and nothing listens on the host.
//!
//! Needs root, SIPVicious, chromium and chromium-driver (`scripts/install-test-deps.sh`); FAILS
//! with a clear message otherwise. Cleanup even on failure: ChromeDriver runs in its own
//! process group, ended by a drop guard (Chromium with it); the outer half kills whatever is
//! left in the namespace (except the daemon, which it stops), then deletes the namespaces.
//! Run it under `flock /tmp/sipwall-netns.lock`.
use std::fs;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use ipnet::IpNet;

mod common;
use common::{in_ns, is_root, kernel_set, output, require_tools, tail, Stage};

const PBX: &str = "swb-pbx";
const ATTACKER: &str = "swb-attacker";
const TOKEN: &str = "browser-test-token-7c2e9a41d05b";
const DASHBOARD: &str = "http://127.0.0.1:9360/";
const DRIVER_PORT: u16 = 9515;
const SCANNER: &str = "203.0.113.5";
/// Set when the test runs again inside the PBX namespace (the browser half); its value is the
/// test's directory.
const INNER: &str = "SIPWALL_BROWSER_INNER";
/// Which browser half: `enforce` (default) or `observe`.
const PHASE: &str = "SIPWALL_BROWSER_PHASE";
/// The scanner of the observe phase.
const OBSERVED: &str = "203.0.113.6";
const TEST: &str = "dashboard_in_a_real_browser";

#[test]
#[ignore = "needs root, network namespaces, SIPVicious, chromium and chromium-driver: run by scripts/test.sh"]
fn dashboard_in_a_real_browser() {
    if let Some(dir) = std::env::var_os(INNER) {
        let observe = std::env::var(PHASE).is_ok_and(|p| p == "observe");
        return browser_half(Path::new(&dir), observe);
    }
    assert!(
        is_root(),
        "dashboard_browser needs root: it creates network namespaces (swb-*) and nftables rules \
         and runs `sipwall run` in them. Run: sudo -E cargo test -p sipwall --test dashboard_browser"
    );
    require_tools(
        "dashboard_browser",
        &["nft", "sipvicious_svmap", "chromium", "chromedriver"],
        "scripts/install-test-deps.sh installs chromium, chromium-driver and SIPVicious",
    );
    let mut env = Stage::new("topology.sh", &[("SWD_PREFIX", "swb-")], PBX);
    assert!(env.up(), "tests/e2e/topology.sh up failed");
    let token = env.path("api.token");
    fs::write(&token, format!("{TOKEN}\n")).unwrap();
    fs::set_permissions(&token, fs::Permissions::from_mode(0o600)).unwrap();
    let config = |mode: &str| {
        format!(
            "[trusted]\nnetworks = [\"198.51.100.0/24\"]\n\n[ports]\nguarded = [5060]\n\n\
             [enforce]\nmode = \"{mode}\"\nqueues = 1\n\n\
             [api]\nenabled = true\ntoken_file = \"{}\"\n",
            token.display()
        )
    };
    fs::write(env.path("sipwall.toml"), config("host")).unwrap();
    env.daemon.start();
    let mut sweep = NamespaceSweep { ns: PBX, spare: env.daemon.pid() };
    browser(&env, "enforce");
    // Seen from outside too: the unban took the scanner out of the kernel set.
    let scanner = IpNet::from(SCANNER.parse::<std::net::IpAddr>().unwrap());
    assert!(!kernel_set(PBX, "ban_addr4").contains(&scanner), "{SCANNER} is still banned");
    let log = env.daemon.log();
    assert!(log.contains("manual ban") || log.contains("ban lifted"), "{}", tail(&log, 30));
    env.daemon.stop();

    // Observe mode: shown as such, decisions simulated, nothing in the kernel.
    fs::write(env.path("sipwall.toml"), config("observe")).unwrap();
    env.daemon.start();
    sweep.spare = env.daemon.pid();
    browser(&env, "observe");
    let observed = IpNet::from(OBSERVED.parse::<std::net::IpAddr>().unwrap());
    assert!(!kernel_set(PBX, "ban_addr4").contains(&observed), "observe mode banned {OBSERVED}");
    env.daemon.stop();
    env.daemon.cleanup();
}

/// Run a browser half (`phase`) in the PBX namespace (bounded; its output shown as it runs).
fn browser(env: &Stage, phase: &str) {
    let status = Command::new("ip")
        .args(["netns", "exec", PBX, "timeout", "-s", "KILL", "240"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", TEST, "--include-ignored", "--nocapture", "--test-threads=1"])
        .env(INNER, env.dir.path())
        .env(PHASE, phase)
        .stdin(Stdio::null())
        .status()
        .expect("re-running the test in the PBX namespace");
    assert!(status.success(), "the {phase} browser half failed ({status}); daemon log:\n{}", {
        tail(&env.daemon.log(), 40)
    });
}

/// Kills what a failed run may leave in namespace `ns` (ChromeDriver, Chromium), except the
/// daemon `spare` (the stage stops it properly). Processes found by namespace, not by name.
struct NamespaceSweep {
    ns: &'static str,
    spare: u32,
}

impl Drop for NamespaceSweep {
    fn drop(&mut self) {
        let (_, pids) = output({
            let mut c = Command::new("timeout");
            c.args(["-s", "KILL", "10", "ip", "netns", "pids", self.ns]);
            c
        });
        for pid in
            pids.split_whitespace().filter(|p| p.parse::<u32>().is_ok_and(|p| p != self.spare))
        {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
    }
}

/// ChromeDriver in its own process group; dropping it ends the group (Chromium included).
struct Driver {
    child: std::process::Child,
}

impl Driver {
    fn start(dir: &Path) -> Driver {
        let child = Command::new("chromedriver")
            .arg(format!("--port={DRIVER_PORT}"))
            .arg(format!("--log-path={}", dir.join("chromedriver.log").display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("starting chromedriver (apt-get install chromium-driver)");
        let d = Driver { child };
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", DRIVER_PORT)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver does not listen after 15 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        d
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        std::thread::sleep(Duration::from_millis(300));
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// The artefact directory (under target/).
fn artefacts() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-browser");
    fs::create_dir_all(&d).unwrap();
    d
}

fn browser_half(dir: &Path, observe: bool) {
    let _driver = Driver::start(dir);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let caps = serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1400,1200", "--no-first-run",
                    format!("--user-data-dir={}", dir.join("chromium-profile").display()),
                ],
            },
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let serde_json::Value::Object(caps) = caps else { unreachable!() };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{DRIVER_PORT}"))
            .await
            .expect("a WebDriver session with headless chromium");
        if observe {
            drive_observe(&client).await;
        } else {
            drive(&client).await;
        }
        no_console_errors(&client).await;
        client.close().await.expect("closing the browser");
    });
}

/// `expr` evaluated in the page (a JavaScript expression).
async fn js(c: &Client, expr: &str) -> serde_json::Value {
    c.execute(&format!("return ({expr});"), vec![]).await.unwrap_or_else(|e| panic!("{expr}: {e}"))
}

/// Poll `expr` until it is true; false after `within`.
async fn eventually(c: &Client, expr: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if js(c, expr).await == serde_json::Value::Bool(true) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn page_text(c: &Client) -> String {
    js(c, "document.body.innerText").await.as_str().unwrap_or_default().to_string()
}

fn kernel_has_scanner() -> bool {
    let scanner = IpNet::from(SCANNER.parse::<std::net::IpAddr>().unwrap());
    kernel_set(PBX, "ban_addr4").contains(&scanner)
}

async fn drive(c: &Client) {
    c.goto(DASHBOARD).await.expect("opening the dashboard");
    assert!(
        eventually(c, "!!document.body.dataset.loaded", Duration::from_secs(10)).await,
        "the dashboard never rendered its data:\n{}",
        page_text(c).await
    );
    assert!(
        eventually(
            c,
            "document.getElementById('live').className === 'live'",
            Duration::from_secs(10)
        )
        .await,
        "the event stream never connected:\n{}",
        page_text(c).await
    );
    assert_eq!(js(c, "document.title").await, "sipwall dashboard");
    assert_eq!(js(c, "document.getElementById('observe').hidden").await, true, "enforcing");
    let ban_row = format!("document.querySelector('#bans tr[data-net=\"{SCANNER}/32\"]') !== null");
    let live_row =
        format!("document.querySelector('#decisions tr.fresh[data-src=\"{SCANNER}\"]') !== null");
    assert_eq!(js(c, &ban_row).await, false, "banned before the scan");

    // The scan.
    let (_, out) = output(in_ns(
        ATTACKER,
        90,
        "sipvicious_svmap",
        &["-b", SCANNER, "-x", SCANNER, "203.0.113.1"],
    ));
    eprintln!("--- svmap\n{}", tail(&out, 8));
    assert!(!out.contains("203.0.113.1:5060"), "svmap found the PBX:\n{out}");
    assert!(kernel_has_scanner(), "svmap's source {SCANNER} is not in the kernel ban set");
    let seen = eventually(c, &format!("{ban_row} && {live_row}"), Duration::from_secs(2)).await;
    let shot = c.screenshot().await.expect("a screenshot");
    let path = artefacts().join("dashboard.png");
    fs::write(&path, &shot).unwrap();
    println!("dashboard screenshot: {}", path.display());
    assert!(
        seen,
        "the scan's live decision and its ban were not on the page within 2 s:\n{}",
        page_text(c).await
    );
    let top = format!(
        "[...document.querySelectorAll('#top td')].some(td => td.textContent.startsWith('{SCANNER}'))"
    );
    assert_eq!(js(c, &top).await, true, "{SCANNER} missing from the top sources");

    // Unban from the page, with the token typed into it.
    c.find(Locator::Css("#token")).await.unwrap().send_keys(TOKEN).await.unwrap();
    let button = format!("#bans button.unban[data-net=\"{SCANNER}/32\"]");
    c.find(Locator::Css(&button)).await.expect("the ban's unban button").click().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while kernel_has_scanner() {
        assert!(Instant::now() < deadline, "{SCANNER} still in the kernel set 10 s after unban");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        eventually(c, &format!("!({ban_row})"), Duration::from_secs(5)).await,
        "the lifted ban is still listed:\n{}",
        page_text(c).await
    );
    assert!(
        js(c, "document.getElementById('msg').textContent")
            .await
            .as_str()
            .unwrap()
            .contains("unbanned"),
        "{}",
        page_text(c).await
    );
}

/// The page in observe mode: the banner, and a scan's decision marked simulated, live.
async fn drive_observe(c: &Client) {
    c.goto(DASHBOARD).await.expect("opening the dashboard");
    assert!(
        eventually(c, "!!document.body.dataset.loaded", Duration::from_secs(10)).await,
        "the dashboard never rendered its data:\n{}",
        page_text(c).await
    );
    assert!(
        eventually(
            c,
            "document.getElementById('live').className === 'live'",
            Duration::from_secs(10)
        )
        .await,
        "the event stream never connected"
    );
    assert_eq!(js(c, "document.getElementById('observe').hidden").await, false, "no banner");
    assert_eq!(js(c, "document.getElementById('mode-tag').textContent").await, "OBSERVING");
    let (_, out) = output(in_ns(
        ATTACKER,
        90,
        "sipvicious_svmap",
        &["-b", OBSERVED, "-x", OBSERVED, "203.0.113.1"],
    ));
    eprintln!("--- svmap (observed)\n{}", tail(&out, 8));
    let simulated = format!(
        "[...document.querySelectorAll('#decisions tr.fresh[data-src=\"{OBSERVED}\"] .tag.sim')].length > 0"
    );
    let seen = eventually(c, &simulated, Duration::from_secs(2)).await;
    let shot = c.screenshot().await.expect("a screenshot");
    let path = artefacts().join("dashboard-observe.png");
    fs::write(&path, &shot).unwrap();
    println!("dashboard screenshot (observe mode): {}", path.display());
    assert!(seen, "the simulated decision was not on the page within 2 s:\n{}", page_text(c).await);
}

/// No console errors. First prove the browser log reaches us, with a probe.
async fn no_console_errors(c: &Client) {
    js(c, "console.error('sipwall-console-probe') || true").await;
    let session = c.session_id().await.unwrap().expect("a session id");
    let log = browser_log(&session);
    assert!(
        log.iter().any(|e| e["message"].as_str().unwrap_or("").contains("sipwall-console-probe")),
        "the browser log does not work (no probe in it): {log:?}"
    );
    let errors: Vec<_> = log
        .iter()
        .filter(|e| e["level"] == "SEVERE")
        .filter(|e| !e["message"].as_str().unwrap_or("").contains("sipwall-console-probe"))
        .collect();
    assert!(errors.is_empty(), "console errors on the dashboard: {errors:#?}");
}

/// ChromeDriver's browser log (`goog:loggingPrefs`), read with one plain HTTP request (its
/// `se/log` command is not part of W3C WebDriver, so fantoccini has no call for it).
fn browser_log(session: &str) -> Vec<serde_json::Value> {
    let body = r#"{"type":"browser"}"#;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", DRIVER_PORT)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /session/{session}/se/log HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: \
         application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // Read until the answer is complete (ChromeDriver may keep the connection open): its
    // Content-Length is reached, or the last chunk of a chunked body arrived.
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    let deadline = Instant::now() + Duration::from_secs(10);
    let answer = loop {
        let n = s.read(&mut buf).unwrap_or(0);
        raw.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&raw).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length").then(|| v.trim().parse::<usize>().ok())?
            });
            let done = match length {
                Some(len) => body.len() >= len,
                None => body.ends_with("0\r\n\r\n"),
            };
            if done || n == 0 {
                break text;
            }
        }
        assert!(n > 0 && Instant::now() < deadline, "chromedriver's log answer is incomplete");
    };
    let json = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    // The body may be chunked: take the JSON object between the first '{' and the last '}'.
    let json = &json[json.find('{').unwrap_or(0)..=json.rfind('}').unwrap_or(0)];
    let v: serde_json::Value = serde_json::from_str(json)
        .unwrap_or_else(|e| panic!("chromedriver's log answer: {e}:\n{answer}"));
    v["value"].as_array().cloned().unwrap_or_else(|| panic!("no log in {answer}"))
}
