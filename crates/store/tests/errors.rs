//! Failures a person must be able to act on: corrupt, foreign, locked, too-new, unreadable rows.
mod common;

use std::io::{Seek, SeekFrom, Write};
use std::time::{Duration, Instant};

use common::*;
use sipwall_store::{DbError, Store, StoreError, SCHEMA_VERSION};

#[test]
fn a_file_that_is_not_a_database_is_reported_as_corrupt_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not-a-db.db");
    std::fs::write(&path, vec![0x5a; 8192]).unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(err.is_corrupt(), "{err:?}");
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    assert_eq!(err.path(), path);
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("corrupt or is not a SQLite database"), "{msg}");
}

#[test]
fn a_damaged_page_is_caught_by_the_check_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let mut store = Store::open(&path).unwrap();
        let bans: Vec<_> = (0..400u32)
            .map(|i| ban(&format!("2001:db8::{i:x}/128"), 1, NOW_MS, NOW_MS + 1000))
            .collect();
        store.record_bans(&bans).unwrap();
    } // last connection closed: WAL checkpointed into the main file
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(len > 16 * 4096, "database has many pages ({len} bytes)");
    // Scribble over the middle pages (not the header page), as a failing disk would.
    let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.seek(SeekFrom::Start(len / 2)).unwrap();
    f.write_all(&vec![0xa5; 3 * 4096]).unwrap();
    f.sync_all().unwrap();
    drop(f);
    let err = Store::open(&path).unwrap_err();
    assert!(err.is_corrupt(), "{err}");
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
}

#[test]
fn a_writer_blocked_by_another_connection_fails_with_locked_naming_path_and_net() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let mut store = Store::open(&path).unwrap();
    store.set_busy_timeout(Duration::from_millis(200)).unwrap();

    // Another connection (as another process would) holds the write lock.
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();

    let b = ban("192.0.2.44/32", 1, NOW_MS, NOW_MS + 1000);
    let started = Instant::now();
    let err = store.record_ban(&b).unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(150), "waited the busy timeout");
    assert!(err.is_locked(), "{err:?}");
    assert!(matches!(err, StoreError::RecordBan { .. }));
    let msg = err.to_string();
    assert!(msg.contains("192.0.2.44/32"), "{msg}");
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("locked"), "{msg}");

    // Readers are not blocked by the writer's lock (WAL), and once released the write works.
    assert!(store.load_active_bans(t(NOW_MS)).unwrap().is_empty());
    other.execute_batch("ROLLBACK").unwrap();
    store.record_ban(&b).unwrap();
    assert_eq!(store.load_active_bans(t(NOW_MS)).unwrap(), vec![b]);
}

#[test]
fn a_schema_newer_than_this_build_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    drop(Store::open(&path).unwrap());
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute("UPDATE schema_version SET version = ?1", [SCHEMA_VERSION + 1]).unwrap();
    drop(c);
    let err = Store::open(&path).unwrap_err();
    match &err {
        StoreError::SchemaTooNew { found, supported, .. } => {
            assert_eq!((*found, *supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    assert!(err.to_string().contains(&path.display().to_string()));
}

#[test]
fn a_missing_directory_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("state.db");
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    assert!(!err.is_corrupt() && !err.is_locked());
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
}

#[test]
fn an_undecodable_row_names_table_and_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let mut store = Store::open(&path).unwrap();
    store.record_ban(&ban("192.0.2.1/32", 1, NOW_MS, NOW_MS + 1000)).unwrap();
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute("UPDATE bans SET origin = 'martian'", []).unwrap();
    let err = store.load_active_bans(t(NOW_MS)).unwrap_err();
    match err.cause() {
        Some(DbError::Decode { table, detail, .. }) => {
            assert_eq!(*table, "bans");
            assert!(detail.contains("martian"), "{detail}");
        }
        other => panic!("expected a decode error, got {other:?}"),
    }
    assert!(err.to_string().contains("active bans"), "{err}");
}

#[test]
fn reopening_an_up_to_date_store_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    for _ in 0..3 {
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    }
    let c = rusqlite::Connection::open(&path).unwrap();
    let rows: i64 = c.query_row("SELECT COUNT(*) FROM schema_version", [], |r| r.get(0)).unwrap();
    assert_eq!(rows, 1);
    let mode: String = c.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal", "the file stays in WAL mode");
}

#[test]
fn opening_an_existing_store_needs_no_write_lock() {
    // A second process (e.g. a CLI listing bans) can open the store while the daemon is in the
    // middle of a write: opening an up-to-date file only reads.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let mut daemon = Store::open(&path).unwrap();
    daemon.record_ban(&ban("192.0.2.8/32", 1, NOW_MS, NOW_MS + 1000)).unwrap();
    let writer = rusqlite::Connection::open(&path).unwrap();
    writer.execute_batch("BEGIN IMMEDIATE").unwrap();
    let started = Instant::now();
    let cli = Store::open(&path).unwrap();
    assert!(started.elapsed() < Duration::from_secs(2), "open did not wait for the lock");
    assert_eq!(cli.load_active_bans(t(NOW_MS)).unwrap().len(), 1);
    writer.execute_batch("ROLLBACK").unwrap();
}
