//! Reading a downloaded block list. Its bytes are hostile input: bounded by the caller
//! (`[blocklist.fetch] max_bytes`), never a panic, every entry validated.
//!
//! Formats, recognised by content:
//! * **JSON** (the first non-blank byte is `{` or `[`):
//!   - APIBAN style: `{"ipaddress": ["192.0.2.1", ...], ...}` (other keys ignored);
//!   - sipwall's own feed (`sipwall feed export --format json`, `/api/v1/feed?format=json`):
//!     `{"bans": [{"net": "203.0.113.0/24", "until_ms": 1764000000000, ...}, ...]}`; each entry
//!     expires with its ban (`until_ms`), simulated bans are skipped;
//!   - a plain array of strings: `["192.0.2.1", "198.51.100.0/24"]`.
//! * **Text**, one entry per line: an address or CIDR network (`192.0.2.1`, `198.51.100.0/24`,
//!   `2001:db8::/48`), also `ip:port` and `[v6]:port` (the port is ignored). `#` starts a
//!   comment; the entry ends at the first blank, `,` or `;`, so `ip;comment` and `ip,comment`
//!   CSV lines and `ip  comment` lines read as their address (the voipbl.org style and the
//!   usual CSV exports of VoIP block lists).
//!
//! Validation of each entry: it must parse; a network with host bits set means its network
//! (as the block-list files read); refused are networks wider than /8 (IPv4) or /16 (IPv6),
//! and the unspecified, loopback and multicast ranges (never a scanner's source). A list is
//! refused WHOLE (the caller keeps its last good copy) when it has more than `max_entries`
//! entries, is not UTF-8, or is mostly garbage: more than one entry in ten invalid, or none
//! valid while some are invalid (an HTML error page served with status 200). An empty list is
//! a valid list with nothing in it.
use std::net::IpAddr;

use ipnet::IpNet;

/// Widest IPv4 network a fetched list may hold.
pub const MIN_PREFIX_V4: u8 = 8;
/// Widest IPv6 network a fetched list may hold.
pub const MIN_PREFIX_V6: u8 = 16;

/// One entry of a fetched list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The network (host bits cleared).
    pub net: IpNet,
    /// When it stops counting (ms since the epoch), when the list says.
    pub until_ms: Option<u64>,
}

/// What a list held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// The valid entries.
    pub entries: Vec<Entry>,
    /// Invalid entries skipped.
    pub invalid: usize,
    /// The first invalid one: (line or item number, from 1; what was wrong).
    pub first_invalid: Option<(usize, String)>,
    /// Which format it was read as: `text`, `apiban-json`, `sipwall-json`, `json-array`.
    pub format: &'static str,
}

/// Parse and validate a downloaded list. `Err` says why the whole list is refused.
pub fn parse(body: &[u8], max_entries: usize) -> Result<Parsed, String> {
    let text = std::str::from_utf8(body)
        .map_err(|e| format!("not UTF-8 text (at byte {}): not a block list", e.valid_up_to()))?;
    let text = text.trim_start_matches('\u{feff}'); // a byte-order mark some editors write
    let trimmed = text.trim_start();
    let mut p = if trimmed.starts_with('{') || trimmed.starts_with('[') {
        parse_json(trimmed, max_entries)?
    } else {
        parse_text(text, max_entries)?
    };
    let total = p.entries.len() + p.invalid;
    if p.invalid > 0 && (p.entries.is_empty() || p.invalid * 10 > total) {
        let (at, why) = p.first_invalid.take().unwrap_or_default();
        return Err(format!(
            "{} of {total} entries invalid (first at {at}: {why}): not a block list",
            p.invalid
        ));
    }
    Ok(p)
}

impl Parsed {
    fn push(
        &mut self,
        entry: &str,
        at: usize,
        until_ms: Option<u64>,
        max: usize,
    ) -> Result<(), String> {
        match validate(entry) {
            Ok(net) => {
                if self.entries.len() >= max {
                    return Err(format!("more than {max} entries ([blocklist.fetch] max_entries)"));
                }
                self.entries.push(Entry { net, until_ms });
            }
            Err(why) => {
                self.invalid += 1;
                if self.first_invalid.is_none() {
                    let shown: String = entry.chars().take(60).collect();
                    self.first_invalid = Some((at, format!("`{}`: {why}", shown.escape_debug())));
                }
            }
        }
        Ok(())
    }
}

fn parse_text(text: &str, max: usize) -> Result<Parsed, String> {
    let mut p = Parsed { format: "text", ..Parsed::default() };
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        let entry = line.split([' ', '\t', ',', ';']).next().unwrap_or("");
        if entry.is_empty() {
            continue;
        }
        p.push(entry, i + 1, None, max)?;
    }
    Ok(p)
}

fn parse_json(text: &str, max: usize) -> Result<Parsed, String> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("JSON that does not parse: {e}"))?;
    let mut p = Parsed::default();
    let item_str = |x: &serde_json::Value| x.as_str().map(str::to_string).unwrap_or_default();
    if let Some(list) = v.as_array() {
        p.format = "json-array";
        for (i, x) in list.iter().enumerate() {
            p.push(&item_str(x), i + 1, None, max)?;
        }
    } else if let Some(list) = v.get("ipaddress").and_then(|l| l.as_array()) {
        p.format = "apiban-json";
        for (i, x) in list.iter().enumerate() {
            p.push(&item_str(x), i + 1, None, max)?;
        }
    } else if let Some(list) = v.get("bans").and_then(|l| l.as_array()) {
        p.format = "sipwall-json";
        for (i, b) in list.iter().enumerate() {
            if b.get("simulated").and_then(|s| s.as_bool()) == Some(true) {
                continue;
            }
            let until = b.get("until_ms").and_then(|u| u.as_u64());
            p.push(&b.get("net").map(item_str).unwrap_or_default(), i + 1, until, max)?;
        }
    } else {
        return Err("JSON without an `ipaddress` or `bans` list: not a block list".into());
    }
    Ok(p)
}

/// One entry to a network, or why not.
pub fn validate(entry: &str) -> Result<IpNet, &'static str> {
    let net = parse_entry(entry).ok_or("not an IP address, CIDR network or ip:port")?;
    let (wide, special) = match net {
        IpNet::V4(n) => {
            let a = n.network();
            (
                n.prefix_len() < MIN_PREFIX_V4,
                a.is_unspecified() || a.is_loopback() || a.is_multicast() || a.is_broadcast(),
            )
        }
        IpNet::V6(n) => {
            let a = n.network();
            (
                n.prefix_len() < MIN_PREFIX_V6,
                a.is_unspecified() || a.is_loopback() || a.is_multicast(),
            )
        }
    };
    if wide {
        return Err("wider than /8 (IPv4) or /16 (IPv6)");
    }
    if special {
        return Err("an unspecified, loopback or multicast address");
    }
    Ok(net)
}

fn parse_entry(e: &str) -> Option<IpNet> {
    if let Some(n) = sipwall_engine::policy::parse_net(e) {
        return Some(n);
    }
    if let Some(rest) = e.strip_prefix('[') {
        let (inner, port) = rest.split_once(']')?;
        if !port.is_empty() {
            port.strip_prefix(':')?.parse::<u16>().ok()?;
        }
        return inner.parse::<IpAddr>().ok().map(IpNet::from);
    }
    let (host, port) = e.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(|a| IpNet::from(IpAddr::V4(a)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(p: &Parsed) -> Vec<String> {
        p.entries.iter().map(|e| e.net.to_string()).collect()
    }

    #[test]
    fn text_lines_csv_and_ports() {
        let body = b"\xef\xbb\xbf# VoIP scanners\n203.0.113.9\n198.51.100.0/24 ; a range\n\
            192.0.2.7;SIP scanner;2026-11-30\n192.0.2.8,brute force\n192.0.2.9:5060\n\
            [2001:db8::9]:5060\n2001:db8:bad::/48\t# v6\n203.0.113.77/24\n\n";
        let p = parse(body, 100).unwrap();
        assert_eq!(p.format, "text");
        assert_eq!(
            nets(&p),
            [
                "203.0.113.9/32",
                "198.51.100.0/24",
                "192.0.2.7/32",
                "192.0.2.8/32",
                "192.0.2.9/32",
                "2001:db8::9/128",
                "2001:db8:bad::/48",
                "203.0.113.0/24"
            ]
        );
        assert_eq!(p.invalid, 0);
    }

    #[test]
    fn json_shapes() {
        let p = parse(br#"{"ipaddress":["203.0.113.9","2001:db8::1"],"ID":"1234"}"#, 10).unwrap();
        assert_eq!((p.format, nets(&p).len()), ("apiban-json", 2));
        let p = parse(
            br#"{"generated_ms":1,"count":2,"bans":[{"net":"203.0.113.0/24","until_ms":5000},
                {"net":"192.0.2.1/32","until_ms":9000,"simulated":true}]}"#,
            10,
        )
        .unwrap();
        assert_eq!(p.format, "sipwall-json");
        assert_eq!(
            p.entries,
            vec![Entry { net: "203.0.113.0/24".parse().unwrap(), until_ms: Some(5000) }]
        );
        let p = parse(br#" ["198.51.100.1", "198.51.100.0/25"]"#, 10).unwrap();
        assert_eq!((p.format, nets(&p).len()), ("json-array", 2));
        assert!(parse(br#"{"other":[]}"#, 10).unwrap_err().contains("not a block list"));
        assert!(parse(b"{\"ipaddress\":[", 10).unwrap_err().contains("does not parse"));
    }

    #[test]
    fn garbage_and_limits_refuse_the_whole_list() {
        let html = b"<html>\n<head><title>502 Bad Gateway</title></head>\n</html>\n";
        assert!(parse(html, 10).unwrap_err().contains("3 of 3 entries invalid"));
        assert!(parse(&[0xff, 0xfe, 0x00, 0x31], 10).unwrap_err().contains("UTF-8"));
        let many: String = (1..=20).map(|i| format!("192.0.2.{i}\n")).collect();
        assert!(parse(many.as_bytes(), 19).unwrap_err().contains("more than 19 entries"));
        assert_eq!(parse(many.as_bytes(), 20).unwrap().entries.len(), 20);
        // one bad line in twenty is tolerated, counted and named
        let one_bad = many.clone() + "999.1.2.3\n";
        let p = parse(one_bad.as_bytes(), 100).unwrap();
        assert_eq!((p.entries.len(), p.invalid), (20, 1));
        assert_eq!(p.first_invalid.unwrap().0, 21);
        // three in twenty-three is too many
        let bad = many + "x\ny\nz\n";
        assert!(parse(bad.as_bytes(), 100).is_err());
        assert_eq!(parse(b"# nothing today\n", 10).unwrap().entries, vec![]);
        assert_eq!(parse(b"", 10).unwrap().entries, vec![]);
    }

    #[test]
    fn dangerous_entries_are_invalid() {
        for bad in [
            "0.0.0.0/0",
            "10.0.0.0/7",
            "::/0",
            "2001::/15",
            "127.0.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "ff02::1",
            "",
            "1.2.3",
            "1.2.3.4/33",
            "1.2.3.4:99999",
        ] {
            assert!(validate(bad).is_err(), "{bad}");
        }
        for good in ["10.0.0.0/8", "2001:db8::/16", "192.0.2.1", "203.0.113.0/24"] {
            assert!(validate(good).is_ok(), "{good}");
        }
    }
}
