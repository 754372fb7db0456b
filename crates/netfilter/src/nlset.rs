//! Set elements written straight to nf_tables over netlink (no `nft` process): one batch
//! (`NFNL_MSG_BATCH_BEGIN` .. `END`, one kernel transaction, all or nothing) per call.
//!
//! Hash sets hold an address as one element. Interval sets hold a range as two elements: the
//! start (with the timeout) and the first address after the range flagged
//! `NFT_SET_ELEM_INTERVAL_END` (no timeout: the kernel refuses one there, and removes the end
//! with its expired start); a range reaching the top of the address space has no end element.
//! This is how `nft` itself encodes them (`nft --debug=netlink`).
use std::io;
use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::time::Duration;

use crate::netlink::{self, MsgBuf, NLMSG_ERROR, NLM_F_ACK, NLM_F_CREATE, NLM_F_REQUEST};
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
const NFPROTO_INET: u8 = 1;
/// Elements per message: a range is two elements of up to 44 bytes (IPv6), and the nested
/// element list's length is 16 bits.
const ELEMS_PER_MSG: usize = 256;

/// An element key: one address (hash set) or an inclusive address range (interval set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Key {
    /// One address, in a hash set.
    Addr(IpAddr),
    /// First and last address of a range, in an interval set.
    Range(IpAddr, IpAddr),
}

/// One element change in set `set` of the writer's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NlOp {
    /// Add with an optional timeout (none = until removed).
    Add(&'static str, Key, Option<Duration>),
    /// Delete.
    Del(&'static str, Key),
}

fn bytes_of(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// The address after `ip`, None at the top of the address space.
pub(crate) fn next_addr(ip: IpAddr) -> Option<IpAddr> {
    match ip {
        IpAddr::V4(a) => u32::from(a).checked_add(1).map(|v| IpAddr::V4(v.into())),
        IpAddr::V6(a) => u128::from(a).checked_add(1).map(|v| IpAddr::V6(v.into())),
    }
}

fn put_elem(m: &mut MsgBuf, key: IpAddr, end: bool, timeout: Option<Duration>) {
    let e = m.nest_start(NFTA_LIST_ELEM);
    let k = m.nest_start(NFTA_SET_ELEM_KEY);
    m.attr(NFTA_DATA_VALUE, &bytes_of(key));
    m.nest_end(k);
    if end {
        m.attr(NFTA_SET_ELEM_FLAGS, &NFT_SET_ELEM_INTERVAL_END.to_be_bytes());
    }
    if let Some(t) = timeout {
        m.attr(NFTA_SET_ELEM_TIMEOUT, &(t.as_millis().max(1) as u64).to_be_bytes());
    }
    m.nest_end(e);
}

/// A netlink socket for set element updates of one `inet` table.
pub(crate) struct NlSetWriter {
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
    pub(crate) fn open(table: &str) -> io::Result<Self> {
        let fd = sys::netfilter_socket()?;
        sys::set_recv_timeout(&fd, Duration::from_secs(2))?;
        // A large batch is one send (the kernel refuses a message larger than the send
        // buffer) and one ack per message: raise both buffers, best effort.
        for (force, plain, bytes) in [
            (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, 64 << 20),
            (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, 8 << 20),
        ] {
            if sys::set_int_opt(&fd, libc::SOL_SOCKET, force, bytes).is_err() {
                let _ = sys::set_int_opt(&fd, libc::SOL_SOCKET, plain, bytes);
            }
        }
        Ok(NlSetWriter { fd, table: table.to_string(), buf: vec![0u8; 65536] })
    }

    /// The batch for these ops: (bytes, number of acks to expect). Consecutive ops of the
    /// same kind on the same set share one message (up to [`ELEMS_PER_MSG`] elements), as
    /// `nft` does: one ack per message, not per element, keeps the acks of a large batch
    /// within the socket's receive buffer.
    fn render(&self, ops: &[NlOp]) -> (Vec<u8>, usize) {
        let mut m = MsgBuf::new(100 * ops.len() + 64, 0);
        let b = m.start(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, 0, NFNL_SUBSYS_NFTABLES);
        m.finish(b);
        let mut messages = 0;
        let mut i = 0;
        while i < ops.len() {
            let (add, set) = match ops[i] {
                NlOp::Add(s, ..) => (true, s),
                NlOp::Del(s, _) => (false, s),
            };
            let (t, flags) =
                if add { (NFT_MSG_NEWSETELEM, NLM_F_CREATE) } else { (NFT_MSG_DELSETELEM, 0) };
            let s = m.start(
                (NFNL_SUBSYS_NFTABLES << 8) | t,
                NLM_F_REQUEST | NLM_F_ACK | flags,
                NFPROTO_INET,
                0,
            );
            messages += 1;
            m.attr_str(NFTA_SET_ELEM_LIST_TABLE, &self.table);
            m.attr_str(NFTA_SET_ELEM_LIST_SET, set);
            let l = m.nest_start(NFTA_SET_ELEM_LIST_ELEMENTS);
            let mut n = 0;
            while i < ops.len() && n < ELEMS_PER_MSG {
                let (key, timeout) = match ops[i] {
                    NlOp::Add(s2, k, t) if add && s2 == set => (k, t),
                    NlOp::Del(s2, k) if !add && s2 == set => (k, None),
                    _ => break,
                };
                match key {
                    Key::Addr(a) => put_elem(&mut m, a, false, timeout),
                    Key::Range(first, last) => {
                        put_elem(&mut m, first, false, timeout);
                        if let Some(end) = next_addr(last) {
                            // The kernel refuses a timeout on an end element (EINVAL); its
                            // garbage collector removes the end together with the expired start.
                            put_elem(&mut m, end, true, None);
                        }
                    }
                }
                i += 1;
                n += 1;
            }
            m.nest_end(l);
            m.finish(s);
        }
        let e = m.start(NFNL_MSG_BATCH_END, NLM_F_REQUEST, 0, NFNL_SUBSYS_NFTABLES);
        m.finish(e);
        (m.buf, messages)
    }

    /// Apply the ops as one transaction. Err carries the first errno the kernel reported
    /// (the whole batch is then rolled back).
    pub(crate) fn apply(&mut self, ops: &[NlOp]) -> io::Result<()> {
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
            for (t, msg) in netlink::messages(&self.buf[..lens[0].min(self.buf.len())]) {
                let Some(errno) = netlink::error_code(msg).filter(|_| t == NLMSG_ERROR) else {
                    continue;
                };
                acks += 1;
                if errno != 0 && first_err.is_none() {
                    first_err = Some(io::Error::from_raw_os_error(-errno));
                    // After an error the kernel aborts the batch: no more acks follow.
                    acks = expected;
                }
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
        let a = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(next_addr(a("203.0.113.5")), Some(a("203.0.113.6")));
        assert_eq!(next_addr(a("203.0.113.255")), Some(a("203.0.114.0")));
        assert_eq!(next_addr(a("255.255.255.255")), None);
        assert_eq!(next_addr(a("2001:db8:0:ffff:ffff:ffff:ffff:ffff")), Some(a("2001:db8:1::")));
    }
}
