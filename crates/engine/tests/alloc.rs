//! The accept path allocates nothing: counted with a global allocator wrapper.
//!
//! Covers known sources, new sources (the per-source table is allocated up front), eviction of
//! the least recently seen source once the table is full, trusted sources, outbound answers
//! and keep-alives. Runs single-threaded in its own test binary so no other test allocates
//! while counting.
#![allow(unsafe_code)] // a GlobalAlloc impl is unsafe by definition; it only counts.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use common::*;
use sipwall_engine::{Engine, Policy, Verdict};

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

#[test]
fn accept_path_allocates_nothing() {
    let policy = Policy::from_toml_str(
        // 5000 new sources sending the same INVITE within seconds would be a campaign (and
        // banned): this test is about the accept path, so campaigns are off here.
        "[trusted]\nnetworks = [\"198.51.100.0/24\"]\n[limits]\nmax_tracked_sources = 1000\n\
         [learn.campaign]\nenabled = false\n",
    )
    .unwrap();
    // Real legitimate traffic, prepared before counting.
    let phone = load("phone-register-and-calls");
    let provider = load("provider-invites-and-options");
    let mut msgs: Vec<(bool, Vec<u8>)> = Vec::new();
    for d in phone.datagrams.iter().chain(provider.datagrams.iter()) {
        msgs.push((d.inbound, d.bytes.clone()));
    }
    let sources: Vec<String> = (0..5000u32)
        .map(|i| format!("10.{}.{}.{}:5060", i >> 16, (i >> 8) & 255, i & 255))
        .collect();
    let mut e = Engine::new(policy);
    let mut t = 0u64;
    // Learning a NEW fact (a local user, an upstream, a known-good client) allocates its record
    // once; refreshing it does not. Let the traffic teach what it teaches first, from one
    // source; everything after is counted, the first packet of each of the 5000 sources too.
    for (inb, m) in &msgs {
        let p = if *inb { inbound("10.255.0.1:5060", m) } else { outbound("10.255.0.1:5060", m) };
        e.decide(&p, at(t));
    }
    let learned = e.learned().len();
    assert!(learned > 0, "the phone's registration teaches its user");
    let before = ALLOCS.load(Ordering::Relaxed);
    let mut accepted = 0u64;
    for round in 0..3 {
        for (i, src) in sources.iter().enumerate() {
            let (inb, m) = &msgs[(i + round) % msgs.len()];
            let p = if *inb { inbound(src, m) } else { outbound(src, m) };
            t += 7;
            // Every other packet takes the queue threads' split path (analyse, then decide).
            let d = if i % 2 == 0 {
                e.decide(&p, at(t))
            } else {
                let rules = e.rules().clone();
                e.decide_analysed(&p, &rules.analyse(&p), at(t))
            };
            assert_eq!(d.verdict, Verdict::Accept);
            accepted += 1;
        }
        // Trusted and keep-alives.
        for (inb, m) in &msgs {
            let p = if *inb {
                inbound("198.51.100.20:5060", m)
            } else {
                outbound("198.51.100.20:5060", m)
            };
            assert_eq!(e.decide(&p, at(t)).verdict, Verdict::Accept);
            assert_eq!(
                e.decide(&inbound("192.0.2.99:5060", b"\r\n\r\n"), at(t)).verdict,
                Verdict::Accept
            );
            accepted += 2;
        }
    }
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    assert_eq!(e.learned().len(), learned, "nothing new was learned while counting");
    assert!(e.stats().evicted_sources > 0, "the table filled and evicted");
    assert_eq!(allocs, 0, "{allocs} allocations over {accepted} accepted packets");
    // The counter does count: a refused packet allocates its record.
    let before = ALLOCS.load(Ordering::Relaxed);
    let scan = load("svmap-options");
    let d = e.decide(&inbound("203.0.113.5:5060", &scan.datagrams[0].bytes), at(t + 1));
    assert_eq!(d.verdict, Verdict::Drop);
    assert!(ALLOCS.load(Ordering::Relaxed) > before);
}
