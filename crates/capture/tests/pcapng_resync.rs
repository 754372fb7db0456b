//! pcapng resynchronisation on a real capture (testdata/captures/svwar.pcapng) damaged in
//! the test: the messages before and after the damage are read, exactly the damaged
//! block's are lost, a warning names the skipped byte range, garbage to the end stops the
//! read cleanly, and the look-ahead never goes past the read buffer.
use std::io::Cursor;
use std::path::Path;

use sipwall_capture::{CaptureError, CaptureReader, Limits};
use sipwall_sip::Message;

fn svwar() -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/captures/svwar.pcapng"),
    )
    .unwrap()
}

/// (offset, type, total length) of every block (the fixture is little endian).
fn blocks(f: &[u8]) -> Vec<(usize, u32, usize)> {
    let mut v = Vec::new();
    let mut o = 0;
    while o + 8 <= f.len() {
        let ty = u32::from_le_bytes(f[o..o + 4].try_into().unwrap());
        let len = u32::from_le_bytes(f[o + 4..o + 8].try_into().unwrap()) as usize;
        v.push((o, ty, len));
        o += len;
    }
    assert_eq!(o, f.len(), "fixture blocks tile the file");
    v
}

/// The packet blocks, and the middle one.
fn middle_epb(f: &[u8]) -> (usize, usize) {
    let epbs: Vec<_> = blocks(f).into_iter().filter(|b| b.1 == 6).collect();
    assert!(epbs.len() > 10);
    let (o, _, len) = epbs[epbs.len() / 2];
    (o, len)
}

fn without(f: &[u8], at: usize, len: usize) -> Vec<u8> {
    let mut g = f[..at].to_vec();
    g.extend_from_slice(&f[at + len..]);
    g
}

struct Read {
    /// "Call-ID CSeq" of every message.
    msgs: Vec<String>,
    err: Option<CaptureError>,
    warnings: Vec<String>,
    resyncs: u32,
    skipped: u64,
}

/// "Call-ID CSeq" of a message ("?" when damage made it unparsable).
fn key(payload: &[u8]) -> String {
    let Some(m) = Message::parse(payload).ok() else {
        return "?".into();
    };
    match (m.call_id(), m.cseq()) {
        (Some(cid), Some(cseq)) => format!(
            "{} {} {}",
            String::from_utf8_lossy(cid),
            cseq.number,
            String::from_utf8_lossy(cseq.method.as_bytes())
        ),
        _ => "?".into(),
    }
}

fn read(f: Vec<u8>, limits: Limits) -> Read {
    let mut r = CaptureReader::new(Cursor::new(f), limits).unwrap();
    let mut msgs = Vec::new();
    let mut err = None;
    loop {
        match r.next_packet() {
            Ok(Some(p)) => msgs.push(key(p.payload)),
            Ok(None) => break,
            Err(e) => {
                err = Some(e);
                assert!(r.next_packet().unwrap().is_none(), "the end follows an error");
                break;
            }
        }
    }
    let s = r.stats();
    Read {
        msgs,
        err,
        warnings: r.warnings().to_vec(),
        resyncs: s.resyncs,
        skipped: s.skipped_bytes,
    }
}

fn assert_one_resync(got: &Read, at: usize, skip: usize) {
    assert!(got.err.is_none(), "{:?}", got.err);
    assert_eq!(got.resyncs, 1);
    assert_eq!(got.skipped, skip as u64);
    assert_eq!(got.warnings.len(), 1, "{:?}", got.warnings);
    let w = &got.warnings[0];
    assert!(w.starts_with(&format!("corrupt at byte {at}: ")), "{w}");
    assert!(w.ends_with(&format!("; skipped {skip} bytes, resumed at byte {}", at + skip)), "{w}");
}

#[test]
fn garbage_block_length_loses_only_that_packet() {
    let f = svwar();
    let intact = read(f.clone(), Limits::default());
    assert!(intact.err.is_none() && intact.warnings.is_empty());
    let (at, len) = middle_epb(&f);
    let expected = read(without(&f, at, len), Limits::default()).msgs;
    assert!(expected.len() < intact.msgs.len(), "the damaged block carries a SIP message");
    // huge, small, unaligned, and a plausible-looking length that runs into the next block
    for bad in [0xdead_beefu32, 8, 0x0000_0102, len as u32 + 64, 0x7fff_fff0] {
        let mut g = f.clone();
        g[at + 4..at + 8].copy_from_slice(&bad.to_le_bytes());
        let got = read(g, Limits::default());
        assert_eq!(got.msgs, expected, "length {bad:#x}");
        assert_one_resync(&got, at, len);
    }
}

#[test]
fn mismatched_trailing_length_loses_only_that_packet() {
    let f = svwar();
    let (at, len) = middle_epb(&f);
    let expected = read(without(&f, at, len), Limits::default()).msgs;
    let mut g = f.clone();
    g[at + len - 4..at + len].copy_from_slice(&(len as u32 - 4).to_le_bytes());
    let got = read(g, Limits::default());
    assert_eq!(got.msgs, expected);
    assert_one_resync(&got, at, len);
    assert!(got.warnings[0].contains("trailing length"), "{:?}", got.warnings);
}

#[test]
fn junk_between_blocks_loses_nothing() {
    let f = svwar();
    let intact = read(f.clone(), Limits::default()).msgs;
    let (at, _) = middle_epb(&f);
    for junk in [3usize, 37, 400, 5000] {
        let mut g = f[..at].to_vec();
        g.extend((0..junk).map(|i| (i * 7 + 1) as u8));
        g.extend_from_slice(&f[at..]);
        let got = read(g, Limits::default());
        assert_eq!(got.msgs, intact, "{junk} junk bytes");
        assert_one_resync(&got, at, junk);
    }
}

#[test]
fn garbage_to_the_end_reports_where_and_stops() {
    let f = svwar();
    let (at, _) = middle_epb(&f);
    let before = read(f[..at].to_vec(), Limits::default());
    assert!(before.err.is_none() && !before.msgs.is_empty());
    let mut g = f.clone();
    for (i, b) in g[at..].iter_mut().enumerate() {
        *b = (i * 13 + 5) as u8 | 0x80;
    }
    let got = read(g, Limits::default());
    assert_eq!(got.msgs, before.msgs, "everything before the damage is read");
    let err = got.err.expect("an error");
    assert!(matches!(err, CaptureError::Corrupt { .. }), "{err:?}");
    assert_eq!(err.offset(), Some(at as u64), "{err}");
    assert_eq!(got.resyncs, 0);
}

#[test]
fn resync_looks_no_further_than_the_read_buffer() {
    let f = svwar();
    let (at, _) = middle_epb(&f);
    let limits = Limits { read_buffer: 8 << 10, ..Limits::default() };
    let intact = read(f.clone(), limits).msgs;
    let with_junk = |n: usize| {
        let mut g = f[..at].to_vec();
        g.extend(std::iter::repeat_n(0xa5u8, n));
        g.extend_from_slice(&f[at..]);
        g
    };
    // within the buffer: found
    let got = read(with_junk(4 << 10), limits);
    assert_eq!(got.msgs, intact);
    assert_one_resync(&got, at, 4 << 10);
    // longer than the buffer: given up at the damage, what came before stands
    let got = read(with_junk(9 << 10), limits);
    let before = read(f[..at].to_vec(), limits).msgs;
    assert_eq!(got.msgs, before);
    assert_eq!(got.err.expect("given up").offset(), Some(at as u64));
    assert_eq!(got.resyncs, 0);
}

#[test]
fn resync_onto_a_new_section_header() {
    // Two sections (the capture twice); the last packet block of the first is damaged: the
    // reader resumes at the second section header and reads all of the second section.
    let f = svwar();
    let mut two = f.clone();
    two.extend_from_slice(&f);
    let intact = read(f.clone(), Limits::default()).msgs;
    let &(at, _, len) = blocks(&f).iter().rev().find(|b| b.1 == 6).unwrap();
    let first_without = read(without(&f, at, len), Limits::default()).msgs;
    two[at + 4..at + 8].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    let got = read(two.clone(), Limits::default());
    let mut expected = first_without.clone();
    expected.extend(intact.iter().cloned());
    assert_eq!(got.msgs, expected);
    assert_one_resync(&got, at, len);
    // a packet block naming an interface the section does not describe is corrupt too
    let mut g = f.clone();
    let (mid, mlen) = middle_epb(&f);
    g[mid + 8..mid + 12].copy_from_slice(&1u32.to_le_bytes());
    let got = read(g, Limits::default());
    assert_eq!(got.msgs, read(without(&f, mid, mlen), Limits::default()).msgs);
    assert_one_resync(&got, mid, mlen);
    assert!(got.warnings[0].contains("interface 1"), "{:?}", got.warnings);
}

#[test]
fn random_damage_never_panics_and_ends() {
    // Deterministic pseudo-random damage: overwritten words, flipped bytes, inserted junk.
    let f = svwar();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..120 {
        let mut g = f.clone();
        for _ in 0..1 + next() % 6 {
            // past the section header's first 12 bytes (else: not a capture at all)
            let at = 12 + (next() as usize) % (g.len() - 12);
            match next() % 3 {
                0 => g[at] ^= 1 << (next() % 8),
                1 => {
                    let end = (at + 4).min(g.len());
                    let w = (next() as u32).to_le_bytes();
                    g[at..end].copy_from_slice(&w[..end - at]);
                }
                _ => {
                    let junk: Vec<u8> = (0..next() % 64).map(|_| next() as u8).collect();
                    g.splice(at..at, junk);
                }
            }
        }
        let got = read(g, Limits::default());
        assert!(got.resyncs <= sipwall_capture::MAX_RESYNCS, "round {round}");
        assert!(got.warnings.len() <= 32, "round {round}");
    }
}
