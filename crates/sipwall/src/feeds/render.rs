//! Feeds out: the active bans rendered for other firewalls, routers and block-list consumers.
//! One renderer for `sipwall feed export` and the HTTP API's `/api/v1/feed`.
//!
//! CONTRACT:
//! * Input is the protocol's ban list ([`BanView`], as `sipwall bans` gets it); simulated bans
//!   (observe mode, simulated families) and bans already over at `now` are left out: a feed
//!   carries only what this host enforces.
//! * Every text format is built from ONE normalised list ([`pieces`]): disjoint CIDR blocks,
//!   each with the end of the longest ban covering it, so a consumer's interval set never sees
//!   two overlapping elements and a short ban inside a long range never shortens the range.
//! * No free text from a ban (reason, rule) goes into the script formats (nft, ipset,
//!   MikroTik): a reason is operator or wire text, and a quote in it must not become a
//!   command in somebody's router. Only addresses, prefix lengths and numbers are written.
//! * Deterministic: same bans and `now`, same bytes (snapshot-tested per format).
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;

use crate::protocol::BanView;

/// Longest element timeout written to ipset and MikroTik feeds, in seconds: ipset's own
/// maximum (2^31/1000 s, about 24.8 days). Consumers re-import a feed far more often.
pub const MAX_FEED_TIMEOUT_SECS: u64 = 2_147_483;
/// Table of the nft feed (`inet sipwall_feed`), apart from the daemon's own `inet sipwall`.
pub const NFT_TABLE: &str = "sipwall_feed";
/// ipset sets of the ipset feed, and the MikroTik address list.
pub const IPSET4: &str = "sipwall_feed4";
/// IPv6 ipset set.
pub const IPSET6: &str = "sipwall_feed6";
/// MikroTik address-list name.
pub const MIKROTIK_LIST: &str = "sipwall";

/// A feed format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeedFormat {
    /// One address or CIDR network per line (`#` comments): most firewalls' URL tables.
    Plain,
    /// A self-contained `nft -f` file: table `inet sipwall_feed`, interval sets with
    /// timeouts and a raw-priority prerouting chain dropping their sources.
    Nft,
    /// An `ipset restore` file: `hash:net` sets `sipwall_feed4` and `sipwall_feed6`.
    Ipset,
    /// A RouterOS script (`/import`): the `sipwall` address lists, IPv4 and IPv6.
    Mikrotik,
    /// The protocol model: `{"generated_ms","count","bans":[...]}` as `sipwall bans --format json`.
    Json,
}

impl FeedFormat {
    /// The HTTP content type.
    pub fn content_type(self) -> &'static str {
        match self {
            FeedFormat::Json => "application/json",
            _ => "text/plain; charset=utf-8",
        }
    }
}

/// One disjoint block of the normalised feed and when its longest ban ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    /// The block.
    pub net: IpNet,
    /// End, ms since the epoch.
    pub until_ms: u64,
}

/// The bans a feed carries: real (not simulated) and not yet over at `now`.
fn live(bans: &[BanView], now_ms: u64) -> Vec<(IpNet, u64)> {
    bans.iter()
        .filter(|b| !b.simulated && b.until_ms > now_ms)
        .filter_map(|b| Some((b.net.parse::<IpNet>().ok()?.trunc(), b.until_ms)))
        .collect()
}

fn family(n: &IpNet) -> u8 {
    u8::from(matches!(n, IpNet::V6(_)))
}

/// The normalised feed: disjoint CIDR blocks covering exactly the union of `bans`, each block
/// with the latest end of the bans covering it; sorted, IPv4 first.
///
/// CIDR blocks are nested or disjoint, so: a ban whose end is not later than that of a ban
/// around it adds nothing; every other ban stands, minus the blocks of the later-ending bans
/// inside it (split into the largest CIDR blocks around them).
pub fn pieces(bans: &[(IpNet, u64)]) -> Vec<Piece> {
    let mut v: Vec<(IpNet, u64)> = bans.to_vec();
    // outer before inner at the same start; the latest end first among equal nets
    v.sort_by(|a, b| {
        (family(&a.0), a.0.network(), a.0.prefix_len(), std::cmp::Reverse(a.1)).cmp(&(
            family(&b.0),
            b.0.network(),
            b.0.prefix_len(),
            std::cmp::Reverse(b.1),
        ))
    });
    v.dedup_by(|later, first| later.0 == first.0);
    // The bans that stand: a stack of the enclosing standing bans gives each its context.
    let mut standing: Vec<(IpNet, u64)> = Vec::new();
    let mut stack: Vec<(IpNet, u64)> = Vec::new();
    for (net, until) in v {
        while stack.last().is_some_and(|(outer, _)| !outer.contains(&net)) {
            stack.pop();
        }
        let around = stack.last().map_or(0, |&(_, u)| u);
        if until > around {
            standing.push((net, until));
            stack.push((net, until));
        }
    }
    // Each standing ban minus the standing bans inside it (they follow it in sorted order).
    let mut out = Vec::new();
    for (i, &(net, until)) in standing.iter().enumerate() {
        let holes: Vec<IpNet> = standing[i + 1..]
            .iter()
            .take_while(|(inner, _)| net.contains(inner))
            .map(|&(inner, _)| inner)
            .collect();
        subtract(net, &holes, &mut |n| out.push(Piece { net: n, until_ms: until }));
    }
    out.sort_by_key(|p| (family(&p.net), p.net.network(), p.net.prefix_len()));
    out
}

/// `net` minus `holes` (all inside `net`), as the largest CIDR blocks, in address order.
fn subtract(net: IpNet, holes: &[IpNet], emit: &mut impl FnMut(IpNet)) {
    if !holes.iter().any(|h| net.contains(h) || h.contains(&net)) {
        emit(net);
        return;
    }
    if holes.iter().any(|h| h.contains(&net)) {
        return; // all of it is a hole
    }
    // A hole strictly inside: halve (a hole is at most 128 halvings deep).
    if let Ok(halves) = net.subnets(net.prefix_len() + 1) {
        for half in halves {
            let inside: Vec<IpNet> =
                holes.iter().copied().filter(|h| half.contains(h) || h.contains(&half)).collect();
            subtract(half, &inside, emit);
        }
    }
}

/// Seconds left until `until_ms`, rounded up (a ban with 1 ms left is still a ban).
fn secs_left(until_ms: u64, now_ms: u64) -> u64 {
    until_ms.saturating_sub(now_ms).div_ceil(1000).max(1)
}

/// An address alone for a host block, else the CIDR network (`203.0.113.9`, `203.0.113.0/24`).
fn addr_or_net(n: &IpNet) -> String {
    if n.prefix_len() == n.max_prefix_len() {
        n.addr().to_string()
    } else {
        n.to_string()
    }
}

/// RouterOS time: `1d2h3m4s`, zero parts left out (`1h`, `45s`).
fn routeros_time(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    let mut t = String::new();
    for (v, unit) in [(d, 'd'), (h, 'h'), (m, 'm'), (s, 's')] {
        if v > 0 {
            t += &format!("{v}{unit}");
        }
    }
    if t.is_empty() {
        t.push_str("1s");
    }
    t
}

/// The feed of `bans` at `now_ms` in `format`.
pub fn render(bans: &[BanView], format: FeedFormat, now_ms: u64) -> String {
    let when = crate::time::rfc3339(now_ms);
    if format == FeedFormat::Json {
        let mut listed: Vec<&BanView> =
            bans.iter().filter(|b| !b.simulated && b.until_ms > now_ms).collect();
        listed.sort_by(|a, b| a.net.cmp(&b.net).then(a.until_ms.cmp(&b.until_ms)));
        let doc = serde_json::json!({
            "generated_ms": now_ms,
            "count": listed.len(),
            "bans": listed,
        });
        return serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n";
    }
    let p = pieces(&live(bans, now_ms));
    let (v4, v6): (Vec<&Piece>, Vec<&Piece>) =
        p.iter().partition(|x| matches!(x.net.addr(), IpAddr::V4(_)));
    let head = |n: usize| format!("sipwall feed, generated {when}: {n} block(s) of active bans");
    let mut out = String::new();
    match format {
        FeedFormat::Plain => {
            // No timeouts here: adjacent and nested blocks merge into the fewest lines.
            let merged = IpNet::aggregate(&p.iter().map(|x| x.net).collect::<Vec<_>>());
            out += &format!("# {}\n", head(merged.len()));
            for n in &merged {
                out += &addr_or_net(n);
                out.push('\n');
            }
        }
        FeedFormat::Nft => {
            out += &format!("#!/usr/sbin/nft -f\n# {}\n", head(p.len()));
            out += "# Load with `nft -f FILE`: replaces the sets' elements in one transaction.\n";
            let t = NFT_TABLE;
            out += &format!("add table inet {t}\n");
            for (set, ty) in [("feed4", "ipv4_addr"), ("feed6", "ipv6_addr")] {
                out += &format!(
                    "add set inet {t} {set} {{ type {ty}; flags interval, timeout; }}\n\
                     flush set inet {t} {set}\n"
                );
            }
            out += &format!(
                "add chain inet {t} prerouting {{ type filter hook prerouting priority -300; \
                 policy accept; }}\nflush chain inet {t} prerouting\n\
                 add rule inet {t} prerouting ip saddr @feed4 drop\n\
                 add rule inet {t} prerouting ip6 saddr @feed6 drop\n"
            );
            for (set, list) in [("feed4", &v4), ("feed6", &v6)] {
                // Chunks keep each line of a 100k-element feed readable for nft's parser.
                for chunk in list.chunks(1000) {
                    let elems: Vec<String> = chunk
                        .iter()
                        .map(|x| format!("{} timeout {}s", x.net, secs_left(x.until_ms, now_ms)))
                        .collect();
                    out += &format!("add element inet {t} {set} {{ {} }}\n", elems.join(", "));
                }
            }
        }
        FeedFormat::Ipset => {
            out += &format!("# {}\n# Load with `ipset restore -exist < FILE`.\n", head(p.len()));
            for (set, fam, list) in [(IPSET4, "inet", &v4), (IPSET6, "inet6", &v6)] {
                let max = list.len().next_power_of_two().max(65_536);
                out += &format!(
                    "create {set} hash:net family {fam} hashsize 1024 maxelem {max} timeout 0\n\
                     flush {set}\n"
                );
                for x in list.iter() {
                    let secs = secs_left(x.until_ms, now_ms).min(MAX_FEED_TIMEOUT_SECS);
                    // hash:net takes prefixes 1..=32 (128): a /0 goes in as its two halves.
                    let nets: Vec<IpNet> = if x.net.prefix_len() == 0 {
                        x.net.subnets(1).map(|s| s.collect()).unwrap_or_default()
                    } else {
                        vec![x.net]
                    };
                    for n in nets {
                        out += &format!("add {set} {n} timeout {secs}\n");
                    }
                }
            }
        }
        FeedFormat::Mikrotik => {
            out += &format!("# {}\n# Load with `/import file-name=FILE`.\n", head(p.len()));
            let l = MIKROTIK_LIST;
            for (menu, list) in
                [("/ip firewall address-list", &v4), ("/ipv6 firewall address-list", &v6)]
            {
                out += &format!("{menu} remove [find list=\"{l}\"]\n");
                for x in list.iter() {
                    let secs = secs_left(x.until_ms, now_ms).min(MAX_FEED_TIMEOUT_SECS);
                    out += &format!(
                        "{menu} add list=\"{l}\" address={} timeout={} comment=\"sipwall\"\n",
                        x.net,
                        routeros_time(secs)
                    );
                }
            }
        }
        FeedFormat::Json => unreachable!("handled above"),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_764_000_000_000;

    fn view(net: &str, until_ms: u64, simulated: bool) -> BanView {
        BanView {
            net: net.into(),
            since_ms: NOW - 60_000,
            until_ms,
            count: 1,
            rule: "signature.sipvicious-ua".into(),
            reason: "User-Agent \"friendly-scanner\"; drop'; /system reset".into(),
            origin: "detection".into(),
            durable: true,
            simulated,
        }
    }

    /// A realistic mix: a host ban inside a shorter range ban (it punches the range), one
    /// inside a longer range (absorbed), IPv6 ranges, a simulated ban and an expired one (both
    /// left out), and a hostile reason (never in a script format).
    fn bans() -> Vec<BanView> {
        vec![
            view("203.0.113.9/32", NOW + 7_200_000, false),
            view("203.0.113.0/24", NOW + 3_600_000, false),
            view("198.51.100.7/32", NOW + 600_000, false),
            view("198.51.100.0/24", NOW + 86_400_000, false),
            view("2001:db8:bad::/48", NOW + 1_000, false),
            view("2001:db8:1::5/128", NOW + 45_500, false),
            view("192.0.2.66/32", NOW + 3_600_000, true),
            view("192.0.2.77/32", NOW - 1, false),
        ]
    }

    #[test]
    fn plain() {
        insta::assert_snapshot!(render(&bans(), FeedFormat::Plain, NOW));
    }

    #[test]
    fn nft() {
        insta::assert_snapshot!(render(&bans(), FeedFormat::Nft, NOW));
    }

    #[test]
    fn ipset() {
        insta::assert_snapshot!(render(&bans(), FeedFormat::Ipset, NOW));
    }

    #[test]
    fn mikrotik() {
        insta::assert_snapshot!(render(&bans(), FeedFormat::Mikrotik, NOW));
    }

    #[test]
    fn json() {
        insta::assert_snapshot!(render(&bans(), FeedFormat::Json, NOW));
    }

    #[test]
    fn no_free_text_in_scripts_and_nothing_simulated_or_expired() {
        for f in [FeedFormat::Plain, FeedFormat::Nft, FeedFormat::Ipset, FeedFormat::Mikrotik] {
            let t = render(&bans(), f, NOW);
            assert!(!t.contains("reset") && !t.contains("friendly"), "{f:?}:\n{t}");
            assert!(!t.contains("192.0.2.66") && !t.contains("192.0.2.77"), "{f:?}:\n{t}");
        }
        let j = render(&bans(), FeedFormat::Json, NOW);
        assert!(!j.contains("192.0.2.66") && !j.contains("192.0.2.77"), "{j}");
    }

    /// The pieces cover exactly the union, are disjoint, and each address gets the latest end
    /// of the bans holding it.
    #[test]
    fn pieces_are_disjoint_and_keep_the_longest_end() {
        let p = |s: &str| s.parse::<IpNet>().unwrap();
        let input = vec![
            (p("10.0.0.0/8"), 100),
            (p("10.1.0.0/16"), 50), // absorbed
            (p("10.1.2.0/24"), 300),
            (p("10.1.2.3/32"), 200), // absorbed by the /24
            (p("10.1.2.4/32"), 400),
            (p("10.0.0.0/8"), 90), // duplicate, shorter
            (p("192.0.2.0/24"), 10),
        ];
        let out = pieces(&input);
        for (i, a) in out.iter().enumerate() {
            for b in &out[i + 1..] {
                assert!(!a.net.contains(&b.net) && !b.net.contains(&a.net), "{a:?} {b:?}");
            }
        }
        let end_of = |ip: &str| {
            let ip: IpAddr = ip.parse().unwrap();
            out.iter().find(|x| x.net.contains(&ip)).map(|x| x.until_ms)
        };
        assert_eq!(end_of("10.200.0.1"), Some(100));
        assert_eq!(end_of("10.1.9.9"), Some(100));
        assert_eq!(end_of("10.1.2.3"), Some(300));
        assert_eq!(end_of("10.1.2.4"), Some(400));
        assert_eq!(end_of("10.1.2.5"), Some(300));
        assert_eq!(end_of("192.0.2.255"), Some(10));
        assert_eq!(end_of("11.0.0.0"), None);
        let total: u128 = out
            .iter()
            .filter(|x| matches!(x.net, IpNet::V4(_)))
            .map(|x| 1u128 << (32 - x.net.prefix_len()))
            .sum();
        assert_eq!(total, (1 << 24) + 256);
    }

    #[test]
    fn routeros_times() {
        assert_eq!(routeros_time(45), "45s");
        assert_eq!(routeros_time(3600), "1h");
        assert_eq!(routeros_time(93_784), "1d2h3m4s");
        assert_eq!(routeros_time(0), "1s");
    }

    #[test]
    fn a_whole_family_ban_fits_ipset() {
        let t = render(&[view("0.0.0.0/0", NOW + 10_000, false)], FeedFormat::Ipset, NOW);
        assert!(t.contains("add sipwall_feed4 0.0.0.0/1 timeout 10\n"), "{t}");
        assert!(t.contains("add sipwall_feed4 128.0.0.0/1 timeout 10\n"), "{t}");
    }
}
