//! Property tests: no input panics the parser or the framer, and framing a stream of N
//! messages yields exactly those N however the stream is cut into segments.

use std::path::Path;
use std::sync::OnceLock;

use proptest::prelude::*;
use sipwall_sip::exercise::{every_field_and_header, parse_everything};
use sipwall_sip::{frame_len, Framed, Message, StreamFramer};

/// Real messages (recorded and RFC 4475) to mutate, read once.
fn fixtures(with_rfc: bool) -> &'static [Vec<u8>] {
    static STREAMABLE: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    static ALL: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    if with_rfc {
        ALL.get_or_init(|| read_fixtures(true))
    } else {
        STREAMABLE.get_or_init(|| read_fixtures(false))
    }
}

fn read_fixtures(with_rfc: bool) -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut subs = vec!["scanner", "sipp", "phone", "response"];
    if with_rfc {
        subs.push("rfc4475");
    }
    let mut out = Vec::new();
    for sub in subs {
        let mut paths: Vec<_> = std::fs::read_dir(root.join(sub))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "sip"))
            .collect();
        paths.sort();
        out.extend(paths.iter().map(|p| std::fs::read(p).unwrap()));
    }
    out
}

/// Bytes that steer a SIP parser into its interesting branches.
fn sip_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => prop::sample::select(b"\r\n \t:;,<>\"\\@[]=/?%0123456789SIPsipvlfti".to_vec()),
        1 => any::<u8>(),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Truncate(usize),
    Duplicate(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), sip_byte()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), prop::collection::vec(sip_byte(), 1..16))
            .prop_map(|(i, v)| Mutation::Insert(i, v)),
        (any::<usize>(), 1usize..32).prop_map(|(i, n)| Mutation::Delete(i, n)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 1usize..64).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
    ]
}

fn apply(buf: &mut Vec<u8>, m: &Mutation) {
    let len = buf.len().max(1);
    match m {
        Mutation::Flip(i, b) => {
            if let Some(x) = buf.get_mut(i % len) {
                *x = *b;
            }
        }
        Mutation::Insert(i, v) => {
            let at = (i % len).min(buf.len());
            buf.splice(at..at, v.iter().copied());
        }
        Mutation::Delete(i, n) => {
            let at = (i % len).min(buf.len());
            let end = (at + n).min(buf.len());
            buf.drain(at..end);
        }
        Mutation::Truncate(i) => buf.truncate(i % len),
        Mutation::Duplicate(i, n) => {
            let at = (i % len).min(buf.len());
            let end = (at + n).min(buf.len());
            let piece = buf[at..end].to_vec();
            buf.splice(end..end, piece);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..1500), chunk in 1usize..64) {
        parse_everything(&data, chunk);
    }

}

proptest! {
    // Fewer cases: generating biased bytes one by one is what costs here, not the parser.
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn sip_flavoured_bytes_never_panic(data in prop::collection::vec(sip_byte(), 0..1500), chunk in 1usize..64) {
        parse_everything(&data, chunk);
    }

    #[test]
    fn mutated_fixtures_never_panic(
        pick in any::<prop::sample::Index>(),
        muts in prop::collection::vec(mutation(), 1..8),
        chunk in 1usize..128,
    ) {
        let all = fixtures(true);
        let mut buf = pick.get(all).clone();
        for m in &muts {
            apply(&mut buf, m);
        }
        parse_everything(&buf, chunk);
    }
}

/// One framed-stream case: messages, keep-alives between them, and cut points.
fn stream_case() -> impl Strategy<Value = (Vec<usize>, Vec<u8>, Vec<usize>)> {
    let n_fixtures = fixtures(false).len();
    (
        prop::collection::vec(0..n_fixtures, 1..12),
        prop::collection::vec(0u8..4, 12),
        prop::collection::vec(1usize..300, 0..40),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn framing_yields_exactly_the_messages_whatever_the_segmentation(
        (picks, keepalives, cuts) in stream_case()
    ) {
        let all = fixtures(false);
        let msgs: Vec<&Vec<u8>> = picks.iter().map(|&i| &all[i]).collect();
        let mut stream = Vec::new();
        for (i, m) in msgs.iter().enumerate() {
            // 0: nothing, 1: CRLF, 2: CRLFCRLF (RFC 5626 ping), 3: bare LF
            stream.extend_from_slice(match keepalives[i] {
                1 => &b"\r\n"[..],
                2 => b"\r\n\r\n",
                3 => b"\n",
                _ => b"",
            });
            stream.extend_from_slice(m);
        }
        // Cut the stream into segments of the given sizes (the rest goes in the last one).
        let mut segments = Vec::new();
        let mut pos = 0;
        for c in &cuts {
            if pos >= stream.len() {
                break;
            }
            let end = (pos + c).min(stream.len());
            segments.push(&stream[pos..end]);
            pos = end;
        }
        if pos < stream.len() {
            segments.push(&stream[pos..]);
        }

        let mut framer = StreamFramer::new();
        let mut got: Vec<Vec<u8>> = Vec::new();
        for seg in segments {
            framer.push(seg).unwrap();
            while let Framed::Message(m) = framer.next_message().unwrap() {
                got.push(m.to_vec());
            }
        }
        prop_assert_eq!(got.len(), msgs.len());
        for (g, want) in got.iter().zip(&msgs) {
            prop_assert_eq!(g, *want);
            let m = Message::parse(g).unwrap();
            every_field_and_header(&m);
        }
        prop_assert_eq!(framer.buffered(), 0);
        // The stateless view agrees on the first message.
        let (skip, len) = frame_len(&stream).unwrap().unwrap();
        prop_assert_eq!(&stream[skip..skip + len], &msgs[0][..]);
    }
}
