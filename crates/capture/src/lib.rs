//! # sipwall-capture — SIP messages out of pcap / pcapng captures
//!
//! An adapter crate: it reads files (through any [`std::io::Read`]) and turns the packets
//! in them into SIP messages with their addresses, transport and capture timestamp, ready
//! for the engine. `#![forbid(unsafe_code)]`.
//!
//! CONTRACT:
//! * Streams: a capture is read through a fixed buffer ([`Limits::read_buffer`]); all
//!   other state is bounded by [`Limits`] (IP reassembly, TCP flows and their buffers), so
//!   memory does not grow with the size of the capture.
//! * Formats: pcap (micro- and nanosecond, both byte orders) and pcapng (several sections
//!   and interfaces, any timestamp resolution). Link types: see [`link`].
//! * Network: IPv4 and IPv6 headers are read by the shared packet view [`sipwall_wire`], the
//!   same code as the inline path (IPv6 extension headers walked: Hop-by-Hop, Routing,
//!   Destination Options, Fragment, AH, at most [`sipwall_wire::MAX_EXTENSION_HEADERS`]; a
//!   packet with more counts as malformed); fragments reassembled with the bounds documented
//!   in [`ip`]. UDP datagrams and TCP streams (per-flow, in order,
//!   framed by Content-Length; policy in [`tcp`]).
//! * SIP is recognised by content on any port ([`looks_like_sip`]): a request line
//!   `METHOD uri SIP/2.0` or a status line `SIP/2.0 NNN`. [`CaptureReader::set_ports`]
//!   keeps only packets whose source or destination port is in a list.
//! * Problems inside packets (non-IP frames, malformed headers, non-SIP payloads, holes)
//!   are counted in [`CaptureStats`] and skipped. A problem with the file itself ends the
//!   read with a [`CaptureError`] that says where (byte offset) and why; everything yielded
//!   before it stands.
//! * Except where the reader can resynchronise: in a pcap file, a record header with an
//!   impossible length makes the reader look ahead (within its buffer) for the next
//!   plausible record header — timestamp within a day of the last one, sane lengths, and
//!   followed by another plausible header — and go on from there ([`CaptureReader::warnings`]
//!   says where and how many bytes were skipped; at most [`MAX_RESYNCS`] times per file).
//!   In a pcapng file, a corrupt block (total length under 12 or not a multiple of 4, a
//!   trailing length that differs, a length past the end, an unparsable body, a packet on an
//!   undescribed interface) makes the reader look ahead the same way for the next plausible
//!   block: a known block type, a sane total length equal to its trailing copy (in the
//!   section's byte order; a section header brings its own), a packet block naming an
//!   interface described in its section, and followed by another plausible block or the end.
//!   The look-ahead never goes past the read buffer ([`Limits::read_buffer`], 1 MiB by
//!   default): corruption longer than that ends the read with a [`CaptureError`].
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

use std::collections::VecDeque;
use std::fs::File;
use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use pcap_parser::pcapng::Block;
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{PcapBlockOwned, PcapError};
use sipwall_wire::{IpPacket, L4};

pub mod ip;
pub mod link;
pub mod tcp;

/// Most resynchronisations after corrupt records in one file before giving up.
pub const MAX_RESYNCS: u32 = 100;
/// Largest plausible captured length of one pcap record when resynchronising.
const MAX_PLAUSIBLE_RECORD: u32 = 262_144;

/// Bounds on everything the reader keeps between packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Size of the file read buffer; also the largest record the reader accepts.
    pub read_buffer: usize,
    /// IP datagrams in reassembly at once (the oldest is dropped to make room).
    pub max_pending_datagrams: usize,
    /// Fragments of one datagram.
    pub max_fragments_per_datagram: usize,
    /// Size of one reassembled datagram (IP payload).
    pub max_datagram_bytes: usize,
    /// Bytes held by reassembly in total.
    pub max_defrag_bytes: usize,
    /// A datagram not complete this long (capture time) after its first fragment is dropped.
    pub fragment_timeout: Duration,
    /// TCP flows (one per direction) tracked at once; least recently used evicted.
    pub max_tcp_flows: usize,
    /// A flow idle this long (capture time) is forgotten.
    pub tcp_idle_timeout: Duration,
    /// Out-of-order segments held per flow before the hole is declared lost.
    pub max_ooo_segments: usize,
    /// Bytes of out-of-order segments held per flow.
    pub max_ooo_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            read_buffer: 1 << 20,
            max_pending_datagrams: 1024,
            max_fragments_per_datagram: 64,
            max_datagram_bytes: 65_535,
            max_defrag_bytes: 8 << 20,
            fragment_timeout: Duration::from_secs(30),
            max_tcp_flows: 4096,
            tcp_idle_timeout: Duration::from_secs(300),
            max_ooo_segments: 16,
            max_ooo_bytes: 64 << 10,
        }
    }
}
// Worst case held: 8 MiB of fragments + 4096 flows x (framer 128 KiB + hold 64 KiB) — the
// framer buffers only partial messages, so in practice a flow holds a few KiB.

/// Transport a SIP message was carried on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// One UDP datagram.
    Udp,
    /// One message framed out of a TCP stream.
    Tcp,
}

/// One SIP message found in the capture. Borrows the reader until the next call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipPacket<'a> {
    /// Capture timestamp since the UNIX epoch (for TCP: of the segment completing the message).
    pub ts: Duration,
    /// Source address and port.
    pub src: SocketAddr,
    /// Destination address and port.
    pub dst: SocketAddr,
    /// UDP or TCP.
    pub transport: Transport,
    /// The SIP message bytes (one message).
    pub payload: &'a [u8],
}

/// What was read, and what was skipped and why.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Bytes of the file consumed so far.
    pub bytes: u64,
    /// Packet records read.
    pub frames: u64,
    /// Frames of a link type this crate does not decode.
    pub unsupported_linktype: u64,
    /// Frames carrying something other than IP.
    pub not_ip: u64,
    /// Frames whose IP/UDP/TCP headers were malformed or cut short.
    pub malformed: u64,
    /// IP fragments seen.
    pub fragments: u64,
    /// Datagrams reassembled from fragments.
    pub reassembled: u64,
    /// Datagrams dropped by reassembly (bound hit or timeout).
    pub fragments_dropped: u64,
    /// UDP datagrams seen.
    pub udp: u64,
    /// TCP segments seen.
    pub tcp_segments: u64,
    /// UDP datagrams / TCP flows left out by the port filter.
    pub port_filtered: u64,
    /// UDP payloads that are not SIP (RTP, DNS, keep-alives, ...).
    pub not_sip: u64,
    /// SIP messages yielded.
    pub sip_messages: u64,
    /// TCP flows followed.
    pub tcp_flows: u64,
    /// TCP flows evicted (LRU or idle).
    pub tcp_flows_evicted: u64,
    /// TCP segments dropped as retransmissions.
    pub tcp_retransmits: u64,
    /// TCP segments received out of order (held).
    pub tcp_out_of_order: u64,
    /// TCP holes given up on (flow resynchronised).
    pub tcp_gaps: u64,
    /// TCP framing errors (flow resynchronised).
    pub tcp_framing_errors: u64,
    /// Corrupt stretches skipped by resynchronising (pcap records, pcapng blocks).
    pub resyncs: u32,
    /// Bytes skipped by resynchronising.
    pub skipped_bytes: u64,
    /// Timestamp of the first and last record.
    pub first_ts: Option<Duration>,
    /// Timestamp of the last record.
    pub last_ts: Option<Duration>,
}

/// Why reading a capture stopped early.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The file could not be opened or read.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The first bytes are neither a pcap nor a pcapng header.
    #[error("not a pcap or pcapng capture ({0})")]
    NotACapture(String),
    /// The file ends in the middle of a record.
    #[error("truncated: the record at byte {offset} is cut short by the end of the file")]
    Truncated {
        /// Byte offset of the incomplete record.
        offset: u64,
    },
    /// A record or block header that cannot be right.
    #[error("corrupt at byte {offset}: {reason}")]
    Corrupt {
        /// Byte offset of the bad record.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
}

impl CaptureError {
    /// Byte offset where reading stopped, when known.
    pub fn offset(&self) -> Option<u64> {
        match self {
            CaptureError::Truncated { offset } | CaptureError::Corrupt { offset, .. } => {
                Some(*offset)
            }
            _ => None,
        }
    }
}

/// Is this payload a SIP message? A status line `SIP/2.0 NNN`, or a request line
/// `TOKEN SP uri-with-colon SP SIP/2.0` ended by CR or LF (leading CR/LF keep-alives skipped).
/// Looks at the first line only (at most 1 KiB of it).
pub fn looks_like_sip(payload: &[u8]) -> bool {
    let start = payload.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(payload.len());
    let p = &payload[start..];
    let head = &p[..p.len().min(1024)];
    if head.len() >= 12 && head[..8].eq_ignore_ascii_case(b"SIP/2.0 ") {
        return head[8..11].iter().all(u8::is_ascii_digit)
            && matches!(head[11], b' ' | b'\r' | b'\n');
    }
    let Some(sp) = head.iter().take(33).position(|&b| b == b' ') else {
        return false;
    };
    if sp == 0
        || !head[..sp].iter().all(|&b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
    {
        return false;
    }
    let line_end = memchr::memchr2(b'\r', b'\n', head).unwrap_or(head.len());
    if line_end < sp + 10 {
        return false;
    }
    let line = &head[..line_end];
    let (rest, version) = line.split_at(line.len() - 8);
    version.eq_ignore_ascii_case(b" SIP/2.0")
        && rest[sp + 1..].contains(&b':')
        && !rest[sp + 1..].contains(&b' ')
}

#[derive(Debug, Clone, Copy)]
struct Iface {
    linktype: u32,
    /// Timestamp units per second.
    resolution: u64,
    /// Seconds added to every timestamp.
    offset: i64,
}

#[derive(Debug, Clone, Copy)]
struct Meta {
    ts: Duration,
    src: SocketAddr,
    dst: SocketAddr,
    transport: Transport,
    start: usize,
    end: usize,
}

/// Everything but the file: decoding state and the queue of messages ready to yield.
struct Decoder {
    ports: Option<Vec<u16>>,
    defrag: ip::Defragmenter,
    tcp: tcp::TcpReassembler,
    out: Vec<u8>,
    queue: VecDeque<Meta>,
    stats: CaptureStats,
}

impl Decoder {
    fn port_ok(&self, a: u16, b: u16) -> bool {
        match &self.ports {
            None => true,
            Some(p) => p.contains(&a) || p.contains(&b),
        }
    }

    fn push_out(
        out: &mut Vec<u8>,
        queue: &mut VecDeque<Meta>,
        stats: &mut CaptureStats,
        m: Meta,
        bytes: &[u8],
    ) {
        let start = out.len();
        out.extend_from_slice(bytes);
        queue.push_back(Meta { start, end: out.len(), ..m });
        stats.sip_messages += 1;
    }

    fn frame(&mut self, linktype: u32, ts: Duration, data: &[u8]) {
        self.stats.frames += 1;
        self.stats.first_ts.get_or_insert(ts);
        self.stats.last_ts = Some(ts);
        let l3 = match link::decode(linktype, data) {
            Ok(l3) => l3,
            Err(link::LinkSkip::UnsupportedLinktype(_)) => {
                self.stats.unsupported_linktype += 1;
                return;
            }
            Err(link::LinkSkip::NotIp) => {
                self.stats.not_ip += 1;
                return;
            }
            Err(link::LinkSkip::Truncated) => {
                self.stats.malformed += 1;
                return;
            }
        };
        // The shared packet view: IPv6 extension headers are walked exactly as inline.
        let parsed = match l3 {
            link::L3::Ipv4(b) => sipwall_wire::parse_ipv4(b),
            link::L3::Ipv6(b) => sipwall_wire::parse_ipv6(b),
        };
        let Ok(ip) = parsed else {
            self.stats.malformed += 1;
            return;
        };
        let Some(proto) = ip.l4() else {
            return;
        };
        match ip.frag {
            None => self.l4(ts, &ip, proto, ip.payload),
            Some(frag) => {
                self.stats.fragments += 1;
                let before = self.defrag.dropped;
                let outcome = self.defrag.push(ip.src, ip.dst, ip.protocol, frag, ip.payload, ts);
                self.stats.fragments_dropped += self.defrag.dropped - before;
                if let ip::DefragOutcome::Complete(whole) = outcome {
                    self.stats.reassembled += 1;
                    self.l4(ts, &ip, proto, &whole);
                }
            }
        }
    }

    fn l4(&mut self, ts: Duration, ip: &IpPacket<'_>, proto: L4, l4: &[u8]) {
        match proto {
            L4::Udp => self.udp(ts, ip, l4),
            L4::Tcp => self.tcp(ts, ip, l4),
        }
    }

    fn udp(&mut self, ts: Duration, ip: &IpPacket<'_>, l4: &[u8]) {
        self.stats.udp += 1;
        // Trusts the UDP length when it is sane; a snap-length cut keeps what is there.
        let Ok(udp) = sipwall_wire::parse_udp(l4) else {
            self.stats.malformed += 1;
            return;
        };
        if !self.port_ok(udp.src_port, udp.dst_port) {
            self.stats.port_filtered += 1;
            return;
        }
        if !looks_like_sip(udp.payload) {
            self.stats.not_sip += 1;
            return;
        }
        let m = Meta {
            ts,
            src: SocketAddr::new(ip.src, udp.src_port),
            dst: SocketAddr::new(ip.dst, udp.dst_port),
            transport: Transport::Udp,
            start: 0,
            end: 0,
        };
        Self::push_out(&mut self.out, &mut self.queue, &mut self.stats, m, udp.payload);
    }

    fn tcp(&mut self, ts: Duration, ip: &IpPacket<'_>, l4: &[u8]) {
        self.stats.tcp_segments += 1;
        let Ok(seg) = sipwall_wire::parse_tcp(l4) else {
            self.stats.malformed += 1;
            return;
        };
        if !self.port_ok(seg.src_port, seg.dst_port) {
            self.stats.port_filtered += 1;
            return;
        }
        let flags =
            tcp::TcpFlags { fin: seg.flags.fin(), syn: seg.flags.syn(), rst: seg.flags.rst() };
        let key = tcp::FlowKey {
            src: SocketAddr::new(ip.src, seg.src_port),
            dst: SocketAddr::new(ip.dst, seg.dst_port),
        };
        let meta =
            Meta { ts, src: key.src, dst: key.dst, transport: Transport::Tcp, start: 0, end: 0 };
        let Decoder { tcp, out, queue, stats, .. } = self;
        tcp.segment(key, seg.seq, flags, seg.payload, ts, &mut |msg| {
            Self::push_out(out, queue, stats, meta, msg);
        });
        let t = self.tcp.stats;
        self.stats.tcp_flows = t.flows_opened;
        self.stats.tcp_flows_evicted = t.flows_evicted;
        self.stats.tcp_retransmits = t.retransmits;
        self.stats.tcp_out_of_order = t.out_of_order;
        self.stats.tcp_gaps = t.gaps;
        self.stats.tcp_framing_errors = t.framing_errors;
    }
}

/// Streaming reader: yields the SIP messages of one capture, in capture order.
pub struct CaptureReader {
    src: Box<dyn PcapReaderIterator + Send>,
    /// Legacy pcap: link type and whether timestamps are in nanoseconds.
    legacy: bool,
    legacy_linktype: u32,
    legacy_nanos: bool,
    legacy_be: bool,
    /// pcapng: the file is pcapng, and the byte order of the current section.
    ng: bool,
    ng_be: bool,
    warnings: Vec<String>,
    /// pcapng: the interfaces of the current section.
    ifaces: Vec<Iface>,
    dec: Decoder,
    done: bool,
    /// `consumed()` at the last Incomplete: a second one at the same place means EOF.
    last_incomplete: Option<usize>,
}

impl std::fmt::Debug for CaptureReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureReader").field("stats", &self.dec.stats).finish_non_exhaustive()
    }
}

impl CaptureReader {
    /// Open a capture file.
    pub fn open(path: &Path) -> Result<Self, CaptureError> {
        Self::new(File::open(path)?, Limits::default())
    }

    /// Read a capture from any reader.
    pub fn new<R: Read + Send + 'static>(reader: R, limits: Limits) -> Result<Self, CaptureError> {
        let src = pcap_parser::create_reader(limits.read_buffer, reader).map_err(|e| match e {
            PcapError::Eof => CaptureError::NotACapture("empty file".into()),
            PcapError::Incomplete(_) => {
                CaptureError::NotACapture("shorter than a capture header".into())
            }
            PcapError::HeaderNotRecognized => CaptureError::NotACapture("unknown header".into()),
            PcapError::ReadError => CaptureError::Io(std::io::Error::other("read failed")),
            other => CaptureError::NotACapture(format!("{other:?}")),
        })?;
        let ng = src.data().get(..4) == Some(&SHB_TYPE.to_le_bytes()[..]);
        let ng_be = ng && src.data().get(8..12) == Some(&BOM.to_be_bytes()[..]);
        Ok(CaptureReader {
            src,
            ng,
            ng_be,
            legacy: false,
            legacy_linktype: 1,
            legacy_nanos: false,
            legacy_be: false,
            warnings: Vec::new(),
            ifaces: Vec::new(),
            dec: Decoder {
                ports: None,
                defrag: ip::Defragmenter::new(limits),
                tcp: tcp::TcpReassembler::new(limits),
                out: Vec::with_capacity(64 << 10),
                queue: VecDeque::new(),
                stats: CaptureStats::default(),
            },
            done: false,
            last_incomplete: None,
        })
    }

    /// Keep only packets whose source or destination port is in `ports` (None: all ports).
    pub fn set_ports(&mut self, ports: Option<Vec<u16>>) {
        self.dec.ports = ports;
    }

    /// Counters so far.
    pub fn stats(&self) -> CaptureStats {
        let mut s = self.dec.stats;
        s.bytes = self.src.consumed() as u64;
        s
    }

    /// Non-fatal problems with the file itself (corrupt stretches skipped), in order.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Read one more block of the file (records, headers) without yielding messages;
    /// false at the end or on an error. For peeking, e.g. at the first timestamp
    /// ([`CaptureStats::first_ts`]) before reading for real.
    pub fn step(&mut self) -> bool {
        if self.done {
            return false;
        }
        match self.read_block() {
            Ok(()) => !self.done,
            Err(_) => {
                self.done = true;
                false
            }
        }
    }

    /// Bytes of the file consumed so far (for progress).
    pub fn position(&self) -> u64 {
        self.src.consumed() as u64
    }

    /// The next SIP message, `Ok(None)` at the end, or the error that stopped the read
    /// (after which `Ok(None)` follows).
    pub fn next_packet(&mut self) -> Result<Option<SipPacket<'_>>, CaptureError> {
        self.fill()?;
        let Some(m) = self.dec.queue.pop_front() else { return Ok(None) };
        Ok(Some(SipPacket {
            ts: m.ts,
            src: m.src,
            dst: m.dst,
            transport: m.transport,
            payload: &self.dec.out[m.start..m.end],
        }))
    }

    /// Timestamp of the message the next [`next_packet`](Self::next_packet) will yield,
    /// reading as far as needed to have one ready, without yielding it; `Ok(None)` at the
    /// end. An error is returned here once (as `next_packet` would) and the read ends.
    /// For merging several captures by time: the message stays in the reader (no copy).
    pub fn peek_ts(&mut self) -> Result<Option<Duration>, CaptureError> {
        self.fill()?;
        Ok(self.dec.queue.front().map(|m| m.ts))
    }

    /// Read blocks until a message is queued or the capture ended (the queue stays empty). An
    /// error is returned once and ends the read. Reusing the output buffer is safe here: the
    /// queue is empty, so nothing borrows it.
    fn fill(&mut self) -> Result<(), CaptureError> {
        while self.dec.queue.is_empty() && !self.done {
            self.dec.out.clear();
            if let Err(e) = self.read_block() {
                self.done = true;
                return Err(e);
            }
        }
        Ok(())
    }

    /// Skip to the next plausible pcap record header / pcapng block after a corrupt one at
    /// `offset`, searching within the read buffer; false when there is none (or too many).
    fn resync(&mut self, offset: u64, reason: &str) -> bool {
        if !(self.legacy || self.ng) || self.dec.stats.resyncs >= MAX_RESYNCS {
            return false;
        }
        // Fill the buffer as far as it goes: the search is within it.
        for _ in 0..8 {
            if self.src.refill().is_err() || self.src.reader_exhausted() {
                break;
            }
        }
        let exhausted = self.src.reader_exhausted();
        let found = if self.legacy {
            let last = self.dec.stats.last_ts.map(|t| t.as_secs());
            find_pcap_record(self.src.data(), self.legacy_be, self.legacy_nanos, last, exhausted)
        } else {
            find_ng_block(self.src.data(), self.ng_be, self.ifaces.len(), exhausted)
        };
        let Some(skip) = found else {
            return false;
        };
        self.src.consume(skip);
        self.last_incomplete = None;
        self.dec.stats.resyncs += 1;
        self.dec.stats.skipped_bytes += skip as u64;
        if self.warnings.len() < 32 {
            self.warnings.push(format!(
                "corrupt at byte {offset}: {reason}; skipped {skip} bytes, resumed at byte {}",
                offset + skip as u64
            ));
        }
        true
    }

    /// A corrupt record or block at `offset`: resynchronise, or stop with the error.
    fn corrupt(&mut self, offset: u64, reason: String) -> Result<(), CaptureError> {
        if self.resync(offset, &reason) {
            return Ok(());
        }
        Err(CaptureError::Corrupt { offset, reason })
    }

    fn read_block(&mut self) -> Result<(), CaptureError> {
        let offset = self.src.consumed() as u64;
        let nothing_buffered = self.src.data().is_empty();
        if self.ng {
            // pcap-parser takes any unknown block type with any length (and does not compare
            // every block's trailing length): check the framing before it parses.
            if let Some(reason) = ng_framing_error(self.src.data(), self.ng_be) {
                return self.corrupt(offset, reason);
            }
        }
        match self.src.next() {
            Ok((len, block)) => {
                match block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        self.legacy = true;
                        self.legacy_be = h.is_bigendian();
                        self.legacy_linktype = h.network.0 as u32;
                        self.legacy_nanos = h.is_nanosecond_precision();
                    }
                    PcapBlockOwned::Legacy(b) => {
                        let frac = if self.legacy_nanos {
                            b.ts_usec
                        } else {
                            b.ts_usec.saturating_mul(1000)
                        };
                        let ts = Duration::new(u64::from(b.ts_sec), frac.min(999_999_999));
                        let n = (b.caplen as usize).min(b.data.len());
                        self.dec.frame(self.legacy_linktype, ts, &b.data[..n]);
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(shb)) => {
                        self.ng_be = shb.big_endian();
                        self.ifaces.clear();
                    }
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        self.ifaces.push(Iface {
                            linktype: idb.linktype.0 as u32,
                            resolution: idb.ts_resolution().unwrap_or(1_000_000).max(1),
                            offset: idb.ts_offset(),
                        });
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        let Some(iface) = self.ifaces.get(epb.if_id as usize).copied() else {
                            let reason = format!(
                                "packet on interface {} which was never described",
                                epb.if_id
                            );
                            return self.corrupt(offset, reason);
                        };
                        let raw = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                        let secs = (raw / iface.resolution).saturating_add_signed(iface.offset);
                        let nanos = (u128::from(raw % iface.resolution) * 1_000_000_000
                            / u128::from(iface.resolution))
                            as u32;
                        let n = (epb.caplen as usize).min(epb.data.len());
                        self.dec.frame(iface.linktype, Duration::new(secs, nanos), &epb.data[..n]);
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                        // No timestamp in a simple packet block: reuse the last one.
                        let linktype = self.ifaces.first().map_or(1, |i| i.linktype);
                        let ts = self.dec.stats.last_ts.unwrap_or_default();
                        let n = (spb.origlen as usize).min(spb.data.len());
                        self.dec.frame(linktype, ts, &spb.data[..n]);
                    }
                    PcapBlockOwned::NG(_) => {}
                }
                self.src.consume(len);
                self.last_incomplete = None;
                Ok(())
            }
            // `to_owned_vec` lets go of the read buffer's borrow (it keeps no input bytes).
            Err(e) => {
                let e = e.to_owned_vec();
                self.read_error(e, offset, nothing_buffered)
            }
        }
    }

    /// What a failed read of the next block means: the end, a cut, more to read, or a corrupt
    /// record to resynchronise after (or report).
    fn read_error(
        &mut self,
        e: PcapError<&'static [u8]>,
        offset: u64,
        nothing_buffered: bool,
    ) -> Result<(), CaptureError> {
        match e {
            PcapError::Eof => {
                self.done = true;
                Ok(())
            }
            PcapError::Incomplete(_) => {
                let at = self.src.consumed();
                if self.last_incomplete == Some(at) && self.src.reader_exhausted() {
                    return Err(CaptureError::Truncated { offset });
                }
                self.last_incomplete = Some(at);
                self.src.refill().map_err(|e| CaptureError::Corrupt {
                    offset,
                    reason: format!("refill failed: {e:?}"),
                })
            }
            // pcap-parser reports a clean end as UnexpectedEof when its buffer was not shifted
            // back to 0 (after a resynchronisation): nothing left means the end, not a cut.
            PcapError::UnexpectedEof if nothing_buffered => {
                self.done = true;
                Ok(())
            }
            // pcapng: a block length past the end is corrupt if a plausible block follows
            // (a real cut leaves none); pcap keeps calling it a cut.
            PcapError::UnexpectedEof => {
                if self.ng && self.resync(offset, "block length runs past the end of the file") {
                    return Ok(());
                }
                Err(CaptureError::Truncated { offset })
            }
            PcapError::BufferTooSmall => {
                let reason = "record length larger than the read buffer (a corrupt length field?)";
                self.corrupt(offset, reason.into())
            }
            PcapError::ReadError => Err(CaptureError::Io(std::io::Error::other(format!(
                "read failed at byte {offset}"
            )))),
            PcapError::NomError(_, kind) | PcapError::OwnedNomError(_, kind) => {
                self.corrupt(offset, format!("unparsable record ({kind:?})"))
            }
            e => Err(CaptureError::Corrupt { offset, reason: format!("{e:?}") }),
        }
    }
}

/// pcapng section header block type (the same in both byte orders).
const SHB_TYPE: u32 = 0x0A0D_0D0A;
/// pcapng byte-order magic.
const BOM: u32 = 0x1A2B_3C4D;

fn word_at(data: &[u8], at: usize, be: bool) -> Option<u32> {
    let b: [u8; 4] = data.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(if be { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) })
}

/// pcap: offset (>= 1) of the first plausible record header that is followed by another
/// one (or by the end of an exhausted file).
fn find_pcap_record(
    data: &[u8],
    be: bool,
    nanos: bool,
    last: Option<u64>,
    exhausted: bool,
) -> Option<usize> {
    let word = |at: usize| word_at(data, at, be);
    let plausible = |at: usize| -> Option<usize> {
        let (sec, frac, cap, orig) = (word(at)?, word(at + 4)?, word(at + 8)?, word(at + 12)?);
        let frac_max = if nanos { 1_000_000_000 } else { 1_000_000 };
        let time_ok = last.is_none_or(|l| u64::from(sec).abs_diff(l) <= 86_400);
        (time_ok && frac < frac_max && cap > 0 && cap <= orig && orig <= MAX_PLAUSIBLE_RECORD)
            .then_some(16 + cap as usize)
    };
    (1..data.len().saturating_sub(15)).find(|&i| {
        plausible(i).is_some_and(|len| {
            let next = i + len;
            (exhausted && next == data.len()) || plausible(next).is_some()
        })
    })
}

/// The byte order and total length of the pcapng block at the start of `data` (a section
/// header brings its own byte order), or why its framing is wrong. None: too short to tell.
fn ng_header(data: &[u8], be: bool) -> Option<Result<(bool, u32, u32), String>> {
    let ty = word_at(data, 0, be)?;
    let be = if ty == SHB_TYPE {
        match word_at(data, 8, false)? {
            BOM => false,
            b if b == BOM.swap_bytes() => true,
            b => return Some(Err(format!("section header with byte-order magic {b:#010x}"))),
        }
    } else {
        be
    };
    let len = word_at(data, 4, be)?;
    if len < 12 || len % 4 != 0 {
        return Some(Err(format!("block total length {len} (not a multiple of 4 of at least 12)")));
    }
    Some(Ok((be, ty, len)))
}

/// The framing of the pcapng block at the start of `data`, when all of it is buffered:
/// why it is wrong, or None (fine, or not buffered yet: the parser decides).
fn ng_framing_error(data: &[u8], be: bool) -> Option<String> {
    let (be, _, len) = match ng_header(data, be)? {
        Ok(h) => h,
        Err(reason) => return Some(reason),
    };
    let trailing = word_at(data, len as usize - 4, be)?;
    (trailing != len).then(|| format!("block total length {len} but trailing length {trailing}"))
}

/// pcapng: is there a plausible block at `at`? Its length, and the byte order and number of
/// interfaces of the section after it. `whole`: its trailing length must be buffered.
fn ng_plausible(
    data: &[u8],
    at: usize,
    be: bool,
    ifaces: usize,
    whole: bool,
) -> Option<(usize, bool, usize)> {
    let (be, ty, len) = ng_header(data.get(at..)?, be)?.ok()?;
    let len = len as usize;
    let ifaces = match ty {
        SHB_TYPE if len >= 28 => 0,
        1 if len >= 20 => ifaces.saturating_add(1),
        // a packet block on an interface of this section
        6 if len >= 32 && (word_at(data, at + 8, be)? as usize) < ifaces => ifaces,
        3 if len >= 16 && ifaces > 0 => ifaces,
        4 | 5 | 9 | 10 | 0xBAD | 0x4000_0BAD | 0x8000_0001 => ifaces,
        _ => return None,
    };
    match word_at(data, at + len - 4, be) {
        Some(trailing) if trailing as usize == len => Some((len, be, ifaces)),
        None if !whole => Some((len, be, ifaces)),
        _ => None,
    }
}

/// pcapng: offset (>= 1) of the first plausible block that is followed by another one (or
/// by the end of an exhausted file; a following block cut by the buffer's end is judged by
/// its header alone).
fn find_ng_block(data: &[u8], be: bool, ifaces: usize, exhausted: bool) -> Option<usize> {
    (1..data.len().saturating_sub(11)).find(|&i| {
        ng_plausible(data, i, be, ifaces, true).is_some_and(|(len, be, ifaces)| {
            let next = i + len;
            (exhausted && next == data.len())
                || ng_plausible(data, next, be, ifaces, exhausted).is_some()
        })
    })
}
