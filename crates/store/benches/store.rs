//! Cost of a durable ban commit, against baselines measured in the same run:
//! * `fsync_append`: append the same logical bytes (the ban as JSON) to a plain file and
//!   `fsync` it (the call the bundled SQLite makes, it is built without HAVE_FDATASYNC): the
//!   floor for any durable write on this disk;
//! * `sqlite_sync_off`: the same store with `synchronous=OFF` (no fsync): SQLite's own CPU cost.
//!
//! Run: `cargo bench -p sipwall-store --bench store` (files go to the system temp dir, which
//! must be a real disk for the fsync numbers to mean anything).
use std::fs::OpenOptions;
use std::hint::black_box;
use std::io::Write;
use std::time::Duration;

use criterion::{criterion_group, BatchSize, Criterion, Throughput};
use sipwall_engine::{Ban, BanOrigin, Evidence, Timestamp};
use sipwall_store::Store;

const NOW_MS: u64 = 1_764_000_000_000;

fn ban(i: u32) -> Ban {
    let [_, b, c, d] = i.to_be_bytes();
    Ban {
        net: format!("10.{b}.{c}.{d}/32").parse().unwrap(),
        since: Timestamp::from_millis(NOW_MS),
        until: Timestamp::from_millis(NOW_MS + 3_600_000),
        count: 1,
        rule: "signature.sipvicious-ua".into(),
        reason: "User-Agent friendly-scanner (SIPVicious svmap)".into(),
        evidence: Evidence {
            method: Some("OPTIONS".into()),
            user_agent: Some("friendly-scanner".into()),
            call_id: Some("1234567890123".into()),
            target_user: Some("100".into()),
            users_probed: vec!["100".into(), "101".into()],
            counters: vec![("requests_in_window".into(), 3)],
            signatures: vec!["sipvicious-ua".into()],
        },
        origin: BanOrigin::Detection,
    }
}

/// The ban's logical content as bytes (what the baseline appends).
fn ban_bytes(b: &Ban) -> Vec<u8> {
    let mut v = serde_json::to_vec(b).unwrap();
    v.push(b'\n');
    v
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut durable = Store::open(dir.path().join("durable.db")).unwrap();
    let mut unsynced = Store::open(dir.path().join("off.db")).unwrap();
    unsynced.set_synchronous_off_for_benchmarks().unwrap();
    let mut log =
        OpenOptions::new().create(true).append(true).open(dir.path().join("append.log")).unwrap();
    let mut n = 0u32;
    let mut next = move || {
        n = n.wrapping_add(1);
        n
    };

    let mut g = c.benchmark_group("store_single_ban");
    g.sample_size(30).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Elements(1));
    g.bench_function("record_ban_durable", |bch| {
        bch.iter_batched(
            || ban(next()),
            |b| durable.record_ban(black_box(&b)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("baseline_fsync_append", |bch| {
        bch.iter_batched(
            || ban_bytes(&ban(next())),
            |bytes| {
                log.write_all(&bytes).unwrap();
                log.sync_all().unwrap();
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("baseline_sqlite_sync_off", |bch| {
        bch.iter_batched(
            || ban(next()),
            |b| unsynced.record_ban(black_box(&b)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.finish();

    let mut g = c.benchmark_group("store_batch_100_bans");
    g.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(100));
    let batch = |next: &mut dyn FnMut() -> u32| (0..100).map(|_| ban(next())).collect::<Vec<_>>();
    g.bench_function("record_bans_durable", |bch| {
        bch.iter_batched(
            || batch(&mut next),
            |v| durable.record_bans(black_box(&v)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("baseline_fsync_append", |bch| {
        bch.iter_batched(
            || batch(&mut next).iter().flat_map(ban_bytes).collect::<Vec<u8>>(),
            |bytes| {
                log.write_all(&bytes).unwrap();
                log.sync_all().unwrap();
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("baseline_sqlite_sync_off", |bch| {
        bch.iter_batched(
            || batch(&mut next),
            |v| unsynced.record_bans(black_box(&v)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// Interleaved measurement: criterion runs one benchmark after the other, so a change in the
/// machine's load (2 shared cores) between them skews their ratio. Here every round times the
/// three variants back to back, in rotating order, and the ratios are of the medians.
fn paired_ratios() {
    use std::time::Instant;
    let dir = tempfile::tempdir().unwrap();
    let mut durable = Store::open(dir.path().join("durable.db")).unwrap();
    let mut unsynced = Store::open(dir.path().join("off.db")).unwrap();
    unsynced.set_synchronous_off_for_benchmarks().unwrap();
    let mut log =
        OpenOptions::new().create(true).append(true).open(dir.path().join("append.log")).unwrap();
    let mut n = 1_000_000u32;
    for (label, per, rounds) in [("single ban", 1u32, 150usize), ("batch of 100", 100, 40)] {
        let mut t = [Vec::new(), Vec::new(), Vec::new()];
        for round in 0..rounds {
            for k in 0..3 {
                let which = (round + k) % 3;
                let bans: Vec<Ban> = (0..per)
                    .map(|_| {
                        n += 1;
                        ban(n)
                    })
                    .collect();
                let bytes: Vec<u8> = bans.iter().flat_map(ban_bytes).collect();
                let start = Instant::now();
                match which {
                    0 if per == 1 => durable.record_ban(&bans[0]).unwrap(),
                    0 => durable.record_bans(&bans).unwrap(),
                    1 => {
                        log.write_all(&bytes).unwrap();
                        log.sync_all().unwrap();
                    }
                    _ => unsynced.record_bans(&bans).unwrap(),
                }
                t[which].push(start.elapsed());
            }
        }
        let med = |v: &mut Vec<Duration>| {
            v.sort();
            v[v.len() / 2]
        };
        let [a, b, c] = &mut t;
        let (a, b, c) = (med(a), med(b), med(c));
        println!(
            "paired {label} ({rounds} rounds, medians): durable store {a:?}, fsync-append {b:?}, \
             sqlite sync=OFF {c:?}; store/fsync-append = {:.2}x, store/sync-off = {:.2}x",
            a.as_secs_f64() / b.as_secs_f64(),
            a.as_secs_f64() / c.as_secs_f64()
        );
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // `cargo test --benches` runs this binary without --bench: keep that run short.
    if std::env::args().any(|a| a == "--bench") {
        paired_ratios();
    }
}
