//! # sipwall-netfilter — Linux enforcement
//!
//! * [`Ruleset`]: what to guard, as plain data, rendered to an atomic `nft -f -` batch (own
//!   `inet` table whose PREROUTING chain at priority raw drops sources found in the ban and
//!   block-list sets before connection tracking, routing and any queue rule, so banned traffic
//!   never reaches user space) and, where the kernel lacks nft's `queue` expression, an
//!   `iptables-restore` batch with the xt NFQUEUE target.
//! * [`Firewall`]: installs (adopting the sets a previous run left), verifies (reads the table
//!   back without its elements), stops queueing while keeping the bans
//!   ([`Firewall::stop_keeping_bans`], also on drop), and removes everything ([`remove_all`]);
//!   its [`FastPath`] handle replaces the trusted networks whose UDP requests are never queued.
//! * [`BanSet`]: adds/removes ban elements with kernel timeouts, batched: exact addresses in
//!   hash sets, ranges as disjoint segments in interval sets, so the kernel always drops the
//!   union of the active bans; [`BanSet::reconcile`] repairs the kernel from the daemon's list.
//! * [`Queue`]: a small NFQUEUE netlink client with batched receive and verdicts.
//! * [`packet`]: the queued packet's IPv4/IPv6 + UDP/TCP view, a thin adapter over the shared
//!   packet view `sipwall-wire` (also used by capture); [`L4`] is the wire crate's enum.
//! * [`testing`]: helpers for tests and benchmarks that need their own network namespace.
//!
//! `unsafe` is denied everywhere but the private `sys` module (syscall wrappers), where every
//! block states why it is sound.
#![deny(unsafe_code)]
#![warn(missing_docs, unreachable_pub, clippy::undocumented_unsafe_blocks)]

mod banset;
mod firewall;
mod ingress;
mod netlink;
mod nftshell;
mod nlset;
pub mod packet;
mod queue;
mod ruleset;
mod segments;
mod sys;
mod tools;

pub use banset::{
    BanOp, BanSet, BlocklistReport, DesiredBan, ReconcileReport, RECONCILE_TOLERANCE,
};
pub use firewall::{remove_all, FastPath, Firewall};
pub use ingress::{auto_devices, IngressReport, MAX_INGRESS_DEVICES};
pub use nftshell::{NftShell, ShellError};
pub use packet::{PacketError, PacketView, TcpInfo, L4};
pub use queue::{
    pin_current_thread, Hook, Queue, QueueConfig, QueueError, QueueStats, QueueVerdict,
    QueuedPacket,
};
pub use ruleset::{
    valid_device_name, BanScope, GuardedPort, Hooks, QueueBackend, Ruleset, BAN_CHAIN,
    DEFRAG_CHAIN, INGRESS_CHAIN_PREFIX, INGRESS_PRIORITY, SET_ADDR4, SET_ADDR6, SET_NET4, SET_NET6,
};
pub use sys::{interface_addresses, InterfaceAddress};
pub use tools::FirewallError;

/// Helpers for tests and benchmarks that must not touch the host's firewall.
pub mod testing {
    /// Effective uid 0 (read from /proc), for tests that need root to say so instead of
    /// failing on a permission error.
    pub fn is_root() -> bool {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Uid:"))
                    .map(|l| l.split_whitespace().nth(2) == Some("0"))
            })
            .unwrap_or(false)
    }

    /// Move the calling thread into a new, empty network namespace (`unshare(CLONE_NEWNET)`;
    /// needs CAP_SYS_ADMIN). Sockets it opens and processes it spawns afterwards live there;
    /// the namespace disappears with its last user, taking its rules with it.
    pub fn enter_fresh_netns() -> std::io::Result<()> {
        crate::sys::unshare_netns()
    }

    /// Raise a socket's receive buffer past `rmem_max` (`SO_RCVBUFFORCE`, needs
    /// CAP_NET_ADMIN), so a traffic sink is not what loses packets in a benchmark.
    pub fn force_rcvbuf(fd: &std::os::fd::OwnedFd, bytes: i32) -> std::io::Result<()> {
        crate::sys::set_int_opt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, bytes)
    }

    /// Receive up to `bufs.len()` datagrams in one `recvmmsg` (blocking up to the socket's
    /// receive timeout for the first); each length goes to `lens`. Returns how many; a
    /// timeout is `Ok(0)`.
    pub fn recv_many(
        fd: &std::os::fd::OwnedFd,
        bufs: &mut [Vec<u8>],
        lens: &mut [usize],
    ) -> std::io::Result<usize> {
        crate::sys::recv_many(fd, bufs, lens)
    }

    /// A raw element writer for benchmarks comparing set layouts: the same netlink path as
    /// [`crate::BanSet`], without its bookkeeping.
    #[derive(Debug)]
    pub struct ElementWriter(crate::nlset::NlSetWriter);

    impl ElementWriter {
        /// Open a netlink socket for table `inet <table>`.
        pub fn open(table: &str) -> std::io::Result<Self> {
            crate::nlset::NlSetWriter::open(table).map(ElementWriter)
        }

        /// Add `addrs` to `set` in ONE transaction, each as a plain element (hash set,
        /// `interval` false) or as a one-address range (interval set), with `timeout`.
        pub fn add(
            &mut self,
            set: &'static str,
            addrs: &[std::net::IpAddr],
            interval: bool,
            timeout: Option<std::time::Duration>,
        ) -> std::io::Result<()> {
            use crate::nlset::{Key, NlOp};
            let ops: Vec<NlOp> = addrs
                .iter()
                .map(|&a| {
                    let key = if interval { Key::Range(a, a) } else { Key::Addr(a) };
                    NlOp::Add(set, key, timeout)
                })
                .collect();
            self.0.apply(&ops)
        }
    }
}
