//! Ban insertion rate against set size, old layout against new, in the same run
//! (`scripts/bench-bans.sh`; needs root: it enters a fresh network namespace of its own).
//!
//! Old layout: every ban an element of an `interval, timeout` set. New layout: exact addresses
//! in a plain `timeout` hash set. Both are filled with N IPv6 documentation addresses
//! (2001:db8::/32, 1 h timeouts), then new bans are inserted over netlink, the layouts taking
//! turns (3 rounds), one ban per transaction and 100 per transaction. Prints one line per case.
use std::net::{IpAddr, Ipv6Addr};
use std::process::Command;
use std::time::{Duration, Instant};

use sipwall_netfilter::testing::{enter_fresh_netns, ElementWriter};

const HOUR: Option<Duration> = Some(Duration::from_secs(3600));

fn addr(i: u32) -> IpAddr {
    // 2001:db8:0:<i high>::<i low>: distinct, never adjacent (adjacent ranges stay separate
    // elements in the interval set anyway).
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, (i >> 16) as u16, 0, 0, 1, i as u16))
}

fn nft(text: &str) {
    let mut c =
        Command::new("nft").args(["-f", "-"]).stdin(std::process::Stdio::piped()).spawn().unwrap();
    std::io::Write::write_all(c.stdin.as_mut().unwrap(), text.as_bytes()).unwrap();
    drop(c.stdin.take());
    assert!(c.wait().unwrap().success(), "nft: {text}");
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    enter_fresh_netns().expect("needs root: unshare(CLONE_NEWNET)");
    let sizes: Vec<u32> = std::env::args()
        .nth(1)
        .map(|s| s.split(',').map(|x| x.parse().unwrap()).collect())
        .unwrap_or_else(|| vec![1_000, 10_000, 100_000]);
    let mut next = 0u32;
    for &size in &sizes {
        nft("add table inet bench\ndelete table inet bench\ntable inet bench {\n  \
             set old6 { type ipv6_addr; flags interval, timeout; }\n  \
             set new6 { type ipv6_addr; flags timeout; }\n}\n");
        let mut w = ElementWriter::open("bench").unwrap();
        let mut fill = [Duration::ZERO; 2];
        for chunk_start in (0..size).step_by(1000) {
            let addrs: Vec<IpAddr> =
                (chunk_start..(chunk_start + 1000).min(size)).map(addr).collect();
            for (k, (set, interval)) in [("old6", true), ("new6", false)].into_iter().enumerate() {
                let t = Instant::now();
                w.add(set, &addrs, interval, HOUR).unwrap();
                fill[k] += t.elapsed();
            }
        }
        next = next.max(size);
        for per_tx in [1usize, 100] {
            let bans = if per_tx == 1 { 200 } else { 1000 };
            let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
            for _round in 0..3 {
                for (k, (set, interval)) in
                    [("old6", true), ("new6", false)].into_iter().enumerate()
                {
                    let addrs: Vec<IpAddr> = (next..next + bans).map(addr).collect();
                    next += bans;
                    let t = Instant::now();
                    for chunk in addrs.chunks(per_tx) {
                        w.add(set, chunk, interval, HOUR).unwrap();
                    }
                    rates[k].push(bans as f64 / t.elapsed().as_secs_f64());
                }
            }
            let (old, new) = (median(rates[0].clone()), median(rates[1].clone()));
            println!(
                "size={size} per_tx={per_tx} old_bans_per_s={old:.0} new_bans_per_s={new:.0} \
                 ratio={:.2} fill_old_s={:.2} fill_new_s={:.2}",
                new / old,
                fill[0].as_secs_f64(),
                fill[1].as_secs_f64()
            );
        }
    }
}
