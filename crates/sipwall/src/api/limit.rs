//! A listener that holds at most [`MAX_CONNECTIONS`] connections open at once: one more is
//! closed at once. The HTTP server has no header-read deadline, so without this a local client
//! opening connections and never finishing a request could take every file descriptor of the
//! daemon (which its queues, store and control socket need too). At the limit such a client
//! blocks the API only, never the daemon.
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Most API connections open at once.
pub const MAX_CONNECTIONS: usize = 64;

/// [`TcpListener`] with a connection limit.
pub struct Limited {
    inner: TcpListener,
    permits: Arc<Semaphore>,
}

impl Limited {
    /// At most `max` connections of `inner` open at once.
    pub fn new(inner: TcpListener, max: usize) -> Limited {
        Limited { inner, permits: Arc::new(Semaphore::new(max)) }
    }
}

/// A connection holding its slot until dropped.
pub struct Conn {
    io: TcpStream,
    _slot: OwnedSemaphorePermit,
}

impl axum::serve::Listener for Limited {
    type Io = Conn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Conn, SocketAddr) {
        loop {
            match self.inner.accept().await {
                Ok((io, addr)) => match self.permits.clone().try_acquire_owned() {
                    Ok(slot) => return (Conn { io, _slot: slot }, addr),
                    Err(_) => {
                        log::warn!(
                            "api: {MAX_CONNECTIONS} connections open; one from {addr} closed"
                        );
                        drop(io);
                    }
                },
                // Out of descriptors and the like: wait instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::serve::Listener as _;

    /// Over the limit, a connection is closed at once (the client reads end of file); once a
    /// held connection closes, a new one is kept again.
    #[test]
    fn connections_over_the_limit_are_closed() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap();
            let mut lim = Limited::new(l, 1);
            let c1 = TcpStream::connect(addr).await.unwrap();
            let (held, _) = lim.accept().await;
            let c2 = TcpStream::connect(addr).await.unwrap();
            // c2 is accepted and closed at once: accept waits on (bounded here)
            let pending = tokio::time::timeout(Duration::from_millis(300), lim.accept()).await;
            assert!(pending.is_err(), "a connection over the limit was kept");
            let mut b = [0u8; 1];
            let mut c2 = c2.into_std().unwrap();
            c2.set_nonblocking(false).unwrap();
            c2.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let closed = match std::io::Read::read(&mut c2, &mut b) {
                Ok(n) => n == 0,
                Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
            };
            assert!(closed, "the connection over the limit was not closed");
            // a slot freed: the next connection is kept
            drop(held);
            drop(c1);
            let c3 = TcpStream::connect(addr).await.unwrap();
            let kept = tokio::time::timeout(Duration::from_secs(5), lim.accept()).await;
            let (_held3, from) = kept.expect("a connection within the limit was not accepted");
            assert_eq!(from, c3.local_addr().unwrap());
        });
    }
}
