//! Recent decisions: round trip, order, limit, bounded retention.
mod common;

use std::net::SocketAddr;

use common::*;
use sipwall_engine::{DecisionRecord, Evidence, Verdict};
use sipwall_store::{Prune, Store};

fn record(rule: &'static str, tag: &str) -> DecisionRecord {
    DecisionRecord {
        rule,
        evidence: full_evidence(tag),
        summary: format!("{tag} sent an OPTIONS with User-Agent 'friendly-scanner'"),
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn decisions_round_trip_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let r1 = record("signature.sipvicious-ua", "a");
    let r2 = DecisionRecord { evidence: Evidence::default(), ..record("policy.ip-uri", "b") };
    let r3 = record("behaviour.enumeration", "c");
    let ids = {
        let mut store = Store::open(&path).unwrap();
        vec![
            store.record_decision(t(NOW_MS), addr("192.0.2.1:5060"), Verdict::Drop, &r1).unwrap(),
            store
                .record_decision(
                    t(NOW_MS + 1),
                    addr("[2001:db8::1]:5061"),
                    Verdict::Reject(403),
                    &r2,
                )
                .unwrap(),
            store
                .record_decision(t(NOW_MS + 2), addr("198.51.100.9:1"), Verdict::Accept, &r3)
                .unwrap(),
        ]
    };
    assert!(ids[0] < ids[1] && ids[1] < ids[2]);
    let store = Store::open(&path).unwrap();
    let got = store.recent_decisions(10).unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].id, ids[2]);
    assert_eq!(got[0].verdict, Verdict::Accept);
    assert_eq!(got[0].src, addr("198.51.100.9:1"));
    assert_eq!(got[0].rule, "behaviour.enumeration");
    assert_eq!(got[0].evidence, r3.evidence);
    assert_eq!(got[1].verdict, Verdict::Reject(403));
    assert_eq!(got[1].src, addr("[2001:db8::1]:5061"));
    assert_eq!(got[1].evidence, Evidence::default());
    assert_eq!(got[1].at, t(NOW_MS + 1));
    assert_eq!(got[2].summary, r1.summary);
    assert_eq!(got[2].evidence, r1.evidence);
    assert_eq!(store.recent_decisions(1).unwrap().len(), 1);
    assert!(store.recent_decisions(0).unwrap().is_empty());
}

#[test]
fn batch_of_decisions_and_keep_last_retention() {
    let mut store = Store::open_in_memory().unwrap();
    let recs: Vec<DecisionRecord> = (0..50).map(|i| record("r", &i.to_string())).collect();
    let n = store
        .record_decisions(
            recs.iter()
                .enumerate()
                .map(|(i, r)| (t(NOW_MS + i as u64), addr("192.0.2.1:5060"), Verdict::Drop, r)),
        )
        .unwrap();
    assert_eq!(n, 50);
    let none: Vec<(_, _, _, &DecisionRecord)> = Vec::new();
    assert_eq!(store.record_decisions(none).unwrap(), 0, "empty batch is a no-op");
    assert_eq!(store.prune_decisions(Prune::KeepLast(10)).unwrap(), 40);
    let left = store.recent_decisions(100).unwrap();
    assert_eq!(left.len(), 10);
    assert_eq!(left[0].summary, recs[49].summary, "the newest are kept");
    assert_eq!(left[9].summary, recs[40].summary);
    assert_eq!(store.prune_decisions(Prune::KeepLast(10)).unwrap(), 0);
    assert_eq!(store.prune_decisions(Prune::KeepLast(0)).unwrap(), 10);
    assert!(store.recent_decisions(100).unwrap().is_empty());
    assert_eq!(store.prune_decisions(Prune::KeepLast(0)).unwrap(), 0, "empty table");
}

#[test]
fn older_than_retention_is_by_decision_time() {
    let mut store = Store::open_in_memory().unwrap();
    let r = record("r", "x");
    for i in 0..10u64 {
        store
            .record_decision(t(NOW_MS + i * 1000), addr("192.0.2.1:5060"), Verdict::Drop, &r)
            .unwrap();
    }
    assert_eq!(store.prune_decisions(Prune::OlderThan(t(NOW_MS + 3000))).unwrap(), 3);
    let left = store.recent_decisions(100).unwrap();
    assert_eq!(left.len(), 7);
    assert_eq!(left.last().unwrap().at, t(NOW_MS + 3000), "strictly older only");
}

#[test]
fn the_decision_cap_bounds_the_table_without_help() {
    let mut store = Store::open_in_memory().unwrap();
    store.set_decision_cap(Some(150)); // checked every max(150/100, 100) = 100 inserts
    let r = record("r", "x");
    for i in 0..1000u64 {
        store.record_decision(t(NOW_MS + i), addr("192.0.2.1:5060"), Verdict::Drop, &r).unwrap();
        if i % 25 == 24 {
            let n = store.recent_decisions(251).unwrap().len();
            assert!(n <= 250, "after {} decisions {n} kept", i + 1);
        }
    }
    let kept = store.recent_decisions(10_000).unwrap();
    assert_eq!(kept.len(), 150, "1000 is a multiple of 100: just pruned to the cap");
    assert_eq!(kept[0].at, t(NOW_MS + 999), "the newest are kept");

    // Batches count too; None turns the bound off.
    store.set_decision_cap(None);
    let recs: Vec<_> = (0..300)
        .map(|i| (t(NOW_MS + 2000 + i), addr("192.0.2.2:5060"), Verdict::Drop, &r))
        .collect();
    store.record_decisions(recs).unwrap();
    assert_eq!(store.recent_decisions(10_000).unwrap().len(), 450);
    store.set_decision_cap(Some(200));
    let recs: Vec<_> = (0..100)
        .map(|i| (t(NOW_MS + 3000 + i), addr("192.0.2.3:5060"), Verdict::Drop, &r))
        .collect();
    store.record_decisions(recs).unwrap();
    assert_eq!(store.recent_decisions(10_000).unwrap().len(), 200);
}
