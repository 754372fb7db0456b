//! Fuzz target: the packet view (IPv4/IPv6 with extension headers, UDP, TCP) over arbitrary
//! bytes, every layer and field read.
//!
//! Run (stable toolchain): `cd fuzz && cargo fuzz run wire --sanitizer none`
//! The corpus in `corpus/wire/` is replayed by `crates/wire/tests/fuzz_corpus.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    std::hint::black_box(sipwall_wire::exercise(data));
});
