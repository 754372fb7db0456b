//! Parse + extract every field, sipwall-sip side by side with rsip 0.4 in the same run.
//!
//! `cargo bench -p sipwall-sip --bench parse` (results: docs/BENCHMARKS.md, "SIP parser").
//! Each message is parsed from its bytes and then every field the firewall reads is extracted
//! (sipwall: `exercise::every_field`, i.e. every accessor; rsip: the same fields through its
//! typed headers). rsip runs only on the messages it understands: it rejects bare-LF messages
//! and does not recognise compact header names, which the bench reports at start.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, Throughput};
use sipwall_sip::exercise::every_field;
use sipwall_sip::Message;

fn fixture(rel: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The corpus: (name, bytes).
fn corpus() -> Vec<(&'static str, Vec<u8>)> {
    let invite = fixture("phone/invite-600.sip");
    let bare_lf = String::from_utf8(invite.clone()).unwrap().replace("\r\n", "\n").into_bytes();
    vec![
        ("invite_600B_sdp", invite),
        ("invite_1250B_video_sdp", fixture("phone/yealink-invite.sip")),
        ("register_auth", fixture("phone/yealink-register-auth.sip")),
        ("ok_200_sdp", fixture("sipp/uas-200-invite.sip")),
        ("unauthorized_401", fixture("response/401-listener.sip")),
        ("svmap_options", fixture("scanner/svmap-options.sip")),
        ("svwar_invite", fixture("scanner/svwar-invite-ext100.sip")),
        ("svcrack_register_auth", fixture("scanner/svcrack-register-auth.sip")),
        ("compact_svmap_options", fixture("scanner/svmap-c-options.sip")),
        ("compact_svcrack_auth", fixture("scanner/svcrack-c-register-auth.sip")),
        ("bare_lf_invite_600B", bare_lf),
    ]
}

#[path = "common/rsip_fields.rs"]
mod rsip_fields;
use rsip_fields::rsip_extract;

fn sipwall_extract(raw: &[u8]) -> usize {
    match Message::parse(raw) {
        Ok(m) => every_field(&m),
        Err(_) => 0,
    }
}

/// Parse only: sipwall indexes the headers; rsip splits them into owned untyped headers.
fn parse_only(c: &mut Criterion) {
    let raw = fixture("phone/invite-600.sip");
    let mut g = c.benchmark_group("invite_600B_sdp_parse_only");
    g.throughput(Throughput::Elements(1));
    g.bench_function("sipwall", |b| {
        b.iter(|| Message::parse(black_box(&raw)).map(|m| m.header_count()).unwrap_or(0))
    });
    g.bench_function("rsip", |b| {
        b.iter(|| {
            rsip::SipMessage::try_from(black_box(&raw[..])).map(|m| m.body().len()).unwrap_or(0)
        })
    });
    g.finish();
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Interleaved rounds (sipwall batch, rsip batch, repeat) so both see the same machine load:
/// the ratio of the medians is the figure to quote on a busy machine.
fn paired() {
    const ROUNDS: usize = 25;
    const BATCH: usize = 2_000;
    let time = |f: &dyn Fn() -> usize| {
        let t = Instant::now();
        for _ in 0..BATCH {
            black_box(f());
        }
        t.elapsed().as_nanos() as f64 / BATCH as f64
    };
    let mut cases: Vec<(String, Vec<u8>)> =
        corpus().into_iter().map(|(n, r)| (n.to_string(), r)).collect();
    cases.insert(1, ("invite_600B_sdp_parse_only".into(), fixture("phone/invite-600.sip")));
    for (name, raw) in cases {
        let parse_only = name.ends_with("parse_only");
        let ours = || {
            if parse_only {
                Message::parse(black_box(&raw)).map(|m| m.header_count()).unwrap_or(0)
            } else {
                sipwall_extract(black_box(&raw))
            }
        };
        let theirs = || {
            if parse_only {
                rsip::SipMessage::try_from(black_box(&raw[..])).map(|m| m.body().len()).unwrap_or(0)
            } else {
                rsip_extract(black_box(&raw)).unwrap_or(0)
            }
        };
        let rsip_ok = rsip_extract(&raw).is_some();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            a.push(time(&ours));
            if rsip_ok {
                b.push(time(&theirs));
            }
        }
        let ma = median(&mut a);
        if rsip_ok {
            let mb = median(&mut b);
            println!(
                "paired {name}: sipwall {ma:.0} ns ({:.2} M msg/s), rsip {mb:.0} ns ({:.3} M msg/s), ratio {:.2}x",
                1e3 / ma,
                1e3 / mb,
                mb / ma
            );
        } else {
            println!("paired {name}: sipwall {ma:.0} ns ({:.2} M msg/s), rsip n/a", 1e3 / ma);
        }
    }
}

fn bench(c: &mut Criterion) {
    for (name, raw) in corpus() {
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Elements(1));
        assert!(Message::parse(&raw).is_ok(), "sipwall must parse {name}");
        g.bench_function("sipwall", |b| b.iter(|| sipwall_extract(black_box(&raw))));
        if rsip_extract(&raw).is_some() {
            g.bench_function("rsip", |b| b.iter(|| rsip_extract(black_box(&raw))));
        } else {
            eprintln!("{name}: rsip cannot parse or understand it (sipwall only)");
        }
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    targets = bench, parse_only
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // Skipped when cargo test runs the bench target in test mode.
    if !std::env::args().any(|a| a == "--test") {
        paired();
    }
}
