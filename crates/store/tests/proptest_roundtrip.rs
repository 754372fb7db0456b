//! Property: any ban and any decision read back equals what was written (after `trunc`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;
use sipwall_engine::{Ban, BanOrigin, DecisionRecord, Evidence, Timestamp, Verdict};
use sipwall_store::{IpNet, Store};

fn arb_net() -> impl Strategy<Value = IpNet> {
    prop_oneof![
        (any::<u32>(), 0u8..=32)
            .prop_map(|(a, p)| IpNet::new(IpAddr::V4(Ipv4Addr::from(a)), p).unwrap().trunc()),
        (any::<u128>(), 0u8..=128)
            .prop_map(|(a, p)| IpNet::new(IpAddr::V6(Ipv6Addr::from(a)), p).unwrap().trunc()),
    ]
}

fn arb_ts() -> impl Strategy<Value = Timestamp> {
    (0u64..=i64::MAX as u64).prop_map(Timestamp::from_millis)
}

fn arb_evidence() -> impl Strategy<Value = Evidence> {
    (
        proptest::option::of(".*"),
        proptest::option::of(".*"),
        proptest::option::of(".*"),
        proptest::option::of(".*"),
        proptest::collection::vec(".*", 0..4),
        proptest::collection::vec((".*", any::<u64>()), 0..4),
        proptest::collection::vec("[a-z.-]{0,20}", 0..4),
    )
        .prop_map(
            |(method, user_agent, call_id, target_user, users_probed, counters, signatures)| {
                Evidence {
                    method,
                    user_agent,
                    call_id,
                    target_user,
                    users_probed,
                    counters,
                    signatures,
                }
            },
        )
}

fn arb_ban() -> impl Strategy<Value = Ban> {
    (
        arb_net(),
        arb_ts(),
        arb_ts(),
        any::<u32>(),
        ".*",
        ".*",
        arb_evidence(),
        prop_oneof![
            Just(BanOrigin::Detection),
            Just(BanOrigin::Manual),
            Just(BanOrigin::Aggregate),
            Just(BanOrigin::Restored)
        ],
    )
        .prop_map(|(net, since, until, count, rule, reason, evidence, origin)| Ban {
            net,
            since,
            until,
            count,
            rule,
            reason,
            evidence,
            origin,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn any_ban_round_trips(b in arb_ban()) {
        let mut store = Store::open_in_memory().unwrap();
        store.record_ban(&b).unwrap();
        prop_assert_eq!(store.get_ban(b.net).unwrap(), Some(b.clone()));
        prop_assert_eq!(store.ban_history(b.net).unwrap(), vec![b.clone()]);
        prop_assert_eq!(store.offence_count(b.net).unwrap(), b.count);
        let active = store.load_active_bans(b.since).unwrap();
        prop_assert_eq!(active.len(), usize::from(b.since < b.until));
    }

    #[test]
    fn any_decision_round_trips(
        at in arb_ts(),
        ip in prop_oneof![any::<u32>().prop_map(|a| IpAddr::V4(a.into())), any::<u128>().prop_map(|a| IpAddr::V6(a.into()))],
        port in any::<u16>(),
        verdict in prop_oneof![Just(Verdict::Accept), Just(Verdict::Drop), any::<u16>().prop_map(Verdict::Reject)],
        summary in ".*",
        evidence in arb_evidence(),
    ) {
        let mut store = Store::open_in_memory().unwrap();
        let rec = DecisionRecord { rule: "rule.x", evidence: evidence.clone(), summary: summary.clone() };
        let src = SocketAddr::new(ip, port);
        store.record_decision(at, src, verdict, &rec).unwrap();
        let got = store.recent_decisions(1).unwrap().pop().unwrap();
        prop_assert_eq!(got.at, at);
        prop_assert_eq!(got.src, src);
        prop_assert_eq!(got.verdict, verdict);
        prop_assert_eq!(got.rule, "rule.x");
        prop_assert_eq!(got.summary, summary);
        prop_assert_eq!(got.evidence, evidence);
    }
}
