//! The view against packets built byte by byte and, as an oracle, by `etherparse`.

use std::net::{IpAddr, Ipv6Addr};

use etherparse::{
    IpAuthHeader, IpHeaders, IpNumber, Ipv6Extensions, Ipv6FlowLabel, Ipv6FragmentHeader,
    Ipv6Header, Ipv6RawExtHeader, PacketBuilder, SlicedPacket, TransportSlice,
};
use sipwall_wire::{
    parse_ip, parse_packet, protocol, Frag, Header, Transport, WireError, L4, MAX_EXTENSION_HEADERS,
};

const INVITE: &[u8] = b"INVITE sip:100@[2001:db8:10::10] SIP/2.0\r\n\
Via: SIP/2.0/UDP [2001:db8:113::5]:5070;branch=z9hG4bK-1\r\n\
From: <sip:100@[2001:db8:113::5]>;tag=1\r\nTo: <sip:100@[2001:db8:10::10]>\r\n\
Call-ID: 1@2001:db8:113::5\r\nCSeq: 1 INVITE\r\nUser-Agent: friendly-scanner\r\n\
Content-Length: 0\r\n\r\n";

fn a6(s: &str) -> [u8; 16] {
    s.parse::<Ipv6Addr>().unwrap().octets()
}

fn v6_header() -> Ipv6Header {
    Ipv6Header {
        traffic_class: 0,
        flow_label: Ipv6FlowLabel::ZERO,
        payload_length: 0,
        next_header: IpNumber::UDP,
        hop_limit: 64,
        source: a6("2001:db8:113::5"),
        destination: a6("2001:db8:10::10"),
    }
}

fn dst_opts() -> Ipv6RawExtHeader {
    // PadN over the 6 option bytes
    Ipv6RawExtHeader::new_raw(IpNumber::UDP, &[1, 4, 0, 0, 0, 0]).unwrap()
}

fn auth() -> IpAuthHeader {
    IpAuthHeader::new(IpNumber::UDP, 0x100, 1, &[0xab; 12]).unwrap()
}

fn build6(exts: Ipv6Extensions, udp: bool, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ip(IpHeaders::Ipv6(v6_header(), exts));
    let mut out = Vec::new();
    if udp {
        b.udp(5070, 5060).write(&mut out, payload).unwrap();
    } else {
        b.tcp(5070, 5060, 1000, 4096).write(&mut out, payload).unwrap();
    }
    out
}

/// Our view and etherparse agree on addresses, protocol, ports and payload.
fn agrees_with_etherparse(bytes: &[u8]) {
    let ours = parse_packet(bytes).unwrap();
    let theirs = SlicedPacket::from_ip(bytes).unwrap();
    let net = theirs.net.as_ref().unwrap();
    let ip = match net {
        etherparse::NetSlice::Ipv4(s) => {
            (IpAddr::V4(s.header().source_addr()), IpAddr::V4(s.header().destination_addr()))
        }
        etherparse::NetSlice::Ipv6(s) => {
            (IpAddr::V6(s.header().source_addr()), IpAddr::V6(s.header().destination_addr()))
        }
        _ => panic!("not IP"),
    };
    assert_eq!((ours.ip.src, ours.ip.dst), ip);
    match (theirs.transport.unwrap(), ours.transport) {
        (TransportSlice::Udp(u), Transport::Udp(o)) => {
            assert_eq!((o.src_port, o.dst_port), (u.source_port(), u.destination_port()));
            assert_eq!(o.payload, u.payload());
        }
        (TransportSlice::Tcp(t), Transport::Tcp(o)) => {
            assert_eq!(
                (o.src_port, o.dst_port, o.seq),
                (t.source_port(), t.destination_port(), t.sequence_number())
            );
            assert_eq!(o.payload, t.payload());
        }
        (t, o) => panic!("transport differs: {t:?} vs {o:?}"),
    }
}

#[test]
fn ipv4_udp_and_tcp_agree_with_etherparse() {
    for udp in [true, false] {
        let b = PacketBuilder::ipv4([203, 0, 113, 9], [192, 0, 2, 10], 64);
        let mut out = Vec::new();
        if udp {
            b.udp(5070, 5060).write(&mut out, INVITE).unwrap();
        } else {
            b.tcp(5070, 5060, 77, 4096).write(&mut out, INVITE).unwrap();
        }
        agrees_with_etherparse(&out);
        let p = parse_packet(&out).unwrap();
        assert_eq!(p.transport.l4(), if udp { L4::Udp } else { L4::Tcp });
        assert_eq!(p.ip.header_len, 20);
        assert_eq!(p.transport.payload(), INVITE);
    }
}

#[test]
fn ipv6_extension_headers_in_front_of_udp_and_tcp_agree_with_etherparse() {
    let cases = [
        Ipv6Extensions { destination_options: Some(dst_opts()), ..Default::default() },
        Ipv6Extensions { auth: Some(auth()), ..Default::default() },
        Ipv6Extensions {
            hop_by_hop_options: Some(dst_opts()),
            destination_options: Some(dst_opts()),
            auth: Some(auth()),
            ..Default::default()
        },
        // An atomic fragment (offset 0, no more fragments) is a whole packet.
        Ipv6Extensions {
            fragment: Some(Ipv6FragmentHeader::new(IpNumber::UDP, Default::default(), false, 9)),
            ..Default::default()
        },
    ];
    for exts in cases {
        for udp in [true, false] {
            let pkt = build6(exts.clone(), udp, INVITE);
            agrees_with_etherparse(&pkt);
            let p = parse_packet(&pkt).unwrap();
            assert!(p.ip.extension_headers >= 1, "{exts:?}");
            assert_eq!(p.ip.frag, None);
            assert_eq!(p.transport.payload(), INVITE);
        }
    }
}

/// IPv6 fixed header with `next` and `payload` after it (payload length set).
fn raw6(next: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&u16::try_from(payload.len()).unwrap().to_be_bytes());
    p.extend_from_slice(&[next, 64]);
    p.extend_from_slice(&a6("2001:db8:113::5"));
    p.extend_from_slice(&a6("2001:db8:10::10"));
    p.extend_from_slice(payload);
    p
}

fn udp(payload: &[u8]) -> Vec<u8> {
    let mut u = vec![0x13, 0xce, 0x13, 0xc4];
    u.extend_from_slice(&u16::try_from(8 + payload.len()).unwrap().to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

#[test]
fn ah_is_walked_by_its_four_octet_length() {
    // AH: next UDP, length 4 -> (4 + 2) * 4 = 24 octets
    let mut body = vec![17, 4, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
    body.extend_from_slice(&[0xab; 12]);
    body.extend_from_slice(&udp(b"OPTIONS"));
    let pkt = raw6(protocol::AH, &body);
    let p = parse_packet(&pkt).unwrap();
    assert_eq!(p.ip.header_len, 40 + 24);
    assert_eq!(p.ip.protocol, 17);
    assert_eq!(p.transport.dst_port(), 5060);
    assert_eq!(p.transport.payload(), b"OPTIONS");
}

#[test]
fn fragments_report_offset_more_and_id() {
    // Hop-by-hop then Fragment (offset 2 * 8, more, id 5).
    let mut body = vec![44, 0, 1, 4, 0, 0, 0, 0];
    body.extend_from_slice(&[17, 0, 0, 0x11, 0, 0, 0, 5]);
    body.extend_from_slice(&[9, 9, 9, 9]);
    let pkt = raw6(protocol::HOP_BY_HOP, &body);
    let ip = parse_ip(&pkt).unwrap();
    assert_eq!(ip.frag, Some(Frag { id: 5, offset: 16, more: true }));
    assert_eq!(ip.payload, &[9, 9, 9, 9]);
    assert!(ip.is_non_first_fragment());
    assert_eq!(parse_packet(&pkt), Err(WireError::NonFirstFragment { offset: 16 }));

    // IPv4: id 9, MF set, offset 8, padding after the total length trimmed.
    let mut p = vec![0x45, 0, 0, 24, 0, 9, 0x20, 0x01, 64, 17, 0, 0];
    p.extend_from_slice(&[192, 0, 2, 1, 192, 0, 2, 2, 1, 2, 3, 4, 0xee, 0xee]);
    let ip = parse_ip(&p).unwrap();
    assert_eq!(ip.payload, &[1, 2, 3, 4]);
    assert_eq!(ip.frag, Some(Frag { id: 9, offset: 8, more: true }));
    assert_eq!(parse_packet(&p), Err(WireError::NonFirstFragment { offset: 8 }));
}

#[test]
fn esp_no_next_header_and_unknown_end_the_walk() {
    for next in [protocol::ESP, protocol::NO_NEXT_HEADER, 58, 253] {
        let mut body = vec![next, 0, 1, 4, 0, 0, 0, 0];
        body.extend_from_slice(&udp(b"x"));
        let pkt = raw6(protocol::DESTINATION_OPTIONS, &body);
        assert_eq!(parse_ip(&pkt).unwrap().protocol, next);
        assert_eq!(parse_packet(&pkt), Err(WireError::NotUdpOrTcp(next)));
    }
}

#[test]
fn extension_header_chain_is_bounded() {
    let chain = |n: usize| {
        let mut body = Vec::new();
        for i in 0..n {
            let next = if i + 1 == n { 17 } else { protocol::DESTINATION_OPTIONS };
            body.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
        }
        body.extend_from_slice(&udp(b"INVITE"));
        raw6(protocol::DESTINATION_OPTIONS, &body)
    };
    let pkt = chain(MAX_EXTENSION_HEADERS);
    let p = parse_packet(&pkt).unwrap();
    assert_eq!(p.ip.extension_headers, MAX_EXTENSION_HEADERS);
    assert_eq!(p.transport.payload(), b"INVITE");
    assert_eq!(
        parse_packet(&chain(MAX_EXTENSION_HEADERS + 1)),
        Err(WireError::TooManyExtensionHeaders)
    );
}

#[test]
fn malformed_headers_are_named() {
    assert_eq!(parse_ip(&[]), Err(WireError::Truncated(Header::Ip)));
    assert_eq!(parse_ip(&[0x45; 10]), Err(WireError::Truncated(Header::Ipv4)));
    assert_eq!(parse_ip(&[0x25; 30]), Err(WireError::Version(2)));
    assert_eq!(parse_ip(&[0x44; 30]), Err(WireError::Ipv4HeaderLength(16)));
    let mut v4 = vec![0x45, 0, 0, 10, 0, 0, 0, 0, 64, 17, 0, 0];
    v4.extend_from_slice(&[192, 0, 2, 1, 192, 0, 2, 2]);
    assert_eq!(parse_ip(&v4), Err(WireError::Ipv4TotalLength { total: 10, header: 20 }));
    assert_eq!(parse_ip(&[0x60; 39]), Err(WireError::Truncated(Header::Ipv6)));
    // A destination-options header claiming 16 octets where the payload has 8.
    let pkt = raw6(protocol::DESTINATION_OPTIONS, &[17, 1, 1, 4, 0, 0, 0, 0]);
    assert_eq!(
        parse_ip(&pkt),
        Err(WireError::Truncated(Header::Ipv6Extension(protocol::DESTINATION_OPTIONS)))
    );
    let pkt = raw6(protocol::FRAGMENT, &[17, 0, 0]);
    assert_eq!(parse_ip(&pkt), Err(WireError::Truncated(Header::Ipv6Fragment)));
    let pkt = raw6(17, &[0x13, 0xce, 0x13]);
    assert_eq!(parse_packet(&pkt), Err(WireError::Truncated(Header::Udp)));
    let mut tcp = vec![0u8; 20];
    tcp[12] = 4 << 4;
    assert_eq!(parse_packet(&raw6(6, &tcp)), Err(WireError::TcpDataOffset(16)));
    tcp[12] = 6 << 4; // 24 bytes claimed, 20 present
    assert_eq!(parse_packet(&raw6(6, &tcp)), Err(WireError::Truncated(Header::Tcp)));
    assert_eq!(
        WireError::Truncated(Header::Ipv6Extension(51)).to_string(),
        "packet truncated in the IPv6 extension (next header 51) header"
    );
}

#[test]
fn every_prefix_of_a_valid_packet_is_an_error_or_a_shorter_view() {
    let exts = Ipv6Extensions {
        hop_by_hop_options: Some(dst_opts()),
        auth: Some(auth()),
        ..Default::default()
    };
    let pkt = build6(exts, false, INVITE);
    for n in 0..pkt.len() {
        if let Ok(p) = parse_packet(&pkt[..n]) {
            assert!(p.transport.payload().len() < INVITE.len());
        }
    }
}
