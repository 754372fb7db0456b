//! Engine input and output types.
//!
//! [`Verdict`] and [`BanOrigin`] have one text form each, written by `Display` and read back by
//! `FromStr` (`accept`, `drop`, `reject 403`; `detection`, `manual`, `aggregate`, `restored`):
//! the store keeps them in that form and the CLI prints it, so the words never drift apart.
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;

/// Time since the UNIX epoch, passed in by the caller (capture timestamp or wall clock).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Timestamp(pub Duration);

impl Timestamp {
    /// From whole milliseconds since the epoch.
    pub fn from_millis(ms: u64) -> Self {
        Timestamp(Duration::from_millis(ms))
    }
    /// Milliseconds since the epoch.
    pub fn as_millis(&self) -> u64 {
        self.0.as_millis() as u64
    }
}

/// Transport the packet came on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// UDP datagram
    Udp,
    /// One framed message from a TCP stream
    Tcp,
    /// TLS: payload is opaque; only address-level policy applies
    Tls,
}

/// Which way the packet travels relative to the protected side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// From the outside toward the protected phones/PBX (requests from scanners, answers to our calls)
    Inbound,
    /// From the protected side outward (answers such as 401/404 going back to a source)
    Outbound,
}

/// One packet (UDP payload or one TCP-framed message) to decide on.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// Source address and port.
    pub src: SocketAddr,
    /// Destination address and port.
    pub dst: SocketAddr,
    /// Transport.
    pub transport: Transport,
    /// Direction relative to the protected side.
    pub direction: Direction,
    /// SIP bytes (may be malformed, or keep-alive CRLFs).
    pub payload: &'a [u8],
}

/// What to do with the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Let it through.
    Accept,
    /// Drop silently (the default for hostile traffic: scanners give up after ~10 s of silence).
    Drop,
    /// Drop, and answer with this SIP status (only where configured).
    Reject(u16),
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Accept => f.write_str("accept"),
            Verdict::Drop => f.write_str("drop"),
            Verdict::Reject(code) => write!(f, "reject {code}"),
        }
    }
}

/// A text that is not the `Display` form of a [`Verdict`] or [`BanOrigin`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {text:?} (expected {expected})")]
pub struct ParseNameError {
    /// What was being read: "verdict" or "ban origin".
    pub kind: &'static str,
    /// The text (at most 64 bytes of it).
    pub text: String,
    /// The accepted forms.
    pub expected: &'static str,
}

fn name_error(kind: &'static str, s: &str, expected: &'static str) -> ParseNameError {
    let mut end = s.len().min(64);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    ParseNameError { kind, text: s[..end].to_string(), expected }
}

impl FromStr for Verdict {
    type Err = ParseNameError;
    fn from_str(s: &str) -> Result<Self, ParseNameError> {
        match s {
            "accept" => Ok(Verdict::Accept),
            "drop" => Ok(Verdict::Drop),
            _ => s
                .strip_prefix("reject ")
                .and_then(|c| c.parse().ok())
                .map(Verdict::Reject)
                .ok_or_else(|| name_error("verdict", s, "accept, drop or reject NNN")),
        }
    }
}

/// Stable identifier of the rule that decided, e.g. `"signature.sipvicious-ua"`.
pub type RuleId = &'static str;

/// Evidence behind a decision; what a person needs to trust it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Evidence {
    /// SIP method of the message, if a request.
    pub method: Option<String>,
    /// User-Agent as sent.
    pub user_agent: Option<String>,
    /// Call-ID as sent.
    pub call_id: Option<String>,
    /// Request-URI user / To user targeted.
    pub target_user: Option<String>,
    /// Distinct users probed by this source in the window (bounded sample).
    pub users_probed: Vec<String>,
    /// Counters that fired, e.g. ("requests_in_window", 42), ("answers_401", 9).
    pub counters: Vec<(String, u64)>,
    /// Signature ids that matched.
    pub signatures: Vec<String>,
}

/// Why a packet was not simply accepted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DecisionRecord {
    /// Rule that fired.
    pub rule: RuleId,
    /// Evidence.
    pub evidence: Evidence,
    /// One readable sentence, e.g. "10.0.0.1 sent an OPTIONS with User-Agent 'friendly-scanner' (SIPVicious svmap)".
    pub summary: String,
}

/// Who created a ban.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum BanOrigin {
    /// Detection in this engine.
    Detection,
    /// An operator.
    Manual,
    /// Aggregated from several address bans in one range.
    Aggregate,
    /// Restored from the store.
    Restored,
    /// Received from another node of the fleet (`[fleet]`); never published again.
    Fleet,
}

impl BanOrigin {
    /// The text form (as `Display` writes it).
    pub fn as_str(self) -> &'static str {
        match self {
            BanOrigin::Detection => "detection",
            BanOrigin::Manual => "manual",
            BanOrigin::Aggregate => "aggregate",
            BanOrigin::Restored => "restored",
            BanOrigin::Fleet => "fleet",
        }
    }
}

impl fmt::Display for BanOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BanOrigin {
    type Err = ParseNameError;
    fn from_str(s: &str) -> Result<Self, ParseNameError> {
        Ok(match s {
            "detection" => BanOrigin::Detection,
            "manual" => BanOrigin::Manual,
            "aggregate" => BanOrigin::Aggregate,
            "restored" => BanOrigin::Restored,
            "fleet" => BanOrigin::Fleet,
            _ => {
                return Err(name_error(
                    "ban origin",
                    s,
                    "detection, manual, aggregate, restored or fleet",
                ))
            }
        })
    }
}

/// An active ban.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Ban {
    /// Address (/32, /128) or range.
    pub net: IpNet,
    /// When it started.
    pub since: Timestamp,
    /// When it ends.
    pub until: Timestamp,
    /// How many times this net has been banned (1 = first).
    pub count: u32,
    /// Rule that caused it.
    pub rule: String,
    /// Readable reason.
    pub reason: String,
    /// Evidence at the time.
    pub evidence: Evidence,
    /// Origin.
    pub origin: BanOrigin,
}

/// Instructions for the enforcer (kernel set, store, cluster).
// Bans are rare (a few per scanner); boxing would cost every consumer a deref for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum BanAction {
    /// Add or extend a ban.
    Add(Ban),
    /// Remove a ban (expired or unbanned).
    Remove(IpNet),
}

/// The engine's answer for one packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Verdict.
    pub verdict: Verdict,
    /// Ban actions this packet caused (empty on the accept path: no allocation).
    pub bans: Vec<BanAction>,
    /// Why, for everything but a plain accept.
    pub record: Option<DecisionRecord>,
}

impl Decision {
    /// A plain accept. Allocates nothing.
    pub const fn accept() -> Self {
        Decision { verdict: Verdict::Accept, bans: Vec::new(), record: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_and_origin_text_round_trips() {
        for v in [Verdict::Accept, Verdict::Drop, Verdict::Reject(403), Verdict::Reject(0)] {
            assert_eq!(v.to_string().parse::<Verdict>(), Ok(v));
        }
        assert_eq!(Verdict::Reject(488).to_string(), "reject 488");
        for bad in ["reject x", "", "Drop", "reject", "reject 70000"] {
            let e = bad.parse::<Verdict>().unwrap_err();
            assert_eq!((e.kind, e.text.as_str()), ("verdict", bad));
        }
        for o in
            [BanOrigin::Detection, BanOrigin::Manual, BanOrigin::Aggregate, BanOrigin::Restored]
        {
            assert_eq!(o.to_string().parse::<BanOrigin>(), Ok(o));
            // the same words as the JSON form
            assert_eq!(serde_json_like(o), o.to_string());
        }
        let e = "x".repeat(500).parse::<BanOrigin>().unwrap_err();
        assert_eq!(e.text.len(), 64, "bounded");
    }

    fn serde_json_like(o: BanOrigin) -> String {
        let v = toml::Value::try_from(std::collections::BTreeMap::from([("o", o)])).unwrap();
        v["o"].as_str().unwrap().to_string()
    }
}
