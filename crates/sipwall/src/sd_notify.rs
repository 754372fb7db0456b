//! The systemd readiness protocol (`sd_notify(3)`), spoken without libsystemd.
//!
//! Contract: each call sends one datagram of `KEY=VALUE` lines to the socket named by
//! `$NOTIFY_SOCKET` — a path, or a Linux abstract-namespace name written `@name`. When the
//! variable is unset or empty (not started by systemd with `Type=notify`), every call is a
//! no-op returning `Ok(false)`. A message is never longer than one datagram, so a status text
//! is cut at [`MAX_STATUS`] bytes (on a character boundary) and its newlines are replaced by
//! spaces (a newline would start a new `KEY=` line). Errors are returned, not logged: the caller
//! decides whether a failed notification matters (for the daemon it does not; systemd then
//! times the start out, which is the right outcome when it cannot be told).
use std::io;
use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Longest `STATUS=` text sent; the rest is cut.
pub const MAX_STATUS: usize = 1024;

/// `READY=1`: start-up is complete (for `sipwall run`: queues bound, bans restored).
pub fn ready() -> io::Result<bool> {
    notify("READY=1")
}

/// `RELOADING=1`: a configuration reload started; send [`ready`] when it is done.
pub fn reloading() -> io::Result<bool> {
    notify("RELOADING=1")
}

/// `STOPPING=1`: shutdown started.
pub fn stopping() -> io::Result<bool> {
    notify("STOPPING=1")
}

/// `STATUS=…`: one line shown by `systemctl status`.
pub fn status(text: &str) -> io::Result<bool> {
    notify(&format!("STATUS={}", one_line(text)))
}

/// Sends `msg` to `$NOTIFY_SOCKET`; `Ok(false)` when the variable is unset or empty.
pub fn notify(msg: &str) -> io::Result<bool> {
    match std::env::var_os("NOTIFY_SOCKET") {
        Some(target) if !target.is_empty() => {
            send_to(target.to_str().ok_or_else(|| bad("NOTIFY_SOCKET is not UTF-8"))?, msg)?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Sends `msg` to `target` (`/path` or `@abstract`).
pub fn send_to(target: &str, msg: &str) -> io::Result<()> {
    let addr = match target.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes())?,
        None if target.starts_with('/') => SocketAddr::from_pathname(target)?,
        None => return Err(bad("NOTIFY_SOCKET is neither an absolute path nor @abstract")),
    };
    let sock = UnixDatagram::unbound()?;
    let sent = sock.send_to_addr(msg.as_bytes(), &addr)?;
    if sent != msg.len() {
        return Err(io::Error::new(io::ErrorKind::WriteZero, "notification datagram cut short"));
    }
    Ok(())
}

fn one_line(text: &str) -> String {
    let mut end = text.len().min(MAX_STATUS);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].replace(['\n', '\r'], " ")
}

fn bad(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, why)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn recv(sock: &UnixDatagram) -> String {
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 4096];
        let n = sock.recv(&mut buf).expect("a notification datagram");
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn path_socket_receives_each_message() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        let target = path.to_str().unwrap();
        for msg in ["READY=1", "RELOADING=1", "STOPPING=1", "STATUS=restored 3 bans"] {
            send_to(target, msg).unwrap();
            assert_eq!(recv(&server), msg);
        }
    }

    #[test]
    fn abstract_socket_is_reached_through_at_sign() {
        let name = format!("sipwall-sd-notify-test-{}", std::process::id());
        let server =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        send_to(&format!("@{name}"), "READY=1").unwrap();
        assert_eq!(recv(&server), "READY=1");
    }

    #[test]
    fn missing_listener_and_relative_path_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("nobody");
        assert!(send_to(gone.to_str().unwrap(), "READY=1").is_err());
        assert_eq!(
            send_to("relative/sock", "READY=1").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }

    #[test]
    fn status_is_one_bounded_line() {
        assert_eq!(one_line("a\nb\rc"), "a b c");
        let long = "é".repeat(MAX_STATUS);
        let cut = one_line(&long);
        assert!(cut.len() <= MAX_STATUS && cut.chars().all(|c| c == 'é'));
    }

    // The environment is process-wide: only this test reads or sets NOTIFY_SOCKET.
    #[test]
    fn env_unset_is_a_no_op_and_set_sends() {
        std::env::remove_var("NOTIFY_SOCKET");
        assert!(!ready().unwrap());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        std::env::set_var("NOTIFY_SOCKET", &path);
        assert!(status("queues bound").unwrap());
        assert_eq!(recv(&server), "STATUS=queues bound");
        assert!(stopping().unwrap());
        assert_eq!(recv(&server), "STOPPING=1");
        std::env::remove_var("NOTIFY_SOCKET");
        assert!(!stopping().unwrap());
    }
}
