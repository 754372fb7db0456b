//! # sipwall-netfilter — Linux enforcement
//!
//! * [`Ruleset`]: what to guard, as plain data, rendered to an atomic `nft -f -` batch (own
//!   `inet` table whose PREROUTING chain at priority raw matches `ban4`/`ban6` interval+timeout
//!   sets before connection tracking, routing and any queue rule, so banned traffic never
//!   reaches user space) and, where the kernel lacks nft's
//!   `queue` expression, an `iptables-restore` batch with the xt NFQUEUE target.
//! * [`Firewall`]: installs, verifies (reads the table back), and removes (also on drop, and
//!   leftovers of a crashed run at install).
//! * [`BanSet`]: adds/removes ban elements with kernel timeouts, batched, through
//!   [`NlSetWriter`] (nf_tables netlink), [`NftShell`] (`nft -e -i`) or `nft -f -`, fastest
//!   first; `replace_blocklist` swaps the static block list sets atomically.
//! * [`Queue`]: a small NFQUEUE netlink client with batched receive and verdicts.
//! * [`packet`]: the queued packet's IPv4/IPv6 + UDP/TCP view, a thin adapter over the shared
//!   packet view `sipwall-wire` (also used by capture); [`L4`] is the wire crate's enum.
//!
//! `unsafe` is denied everywhere but the [`sys`] module (syscall wrappers).
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod banset;
mod firewall;
mod nftshell;
mod nlset;
pub mod packet;
mod queue;
mod ruleset;
pub mod sys;

pub use banset::{BanOp, BanSet};
pub use firewall::{remove_all, Firewall, FirewallError};
pub use nftshell::{NftShell, ShellError};
pub use nlset::{NlOp, NlSetWriter};
pub use packet::{PacketError, PacketView, TcpInfo, L4};
pub use queue::{Hook, Queue, QueueConfig, QueueError, QueueStats, QueueVerdict, QueuedPacket};
pub use ruleset::{BanScope, GuardedPort, Hooks, L4Proto, QueueBackend, Ruleset};
