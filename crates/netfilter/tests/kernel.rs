//! Real-kernel tests: each test moves its thread into a fresh network namespace
//! (`unshare(CLONE_NEWNET)`), so the host's rules are never touched, and installs the real
//! ruleset with the real `nft`/`iptables` there. They need root and FAIL (not skip) without it,
//! so they are ignored by a plain `cargo test`; `scripts/test.sh` runs them (under the flock).
use std::net::UdpSocket;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use sipwall_netfilter::{
    BanOp, BanSet, DesiredBan, Firewall, Hooks, Queue, QueueBackend, QueueConfig, QueueVerdict,
    Ruleset,
};

use sipwall_netfilter::testing::is_root;

/// Enter a fresh network namespace with loopback up.
fn fresh_netns() {
    assert!(
        is_root(),
        "these tests need root (CAP_NET_ADMIN) to create a network namespace and firewall \
         rules: run `sudo -E cargo test -p sipwall-netfilter --test kernel`"
    );
    sipwall_netfilter::testing::enter_fresh_netns().expect("unshare(CLONE_NEWNET)");
    let st = Command::new("ip").args(["link", "set", "lo", "up"]).status().expect("ip");
    assert!(st.success());
}

fn sh(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().expect(cmd);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ruleset(queue: u16) -> Ruleset {
    Ruleset { queue_first: queue, ..Ruleset::default() }
}

fn receiver() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:5060").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    s
}

fn recv_all(s: &UdpSocket) -> Vec<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok(n) = s.recv(&mut buf) {
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    got
}

#[test]
#[ignore = "needs root and network namespaces: run by scripts/test.sh"]
fn install_verify_and_remove_leave_nothing_behind() {
    fresh_netns();
    let mut fw = Firewall::install(ruleset(0)).expect("install");
    let backend = fw.enable_queue(None).expect("enable queue");
    eprintln!("queue backend: {backend}");
    let rules = sh("nft", &["list", "ruleset"]);
    assert!(rules.contains("table inet sipwall"), "{rules}");
    assert!(rules.contains("hook prerouting priority raw"), "{rules}");
    if backend == QueueBackend::Xtables {
        let saved = sh("iptables-save", &[]);
        assert!(saved.contains("-A INPUT -j SIPWALL-IN"), "{saved}");
        assert!(saved.contains("--queue-bypass"), "{saved}");
        assert!(sh("ip6tables-save", &[]).contains("SIPWALL-OUT"));
    }
    fw.verify().expect("verify");
    fw.remove().expect("remove");
    assert!(!sh("nft", &["list", "ruleset"]).contains("sipwall"));
    assert!(!sh("iptables-save", &[]).contains("SIPWALL"));
    assert!(!sh("ip6tables-save", &[]).contains("SIPWALL"));
}

#[test]
#[ignore = "needs root and network namespaces: run by scripts/test.sh"]
fn leftovers_of_a_crashed_run_are_replaced_and_drop_stops_queueing_only() {
    fresh_netns();
    let mut fw = Firewall::install(ruleset(0)).unwrap();
    fw.enable_queue(None).unwrap();
    std::mem::forget(fw); // as if killed -9
    {
        let mut fw = Firewall::install(ruleset(0)).expect("install over leftovers");
        fw.enable_queue(None).unwrap();
        let saved = sh("iptables-save", &[]);
        assert_eq!(saved.matches("-j SIPWALL-IN").count(), 1, "{saved}");
    }
    // Dropped like a clean stop: queueing gone, the table with its ban chain stays.
    let rules = sh("nft", &["list", "ruleset"]);
    assert!(rules.contains("chain ban_prerouting") && !rules.contains("queue"), "{rules}");
    assert!(!sh("iptables-save", &[]).contains("SIPWALL"));
}

#[test]
#[ignore = "needs root and network namespaces: run by scripts/test.sh"]
fn queued_packets_get_the_consumers_verdicts() {
    fresh_netns();
    let mut fw = Firewall::install(ruleset(3)).unwrap();
    fw.enable_queue(None).unwrap();
    let mut q = Queue::open(QueueConfig::new(3)).expect("bind queue 3");
    // SO_RCVBUFFORCE took effect (the kernel reports twice the requested size).
    assert!(q.rcvbuf_effective() >= 64 << 20, "rcvbuf {}", q.rcvbuf_effective());
    let rx = receiver();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let consumer = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !stop2.load(Ordering::Relaxed) && Instant::now() < deadline {
            q.process_batch(|p| {
                let v = sipwall_netfilter::packet::parse(p.payload).unwrap();
                if v.payload.windows(16).any(|w| w == b"friendly-scanner") {
                    QueueVerdict::Drop
                } else {
                    QueueVerdict::Accept
                }
            })
            .unwrap();
        }
        q.stats()
    });
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..50 {
        let msg =
            if i % 5 == 0 { format!("OPTIONS friendly-scanner {i}") } else { format!("ok {i}") };
        tx.send_to(msg.as_bytes(), "127.0.0.1:5060").unwrap();
    }
    let got = recv_all(&rx);
    stop.store(true, Ordering::Relaxed);
    let stats = consumer.join().unwrap();
    assert_eq!(got.len(), 40, "{got:?}");
    assert!(got.iter().all(|m| m.starts_with("ok ")));
    assert_eq!(stats.packets, 50);
    assert_eq!(stats.dropped, 10);
}

/// What the rewriting consumer makes of message `i` (as sent: `ok i`): longer, shorter or
/// unchanged, so lengths move both ways within one batch.
fn rewritten(i: usize) -> String {
    match i % 3 {
        0 => format!("rewritten {i} {}", "x".repeat(i * 7)),
        1 => format!("{i}"),
        _ => format!("ok {i}"),
    }
}

#[test]
#[ignore = "needs root and network namespaces: run by scripts/test.sh"]
fn a_verdict_can_carry_a_replacement_packet_with_valid_lengths_and_checksums() {
    fresh_netns();
    let mut fw = Firewall::install(ruleset(4)).unwrap();
    fw.enable_queue(None).unwrap();
    let mut q = Queue::open(QueueConfig::new(4)).expect("bind queue 4");
    let rx = receiver();
    let rx6 = UdpSocket::bind("[::1]:5060").unwrap();
    rx6.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let consumer = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !stop2.load(Ordering::Relaxed) && Instant::now() < deadline {
            q.process_batch_rewriting(|p, out| {
                let v = sipwall_netfilter::packet::parse(p.payload).unwrap();
                let text = String::from_utf8_lossy(v.payload).into_owned();
                let i: usize = text.trim_start_matches("ok ").parse().unwrap();
                if i % 3 == 2 {
                    return QueueVerdict::Accept;
                }
                sipwall_netfilter::packet::rebuild_udp(p.payload, rewritten(i).as_bytes(), out)
                    .unwrap();
                QueueVerdict::AcceptRewritten
            })
            .unwrap();
        }
        q.stats()
    });
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let tx6 = UdpSocket::bind("[::1]:0").unwrap();
    for i in 0..30 {
        tx.send_to(format!("ok {i}").as_bytes(), "127.0.0.1:5060").unwrap();
    }
    for i in 30..36 {
        tx6.send_to(format!("ok {i}").as_bytes(), "[::1]:5060").unwrap();
    }
    // The receiving stack checks every checksum (the kernel marks a replacement
    // CHECKSUM_NONE): a wrong one would be dropped, not delivered.
    let got = recv_all(&rx);
    let got6 = recv_all(&rx6);
    stop.store(true, Ordering::Relaxed);
    let stats = consumer.join().unwrap();
    assert_eq!(got, (0..30).map(rewritten).collect::<Vec<_>>());
    assert_eq!(got6, (30..36).map(rewritten).collect::<Vec<_>>());
    assert_eq!(stats.packets, 36);
    assert_eq!(stats.rewritten, 24);
    fw.remove().unwrap();
}

#[test]
#[ignore = "needs root and network namespaces: run by scripts/test.sh"]
fn fail_open_without_a_consumer_and_fail_closed_drops() {
    fresh_netns();
    let rx = receiver();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    {
        let mut fw = Firewall::install(ruleset(5)).unwrap();
        fw.enable_queue(None).unwrap();
        tx.send_to(b"open", "127.0.0.1:5060").unwrap();
        assert_eq!(recv_all(&rx), vec!["open".to_string()]);
    }
    let mut fw = Firewall::install(Ruleset { fail_closed: true, ..ruleset(5) }).unwrap();
    fw.enable_queue(None).unwrap();
    tx.send_to(b"closed", "127.0.0.1:5060").unwrap();
    assert!(recv_all(&rx).is_empty());
    fw.remove().unwrap();
    tx.send_to(b"after", "127.0.0.1:5060").unwrap();
    assert_eq!(recv_all(&rx), vec!["after".to_string()]);
}

#[test]
#[ignore = "needs root and network namespaces: run by scripts/test.sh"]
fn banned_sources_are_dropped_in_the_kernel_before_the_queue() {
    fresh_netns();
    let mut fw =
        Firewall::install(Ruleset { hooks: Hooks { input: true, forward: false }, ..ruleset(7) })
            .unwrap();
    let mut bans = BanSet::new("sipwall");
    let n = |s: &str| s.parse::<IpNet>().unwrap();
    let mut shell_bans = BanSet::new("sipwall").with_shell();
    let t = Instant::now();
    shell_bans
        .apply(&[BanOp::Add { net: n("127.0.0.5/32"), timeout: Some(Duration::from_secs(600)) }])
        .expect("ban through nft -i (first call starts it)");
    let first = t.elapsed();
    let t = Instant::now();
    shell_bans
        .apply(&[BanOp::Add { net: n("127.0.0.6/32"), timeout: Some(Duration::from_secs(600)) }])
        .unwrap();
    eprintln!("nft -i: first ban {first:?}, next ban {:?}", t.elapsed());
    // a delete of a missing element is tolerated, a bad command is not
    shell_bans.apply(&[BanOp::Remove(n("127.0.0.77/32"))]).expect("missing delete tolerated");
    shell_bans
        .apply(&[BanOp::Remove(n("127.0.0.5/32")), BanOp::Remove(n("127.0.0.6/32"))])
        .unwrap();
    let t0 = Instant::now();
    bans.apply(&[
        BanOp::Add { net: n("127.0.0.2/32"), timeout: Some(Duration::from_secs(600)) },
        BanOp::Add { net: n("2001:db8::/48"), timeout: None },
        BanOp::Add { net: n("127.0.9.0/24"), timeout: Some(Duration::from_millis(1200)) },
    ])
    .expect("add bans");
    eprintln!("one nft batch of 3 ban elements took {:?}", t0.elapsed());
    fw.enable_queue(None).unwrap();
    let mut q = Queue::open(QueueConfig::new(7)).unwrap();
    let rx = receiver();
    let banned = UdpSocket::bind("127.0.0.2:0").unwrap();
    let ok = UdpSocket::bind("127.0.0.3:0").unwrap();
    banned.send_to(b"banned", "127.0.0.1:5060").unwrap();
    ok.send_to(b"fine", "127.0.0.1:5060").unwrap();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(2);
    while seen.is_empty() && Instant::now() < deadline {
        q.process_batch(|p| {
            seen.push(sipwall_netfilter::packet::parse(p.payload).unwrap().src.ip());
            QueueVerdict::Accept
        })
        .unwrap();
    }
    assert_eq!(seen, vec!["127.0.0.3".parse::<std::net::IpAddr>().unwrap()]);
    assert_eq!(recv_all(&rx), vec!["fine".to_string()]);
    // A ban covers the guarded ports only (the default scope): the banned source still
    // reaches a port that is not guarded (and is not queued there either).
    let other = UdpSocket::bind("127.0.0.1:5999").unwrap();
    other.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    banned.send_to(b"elsewhere", "127.0.0.1:5999").unwrap();
    let mut buf = [0u8; 64];
    let got = other.recv(&mut buf).expect("a banned source reaches an unguarded port");
    assert_eq!(&buf[..got], b"elsewhere");
    let mut listed = bans.list_kernel().unwrap();
    listed.sort();
    assert_eq!(listed, vec![n("127.0.0.2/32"), n("127.0.9.0/24"), n("2001:db8::/48")]);
    // the kernel ends a ban by itself at its timeout
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!bans.list_kernel().unwrap().contains(&n("127.0.9.0/24")));
    // removal, including of an element that is already gone
    bans.apply(&[BanOp::Remove(n("127.0.0.2/32")), BanOp::Remove(n("127.0.9.0/24"))])
        .expect("remove bans");
    assert_eq!(bans.list_kernel().unwrap(), vec![n("2001:db8::/48")]);
    // static block list: replaced atomically, dropped in the kernel like bans
    bans.replace_blocklist(&[n("127.0.0.4/32"), n("2001:db8:bad::/48")]).unwrap();
    bans.replace_blocklist(&[n("127.0.0.3/32")]).unwrap();
    assert_eq!(bans.list_blocklist().unwrap(), vec![n("127.0.0.3/32")]);
    ok.send_to(b"blocked now", "127.0.0.1:5060").unwrap();
    let mut queued = 0;
    q.process_batch(|_| {
        queued += 1;
        QueueVerdict::Accept
    })
    .unwrap();
    assert_eq!(queued, 0);
    assert!(recv_all(&rx).is_empty());
    drop(q);
    fw.remove().unwrap();
}

fn n(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// Add `addr` to loopback so a socket can send from it (documentation addresses only).
fn add_lo_addr(addr: &str) {
    let st = Command::new("ip").args(["addr", "add", addr, "dev", "lo"]).status().expect("ip");
    assert!(st.success(), "ip addr add {addr}");
}

/// True if a datagram from `src` to 127.0.0.1:5060 arrives.
fn reaches(src: &str, rx: &UdpSocket) -> bool {
    let tx = UdpSocket::bind((src, 0)).unwrap();
    tx.send_to(b"probe", "127.0.0.1:5060").unwrap();
    !recv_all(rx).is_empty()
}

/// Poll (bounded) until `cond` holds; false if it never did within `limit`.
fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    cond()
}

/// The reported defect: an address banned for long, then a shorter ban of its /24. The
/// address must stay in the kernel, and stay dropped, after the /24 ends; for every writer.
#[test]
#[ignore = "needs root and network namespaces: run by scripts/test.sh"]
fn a_shorter_range_ban_never_wipes_a_longer_address_ban() {
    fresh_netns();
    let _fw = Firewall::install(ruleset(11)).unwrap();
    add_lo_addr("203.0.113.10/32");
    add_lo_addr("203.0.113.20/32");
    add_lo_addr("2001:db8::10/128");
    let rx = receiver();
    for netlink in [true, false] {
        let mut bans =
            if netlink { BanSet::new("sipwall").with_netlink() } else { BanSet::new("sipwall") };
        let long = Some(Duration::from_secs(30));
        let short = Some(Duration::from_secs(2));
        bans.apply(&[BanOp::Add { net: n("203.0.113.10/32"), timeout: long }]).unwrap();
        bans.apply(&[BanOp::Add { net: n("203.0.113.0/24"), timeout: short }]).unwrap();
        // overlapping ranges too: a long /120 inside a short /64, then the /64 again
        bans.apply(&[BanOp::Add { net: n("2001:db8::/120"), timeout: long }]).unwrap();
        bans.apply(&[BanOp::Add { net: n("2001:db8::/64"), timeout: short }]).unwrap();
        bans.apply(&[BanOp::Add { net: n("2001:db8::/64"), timeout: short }]).unwrap();
        let listed = bans.list_kernel().unwrap();
        assert!(listed.contains(&n("203.0.113.10/32")), "netlink={netlink}: {listed:?}");
        assert!(!reaches("203.0.113.20", &rx), "the /24 drops its other addresses");
        assert!(
            wait_until(Duration::from_secs(6), || reaches("203.0.113.20", &rx)),
            "netlink={netlink}: the 2 s /24 ban never ended"
        );
        let listed = bans.list_kernel().unwrap();
        assert!(listed.contains(&n("203.0.113.10/32")), "netlink={netlink}: {listed:?}");
        assert!(listed.contains(&n("2001:db8::/120")), "netlink={netlink}: {listed:?}");
        assert!(!reaches("203.0.113.10", &rx), "netlink={netlink}: the door opened");
        bans.apply(&[
            BanOp::Remove(n("203.0.113.10/32")),
            BanOp::Remove(n("2001:db8::/120")),
            BanOp::Remove(n("2001:db8::/64")),
        ])
        .unwrap();
        assert!(reaches("203.0.113.10", &rx));
        assert_eq!(bans.list_kernel().unwrap(), Vec::<IpNet>::new(), "netlink={netlink}");
    }
}

/// Reconcile repairs what changed behind the writer's back, in both kinds of set.
#[test]
#[ignore = "needs root and network namespaces: run by scripts/test.sh"]
fn reconcile_repairs_missing_stale_and_wrong_timeouts() {
    fresh_netns();
    let _fw = Firewall::install(ruleset(12)).unwrap();
    let mut bans = BanSet::new("sipwall").with_netlink();
    let h = Some(Duration::from_secs(3600));
    let desired = [
        DesiredBan { net: n("203.0.113.7/32"), remaining: h },
        DesiredBan { net: n("198.51.100.0/24"), remaining: h },
        DesiredBan { net: n("198.51.100.128/25"), remaining: None },
        DesiredBan { net: n("2001:db8:5::/48"), remaining: h },
    ];
    let first = bans.reconcile(&desired).unwrap();
    // 1 address, 2 IPv4 segments (the /25 never ends, the rest of the /24 in an hour), 1 IPv6
    assert_eq!(first.missing_added, 4, "{first:?}");
    let nft = |args: &str| {
        let st = Command::new("nft").args(args.split(' ')).status().unwrap();
        assert!(st.success(), "nft {args}");
    };
    nft("delete element inet sipwall ban_addr4 { 203.0.113.7 }");
    nft("add element inet sipwall ban_addr4 { 192.0.2.66 timeout 1h }");
    nft("delete element inet sipwall ban_net6 { 2001:db8:5::/48 }");
    nft("add element inet sipwall ban_net6 { 2001:db8:5::/48 timeout 5s }");
    let r = bans.reconcile(&desired).unwrap();
    assert_eq!((r.missing_added, r.stale_removed, r.timeouts_fixed), (1, 1, 1), "{r:?}");
    let again = bans.reconcile(&desired).unwrap();
    assert_eq!(again.repairs(), 0, "{again:?}");
    let mut listed = bans.list_kernel().unwrap();
    listed.sort();
    assert_eq!(
        listed,
        vec![
            n("198.51.100.0/25"),
            n("198.51.100.128/25"),
            n("203.0.113.7/32"),
            n("2001:db8:5::/48")
        ]
    );
}

/// A clean stop keeps the door shut: the queue rules go, the bans stay in the kernel and keep
/// dropping; a new install adopts them with no moment without them.
#[test]
#[ignore = "needs root and network namespaces: run by scripts/test.sh"]
fn a_clean_stop_keeps_bans_and_a_restart_adopts_them() {
    fresh_netns();
    add_lo_addr("203.0.113.10/32");
    add_lo_addr("198.51.100.9/32");
    add_lo_addr("192.0.2.20/32");
    let rx = receiver();
    let mut fw = Firewall::install(ruleset(13)).unwrap();
    let backend = fw.enable_queue(None).unwrap();
    let mut bans = BanSet::new("sipwall").with_netlink();
    let h = Some(Duration::from_secs(600));
    bans.apply(&[
        BanOp::Add { net: n("203.0.113.10/32"), timeout: h },
        BanOp::Add { net: n("198.51.100.0/24"), timeout: h },
    ])
    .unwrap();
    bans.replace_blocklist(&[n("192.0.2.20/32")]).unwrap();
    fw.stop_keeping_bans().expect("clean stop");
    let rules = sh("nft", &["list", "ruleset"]);
    assert!(!rules.contains("queue"), "queue chains left after stop ({backend}):\n{rules}");
    assert!(!sh("iptables-save", &[]).contains("SIPWALL"));
    assert!(!sh("ip6tables-save", &[]).contains("SIPWALL"));
    assert!(!rules.contains("table ip filter"), "empty filter table left:\n{rules}");
    for banned in ["203.0.113.10", "198.51.100.9", "192.0.2.20"] {
        assert!(!reaches(banned, &rx), "{banned} got through after a clean stop");
    }
    assert!(reaches("127.0.0.3", &rx), "without the daemon, other traffic passes");
    // Restart with other ports: the ban sets are adopted, never emptied.
    let ports = vec![sipwall_netfilter::GuardedPort {
        l4: sipwall_netfilter::L4::Udp,
        port: 5060,
        inspect: true,
    }];
    let mut fw = Firewall::install(Ruleset { ports, ..ruleset(13) }).unwrap();
    let mut listed = bans.list_kernel().unwrap();
    listed.sort();
    assert_eq!(listed, vec![n("198.51.100.0/24"), n("203.0.113.10/32")]);
    assert_eq!(bans.list_blocklist().unwrap(), vec![n("192.0.2.20/32")]);
    assert!(!sh("nft", &["list", "chain", "inet", "sipwall", "ban_prerouting"]).contains("tcp"));
    for banned in ["203.0.113.10", "198.51.100.9", "192.0.2.20"] {
        assert!(!reaches(banned, &rx), "{banned} got through after a restart");
    }
    // --cleanup: everything goes, the filter tables the fallback created too.
    fw.enable_queue(None).unwrap();
    fw.remove().unwrap();
    let rules = sh("nft", &["list", "ruleset"]);
    assert!(!rules.contains("sipwall") && !rules.contains("table ip"), "{rules}");
    assert!(reaches("203.0.113.10", &rx));
}

/// A guarded-port datagram too big for one packet reaches the queue whole, for IPv4 and IPv6:
/// the tell of a ghost INVITE sits in its last fragment. Sent over a veth pair from a second
/// namespace (over loopback the kernel skips reassembly of its own fragments).
#[test]
#[ignore = "needs root and network namespaces: run by scripts/test.sh"]
fn fragmented_datagrams_are_queued_whole() {
    fresh_netns();
    let ip = |args: &[&str]| {
        let st = Command::new("ip").args(args).status().expect("ip");
        assert!(st.success(), "ip {args:?}");
    };
    ip(&["link", "add", "swfr0", "type", "veth", "peer", "name", "swfr1"]);
    // The sender thread gets its own namespace and holds it until told to finish.
    let (tid_tx, tid_rx) = std::sync::mpsc::channel::<String>();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let sender = std::thread::spawn(move || {
        sipwall_netfilter::testing::enter_fresh_netns().unwrap();
        let me = std::fs::read_link("/proc/thread-self").unwrap();
        let tid = me.file_name().unwrap().to_string_lossy().into_owned();
        tid_tx.send(tid).unwrap();
        go_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        for args in [
            &["addr", "add", "192.0.2.2/24", "dev", "swfr1"][..],
            &["addr", "add", "2001:db8::2/64", "dev", "swfr1", "nodad"],
            &["link", "set", "swfr1", "up"],
        ] {
            assert!(Command::new("ip").args(args).status().unwrap().success(), "{args:?}");
        }
        let mut invite = Vec::new();
        invite.extend_from_slice(
            b"INVITE sip:100@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.2:5060;branch=z9hG4bK-frag\r\n\
              From: <sip:100@192.0.2.2>;tag=1\r\nTo: <sip:100@192.0.2.1>\r\nCall-ID: frag-1\r\n\
              CSeq: 1 INVITE\r\nX-Padding: ",
        );
        invite.extend(std::iter::repeat_n(b'a', 4800));
        invite.extend_from_slice(b"\r\nUser-Agent: friendly-scanner\r\nContent-Length: 0\r\n\r\n");
        // A few tries: the first may wait for neighbour resolution.
        let v4 = UdpSocket::bind("192.0.2.2:0").unwrap();
        let v6 = UdpSocket::bind("[2001:db8::2]:0").unwrap();
        for _ in 0..5 {
            let _ = v4.send_to(&invite, "192.0.2.1:5060");
            let _ = v6.send_to(&invite, "[2001:db8::1]:5060");
            std::thread::sleep(Duration::from_millis(200));
        }
        invite.len()
    });
    let tid = tid_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    ip(&["link", "set", "swfr1", "netns", &tid]);
    ip(&["addr", "add", "192.0.2.1/24", "dev", "swfr0"]);
    ip(&["addr", "add", "2001:db8::1/64", "dev", "swfr0", "nodad"]);
    ip(&["link", "set", "swfr0", "up"]);
    let mut fw = Firewall::install(ruleset(14)).unwrap();
    fw.enable_queue(None).unwrap();
    let mut q = Queue::open(QueueConfig::new(14)).unwrap();
    go_tx.send(()).unwrap();
    let mut seen: Vec<(bool, usize, bool)> = Vec::new(); // (v6, payload length, has the tell)
    let deadline = Instant::now() + Duration::from_secs(4);
    while Instant::now() < deadline && !(seen.iter().any(|s| s.0) && seen.iter().any(|s| !s.0)) {
        q.process_batch(|p| {
            let v = sipwall_netfilter::packet::parse(p.payload);
            let tell = p.payload.windows(16).any(|w| w == b"friendly-scanner");
            let v6 = p.payload.first().is_some_and(|b| b >> 4 == 6);
            seen.push((v6, v.map(|v| v.payload.len()).unwrap_or(0), tell));
            QueueVerdict::Drop
        })
        .unwrap();
    }
    let sent = sender.join().unwrap();
    drop(q);
    fw.remove().unwrap();
    for v6 in [false, true] {
        let mine: Vec<_> = seen.iter().filter(|s| s.0 == v6).collect();
        assert!(!mine.is_empty(), "no IPv{} packet queued: {seen:?}", if v6 { 6 } else { 4 });
        for s in mine {
            assert!(s.2 && s.1 == sent, "a fragment was queued instead of the datagram: {s:?}");
        }
    }
}

/// Large block lists load in bounded transactions, changing only what differs; the result is
/// the list, and what both lists hold stays dropped.
#[test]
#[ignore = "needs root and network namespaces: run by scripts/test.sh"]
fn block_lists_load_incrementally_in_bounded_batches() {
    fresh_netns();
    let _fw = Firewall::install(ruleset(15)).unwrap();
    add_lo_addr("203.0.113.10/32");
    add_lo_addr("198.51.100.9/32");
    let rx = receiver();
    let v6 = |i: u32| n(&format!("2001:db8:1::{:x}:1/128", i));
    let mut first: Vec<IpNet> = (0..3000).map(v6).collect();
    first.push(n("203.0.113.0/25"));
    let mut bans = BanSet::new("sipwall").with_netlink();
    let mut calls = 0;
    let r = bans.replace_blocklist_in_batches(&first, 256, |_, _| calls += 1).unwrap();
    assert_eq!((r.added, r.removed), (3001, 0), "{r:?}");
    assert!(calls >= 12 && r.transactions == calls, "{calls} progress calls, {r:?}");
    assert_eq!(bans.list_blocklist().unwrap().len(), 3001);
    assert!(!reaches("203.0.113.10", &rx));
    // Second list: the /25 widens to a /24 (overlap: one transaction), half the IPv6 go.
    let mut second: Vec<IpNet> = (1500..3000).map(v6).collect();
    second.push(n("203.0.113.0/24"));
    second.push(n("198.51.100.9/32"));
    let r = bans.replace_blocklist_in_batches(&second, 256, |_, _| {}).unwrap();
    assert_eq!((r.added, r.removed), (2, 1501), "{r:?}");
    let mut listed = bans.list_blocklist().unwrap();
    listed.sort();
    let mut want = IpNet::aggregate(&second);
    want.sort();
    assert_eq!(listed, want);
    assert!(!reaches("203.0.113.10", &rx));
    assert!(!reaches("198.51.100.9", &rx));
    // A fresh writer (as after a restart) reads the sets back and changes nothing.
    let mut other = BanSet::new("sipwall").with_netlink();
    let r = other.replace_blocklist_in_batches(&second, 256, |_, _| {}).unwrap();
    assert_eq!(r, sipwall_netfilter::BlocklistReport::default());
}

/// True if `payload` from `src` reaches `to` (127.0.0.1:5060 or [::1]:5060) within the
/// receiver's timeout.
fn delivered(src: &str, to: &str, rx: &UdpSocket, payload: &[u8]) -> bool {
    let tx = UdpSocket::bind((src, 0)).unwrap();
    tx.send_to(payload, to).unwrap();
    !recv_all(rx).is_empty()
}

/// The trusted fast path: with queueing fail-closed and NO consumer, a packet that is queued
/// is dropped and one that skips the queue arrives, so what arrives is exactly the fast path.
/// From a trusted network: requests arrive; answers and REGISTERs are queued (learning reads
/// them). From elsewhere: everything is queued. `FastPath::set` rewrites it at run time, both
/// families, and a set after a stop never puts queue rules back.
#[test]
#[ignore = "needs root and network namespaces: run by scripts/test.sh"]
fn the_trusted_fast_path_lets_trusted_requests_skip_the_queue_and_nothing_else() {
    fresh_netns();
    add_lo_addr("198.51.100.2/32");
    add_lo_addr("203.0.113.9/32");
    let st = Command::new("ip")
        .args(["addr", "add", "2001:db8:100::2/128", "dev", "lo", "nodad"])
        .status()
        .expect("ip");
    assert!(st.success());
    let rx4 = receiver();
    let rx6 = UdpSocket::bind("[::1]:5060").unwrap();
    rx6.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let trusted = vec![n("198.51.100.0/24"), n("2001:db8:100::/64")];
    let mut fw =
        Firewall::install(Ruleset { fail_closed: true, fast_path: trusted.clone(), ..ruleset(7) })
            .unwrap();
    assert_eq!(fw.enable_queue(Some(QueueBackend::Xtables)).unwrap(), QueueBackend::Xtables);
    let invite = b"INVITE sip:100@192.0.2.10 SIP/2.0\r\nCSeq: 1 INVITE\r\n\r\n".as_slice();
    let options = b"OPTIONS sip:192.0.2.10 SIP/2.0\r\n\r\n".as_slice();
    let answer = b"SIP/2.0 200 OK\r\nCSeq: 1 REGISTER\r\n\r\n".as_slice();
    let register = b"REGISTER sip:192.0.2.10 SIP/2.0\r\n\r\n".as_slice();
    let v4 = |src: &str, p: &[u8]| delivered(src, "127.0.0.1:5060", &rx4, p);
    let v6 = |p: &[u8]| delivered("2001:db8:100::2", "[::1]:5060", &rx6, p);
    assert!(v4("198.51.100.2", invite), "a trusted INVITE was queued");
    assert!(v4("198.51.100.2", options), "a trusted OPTIONS was queued");
    assert!(v6(invite), "a trusted INVITE over IPv6 was queued");
    assert!(!v4("198.51.100.2", answer), "a trusted answer skipped the queue");
    assert!(!v4("198.51.100.2", register), "a trusted REGISTER skipped the queue");
    assert!(!v6(answer) && !v6(register), "IPv6: an answer or REGISTER skipped the queue");
    assert!(!v4("203.0.113.9", invite), "an untrusted INVITE skipped the queue");
    // The kernel counted what skipped the queue: the INVITE and OPTIONS over IPv4, the
    // INVITE over IPv6; nothing else.
    let fast = fw.fast_path();
    assert_eq!(fast.packets(), Some(3));
    // Run time: the list is replaced atomically, per family; the count carries over.
    fast.set(&[n("203.0.113.0/24")]).unwrap();
    assert!(!v4("198.51.100.2", invite), "a network no longer trusted still skips the queue");
    assert!(!v6(invite), "IPv6: a network no longer trusted still skips the queue");
    assert!(v4("203.0.113.9", invite), "a newly trusted network is still queued");
    assert_eq!(fast.networks(), vec![n("203.0.113.0/24")]);
    assert_eq!(fast.packets(), Some(4), "the count restarted with the rewrite");
    // A stop removes the rules; a set afterwards records the list and writes nothing.
    fw.stop_keeping_bans().unwrap();
    fast.set(&trusted).unwrap();
    let rules = sh("iptables", &["-S"]);
    assert!(!rules.contains("SIPWALL"), "a set after the stop put rules back:\n{rules}");
    fw.remove().unwrap();
}

/// A peer in its own namespace behind a veth pair (`dev0` here with 192.0.2.1/24 and
/// 2001:db8::1/64, `dev1` there with 192.0.2.2, 192.0.2.3 and 2001:db8::2): it sends each
/// (source, destination, payload) it is given, until the sender is dropped.
fn veth_peer(
    dev0: &str,
    dev1: &str,
) -> (std::sync::mpsc::Sender<(String, String)>, std::thread::JoinHandle<()>) {
    let ip = |args: &[&str]| {
        let st = Command::new("ip").args(args).status().expect("ip");
        assert!(st.success(), "ip {args:?}");
    };
    ip(&["link", "add", dev0, "type", "veth", "peer", "name", dev1]);
    let (tid_tx, tid_rx) = std::sync::mpsc::channel::<String>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let (send_tx, send_rx) = std::sync::mpsc::channel::<(String, String)>();
    let (dev1, there) = (dev1.to_string(), dev1.to_string());
    let peer = std::thread::spawn(move || {
        sipwall_netfilter::testing::enter_fresh_netns().unwrap();
        let me = std::fs::read_link("/proc/thread-self").unwrap();
        tid_tx.send(me.file_name().unwrap().to_string_lossy().into_owned()).unwrap();
        ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        for args in [
            &["addr", "add", "192.0.2.2/24", "dev", &there][..],
            &["addr", "add", "192.0.2.3/24", "dev", &there],
            &["addr", "add", "2001:db8::2/64", "dev", &there, "nodad"],
            &["link", "set", &there, "up"],
        ] {
            assert!(Command::new("ip").args(args).status().unwrap().success(), "{args:?}");
        }
        // Bounded by the test's own sends; ends when the test drops its sender.
        while let Ok((src, dst)) = send_rx.recv_timeout(Duration::from_secs(30)) {
            let tx = UdpSocket::bind((src.as_str(), 0)).unwrap();
            tx.send_to(b"probe", dst.as_str()).unwrap();
        }
    });
    let tid = tid_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    ip(&["link", "set", &dev1, "netns", &tid]);
    ip(&["addr", "add", "192.0.2.1/24", "dev", dev0]);
    ip(&["addr", "add", "2001:db8::1/64", "dev", dev0, "nodad"]);
    ip(&["link", "set", dev0, "up"]);
    ready_tx.send(()).unwrap();
    (send_tx, peer)
}

/// The early drop: with the ban chain emptied, the ingress chain of the device alone drops
/// banned sources (both families, guarded ports only) and nothing else; the devices picked
/// automatically are the one with an address, never loopback; a new install without it
/// removes the chain, and the ban chain drops banned sources throughout.
#[test]
#[ignore = "needs root and network namespaces: run by scripts/test.sh"]
fn the_early_drop_drops_banned_sources_at_ingress_and_follows_the_config() {
    fresh_netns();
    let (peer, peer_thread) = veth_peer("swin0", "swin1");
    let rx4 = UdpSocket::bind("192.0.2.1:5060").unwrap();
    let rx6 = UdpSocket::bind("[2001:db8::1]:5060").unwrap();
    let other = UdpSocket::bind("192.0.2.1:5999").unwrap();
    for s in [&rx4, &rx6, &other] {
        s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    }
    let arrives = |src: &str, dst: &str, rx: &UdpSocket| {
        peer.send((src.to_string(), dst.to_string())).unwrap();
        !recv_all(rx).is_empty()
    };
    let devices = sipwall_netfilter::auto_devices().unwrap();
    assert_eq!(devices, vec!["swin0".to_string()], "the device with an address, not lo");
    // A name that could end the quoted string in the batch is refused, not written.
    let hostile =
        Ruleset { ingress_devices: vec!["swin0".into(), "x\" accept".into()], ..ruleset(3) };
    let mut fw0 = Firewall::install(hostile).unwrap();
    assert_eq!(fw0.ingress().active, vec!["swin0".to_string()]);
    assert_eq!(fw0.ingress().refused.len(), 1, "{:?}", fw0.ingress());
    assert!(fw0.ingress().refused[0].1.contains("not a valid device name"));
    let with = Ruleset { ingress_devices: devices, ..ruleset(3) };
    let mut fw = Firewall::install(with.clone()).unwrap();
    assert_eq!(fw.ingress().active, vec!["swin0".to_string()]);
    assert!(fw.ingress().refused.is_empty());
    // Neighbour resolution and the path work before any ban.
    assert!(wait_until(Duration::from_secs(3), || arrives("192.0.2.2", "192.0.2.1:5060", &rx4)));
    assert!(wait_until(Duration::from_secs(3), || arrives(
        "2001:db8::2",
        "[2001:db8::1]:5060",
        &rx6
    )));
    let mut bans = BanSet::new("sipwall");
    bans.apply(&[
        BanOp::Add { net: n("192.0.2.2/32"), timeout: Some(Duration::from_secs(600)) },
        BanOp::Add { net: n("2001:db8::2/128"), timeout: Some(Duration::from_secs(600)) },
    ])
    .unwrap();
    // Only the ingress chain is left to drop them.
    sh("nft", &["flush", "chain", "inet", "sipwall", "ban_prerouting"]);
    assert!(!arrives("192.0.2.2", "192.0.2.1:5060", &rx4), "IPv4: passed the ingress chain");
    assert!(!arrives("2001:db8::2", "[2001:db8::1]:5060", &rx6), "IPv6: passed the ingress chain");
    assert!(arrives("192.0.2.3", "192.0.2.1:5060", &rx4), "an address not banned was dropped");
    assert!(arrives("192.0.2.2", "192.0.2.1:5999", &other), "a port not guarded was dropped");
    // Installed again without it (the early drop turned off): the chain goes, the ban chain
    // is back in the same step and drops the banned source.
    let mut fw2 = Firewall::install(ruleset(3)).unwrap();
    assert!(fw2.ingress().active.is_empty());
    let chains = sh("nft", &["list", "chains", "inet"]);
    assert!(!chains.contains("ingress_"), "a stale ingress chain stayed:\n{chains}");
    assert!(!arrives("192.0.2.2", "192.0.2.1:5060", &rx4), "the ban chain let it through");
    sh("nft", &["flush", "chain", "inet", "sipwall", "ban_prerouting"]);
    assert!(arrives("192.0.2.2", "192.0.2.1:5060", &rx4), "something still drops at ingress");
    // A stop keeps the ingress chains (they drop banned sources only), like the ban chain.
    let mut fw3 = Firewall::install(with).unwrap();
    fw3.stop_keeping_bans().unwrap();
    assert!(sh("nft", &["list", "chains", "inet"]).contains("ingress_swin0"));
    drop(peer);
    peer_thread.join().unwrap();
    fw3.remove().unwrap();
    // The earlier handles: removing again is a no-op (idempotent).
    fw0.remove().unwrap();
    fw.remove().unwrap();
    fw2.remove().unwrap();
}
