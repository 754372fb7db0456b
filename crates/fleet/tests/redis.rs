//! The fleet adapter against a real `redis-server` on loopback (started by the test on a free
//! port, killed on drop): two nodes' links exchange bans and unbans, a forged entry is
//! ignored, changes made while Redis is down are published once it is back, and a node that
//! fell behind the stream's window resyncs from the state. A reader cut off resumes from the
//! stream, so an unban of its own ban made meanwhile reaches it, and resyncs when the stream
//! no longer holds its last entry. Over TLS (`rediss://`, a throwaway
//! CA and server certificate made with the `openssl` CLI): bans pass between two TLS clients,
//! and a client that trusts another CA never connects.
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sipwall_fleet::{
    entry, first_sync, Change, Fleet, FleetBan, Incoming, Settings, Stats, TlsFiles,
};

struct Redis {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    /// Serve TLS only (plain port 0) with these certificate files.
    tls: Option<Pki>,
}

/// A throwaway CA, a server certificate it signed for 127.0.0.1, and an unrelated CA.
struct Pki {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    other_ca: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    /// The server asks for and checks client certificates (`tls-auth-clients yes`).
    require_client_cert: bool,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running openssl (Debian package openssl; scripts/install-test-deps.sh)");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl Pki {
    fn make(dir: &Path, require_client_cert: bool) -> Pki {
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
        for ca in ["ca", "other-ca"] {
            let (key, pem, subj) = (format!("{ca}.key"), format!("{ca}.pem"), format!("/CN={ca}"));
            let mut a = vec!["req", "-x509"];
            a.extend(ec);
            a.extend(["-keyout", &key, "-out", &pem, "-days", "2", "-subj", &subj]);
            openssl(dir, &a);
        }
        let mut a = vec!["req"];
        a.extend(ec);
        a.extend(["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"]);
        openssl(dir, &a);
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
        );
        let mut a = vec!["req"];
        a.extend(ec);
        a.extend(["-keyout", "client.key", "-out", "client.csr", "-subj", "/CN=node"]);
        openssl(dir, &a);
        std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "client.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "client.pem",
                "-days",
                "2",
                "-extfile",
                "client.ext",
            ],
        );
        Pki {
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client.key"),
            require_client_cert,
            ca: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            other_ca: dir.join("other-ca.pem"),
        }
    }
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
        let mut r = Redis { child: None, port, dir: tempfile::tempdir().unwrap(), tls: None };
        r.spawn();
        r
    }
    /// A server that speaks TLS only, with a fresh [`Pki`].
    fn start_tls(require_client_cert: bool) -> Redis {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let tls = Some(Pki::make(dir.path(), require_client_cert));
        let mut r = Redis { child: None, port, dir, tls };
        r.spawn();
        r
    }
    fn spawn(&mut self) {
        // Not under `timeout`: killing that would leave the server running; the drop guard
        // kills the server itself.
        let mut cmd = Command::new("redis-server");
        match &self.tls {
            None => cmd.args(["--port", &self.port.to_string()]),
            Some(p) => cmd
                .args(["--port", "0", "--tls-port", &self.port.to_string()])
                .arg("--tls-cert-file")
                .arg(&p.server_cert)
                .arg("--tls-key-file")
                .arg(&p.server_key)
                .arg("--tls-ca-cert-file")
                .arg(&p.ca)
                .args(["--tls-auth-clients", if p.require_client_cert { "yes" } else { "no" }]),
        };
        let child = cmd
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
        let scheme = if self.tls.is_some() { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}/0", self.port)
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
        tls: TlsFiles::default(),
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

/// Cut every node's connections and, in the same transaction, so before any can reconnect,
/// run `then` (its commands queued on the pipeline, their replies ignored).
fn cut_off_and(con: &mut redis::Connection, then: impl FnOnce(&mut redis::Pipeline)) {
    let mut p = redis::pipe();
    p.atomic();
    p.cmd("CLIENT").arg("LIST").arg("TYPE").arg("normal");
    p.cmd("CLIENT").arg("KILL").arg("TYPE").arg("normal").arg("SKIPME").arg("yes");
    then(&mut p);
    let (clients, killed): (String, i64) = p.query(con).unwrap();
    // a reader (following with XREAD) was among those cut: else the test would be void
    assert!(clients.contains("cmd=xread") && killed >= 1, "nothing cut off:\n{clients}");
}

#[test]
#[ignore = "needs redis-server: run by scripts/test.sh"]
fn a_reader_cut_off_resumes_from_the_stream_and_resyncs_once_its_entry_is_gone() {
    let redis = Redis::start();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut con = client.get_connection().unwrap();
    // a first entry, so a's position after its first resync is an entry the stream holds
    // (with an empty stream it is 0-0, which no reconnect can resume from)
    let seed = entry::encode(&ban("203.0.113.4/32", "c"), None).unwrap();
    let mut p = redis::pipe();
    p.atomic();
    p.cmd("HSET").arg("t:bans").arg("203.0.113.4/32").arg(&seed).ignore();
    p.cmd("XADD").arg("t:changes").arg("*").arg("m").arg(&seed).ignore();
    p.query::<()>(&mut con).unwrap();
    let a = node(settings(&redis.url(), "a", None));
    next_resync(&a);
    let own: ipnet::IpNet = "203.0.113.5/32".parse().unwrap();
    assert!(a.fleet.publisher().publish(ban("203.0.113.5/32", "a")));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !redis::cmd("HEXISTS")
        .arg("t:bans")
        .arg("203.0.113.5/32")
        .query::<bool>(&mut con)
        .unwrap()
    {
        assert!(Instant::now() < deadline, "a's ban not in the state within 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    // another node lifts a's own ban while a is cut off: a resync could not carry that (a
    // keeps its own bans at a resync); resuming from the stream does
    let unban = Change::Unban { net: own, at_ms: now_ms(), origin: "c".into() };
    let unban = entry::encode(&unban, None).unwrap();
    cut_off_and(&mut con, |p| {
        p.cmd("HDEL").arg("t:bans").arg("203.0.113.5/32").ignore();
        p.cmd("XADD").arg("t:changes").arg("*").arg("m").arg(&unban).ignore();
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match a.rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Incoming::Change(Change::Unban { net, origin, .. })) if net == own => {
                assert_eq!(origin, "c");
                break;
            }
            Ok(Incoming::Change(_)) => continue,
            Ok(Incoming::Resync(_)) => panic!("a resynced instead of resuming from the stream"),
            Err(_) => panic!("the unban did not reach a within 15 s of its reconnection"),
        }
    }
    assert_eq!(a.stats.resyncs.load(std::sync::atomic::Ordering::Relaxed), 1);
    // now the stream loses a's last entry (trimmed while a is cut off): only a resync is
    // complete, and it brings the ban made meanwhile
    let text = entry::encode(&ban("203.0.113.6/32", "c"), None).unwrap();
    cut_off_and(&mut con, |p| {
        p.cmd("HSET").arg("t:bans").arg("203.0.113.6/32").arg(&text).ignore();
        p.cmd("XADD").arg("t:changes").arg("*").arg("m").arg(&text).ignore();
        p.cmd("XTRIM").arg("t:changes").arg("MAXLEN").arg(0).ignore();
    });
    let bans = next_resync(&a);
    let mut nets: Vec<String> = bans.iter().map(|b| b.net.to_string()).collect();
    nets.sort();
    assert_eq!(nets, ["203.0.113.4/32", "203.0.113.6/32"]);
    assert_eq!(a.stats.resyncs.load(std::sync::atomic::Ordering::Relaxed), 2);
}

/// `s` trusting the CA in `ca` (PEM file).
fn with_ca(s: Settings, ca: &Path) -> Settings {
    Settings { tls: TlsFiles { ca: Some(std::fs::read(ca).unwrap()), client: None }, ..s }
}

#[test]
#[ignore = "needs redis-server built with TLS and the openssl CLI: run by scripts/test.sh"]
fn bans_pass_over_tls_and_a_client_trusting_another_ca_never_connects() {
    let redis = Redis::start_tls(false);
    let pki = redis.tls.as_ref().unwrap();
    let key: &[u8] = b"fleet-test-key-0123456789";
    let a = node(with_ca(settings(&redis.url(), "a", Some(key)), &pki.ca));
    let b = node(with_ca(settings(&redis.url(), "b", Some(key)), &pki.ca));
    // c trusts an unrelated CA: the handshake must fail, whatever the server sends
    let c = node(with_ca(settings(&redis.url(), "c", Some(key)), &pki.other_ca));
    assert!(next_resync(&a).is_empty() && next_resync(&b).is_empty());
    assert!(a.fleet.publisher().publish(ban("203.0.113.9/32", "a")));
    let got = next_change(&b);
    assert!(
        matches!(&got, Change::Ban(x) if x.net.to_string() == "203.0.113.9/32" && x.origin == "a"),
        "{got:?}"
    );
    // the wrong-CA client: a clear certificate error, and nothing delivered
    let e = first_sync(
        &with_ca(settings(&redis.url(), "d", Some(key)), &pki.other_ca),
        &Arc::default(),
        Duration::from_secs(5),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("rediss://127.0.0.1") && e.to_lowercase().contains("certificate"), "{e}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let error = loop {
        if let Some(e) = c.stats.last_error() {
            break e;
        }
        assert!(Instant::now() < deadline, "the wrong-CA node reported no error within 10 s");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(error.to_lowercase().contains("certificate"), "{error}");
    assert!(!c.stats.connected.load(std::sync::atomic::Ordering::Relaxed));
    assert!(c.rx.try_iter().next().is_none(), "the wrong-CA node received something");
    // and the plain redis:// scheme does not reach the TLS port either
    assert!(first_sync(
        &settings(&redis.url().replace("rediss://", "redis://"), "e", Some(key)),
        &Arc::default(),
        Duration::from_secs(3),
    )
    .is_err());
}

#[test]
#[ignore = "needs redis-server built with TLS and the openssl CLI: run by scripts/test.sh"]
fn a_server_requiring_client_certificates_takes_a_node_with_one_and_refuses_one_without() {
    let redis = Redis::start_tls(true);
    let pki = redis.tls.as_ref().unwrap();
    let ca = std::fs::read(&pki.ca).unwrap();
    let client =
        (std::fs::read(&pki.client_cert).unwrap(), std::fs::read(&pki.client_key).unwrap());
    let with_cert = |node: &str| Settings {
        tls: TlsFiles { ca: Some(ca.clone()), client: Some(client.clone()) },
        ..settings(&redis.url(), node, None)
    };
    let a = node(with_cert("a"));
    let b = node(with_cert("b"));
    next_resync(&a);
    next_resync(&b);
    assert!(a.fleet.publisher().publish(ban("198.51.100.7/32", "a")));
    let got = next_change(&b);
    assert!(matches!(&got, Change::Ban(x) if x.net.to_string() == "198.51.100.7/32"), "{got:?}");
    // the same CA but no client certificate: the server ends the handshake
    let e = first_sync(
        &with_ca(settings(&redis.url(), "c", None), &pki.ca),
        &Arc::default(),
        Duration::from_secs(5),
    );
    let e = e.expect_err("a node without a client certificate was let in").to_string();
    assert!(e.to_lowercase().contains("certificate"), "{e}");
}
