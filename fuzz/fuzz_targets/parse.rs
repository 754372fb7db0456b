//! Fuzz target: parse as a datagram (every accessor, every header view), then frame as a
//! TCP stream cut into chunks whose size comes from the first input byte.
//!
//! Run (stable toolchain): `cd fuzz && cargo fuzz run parse --sanitizer none`
//! The corpus in `corpus/parse/` is replayed by `crates/sip/tests/fuzz_corpus.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let chunk = data.first().map_or(1, |b| usize::from(*b % 64) + 1);
    std::hint::black_box(sipwall_sip::exercise::parse_everything(data, chunk));
});
