//! `Store::open_read_only`: what `sipwall bans` / `decisions` use without the daemon. It must
//! never create, migrate or change a file, must say which path is missing, and must read
//! beside a writer in WAL mode.
mod common;

use common::*;
use sipwall_engine::{DecisionRecord, Evidence, Verdict};
use sipwall_store::{Store, StoreError, SCHEMA_VERSION};

fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_missing_store_is_an_error_naming_the_path_and_nothing_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sipwall.db");
    let err = Store::open_read_only(&path).unwrap_err();
    assert!(matches!(err, StoreError::Missing { .. }), "{err:?}");
    assert_eq!(err.path(), path);
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("no store there") && msg.contains("No such file"), "{msg}");
    assert!(files_in(dir.path()).is_empty(), "created {:?}", files_in(dir.path()));
    // a directory in its place is not a store either
    std::fs::create_dir(&path).unwrap();
    let msg = Store::open_read_only(&path).unwrap_err().to_string();
    assert!(msg.contains("not a regular file"), "{msg}");
}

#[test]
fn writes_through_a_read_only_store_fail_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sipwall.db");
    let first = ban("192.0.2.7/32", 1, NOW_MS, NOW_MS + 60_000);
    Store::open(&path).unwrap().record_ban(&first).unwrap(); // closed: WAL checkpointed
    let mut ro = Store::open_read_only(&path).unwrap();
    assert_eq!(ro.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(ro.load_active_bans(t(NOW_MS)).unwrap(), vec![first.clone()]);

    let second = ban("192.0.2.8/32", 1, NOW_MS, NOW_MS + 60_000);
    let err = ro.record_ban(&second).unwrap_err();
    assert!(matches!(err, StoreError::RecordBan { .. }), "{err:?}");
    assert!(err.to_string().contains("readonly"), "{err}");
    assert!(ro.remove_ban(first.net).unwrap_err().to_string().contains("readonly"));
    assert!(ro.purge_expired(t(NOW_MS + 120_000)).is_err());
    let rec = DecisionRecord {
        rule: "signature.sipvicious-ua",
        evidence: Evidence::default(),
        summary: "x".into(),
    };
    assert!(ro
        .record_decision(t(NOW_MS), "192.0.2.1:5060".parse().unwrap(), Verdict::Drop, &rec)
        .is_err());
    drop(ro);
    // The file holds exactly what it held before.
    let rw = Store::open(&path).unwrap();
    assert_eq!(rw.load_active_bans(t(NOW_MS)).unwrap(), vec![first]);
    assert!(rw.recent_decisions(10).unwrap().is_empty());
}

#[test]
fn a_read_only_open_never_migrates() {
    let dir = tempfile::tempdir().unwrap();
    // An empty SQLite file (no sipwall schema): refused as version 0, and left without one.
    let path = dir.path().join("empty.db");
    rusqlite::Connection::open(&path).unwrap().execute_batch("CREATE TABLE t (x);").unwrap();
    let err = Store::open_read_only(&path).unwrap_err();
    assert!(
        matches!(err, StoreError::SchemaTooOld { found: 0, supported, .. } if supported == SCHEMA_VERSION),
        "{err:?}"
    );
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
    let tables: Vec<String> = rusqlite::Connection::open(&path)
        .unwrap()
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(tables, vec!["t".to_string()], "the read-only open changed the schema");
    // A file of a newer sipwall.
    let newer = dir.path().join("newer.db");
    drop(Store::open(&newer).unwrap());
    rusqlite::Connection::open(&newer)
        .unwrap()
        .execute("UPDATE schema_version SET version = ?1", [SCHEMA_VERSION + 1])
        .unwrap();
    assert!(matches!(
        Store::open_read_only(&newer).unwrap_err(),
        StoreError::SchemaTooNew { found, .. } if found == SCHEMA_VERSION + 1
    ));
    // A foreign file.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![0x5a; 8192]).unwrap();
    let err = Store::open_read_only(&junk).unwrap_err();
    assert!(err.is_corrupt(), "{err:?}");
}

#[test]
fn reads_beside_a_writer_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sipwall.db");
    let mut writer = Store::open(&path).unwrap();
    let a = ban("192.0.2.1/32", 1, NOW_MS, NOW_MS + 60_000);
    writer.record_ban(&a).unwrap();
    // The writer's connection stays open (the daemon's does): the -wal file is live.
    assert!(dir.path().join("sipwall.db-wal").exists());
    let reader = Store::open_read_only(&path).unwrap();
    assert_eq!(reader.load_active_bans(t(NOW_MS)).unwrap(), vec![a.clone()]);

    // A write transaction held open by another connection neither blocks the reader nor is
    // seen by it before it commits.
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute_batch(
        "BEGIN IMMEDIATE; UPDATE bans SET reason = 'uncommitted' WHERE net = '192.0.2.1/32';",
    )
    .unwrap();
    let t0 = std::time::Instant::now();
    assert_eq!(reader.load_active_bans(t(NOW_MS)).unwrap()[0].reason, a.reason);
    assert!(t0.elapsed() < std::time::Duration::from_secs(1), "reader waited for the writer");
    raw.execute_batch("ROLLBACK;").unwrap();

    // Commits made after the reader opened are seen by its next read.
    let b = ban("192.0.2.2/32", 2, NOW_MS, NOW_MS + 60_000);
    writer.record_ban(&b).unwrap();
    assert_eq!(reader.load_active_bans(t(NOW_MS)).unwrap(), vec![a, b]);
    // And the reader does not stop the writer.
    writer.remove_ban(net("192.0.2.1/32")).unwrap();
    assert_eq!(reader.load_active_bans(t(NOW_MS)).unwrap().len(), 1);
}
