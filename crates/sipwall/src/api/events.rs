//! Live events for the dashboard (`GET /api/v1/events`, server-sent events): the decisions
//! the ban worker records and the bans it puts into (or lifts from) the kernel set, as they
//! happen.
//!
//! CONTRACT:
//! * The publisher never waits. The ban worker calls [`publish_decision`] and
//!   [`publish_bans`]; with no subscriber that is one atomic load and nothing is built. With
//!   subscribers, the event goes into a `tokio::sync::broadcast` ring of [`CAPACITY`] events:
//!   `send` takes the ring's short internal lock, writes the slot and returns; it never waits
//!   for a reader. The queue threads never publish anything (they hand decisions to the ban
//!   worker as before), so judging is untouched.
//! * A slow subscriber falls behind the ring and LOSES events (it is told how many, as a
//!   `lagged` event, and the dashboard then re-reads the state); it never slows the publisher
//!   or another subscriber.
//! * At most [`MAX_SUBSCRIBERS`] streams are open at once (each holds one of the API's
//!   connections); one more is refused with 503.
//! * Event text comes from the wire (summaries, rules): it is JSON-encoded here and must be
//!   shown as text, never as markup (the dashboard uses `textContent`).
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use ipnet::IpNet;
use serde::Serialize;
use sipwall_engine::{Ban, Verdict};
use tokio::sync::broadcast;

use crate::daemon::ban_worker::DecisionItem;

/// Events the ring holds for a subscriber that has not read them yet.
pub const CAPACITY: usize = 1024;
/// Most event streams open at once.
pub const MAX_SUBSCRIBERS: usize = 8;

/// One live event (JSON in the stream's `data:` line; `kind` is also the SSE event name).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Event {
    /// A recorded decision (a drop, a reject, a simulated drop, an operator action).
    Decision {
        /// When, ms since the epoch.
        at_ms: u64,
        /// Source address.
        src: String,
        /// `drop`, `reject 403`, or `accept` (a simulated drop or an operator's record).
        verdict: String,
        /// Rule id.
        rule: String,
        /// The sentence.
        summary: String,
        /// Only simulated (observe mode or a simulated family): nothing was dropped.
        simulated: bool,
    },
    /// A ban put into the kernel set.
    Ban {
        /// Network.
        net: String,
        /// End, ms since the epoch.
        until_ms: u64,
        /// Rule.
        rule: String,
        /// Reason.
        reason: String,
    },
    /// A ban lifted.
    Unban {
        /// Network.
        net: String,
    },
}

impl Event {
    /// The SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Decision { .. } => "decision",
            Event::Ban { .. } => "ban",
            Event::Unban { .. } => "unban",
        }
    }
}

/// The process-wide event ring.
pub struct Hub {
    tx: broadcast::Sender<Arc<Event>>,
    subscribers: AtomicUsize,
}

/// The hub (created on first use).
pub fn hub() -> &'static Hub {
    static HUB: OnceLock<Hub> = OnceLock::new();
    HUB.get_or_init(|| Hub { tx: broadcast::channel(CAPACITY).0, subscribers: AtomicUsize::new(0) })
}

/// A subscription; counts as one of [`MAX_SUBSCRIBERS`] until dropped.
pub struct Subscription {
    /// The receiving end of the ring.
    pub rx: broadcast::Receiver<Arc<Event>>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        hub().subscribers.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Hub {
    /// Subscribe, unless [`MAX_SUBSCRIBERS`] streams are open.
    pub fn subscribe(&self) -> Option<Subscription> {
        let taken = self.subscribers.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < MAX_SUBSCRIBERS).then_some(n + 1)
        });
        taken.ok().map(|_| Subscription { rx: self.tx.subscribe() })
    }

    fn listened(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    fn send(&self, e: Event) {
        // Err only when nobody listens: nothing to do. Never blocks.
        let _ = self.tx.send(Arc::new(e));
    }
}

/// Is a decision only simulated? The queue thread marks such records' summaries
/// (`[would drop: simulated] ...`, `[would drop and ban: simulated] ...`).
pub fn is_simulated(summary: &str) -> bool {
    summary.starts_with('[')
        && summary.split_once(']').is_some_and(|(h, _)| h.ends_with("simulated"))
}

/// The ban worker took a decision record. Never waits (see the module contract).
pub fn publish_decision(d: &DecisionItem) {
    let h = hub();
    if !h.listened() {
        return;
    }
    h.send(Event::Decision {
        at_ms: d.at.as_millis(),
        src: d.src.ip().to_string(),
        verdict: match d.verdict {
            Verdict::Accept => "accept".to_string(),
            v => v.to_string(),
        },
        rule: d.record.rule.to_string(),
        summary: d.record.summary.clone(),
        simulated: is_simulated(&d.record.summary),
    });
}

/// The ban worker put `adds` into the kernel set and lifted `removes`. Never waits.
pub fn publish_bans(adds: &[Ban], removes: &[IpNet]) {
    let h = hub();
    if !h.listened() {
        return;
    }
    for b in adds {
        h.send(Event::Ban {
            net: b.net.to_string(),
            until_ms: b.until.as_millis(),
            rule: b.rule.clone(),
            reason: b.reason.clone(),
        });
    }
    for n in removes {
        h.send(Event::Unban { net: n.to_string() });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sipwall_engine::{DecisionRecord, Evidence, Timestamp};

    fn item(summary: &str) -> DecisionItem {
        DecisionItem {
            at: Timestamp::from_millis(1_000),
            src: "203.0.113.7:5070".parse().unwrap(),
            verdict: Verdict::Drop,
            record: DecisionRecord {
                rule: "signature.sipvicious-ua",
                evidence: Evidence::default(),
                summary: summary.into(),
            },
        }
    }

    #[test]
    fn simulated_records_are_recognised() {
        assert!(is_simulated("[would drop: simulated] User-Agent friendly-scanner"));
        assert!(is_simulated("[would drop and ban: simulated] x"));
        assert!(!is_simulated("User-Agent friendly-scanner [simulated]"));
        assert!(!is_simulated("[drop] x"));
    }

    /// One test for the whole hub: it is process-wide, so tests must not race on it.
    #[test]
    fn subscribers_get_events_a_slow_one_lags_and_the_count_is_bounded() {
        let mut subs: Vec<Subscription> = Vec::new();
        while let Some(s) = hub().subscribe() {
            subs.push(s);
            assert!(subs.len() <= MAX_SUBSCRIBERS);
        }
        // (Another test may hold a slot for a moment: the hub is process-wide.)
        assert!(!subs.is_empty() && subs.len() <= MAX_SUBSCRIBERS);
        assert!(hub().subscribe().is_none(), "one more than the limit is refused");
        drop(subs.pop());
        let mut again = hub().subscribe().expect("a slot freed by drop");
        publish_decision(&item("User-Agent friendly-scanner"));
        let e = again.rx.try_recv().unwrap();
        assert_eq!(e.name(), "decision");
        let json = serde_json::to_value(&*e).unwrap();
        assert_eq!(json["src"], "203.0.113.7");
        assert_eq!(json["kind"], "decision");
        assert_eq!(json["simulated"], false);
        // Publishing far more than the ring holds never blocks; the reader that did not keep
        // up is told it lagged, then reads on.
        for _ in 0..CAPACITY * 3 {
            publish_bans(&[], &["203.0.113.0/24".parse().unwrap()]);
        }
        match again.rx.try_recv() {
            Err(broadcast::error::TryRecvError::Lagged(n)) => assert!(n >= CAPACITY as u64),
            other => panic!("expected a lag, got {other:?}"),
        }
        assert_eq!(again.rx.try_recv().unwrap().name(), "unban");
    }
}
