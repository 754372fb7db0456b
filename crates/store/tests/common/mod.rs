//! Builders shared by the integration tests.
#![allow(dead_code)]
use sipwall_engine::{Ban, BanOrigin, Evidence, Timestamp};
use sipwall_store::IpNet;

/// A fixed "now" so tests never read the clock.
pub const NOW_MS: u64 = 1_764_000_000_000;

pub fn t(ms: u64) -> Timestamp {
    Timestamp::from_millis(ms)
}

pub fn net(s: &str) -> IpNet {
    s.parse().expect("test network")
}

/// Evidence with every field filled, including characters that need escaping in JSON.
pub fn full_evidence(tag: &str) -> Evidence {
    Evidence {
        method: Some("REGISTER".into()),
        user_agent: Some(format!("friendly-scanner \"{tag}\" \\ ünï")),
        call_id: Some("1234567890123".into()),
        target_user: Some("100".into()),
        users_probed: vec!["100".into(), "101".into(), "1000".into()],
        counters: vec![("requests_in_window".into(), 42), ("answers_401".into(), u64::MAX)],
        signatures: vec!["sipvicious-ua".into(), "sipvicious-tag".into()],
    }
}

pub fn ban(net_s: &str, count: u32, since_ms: u64, until_ms: u64) -> Ban {
    Ban {
        net: net(net_s),
        since: t(since_ms),
        until: t(until_ms),
        count,
        rule: "signature.sipvicious-ua".into(),
        reason: format!("User-Agent friendly-scanner from {net_s}"),
        evidence: full_evidence(net_s),
        origin: BanOrigin::Detection,
    }
}
