//! Decisions per second on a realistic mix with 100k active sources, beside parse-only
//! throughput of the same packets in the same run (the baseline for the ratio).
//!
//! Mix: the recorded phone and provider exchanges (requests in, answers out, calls, 401
//! challenges, OPTIONS keepalives) spread over 100 000 sources, plus 5% CRLF keep-alives.
//! The same decide with `[learn] mode = "off"`, in the same run: the baseline for learning's
//! cost (docs/BENCHMARKS.md, "Learning").
//! Separately: the first packet of a scanner (signature match, ban, record); and 1 and 2
//! threads sharing one engine, locking it per batch (as the daemon did) or analysing unlocked
//! and locking per packet (as it does now).
//!
//! Run: cargo bench -p sipwall-engine --bench decide
use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sipwall_engine::{Direction, Engine, Packet, Policy, Timestamp, Transport};
use sipwall_sip::Message;

const SOURCES: u32 = 100_000;
const BATCH: usize = 20_000;

fn load(name: &str) -> Vec<(bool, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios").join(name);
    let meta = std::fs::read_to_string(dir.join("meta.txt")).unwrap();
    meta.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 3).then(|| {
                (f[1] == "in", std::fs::read(dir.join(format!("{}-{}.sip", f[0], f[1]))).unwrap())
            })
        })
        .collect()
}

fn addr(i: u32) -> SocketAddr {
    // 100k distinct public-looking sources (documentation and benchmarking ranges).
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(0xC612_0000u32 + i), 5060))
}

fn pbx() -> SocketAddr {
    "192.0.2.10:5060".parse().unwrap()
}

struct Item {
    src: SocketAddr,
    dst: SocketAddr,
    direction: Direction,
    msg: usize,
}

fn mix(msgs: &[(bool, Vec<u8>)]) -> (Vec<Item>, usize) {
    let keepalive = msgs.len(); // index of the keep-alive payload
    let mut items = Vec::with_capacity(BATCH);
    let mut k = 0usize;
    for n in 0..BATCH {
        let src = addr(((n as u64 * 7919) % SOURCES as u64) as u32);
        if n % 20 == 0 {
            items.push(Item { src, dst: pbx(), direction: Direction::Inbound, msg: keepalive });
            continue;
        }
        let (inb, _) = msgs[k % msgs.len()];
        k += 1;
        let (s, d, dir) =
            if inb { (src, pbx(), Direction::Inbound) } else { (pbx(), src, Direction::Outbound) };
        items.push(Item { src: s, dst: d, direction: dir, msg: k - 1 });
    }
    (items, keepalive)
}

fn bench(c: &mut Criterion) {
    let mut msgs = load("phone-register-and-calls");
    msgs.extend(load("provider-invites-and-options"));
    let (items, keepalive) = mix(&msgs);
    let payload = |i: &Item| -> &[u8] {
        if i.msg == keepalive {
            b"\r\n\r\n"
        } else {
            &msgs[i.msg % msgs.len()].1
        }
    };

    let policy = Policy::from_toml_str("[limits]\nmax_tracked_sources = 120000\n").unwrap();
    // Make 100k sources active before measuring.
    let reg = &msgs[0].1;
    let warm = |engine: &mut Engine| {
        for i in 0..SOURCES {
            let p = Packet {
                src: addr(i),
                dst: pbx(),
                transport: Transport::Udp,
                direction: Direction::Inbound,
                payload: reg,
            };
            engine.decide(&p, Timestamp::from_millis(1_000));
        }
        assert_eq!(engine.tracked_sources(), SOURCES as usize);
    };
    let mut engine = Engine::new(policy.clone());
    warm(&mut engine);
    // The same with `[learn] mode = "off"`: the baseline of learning's cost, same run.
    let mut engine_off = Engine::new(
        Policy::from_toml_str("[limits]\nmax_tracked_sources = 120000\n[learn]\nmode = \"off\"\n")
            .unwrap(),
    );
    warm(&mut engine_off);

    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.sample_size(20);
    g.measurement_time(std::time::Duration::from_secs(6));

    g.bench_function("parse-only (same mix)", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for it in &items {
                if let Ok(m) = Message::parse(black_box(payload(it))) {
                    // What the engine reads on the accept path.
                    n += m.call_id().map_or(0, |c| c.len());
                    n += m.user_agent().map_or(0, |c| c.len());
                    n += m.from().map_or(0, |f| f.tag.map_or(0, |t| t.len()));
                    n += m.top_via().map_or(0, |v| v.branch.map_or(0, |b| b.len()));
                }
            }
            n
        })
    });

    let mut t_off = 2_000u64;
    g.bench_function("decide (100k active sources, legit mix, learning off)", |b| {
        b.iter(|| {
            let mut accepted = 0usize;
            for it in &items {
                t_off += 1;
                let p = Packet {
                    src: it.src,
                    dst: it.dst,
                    transport: Transport::Udp,
                    direction: it.direction,
                    payload: payload(it),
                };
                let d = engine_off.decide(black_box(&p), Timestamp::from_millis(t_off));
                accepted += (d.verdict == sipwall_engine::Verdict::Accept) as usize;
            }
            accepted
        })
    });
    let mut t = 2_000u64;
    g.bench_function("decide (100k active sources, legit mix)", |b| {
        b.iter(|| {
            let mut accepted = 0usize;
            for it in &items {
                t += 1;
                let p = Packet {
                    src: it.src,
                    dst: it.dst,
                    transport: Transport::Udp,
                    direction: it.direction,
                    payload: payload(it),
                };
                let d = engine.decide(black_box(&p), Timestamp::from_millis(t));
                accepted += (d.verdict == sipwall_engine::Verdict::Accept) as usize;
            }
            accepted
        })
    });
    assert_eq!(engine.stats().bans_added, 0, "the legitimate mix must not ban");
    assert!(engine_off.learned().is_empty());
    g.finish();

    // Queue threads sharing one engine (the daemon's situation): the same mix split by source
    // between THREADS threads (as the kernel's queue balancing splits flows), each deciding in
    // batches of 64 packets, the way `sipwall run` did before (lock the engine for a whole
    // batch) and does now (analyse unlocked, lock per packet for `decide_analysed`).
    let shared = std::sync::Mutex::new(engine);
    let mut g = c.benchmark_group("engine-threads");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.sample_size(15);
    g.measurement_time(std::time::Duration::from_secs(6));
    // Time only moves forward: start after the last packet the decide bench gave this engine.
    let t0 = std::sync::atomic::AtomicU64::new(t + 1_000_000);
    for threads in [1usize, 2] {
        for split in [false, true] {
            let name = if split {
                format!("{threads} thread(s): analyse unlocked, lock per packet")
            } else {
                format!("{threads} thread(s): lock per 64-packet batch")
            };
            g.bench_function(name, |b| {
                b.iter(|| {
                    std::thread::scope(|s| {
                        for k in 0..threads {
                            let (shared, items, t0) = (&shared, &items, &t0);
                            s.spawn(move || {
                                let mine: Vec<&Item> = items
                                    .iter()
                                    .filter(|it| {
                                        let peer = if it.direction == Direction::Inbound {
                                            it.src
                                        } else {
                                            it.dst
                                        };
                                        u32::from(match peer.ip() {
                                            std::net::IpAddr::V4(a) => a,
                                            _ => Ipv4Addr::UNSPECIFIED,
                                        }) as usize
                                            % threads
                                            == k
                                    })
                                    .collect();
                                let now = Timestamp::from_millis(
                                    t0.fetch_add(20_000, std::sync::atomic::Ordering::Relaxed),
                                );
                                let rules = shared.lock().unwrap().rules().clone();
                                let mut accepted = 0usize;
                                for chunk in mine.chunks(64) {
                                    let packets = chunk.iter().map(|it| Packet {
                                        src: it.src,
                                        dst: it.dst,
                                        transport: Transport::Udp,
                                        direction: it.direction,
                                        payload: payload(it),
                                    });
                                    if split {
                                        for p in packets {
                                            let a = rules.analyse(&p);
                                            let d =
                                                shared.lock().unwrap().decide_analysed(&p, &a, now);
                                            accepted += (d.verdict
                                                == sipwall_engine::Verdict::Accept)
                                                as usize;
                                        }
                                    } else {
                                        let mut e = shared.lock().unwrap();
                                        for p in packets {
                                            let d = e.decide(&p, now);
                                            accepted += (d.verdict
                                                == sipwall_engine::Verdict::Accept)
                                                as usize;
                                        }
                                    }
                                }
                                black_box(accepted)
                            });
                        }
                    })
                })
            });
        }
    }
    g.finish();
    assert_eq!(shared.lock().unwrap().stats().bans_added, 0, "the legitimate mix must not ban");

    // A scanner's first packet: signatures, ban, record (allocates; rare by nature).
    let scan = load("svmap-options").remove(0).1;
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(1000));
    g.sample_size(20);
    g.measurement_time(std::time::Duration::from_secs(4));
    let mut base = 0u32;
    g.bench_function("decide (scanner first packet: ban)", |b| {
        b.iter_batched_ref(
            || {
                Engine::new(
                    Policy::from_toml_str(
                        "[limits]\nmax_tracked_sources = 2000\n[bans.aggregate]\nenabled = false\n",
                    )
                    .unwrap(),
                )
            },
            |e| {
                for i in 0..1000u32 {
                    base = base.wrapping_add(1);
                    let p = Packet {
                        src: addr(i),
                        dst: pbx(),
                        transport: Transport::Udp,
                        direction: Direction::Inbound,
                        payload: &scan,
                    };
                    black_box(e.decide(&p, Timestamp::from_millis(5_000 + base as u64)));
                }
            },
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
