//! Writes a large pcap for benchmarks by repeating real SIP messages.
//!
//! `cargo run --release -p sipwall-capture --example gen_capture -- OUT.pcap SIZE_MB CAPTURE...`
//!
//! Takes every UDP SIP message of the given captures (the recorded fixtures) as templates
//! and writes Ethernet/IPv4/UDP records until OUT reaches SIZE_MB megabytes (10^6 bytes).
//! Sources vary: requests from scanners come from 203.0.113.0/24, others from
//! 198.51.100.0/24 (the original host byte is replaced by a counter), the protected side
//! stays 192.0.2.10; timestamps advance 0.5 ms per record from 2023-11-14.
use std::io::{BufWriter, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use sipwall_capture::{CaptureReader, Transport};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: gen_capture OUT.pcap SIZE_MB CAPTURE...");
        std::process::exit(2);
    }
    let target: u64 = args[2].parse::<u64>()? * 1_000_000;
    let mut templates: Vec<(SocketAddr, SocketAddr, Vec<u8>)> = Vec::new();
    for path in &args[3..] {
        let mut r = CaptureReader::open(Path::new(path))?;
        while let Ok(Some(p)) = r.next_packet() {
            if p.transport == Transport::Udp && p.src.is_ipv4() {
                templates.push((p.src, p.dst, p.payload.to_vec()));
            }
        }
    }
    if templates.is_empty() {
        return Err("no UDP/IPv4 SIP messages in the inputs".into());
    }
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&args[1])?);
    out.write_all(&0xa1b2c3d4u32.to_le_bytes())?;
    out.write_all(&2u16.to_le_bytes())?;
    out.write_all(&4u16.to_le_bytes())?;
    out.write_all(&[0; 8])?;
    out.write_all(&65535u32.to_le_bytes())?;
    out.write_all(&1u32.to_le_bytes())?;
    let mut written = 24u64;
    let mut n = 0u64;
    let mut frame = Vec::with_capacity(2048);
    let start_us = 1_700_000_000_000_000u64;
    while written < target {
        let (src, dst, payload) = &templates[(n as usize) % templates.len()];
        // Replace the remote side's last byte so the capture has many sources.
        let remap = |a: SocketAddr| -> [u8; 4] {
            match a.ip() {
                IpAddr::V4(v4) if v4.octets()[..3] != [192, 0, 2] => {
                    let mut o = v4.octets();
                    o[3] = 1 + ((n / templates.len() as u64) % 250) as u8;
                    o
                }
                IpAddr::V4(v4) => v4.octets(),
                IpAddr::V6(_) => [0; 4],
            }
        };
        let (s, d) = (remap(*src), remap(*dst));
        frame.clear();
        frame.extend_from_slice(&[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00]);
        let total = (20 + 8 + payload.len()) as u16;
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&s);
        ip[16..20].copy_from_slice(&d);
        let mut sum = 0u32;
        for c in ip.chunks(2) {
            sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&src.port().to_be_bytes());
        frame.extend_from_slice(&dst.port().to_be_bytes());
        frame.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        frame.extend_from_slice(&[0, 0]); // no UDP checksum (allowed over IPv4)
        frame.extend_from_slice(payload);
        let ts = start_us + n * 500;
        out.write_all(&((ts / 1_000_000) as u32).to_le_bytes())?;
        out.write_all(&((ts % 1_000_000) as u32).to_le_bytes())?;
        out.write_all(&(frame.len() as u32).to_le_bytes())?;
        out.write_all(&(frame.len() as u32).to_le_bytes())?;
        out.write_all(&frame)?;
        written += 16 + frame.len() as u64;
        n += 1;
    }
    out.flush()?;
    eprintln!("{}: {n} SIP messages, {written} bytes, from {} templates", args[1], templates.len());
    Ok(())
}
