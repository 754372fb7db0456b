//! Schema and migrations.
//!
//! `schema_version` holds one row: the number of entries of [`MIGRATIONS`] applied. Opening a
//! store applies the missing ones in order, each in its own IMMEDIATE transaction together with
//! the version bump, so a crash mid-migration leaves the previous version intact. To change the
//! schema, APPEND a migration; never edit one that has shipped.
//!
//! Times are integer milliseconds since the UNIX epoch; networks are canonical text
//! (`IpNet::trunc` then `Display`, e.g. `192.0.2.0/24`, `2001:db8::1/128`); evidence is JSON.

/// Migrations, index i takes the schema from version i to i+1.
pub(crate) const MIGRATIONS: &[&str] = &[
    // v1: bans (one current row per network), their history, offence counts that outlive
    // purged bans (so escalation survives restarts), and recent decisions.
    r#"
    CREATE TABLE bans (
        net       TEXT PRIMARY KEY NOT NULL,
        since_ms  INTEGER NOT NULL,
        until_ms  INTEGER NOT NULL,
        count     INTEGER NOT NULL,
        rule      TEXT NOT NULL,
        reason    TEXT NOT NULL,
        evidence  TEXT NOT NULL,
        origin    TEXT NOT NULL
    );
    CREATE INDEX bans_until ON bans(until_ms);

    CREATE TABLE ban_history (
        id        INTEGER PRIMARY KEY,
        net       TEXT NOT NULL,
        since_ms  INTEGER NOT NULL,
        until_ms  INTEGER NOT NULL,
        count     INTEGER NOT NULL,
        rule      TEXT NOT NULL,
        reason    TEXT NOT NULL,
        evidence  TEXT NOT NULL,
        origin    TEXT NOT NULL
    );
    CREATE INDEX ban_history_net ON ban_history(net, id);
    CREATE INDEX ban_history_until ON ban_history(until_ms);

    CREATE TABLE offences (
        net           TEXT PRIMARY KEY NOT NULL,
        count         INTEGER NOT NULL,
        last_until_ms INTEGER NOT NULL
    );
    CREATE INDEX offences_until ON offences(last_until_ms);

    CREATE TABLE decisions (
        id        INTEGER PRIMARY KEY AUTOINCREMENT,
        at_ms     INTEGER NOT NULL,
        src_ip    TEXT NOT NULL,
        src_port  INTEGER NOT NULL,
        verdict   TEXT NOT NULL,
        rule      TEXT NOT NULL,
        summary   TEXT NOT NULL,
        evidence  TEXT NOT NULL
    );
    CREATE INDEX decisions_at ON decisions(at_ms);
    "#,
];

/// Newest schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;
