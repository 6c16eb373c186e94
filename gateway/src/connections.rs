//! Downstream connections: `max-connections` per listener, `max-connections-per-ip`, and the
//! `request-header-timeout` deadline on every request head.
//!
//! Pingora calls a listener service's [`ServerApp::process_new`] once per accepted connection
//! (after the TLS handshake) and serves all its requests inside that call. [`Guarded`] wraps
//! the proxy there: it counts the connection in (or closes it at once when it is over a limit),
//! holds a guard that counts it out when the call returns or is dropped, and wraps the stream
//! in [`HeadTimed`], which enforces the head deadline Pingora lacks (it has a timeout per read
//! only, so one byte a minute keeps a connection forever).

mod head;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dashmap::DashMap;
use pingora::apps::ServerApp;
use pingora::protocols::{Stream, ALPN};
use pingora::server::ShutdownWatch;
use prometheus::{IntCounter, IntGauge};

pub use head::HeadTimed;

/// Why a connection was refused, as the `limit` label of `gatehouse_connections_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Over `max-connections`.
    MaxConnections,
    /// Over `max-connections-per-ip`.
    MaxConnectionsPerIp,
}

/// One listener's open connections and limits.
pub struct ListenerLimits {
    /// The listener's address as configured.
    addr: SocketAddr,
    max: usize,
    per_ip: usize,
    open: AtomicUsize,
    by_ip: DashMap<IpAddr, usize>,
    refused_max: IntCounter,
    refused_per_ip: IntCounter,
    open_gauge: IntGauge,
}

impl ListenerLimits {
    /// Limits for the listener on `addr` (0 = no limit), counted in the given metrics.
    pub fn new(
        addr: SocketAddr,
        max: usize,
        per_ip: usize,
        metrics: &crate::metrics::Metrics,
        name: &str,
    ) -> ListenerLimits {
        ListenerLimits {
            addr,
            max,
            per_ip,
            open: AtomicUsize::new(0),
            by_ip: DashMap::new(),
            refused_max: metrics.connections_refused(name, "max_connections"),
            refused_per_ip: metrics.connections_refused(name, "max_connections_per_ip"),
            open_gauge: metrics.connections_open(name),
        }
    }

    /// Whether a connection accepted on `local` came in through this listener (a wildcard
    /// listener matches by port).
    fn serves(&self, local: SocketAddr) -> bool {
        self.addr.port() == local.port()
            && (self.addr.ip().is_unspecified() || self.addr.ip() == local.ip())
    }

    /// Counts a connection from `ip` in, or refuses it (and counts the refusal). `ip` is
    /// `None` for a peer the per-address limit does not apply to (a trusted proxy carries many
    /// clients' connections).
    pub fn admit(self: &Arc<Self>, ip: Option<IpAddr>) -> Result<ConnectionGuard, Refused> {
        let n = self.open.fetch_add(1, Ordering::AcqRel) + 1;
        if self.max > 0 && n > self.max {
            self.open.fetch_sub(1, Ordering::AcqRel);
            self.refused_max.inc();
            return Err(Refused::MaxConnections);
        }
        let ip = ip.filter(|_| self.per_ip > 0);
        if let Some(ip) = ip {
            let mut count = self.by_ip.entry(ip).or_insert(0);
            if *count >= self.per_ip {
                drop(count);
                self.open.fetch_sub(1, Ordering::AcqRel);
                self.refused_per_ip.inc();
                return Err(Refused::MaxConnectionsPerIp);
            }
            *count += 1;
        }
        self.open_gauge.inc();
        Ok(ConnectionGuard {
            limits: Arc::clone(self),
            ip,
        })
    }

    /// Open connections on this listener.
    #[cfg(test)]
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Open connections from `ip` (0 when per-address counting is off).
    #[cfg(test)]
    pub fn open_from(&self, ip: IpAddr) -> usize {
        self.by_ip.get(&ip).map_or(0, |c| *c)
    }

    fn release(&self, ip: Option<IpAddr>) {
        if let Some(ip) = ip {
            // The entry goes when its last connection does: the map holds only open addresses.
            if let dashmap::Entry::Occupied(mut entry) = self.by_ip.entry(ip) {
                if *entry.get() <= 1 {
                    entry.remove();
                } else {
                    *entry.get_mut() -= 1;
                }
            }
        }
        self.open.fetch_sub(1, Ordering::AcqRel);
        self.open_gauge.dec();
    }
}

/// One admitted connection; counts it out when dropped (the connection's task ended, however).
pub struct ConnectionGuard {
    limits: Arc<ListenerLimits>,
    ip: Option<IpAddr>,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.limits.release(self.ip);
    }
}

/// A listener service's app (the proxy) behind the connection limits and the head deadline.
pub struct Guarded<A> {
    inner: Arc<A>,
    listeners: Vec<Arc<ListenerLimits>>,
    header_timeout: Duration,
    runtime: crate::runtime::SharedRuntime,
}

impl<A> Guarded<A> {
    /// Wraps `inner`; `listeners` are the service's listeners with their limits; `runtime`
    /// says which peers are trusted proxies (exempt from `max-connections-per-ip`).
    pub fn new(
        inner: A,
        listeners: Vec<Arc<ListenerLimits>>,
        header_timeout: Duration,
        runtime: crate::runtime::SharedRuntime,
    ) -> Self {
        Guarded {
            inner: Arc::new(inner),
            listeners,
            header_timeout,
            runtime,
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Guarded<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let digest = stream.get_socket_digest();
        let inet = |a: Option<&pingora::protocols::l4::socket::SocketAddr>| {
            a.and_then(|a| a.as_inet()).copied()
        };
        let local = digest.as_ref().and_then(|d| inet(d.local_addr()));
        let peer = digest.as_ref().and_then(|d| inet(d.peer_addr()));
        let limits = local.and_then(|l| self.listeners.iter().find(|x| x.serves(l)));
        let per_ip_key = peer.map(|p| p.ip().to_canonical()).filter(|&ip| {
            limits.is_some_and(|l| l.per_ip > 0)
                && !self.runtime.load().policy.trusted_proxies.contains(ip)
        });
        let _guard = match limits.map(|l| l.admit(per_ip_key)) {
            Some(Err(refused)) => {
                tracing::debug!(peer = ?peer, ?refused, "connection refused");
                return None; // dropping the stream closes it
            }
            Some(Ok(guard)) => Some(guard),
            None => None,
        };
        // HTTP/2 has its own framing and flow control: the head deadline is for HTTP/1.
        let h2 = matches!(stream.selected_alpn_proto(), Some(ALPN::H2));
        let stream: Stream = Box::new(HeadTimed::new(stream, self.header_timeout, h2));
        self.inner.process_new(stream, shutdown).await
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize, per_ip: usize) -> Arc<ListenerLimits> {
        let metrics = crate::metrics::Metrics::new();
        Arc::new(ListenerLimits::new(
            "0.0.0.0:8080".parse().unwrap(),
            max,
            per_ip,
            &metrics,
            "listen",
        ))
    }

    #[test]
    fn per_address_and_total_limits_count_in_and_out_without_leaking() {
        let l = limits(4, 2);
        let (a, b, c): (IpAddr, IpAddr, IpAddr) = (
            "127.0.0.1".parse().unwrap(),
            "127.0.0.2".parse().unwrap(),
            "127.0.0.3".parse().unwrap(),
        );
        let a1 = l.admit(Some(a)).unwrap();
        let a2 = l.admit(Some(a)).unwrap();
        assert_eq!(l.admit(Some(a)).err(), Some(Refused::MaxConnectionsPerIp));
        let _b1 = l.admit(Some(b)).unwrap();
        let _b2 = l.admit(Some(b)).unwrap();
        assert_eq!(l.admit(Some(c)).err(), Some(Refused::MaxConnections));
        assert_eq!(l.open(), 4);
        drop(a1);
        assert_eq!((l.open(), l.open_from(a)), (3, 1));
        let a3 = l.admit(Some(a)).unwrap();
        drop((a2, a3));
        assert_eq!(l.open_from(a), 0);
        assert!(
            l.by_ip.get(&a).is_none(),
            "no entry left for a closed address"
        );
        assert_eq!(l.open(), 2);
    }

    #[test]
    fn zero_means_no_limit_and_wildcard_listeners_match_by_port() {
        let l = limits(0, 0);
        let guards: Vec<_> = (0..1000)
            .map(|_| l.admit(Some("10.0.0.1".parse().unwrap())).unwrap())
            .collect();
        assert_eq!(l.open(), 1000);
        drop(guards);
        assert_eq!(l.open(), 0);
        assert!(l.serves("127.0.0.1:8080".parse().unwrap()));
        assert!(!l.serves("127.0.0.1:8443".parse().unwrap()));
    }
}
