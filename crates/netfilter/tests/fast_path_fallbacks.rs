//! The trusted fast path's fallbacks, against a kernel that refuses its `u32` rules: start
//! without it (everything queued), a failed rewrite that keeps reporting what the kernel may
//! still hold, and an emptying that succeeds where the rewrite did not.
//!
//! The refusal is made by wrapping `iptables-restore`/`ip6tables-restore` (the real ones,
//! first in PATH) so that a batch holding a `u32` match fails while a marker file exists:
//! the kernel here has the `u32` match, so a real refusal cannot be produced otherwise. PATH is
//! changed for the whole process, which is why this is its own test binary with one test.
//! Needs root, like `tests/kernel.rs`; `scripts/test.sh` runs it.
use std::net::UdpSocket;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ipnet::IpNet;
use sipwall_netfilter::{Firewall, QueueBackend, Ruleset};

use sipwall_netfilter::testing::is_root;

fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().expect("ip");
    assert!(st.success(), "ip {args:?}");
}

fn n(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// Where `tool` is now (before PATH is changed).
fn real(tool: &str) -> PathBuf {
    let out = Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().unwrap();
    let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(out.status.success() && !p.is_empty(), "{tool} not found");
    PathBuf::from(p)
}

/// `dir/tool`: refuses a batch with a `u32` match while `marker` exists, else hands the batch
/// to the real tool.
fn wrap(dir: &Path, tool: &str, marker: &Path) {
    let script = format!(
        "#!/bin/sh\nbatch=$(cat)\n\
         if [ -e '{m}' ] && printf '%s' \"$batch\" | grep -q -- '--u32'; then\n\
         echo \"{tool}: u32: no such match (refused by the test)\" >&2; exit 1\nfi\n\
         printf '%s\\n' \"$batch\" | exec '{r}' \"$@\"\n",
        m = marker.display(),
        r = real(tool).display(),
    );
    let path = dir.join(tool);
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// True if an INVITE from `src` reaches 127.0.0.1:5060 (with a fail-closed queue and no
/// consumer, only what skips the queue arrives).
fn skips_the_queue(src: &str, rx: &UdpSocket) -> bool {
    let tx = UdpSocket::bind((src, 0)).unwrap();
    tx.send_to(b"INVITE sip:100@192.0.2.10 SIP/2.0\r\nCSeq: 1 INVITE\r\n\r\n", "127.0.0.1:5060")
        .unwrap();
    let mut buf = [0u8; 512];
    rx.recv(&mut buf).is_ok()
}

#[test]
#[ignore = "needs root and network namespaces: run by scripts/test.sh"]
fn a_kernel_refusing_the_fast_path_rules_never_leaves_a_network_on_it_unasked() {
    assert!(
        is_root(),
        "this test needs root (CAP_NET_ADMIN) to create a network namespace and firewall \
         rules: run `sudo -E cargo test -p sipwall-netfilter --test fast_path_fallbacks`"
    );
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("refuse-u32");
    for tool in ["iptables-restore", "ip6tables-restore"] {
        wrap(dir.path(), tool, &marker);
    }
    let path = format!("{}:{}", dir.path().display(), std::env::var("PATH").unwrap_or_default());
    std::env::set_var("PATH", path);
    sipwall_netfilter::testing::enter_fresh_netns().expect("unshare(CLONE_NEWNET)");
    ip(&["link", "set", "lo", "up"]);
    ip(&["addr", "add", "198.51.100.2/32", "dev", "lo"]);
    ip(&["addr", "add", "203.0.113.9/32", "dev", "lo"]);
    let rx = UdpSocket::bind("127.0.0.1:5060").unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let trusted = vec![n("198.51.100.0/24")];
    let ruleset = Ruleset {
        fail_closed: true,
        fast_path: trusted.clone(),
        queue_first: 9,
        ..Ruleset::default()
    };

    // 1. Refused at start: sipwall starts, without the fast path, and says why.
    std::fs::write(&marker, "").unwrap();
    let mut fw = Firewall::install(ruleset.clone()).unwrap();
    assert_eq!(fw.enable_queue(Some(QueueBackend::Xtables)).unwrap(), QueueBackend::Xtables);
    let fast = fw.fast_path();
    let why = fast.unavailable().expect("the refusal is reported");
    assert!(why.contains("no such match"), "{why}");
    assert!(fast.networks().is_empty(), "{:?}", fast.networks());
    assert!(!skips_the_queue("198.51.100.2", &rx), "a trusted request skipped the queue");
    // Later rewrites do nothing while it is unavailable (not even once u32 works again).
    std::fs::remove_file(&marker).unwrap();
    fast.set(&trusted).unwrap();
    assert!(!skips_the_queue("198.51.100.2", &rx), "a set brought a refused fast path back");
    fw.remove().unwrap();

    // 2. Accepted at start, refused later: a failed rewrite keeps reporting the list the
    // kernel may still hold; emptying (no u32 rule in the batch) succeeds and queues all.
    let mut fw = Firewall::install(ruleset).unwrap();
    fw.enable_queue(Some(QueueBackend::Xtables)).unwrap();
    let fast = fw.fast_path();
    assert!(fast.unavailable().is_none());
    assert!(skips_the_queue("198.51.100.2", &rx), "the fast path is not in effect");
    std::fs::write(&marker, "").unwrap();
    let e = fast.set(&[n("203.0.113.0/24")]).expect_err("the rewrite is refused");
    assert!(e.to_string().contains("no such match"), "{e}");
    assert_eq!(fast.networks(), trusted, "a failed rewrite must report what may still be there");
    fast.set(&[]).expect("emptying needs no u32 rule");
    assert!(fast.networks().is_empty());
    assert!(!skips_the_queue("198.51.100.2", &rx), "emptied, yet a trusted request skipped");
    assert!(!skips_the_queue("203.0.113.9", &rx), "the refused network skipped the queue");
    // Once the kernel takes the rules again, the fast path comes back with the next set.
    std::fs::remove_file(&marker).unwrap();
    fast.set(&trusted).unwrap();
    assert!(skips_the_queue("198.51.100.2", &rx), "the fast path did not come back");
    fw.remove().unwrap();
}
