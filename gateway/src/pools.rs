//! Upstream pools: a pingora-load-balancing `LoadBalancer` per configured upstream (round robin
//! or Ketama consistent hashing on the client IP), targets re-resolved by DNS, active health
//! checks (HTTP path or TCP) run by the maintenance service, and the `HttpPeer` template
//! (timeouts, keep-alive, TLS with SNI, HTTP/2) every request's peer is cloned from.

use std::collections::{BTreeSet, HashMap};
use std::net::ToSocketAddrs;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use gatehouse_config::{Balance, Upstream};
use pingora::connectors::http::Connector as HttpConnector;
use pingora::connectors::TransportConnector;
use pingora::http::RequestHeader;
use pingora::lb::discovery::ServiceDiscovery;
use pingora::lb::health_check::HealthCheck;
use pingora::lb::selection::{Consistent, RoundRobin};
use pingora::lb::{Backend, Backends, LoadBalancer};
use pingora::prelude::HttpPeer;
use pingora::protocols::l4::socket::SocketAddr as PingoraAddr;

/// How long an upstream connection may idle in the keep-alive pool.
const UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Ketama: how many ring steps to try before giving up on finding a healthy target.
const MAX_SELECT_ITERATIONS: usize = 256;
/// DNS names in `targets` are re-resolved this often (IP literals never are).
const DNS_REFRESH: Duration = Duration::from_secs(30);

enum Balancer {
    RoundRobin(LoadBalancer<RoundRobin>),
    Consistent(LoadBalancer<Consistent>),
}

impl Balancer {
    fn backends(&self) -> &Backends {
        match self {
            Balancer::RoundRobin(lb) => lb.backends(),
            Balancer::Consistent(lb) => lb.backends(),
        }
    }
    async fn update(&self) -> pingora::Result<()> {
        match self {
            Balancer::RoundRobin(lb) => lb.update().await,
            Balancer::Consistent(lb) => lb.update().await,
        }
    }
}

/// One upstream pool.
pub struct Pool {
    /// The definition this pool was built from; a reload reuses the pool when it is unchanged.
    pub definition: Upstream,
    /// `tenant/upstream`, for logs and metrics.
    pub label: String,
    balancer: Balancer,
    /// The targets that were ready after the last discovery or check round, in the balancer's
    /// order: what round robin selects from and what the healthy count reads. Selecting from
    /// this list costs an atomic add; the balancer's own `select` hashes every candidate to
    /// look its health up.
    ready: ArcSwap<Vec<PingoraAddr>>,
    /// Round robin: the next turn.
    turn: AtomicUsize,
    peer_template: HttpPeer,
    has_dns_names: bool,
    checked: AtomicBool,
    /// `gatehouse_upstream_duration_seconds` for this pool.
    pub latency: prometheus::Histogram,
    /// `gatehouse_upstream_healthy_targets` for this pool, set after each check round.
    healthy_gauge: prometheus::IntGauge,
    next_check_ms: AtomicU64,
    next_dns_ms: AtomicU64,
    check_running: AtomicBool,
}

impl Pool {
    /// Builds the pool and resolves its targets once (blocking DNS for names: call it at start
    /// or from a blocking-safe context on reload).
    pub fn new(
        tenant: &str,
        upstream: &Upstream,
        metrics: &crate::metrics::Metrics,
    ) -> Result<Pool, String> {
        let discovery = TargetDiscovery::resolve(&upstream.targets);
        let has_dns_names = discovery.has_dns_names;
        let mut backends = Backends::new(Box::new(discovery));
        backends.set_health_check(health_check(upstream));
        let balancer = match upstream.balance {
            Balance::RoundRobin => Balancer::RoundRobin(LoadBalancer::from_backends(backends)),
            Balance::ConsistentHash => Balancer::Consistent(LoadBalancer::from_backends(backends)),
        };
        // The first discovery answers from the blocking resolution above without awaiting.
        use futures_util::FutureExt;
        balancer
            .update()
            .now_or_never()
            .ok_or("target discovery did not complete")?
            .map_err(|e| e.to_string())?;
        let pool = Pool {
            definition: upstream.clone(),
            label: format!("{tenant}/{}", upstream.name),
            balancer,
            ready: ArcSwap::from_pointee(Vec::new()),
            turn: AtomicUsize::new(0),
            peer_template: peer_template(upstream),
            has_dns_names,
            checked: AtomicBool::new(false),
            latency: metrics.upstream_histogram(tenant, &upstream.name),
            healthy_gauge: metrics.healthy_targets_gauge(tenant, &upstream.name),
            next_check_ms: AtomicU64::new(0),
            next_dns_ms: AtomicU64::new(DNS_REFRESH.as_millis() as u64),
            check_running: AtomicBool::new(false),
        };
        pool.refresh_ready();
        Ok(pool)
    }

    /// Publishes the list of ready targets. Readiness changes only in discovery and check
    /// rounds, each of which calls this after it.
    fn refresh_ready(&self) {
        let backends = self.balancer.backends();
        let ready = backends
            .get_backend()
            .iter()
            .filter(|b| backends.ready(b))
            .map(|b| b.addr.clone())
            .collect();
        self.ready.store(Arc::new(ready));
    }

    /// A peer for this request: the next healthy target (round robin) or the client IP's
    /// target on the hash ring; `None` when no target is healthy.
    pub fn select(&self, client_key: &[u8]) -> Option<Box<HttpPeer>> {
        let address = match &self.balancer {
            Balancer::RoundRobin(_) => {
                let ready = self.ready.load();
                if ready.is_empty() {
                    return None;
                }
                ready[self.turn.fetch_add(1, Ordering::Relaxed) % ready.len()].clone()
            }
            Balancer::Consistent(lb) => lb.select(client_key, MAX_SELECT_ITERATIONS)?.addr,
        };
        let mut peer = Box::new(self.peer_template.clone());
        peer._address = address;
        Some(peer)
    }

    /// Targets passing health checks, as of the last discovery or check round.
    pub fn healthy_targets(&self) -> usize {
        self.ready.load().len()
    }

    /// Targets known to the pool (resolved), healthy or not.
    pub fn target_count(&self) -> usize {
        self.balancer.backends().get_backend().len()
    }

    /// Whether the first health check round has completed.
    pub fn checked(&self) -> bool {
        self.checked.load(Ordering::Acquire)
    }

    /// Whether a health check or DNS refresh is due (and none is running).
    pub(crate) fn due(&self, now_ms: u64) -> bool {
        !self.check_running.load(Ordering::Acquire)
            && (now_ms >= self.next_check_ms.load(Ordering::Relaxed)
                || (self.has_dns_names && now_ms >= self.next_dns_ms.load(Ordering::Relaxed)))
    }

    /// Runs discovery (when due) and one health check round if its interval has elapsed.
    pub(crate) async fn tick(self: Arc<Self>, now_ms: u64) {
        if self.check_running.swap(true, Ordering::AcqRel) {
            return;
        }
        if self.has_dns_names && now_ms >= self.next_dns_ms.load(Ordering::Relaxed) {
            self.next_dns_ms
                .store(now_ms + DNS_REFRESH.as_millis() as u64, Ordering::Relaxed);
            if let Err(e) = self.balancer.update().await {
                tracing::warn!(pool = %self.label, error = %e, "target re-resolution failed; keeping the last targets");
            }
            self.refresh_ready();
        }
        if now_ms >= self.next_check_ms.load(Ordering::Relaxed) {
            let interval = self.definition.health_check.interval.as_millis() as u64;
            self.next_check_ms
                .store(now_ms + interval, Ordering::Relaxed);
            self.balancer.backends().run_health_check(true).await;
            self.refresh_ready();
            self.healthy_gauge.set(self.healthy_targets() as i64);
            self.checked.store(true, Ordering::Release);
        }
        self.check_running.store(false, Ordering::Release);
    }
}

fn peer_template(upstream: &Upstream) -> HttpPeer {
    let sni = upstream.sni.clone().unwrap_or_else(|| {
        upstream
            .targets
            .first()
            .and_then(|t| {
                t.rsplit_once(':')
                    .map(|(h, _)| h.trim_matches(['[', ']']).to_string())
            })
            .unwrap_or_default()
    });
    let mut peer = HttpPeer::new("127.0.0.1:1", upstream.tls, sni);
    peer.options.connection_timeout = Some(upstream.connect_timeout);
    peer.options.read_timeout = Some(upstream.read_timeout);
    peer.options.write_timeout = Some(upstream.read_timeout);
    peer.options.idle_timeout = Some(UPSTREAM_IDLE_TIMEOUT);
    peer.options.verify_cert = upstream.tls_verify;
    peer.options.verify_hostname = upstream.tls_verify;
    if upstream.h2 {
        // TLS: negotiate h2 by ALPN; plain text: h2c with prior knowledge.
        peer.options.set_http_version(2, 2);
    }
    peer
}

/// The connectors every health check of the process shares. Pingora's stock checks build one
/// connector each (with its own TLS context), which made a 10 000-upstream config take minutes
/// to load; one shared connector makes that a few milliseconds.
fn shared_connectors() -> &'static (TransportConnector, HttpConnector) {
    static CONNECTORS: OnceLock<(TransportConnector, HttpConnector)> = OnceLock::new();
    CONNECTORS.get_or_init(|| (TransportConnector::new(None), HttpConnector::new(None)))
}

fn health_check(upstream: &Upstream) -> Box<dyn HealthCheck + Send + Sync + 'static> {
    let hc = &upstream.health_check;
    let mut peer = HttpPeer::new(
        "127.0.0.1:1",
        upstream.tls,
        upstream.sni.clone().unwrap_or_default(),
    );
    peer.options.connection_timeout = Some(hc.timeout);
    peer.options.read_timeout = Some(hc.timeout);
    peer.options.write_timeout = Some(hc.timeout);
    peer.options.verify_cert = upstream.tls_verify;
    peer.options.verify_hostname = upstream.tls_verify;
    let request = hc.path.as_ref().map(|path| {
        let host = hc.host.clone().unwrap_or_else(|| "localhost".to_string());
        let mut req = RequestHeader::build("GET", path.as_bytes(), None)
            .expect("a validated health-check path builds a request");
        req.append_header("Host", host.as_str())
            .expect("a validated host is a header value");
        req.append_header("User-Agent", "gatehouse-health-check")
            .expect("static header value");
        req
    });
    Box::new(TargetCheck {
        peer,
        request,
        expected_status: hc.expected_status,
        healthy_threshold: hc.healthy_threshold,
        unhealthy_threshold: hc.unhealthy_threshold,
    })
}

/// An active health check: a TCP (and TLS, for TLS upstreams) connect, or an HTTP `GET path`
/// answered with the expected status (any 2xx/3xx by default).
struct TargetCheck {
    peer: HttpPeer,
    request: Option<RequestHeader>,
    expected_status: Option<u16>,
    healthy_threshold: usize,
    unhealthy_threshold: usize,
}

#[async_trait]
impl HealthCheck for TargetCheck {
    async fn check(&self, target: &Backend) -> pingora::Result<()> {
        let mut peer = self.peer.clone();
        peer._address = target.addr.clone();
        let (transport, http) = shared_connectors();
        let Some(request) = &self.request else {
            return transport.get_stream(&peer).await.map(|_| ());
        };
        let (mut session, _reused) = http.get_http_session(&peer).await?;
        session.set_write_timeout(peer.options.write_timeout);
        session
            .write_request_header(Box::new(request.clone()))
            .await?;
        session.finish_request_body().await?;
        session.set_read_timeout(peer.options.read_timeout);
        session.read_response_header().await?;
        let status = session
            .response_header()
            .map(|r| r.status.as_u16())
            .unwrap_or(0);
        let ok = match self.expected_status {
            Some(code) => status == code,
            None => (200..400).contains(&status),
        };
        if !ok {
            return pingora::Error::e_explain(
                pingora::ErrorType::CustomCode("unexpected health-check status", status),
                "during http health check",
            );
        }
        while session.read_response_body().await?.is_some() {}
        Ok(())
    }

    fn health_threshold(&self, success: bool) -> usize {
        if success {
            self.healthy_threshold
        } else {
            self.unhealthy_threshold
        }
    }
}

/// Static targets, with DNS names re-resolved on each discovery; a failed resolution keeps the
/// last answer so a DNS blip never empties a pool.
struct TargetDiscovery {
    targets: Vec<String>,
    has_dns_names: bool,
    last: ArcSwap<BTreeSet<Backend>>,
    seeded: AtomicBool,
}

impl TargetDiscovery {
    fn resolve(targets: &[String]) -> TargetDiscovery {
        let mut set = BTreeSet::new();
        let mut has_dns_names = false;
        for target in targets {
            if let Ok(addr) = target.parse::<std::net::SocketAddr>() {
                set.insert(backend(addr));
                continue;
            }
            has_dns_names = true;
            // A name that does not resolve yet (a Service not created yet) is not fatal: the
            // pool starts without it and re-resolves every DNS_REFRESH.
            match target.to_socket_addrs() {
                Ok(addrs) => set.extend(addrs.map(backend)),
                Err(e) => tracing::warn!(%target, error = %e, "target does not resolve yet"),
            }
        }
        TargetDiscovery {
            targets: targets.to_vec(),
            has_dns_names,
            last: ArcSwap::from_pointee(set),
            seeded: AtomicBool::new(false),
        }
    }
}

fn backend(addr: std::net::SocketAddr) -> Backend {
    Backend {
        addr: PingoraAddr::Inet(addr),
        weight: 1,
        ext: Default::default(),
    }
}

#[async_trait]
impl ServiceDiscovery for TargetDiscovery {
    async fn discover(&self) -> pingora::Result<(BTreeSet<Backend>, HashMap<u64, bool>)> {
        if self.seeded.swap(true, Ordering::AcqRel) && self.has_dns_names {
            let mut set = BTreeSet::new();
            for target in &self.targets {
                match tokio::net::lookup_host(target.as_str()).await {
                    Ok(addrs) => set.extend(addrs.map(backend)),
                    Err(e) => {
                        tracing::warn!(%target, error = %e, "DNS resolution failed; keeping the last targets");
                        return Ok(((**self.last.load()).clone(), HashMap::new()));
                    }
                }
            }
            self.last.store(Arc::new(set));
        }
        Ok(((**self.last.load()).clone(), HashMap::new()))
    }
}
