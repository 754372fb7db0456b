//! Replays every file of the fuzz corpus (`fuzz/corpus/parse/`: the fixtures plus any input
//! the fuzzer found interesting or crashing) through the same code as the fuzz target, so CI
//! needs no fuzzer. Each file is run with several stream chunk sizes.

use std::path::Path;

use sipwall_sip::exercise::parse_everything;

#[test]
fn replay_fuzz_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/parse");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let data = std::fs::read(&path).unwrap();
        // The fuzz target's own chunking, then byte-at-a-time and whole.
        let first = data.first().map_or(1, |b| usize::from(*b % 64) + 1);
        for chunk in [first, 1, 7, data.len().max(1)] {
            parse_everything(&data, chunk);
        }
        n += 1;
    }
    assert!(n >= 80, "only {n} corpus files in {}", dir.display());
}
