//! Fast, deterministic hashing for per-packet look-ups.
//!
//! `foldhash::fast::FixedState` with a fixed seed: the engine must be deterministic (same input,
//! same decisions, same eviction order), so no per-process random seed. Hash flooding is not a
//! concern for the maps keyed by addresses: their size is capped and a probe costs the same
//! whatever the key distribution of a well-mixed hash.
use std::collections::{HashMap, HashSet};

pub(crate) type FastState = foldhash::fast::FixedState;
pub(crate) type FastMap<K, V> = HashMap<K, V, FastState>;
pub(crate) type FastSet<K> = HashSet<K, FastState>;

pub(crate) fn map_with_capacity<K, V>(n: usize) -> FastMap<K, V> {
    HashMap::with_capacity_and_hasher(n, FastState::with_seed(0x0515_7a11))
}

/// 32-bit hash of a byte string (target users, Call-IDs): enough to tell a few dozen apart.
#[inline]
pub(crate) fn hash32(bytes: &[u8]) -> u32 {
    use std::hash::BuildHasher;
    let h = FastState::with_seed(0x0515_7a11).hash_one(bytes);
    // Never 0: 0 marks an empty slot in the fixed-size tables.
    ((h >> 32) as u32 ^ h as u32) | 1
}
