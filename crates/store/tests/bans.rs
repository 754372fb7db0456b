//! Bans: round trip of every field, upsert and escalation, expiry, persistence across reopen.
mod common;

use common::*;
use sipwall_engine::{Ban, BanOrigin, Evidence, Timestamp};
use sipwall_store::{Offence, Store};

fn origins() -> [BanOrigin; 4] {
    [BanOrigin::Detection, BanOrigin::Manual, BanOrigin::Aggregate, BanOrigin::Restored]
}

/// Bans over IPv4/IPv6 addresses and ranges, every origin, empty and full evidence.
fn varied_bans() -> Vec<Ban> {
    let nets = [
        "192.0.2.7/32",
        "2001:db8::5/128",
        "198.51.100.0/24",
        "2001:db8:1::/48",
        "203.0.113.128/25",
        "0.0.0.0/0",
        "::/0",
    ];
    nets.iter()
        .enumerate()
        .map(|(i, n)| {
            let mut b = ban(n, i as u32 + 1, NOW_MS - 1000 * i as u64, NOW_MS + 60_000 + i as u64);
            b.origin = origins()[i % 4];
            if i % 3 == 2 {
                b.evidence = Evidence::default();
                b.reason = String::new();
            }
            b
        })
        .collect()
}

#[test]
fn every_field_round_trips_through_a_file_and_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let bans = varied_bans();
    {
        let mut store = Store::open(&path).unwrap();
        for b in &bans {
            store.record_ban(b).unwrap();
        }
        for b in &bans {
            assert_eq!(store.get_ban(b.net).unwrap().as_ref(), Some(b), "before reopen");
        }
    }
    let store = Store::open(&path).unwrap();
    let mut expected = bans.clone();
    expected.sort_by_key(|b| b.net.to_string());
    assert_eq!(store.load_active_bans(t(NOW_MS)).unwrap(), expected);
    for b in &bans {
        assert_eq!(store.get_ban(b.net).unwrap().as_ref(), Some(b), "after reopen");
        assert_eq!(store.ban_history(b.net).unwrap(), vec![b.clone()]);
        assert_eq!(store.offence_count(b.net).unwrap(), b.count);
    }
}

#[test]
fn batch_round_trips_and_is_all_or_nothing_visible() {
    let mut store = Store::open_in_memory().unwrap();
    let bans = varied_bans();
    store.record_bans(&bans).unwrap();
    assert_eq!(store.load_active_bans(t(NOW_MS)).unwrap().len(), bans.len());
    store.record_bans(&[]).unwrap();
    assert_eq!(store.load_active_bans(t(NOW_MS)).unwrap().len(), bans.len());
}

#[test]
fn extreme_timestamps_round_trip_or_saturate() {
    let mut store = Store::open_in_memory().unwrap();
    let mut b = ban("192.0.2.1/32", 1, 0, i64::MAX as u64);
    store.record_ban(&b).unwrap();
    assert_eq!(store.get_ban(b.net).unwrap(), Some(b.clone()));
    // A "forever" ban beyond i64 milliseconds saturates instead of wrapping into the past.
    b.until = Timestamp(std::time::Duration::MAX);
    store.record_ban(&b).unwrap();
    let got = store.get_ban(b.net).unwrap().unwrap();
    assert_eq!(got.until, Timestamp::from_millis(i64::MAX as u64));
    assert_eq!(store.load_active_bans(t(u64::MAX / 4)).unwrap().len(), 1);
}

#[test]
fn networks_are_normalised_so_host_bits_do_not_split_a_range() {
    let mut store = Store::open_in_memory().unwrap();
    store.record_ban(&ban("198.51.100.77/24", 1, NOW_MS, NOW_MS + 1000)).unwrap();
    let got =
        store.get_ban(net("198.51.100.1/24")).unwrap().expect("found by any host of the range");
    assert_eq!(got.net, net("198.51.100.0/24"));
    store.record_ban(&ban("198.51.100.0/24", 2, NOW_MS, NOW_MS + 2000)).unwrap();
    assert_eq!(store.load_active_bans(t(NOW_MS)).unwrap().len(), 1, "one row per range");
    assert!(store.remove_ban(net("198.51.100.200/24")).unwrap());
    assert!(store.load_active_bans(t(NOW_MS)).unwrap().is_empty());
}

#[test]
fn upsert_replaces_fields_but_escalation_count_never_decreases() {
    let mut store = Store::open_in_memory().unwrap();
    let n = "192.0.2.9/32";
    let first = ban(n, 1, NOW_MS, NOW_MS + 60_000);
    store.record_ban(&first).unwrap();

    let mut second = ban(n, 2, NOW_MS + 70_000, NOW_MS + 700_000);
    second.reason = "second offence: 40 users probed".into();
    second.rule = "behaviour.enumeration".into();
    second.evidence.users_probed = (0..40).map(|i| i.to_string()).collect();
    store.record_ban(&second).unwrap();
    assert_eq!(store.get_ban(net(n)).unwrap(), Some(second.clone()));

    // A restored ban from a peer that only saw the first offence.
    let mut restored = ban(n, 1, NOW_MS + 80_000, NOW_MS + 90_000);
    restored.origin = BanOrigin::Restored;
    store.record_ban(&restored).unwrap();
    let got = store.get_ban(net(n)).unwrap().unwrap();
    assert_eq!(got.count, 2, "count kept at the highest escalation");
    assert_eq!(got.origin, BanOrigin::Restored);
    assert_eq!(got.until, restored.until, "until replaced (an operator may shorten a ban)");

    let history = store.ban_history(net(n)).unwrap();
    assert_eq!(history, vec![first, second, restored], "history keeps every record, in order");
    assert_eq!(store.offence_count(net(n)).unwrap(), 2);
}

#[test]
fn escalation_survives_expiry_purge_unban_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let n = "2001:db8::66/128";
    {
        let mut store = Store::open(&path).unwrap();
        store.record_ban(&ban(n, 1, NOW_MS, NOW_MS + 10)).unwrap();
        store.record_ban(&ban(n, 3, NOW_MS + 20, NOW_MS + 30)).unwrap();
        assert_eq!(store.purge_expired(t(NOW_MS + 30)).unwrap(), 1);
        assert!(!store.remove_ban(net(n)).unwrap(), "already purged");
    }
    let mut store = Store::open(&path).unwrap();
    assert!(store.get_ban(net(n)).unwrap().is_none());
    assert_eq!(store.offence_count(net(n)).unwrap(), 3);
    assert_eq!(
        store.load_offences().unwrap(),
        vec![Offence { net: net(n), count: 3, last_until: t(NOW_MS + 30) }]
    );
    assert_eq!(store.offence_count(net("2001:db8::67/128")).unwrap(), 0, "never banned");

    // Pruning before the last ban's end keeps it; after, forgets it.
    assert_eq!(store.prune_history(t(NOW_MS + 11)).unwrap(), 1, "only the first history row");
    assert_eq!(store.offence_count(net(n)).unwrap(), 3);
    assert_eq!(store.prune_history(t(NOW_MS + 31)).unwrap(), 1);
    assert_eq!(store.offence_count(net(n)).unwrap(), 0);
    assert!(store.load_offences().unwrap().is_empty());
    assert!(store.ban_history(net(n)).unwrap().is_empty());
}

#[test]
fn expiry_is_exclusive_at_until_and_purge_removes_only_expired() {
    let mut store = Store::open_in_memory().unwrap();
    store.record_ban(&ban("192.0.2.1/32", 1, NOW_MS - 10, NOW_MS)).unwrap(); // ends now
    store.record_ban(&ban("192.0.2.2/32", 1, NOW_MS - 10, NOW_MS + 1)).unwrap();
    store.record_ban(&ban("192.0.2.3/32", 1, NOW_MS - 10, NOW_MS - 5)).unwrap();
    let active: Vec<_> =
        store.load_active_bans(t(NOW_MS)).unwrap().into_iter().map(|b| b.net).collect();
    assert_eq!(active, vec![net("192.0.2.2/32")]);
    // Before any of them ended all three are active.
    assert_eq!(store.load_active_bans(t(NOW_MS - 6)).unwrap().len(), 3);
    assert_eq!(store.purge_expired(t(NOW_MS)).unwrap(), 2);
    assert!(store.get_ban(net("192.0.2.1/32")).unwrap().is_none());
    assert!(store.get_ban(net("192.0.2.2/32")).unwrap().is_some());
    assert_eq!(store.purge_expired(t(NOW_MS)).unwrap(), 0);
}

#[test]
fn remove_ban_reports_whether_it_existed() {
    let mut store = Store::open_in_memory().unwrap();
    store.record_ban(&ban("203.0.113.5/32", 1, NOW_MS, NOW_MS + 1000)).unwrap();
    assert!(store.remove_ban(net("203.0.113.5/32")).unwrap());
    assert!(!store.remove_ban(net("203.0.113.5/32")).unwrap());
    assert!(store.load_active_bans(t(NOW_MS)).unwrap().is_empty());
    assert_eq!(store.offence_count(net("203.0.113.5/32")).unwrap(), 1, "unban keeps the count");
}

#[test]
fn one_writer_many_readers_see_each_commit() {
    // Concurrency contract: a Store is Send (own it in one writer thread); other handles,
    // even in other processes, read committed data without blocking the writer (WAL).
    fn assert_send<T: Send>() {}
    assert_send::<Store>();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let mut writer = Store::open(&path).unwrap();
    let reader = Store::open(&path).unwrap();
    let handle = std::thread::spawn(move || {
        for i in 0..20u64 {
            writer.record_ban(&ban(&format!("192.0.2.{i}/32"), 1, NOW_MS, NOW_MS + 1000)).unwrap();
        }
        writer
    });
    let writer = handle.join().unwrap();
    assert_eq!(reader.load_active_bans(t(NOW_MS)).unwrap().len(), 20);
    assert_eq!(writer.schema_version().unwrap(), sipwall_store::SCHEMA_VERSION);
}
