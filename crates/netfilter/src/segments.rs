//! The elements of a range ban set, computed from the active range bans: disjoint segments,
//! each lasting as long as the longest ban covering it.
//!
//! Why: an interval set refuses overlapping elements, and an element has ONE timeout. Putting
//! each ban in as its own element therefore forces a choice when bans overlap, and choosing
//! the shorter one (or deleting the longer one) reopened the door when the shorter ended.
//! Cutting the union of the bans at every ban boundary instead gives disjoint pieces whose
//! timeout is the latest expiry among the bans covering that piece: a point stays covered in
//! the kernel exactly as long as some ban covers it. Adjacent pieces with the same expiry are
//! merged. Pure: unit- and property-tested below, the kernel test checks the encoding.
use std::collections::BTreeMap;

/// A segment: first and last value (inclusive) and its expiry.
pub(crate) type Segment<E> = (u128, u128, E);

/// Disjoint, sorted segments covering exactly the union of `bans` (first, last inclusive,
/// expiry; larger expiry = later, so "never" must compare greatest); each segment's expiry is
/// the greatest expiry among the bans covering it. O(n log n).
pub(crate) fn segments<E: Ord + Copy>(bans: &[Segment<E>]) -> Vec<Segment<E>> {
    let mut starts: Vec<(u128, E)> =
        bans.iter().filter(|b| b.0 <= b.1).map(|b| (b.0, b.2)).collect();
    let mut ends: Vec<(u128, E)> = bans.iter().filter(|b| b.0 <= b.1).map(|b| (b.1, b.2)).collect();
    starts.sort_unstable_by_key(|s| s.0);
    ends.sort_unstable_by_key(|e| e.0);
    // Every place where the set of covering bans can change.
    let mut points: Vec<u128> = starts.iter().map(|s| s.0).collect();
    points.extend(ends.iter().filter_map(|e| e.0.checked_add(1)));
    points.sort_unstable();
    points.dedup();
    let mut active: BTreeMap<E, usize> = BTreeMap::new();
    let (mut si, mut ei) = (0, 0);
    let mut out: Vec<Segment<E>> = Vec::new();
    for (i, &p) in points.iter().enumerate() {
        while ei < ends.len() && ends[ei].0 < p {
            if let Some(c) = active.get_mut(&ends[ei].1) {
                *c -= 1;
                if *c == 0 {
                    active.remove(&ends[ei].1);
                }
            }
            ei += 1;
        }
        while si < starts.len() && starts[si].0 <= p {
            *active.entry(starts[si].1).or_insert(0) += 1;
            si += 1;
        }
        let Some((&until, _)) = active.last_key_value() else { continue };
        let last = points.get(i + 1).map_or(u128::MAX, |n| n - 1);
        match out.last_mut() {
            Some(prev) if prev.2 == until && prev.1.checked_add(1) == Some(p) => prev.1 = last,
            _ => out.push((p, last, until)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_shorter_range_over_a_longer_address_splits_around_it() {
        // 203.0.113.10 for 3600 s, then 203.0.113.0/24 for 15 s (the reported defect).
        let base = 0xcb00_7100u128;
        let segs = segments(&[(base + 10, base + 10, 3600), (base, base + 255, 15)]);
        assert_eq!(
            segs,
            vec![(base, base + 9, 15), (base + 10, base + 10, 3600), (base + 11, base + 255, 15)]
        );
    }

    #[test]
    fn nested_equal_and_adjacent_bans_merge_and_the_top_is_reachable() {
        assert_eq!(segments(&[(0, 9, 5), (10, 19, 5)]), vec![(0, 19, 5)]);
        assert_eq!(segments(&[(0, 19, 5), (5, 9, 1)]), vec![(0, 19, 5)]);
        assert_eq!(segments(&[(0, 9, 5), (20, 29, 5)]), vec![(0, 9, 5), (20, 29, 5)]);
        assert_eq!(
            segments(&[(u128::MAX - 5, u128::MAX, 1), (u128::MAX, u128::MAX, 2)]),
            vec![(u128::MAX - 5, u128::MAX - 1, 1), (u128::MAX, u128::MAX, 2)]
        );
        assert_eq!(segments::<u8>(&[]), vec![]);
    }

    fn covering_max(bans: &[Segment<u8>], x: u128) -> Option<u8> {
        bans.iter().filter(|b| b.0 <= x && x <= b.1).map(|b| b.2).max()
    }

    proptest! {
        #[test]
        fn every_point_keeps_the_latest_expiry_of_the_bans_covering_it(
            raw in prop::collection::vec((0u128..200, 0u128..40, 0u8..6), 0..24),
            probes in prop::collection::vec(0u128..260, 1..64),
        ) {
            let bans: Vec<Segment<u8>> = raw.iter().map(|&(s, l, e)| (s, s + l, e)).collect();
            let segs = segments(&bans);
            // sorted, disjoint, and adjacent segments differ in expiry
            for w in segs.windows(2) {
                prop_assert!(w[0].1 < w[1].0);
                prop_assert!(w[0].1 + 1 != w[1].0 || w[0].2 != w[1].2);
            }
            for x in probes.into_iter().chain(bans.iter().flat_map(|b| [b.0, b.1, b.1 + 1])) {
                let seg = segs.iter().find(|s| s.0 <= x && x <= s.1).map(|s| s.2);
                prop_assert_eq!(seg, covering_max(&bans, x), "point {}", x);
            }
        }
    }
}

/// A range, first and last value inclusive.
pub(crate) type Span = (u128, u128);
/// One transaction of [`block_batches`]: (deletes, adds).
pub(crate) type Step = (Vec<Span>, Vec<Span>);

/// The transactions that turn the disjoint, sorted ranges `old` into `new` (both as
/// (first, last) inclusive), each touching at most about `max_ops` elements: `(deletes, adds)`
/// per transaction. Ranges that overlap across the two lists are grouped into clusters that
/// are never split, so an interval set never sees an overlap and an address in both lists is
/// covered after every transaction (its cluster changes atomically); an address only in `old`
/// goes, one only in `new` comes, in address order. Unchanged ranges are not touched.
pub(crate) fn block_batches(
    old: &[(u128, u128)],
    new: &[(u128, u128)],
    max_ops: usize,
) -> Vec<Step> {
    let olds: std::collections::BTreeSet<&(u128, u128)> = old.iter().collect();
    let news: std::collections::BTreeSet<&(u128, u128)> = new.iter().collect();
    // Every element with its side, by first address; clusters = runs of overlapping ones.
    let mut all: Vec<((u128, u128), bool)> = old
        .iter()
        .filter(|r| !news.contains(r))
        .map(|r| (*r, false))
        .chain(new.iter().filter(|r| !olds.contains(r)).map(|r| (*r, true)))
        .collect();
    all.sort_unstable();
    let mut out: Vec<Step> = Vec::new();
    let mut cur: Step = (Vec::new(), Vec::new());
    let mut reach: Option<u128> = None; // last address of the current cluster
    for (r, is_new) in all {
        let starts_cluster = reach.is_none_or(|end| r.0 > end);
        if starts_cluster && cur.0.len() + cur.1.len() >= max_ops.max(1) {
            out.push(std::mem::take(&mut cur));
        }
        reach = Some(if starts_cluster { r.1 } else { reach.map_or(r.1, |e| e.max(r.1)) });
        if is_new {
            cur.1.push(r);
        } else {
            cur.0.push(r);
        }
    }
    if !cur.0.is_empty() || !cur.1.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod block_tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn overlapping_old_and_new_ranges_change_in_one_transaction() {
        let b = block_batches(&[(0, 9), (20, 29), (40, 49)], &[(5, 24), (40, 49), (60, 60)], 1);
        assert_eq!(
            b,
            vec![
                (vec![(0, 9), (20, 29)], vec![(5, 24)]), // one cluster, never split
                (vec![], vec![(60, 60)]),
            ]
        );
    }

    fn disjoint(raw: Vec<(u128, u128)>) -> Vec<(u128, u128)> {
        let mut v: Vec<(u128, u128)> = raw.into_iter().map(|(s, l)| (s, s + l)).collect();
        v.sort_unstable();
        let mut out: Vec<(u128, u128)> = Vec::new();
        for r in v {
            match out.last_mut() {
                Some(p) if r.0 <= p.1 + 1 => p.1 = p.1.max(r.1),
                _ => out.push(r),
            }
        }
        out
    }

    proptest! {
        #[test]
        fn batches_never_overlap_and_keep_addresses_in_both_lists(
            a in prop::collection::vec((0u128..300, 0u128..20), 0..30),
            b in prop::collection::vec((0u128..300, 0u128..20), 0..30),
            max_ops in 1usize..8,
        ) {
            let (old, new) = (disjoint(a), disjoint(b));
            let mut set: Vec<(u128, u128)> = old.clone();
            let covered = |s: &[(u128, u128)], x: u128| s.iter().any(|r| r.0 <= x && x <= r.1);
            for (dels, adds) in block_batches(&old, &new, max_ops) {
                for d in &dels {
                    let at = set.iter().position(|r| r == d);
                    prop_assert!(at.is_some(), "delete of a missing element {:?}", d);
                    set.remove(at.unwrap());
                }
                for a in &adds {
                    prop_assert!(set.iter().all(|r| r.1 < a.0 || a.1 < r.0), "overlap {:?}", a);
                    set.push(*a);
                }
                for x in 0..330u128 {
                    if covered(&old, x) && covered(&new, x) {
                        prop_assert!(covered(&set, x), "{} uncovered mid-way", x);
                    }
                }
            }
            set.sort_unstable();
            prop_assert_eq!(set, new);
        }
    }
}
