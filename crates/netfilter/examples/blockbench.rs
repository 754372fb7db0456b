//! Block-list start-up and reload time against list size, the old way (one `nft -f`
//! transaction replacing the sets, then a full `nft -j list table` as the old verify did)
//! against the new (`BanSet::replace_blocklist_in_batches` over netlink, then the terse
//! `Firewall::verify`), in the same run (`scripts/bench-blocklist.sh`; needs root: it enters a
//! fresh network namespace of its own; no packet is sent).
use std::net::Ipv6Addr;
use std::process::Command;
use std::time::Instant;

use ipnet::{IpNet, Ipv6Net};
use sipwall_netfilter::{testing::enter_fresh_netns, BanSet, Firewall, Ruleset};

fn list(size: u32, salt: u16) -> Vec<IpNet> {
    // Distinct, non-adjacent IPv6 documentation addresses; `salt` changes 1% of them.
    (0..size)
        .map(|i| {
            let s = if i % 100 == 0 { salt } else { 0 };
            let a = Ipv6Addr::new(0x2001, 0xdb8, s, (i >> 16) as u16, i as u16, 0, 0, 1);
            IpNet::V6(Ipv6Net::new(a, 128).unwrap())
        })
        .collect()
}

fn main() {
    enter_fresh_netns().expect("needs root: unshare(CLONE_NEWNET)");
    let sizes: Vec<u32> = std::env::args()
        .nth(1)
        .map(|s| s.split(',').map(|x| x.parse().unwrap()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000, 1_000_000]);
    for &size in &sizes {
        let (a, b) = (list(size, 0), list(size, 7));
        // Second argument "new": skip the old way (it takes minutes at 1M entries).
        let only_new = std::env::args().nth(2).as_deref() == Some("new");
        for new_way in [false, true].into_iter().filter(|w| *w || !only_new) {
            let fw = Firewall::install(Ruleset::default()).unwrap();
            let mut bans = BanSet::new("sipwall").with_netlink();
            let mut times = Vec::new();
            for l in [&a, &a, &b] {
                let t = Instant::now();
                if new_way {
                    bans.replace_blocklist_in_batches(l, 10_000, |_, _| {}).unwrap();
                    fw.verify().unwrap();
                } else {
                    bans.replace_blocklist(l).unwrap();
                    let out = Command::new("nft")
                        .args(["-j", "list", "table", "inet", "sipwall"])
                        .output()
                        .unwrap();
                    assert!(out.status.success());
                }
                times.push(t.elapsed().as_secs_f64());
            }
            println!(
                "size={size} way={} start_s={:.2} reload_same_s={:.2} reload_1pct_s={:.2}",
                if new_way { "new" } else { "old" },
                times[0],
                times[1],
                times[2]
            );
            sipwall_netfilter::remove_all("sipwall").unwrap();
            drop(fw);
        }
    }
}
