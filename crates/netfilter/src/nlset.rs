//! Ban set elements written straight to nf_tables over netlink (no `nft` process): one batch
//! (`NFNL_MSG_BATCH_BEGIN` .. `END`, one kernel transaction) per call.
//!
//! Interval sets hold an address range as two elements: the start (with the timeout) and the
//! first address after the range flagged `NFT_SET_ELEM_INTERVAL_END` (no timeout: the kernel
//! refuses one there, and removes the end with its expired start); a range reaching the top of
//! the address space has no end element.
//! This is how `nft` itself encodes them (`nft --debug=netlink`).
use std::io;
use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::time::Duration;

use ipnet::IpNet;

use crate::sys;

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_FLAGS: u16 = 3;
const NFTA_SET_ELEM_TIMEOUT: u16 = 4;
const NFTA_DATA_VALUE: u16 = 1;
const NFT_SET_ELEM_INTERVAL_END: u32 = 1;
const NLA_F_NESTED: u16 = 0x8000;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_CREATE: u16 = 0x400;
const NLMSG_ERROR: u16 = 2;
const NFPROTO_INET: u8 = 1;

/// One element change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NlOp {
    /// Add with an optional timeout.
    Add(IpNet, Option<Duration>),
    /// Delete.
    Del(IpNet),
}

fn bytes_of(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// The first address after the range, None at the top of the address space.
fn after(net: &IpNet) -> Option<IpAddr> {
    match net.trunc() {
        IpNet::V4(n) => u32::from(n.broadcast()).checked_add(1).map(|v| IpAddr::V4(v.into())),
        IpNet::V6(n) => u128::from(n.broadcast()).checked_add(1).map(|v| IpAddr::V6(v.into())),
    }
}

struct Msg {
    buf: Vec<u8>,
    seq: u32,
}

impl Msg {
    fn header(&mut self, t: u16, flags: u16, family: u8, res_id: u16) -> usize {
        let start = self.buf.len();
        self.seq += 1;
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.extend_from_slice(&t.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&self.seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.extend_from_slice(&[family, 0]);
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        start
    }
    fn finish(&mut self, start: usize) {
        let len = (self.buf.len() - start) as u32;
        self.buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
    }
    fn attr(&mut self, t: u16, data: &[u8]) {
        self.buf.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
        self.buf.extend_from_slice(&t.to_ne_bytes());
        self.buf.extend_from_slice(data);
        while self.buf.len() % 4 != 0 {
            self.buf.push(0);
        }
    }
    fn nest_start(&mut self, t: u16) -> usize {
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        self.buf.extend_from_slice(&(t | NLA_F_NESTED).to_ne_bytes());
        at
    }
    fn nest_end(&mut self, at: usize) {
        let len = (self.buf.len() - at) as u16;
        self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    }
    fn elem(&mut self, key: IpAddr, end: bool, timeout: Option<Duration>) {
        let e = self.nest_start(NFTA_LIST_ELEM);
        let k = self.nest_start(NFTA_SET_ELEM_KEY);
        self.attr(NFTA_DATA_VALUE, &bytes_of(key));
        self.nest_end(k);
        if end {
            self.attr(NFTA_SET_ELEM_FLAGS, &NFT_SET_ELEM_INTERVAL_END.to_be_bytes());
        }
        if let Some(t) = timeout {
            self.attr(NFTA_SET_ELEM_TIMEOUT, &(t.as_millis().max(1) as u64).to_be_bytes());
        }
        self.nest_end(e);
    }
}

/// A netlink socket for set element updates.
pub struct NlSetWriter {
    fd: OwnedFd,
    table: String,
    buf: Vec<u8>,
}

impl std::fmt::Debug for NlSetWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NlSetWriter").field("table", &self.table).finish()
    }
}

impl NlSetWriter {
    /// Open a socket for table `inet <table>`.
    pub fn open(table: &str) -> io::Result<Self> {
        let fd = sys::netfilter_socket()?;
        sys::set_recv_timeout(&fd, Duration::from_secs(2))?;
        Ok(NlSetWriter { fd, table: table.to_string(), buf: vec![0u8; 65536] })
    }

    /// Render the batch for these ops (ban4 for IPv4, ban6 for IPv6).
    fn render(&self, ops: &[NlOp]) -> (Vec<u8>, usize) {
        let mut m = Msg { buf: Vec::with_capacity(256 * ops.len() + 64), seq: 0 };
        let b = m.header(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, 0, NFNL_SUBSYS_NFTABLES);
        m.finish(b);
        for op in ops {
            let (net, timeout, t, flags) = match *op {
                NlOp::Add(n, t) => (n, t, NFT_MSG_NEWSETELEM, NLM_F_CREATE),
                NlOp::Del(n) => (n, None, NFT_MSG_DELSETELEM, 0),
            };
            let net = net.trunc();
            let set = if matches!(net, IpNet::V4(_)) { "ban4" } else { "ban6" };
            let s = m.header(
                (NFNL_SUBSYS_NFTABLES << 8) | t,
                NLM_F_REQUEST | NLM_F_ACK | flags,
                NFPROTO_INET,
                0,
            );
            m.attr(NFTA_SET_ELEM_LIST_TABLE, format!("{}\0", self.table).as_bytes());
            m.attr(NFTA_SET_ELEM_LIST_SET, format!("{set}\0").as_bytes());
            let l = m.nest_start(NFTA_SET_ELEM_LIST_ELEMENTS);
            m.elem(net.network(), false, timeout);
            if let Some(end) = after(&net) {
                // The kernel refuses a timeout on an end element (EINVAL); its garbage
                // collector removes the end together with the expired start.
                m.elem(end, true, None);
            }
            m.nest_end(l);
            m.finish(s);
        }
        let e = m.header(NFNL_MSG_BATCH_END, NLM_F_REQUEST, 0, NFNL_SUBSYS_NFTABLES);
        m.finish(e);
        (m.buf, ops.len())
    }

    /// Apply the ops as one transaction. Err carries the first errno the kernel reported
    /// (the whole batch is then rolled back).
    pub fn apply(&mut self, ops: &[NlOp]) -> io::Result<()> {
        if ops.is_empty() {
            return Ok(());
        }
        let (msg, expected) = self.render(ops);
        sys::send(&self.fd, &msg)?;
        let mut acks = 0;
        let mut first_err: Option<io::Error> = None;
        let mut lens = [0usize; 1];
        while acks < expected {
            let n = sys::recv_many(&self.fd, std::slice::from_mut(&mut self.buf), &mut lens)?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "no nf_tables ack"));
            }
            let mut rest = &self.buf[..lens[0].min(self.buf.len())];
            while rest.len() >= 16 {
                let len = u32::from_ne_bytes(rest[0..4].try_into().unwrap_or([0; 4])) as usize;
                if len < 16 || len > rest.len() {
                    break;
                }
                let t = u16::from_ne_bytes([rest[4], rest[5]]);
                if t == NLMSG_ERROR && len >= 20 {
                    acks += 1;
                    let errno = i32::from_ne_bytes(rest[16..20].try_into().unwrap_or([0; 4]));
                    if errno != 0 && first_err.is_none() {
                        first_err = Some(io::Error::from_raw_os_error(-errno));
                        // After an error the kernel aborts the batch: no more acks follow.
                        acks = expected;
                    }
                }
                let aligned = (len + 3) & !3;
                rest = if aligned >= rest.len() { &[] } else { &rest[aligned..] };
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_end_is_the_next_address_and_none_at_the_top() {
        let n = |s: &str| s.parse::<IpNet>().unwrap();
        assert_eq!(after(&n("203.0.113.5/32")), Some("203.0.113.6".parse().unwrap()));
        assert_eq!(after(&n("203.0.113.77/24")), Some("203.0.114.0".parse().unwrap()));
        assert_eq!(after(&n("255.255.255.0/24")), None);
        assert_eq!(after(&n("2001:db8::/48")), Some("2001:db8:1::".parse().unwrap()));
    }
}
