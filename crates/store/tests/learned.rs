//! Learned facts and shield templates: written, refreshed, pinned, forgotten, and read back
//! after the store is reopened (a restart), on a file first created at schema version 1.
use std::net::IpAddr;

use sipwall_engine::Timestamp;
use sipwall_store::{LearnedFact, Store, MAX_SHIELD_TEMPLATE, SCHEMA_VERSION};

fn fact(kind: &str, key: &str, first: u64, last: u64, evidence: &str) -> LearnedFact {
    LearnedFact {
        kind: kind.into(),
        key: key.into(),
        first_seen: Timestamp::from_millis(first),
        last_seen: Timestamp::from_millis(last),
        evidence: evidence.into(),
        pinned: false,
    }
}

#[test]
fn learned_facts_survive_reopening_and_keep_first_seen_and_pins() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sipwall.db");
    {
        let mut s = Store::open(&path).unwrap();
        s.record_learned(&fact("upstream", "198.51.100.2:5060", 1000, 1000, "REGISTER 200"))
            .unwrap();
        s.record_learned(&fact("user", "100", 2000, 2000, "REGISTER 200 for 100")).unwrap();
        // Seen again: last seen and evidence move, first seen stays.
        s.record_learned(&fact("upstream", "198.51.100.2:5060", 5000, 5000, "INVITE 200")).unwrap();
        // An older refresh never moves last seen back.
        s.record_learned(&fact("upstream", "198.51.100.2:5060", 100, 3000, "late")).unwrap();
        assert!(s.pin_learned("user", "100", true).unwrap());
        assert!(!s.pin_learned("user", "999", true).unwrap());
        s.record_learned(&fact("known_good", "203.0.113.7", 7000, 7000, "digest 200")).unwrap();
        assert!(s.forget_learned("known_good", "203.0.113.7").unwrap());
        assert!(!s.forget_learned("known_good", "203.0.113.7").unwrap());
    }
    let s = Store::open(&path).unwrap();
    let got = s.load_learned().unwrap();
    assert_eq!(got.len(), 2, "{got:?}");
    let up = &got[0];
    assert_eq!((up.kind.as_str(), up.key.as_str()), ("upstream", "198.51.100.2:5060"));
    assert_eq!(up.first_seen, Timestamp::from_millis(1000));
    assert_eq!(up.last_seen, Timestamp::from_millis(5000));
    assert_eq!(up.evidence, "late");
    assert!(got[1].pinned && got[1].key == "100");
    // A refresh of a pinned fact keeps the pin.
    let mut s = s;
    s.record_learned(&fact("user", "100", 9000, 9000, "again")).unwrap();
    assert!(s.load_learned().unwrap()[1].pinned);
}

#[test]
fn shield_templates_are_replaced_per_host_and_method_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sipwall.db");
    let host: IpAddr = "::".parse().unwrap();
    {
        let mut s = Store::open(&path).unwrap();
        let t = Timestamp::from_millis(1);
        s.save_shield_template(host, "REGISTER", b"SIP/2.0 401 one\r\n\r\n", t).unwrap();
        s.save_shield_template(host, "REGISTER", b"SIP/2.0 401 two\r\n\r\n", t).unwrap();
        s.save_shield_template(host, "INVITE", b"SIP/2.0 407 x\r\n\r\n", t).unwrap();
        let huge = vec![b'x'; MAX_SHIELD_TEMPLATE + 1];
        assert!(s.save_shield_template(host, "OPTIONS", &huge, t).is_err());
    }
    let s = Store::open(&path).unwrap();
    let mut got = s.load_shield_templates().unwrap();
    got.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(got.len(), 2);
    assert_eq!(got[0], (host, "INVITE".to_string(), b"SIP/2.0 407 x\r\n\r\n".to_vec()));
    assert_eq!(got[1].2, b"SIP/2.0 401 two\r\n\r\n");
}

#[test]
fn a_version_1_store_is_migrated_to_the_learned_tables() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sipwall.db");
    {
        let s = Store::open(&path).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    }
    // Make it look like a version-1 file: drop the v2 and v3 tables, set the version back.
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "DROP TABLE learned; DROP TABLE shield_templates; DROP TABLE trusted;\n             UPDATE schema_version SET version = 1;",
        )
        .unwrap();
    }
    let mut s = Store::open(&path).unwrap();
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    s.record_learned(&fact("user", "101", 1, 1, "x")).unwrap();
    assert_eq!(s.load_learned().unwrap().len(), 1);
}

#[test]
fn replacing_the_learned_facts_is_all_or_nothing_and_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sipwall.db");
    let mut s = Store::open(&path).unwrap();
    s.record_learned(&fact("user", "100", 1, 1, "a")).unwrap();
    s.record_learned(&fact("user", "101", 1, 1, "b")).unwrap();
    let now = [fact("upstream", "198.51.100.2", 5, 6, "c"), fact("user", "101", 1, 7, "d")];
    assert_eq!(s.replace_learned(&now).unwrap(), 0);
    drop(s);
    let s = Store::open(&path).unwrap();
    assert_eq!(s.load_learned().unwrap(), now.to_vec());
}
