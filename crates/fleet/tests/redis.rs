//! The fleet adapter against a real `redis-server` on loopback (started by the test on a free
//! port, killed on drop): two nodes' links exchange bans and unbans, a forged entry is
//! ignored, changes made while Redis is down are published once it is back, and a node that
//! fell behind the stream's window resyncs from the state.
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sipwall_fleet::{entry, first_sync, Change, Fleet, FleetBan, Incoming, Settings, Stats};

struct Redis {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl Redis {
    fn start() -> Redis {
        let ok = Command::new("sh").args(["-c", "command -v redis-server"]).output();
        assert!(
            ok.map(|o| o.status.success()).unwrap_or(false),
            "this test needs `redis-server` on PATH (Debian package redis-server; \
             scripts/install-test-deps.sh installs it)"
        );
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut r = Redis { child: None, port, dir: tempfile::tempdir().unwrap() };
        r.spawn();
        r
    }
    fn spawn(&mut self) {
        // Not under `timeout`: killing that would leave the server running; the drop guard
        // kills the server itself.
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "yes"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server not listening after 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn settings(url: &str, node: &str, key: Option<&[u8]>) -> Settings {
    Settings {
        redis_url: url.into(),
        password: None,
        username: None,
        node_id: node.into(),
        key_prefix: "t".into(),
        hmac_key: key.map(<[u8]>::to_vec),
        max_prefix_v4: 16,
        max_prefix_v6: 48,
        max_bans_per_origin_per_minute: 10_000,
        outage_queue: 100,
        stream_max_len: 1000,
        timeout: Duration::from_millis(500),
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

fn ban(net: &str, node: &str) -> Change {
    Change::Ban(FleetBan {
        net: net.parse().unwrap(),
        since_ms: now_ms(),
        until_ms: now_ms() + 600_000,
        rule: "manual".into(),
        reason: "test".into(),
        evidence: String::new(),
        origin: node.into(),
    })
}

struct Node {
    fleet: Fleet,
    rx: Receiver<Incoming>,
    stop: Arc<AtomicBool>,
    stats: Arc<Stats>,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

fn node(s: Settings) -> Node {
    gated_node(s, Arc::default())
}

/// A node whose reader waits on `gate` (held by the test) before handing anything over.
fn gated_node(s: Settings, gate: Arc<std::sync::Mutex<()>>) -> Node {
    let (tx, rx) = channel();
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(Stats::default());
    let deliver = Box::new(move |i: Incoming| {
        let _held = gate.lock();
        let _ = tx.send(i);
    });
    let fleet = Fleet::start(s, stats.clone(), None, deliver, stop.clone()).unwrap();
    Node { fleet, rx, stop, stats }
}

/// The next change (resyncs skipped), within 10 s.
fn next_change(n: &Node) -> Change {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match n.rx.recv_timeout(left) {
            Ok(Incoming::Change(c)) => return c,
            Ok(Incoming::Resync(_)) => continue,
            Err(_) => panic!("no change received within 10 s"),
        }
    }
}

/// The next resync, within 15 s.
fn next_resync(n: &Node) -> Vec<FleetBan> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match n.rx.recv_timeout(left) {
            Ok(Incoming::Resync(b)) => return b,
            Ok(Incoming::Change(_)) => continue,
            Err(_) => panic!("no resync within 15 s"),
        }
    }
}

#[test]
#[ignore = "needs redis-server: run by scripts/test.sh"]
fn two_nodes_share_bans_and_unbans_and_forged_entries_are_ignored() {
    let redis = Redis::start();
    let key: &[u8] = b"fleet-test-key-0123456789";
    let a = node(settings(&redis.url(), "a", Some(key)));
    let b = node(settings(&redis.url(), "b", Some(key)));
    assert!(next_resync(&a).is_empty() && next_resync(&b).is_empty());
    // a -> b, and a never gets its own change back
    assert!(a.fleet.publisher().publish(ban("203.0.113.9/32", "a")));
    let got = next_change(&b);
    assert!(
        matches!(&got, Change::Ban(x) if x.net.to_string() == "203.0.113.9/32" && x.origin == "a")
    );
    let unban = Change::Unban {
        net: "203.0.113.9/32".parse().unwrap(),
        at_ms: now_ms(),
        origin: "b".into(),
    };
    assert!(b.fleet.publisher().publish(unban.clone()));
    assert_eq!(next_change(&a), unban);
    // a forged entry (no key) written straight into the stream and the state
    let forged = entry::encode(&ban("198.51.100.0/24", "a"), None).unwrap();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut con = client.get_connection().unwrap();
    let _: String =
        redis::cmd("XADD").arg("t:changes").arg("*").arg("m").arg(&forged).query(&mut con).unwrap();
    let _: i64 = redis::cmd("HSET")
        .arg("t:bans")
        .arg("198.51.100.0/24")
        .arg(&forged)
        .query(&mut con)
        .unwrap();
    // then a genuine one: it arrives, the forged one never does
    assert!(a.fleet.publisher().publish(ban("203.0.113.10/32", "a")));
    let got = next_change(&b);
    assert!(matches!(&got, Change::Ban(x) if x.net.to_string() == "203.0.113.10/32"), "{got:?}");
    assert!(b.stats.rejected_signature.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    // a node joining now gets the state: the genuine ban, not the unbanned or forged ones
    let (bans, _) = first_sync(
        &settings(&redis.url(), "c", Some(key)),
        &Arc::default(),
        Duration::from_secs(5),
    )
    .unwrap();
    let nets: Vec<String> = bans.iter().map(|b| b.net.to_string()).collect();
    assert_eq!(nets, vec!["203.0.113.10/32".to_string()]);
}

#[test]
#[ignore = "needs redis-server: run by scripts/test.sh"]
fn changes_made_while_redis_is_down_are_published_when_it_returns() {
    let mut redis = Redis::start();
    let a = node(settings(&redis.url(), "a", None));
    let b = node(settings(&redis.url(), "b", None));
    next_resync(&a);
    next_resync(&b);
    redis.kill();
    // bounded wait until a's reader saw the outage
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.stats.connected.load(std::sync::atomic::Ordering::Relaxed) {
        assert!(Instant::now() < deadline, "the outage went unnoticed for 10 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    for i in 1..=3 {
        assert!(a.fleet.publisher().publish(ban(&format!("203.0.113.{i}/32"), "a")));
    }
    redis.spawn();
    // b resyncs (or reads the stream): all three arrive either way
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 3 {
        let left = deadline.saturating_duration_since(Instant::now());
        match b.rx.recv_timeout(left) {
            Ok(Incoming::Change(c)) => {
                seen.insert(c.net().to_string());
            }
            Ok(Incoming::Resync(bans)) => seen.extend(bans.iter().map(|b| b.net.to_string())),
            Err(_) => panic!("only {seen:?} arrived within 20 s of Redis returning"),
        }
    }
}

#[test]
#[ignore = "needs redis-server: run by scripts/test.sh"]
fn a_node_behind_the_stream_window_resyncs_from_the_state() {
    let redis = Redis::start();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut con = client.get_connection().unwrap();
    let gate = Arc::new(std::sync::Mutex::new(()));
    let b = gated_node(settings(&redis.url(), "b", None), gate.clone());
    next_resync(&b);
    // b's reader stalls in its hand-over of the first change...
    let held = gate.lock().unwrap();
    let first = entry::encode(&ban("192.0.2.1/32", "a"), None).unwrap();
    let _: String =
        redis::cmd("XADD").arg("t:changes").arg("*").arg("m").arg(&first).query(&mut con).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // ...while far more than the stream keeps (MAXLEN 1000) is written.
    let mut p = redis::pipe();
    for i in 0..5000u32 {
        let net = format!("203.0.{}.{}/32", 100 + i / 250, i % 250);
        let text = entry::encode(&ban(&net, "a"), None).unwrap();
        p.cmd("HSET").arg("t:bans").arg(&net).arg(&text).ignore();
        p.cmd("XADD")
            .arg("t:changes")
            .arg("MAXLEN")
            .arg(1000)
            .arg("*")
            .arg("m")
            .arg(&text)
            .ignore();
    }
    p.query::<()>(&mut con).unwrap();
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 5000 {
        let left = deadline.saturating_duration_since(Instant::now());
        match b.rx.recv_timeout(left) {
            Ok(Incoming::Change(c)) => {
                seen.insert(c.net().to_string());
            }
            Ok(Incoming::Resync(bans)) => seen.extend(bans.iter().map(|b| b.net.to_string())),
            Err(_) => panic!("{} of 5000 bans arrived within 20 s", seen.len()),
        }
    }
    // the trimmed entries came through a second resync, not the stream
    assert!(b.stats.resyncs.load(std::sync::atomic::Ordering::Relaxed) >= 2);
}
