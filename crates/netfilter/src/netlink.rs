//! Netlink message building and reading, written once for the queue client ([`crate::queue`])
//! and the nf_tables set writer ([`crate::nlset`]).
//!
//! Layout (host byte order except where the netfilter ABI says big endian): `nlmsghdr`
//! (16 bytes: length, type, flags, sequence, port id), then `nfgenmsg` (family, version,
//! resource id big endian), then attributes (`nlattr`: length, type, data, padded to 4 bytes).
//! Readers never index past the datagram: a length that does not fit ends the iteration.

/// Netlink header length.
pub(crate) const NLMSG_HDRLEN: usize = 16;
/// `NLMSG_ERROR`: an ack (errno 0) or an error.
pub(crate) const NLMSG_ERROR: u16 = 2;
pub(crate) const NLM_F_REQUEST: u16 = 1;
pub(crate) const NLM_F_ACK: u16 = 4;
pub(crate) const NLM_F_CREATE: u16 = 0x400;
pub(crate) const NLA_F_NESTED: u16 = 0x8000;

/// A buffer of concatenated netlink messages under construction.
#[derive(Debug, Default)]
pub(crate) struct MsgBuf {
    /// The bytes so far.
    pub(crate) buf: Vec<u8>,
    seq: u32,
}

impl MsgBuf {
    /// An empty buffer with room for `capacity` bytes; sequence numbers start after `seq`.
    pub(crate) fn new(capacity: usize, seq: u32) -> Self {
        MsgBuf { buf: Vec::with_capacity(capacity), seq }
    }

    /// The sequence number of the last message started.
    pub(crate) fn seq(&self) -> u32 {
        self.seq
    }

    /// Start a message (netlink + nfgen header); returns its offset for [`MsgBuf::finish`].
    pub(crate) fn start(&mut self, msg_type: u16, flags: u16, family: u8, res_id: u16) -> usize {
        let start = self.buf.len();
        self.seq = self.seq.wrapping_add(1);
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // length, patched by finish
        self.buf.extend_from_slice(&msg_type.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&self.seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.extend_from_slice(&[family, 0]);
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        start
    }

    /// Write the length of the message started at `start`.
    pub(crate) fn finish(&mut self, start: usize) {
        let len = (self.buf.len() - start) as u32;
        self.buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
    }

    /// One attribute.
    pub(crate) fn attr(&mut self, t: u16, data: &[u8]) {
        self.buf.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
        self.buf.extend_from_slice(&t.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
    }

    /// A NUL-terminated string attribute.
    pub(crate) fn attr_str(&mut self, t: u16, s: &str) {
        self.buf.extend_from_slice(&((5 + s.len()) as u16).to_ne_bytes());
        self.buf.extend_from_slice(&t.to_ne_bytes());
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        self.pad();
    }

    fn pad(&mut self) {
        while self.buf.len() % 4 != 0 {
            self.buf.push(0);
        }
    }

    /// Open a nested attribute; returns its offset for [`MsgBuf::nest_end`].
    pub(crate) fn nest_start(&mut self, t: u16) -> usize {
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        self.buf.extend_from_slice(&(t | NLA_F_NESTED).to_ne_bytes());
        at
    }

    /// Close the nested attribute opened at `at`.
    pub(crate) fn nest_end(&mut self, at: usize) {
        let len = (self.buf.len() - at) as u16;
        self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    }
}

/// The netlink messages in a datagram: (type, whole message bytes).
pub(crate) fn messages(buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut rest = buf;
    std::iter::from_fn(move || {
        if rest.len() < NLMSG_HDRLEN {
            return None;
        }
        let len = u32::from_ne_bytes(rest[0..4].try_into().ok()?) as usize;
        if len < NLMSG_HDRLEN || len > rest.len() {
            return None;
        }
        let t = u16::from_ne_bytes(rest[4..6].try_into().ok()?);
        let msg = &rest[..len];
        let aligned = (len + 3) & !3;
        rest = if aligned >= rest.len() { &[] } else { &rest[aligned..] };
        Some((t, msg))
    })
}

/// Sequence number of a message.
pub(crate) fn seq_of(msg: &[u8]) -> u32 {
    msg.get(8..12).and_then(|b| b.try_into().ok()).map_or(0, u32::from_ne_bytes)
}

/// The errno of an `NLMSG_ERROR` message (0 = ack), None if it is too short.
pub(crate) fn error_code(msg: &[u8]) -> Option<i32> {
    msg.get(16..20).and_then(|b| b.try_into().ok()).map(i32::from_ne_bytes)
}

/// The attributes after the netlink and nfgen headers of a message: (type, data).
pub(crate) fn attrs(msg: &[u8]) -> Attrs<'_> {
    Attrs { rest: msg.get(NLMSG_HDRLEN + 4..).unwrap_or(&[]) }
}

/// Iterator over attributes (type without the nested/byte-order flags, data).
#[derive(Debug, Clone)]
pub(crate) struct Attrs<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Attrs<'a> {
    type Item = (u16, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.rest;
        if rest.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([rest[0], rest[1]]) as usize;
        let t = u16::from_ne_bytes([rest[2], rest[3]]) & 0x3fff;
        if len < 4 || len > rest.len() {
            self.rest = &[];
            return None;
        }
        let data = &rest[4..len];
        let aligned = (len + 3) & !3;
        self.rest = if aligned >= rest.len() { &[] } else { &rest[aligned..] };
        Some((t, data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_messages_read_back_and_bad_lengths_stop_reading() {
        let mut m = MsgBuf::new(64, 0);
        let s = m.start(0x0a0c, NLM_F_REQUEST, 1, 0);
        m.attr_str(1, "sipwall");
        let n = m.nest_start(3);
        m.attr(1, &[1, 2, 3, 4]);
        m.nest_end(n);
        m.finish(s);
        let msgs: Vec<_> = messages(&m.buf).collect();
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].0, 0x0a0c);
        assert_eq!(seq_of(msgs[0].1), 1);
        let a: Vec<_> = attrs(msgs[0].1).collect();
        assert_eq!(a[0], (1, &b"sipwall\0"[..]));
        assert_eq!(a[1].0, 3);
        assert_eq!(a[1].1, &[8, 0, 1, 0, 1, 2, 3, 4][..]);
        assert_eq!(messages(&m.buf[..m.buf.len() - 1]).count(), 0);
        let mut bad = m.buf.clone();
        bad[NLMSG_HDRLEN + 4] = 0xff;
        assert_eq!(attrs(&bad).count(), 0);
    }
}
