//! What travels through Redis: one change (a ban or an unban) as one line of text, optionally
//! signed with HMAC-SHA256.
//!
//! Wire form (the stream entry's field `m` and the state hash's value are the same string):
//! `v1 SIG JSON`, where `SIG` is the lowercase hex HMAC-SHA256 of `v1 JSON` under the fleet's
//! shared key, or `-` when the writer has no key. Readers with a key ignore unsigned entries
//! and entries whose signature does not match (compared in constant time). Readers without a
//! key take every well-formed entry.
//!
//! Every field is checked on the way in: the network must be canonical, the node id short and
//! plain, texts bounded ([`MAX_TEXT`]), the whole entry at most [`MAX_ENTRY_BYTES`]; anything
//! else is refused with a [`FleetError::DecodeEntry`] naming what was wrong.
use hmac::{KeyInit as _, Mac as _};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::FleetError;

/// Largest entry read or written, in bytes (an evidence summary is a sentence, not a log).
pub const MAX_ENTRY_BYTES: usize = 4096;
/// Longest rule, reason or evidence summary kept (longer ones are cut at a char boundary).
pub const MAX_TEXT: usize = 512;
/// Longest node id.
pub const MAX_NODE_ID: usize = 64;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// A ban as the fleet shares it. Times are absolute (milliseconds since the Unix epoch), so a
/// ban ends at the same moment on every node whatever its clock skew is (within that skew).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetBan {
    /// The banned network (an address is a /32 or /128), canonical.
    pub net: IpNet,
    /// When it started.
    pub since_ms: u64,
    /// When it ends.
    pub until_ms: u64,
    /// The rule that made it on its origin node (`signature.sipvicious-ua`, `manual`...).
    pub rule: String,
    /// The origin's readable reason.
    pub reason: String,
    /// A one-line summary of the evidence (signatures, counters, User-Agent).
    #[serde(default)]
    pub evidence: String,
    /// The node that made it.
    pub origin: String,
}

/// One replicated change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Change {
    /// A ban was made (or extended) on `origin`.
    Ban(FleetBan),
    /// An operator lifted the ban of exactly `net` on `origin`.
    Unban {
        /// The network.
        net: IpNet,
        /// When it was lifted.
        at_ms: u64,
        /// The node where it was lifted.
        origin: String,
    },
}

impl Change {
    /// The network it is about.
    pub fn net(&self) -> IpNet {
        match self {
            Change::Ban(b) => b.net,
            Change::Unban { net, .. } => *net,
        }
    }
    /// The node that made it.
    pub fn origin(&self) -> &str {
        match self {
            Change::Ban(b) => &b.origin,
            Change::Unban { origin, .. } => origin,
        }
    }
}

/// Cut `s` to at most [`MAX_TEXT`] bytes at a char boundary.
pub fn bounded(s: &str) -> String {
    if s.len() <= MAX_TEXT {
        return s.to_string();
    }
    let mut end = MAX_TEXT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// A node id is 1..=64 of `[A-Za-z0-9._-]`: it ends up in logs and reasons.
pub fn valid_node_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_NODE_ID
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn mac(key: &[u8], signed: &str) -> HmacSha256 {
    // HMAC takes keys of any length; new_from_slice cannot fail for it.
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC accepts any key length");
    m.update(signed.as_bytes());
    m
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// Encode (and sign, with a key) one change.
pub fn encode(change: &Change, key: Option<&[u8]>) -> Result<String, FleetError> {
    let json = serde_json::to_string(change)
        .map_err(|e| FleetError::EncodeEntry { net: change.net(), why: e.to_string() })?;
    let signed = format!("v1 {json}");
    let sig =
        key.map_or_else(|| "-".to_string(), |k| hex(&mac(k, &signed).finalize().into_bytes()));
    let out = format!("v1 {sig} {json}");
    if out.len() > MAX_ENTRY_BYTES {
        return Err(FleetError::EncodeEntry {
            net: change.net(),
            why: format!("{} bytes, more than {MAX_ENTRY_BYTES}", out.len()),
        });
    }
    Ok(out)
}

/// Decode, verify (with a key) and check one entry.
pub fn decode(text: &[u8], key: Option<&[u8]>) -> Result<Change, FleetError> {
    let bad = |why: &str| FleetError::DecodeEntry { why: why.to_string() };
    if text.len() > MAX_ENTRY_BYTES {
        return Err(bad("entry longer than 4096 bytes"));
    }
    let text = std::str::from_utf8(text).map_err(|_| bad("not UTF-8"))?;
    let mut parts = text.splitn(3, ' ');
    let (Some("v1"), Some(sig), Some(json)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad("not a v1 entry"));
    };
    if let Some(k) = key {
        if sig == "-" {
            return Err(FleetError::Unsigned);
        }
        let given = unhex(sig).ok_or(FleetError::BadSignature)?;
        mac(k, &format!("v1 {json}")).verify_slice(&given).map_err(|_| FleetError::BadSignature)?;
    }
    let change: Change =
        serde_json::from_str(json).map_err(|e| FleetError::DecodeEntry { why: e.to_string() })?;
    check(&change).map_err(|why| FleetError::DecodeEntry { why })?;
    Ok(change)
}

/// The checks every change passes before it is believed.
fn check(change: &Change) -> Result<(), String> {
    let net = change.net();
    if net != net.trunc() {
        return Err(format!("{net} is not canonical"));
    }
    if !valid_node_id(change.origin()) {
        return Err("bad origin node id".into());
    }
    if let Change::Ban(b) = change {
        if b.until_ms <= b.since_ms {
            return Err(format!("ban of {net} ends before it starts"));
        }
        if [&b.rule, &b.reason, &b.evidence].iter().any(|t| t.len() > MAX_TEXT) {
            return Err(format!("ban of {net}: a text longer than {MAX_TEXT} bytes"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ban(net: &str) -> Change {
        Change::Ban(FleetBan {
            net: net.parse().unwrap(),
            since_ms: 1_000,
            until_ms: 61_000,
            rule: "signature.sipvicious-ua".into(),
            reason: "User-Agent friendly-scanner".into(),
            evidence: "OPTIONS; UA friendly-scanner".into(),
            origin: "pbx-01".into(),
        })
    }

    #[test]
    fn round_trip_with_and_without_a_key() {
        let c = ban("203.0.113.9/32");
        assert_eq!(decode(encode(&c, None).unwrap().as_bytes(), None).unwrap(), c);
        let key = b"0123456789abcdef0123456789abcdef";
        let signed = encode(&c, Some(key)).unwrap();
        assert_eq!(decode(signed.as_bytes(), Some(key)).unwrap(), c);
        // a reader without the key still reads a signed entry
        assert_eq!(decode(signed.as_bytes(), None).unwrap(), c);
    }

    #[test]
    fn a_reader_with_a_key_ignores_unsigned_forged_and_altered_entries() {
        let key = b"0123456789abcdef0123456789abcdef";
        let c = ban("203.0.113.9/32");
        let unsigned = encode(&c, None).unwrap();
        assert!(matches!(decode(unsigned.as_bytes(), Some(key)), Err(FleetError::Unsigned)));
        let forged = encode(&c, Some(b"another key, not the fleet's one")).unwrap();
        assert!(matches!(decode(forged.as_bytes(), Some(key)), Err(FleetError::BadSignature)));
        // a signed entry whose network was changed afterwards
        let signed = encode(&c, Some(key)).unwrap();
        let altered = signed.replace("203.0.113.9/32", "198.51.100.0/24");
        assert!(matches!(decode(altered.as_bytes(), Some(key)), Err(FleetError::BadSignature)));
        let garbage_sig = format!("v1 zz{}", &signed[5..]);
        assert!(decode(garbage_sig.as_bytes(), Some(key)).is_err());
    }

    #[test]
    fn hostile_entries_are_refused_not_panicked_on() {
        for text in [
            &b""[..],
            b"v1",
            b"v1 -",
            b"v2 - {}",
            b"v1 - {\"op\":\"ban\"}",
            b"v1 - not json",
            b"\xff\xfe",
            b"v1 - {\"op\":\"unban\",\"net\":\"203.0.113.9/24\",\"at_ms\":1,\"origin\":\"a\"}",
            b"v1 - {\"op\":\"unban\",\"net\":\"203.0.113.0/24\",\"at_ms\":1,\"origin\":\"a b\"}",
        ] {
            assert!(decode(text, None).is_err(), "{:?}", String::from_utf8_lossy(text));
        }
        let long = format!("v1 - {}", "x".repeat(MAX_ENTRY_BYTES));
        assert!(decode(long.as_bytes(), None).is_err());
        let mut b = ban("203.0.113.9/32");
        if let Change::Ban(x) = &mut b {
            x.until_ms = x.since_ms;
        }
        assert!(decode(encode(&b, None).unwrap().as_bytes(), None).is_err());
    }

    #[test]
    fn texts_are_cut_at_a_char_boundary() {
        let s = "é".repeat(MAX_TEXT);
        let cut = bounded(&s);
        assert!(cut.len() <= MAX_TEXT && s.starts_with(&cut));
        assert!(valid_node_id("pbx-07.example"));
        assert!(!valid_node_id("") && !valid_node_id("a b") && !valid_node_id(&"a".repeat(65)));
    }
}
