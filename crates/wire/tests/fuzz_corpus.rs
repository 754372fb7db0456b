//! Replays every file of the wire fuzz corpus (`fuzz/corpus/wire/`: hand-built seeds plus any
//! input the fuzzer found interesting or crashing) through the fuzz target's code, so CI needs
//! no fuzzer.

use std::path::Path;

use sipwall_wire::exercise;

#[test]
fn replay_fuzz_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/wire");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let data = std::fs::read(&path).unwrap();
        // Whole, then every prefix (a truncated copy of each seed).
        for end in (0..=data.len()).rev() {
            exercise(&data[..end]);
        }
        n += 1;
    }
    assert!(n >= 8, "only {n} corpus files in {}", dir.display());
}
