//! Reader tests on hand-built captures: every link type, IPv4/IPv6, fragments, TCP
//! reassembly (in order, out of order, retransmits, several messages per segment), the
//! port filter, non-SIP traffic, and truncated / corrupt files.
use std::io::Cursor;
use std::net::SocketAddr;
use std::time::Duration;

use etherparse::PacketBuilder;
use sipwall_capture::{CaptureError, CaptureReader, Limits, Transport};

const OPTIONS: &[u8] = b"OPTIONS sip:100@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bK-1;rport\r\nFrom: \"sipvicious\"<sip:100@1.1.1.1>;tag=1\r\nTo: \"sipvicious\"<sip:100@1.1.1.1>\r\nCall-ID: 1234\r\nCSeq: 1 OPTIONS\r\nUser-Agent: friendly-scanner\r\nContent-Length: 0\r\n\r\n";
const OK: &[u8] = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bK-1\r\nCall-ID: 1234\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";

fn invite_with_body(len: usize) -> Vec<u8> {
    let body = vec![b'a'; len];
    let mut m = format!(
        "INVITE sip:1000@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/TCP 198.51.100.20:5070;branch=z9hG4bK77\r\nCall-ID: big@x\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n"
    )
    .into_bytes();
    m.extend_from_slice(&body);
    m
}

/// A legacy pcap file (microseconds, little endian) with the given link type and records.
fn pcap(linktype: u32, records: &[(u32, u32, Vec<u8>)]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&65535u32.to_le_bytes());
    f.extend_from_slice(&linktype.to_le_bytes());
    for (sec, usec, data) in records {
        f.extend_from_slice(&sec.to_le_bytes());
        f.extend_from_slice(&usec.to_le_bytes());
        f.extend_from_slice(&(data.len() as u32).to_le_bytes());
        f.extend_from_slice(&(data.len() as u32).to_le_bytes());
        f.extend_from_slice(data);
    }
    f
}

/// A pcapng file: SHB, one IDB (nanosecond resolution), EPBs.
fn pcapng(linktype: u16, records: &[(u64, Vec<u8>)]) -> Vec<u8> {
    fn block(f: &mut Vec<u8>, ty: u32, body: &[u8]) {
        let pad = (4 - body.len() % 4) % 4;
        let len = (12 + body.len() + pad) as u32;
        f.extend_from_slice(&ty.to_le_bytes());
        f.extend_from_slice(&len.to_le_bytes());
        f.extend_from_slice(body);
        f.extend_from_slice(&vec![0; pad]);
        f.extend_from_slice(&len.to_le_bytes());
    }
    let mut f = Vec::new();
    let mut shb = Vec::new();
    shb.extend_from_slice(&0x1a2b3c4du32.to_le_bytes());
    shb.extend_from_slice(&1u16.to_le_bytes());
    shb.extend_from_slice(&0u16.to_le_bytes());
    shb.extend_from_slice(&(-1i64).to_le_bytes());
    block(&mut f, 0x0a0d0d0a, &shb);
    let mut idb = Vec::new();
    idb.extend_from_slice(&linktype.to_le_bytes());
    idb.extend_from_slice(&0u16.to_le_bytes());
    idb.extend_from_slice(&0u32.to_le_bytes());
    // if_tsresol = 9 (nanoseconds), then opt_endofopt
    idb.extend_from_slice(&[9, 0, 1, 0, 9, 0, 0, 0, 0, 0, 0, 0]);
    block(&mut f, 1, &idb);
    for (ts, data) in records {
        let mut epb = Vec::new();
        epb.extend_from_slice(&0u32.to_le_bytes());
        epb.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(*ts as u32).to_le_bytes());
        epb.extend_from_slice(&(data.len() as u32).to_le_bytes());
        epb.extend_from_slice(&(data.len() as u32).to_le_bytes());
        epb.extend_from_slice(data);
        epb.extend_from_slice(&vec![0; (4 - data.len() % 4) % 4]);
        // the block() padding is then zero: body already aligned
        block(&mut f, 6, &epb);
    }
    f
}

fn udp4_eth(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([1; 6], [2; 6]).ipv4(src, dst, 64).udp(sport, dport);
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

fn udp4_raw(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ipv4(src, dst, 64).udp(sport, dport);
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

fn udp6_raw(src: [u8; 16], sport: u16, dst: [u8; 16], dport: u16, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ipv6(src, dst, 64).udp(sport, dport);
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

fn tcp4_eth(
    src: [u8; 4],
    sport: u16,
    dst: [u8; 4],
    dport: u16,
    seq: u32,
    flags: &str,
    payload: &[u8],
) -> Vec<u8> {
    let mut b =
        PacketBuilder::ethernet2([1; 6], [2; 6]).ipv4(src, dst, 64).tcp(sport, dport, seq, 65535);
    if flags.contains('S') {
        b = b.syn();
    }
    if flags.contains('F') {
        b = b.fin();
    }
    if flags.contains('R') {
        b = b.rst();
    }
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

#[derive(Debug, PartialEq)]
struct Got {
    ts: Duration,
    src: SocketAddr,
    dst: SocketAddr,
    transport: Transport,
    payload: Vec<u8>,
}

fn read_all(
    file: Vec<u8>,
    ports: Option<Vec<u16>>,
) -> (Vec<Got>, Option<CaptureError>, sipwall_capture::CaptureStats) {
    let mut r = CaptureReader::new(Cursor::new(file), Limits::default()).unwrap();
    r.set_ports(ports);
    let mut out = Vec::new();
    let mut err = None;
    loop {
        match r.next_packet() {
            Ok(Some(p)) => out.push(Got {
                ts: p.ts,
                src: p.src,
                dst: p.dst,
                transport: p.transport,
                payload: p.payload.to_vec(),
            }),
            Ok(None) => break,
            Err(e) => err = Some(e),
        }
    }
    (out, err, r.stats())
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn ethernet_udp_request_and_answer_with_timestamps() {
    let f = pcap(
        1,
        &[
            (
                1_700_000_000,
                250_000,
                udp4_eth([203, 0, 113, 10], 5060, [192, 0, 2, 10], 5060, OPTIONS),
            ),
            (1_700_000_001, 5, udp4_eth([192, 0, 2, 10], 5060, [203, 0, 113, 10], 5060, OK)),
        ],
    );
    let (got, err, stats) = read_all(f, None);
    assert!(err.is_none());
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].ts, Duration::new(1_700_000_000, 250_000_000));
    assert_eq!(got[0].src, sa("203.0.113.10:5060"));
    assert_eq!(got[0].dst, sa("192.0.2.10:5060"));
    assert_eq!(got[0].transport, Transport::Udp);
    assert_eq!(got[0].payload, OPTIONS);
    assert_eq!(got[1].payload, OK);
    assert_eq!(got[1].ts, Duration::new(1_700_000_001, 5_000));
    assert_eq!(stats.sip_messages, 2);
    assert_eq!(stats.frames, 2);
}

#[test]
fn vlan_sll_sll2_raw_null_and_ipv6_link_types() {
    let raw4 = udp4_raw([203, 0, 113, 10], 5060, [192, 0, 2, 10], 5060, OPTIONS);
    let mut v6src = [0u8; 16];
    v6src[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    let mut v6dst = v6src;
    v6src[15] = 0x10;
    v6dst[15] = 0x20;
    let raw6 = udp6_raw(v6src, 5062, v6dst, 5060, OPTIONS);

    let vlan = PacketBuilder::ethernet2([1; 6], [2; 6])
        .single_vlan(etherparse::VlanId::try_new(42).unwrap())
        .ipv4([203, 0, 113, 10], [192, 0, 2, 10], 64)
        .udp(5060, 5060);
    let mut vlan_frame = Vec::new();
    vlan.write(&mut vlan_frame, OPTIONS).unwrap();

    let mut sll = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x86, 0xdd];
    sll.extend_from_slice(&raw6);
    let mut sll2 = vec![0x08, 0x00, 0, 0, 0, 0, 0, 3, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0];
    sll2.extend_from_slice(&raw4);
    let mut null = 2u32.to_le_bytes().to_vec();
    null.extend_from_slice(&raw4);
    let mut null6 = 30u32.to_le_bytes().to_vec();
    null6.extend_from_slice(&raw6);

    for (lt, frame, src) in [
        (1, vlan_frame, "203.0.113.10:5060"),
        (113, sll, "[2001:db8::10]:5062"),
        (276, sll2, "203.0.113.10:5060"),
        (101, raw4.clone(), "203.0.113.10:5060"),
        (12, raw6.clone(), "[2001:db8::10]:5062"),
        (228, raw4.clone(), "203.0.113.10:5060"),
        (229, raw6.clone(), "[2001:db8::10]:5062"),
        (0, null, "203.0.113.10:5060"),
        (0, null6, "[2001:db8::10]:5062"),
    ] {
        let (got, err, _) = read_all(pcap(lt, &[(1, 0, frame)]), None);
        assert!(err.is_none(), "linktype {lt}");
        assert_eq!(got.len(), 1, "linktype {lt}");
        assert_eq!(got[0].src, sa(src), "linktype {lt}");
        assert_eq!(got[0].payload, OPTIONS, "linktype {lt}");
    }
    // an unsupported link type is counted, not fatal
    let (got, err, stats) = read_all(pcap(147, &[(1, 0, raw4)]), None);
    assert!(got.is_empty() && err.is_none());
    assert_eq!(stats.unsupported_linktype, 1);
}

#[test]
fn pcapng_nanosecond_timestamps() {
    let ts = 1_700_000_000_123_456_789u64;
    let f = pcapng(1, &[(ts, udp4_eth([203, 0, 113, 10], 5060, [192, 0, 2, 10], 5060, OPTIONS))]);
    let (got, err, _) = read_all(f, None);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].ts, Duration::new(1_700_000_000, 123_456_789));
    assert_eq!(got[0].payload, OPTIONS);
}

#[test]
fn sip_recognised_by_content_on_any_port_and_port_filter() {
    let f = pcap(
        1,
        &[
            (1, 0, udp4_eth([203, 0, 113, 10], 40000, [192, 0, 2, 10], 8060, OPTIONS)),
            (
                1,
                1,
                udp4_eth([203, 0, 113, 10], 40000, [192, 0, 2, 10], 5060, b"\x80\x00RTP-ish junk"),
            ),
            (1, 2, udp4_eth([203, 0, 113, 10], 40000, [192, 0, 2, 10], 5060, b"\r\n\r\n")),
            (1, 3, udp4_eth([203, 0, 113, 10], 5060, [192, 0, 2, 10], 5060, OPTIONS)),
        ],
    );
    let (got, _, stats) = read_all(f.clone(), None);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].dst.port(), 8060);
    assert_eq!(stats.not_sip, 2);
    let (got, _, stats) = read_all(f, Some(vec![5060]));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].dst.port(), 5060);
    assert_eq!(stats.port_filtered, 1);
}

/// Split an IPv4 UDP datagram into fragments of `chunk` bytes of IP payload (multiple of 8).
fn fragment_v4(packet: &[u8], chunk: usize, id: u16) -> Vec<Vec<u8>> {
    let ihl = usize::from(packet[0] & 0x0f) * 4;
    let payload = &packet[ihl..];
    let mut out = Vec::new();
    let mut off = 0;
    while off < payload.len() {
        let end = (off + chunk).min(payload.len());
        let mut h = packet[..ihl].to_vec();
        let total = (ihl + end - off) as u16;
        h[2..4].copy_from_slice(&total.to_be_bytes());
        h[4..6].copy_from_slice(&id.to_be_bytes());
        let more = if end < payload.len() { 0x2000 } else { 0 };
        h[6..8].copy_from_slice(&((more | (off / 8)) as u16).to_be_bytes());
        h[10] = 0;
        h[11] = 0;
        h.extend_from_slice(&payload[off..end]);
        out.push(h);
        off = end;
    }
    out
}

#[test]
fn ipv4_fragments_reassembled_in_any_order() {
    let big = invite_with_body(1500);
    let whole = udp4_raw([198, 51, 100, 20], 5070, [192, 0, 2, 10], 5060, &big);
    let mut frags = fragment_v4(&whole, 512, 77);
    assert!(frags.len() >= 3);
    frags.swap(0, 2);
    let records: Vec<_> = frags.into_iter().enumerate().map(|(i, f)| (10, i as u32, f)).collect();
    let (got, err, stats) = read_all(pcap(101, &records), None);
    assert!(err.is_none());
    assert_eq!(got.len(), 1, "{stats:?}");
    assert_eq!(got[0].payload, big);
    assert_eq!(got[0].src, sa("198.51.100.20:5070"));
    assert_eq!(stats.reassembled, 1);
}

#[test]
fn ipv6_fragments_reassembled() {
    let big = invite_with_body(1400);
    let mut s = [0u8; 16];
    s[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    let mut d = s;
    s[15] = 0x20;
    d[15] = 0x10;
    let whole = udp6_raw(s, 5070, d, 5060, &big);
    let l4 = &whole[40..];
    let mut records = Vec::new();
    for (i, off) in (0..l4.len()).step_by(600).enumerate() {
        let end = (off + 600).min(l4.len());
        let mut p = whole[..40].to_vec();
        p[6] = 44;
        p[4..6].copy_from_slice(&((8 + end - off) as u16).to_be_bytes());
        let more = u16::from(end < l4.len());
        p.extend_from_slice(&[17, 0]);
        p.extend_from_slice(&(((off / 8) as u16) << 3 | more).to_be_bytes());
        p.extend_from_slice(&0xdead_beefu32.to_be_bytes());
        p.extend_from_slice(&l4[off..end]);
        records.push((10, i as u32, p));
    }
    records.reverse();
    let (got, err, _) = read_all(pcap(101, &records), None);
    assert!(err.is_none());
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload, big);
    assert_eq!(got[0].src, sa("[2001:db8::20]:5070"));
}

#[test]
fn lone_fragment_times_out_and_is_counted() {
    let whole = udp4_raw([198, 51, 100, 20], 5070, [192, 0, 2, 10], 5060, &invite_with_body(1200));
    let frags = fragment_v4(&whole, 512, 5);
    // first fragment at t=10; the rest 60 s later (timeout 30 s): never complete
    let mut records = vec![(10, 0, frags[0].clone())];
    for f in &frags[1..] {
        records.push((70, 0, f.clone()));
    }
    let (got, _, stats) = read_all(pcap(101, &records), None);
    assert!(got.is_empty());
    assert_eq!(stats.fragments_dropped, 1);
}

#[test]
fn tcp_stream_split_across_segments_with_two_messages_in_one() {
    let a = [198, 51, 100, 20];
    let b = [192, 0, 2, 10];
    let inv = invite_with_body(300);
    let mut stream = inv.clone();
    stream.extend_from_slice(OPTIONS);
    let isn = 1000u32;
    let (p1, p2) = stream.split_at(100);
    let records = vec![
        (1, 0, tcp4_eth(a, 5070, b, 5060, isn, "S", b"")),
        (1, 1, tcp4_eth(a, 5070, b, 5060, isn + 1, "", p1)),
        (1, 2, tcp4_eth(a, 5070, b, 5060, isn + 1, "", &p1[..50])), // retransmit
        (1, 3, tcp4_eth(a, 5070, b, 5060, isn + 1 + 100, "F", p2)),
    ];
    let (got, err, stats) = read_all(pcap(1, &records), None);
    assert!(err.is_none());
    assert_eq!(got.len(), 2, "{stats:?}");
    assert_eq!(got[0].payload, inv);
    assert_eq!(got[0].transport, Transport::Tcp);
    assert_eq!(got[1].payload, OPTIONS);
    assert_eq!(stats.tcp_retransmits, 1);
}

#[test]
fn tcp_out_of_order_segments_are_held_then_delivered() {
    let a = [198, 51, 100, 20];
    let b = [192, 0, 2, 10];
    let inv = invite_with_body(500);
    let chunks: Vec<&[u8]> = inv.chunks(200).collect();
    let seq = |i: usize| 5000 + (i * 200) as u32;
    // no SYN in the capture: the flow is picked up at its first SIP-looking segment
    let records = vec![
        (1, 0, tcp4_eth(a, 5070, b, 5060, seq(0), "", chunks[0])),
        (1, 1, tcp4_eth(a, 5070, b, 5060, seq(2), "", chunks[2])),
        (1, 2, tcp4_eth(a, 5070, b, 5060, seq(3), "", chunks[3])),
        (1, 3, tcp4_eth(a, 5070, b, 5060, seq(1), "", chunks[1])),
    ];
    let (got, _, stats) = read_all(pcap(1, &records), None);
    assert_eq!(got.len(), 1, "{stats:?}");
    assert_eq!(got[0].payload, inv);
    assert_eq!(stats.tcp_out_of_order, 2);
}

#[test]
fn tcp_lost_segment_resyncs_on_next_message() {
    let a = [198, 51, 100, 20];
    let b = [192, 0, 2, 10];
    let inv = invite_with_body(400);
    let limits_hold = Limits::default().max_ooo_segments;
    let mut records = vec![(1, 0, tcp4_eth(a, 5070, b, 5060, 1, "", &inv[..100]))];
    // bytes 100..200 are lost; then many later segments fill the hold
    let mut seq = 1 + inv.len() as u32;
    for _ in 0..=limits_hold {
        records.push((1, 1, tcp4_eth(a, 5070, b, 5060, seq, "", OPTIONS)));
        seq += OPTIONS.len() as u32;
    }
    let (got, _, stats) = read_all(pcap(1, &records), None);
    assert_eq!(stats.tcp_gaps, 1, "{stats:?}");
    // after the gap, the reader resynchronises on the segment that starts a message
    assert!(!got.is_empty());
    assert!(got.iter().all(|g| g.payload == OPTIONS));
}

#[test]
fn tcp_non_sip_flow_ignored_and_flows_capped() {
    let a = [198, 51, 100, 20];
    let b = [192, 0, 2, 10];
    let mut records = vec![(1, 0, tcp4_eth(a, 443, b, 40000, 1, "", b"\x16\x03\x01 TLS hello"))];
    for port in 0..50u16 {
        records.push((1, 1, tcp4_eth(a, 10000 + port, b, 5060, 1, "", &OPTIONS[..40])));
    }
    let limits = Limits { max_tcp_flows: 10, ..Limits::default() };
    let mut r = CaptureReader::new(Cursor::new(pcap(1, &records)), limits).unwrap();
    while let Ok(Some(_)) = r.next_packet() {}
    let s = r.stats();
    assert_eq!(s.sip_messages, 0);
    assert_eq!(s.tcp_flows, 51);
    assert_eq!(s.tcp_flows_evicted, 41);
}

#[test]
fn truncated_file_reports_offset_after_yielding_what_was_read() {
    let rec = udp4_eth([203, 0, 113, 10], 5060, [192, 0, 2, 10], 5060, OPTIONS);
    let f = pcap(1, &[(1, 0, rec.clone()), (2, 0, rec.clone()), (3, 0, rec.clone())]);
    let cut = f.len() - 20;
    let (got, err, _) = read_all(f[..cut].to_vec(), None);
    assert_eq!(got.len(), 2);
    let second_end = 24 + 2 * (16 + rec.len());
    match err {
        Some(CaptureError::Truncated { offset }) => assert_eq!(offset, second_end as u64),
        other => panic!("expected Truncated, got {other:?}"),
    }
}

#[test]
fn corrupt_record_length_in_pcap_resyncs_on_the_next_record() {
    let rec = udp4_eth([203, 0, 113, 10], 5060, [192, 0, 2, 10], 5060, OPTIONS);
    let mut f = pcap(
        1,
        &[(1, 0, rec.clone()), (2, 0, rec.clone()), (3, 0, rec.clone()), (4, 0, rec.clone())],
    );
    let second = 24 + 16 + rec.len();
    f[second + 8..second + 12].copy_from_slice(&0x7fff_ff00u32.to_le_bytes());
    let mut r = CaptureReader::new(Cursor::new(f), Limits::default()).unwrap();
    let mut ts = Vec::new();
    while let Some(p) = r.next_packet().expect("resynchronised, no error") {
        ts.push(p.ts.as_secs());
    }
    assert_eq!(ts, vec![1, 3, 4], "the corrupt record is lost, the rest is read");
    assert_eq!(r.stats().resyncs, 1);
    assert_eq!(r.stats().skipped_bytes, (16 + rec.len()) as u64);
    let w = r.warnings();
    assert_eq!(w.len(), 1);
    assert!(w[0].starts_with(&format!("corrupt at byte {second}:")), "{w:?}");
}

#[test]
fn corrupt_pcap_without_a_plausible_next_record_stops_with_offset() {
    let rec = udp4_eth([203, 0, 113, 10], 5060, [192, 0, 2, 10], 5060, OPTIONS);
    let mut f = pcap(1, &[(1, 0, rec.clone()), (2, 0, rec.clone())]);
    let second = 24 + 16 + rec.len();
    f[second + 8..second + 12].copy_from_slice(&0x7fff_ff00u32.to_le_bytes());
    // garbage instead of the payload, so nothing after the bad header looks like a record
    for b in &mut f[second + 16..] {
        *b = 0xff;
    }
    let (got, err, _) = read_all(f, None);
    assert_eq!(got.len(), 1);
    let err = err.expect("an error");
    assert_eq!(err.offset(), Some(second as u64), "{err}");
}

#[test]
fn not_a_capture() {
    let e = CaptureReader::new(
        Cursor::new(b"hello, this is not a pcap file at all".to_vec()),
        Limits::default(),
    )
    .unwrap_err();
    assert!(matches!(e, CaptureError::NotACapture(_)), "{e:?}");
    let e = CaptureReader::new(Cursor::new(Vec::new()), Limits::default()).unwrap_err();
    assert!(matches!(e, CaptureError::NotACapture(_)), "{e:?}");
}

#[test]
fn sip_detection() {
    use sipwall_capture::looks_like_sip;
    assert!(looks_like_sip(OPTIONS));
    assert!(looks_like_sip(OK));
    assert!(looks_like_sip(b"\r\nREGISTER sips:example.com SIP/2.0\nVia: x\n\n"));
    assert!(looks_like_sip(b"SIP/2.0 401 Unauthorized\r\n"));
    assert!(!looks_like_sip(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert!(!looks_like_sip(b"OPTIONS nocolon SIP/2.0\r\n"));
    assert!(!looks_like_sip(b"SIP/2.0 4x1 Bad\r\n"));
    assert!(!looks_like_sip(b"\r\n\r\n"));
    assert!(!looks_like_sip(b""));
    assert!(!looks_like_sip(b"INVITE sip:a@b SIP/2.0"[..20].as_ref()));
}

#[test]
fn tcp_capture_started_mid_message_picks_up_at_the_next_message() {
    let a = [198, 51, 100, 20];
    let b = [192, 0, 2, 10];
    let inv = invite_with_body(300);
    // the first segment seen is the tail of an earlier message, then a whole OPTIONS
    let records = vec![
        (1, 0, tcp4_eth(a, 5070, b, 5060, 100, "", &inv[150..])),
        (1, 1, tcp4_eth(a, 5070, b, 5060, 100 + (inv.len() - 150) as u32, "", OPTIONS)),
    ];
    let (got, _, _) = read_all(pcap(1, &records), None);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload, OPTIONS);
    // a flow seen from its SYN whose first data is not SIP is written off
    let records = vec![
        (1, 0, tcp4_eth(a, 5070, b, 5060, 1, "S", b"")),
        (1, 1, tcp4_eth(a, 5070, b, 5060, 2, "", b"GET / HTTP/1.1\r\n\r\n")),
        (1, 2, tcp4_eth(a, 5070, b, 5060, 20, "", OPTIONS)),
    ];
    let (got, _, _) = read_all(pcap(1, &records), None);
    assert!(got.is_empty());
}

#[test]
fn peek_ts_shows_the_next_message_without_taking_it() {
    // Two messages completed by one TCP segment, then a UDP one, then a cut record: peeking
    // neither skips nor repeats a message, and the error comes once, at the peek.
    let a = [198, 51, 100, 20];
    let b = [192, 0, 2, 10];
    let mut stream = invite_with_body(100);
    stream.extend_from_slice(OPTIONS);
    let udp = udp4_eth([203, 0, 113, 10], 5060, [192, 0, 2, 10], 5060, OPTIONS);
    let f = pcap(
        1,
        &[
            (7, 0, tcp4_eth(a, 5070, b, 5060, 1, "", &stream)),
            (9, 500_000, udp.clone()),
            (10, 0, udp),
        ],
    );
    let cut = f.len() - 20;
    let mut r = CaptureReader::new(Cursor::new(f[..cut].to_vec()), Limits::default()).unwrap();
    let mut seen = Vec::new();
    loop {
        let peeked = match r.peek_ts() {
            Ok(Some(ts)) => ts,
            Ok(None) => panic!("the error comes before the end"),
            Err(e) => {
                assert!(matches!(e, CaptureError::Truncated { .. }), "{e:?}");
                break;
            }
        };
        assert_eq!(r.peek_ts().unwrap(), Some(peeked), "peeking twice changes nothing");
        let p = r.next_packet().unwrap().expect("a peeked message is there");
        assert_eq!(p.ts, peeked);
        seen.push((p.ts, p.transport, p.payload.len()));
    }
    assert_eq!(r.peek_ts().unwrap(), None, "after the error: the end");
    assert!(r.next_packet().unwrap().is_none());
    assert_eq!(
        seen,
        vec![
            (Duration::new(7, 0), Transport::Tcp, stream.len() - OPTIONS.len()),
            (Duration::new(7, 0), Transport::Tcp, OPTIONS.len()),
            (Duration::new(9, 500_000_000), Transport::Udp, OPTIONS.len()),
        ]
    );
}

/// A big-endian pcapng file: SHB, one IDB (Ethernet, microseconds), EPBs.
fn pcapng_be(records: &[(u64, Vec<u8>)]) -> Vec<u8> {
    fn block(f: &mut Vec<u8>, ty: u32, body: &[u8]) {
        let pad = (4 - body.len() % 4) % 4;
        let len = (12 + body.len() + pad) as u32;
        f.extend_from_slice(&ty.to_be_bytes());
        f.extend_from_slice(&len.to_be_bytes());
        f.extend_from_slice(body);
        f.extend_from_slice(&vec![0; pad]);
        f.extend_from_slice(&len.to_be_bytes());
    }
    let mut f = Vec::new();
    let mut shb = Vec::new();
    shb.extend_from_slice(&0x1a2b3c4du32.to_be_bytes());
    shb.extend_from_slice(&1u16.to_be_bytes());
    shb.extend_from_slice(&0u16.to_be_bytes());
    shb.extend_from_slice(&(-1i64).to_be_bytes());
    block(&mut f, 0x0a0d0d0a, &shb);
    let mut idb = Vec::new();
    idb.extend_from_slice(&1u16.to_be_bytes());
    idb.extend_from_slice(&0u16.to_be_bytes());
    idb.extend_from_slice(&0u32.to_be_bytes());
    block(&mut f, 1, &idb);
    for (ts, data) in records {
        let mut epb = Vec::new();
        epb.extend_from_slice(&0u32.to_be_bytes());
        epb.extend_from_slice(&((ts >> 32) as u32).to_be_bytes());
        epb.extend_from_slice(&(*ts as u32).to_be_bytes());
        epb.extend_from_slice(&(data.len() as u32).to_be_bytes());
        epb.extend_from_slice(&(data.len() as u32).to_be_bytes());
        epb.extend_from_slice(data);
        block(&mut f, 6, &epb);
    }
    f
}

#[test]
fn corrupt_block_in_big_endian_pcapng_resyncs_in_the_sections_byte_order() {
    let rec = udp4_eth([203, 0, 113, 10], 5060, [192, 0, 2, 10], 5060, OPTIONS);
    let records: Vec<_> = (1..=4u64).map(|s| (s * 1_000_000, rec.clone())).collect();
    let f = pcapng_be(&records);
    let (got, err, _) = read_all(f.clone(), None);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(got.len(), 4);
    let epb_len = 12 + 20 + rec.len().div_ceil(4) * 4;
    let second = 28 + 20 + epb_len;
    let mut g = f.clone();
    // a length that is fine read little endian (and wrong either way)
    g[second + 4..second + 8].copy_from_slice(&0x4000_0000u32.to_be_bytes());
    let mut r = CaptureReader::new(Cursor::new(g), Limits::default()).unwrap();
    let mut ts = Vec::new();
    while let Some(p) = r.next_packet().expect("resynchronised, no error") {
        ts.push(p.ts.as_secs());
    }
    assert_eq!(ts, vec![1, 3, 4], "the corrupt block is lost, the rest is read");
    assert_eq!(r.stats().skipped_bytes, epb_len as u64);
    let w = r.warnings();
    assert_eq!(w.len(), 1);
    assert!(w[0].starts_with(&format!("corrupt at byte {second}:")), "{w:?}");
    assert!(w[0].ends_with(&format!("resumed at byte {}", second + epb_len)), "{w:?}");
}
