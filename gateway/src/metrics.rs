//! Prometheus metrics, registered once per process. Label values are bounded: tenant, route
//! (its configured uri or name), upstream and provider names from the config, standard methods
//! (others are `OTHER`), status classes and static reasons — never a raw path, user or token.
//!
//! The hot path records through handles resolved ahead of time ([`RouteMetrics`], per-pool and
//! per-provider histograms): one atomic add per counter, no label hashing or formatting.
//!
//! Buckets ([`LATENCY_BUCKETS`]) span 100 µs to 10 s: a gateway's own work is sub-millisecond,
//! so the low end needs resolution; the high end covers slow upstreams up to typical timeouts.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Histogram buckets for a gateway: sub-millisecond resolution at the low end.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

const STATUS_CLASSES: [&str; 6] = ["none", "1xx", "2xx", "3xx", "4xx", "5xx"];
const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE", "OTHER",
];

fn method_index(m: &http::Method) -> usize {
    match *m {
        http::Method::GET => 0,
        http::Method::HEAD => 1,
        http::Method::POST => 2,
        http::Method::PUT => 3,
        http::Method::DELETE => 4,
        http::Method::OPTIONS => 5,
        http::Method::PATCH => 6,
        http::Method::CONNECT => 7,
        http::Method::TRACE => 8,
        _ => 9,
    }
}

fn class_index(status: u16) -> usize {
    usize::from(status / 100).min(5)
}

/// The process's metric families.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    upstream_duration: HistogramVec,
    /// Requests currently being handled.
    pub in_flight: IntGauge,
    denials: IntCounterVec,
    auth_decisions: IntCounterVec,
    token_verify: HistogramVec,
    token_cache_entries: IntGaugeVec,
    jwks_refreshes: IntCounterVec,
    logins: IntCounterVec,
    logouts: IntCounterVec,
    token_refreshes: IntCounterVec,
    session_store_duration: HistogramVec,
    session_store_errors: IntCounterVec,
    /// `gatehouse_session_store_events_total{event}`: the Redis client's connection events.
    pub(crate) session_store_events: IntCounterVec,
    /// `gatehouse_session_cache_lookups_total{result}`: local session cache hits and misses.
    pub(crate) session_cache_lookups: IntCounterVec,
    /// `gatehouse_sessions_active`: sessions in the store, counted periodically.
    pub(crate) sessions_active: IntGauge,
    /// `gatehouse_idp_request_duration_seconds{provider, call}`.
    pub(crate) idp_duration: HistogramVec,
    /// `gatehouse_idp_requests_total{provider, call, outcome}`.
    pub(crate) idp_requests: IntCounterVec,
    idp_keys_age: GaugeVec,
    healthy_targets: IntGaugeVec,
    reloads: IntCounterVec,
    last_reload_success: IntGauge,
    access_log_dropped: IntCounter,
    trace_spans: IntCounterVec,
    rate_limited: IntCounterVec,
    rate_limit_fallbacks: IntCounterVec,
    connections_refused: IntCounterVec,
    connections_open: IntGaugeVec,
    upgraded_connections: IntGaugeVec,
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("registered once");
    c
}

fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry
        .register(Box::new(g.clone()))
        .expect("registered once");
    g
}

fn histogram(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
        labels,
    )
    .expect("valid metric");
    registry
        .register(Box::new(h.clone()))
        .expect("registered once");
    h
}

impl Metrics {
    /// Registers every family.
    pub fn new() -> Metrics {
        let r = Registry::new();
        let in_flight = IntGauge::new("gatehouse_requests_in_flight", "Requests being handled")
            .expect("valid metric");
        r.register(Box::new(in_flight.clone()))
            .expect("registered once");
        let sessions_active = IntGauge::new(
            "gatehouse_sessions_active",
            "Browser sessions in the session store, counted every few seconds (memory: exact; Redis: a paced SCAN of the session keys on every master)",
        )
        .expect("valid metric");
        r.register(Box::new(sessions_active.clone()))
            .expect("registered once");
        let last_reload_success = IntGauge::new(
            "gatehouse_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful config load",
        )
        .expect("valid metric");
        r.register(Box::new(last_reload_success.clone()))
            .expect("registered once");
        let access_log_dropped = IntCounter::new(
            "gatehouse_access_log_dropped_total",
            "Access log lines dropped because the writer fell behind",
        )
        .expect("valid metric");
        r.register(Box::new(access_log_dropped.clone()))
            .expect("registered once");
        let build_info = gauge(
            &r,
            "gatehouse_build_info",
            "Build information",
            &["version"],
        );
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        Metrics {
            requests: counter(
                &r,
                "gatehouse_requests_total",
                "Requests handled, by tenant, route, method and status class",
                &["tenant", "route", "method", "status_class"],
            ),
            duration: histogram(
                &r,
                "gatehouse_request_duration_seconds",
                "Whole-request latency as seen by the gateway",
                &["tenant", "route"],
            ),
            upstream_duration: histogram(
                &r,
                "gatehouse_upstream_duration_seconds",
                "Time from choosing an upstream target to its response headers",
                &["tenant", "upstream"],
            ),
            in_flight,
            denials: counter(
                &r,
                "gatehouse_denials_total",
                "Requests the gateway answered itself, by tenant and reason",
                &["tenant", "reason"],
            ),
            auth_decisions: counter(
                &r,
                "gatehouse_auth_decisions_total",
                "Authentication and authorization decisions on protected routes",
                &["tenant", "result", "reason"],
            ),
            token_verify: histogram(
                &r,
                "gatehouse_token_verify_duration_seconds",
                "Bearer token verification time, by provider and verified-token cache hit or miss",
                &["provider", "cache"],
            ),
            token_cache_entries: gauge(
                &r,
                "gatehouse_token_cache_entries",
                "Verified tokens cached, by provider",
                &["provider"],
            ),
            jwks_refreshes: counter(
                &r,
                "gatehouse_jwks_refresh_total",
                "JWKS fetches by provider and result",
                &["provider", "result"],
            ),
            logins: counter(
                &r,
                "gatehouse_login_total",
                "Browser logins by tenant and result",
                &["tenant", "result"],
            ),
            logouts: counter(
                &r,
                "gatehouse_logout_total",
                "Browser logouts by tenant",
                &["tenant"],
            ),
            token_refreshes: counter(
                &r,
                "gatehouse_token_refresh_total",
                "Session access-token refreshes by result",
                &["result"],
            ),
            session_store_duration: histogram(
                &r,
                "gatehouse_session_store_duration_seconds",
                "Session store operation latency by operation, failures included",
                &["op"],
            ),
            session_store_errors: counter(
                &r,
                "gatehouse_session_store_errors_total",
                "Session store operation failures by operation and outcome",
                &["op", "outcome"],
            ),
            session_store_events: counter(
                &r,
                "gatehouse_session_store_events_total",
                "Redis client connection events: reconnects, cluster topology changes, connection errors, unresponsive connections",
                &["event"],
            ),
            session_cache_lookups: counter(
                &r,
                "gatehouse_session_cache_lookups_total",
                "Local session cache lookups: hit (no store round trip), miss (the store was asked), stale (served from the cache while the store was unavailable; also a miss)",
                &["result"],
            ),
            sessions_active,
            idp_duration: histogram(
                &r,
                "gatehouse_idp_request_duration_seconds",
                "Calls to identity providers by provider and call kind",
                &["provider", "call"],
            ),
            idp_requests: counter(
                &r,
                "gatehouse_idp_requests_total",
                "Calls to identity providers by provider, call kind and outcome",
                &["provider", "call", "outcome"],
            ),
            idp_keys_age: {
                let g = GaugeVec::new(
                    Opts::new(
                        "gatehouse_idp_keys_age_seconds",
                        "Seconds since the signing keys in use were loaded or last fetched, by provider",
                    ),
                    &["provider"],
                )
                .expect("valid metric");
                r.register(Box::new(g.clone())).expect("registered once");
                g
            },
            healthy_targets: gauge(
                &r,
                "gatehouse_upstream_healthy_targets",
                "Targets passing health checks, by tenant and upstream",
                &["tenant", "upstream"],
            ),
            reloads: counter(
                &r,
                "gatehouse_config_reload_total",
                "Config loads and reloads by result",
                &["result"],
            ),
            trace_spans: counter(
                &r,
                "gatehouse_trace_spans_total",
                "OpenTelemetry spans by outcome: exported, dropped (the export queue was full) or failed (the export did not succeed)",
                &["outcome"],
            ),
            rate_limited: counter(
                &r,
                "gatehouse_rate_limited_total",
                "Requests refused with 429 by a rate limit, by tenant, route and the limit's key",
                &["tenant", "route", "key"],
            ),
            rate_limit_fallbacks: counter(
                &r,
                "gatehouse_rate_limit_shared_fallback_total",
                "Checks of shared rate limits decided by the local bucket because Redis could not answer, by tenant",
                &["tenant"],
            ),
            connections_refused: counter(
                &r,
                "gatehouse_connections_refused_total",
                "Downstream connections closed at accept, by listener and the limit they were over",
                &["listener", "limit"],
            ),
            connections_open: gauge(
                &r,
                "gatehouse_connections_open",
                "Open downstream connections, by listener",
                &["listener"],
            ),
            last_reload_success,
            access_log_dropped,
            upgraded_connections: gauge(
                &r,
                "gatehouse_upgraded_connections",
                "Upgraded (WebSocket) connections open now, by tenant",
                &["tenant"],
            ),
            registry: r,
        }
    }

    /// Creates the series a config will use with value 0, so dashboards and alerts see them
    /// before the first event (and so a typo'd metric is told apart from an idle one).
    pub fn init_series(&self, config: &gatehouse_config::Config) {
        for result in ["success", "failure"] {
            self.reloads.with_label_values(&[result]);
            self.token_refreshes.with_label_values(&[result]);
        }
        for tenant in &config.tenants {
            let t = tenant.name.as_str();
            for result in ["success", "failure"] {
                self.logins.with_label_values(&[t, result]);
            }
            self.logouts.with_label_values(&[t]);
            self.upgraded_connections.with_label_values(&[t]);
            self.auth_decisions.with_label_values(&[t, "allowed", "ok"]);
            self.auth_decisions
                .with_label_values(&[t, "unauthenticated", "unauthenticated"]);
            self.auth_decisions
                .with_label_values(&[t, "forbidden", "missing_role"]);
            for u in &tenant.upstreams {
                self.upstream_duration.with_label_values(&[t, &u.name]);
            }
            let mut limits = tenant
                .rate_limits
                .iter()
                .chain(tenant.routes.iter().flat_map(|r| &r.rate_limits));
            if limits.any(|l| l.shared) {
                self.rate_limit_fallbacks.with_label_values(&[t]);
            }
            for l in &tenant.rate_limits {
                self.rate_limited
                    .with_label_values(&[t, "-", l.key.as_str()]);
            }
            for r in &tenant.routes {
                for l in tenant.rate_limits.iter().chain(&r.rate_limits) {
                    self.rate_limited
                        .with_label_values(&[t, &r.name, l.key.as_str()]);
                }
            }
        }
        for p in &config.identity_providers {
            for result in ["success", "failure"] {
                self.jwks_refreshes.with_label_values(&[&p.name, result]);
            }
            for cache in ["hit", "miss"] {
                self.token_verify.with_label_values(&[&p.name, cache]);
            }
            self.token_cache_entries.with_label_values(&[&p.name]);
        }
    }

    /// Handles for one route's request metrics.
    pub fn route(&self, tenant: &str, route: &str) -> RouteMetrics {
        RouteMetrics {
            tenant: tenant.to_string(),
            route: route.to_string(),
            duration: self.duration.with_label_values(&[tenant, route]),
            requests: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// A pool's upstream latency histogram.
    pub fn upstream_histogram(&self, tenant: &str, upstream: &str) -> Histogram {
        self.upstream_duration
            .with_label_values(&[tenant, upstream])
    }

    /// A provider's token verification histograms (hit, miss).
    pub fn token_verify_histograms(&self, provider: &str) -> (Histogram, Histogram) {
        (
            self.token_verify.with_label_values(&[provider, "hit"]),
            self.token_verify.with_label_values(&[provider, "miss"]),
        )
    }

    /// The pre-resolved `allowed/ok` auth counter of a tenant (the common case).
    pub fn auth_allowed(&self, tenant: &str) -> IntCounter {
        self.auth_decisions
            .with_label_values(&[tenant, "allowed", "ok"])
    }

    /// Records a refused authentication or authorization.
    pub fn record_auth_refusal(&self, tenant: &str, result: &str, reason: &str) {
        self.auth_decisions
            .with_label_values(&[tenant, result, reason])
            .inc();
    }

    /// Records a request the gateway answered itself.
    pub fn record_denial(&self, tenant: &str, reason: &str) {
        self.denials.with_label_values(&[tenant, reason]).inc();
    }

    /// Records a request refused by a rate limit (also a denial, recorded as such).
    pub fn record_rate_limited(&self, tenant: &str, route: &str, key: &str) {
        self.rate_limited
            .with_label_values(&[tenant, route, key])
            .inc();
    }

    /// Records a shared rate limit decided locally (Redis unreachable).
    pub fn record_rate_limit_fallback(&self, tenant: &str) {
        self.rate_limit_fallbacks.with_label_values(&[tenant]).inc();
    }

    /// A listener's counter of connections refused over `limit` (`max_connections`,
    /// `max_connections_per_ip`).
    pub fn connections_refused(&self, listener: &str, limit: &str) -> IntCounter {
        self.connections_refused
            .with_label_values(&[listener, limit])
    }

    /// A listener's gauge of open connections.
    pub fn connections_open(&self, listener: &str) -> IntGauge {
        self.connections_open.with_label_values(&[listener])
    }

    /// Records a JWKS fetch.
    pub fn record_jwks_refresh(&self, provider: &str, ok: bool) {
        self.jwks_refreshes
            .with_label_values(&[provider, if ok { "success" } else { "failure" }])
            .inc();
    }

    /// Publishes a provider's verified-token cache size.
    pub fn set_token_cache_entries(&self, provider: &str, n: usize) {
        self.token_cache_entries
            .with_label_values(&[provider])
            .set(n as i64);
    }

    /// Publishes how old a provider's keys in use are (nothing before the first keys).
    pub fn set_idp_keys_age(&self, provider: &str, age: Option<Duration>) {
        if let Some(age) = age {
            self.idp_keys_age
                .with_label_values(&[provider])
                .set(age.as_secs_f64());
        }
    }

    /// The session store's latency histogram and error counter families.
    pub(crate) fn session_store_families(&self) -> (&HistogramVec, &IntCounterVec) {
        (&self.session_store_duration, &self.session_store_errors)
    }

    /// A pool's `gatehouse_upstream_healthy_targets` gauge.
    pub fn healthy_targets_gauge(&self, tenant: &str, upstream: &str) -> IntGauge {
        self.healthy_targets.with_label_values(&[tenant, upstream])
    }

    /// A tenant's `gatehouse_upgraded_connections` gauge (resolved once per upgrade, not per
    /// request).
    pub fn upgraded_connections(&self, tenant: &str) -> IntGauge {
        self.upgraded_connections.with_label_values(&[tenant])
    }

    /// Records a config load or reload.
    pub fn record_reload(&self, ok: bool) {
        self.reloads
            .with_label_values(&[if ok { "success" } else { "failure" }])
            .inc();
        if ok {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            self.last_reload_success.set(now);
        }
    }

    /// Records a browser login's outcome.
    pub fn record_login(&self, tenant: &str, ok: bool) {
        self.logins
            .with_label_values(&[tenant, if ok { "success" } else { "failure" }])
            .inc();
    }

    /// Records a browser logout.
    pub fn record_logout(&self, tenant: &str) {
        self.logouts.with_label_values(&[tenant]).inc();
    }

    /// Records a session token refresh's outcome.
    pub fn record_token_refresh(&self, ok: bool) {
        self.token_refreshes
            .with_label_values(&[if ok { "success" } else { "failure" }])
            .inc();
    }

    /// `gatehouse_trace_spans_total`'s handles (creating its series at 0).
    pub fn trace_span_counters(&self) -> crate::otel::export::SpanCounters {
        let outcome = |o: &str| self.trace_spans.with_label_values(&[o]);
        crate::otel::export::SpanCounters {
            exported: outcome("exported"),
            dropped: outcome("dropped"),
            failed: outcome("failed"),
        }
    }

    /// Counts an access log line dropped under back-pressure.
    pub fn access_log_dropped(&self) {
        self.access_log_dropped.inc();
    }

    /// The Prometheus text exposition of every family.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }

    fn request_counter(&self, rm: &RouteMetrics, method: usize, class: usize) -> IntCounter {
        self.requests.with_label_values(&[
            &rm.tenant,
            &rm.route,
            METHODS[method],
            STATUS_CLASSES[class],
        ])
    }
}

/// One route's request metrics: the latency histogram resolved when the runtime is compiled,
/// the (method × status class) counters resolved on first use and kept.
pub struct RouteMetrics {
    tenant: String,
    route: String,
    duration: Histogram,
    requests: [OnceLock<IntCounter>; METHODS.len() * STATUS_CLASSES.len()],
}

impl RouteMetrics {
    /// Records one finished request.
    pub fn observe(
        &self,
        metrics: &Metrics,
        method: &http::Method,
        status: u16,
        elapsed: Duration,
    ) {
        let (m, c) = (method_index(method), class_index(status));
        self.requests[m * STATUS_CLASSES.len() + c]
            .get_or_init(|| metrics.request_counter(self, m, c))
            .inc();
        self.duration.observe(elapsed.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_handles_record_bounded_labels() {
        let m = Metrics::new();
        let rm = m.route("demo", "/api/*");
        rm.observe(&m, &http::Method::GET, 200, Duration::from_micros(300));
        rm.observe(&m, &http::Method::GET, 204, Duration::from_micros(300));
        rm.observe(
            &m,
            &http::Method::from_bytes(b"PROPFIND").unwrap(),
            503,
            Duration::from_millis(2),
        );
        let text = String::from_utf8(m.render()).unwrap();
        assert!(text.contains(r#"gatehouse_requests_total{method="GET",route="/api/*",status_class="2xx",tenant="demo"} 2"#), "{text}");
        assert!(text.contains(r#"gatehouse_requests_total{method="OTHER",route="/api/*",status_class="5xx",tenant="demo"} 1"#), "{text}");
        assert!(text.contains(r#"gatehouse_request_duration_seconds_bucket{route="/api/*",tenant="demo",le="0.0005"} 2"#), "{text}");
        assert!(
            !text.contains("PROPFIND"),
            "extension methods are not label values"
        );
    }
}
