//! Block-list feeds with the real binary: `sipwall feed export` from a store when no daemon
//! answers, and `check-config` naming the key and line of a bad `[blocklist] urls` or
//! `[blocklist.fetch]` setting (no root needed). Then against the real tools, in network
//! namespaces:
//! * out: the `nft` and `ipset` feeds that `sipwall feed export` writes (from a store seeded
//!   with overlapping IPv4 and IPv6 bans) are accepted by `nft -f` and `ipset restore`, twice
//!   (a re-import replaces), in a namespace of their own (`swf-export`), and the resulting sets
//!   hold exactly the banned addresses;
//! * in: `[blocklist] urls` served by `python3 -m http.server` inside the PBX namespace of
//!   `tests/e2e/topology.sh` (prefix `swf-`): a listed source ends in the kernel block set and
//!   its packets are dropped by the kernel (with `ban_scope = "all"`, its HTTP request to the
//!   PBX gets no answer while a neighbour's does), an entry covering the trusted provider is
//!   refused and logged, and after the server is gone a restarted daemon keeps the list from
//!   its last good copy.
//!
//! Needs root, nft, ipset, curl and python3; FAILS with a clear message otherwise. Every command
//! runs under `timeout`; drop guards end the daemon and the server and delete the namespaces
//! even when an assertion fails. Run under `flock /tmp/sipwall-netns.lock`.
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ipnet::IpNet;

mod common;
use common::{in_ns, is_root, kernel_set, output, require_tools, terminate, Stage};

const EXPORT_NS: &str = "swf-export";
const PBX: &str = "swf-pbx";
const ATTACKER: &str = "swf-attacker";

/// A namespace of its own, deleted on drop (with the sets inside it).
struct Ns(&'static str);

impl Ns {
    fn new(name: &'static str) -> Ns {
        let _ = Command::new("ip").args(["netns", "del", name]).stderr(Stdio::null()).status();
        let (ok, out) = common::run_bounded(10, "ip", &["netns", "add", name]);
        assert!(ok, "ip netns add {name}: {out}");
        Ns(name)
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", self.0]).status();
    }
}

/// A store in `dir/state` with overlapping bans: a /24 with a longer-lasting address inside,
/// a lone address, an IPv6 range and an IPv6 address.
fn seeded_state(dir: &Path) -> std::path::PathBuf {
    use sipwall_engine::{Ban, BanOrigin, Evidence, Timestamp};
    let state = dir.join("state");
    fs::create_dir_all(&state).unwrap();
    let mut store = sipwall_store::Store::open(state.join("sipwall.db")).unwrap();
    let now = common::wall_now();
    let ban = |net: &str, secs: u64| Ban {
        net: net.parse().unwrap(),
        since: now,
        until: Timestamp(now.0 + Duration::from_secs(secs)),
        count: 1,
        rule: "manual".into(),
        reason: "feed test \"quoted\"; /system reset".into(),
        evidence: Evidence::default(),
        origin: BanOrigin::Manual,
    };
    store
        .record_bans(&[
            ban("203.0.113.0/24", 600),
            ban("203.0.113.9/32", 7200),
            ban("198.51.100.7/32", 300),
            ban("2001:db8:bad::/48", 600),
            ban("2001:db8::5/128", 900),
        ])
        .unwrap();
    state
}

/// `sipwall feed export --format FORMAT` from the store (no daemon answers), into a file.
fn export(dir: &Path, state: &Path, format: &str) -> std::path::PathBuf {
    let out = Command::new("timeout")
        .args(["-s", "KILL", "30"])
        .arg(env!("CARGO_BIN_EXE_sipwall"))
        .args(["feed", "export", "--format", format, "--state"])
        .arg(state)
        .arg("--socket")
        .arg(dir.join("none.sock"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "export {format}: {}", String::from_utf8_lossy(&out.stderr));
    let file = dir.join(format!("feed.{format}"));
    fs::write(&file, &out.stdout).unwrap();
    file
}

/// Without a daemon, the export reads the store (read-only) and says so on stderr; plain and
/// JSON hold the stored bans, overlapping ones merged in the plain list.
#[test]
fn export_reads_the_store_when_no_daemon_answers() {
    let dir = tempfile::tempdir().unwrap();
    let state = seeded_state(dir.path());
    let plain = fs::read_to_string(export(dir.path(), &state, "plain")).unwrap();
    let lines: Vec<&str> = plain.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        lines,
        ["198.51.100.7", "203.0.113.0/24", "2001:db8::5", "2001:db8:bad::/48"],
        "{plain}"
    );
    let json = fs::read_to_string(export(dir.path(), &state, "json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["count"], 5, "{json}");
    let mikrotik = fs::read_to_string(export(dir.path(), &state, "mikrotik")).unwrap();
    assert!(mikrotik.contains("address=203.0.113.9/32 timeout=2h"), "{mikrotik}");
    assert!(!mikrotik.contains("quoted") && !mikrotik.contains("reset"), "{mikrotik}");
    // the store is opened read-only: a missing one is an error naming it, not a new file
    let empty = dir.path().join("nostate");
    let out = Command::new(env!("CARGO_BIN_EXE_sipwall"))
        .args(["feed", "export", "--state"])
        .arg(&empty)
        .arg("--socket")
        .arg(dir.path().join("none.sock"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nostate"));
    assert!(!empty.exists());
}

#[test]
fn check_config_names_the_feed_keys_and_lines() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sipwall.toml");
    let check = |text: &str| {
        fs::write(&file, text).unwrap();
        let out =
            Command::new(env!("CARGO_BIN_EXE_sipwall")).arg("check-config").arg(&file).output();
        let out = out.unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    for (text, want) in [
        ("[blocklist]\nurls = [\"file:///etc/passwd\"]\n", "line 2: blocklist.urls"),
        (
            "[blocklist]\nurls = []\n[blocklist.fetch]\n\ntimeout_secs = 0\n",
            "line 5: blocklist.fetch.timeout_secs",
        ),
        ("[blocklist.fetch]\nrefresh = 60\n", "unknown field `refresh`"),
    ] {
        let (ok, out) = check(text);
        assert!(!ok && out.contains(want), "{text}\n=> {out}");
    }
    let (ok, out) = check("[blocklist]\nurls = [\"https://lists.example.net/voip.txt\"]\n");
    assert!(ok, "{out}");
    assert!(
        out.contains(
            "block list URL https://lists.example.net/voip.txt: fetched by `run` every 3600 s"
        ),
        "{out}"
    );
}

const INSIDE: [&str; 5] =
    ["203.0.113.77", "203.0.113.9", "198.51.100.7", "2001:db8:bad::1", "2001:db8::5"];
const OUTSIDE: [&str; 4] = ["203.0.114.1", "198.51.100.8", "2001:db8:bae::1", "2001:db8::6"];

#[test]
#[ignore = "needs root, network namespaces, nft and ipset: run by scripts/test.sh"]
fn exported_nft_and_ipset_feeds_load_and_hold_the_bans() {
    assert!(
        is_root(),
        "feeds needs root: it creates a network namespace (swf-export) and loads nft and \
         ipset sets in it. Run: sudo -E cargo test -p sipwall --test feeds -- --ignored"
    );
    require_tools("feeds", &["nft", "ipset", "ip"], "apt-get install nftables ipset iproute2");
    let dir = tempfile::tempdir().unwrap();
    let state = seeded_state(dir.path());
    let nft = export(dir.path(), &state, "nft");
    let ipset = export(dir.path(), &state, "ipset");
    let _ns = Ns::new(EXPORT_NS);
    // an empty feed (no bans) loads too
    let empty_dir = dir.path().join("empty");
    fs::create_dir_all(empty_dir.join("state")).unwrap();
    drop(sipwall_store::Store::open(empty_dir.join("state/sipwall.db")).unwrap());
    for format in ["nft", "ipset"] {
        let file = export(&empty_dir, &empty_dir.join("state"), format);
        let load = match format {
            "nft" => format!("nft -f {}", file.display()),
            _ => format!("ipset restore -exist < {}", file.display()),
        };
        let (ok, out) = output(in_ns(EXPORT_NS, 20, "sh", &["-c", &load]));
        assert!(ok, "the empty {format} feed does not load: {out}");
    }
    for round in 1..=2 {
        let (ok, out) = output(in_ns(EXPORT_NS, 20, "nft", &["-f", nft.to_str().unwrap()]));
        assert!(
            ok,
            "nft -f refused the feed (round {round}): {out}\n{}",
            fs::read_to_string(&nft).unwrap()
        );
        let restore = format!("ipset restore -exist < {}", ipset.display());
        let (ok, out) = output(in_ns(EXPORT_NS, 20, "sh", &["-c", &restore]));
        assert!(
            ok,
            "ipset restore refused the feed (round {round}): {out}\n{}",
            fs::read_to_string(&ipset).unwrap()
        );
    }
    let in_nft = |ip: &str| {
        let set = if ip.contains(':') { "feed6" } else { "feed4" };
        let q = format!("{{ {ip} }}");
        output(in_ns(EXPORT_NS, 10, "nft", &["get", "element", "inet", "sipwall_feed", set, &q])).0
    };
    let in_ipset = |ip: &str| {
        let set = if ip.contains(':') { "sipwall_feed6" } else { "sipwall_feed4" };
        output(in_ns(EXPORT_NS, 10, "ipset", &["test", set, ip])).0
    };
    for ip in INSIDE {
        assert!(in_nft(ip), "{ip} is not in the nft feed set");
        assert!(in_ipset(ip), "{ip} is not in the ipset feed set");
    }
    for ip in OUTSIDE {
        assert!(!in_nft(ip), "{ip} is in the nft feed set");
        assert!(!in_ipset(ip), "{ip} is in the ipset feed set");
    }
    // the longer ban inside the range kept its own timeout (the element's expiry is about 2 h)
    let (_, listed) =
        output(in_ns(EXPORT_NS, 10, "nft", &["list", "set", "inet", "sipwall_feed", "feed4"]));
    assert!(listed.contains("203.0.113.9 timeout 2h"), "{listed}");
}

/// Bounded wait (15 s) until `f` holds.
fn wait_for(what: &str, mut f: impl FnMut() -> bool, log: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not after 15 s\n{}", log());
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn block4() -> Vec<IpNet> {
    kernel_set(PBX, "block4")
}

/// `curl` from the attacker's address `src` to the list server on the PBX: true if answered.
fn reaches_pbx(src: &str) -> bool {
    output(in_ns(
        ATTACKER,
        10,
        "curl",
        &[
            "-sS",
            "-m",
            "3",
            "--interface",
            src,
            "-o",
            "/dev/null",
            "http://203.0.113.1:8088/list.txt",
        ],
    ))
    .0
}

#[test]
#[ignore = "needs root, network namespaces, nft, curl and python3: run by scripts/test.sh"]
fn a_source_in_a_fetched_block_list_is_dropped_in_the_kernel() {
    assert!(
        is_root(),
        "feeds needs root: it creates network namespaces (swf-*) and nftables rules and \
         runs `sipwall run` in them. Run: sudo -E cargo test -p sipwall --test feeds -- --ignored"
    );
    require_tools("feeds", &["nft", "curl", "python3"], "apt-get install nftables curl python3");
    let mut env = Stage::new("topology.sh", &[("SWD_PREFIX", "swf-")], PBX);
    assert!(env.up(), "tests/e2e/topology.sh up failed");
    let www = env.path("www");
    fs::create_dir_all(&www).unwrap();
    fs::write(
        www.join("list.txt"),
        "# VoIP scanners\n203.0.113.5\n198.51.100.0/23 ; covers our provider\n192.0.2.128/25\n",
    )
    .unwrap();
    let server = in_ns(PBX, 300, "python3", &["-m", "http.server", "8088", "--bind", "0.0.0.0"])
        .current_dir(&www)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting python3 -m http.server");
    env.tools.push(server);
    wait_for(
        "the list server listens",
        || output(in_ns(PBX, 10, "ss", &["-Hltn", "sport = :8088"])).1.contains(":8088"),
        String::new,
    );
    let url = "http://127.0.0.1:8088/list.txt";
    fs::write(
        env.path("sipwall.toml"),
        format!(
            "[trusted]\nnetworks = [\"198.51.100.0/24\"]\n\n[blocklist]\nurls = [\"{url}\"]\n\n\
             [ports]\nguarded = [5060]\n\n[enforce]\nmode = \"host\"\nban_scope = \"all\"\n"
        ),
    )
    .unwrap();
    env.daemon.start();
    let listed: IpNet = "203.0.113.5/32".parse().unwrap();
    wait_for(
        "203.0.113.5 in the kernel block set",
        || block4().contains(&listed),
        || env.daemon.log(),
    );
    let provider: IpNet = "198.51.100.0/24".parse().unwrap();
    let set = block4();
    assert!(
        set.iter().all(|n| !n.contains(&provider.network()) && !provider.contains(n)),
        "{set:?}"
    );
    assert!(set.contains(&"192.0.2.128/25".parse().unwrap()), "{set:?}");
    let log = env.daemon.log();
    assert!(
        log.contains(&format!("block list {url}: entry 198.51.100.0/23 refused"))
            && log.contains("a trusted network"),
        "{log}"
    );
    // the kernel drops the listed source; its neighbour gets through
    assert!(reaches_pbx("203.0.113.6"), "an unlisted source cannot reach the PBX");
    assert!(!reaches_pbx("203.0.113.5"), "the listed source reached the PBX");

    // the running daemon's bans, exported over its control socket
    let sock = env.path("control.sock");
    let cli = |args: &[&str]| {
        let mut c = Command::new("timeout");
        c.args(["-s", "KILL", "30"]).arg(env!("CARGO_BIN_EXE_sipwall")).args(args);
        c.arg("--socket").arg(&sock);
        output(c)
    };
    let (ok, out) = cli(&["ban", "203.0.113.8", "--for", "10m", "--reason", "feed test"]);
    assert!(ok, "{out}");
    let (ok, out) = cli(&["feed", "export", "--format", "plain"]);
    assert!(ok && out.lines().any(|l| l == "203.0.113.8"), "{out}");
    assert!(!out.contains("no daemon answers"), "{out}");

    // the server goes; a restarted daemon keeps the list from its last good copy
    for t in &mut env.tools {
        terminate(t);
    }
    env.daemon.stop();
    env.daemon.start();
    wait_for(
        "the restarted daemon's fetch failure",
        || env.daemon.log().contains("keeping its last good copy"),
        || env.daemon.log(),
    );
    wait_for(
        "the restarted daemon's first block-list load",
        || env.daemon.log().contains("network(s) in the kernel sets"),
        || env.daemon.log(),
    );
    let log = env.daemon.log();
    assert!(log.contains(&format!("block list {url}: last good copy")), "{log}");
    assert!(block4().contains(&listed), "the list was lost with its server:\n{log}");
    assert!(!reaches_pbx("203.0.113.5"), "the listed source reached the PBX after the restart");
    // `sipwall feed status` tells the operator: the last try failed, the copy is in force
    let state = env.path("state");
    let (ok, out) = output({
        let mut c = Command::new("timeout");
        c.args(["-s", "KILL", "30"]).arg(env!("CARGO_BIN_EXE_sipwall"));
        c.args(["feed", "status", "--state"]).arg(&state);
        c
    });
    assert!(ok, "{out}");
    assert!(out.contains(url) && out.contains(": failed: download failed"), "{out}");
    assert!(out.contains("in force:  3 entries, list of "), "{out}");
    env.daemon.stop();
}
