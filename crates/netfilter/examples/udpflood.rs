//! Traffic tool for `scripts/bench-inline.sh` (runs inside the test namespaces; it only sends
//! to the address it is given, which the script takes from the documentation ranges).
//!
//! ```text
//! udpflood send  SRC_IP[,SRC_IP..] DST_IP:PORT PAYLOAD_FILE[,FILE..] COUNT RATE [FLOWS]
//!                # RATE pkt/s, 0 = flat out; FLOWS sockets round robin, flow i from source i mod n;
//!                # packet i carries file i mod (number of files): a mix, e.g. INVITE,OPTIONS
//! udpflood scan  SRC_IP DST_IP:PORT TEMPLATE_FILE COUNT RATE   # a scanner: request i has every
//!                # `{n}` replaced by 1000 + i (extension, Call-ID, branch); counts the answers
//! udpflood sink  BIND_IP:PORT SECONDS                          # counts datagrams until idle/SECONDS
//! udpflood echo  BIND_IP:PORT SECONDS                          # answers each datagram with "SIP/2.0 200 OK"
//! udpflood ping  SRC_IP DST_IP:PORT PAYLOAD_FILE COUNT          # round trips; prints p50/p99 µs
//! ```
//! Output is one `key=value` line for the script to parse.
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

fn arg(i: usize) -> String {
    std::env::args().nth(i).unwrap_or_else(|| {
        eprintln!("usage: see the module docs of examples/udpflood.rs");
        std::process::exit(2)
    })
}

fn main() {
    match arg(1).as_str() {
        "send" => send(),
        "sink" => sink(false),
        "echo" => sink(true),
        "ping" => ping(),
        "scan" => scan(),
        _ => std::process::exit(2),
    }
}

fn send() {
    // SRC_IP may be a comma-separated list: flow i is sent from address i mod n (the kernel
    // spreads queue-balanced packets by address pair, so several queues need several sources).
    let srcs: Vec<std::net::IpAddr> = arg(2).split(',').map(|a| a.parse().unwrap()).collect();
    let dst: SocketAddr = arg(3).parse().unwrap();
    let payloads: Vec<Vec<u8>> = arg(4).split(',').map(|f| std::fs::read(f).unwrap()).collect();
    let count: u64 = arg(5).parse().unwrap();
    let rate: u64 = arg(6).parse().unwrap();
    let flows: usize = std::env::args().nth(7).and_then(|f| f.parse().ok()).unwrap_or(1).max(1);
    let socks: Vec<UdpSocket> = (0..flows)
        .map(|i| {
            let s = UdpSocket::bind(SocketAddr::new(srcs[i % srcs.len()], 0)).unwrap();
            s.connect(dst).unwrap();
            s
        })
        .collect();
    let start = Instant::now();
    let mut sent = 0u64;
    let mut errors = 0u64;
    while sent < count {
        if rate > 0 {
            // Pace in bursts of 64: the wanted time of packet n is n / rate.
            let due = Duration::from_secs_f64(sent as f64 / rate as f64);
            while start.elapsed() < due {
                std::hint::spin_loop();
            }
        }
        for _ in 0..64.min(count - sent) {
            let payload = &payloads[(sent as usize) % payloads.len()];
            if socks[(sent as usize) % flows].send(payload).is_err() {
                errors += 1;
            }
            sent += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!("sent={sent} errors={errors} secs={secs:.4} pps={:.0}", sent as f64 / secs);
}

fn sink(echo: bool) {
    let bind: SocketAddr = arg(2).parse().unwrap();
    let secs: u64 = arg(3).parse().unwrap();
    let s = UdpSocket::bind(bind).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(if echo { 500 } else { 1000 }))).unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut n = 0u64;
    let mut first: Option<Instant> = None;
    let mut last = Instant::now();
    if echo {
        let mut buf = [0u8; 65536];
        while Instant::now() < deadline {
            if let Ok((_, from)) = s.recv_from(&mut buf) {
                n += 1;
                let _ = s.send_to(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", from);
            }
        }
    } else {
        // A 64 MiB buffer and 64 datagrams per recvmmsg, so the sink is not what loses packets.
        let fd = std::os::fd::OwnedFd::from(s);
        let _ = sipwall_netfilter::testing::force_rcvbuf(&fd, 64 << 20);
        let mut bufs: Vec<Vec<u8>> = (0..64).map(|_| vec![0u8; 2048]).collect();
        let mut lens = vec![0usize; 64];
        while Instant::now() < deadline {
            match sipwall_netfilter::testing::recv_many(&fd, &mut bufs, &mut lens) {
                Ok(0) | Err(_) => {
                    if n > 0 {
                        break; // idle for the read timeout after traffic: done
                    }
                }
                Ok(k) => {
                    n += k as u64;
                    last = Instant::now();
                    first.get_or_insert(last);
                }
            }
        }
    }
    let span = first.map(|f| (last - f).as_secs_f64()).unwrap_or(0.0);
    println!("received={n} secs={span:.4}");
}

fn ping() {
    let src: std::net::IpAddr = arg(2).parse().unwrap();
    let dst: SocketAddr = arg(3).parse().unwrap();
    let payload = std::fs::read(arg(4)).unwrap();
    let count: usize = arg(5).parse().unwrap();
    let s = UdpSocket::bind(SocketAddr::new(src, 5060)).unwrap();
    s.connect(dst).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let mut rtts = Vec::with_capacity(count);
    let mut lost = 0;
    let mut buf = [0u8; 2048];
    for _ in 0..count {
        let t = Instant::now();
        s.send(&payload).unwrap();
        match s.recv(&mut buf) {
            Ok(_) => rtts.push(t.elapsed().as_nanos() as u64),
            Err(_) => lost += 1,
        }
    }
    rtts.sort_unstable();
    let q = |p: f64| {
        rtts.get(((rtts.len() as f64 - 1.0) * p) as usize).copied().unwrap_or(0) as f64 / 1000.0
    };
    println!("count={} lost={lost} p50_us={:.1} p99_us={:.1}", rtts.len(), q(0.5), q(0.99));
}

fn scan() {
    let src: std::net::IpAddr = arg(2).parse().unwrap();
    let dst: SocketAddr = arg(3).parse().unwrap();
    let template = std::fs::read_to_string(arg(4)).unwrap();
    let count: u64 = arg(5).parse().unwrap();
    let rate: u64 = arg(6).parse::<u64>().unwrap().max(1);
    let s = UdpSocket::bind(SocketAddr::new(src, 5060)).unwrap();
    s.connect(dst).unwrap();
    s.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    let mut answered = 0u64;
    let mut last_answered = 0u64; // request number (1-based) after which the last answer came
    let start = Instant::now();
    let mut drain = |answered: &mut u64, last: &mut u64, sent: u64| {
        while s.recv(&mut buf).is_ok() {
            *answered += 1;
            *last = sent;
        }
    };
    for i in 0..count {
        let due = Duration::from_secs_f64(i as f64 / rate as f64);
        while start.elapsed() < due {
            drain(&mut answered, &mut last_answered, i);
            std::thread::sleep(Duration::from_micros(200));
        }
        let msg = template.replace("{n}", &(1000 + i).to_string());
        let _ = s.send(msg.as_bytes());
    }
    // late answers (bounded)
    let end = Instant::now() + Duration::from_millis(1000);
    while Instant::now() < end {
        drain(&mut answered, &mut last_answered, count);
        std::thread::sleep(Duration::from_millis(5));
    }
    println!("sent={count} answered={answered} last_answered_after={last_answered}");
}
