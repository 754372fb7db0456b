//! Named limits. Every bound the parser enforces lives here, documented with its reason.

/// Largest message (start line + headers + body) the parser accepts, in bytes.
/// UDP datagrams cannot exceed 65 507 bytes of payload; real SIP stays under ~8 KiB.
pub const MAX_MESSAGE_SIZE: usize = 65_535;

/// Most header fields indexed in one message. The index is a fixed inline array, so this is
/// also what bounds the parser's memory. Real messages carry 8–30 headers.
pub const MAX_HEADERS: usize = 64;

/// Longest single (unfolded) line, in bytes, start line included.
pub const MAX_LINE_LENGTH: usize = 8_192;

/// Most bytes a [`crate::StreamFramer`] buffers for one connection before it gives up.
pub const MAX_STREAM_BUFFER: usize = 2 * MAX_MESSAGE_SIZE;
