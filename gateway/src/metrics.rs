//! Prometheus metrics. A minimal set here (requests, latency, in-flight, upstream health,
//! reloads, build info); label values are bounded: tenant names from the config and status
//! classes, never a raw path or user value.

use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Histogram buckets for a gateway: sub-millisecond resolution at the low end.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// The process's metrics, registered once at start.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    /// Requests currently being handled.
    pub in_flight: IntGauge,
    healthy_targets: IntGaugeVec,
    reloads: IntCounterVec,
    last_reload_success: IntGauge,
    auth_decisions: IntCounterVec,
    jwks_refreshes: IntCounterVec,
    token_cache_entries: IntGaugeVec,
}

const STATUS_CLASSES: [&str; 6] = ["none", "1xx", "2xx", "3xx", "4xx", "5xx"];

impl Metrics {
    /// Registers every family.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "gatehouse_requests_total",
                "Requests handled, by tenant and status class",
            ),
            &["tenant", "status_class"],
        )
        .expect("valid metric");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "gatehouse_request_duration_seconds",
                "Whole-request latency as seen by the gateway, by tenant",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["tenant"],
        )
        .expect("valid metric");
        let in_flight = IntGauge::new("gatehouse_requests_in_flight", "Requests being handled")
            .expect("valid metric");
        let healthy_targets = IntGaugeVec::new(
            Opts::new(
                "gatehouse_upstream_healthy_targets",
                "Targets passing health checks, by tenant and upstream",
            ),
            &["tenant", "upstream"],
        )
        .expect("valid metric");
        let reloads = IntCounterVec::new(
            Opts::new("gatehouse_config_reload_total", "Config reloads by result"),
            &["result"],
        )
        .expect("valid metric");
        let last_reload_success = IntGauge::new(
            "gatehouse_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful config load",
        )
        .expect("valid metric");
        let auth_decisions = IntCounterVec::new(
            Opts::new(
                "gatehouse_auth_decisions_total",
                "Authentication and authorization decisions on protected routes, by tenant, result and reason",
            ),
            &["tenant", "result", "reason"],
        )
        .expect("valid metric");
        let jwks_refreshes = IntCounterVec::new(
            Opts::new(
                "gatehouse_jwks_refresh_total",
                "JWKS fetches by provider and result",
            ),
            &["provider", "result"],
        )
        .expect("valid metric");
        let token_cache_entries = IntGaugeVec::new(
            Opts::new(
                "gatehouse_token_cache_entries",
                "Verified tokens cached, by provider",
            ),
            &["provider"],
        )
        .expect("valid metric");
        let build_info = IntGaugeVec::new(
            Opts::new("gatehouse_build_info", "Build information"),
            &["version"],
        )
        .expect("valid metric");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(duration.clone()),
            Box::new(in_flight.clone()),
            Box::new(healthy_targets.clone()),
            Box::new(reloads.clone()),
            Box::new(last_reload_success.clone()),
            Box::new(auth_decisions.clone()),
            Box::new(jwks_refreshes.clone()),
            Box::new(token_cache_entries.clone()),
            Box::new(build_info),
        ] {
            registry.register(c).expect("metric registered once");
        }
        Metrics {
            registry,
            requests,
            duration,
            in_flight,
            healthy_targets,
            reloads,
            last_reload_success,
            auth_decisions,
            jwks_refreshes,
            token_cache_entries,
        }
    }

    /// Records an authentication/authorization outcome (`allowed`, `unauthenticated`,
    /// `forbidden`) with its static reason.
    pub fn record_auth(&self, tenant: &str, result: &str, reason: &str) {
        self.auth_decisions
            .with_label_values(&[tenant, result, reason])
            .inc();
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

    /// Records one finished request.
    pub fn observe_request(&self, tenant: &str, status: u16, elapsed: Duration) {
        let class = STATUS_CLASSES[usize::from(status / 100).min(5)];
        self.requests.with_label_values(&[tenant, class]).inc();
        self.duration
            .with_label_values(&[tenant])
            .observe(elapsed.as_secs_f64());
    }

    /// Publishes a pool's healthy target count.
    pub fn set_healthy_targets(&self, tenant: &str, upstream: &str, n: usize) {
        self.healthy_targets
            .with_label_values(&[tenant, upstream])
            .set(n as i64);
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

    /// The Prometheus text exposition of every family.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4096);
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}
