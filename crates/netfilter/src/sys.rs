//! The only module with `unsafe`: thin wrappers over the netlink socket syscalls the queue
//! client needs (socket, bind, setsockopt, send, recvmmsg, sched_setaffinity), and
//! getifaddrs for the devices of the early drop. Every function checks the return
//! value and turns it into `io::Error`; no pointer outlives the call that uses it.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// Open a `NETLINK_NETFILTER` socket bound to an automatic port id.
pub(crate) fn netfilter_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; the returned fd is owned by the OwnedFd below.
    let fd = unsafe {
        libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_NETFILTER)
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, valid descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_nl is plain data; all-zero is a valid value (pid 0 = kernel assigns).
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: addr is a valid sockaddr_nl for the duration of the call.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &addr as *const libc::sockaddr_nl as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// `setsockopt` with an `int` value.
pub(crate) fn set_int_opt(fd: &OwnedFd, level: i32, opt: i32, value: i32) -> io::Result<()> {
    // SAFETY: value lives across the call; size matches.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            &value as *const i32 as *const libc::c_void,
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `getsockopt` of an `int` value.
pub(crate) fn get_int_opt(fd: &OwnedFd, level: i32, opt: i32) -> io::Result<i32> {
    let mut value: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
    // SAFETY: value and len are valid for writes for the duration of the call.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            &mut value as *mut i32 as *mut libc::c_void,
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(value)
}

/// Receive timeout, so blocking receives wake up to check for shutdown.
pub(crate) fn set_recv_timeout(fd: &OwnedFd, timeout: Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: timeout.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: tv lives across the call; size matches.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const libc::timeval as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Send one buffer (one or more concatenated netlink messages) to the kernel.
pub(crate) fn send(fd: &OwnedFd, buf: &[u8]) -> io::Result<()> {
    // SAFETY: zeroed sockaddr_nl is valid (pid 0 = kernel).
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    loop {
        // SAFETY: buf and addr are valid for reads during the call.
        let rc = unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                buf.as_ptr() as *const libc::c_void,
                buf.len(),
                0,
                &addr as *const libc::sockaddr_nl as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc >= 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Receive up to `bufs.len()` datagrams in one `recvmmsg` call: blocks (up to the socket's
/// receive timeout) for the first, then takes only what is already queued
/// (`MSG_WAITFORONE`). Writes each datagram's length into `lens` (truncated datagrams report
/// their full length, so the caller can detect truncation). Returns how many were received;
/// a timeout is `Ok(0)`.
pub(crate) fn recv_many(
    fd: &OwnedFd,
    bufs: &mut [Vec<u8>],
    lens: &mut [usize],
) -> io::Result<usize> {
    let n = bufs.len().min(lens.len());
    let mut iovs: Vec<libc::iovec> = bufs[..n]
        .iter_mut()
        .map(|b| libc::iovec { iov_base: b.as_mut_ptr() as *mut libc::c_void, iov_len: b.len() })
        .collect();
    // SAFETY: mmsghdr is plain data; zero is valid, the fields we need are set below.
    let mut msgs: Vec<libc::mmsghdr> = (0..n).map(|_| unsafe { std::mem::zeroed() }).collect();
    for (m, iov) in msgs.iter_mut().zip(iovs.iter_mut()) {
        m.msg_hdr.msg_iov = iov as *mut libc::iovec;
        m.msg_hdr.msg_iovlen = 1;
    }
    loop {
        // SAFETY: msgs points at n valid mmsghdr whose iovecs point into bufs, all alive and
        // not otherwise borrowed for the duration of the call.
        let rc = unsafe {
            libc::recvmmsg(
                fd.as_raw_fd(),
                msgs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_WAITFORONE | libc::MSG_TRUNC,
                std::ptr::null_mut(),
            )
        };
        if rc >= 0 {
            let got = rc as usize;
            for (len, m) in lens.iter_mut().zip(msgs.iter()).take(got) {
                *len = m.msg_len as usize;
            }
            return Ok(got);
        }
        let err = io::Error::last_os_error();
        match err.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => return Ok(0),
            _ => return Err(err),
        }
    }
}

/// Pin the calling thread to `cpu` (`sched_setaffinity(0, ...)`).
pub(crate) fn pin_current_thread(cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if cpu >= 8 * std::mem::size_of::<libc::cpu_set_t>() {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: cpu is below CPU_SETSIZE (checked above); set is a valid cpu_set_t.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: set lives across the call and the size matches; pid 0 = the calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Move the calling thread into a new, empty network namespace (`unshare(CLONE_NEWNET)`).
/// Sockets it opens and processes it spawns afterwards live there; the namespace disappears
/// with its last user. For tests and benchmarks that must not touch the host's rules.
pub(crate) fn unshare_netns() -> io::Result<()> {
    // SAFETY: plain syscall without pointers; affects only the calling thread's namespace.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One address of an interface, from `getifaddrs(3)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceAddress {
    /// Device name.
    pub name: String,
    /// The address (IPv4 or IPv6 entries only; link-layer entries are skipped).
    pub addr: std::net::IpAddr,
    /// `IFF_LOOPBACK` is set.
    pub loopback: bool,
}

/// Every IPv4 and IPv6 address of this namespace's interfaces (`getifaddrs`): the early
/// drop's devices and the daemon's own addresses (never banned) both come from here.
pub fn interface_addresses() -> io::Result<Vec<InterfaceAddress>> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: head is a valid out-pointer; on success the list is freed below.
    if unsafe { libc::getifaddrs(&mut head) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut cur = head;
    // Bounded by the list getifaddrs built (one entry per address and per link).
    while !cur.is_null() {
        // SAFETY: cur is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_addr points to a sockaddr of at least its family's size.
        let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
        let addr = match family {
            libc::AF_INET => {
                // SAFETY: the family says this is a sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
            }
            libc::AF_INET6 => {
                // SAFETY: the family says this is a sockaddr_in6.
                let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr))
            }
            _ => continue,
        };
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
        out.push(InterfaceAddress {
            name: name.to_string_lossy().into_owned(),
            addr,
            loopback: ifa.ifa_flags & libc::IFF_LOOPBACK as u32 != 0,
        });
    }
    // SAFETY: head came from getifaddrs and is freed exactly once; no reference outlives it
    // (names were copied above).
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}
