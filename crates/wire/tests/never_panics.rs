//! Property: the view never panics and never reads out of bounds, on any bytes, and every
//! slice it returns lies within its input.

use proptest::prelude::*;
use sipwall_wire::{exercise, parse_ip, parse_packet};

fn within(outer: &[u8], inner: &[u8]) -> bool {
    let (o, i) = (outer.as_ptr() as usize, inner.as_ptr() as usize);
    i >= o && i + inner.len() <= o + outer.len()
}

/// Bytes that start like IPv4 or IPv6 most of the time, so the walk gets deep.
fn ipish() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![Just(0x45u8), Just(0x46), Just(0x60), any::<u8>()],
        prop::collection::vec(
            prop_oneof![
                Just(0u8),
                Just(6),
                Just(17),
                Just(43),
                Just(44),
                Just(51),
                Just(60),
                any::<u8>()
            ],
            0..300,
        ),
    )
        .prop_map(|(first, rest)| {
            let mut v = vec![first];
            v.extend(rest);
            v
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn never_panics_and_stays_in_bounds(bytes in ipish()) {
        let _ = exercise(&bytes);
        if let Ok(ip) = parse_ip(&bytes) {
            prop_assert!(within(&bytes, ip.payload));
            prop_assert!(ip.header_len <= bytes.len());
        }
        if let Ok(p) = parse_packet(&bytes) {
            prop_assert!(within(&bytes, p.transport.payload()));
        }
    }

    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..128)) {
        let _ = exercise(&bytes);
    }
}
