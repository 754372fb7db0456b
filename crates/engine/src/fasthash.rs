//! Fast hashing for per-packet look-ups.
//!
//! foldhash with a per-process random seed: source addresses (IPv6 ones especially) and target
//! users are chosen by the sender, so a fixed, public seed would let an attacker craft keys that
//! collide (slow probes in the address maps; users merging in the per-source distinct-user
//! table to slip under the enumeration threshold). Decisions stay deterministic: nothing the
//! engine decides or reports depends on a map's iteration order (expiry and removals are
//! sorted), and a 32-bit collision between two users of one source is negligible.
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::OnceLock;

pub(crate) type FastState = foldhash::fast::RandomState;
pub(crate) type FastMap<K, V> = HashMap<K, V, FastState>;
pub(crate) type FastSet<K> = HashSet<K, FastState>;

pub(crate) fn map_with_capacity<K, V>(n: usize) -> FastMap<K, V> {
    HashMap::with_capacity_and_hasher(n, FastState::default())
}

/// 32-bit hash of a byte string (target users, Call-IDs): enough to tell a few dozen apart.
#[inline]
pub(crate) fn hash32(bytes: &[u8]) -> u32 {
    static STATE: OnceLock<FastState> = OnceLock::new();
    let h = STATE.get_or_init(FastState::default).hash_one(bytes);
    // Never 0: 0 marks an empty slot in the fixed-size tables.
    ((h >> 32) as u32 ^ h as u32) | 1
}

/// 64-bit hash of a byte string under the per-process seed (Call-IDs and branches of pending
/// transactions: compared by hash, so they need no allocation).
#[inline]
pub(crate) fn hash64(bytes: &[u8]) -> u64 {
    static STATE: OnceLock<FastState> = OnceLock::new();
    STATE.get_or_init(FastState::default).hash_one(bytes)
}
