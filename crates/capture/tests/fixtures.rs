//! The recorded captures in testdata/captures, read by this crate and by tshark (the
//! oracle, run live): the same SIP messages, in the same order (by CSeq method).
use std::path::{Path, PathBuf};
use std::process::Command;

use sipwall_capture::CaptureReader;
use sipwall_sip::Message;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/captures").join(name)
}

fn ours(path: &Path) -> Vec<String> {
    let mut r = CaptureReader::open(path).unwrap();
    let mut v = Vec::new();
    while let Ok(Some(p)) = r.next_packet() {
        let m = Message::parse(p.payload).expect("fixture messages parse");
        v.push(String::from_utf8_lossy(m.cseq().expect("CSeq").method.as_bytes()).into_owned());
    }
    v
}

fn tshark(path: &Path) -> Vec<String> {
    let out = Command::new("tshark")
        .args(["-r"])
        .arg(path)
        .args(["-Y", "sip", "-T", "fields", "-e", "sip.CSeq.method", "-E", "occurrence=a"])
        .output()
        .expect("tshark is needed for this test (apt-get install tshark)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .flat_map(|l| l.split(',').map(str::to_string).collect::<Vec<_>>())
        .filter(|s| !s.is_empty())
        .collect()
}

#[test]
#[ignore = "needs tshark: run by scripts/test.sh"]
fn same_messages_as_tshark() {
    for name in [
        "svmap.pcap",
        "svwar.pcapng",
        "svcrack.pcap",
        "legit.pcap",
        "ipv6-sll2.pcap",
        "mixed-any.pcapng",
        "truncated.pcapng",
    ] {
        let path = fixture(name);
        let (a, b) = (ours(&path), tshark(&path));
        assert!(!a.is_empty(), "{name}");
        assert_eq!(a, b, "{name}");
    }
}

#[test]
fn legit_capture_has_fragments_and_tcp() {
    let mut r = CaptureReader::open(&fixture("legit.pcap")).unwrap();
    let mut tcp = 0;
    while let Ok(Some(p)) = r.next_packet() {
        if p.transport == sipwall_capture::Transport::Tcp {
            tcp += 1;
        }
    }
    let s = r.stats();
    assert!(s.reassembled > 0, "{s:?}");
    assert!(tcp > 0);
}

#[test]
fn corrupt_capture_keeps_going_past_the_bad_record() {
    let whole = ours(&fixture("svcrack.pcap"));
    let mut r = CaptureReader::open(&fixture("corrupt.pcap")).unwrap();
    let mut n = 0;
    while let Some(_p) = r.next_packet().expect("resynchronised") {
        n += 1;
    }
    assert_eq!(n, whole.len() - 1);
    assert_eq!(r.warnings().len(), 1);
    assert!(r.warnings()[0].starts_with("corrupt at byte 4002:"), "{:?}", r.warnings());
}
