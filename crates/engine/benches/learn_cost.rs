//! What learning costs on the decide bench's legitimate mix, as a ratio measured in ONE run:
//! the same 20 000-packet mix over 100 000 active sources, decided by an engine with the
//! default `[learn] mode = "auto"` and one with `mode = "off"`, in alternating rounds (so
//! both arms see the same machine load), median per arm.
//!
//! Run: `cargo bench -p sipwall-engine --bench learn_cost` (prints both medians and the ratio).
//! Instruction counts (steadier on a shared machine): build with `--no-run`, then
//! `valgrind --tool=callgrind --toggle-collect='*learn_cost*measure*' target/release/deps/learn_cost-* on`
//! and the same with `off` (each arm alone, one round).
use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::time::Instant;

use sipwall_engine::{Direction, Engine, Packet, Policy, Timestamp, Transport, Verdict};

const SOURCES: u32 = 100_000;
const BATCH: usize = 20_000;
const ROUNDS: usize = 15;

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
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(0xC612_0000u32 + i), 5060))
}

/// The decide bench's mix: (src, dst, direction, payload index; `None` = keep-alive).
fn mix(msgs: &[(bool, Vec<u8>)]) -> Vec<(SocketAddr, SocketAddr, Direction, Option<usize>)> {
    let pbx: SocketAddr = "192.0.2.10:5060".parse().unwrap();
    let mut k = 0usize;
    (0..BATCH)
        .map(|n| {
            let src = addr(((n as u64 * 7919) % SOURCES as u64) as u32);
            if n % 20 == 0 {
                return (src, pbx, Direction::Inbound, None);
            }
            let i = k % msgs.len();
            k += 1;
            if msgs[i].0 {
                (src, pbx, Direction::Inbound, Some(i))
            } else {
                (pbx, src, Direction::Outbound, Some(i))
            }
        })
        .collect()
}

fn engine(learn: &str) -> Engine {
    let mut e = Engine::new(
        Policy::from_toml_str(&format!(
            "[limits]\nmax_tracked_sources = 120000\n[learn]\nmode = \"{learn}\"\n"
        ))
        .unwrap(),
    );
    let reg = load("phone-register-and-calls").remove(0).1;
    let pbx: SocketAddr = "192.0.2.10:5060".parse().unwrap();
    for i in 0..SOURCES {
        let p = Packet {
            src: addr(i),
            dst: pbx,
            transport: Transport::Udp,
            direction: Direction::Inbound,
            payload: &reg,
        };
        e.decide(&p, Timestamp::from_millis(1_000));
    }
    e
}

#[inline(never)]
fn measure(
    e: &mut Engine,
    items: &[(SocketAddr, SocketAddr, Direction, Option<usize>)],
    msgs: &[(bool, Vec<u8>)],
    t: &mut u64,
) -> usize {
    let mut accepted = 0;
    for (src, dst, direction, i) in items {
        *t += 1;
        let payload: &[u8] = match i {
            Some(i) => &msgs[*i].1,
            None => b"\r\n\r\n",
        };
        let p = Packet {
            src: *src,
            dst: *dst,
            transport: Transport::Udp,
            direction: *direction,
            payload,
        };
        accepted += usize::from(
            e.decide(black_box(&p), Timestamp::from_millis(*t)).verdict == Verdict::Accept,
        );
    }
    accepted
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut msgs = load("phone-register-and-calls");
    msgs.extend(load("provider-invites-and-options"));
    let items = mix(&msgs);
    let args: Vec<String> = std::env::args().collect();
    let only = ["on", "off"].into_iter().find(|a| args.iter().any(|x| x == a));
    if let Some(arm) = only {
        // One arm, one round: for callgrind.
        let mut e = engine(if arm == "on" { "auto" } else { "off" });
        let mut t = 2_000;
        black_box(measure(&mut e, &items, &msgs, &mut t));
        return;
    }
    let (mut on, mut off) = (engine("auto"), engine("off"));
    let (mut t_on, mut t_off) = (2_000u64, 2_000u64);
    // One warm-up round each, then alternate.
    measure(&mut on, &items, &msgs, &mut t_on);
    measure(&mut off, &items, &msgs, &mut t_off);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for r in 0..ROUNDS {
        let time = |e: &mut Engine, t: &mut u64| {
            let s = Instant::now();
            let n = measure(e, &items, &msgs, t);
            assert_eq!(n, BATCH, "the legitimate mix is accepted");
            s.elapsed().as_secs_f64() * 1e9 / BATCH as f64
        };
        if r % 2 == 0 {
            a.push(time(&mut on, &mut t_on));
            b.push(time(&mut off, &mut t_off));
        } else {
            b.push(time(&mut off, &mut t_off));
            a.push(time(&mut on, &mut t_on));
        }
    }
    let (m_on, m_off) = (median(a), median(b));
    println!(
        "learn_cost: decide legit mix, 100k sources: learning on {m_on:.1} ns/packet, off {m_off:.1} ns/packet, on/off = {:.3} ({ROUNDS} alternating rounds, medians)",
        m_on / m_off
    );
    assert_eq!(on.stats().bans_added + off.stats().bans_added, 0);
}
