//! [`HeadTimed`]: a downstream stream on which each HTTP/1 request head must arrive within
//! `request-header-timeout`.
//!
//! The stream only sees bytes, so the proxy tells it where requests begin and end: the deadline
//! runs from the accept for a connection's first request; [`HeadTimed::head_read`] (called once
//! a head is parsed, in `early_request_filter`) stops it; [`HeadTimed::request_done`] (in
//! `logging`) makes the next byte that arrives start the next head's deadline. The idle wait
//! before that byte stays under Pingora's keep-alive timeout. At the deadline the client gets a
//! `408` (written straight onto the socket, best effort) and the read fails, which ends the
//! connection.

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// A head is being read and its deadline runs.
const HEAD: u8 = 0;
/// Between requests: the next byte starts a head.
const IDLE: u8 = 1;
/// Inside a request (body, response), or HTTP/2, or a timed-out head: no deadline.
const OFF: u8 = 2;

const TIMEOUT_RESPONSE: &[u8] =
    b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// A stream enforcing the request-head deadline (see the module docs).
pub struct HeadTimed {
    inner: Stream,
    timeout: Duration,
    state: AtomicU8,
    deadline: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
    /// Bytes of an HTTP/2 prior-knowledge preface (h2c) read so far; `usize::MAX` once the
    /// connection is known not to start with one.
    preface_seen: usize,
}

/// The start of the HTTP/2 connection preface (RFC 9113 3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

impl HeadTimed {
    /// Wraps a just-accepted stream: the first head's deadline starts now (never for `h2`).
    pub fn new(inner: Stream, timeout: Duration, h2: bool) -> HeadTimed {
        HeadTimed {
            inner,
            timeout,
            state: AtomicU8::new(if h2 { OFF } else { HEAD }),
            deadline: Instant::now() + timeout,
            sleep: None,
            preface_seen: 0,
        }
    }

    /// The head of the current request has been read: no deadline until it is done.
    pub fn head_read(&self) {
        self.state.store(OFF, Ordering::Relaxed);
    }

    /// The current request is done: the next byte that arrives starts a head.
    pub fn request_done(&self) {
        let _ = self
            .state
            .compare_exchange(OFF, IDLE, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// The `HeadTimed` under a downstream session, if it is one (HTTP/1 sessions only).
    pub fn of(stream: Option<&Stream>) -> Option<&HeadTimed> {
        stream.and_then(|s| s.as_any().downcast_ref::<HeadTimed>())
    }

    /// Past the deadline: answer 408 as far as the socket takes it now, then fail the read.
    fn expire(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.state.store(OFF, Ordering::Relaxed);
        let _ = Pin::new(&mut self.inner).poll_write(cx, TIMEOUT_RESPONSE);
        let _ = Pin::new(&mut self.inner).poll_flush(cx);
        Poll::Ready(Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "request-header-timeout: the request head did not arrive in time",
        )))
    }
}

impl AsyncRead for HeadTimed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let state = this.state.load(Ordering::Relaxed);
        if state == OFF {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        if state == HEAD && Instant::now() >= this.deadline {
            return this.expire(cx);
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if this.preface_seen < H2_PREFACE.len() && buf.filled().len() > before {
                    // h2c: once the whole preface is in, HTTP/2 frames, not heads, follow (the
                    // deadline is for HTTP/1). Until then, or on the first byte that differs,
                    // the deadline runs: a partial preface decides nothing.
                    let got = &buf.filled()[before..];
                    let want = &H2_PREFACE[this.preface_seen..];
                    let n = got.len().min(want.len());
                    if got[..n] == want[..n] {
                        this.preface_seen += n;
                        if this.preface_seen == H2_PREFACE.len() {
                            this.state.store(OFF, Ordering::Relaxed);
                            return Poll::Ready(Ok(()));
                        }
                    } else {
                        this.preface_seen = usize::MAX;
                    }
                }
                if state == IDLE && buf.filled().len() > before {
                    this.deadline = Instant::now() + this.timeout;
                    this.state.store(HEAD, Ordering::Relaxed);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if state == HEAD => {
                let deadline = this.deadline;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if sleep.deadline() != deadline {
                    sleep.as_mut().reset(deadline);
                }
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => this.expire(cx),
                    Poll::Pending => Poll::Pending,
                }
            }
            other => other,
        }
    }
}

impl AsyncWrite for HeadTimed {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

use std::future::Future as _;

#[async_trait]
impl Shutdown for HeadTimed {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for HeadTimed {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for HeadTimed {
    fn get_ssl(&self) -> Option<&pingora::protocols::tls::TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for HeadTimed {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for HeadTimed {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for HeadTimed {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for HeadTimed {
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

impl fmt::Debug for HeadTimed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeadTimed")
            .field("inner", &self.inner)
            .field("state", &self.state.load(Ordering::Relaxed))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const LIMIT: Duration = Duration::from_millis(150);

    fn pair() -> (HeadTimed, tokio::io::DuplexStream) {
        let (ours, theirs) = tokio::io::duplex(4096);
        (HeadTimed::new(Box::new(ours), LIMIT, false), theirs)
    }

    async fn read_some(s: &mut HeadTimed) -> std::io::Result<Vec<u8>> {
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).await?;
        Ok(buf[..n].to_vec())
    }

    #[tokio::test]
    async fn a_head_that_does_not_arrive_in_time_gets_408_and_a_failed_read() {
        let (mut s, mut client) = pair();
        client.write_all(b"GET / HT").await.unwrap();
        assert_eq!(read_some(&mut s).await.unwrap(), b"GET / HT");
        let started = std::time::Instant::now();
        let err = read_some(&mut s).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert!(started.elapsed() < LIMIT + Duration::from_millis(100));
        let mut answer = vec![0u8; TIMEOUT_RESPONSE.len()];
        client.read_exact(&mut answer).await.unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 408 Request Timeout\r\n"));
    }

    #[tokio::test]
    async fn between_requests_only_the_next_head_is_timed() {
        let (mut s, mut client) = pair();
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        read_some(&mut s).await.unwrap();
        s.head_read();
        // Inside the request (a slow body, say): no deadline.
        tokio::time::sleep(LIMIT * 2).await;
        client.write_all(b"body").await.unwrap();
        assert_eq!(read_some(&mut s).await.unwrap(), b"body");
        s.request_done();
        // Idle longer than the head limit: still fine (keep-alive's business).
        tokio::time::sleep(LIMIT * 2).await;
        client.write_all(b"G").await.unwrap();
        assert_eq!(read_some(&mut s).await.unwrap(), b"G");
        // The next head started with that byte: its deadline runs now.
        let err = read_some(&mut s).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn http2_connections_have_no_head_deadline() {
        let (mut s, mut client) = pair();
        client
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .unwrap();
        read_some(&mut s).await.unwrap();
        tokio::time::sleep(LIMIT * 2).await;
        client.write_all(b"frame").await.unwrap();
        assert_eq!(read_some(&mut s).await.unwrap(), b"frame");
        // A lone first byte of the preface (or of PUT) decides nothing: still timed.
        let (mut s, mut client) = pair();
        client.write_all(b"P").await.unwrap();
        read_some(&mut s).await.unwrap();
        let err = read_some(&mut s).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        let (ours, _theirs) = tokio::io::duplex(64);
        let mut alpn_h2 = HeadTimed::new(Box::new(ours), LIMIT, true);
        let pending = tokio::time::timeout(LIMIT * 2, read_some(&mut alpn_h2)).await;
        assert!(pending.is_err(), "no deadline on an ALPN h2 connection");
    }
}
