//! Small byte-slice helpers shared by the parser and the accessors.
//!
//! Every function here is total: it never indexes out of bounds (only `get`, iterators and
//! `split_at` on positions it has just found), never allocates, and runs in time linear in its
//! input.

/// Linear whitespace as it appears inside a (possibly folded) header value: SP, HTAB, and the
/// CR/LF of a fold, which the zero-copy view leaves in place.
#[inline]
pub(crate) fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// RFC 3261 `token` characters, as a table (hot in start lines and Via).
const TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~');
        i += 1;
    }
    t
};

/// RFC 3261 `token` characters.
#[inline]
pub(crate) fn is_token(b: u8) -> bool {
    TOKEN[usize::from(b)]
}

/// Strips leading and trailing LWS (folds included).
#[inline]
pub(crate) fn trim(s: &[u8]) -> &[u8] {
    trim_end(trim_start(s))
}

#[inline]
pub(crate) fn trim_start(s: &[u8]) -> &[u8] {
    let mut rest = s;
    while let [first, tail @ ..] = rest {
        if !is_lws(*first) {
            break;
        }
        rest = tail;
    }
    rest
}

#[inline]
pub(crate) fn trim_end(s: &[u8]) -> &[u8] {
    let mut rest = s;
    while let [head @ .., last] = rest {
        if !is_lws(*last) {
            break;
        }
        rest = head;
    }
    rest
}

/// Removes one pair of surrounding double quotes, if both are there. Escapes stay as sent.
#[inline]
pub(crate) fn unquote(s: &[u8]) -> &[u8] {
    match s {
        [b'"', inner @ .., b'"'] => inner,
        _ => s,
    }
}

/// First position of `c`. Header values are short: a word-at-a-time scan beats memchr's
/// dispatch.
#[inline]
pub(crate) fn find(c: u8, s: &[u8]) -> Option<usize> {
    find_byte(c, s)
}

/// First position of `c`, sixteen bytes (two words) per step (SWAR): for header line ends,
/// where memchr's dispatch costs more than the scan.
#[inline]
pub(crate) fn find_byte_wide(c: u8, s: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let pat = LO * u64::from(c);
    // A zero byte of `w ^ pat` is a match. The lowest flagged byte is always a true match
    // (false positives can only sit above a true one), and words are little-endian.
    let hits = |w: [u8; 8]| {
        let x = u64::from_le_bytes(w) ^ pat;
        x.wrapping_sub(LO) & !x & HI
    };
    let mut chunks = s.chunks_exact(16);
    let mut base = 0;
    for chunk in &mut chunks {
        let (a, b) = chunk.split_at(8);
        let (Ok(a), Ok(b)) = (<[u8; 8]>::try_from(a), <[u8; 8]>::try_from(b)) else {
            // 16-byte chunks split in halves of 8: never taken.
            return s.iter().position(|&x| x == c);
        };
        let (ha, hb) = (hits(a), hits(b));
        if ha | hb != 0 {
            let off = if ha != 0 { ha.trailing_zeros() } else { 64 + hb.trailing_zeros() };
            return Some(base + (off / 8) as usize);
        }
        base += 16;
    }
    let rest = chunks.remainder();
    let (head, tail) = rest.split_at(rest.len().min(8));
    if let Ok(w) = <[u8; 8]>::try_from(head) {
        let h = hits(w);
        if h != 0 {
            return Some(base + (h.trailing_zeros() / 8) as usize);
        }
        return tail.iter().position(|&x| x == c).map(|i| base + 8 + i);
    }
    head.iter().position(|&x| x == c).map(|i| base + i)
}

/// First position of `c`, eight bytes at a time (SWAR): for short values and names.
#[inline]
pub(crate) fn find_byte(c: u8, s: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let pat = LO * u64::from(c);
    let mut chunks = s.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let word = match <[u8; 8]>::try_from(chunk) {
            Ok(w) => u64::from_le_bytes(w),
            // chunks_exact yields 8 bytes: never taken.
            Err(_) => return s.iter().position(|&b| b == c),
        };
        let x = word ^ pat;
        // As in `find_byte_wide`: the lowest flagged byte is a true match.
        let hit = x.wrapping_sub(LO) & !x & HI;
        if hit != 0 {
            return Some(base + (hit.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    chunks.remainder().iter().position(|&b| b == c).map(|i| base + i)
}

/// First position of any of `a`, `b`, `c`, eight bytes at a time (see [`find_byte`]; the
/// lowest flagged byte over the three masks is a true match of one of them).
#[inline]
pub(crate) fn find_any3(s: &[u8], a: u8, b: u8, c: u8) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let (pa, pb, pc) = (LO * u64::from(a), LO * u64::from(b), LO * u64::from(c));
    let zero = |x: u64| x.wrapping_sub(LO) & !x;
    let mut chunks = s.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let word = match <[u8; 8]>::try_from(chunk) {
            Ok(w) => u64::from_le_bytes(w),
            // chunks_exact yields 8 bytes: never taken.
            Err(_) => return s.iter().position(|&x| x == a || x == b || x == c),
        };
        let hit = (zero(word ^ pa) | zero(word ^ pb) | zero(word ^ pc)) & HI;
        if hit != 0 {
            return Some(base + (hit.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    chunks.remainder().iter().position(|&x| x == a || x == b || x == c).map(|i| base + i)
}

/// Splits at the first `sep`, excluding it.
#[inline]
pub(crate) fn split_once(s: &[u8], sep: u8) -> Option<(&[u8], &[u8])> {
    let i = find(sep, s)?;
    Some((s.get(..i)?, s.get(i + 1..)?))
}

/// Value of a non-empty run of at most 9 ASCII digits (cannot overflow a u32), or None.
#[inline]
fn small_number(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 9 {
        return None;
    }
    let mut v: u32 = 0;
    for &b in s {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + u32::from(d);
    }
    Some(v)
}

/// Parses a non-empty run of ASCII digits (leading zeros allowed) into a u32; None on
/// overflow or any other byte.
#[inline]
pub(crate) fn parse_u32(s: &[u8]) -> Option<u32> {
    if s.len() <= 9 {
        return small_number(s);
    }
    let mut v: u32 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u32::from(b - b'0'))?;
    }
    Some(v)
}

/// Like [`parse_u32`] for ports.
#[inline]
pub(crate) fn parse_u16(s: &[u8]) -> Option<u16> {
    u16::try_from(parse_u32(s)?).ok()
}

/// Like [`parse_u32`] for lengths.
#[inline]
pub(crate) fn parse_usize(s: &[u8]) -> Option<usize> {
    if s.len() <= 9 {
        return small_number(s).map(|v| v as usize);
    }
    let mut v: usize = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(usize::from(b - b'0'))?;
    }
    Some(v)
}

/// Position of the first `sep` that is outside a quoted string and outside `<...>`.
/// Backslash escapes inside quotes are honoured. Jumps between interesting bytes with memchr,
/// so a plain value costs one memchr3.
pub(crate) fn find_unquoted(s: &[u8], sep: u8) -> Option<usize> {
    // Short values (parameters, most header values): scalar scans are cheaper than memchr3's
    // setup. They stop at the same positions as the memchr3 walk below.
    if s.len() <= 48 {
        let j = find_any3(s, sep, b'"', b'<')?;
        if s.get(j) == Some(&sep) {
            return Some(j);
        }
        // A quote or `<` comes first (nothing before it matters): walk the rest byte by byte.
        let mut angle = 0usize;
        let mut i = j;
        while let Some(&b) = s.get(i) {
            match b {
                b'"' => {
                    i = skip_quoted(s, i + 1)?;
                    continue;
                }
                b'<' if angle == 0 && sep == b'<' => return Some(i),
                b'<' => angle += 1,
                b'>' if angle > 0 => angle -= 1,
                _ if b == sep && angle == 0 => return Some(i),
                _ => {}
            }
            i += 1;
        }
        return None;
    }
    let mut i = 0;
    let mut angle = 0usize;
    loop {
        let rest = s.get(i..)?;
        if angle == 0 {
            let j = i + memchr::memchr3(sep, b'"', b'<', rest)?;
            match s.get(j)? {
                b'"' => i = skip_quoted(s, j + 1)?,
                b'<' if sep != b'<' => {
                    angle = 1;
                    i = j + 1;
                }
                _ => return Some(j),
            }
        } else {
            let j = i + memchr::memchr3(b'>', b'<', b'"', rest)?;
            match s.get(j)? {
                b'"' => i = skip_quoted(s, j + 1)?,
                b'<' => {
                    angle += 1;
                    i = j + 1;
                }
                _ => {
                    angle -= 1;
                    i = j + 1;
                }
            }
        }
    }
}

/// Position just after the closing quote of a quoted string whose content starts at `from`;
/// None if it is unterminated.
pub(crate) fn skip_quoted(s: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    loop {
        let j = i + find_any3(s.get(i..)?, b'"', b'\\', b'"')?;
        if s.get(j) == Some(&b'"') {
            return Some(j + 1);
        }
        i = j + 2; // skip the escaped byte
    }
}

/// Iterator over the elements of a comma-separated header value (commas inside quotes or
/// `<>` do not split). Elements are trimmed; empty elements are skipped.
#[derive(Debug, Clone)]
pub(crate) struct ListIter<'a> {
    rest: Option<&'a [u8]>,
    sep: u8,
}

impl<'a> ListIter<'a> {
    pub(crate) fn new(s: &'a [u8], sep: u8) -> Self {
        ListIter { rest: Some(s), sep }
    }
}

impl<'a> Iterator for ListIter<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        // Each round consumes at least one byte (the separator) or ends: bounded.
        loop {
            let s = self.rest?;
            let (item, rest) = match find_unquoted(s, self.sep) {
                Some(i) => (s.get(..i)?, s.get(i + 1..)),
                None => (s, None),
            };
            self.rest = rest;
            let item = trim(item);
            if !item.is_empty() {
                return Some(item);
            }
        }
    }
}

/// Iterator over `;`-separated parameters as `(name, value)`: the elements of
/// `ListIter::new(s, b';')`, each split at its first `=` into a trimmed name and an unquoted,
/// trimmed value (`None` for a flag). One scan per parameter when it holds no `"` or `<`;
/// otherwise the element is found as `ListIter` finds it.
#[derive(Debug, Clone)]
pub(crate) struct Params<'a> {
    rest: Option<&'a [u8]>,
}

impl<'a> Params<'a> {
    pub(crate) fn new(s: &'a [u8]) -> Self {
        Params { rest: Some(s) }
    }
}

impl<'a> Iterator for Params<'a> {
    type Item = (&'a [u8], Option<&'a [u8]>);
    fn next(&mut self) -> Option<Self::Item> {
        // Each round consumes the separator or ends: bounded.
        loop {
            let s = self.rest?;
            let (end, plain) = match find_any3(s, b';', b'"', b'<') {
                Some(i) if s.get(i) == Some(&b';') => (Some(i), true),
                Some(_) => (None, false),
                None => (None, true),
            };
            if !plain {
                // Quotes or angle brackets: the general splitter, then the general split.
                let (item, rest) = match find_unquoted(s, b';') {
                    Some(i) => (s.get(..i)?, s.get(i + 1..)),
                    None => (s, None),
                };
                self.rest = rest;
                let item = trim(item);
                if item.is_empty() {
                    continue;
                }
                return Some(match split_once(item, b'=') {
                    Some((k, v)) => (trim(k), Some(unquote(trim(v)))),
                    None => (item, None),
                });
            }
            let (item, rest) = match end {
                Some(i) => (s.get(..i)?, s.get(i + 1..)),
                None => (s, None),
            };
            self.rest = rest;
            return Some(match find_byte(b'=', item) {
                // Holds a `=`: not empty.
                Some(e) => (
                    trim(item.get(..e)?),
                    Some(unquote(trim(item.get(e + 1..).unwrap_or_default()))),
                ),
                None => {
                    let item = trim(item);
                    if item.is_empty() {
                        continue;
                    }
                    (item, None)
                }
            });
        }
    }
}

/// The first element of a comma-separated value, as `ListIter::new(s, b',').next()`. A value
/// without any comma (the usual case) is one element whatever its quotes and brackets: no
/// quote/bracket walk then.
#[inline]
pub(crate) fn first_item(s: &[u8]) -> Option<&[u8]> {
    if memchr::memchr(b',', s).is_none() {
        let t = trim(s);
        return (!t.is_empty()).then_some(t);
    }
    ListIter::new(s, b',').next()
}

/// Number of elements of a comma-separated value, as `ListIter::new(s, b',').count()`.
#[inline]
pub(crate) fn count_items(s: &[u8]) -> usize {
    if memchr::memchr(b',', s).is_none() {
        return usize::from(!trim(s).is_empty());
    }
    ListIter::new(s, b',').count()
}

/// Looks up a `;`-separated parameter by name (case-insensitive). `Some(None)` for a flag
/// without value, `Some(Some(v))` with the value unquoted and trimmed.
pub(crate) fn find_param<'a>(params: &'a [u8], name: &[u8]) -> Option<Option<&'a [u8]>> {
    Params::new(params).find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_folds() {
        assert_eq!(trim(b" \r\n\t a b \r\n "), b"a b");
        assert_eq!(trim(b"   "), b"");
        assert_eq!(trim(b""), b"");
    }

    #[test]
    fn find_byte_matches_position() {
        let mut s: Vec<u8> = (0..=255u8).chain(0..=255u8).collect();
        s.extend_from_slice(b"\x80\x0a\x3a\x8a\xba");
        for start in 0..40 {
            for c in [b'\n', b':', 0, 0x80, 0xff, 0x01, 0xba] {
                let t = &s[start..];
                assert_eq!(find_byte(c, t), t.iter().position(|&b| b == c), "{start} {c}");
                for len in [0, 1, 7, 8, 9, 15, 16, 17, 23, 24, 25, 33] {
                    let u = &t[..len.min(t.len())];
                    let want = u.iter().position(|&b| b == c);
                    assert_eq!(find_byte_wide(c, u), want, "{start} {c} {len}");
                    assert_eq!(find_byte(c, u), want, "{start} {c} {len}");
                }
            }
        }
        for start in 0..40 {
            let t = &s[start..];
            let want = t.iter().position(|&b| b == b';' || b == 0x80 || b == b'<');
            assert_eq!(find_any3(t, b';', 0x80, b'<'), want, "{start}");
        }
        assert_eq!(find_any3(b"abcdefghijk\"", b';', b'"', b'<'), Some(11));
        assert_eq!(find_byte(b':', b""), None);
        assert_eq!(find_byte(b':', b"abcdefgh:"), Some(8));
        assert_eq!(find_byte(b':', b"\x3b\x3a"), Some(1));
        assert_eq!(find_byte(b'\n', b"\x0b\x0a\x0a"), Some(1));
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u32(b"0068"), Some(68));
        assert_eq!(parse_u32(b"4294967296"), None);
        assert_eq!(parse_u32(b"-1"), None);
        assert_eq!(parse_u32(b""), None);
        assert_eq!(parse_u16(b"65536"), None);
        assert_eq!(parse_u16(b"5060"), Some(5060));
        assert_eq!(parse_usize(b"99999999999999999999999999"), None);
    }

    #[test]
    fn lists_respect_quotes_and_angles() {
        let v: Vec<&[u8]> = ListIter::new(br#""a,b" <sip:x;a=1,2>, c ,, <d>"#, b',').collect();
        assert_eq!(v, vec![&br#""a,b" <sip:x;a=1,2>"#[..], &b"c"[..], &b"<d>"[..]]);
        let v: Vec<&[u8]> = ListIter::new(br#""a\"," , b"#, b',').collect();
        assert_eq!(v, vec![&br#""a\",""#[..], &b"b"[..]]);
    }

    #[test]
    fn params() {
        let p = b"rport ; branch = z9hG4bK-1 ;received=\"1.2.3.4\"";
        assert_eq!(find_param(p, b"RPORT"), Some(None));
        assert_eq!(find_param(p, b"branch"), Some(Some(&b"z9hG4bK-1"[..])));
        assert_eq!(find_param(p, b"received"), Some(Some(&b"1.2.3.4"[..])));
        assert_eq!(find_param(p, b"tag"), None);
    }
}
