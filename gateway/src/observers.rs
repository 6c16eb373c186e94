//! The session crate's observers ([`StoreObserver`], [`IdpObserver`]) over this process's
//! Prometheus families. Every handle is resolved when the observer is built, so a report is an
//! array index and an atomic add: no label hashing, lock or allocation on a request path.

use std::time::Duration;

use gatehouse_session::http::{IdpCall, IdpObserver, IdpOutcome};
use gatehouse_session::store::{CacheLookup, StoreEvent, StoreObserver, StoreOp, StoreOutcome};
use prometheus::{Histogram, IntCounter};

use crate::metrics::Metrics;

const OPS: usize = StoreOp::ALL.len();
const OUTCOMES: usize = StoreOutcome::ALL.len();
const CALLS: usize = IdpCall::ALL.len();
const IDP_OUTCOMES: usize = IdpOutcome::ALL.len();

/// Creates every store series at 0 (so a rate over the first failure is not lost): latency by
/// operation, failures by operation and failing outcome, events, cache lookups.
pub fn init_store_series(metrics: &Metrics) {
    let _ = StoreMetrics::new(metrics);
}

/// Creates a provider's call series at 0.
pub fn init_idp_series(metrics: &Metrics, provider: &str) {
    let _ = IdpMetrics::new(metrics, provider);
}

/// The session store's metrics: `gatehouse_session_store_duration_seconds{op}`,
/// `gatehouse_session_store_errors_total{op, outcome}` (every outcome but `ok`),
/// `gatehouse_session_store_events_total{event}` and
/// `gatehouse_session_cache_lookups_total{result}`.
pub struct StoreMetrics {
    duration: [Histogram; OPS],
    errors: [[Option<IntCounter>; OUTCOMES]; OPS],
    events: [IntCounter; StoreEvent::ALL.len()],
    lookups: [IntCounter; CacheLookup::ALL.len()],
}

impl StoreMetrics {
    /// Resolves every handle.
    pub fn new(metrics: &Metrics) -> StoreMetrics {
        let (duration, errors) = metrics.session_store_families();
        StoreMetrics {
            duration: std::array::from_fn(|op| {
                duration.with_label_values(&[StoreOp::ALL[op].as_str()])
            }),
            errors: std::array::from_fn(|op| {
                std::array::from_fn(|o| {
                    let outcome = StoreOutcome::ALL[o];
                    (outcome != StoreOutcome::Ok).then(|| {
                        errors.with_label_values(&[StoreOp::ALL[op].as_str(), outcome.as_str()])
                    })
                })
            }),
            events: std::array::from_fn(|e| {
                metrics
                    .session_store_events
                    .with_label_values(&[StoreEvent::ALL[e].as_str()])
            }),
            lookups: std::array::from_fn(|l| {
                metrics
                    .session_cache_lookups
                    .with_label_values(&[CacheLookup::ALL[l].as_str()])
            }),
        }
    }
}

impl StoreObserver for StoreMetrics {
    fn command(&self, op: StoreOp, outcome: StoreOutcome, elapsed: Duration) {
        self.duration[op.index()].observe(elapsed.as_secs_f64());
        if let Some(errors) = &self.errors[op.index()][outcome.index()] {
            errors.inc();
        }
    }

    fn cache_lookup(&self, lookup: CacheLookup) {
        self.lookups[lookup.index()].inc();
    }

    fn event(&self, event: StoreEvent) {
        self.events[event.index()].inc();
    }
}

/// One identity provider's call metrics: `gatehouse_idp_request_duration_seconds{provider,
/// call}` and `gatehouse_idp_requests_total{provider, call, outcome}`.
pub struct IdpMetrics {
    duration: [Histogram; CALLS],
    requests: [[IntCounter; IDP_OUTCOMES]; CALLS],
}

impl IdpMetrics {
    /// Resolves every handle of `provider`.
    pub fn new(metrics: &Metrics, provider: &str) -> IdpMetrics {
        IdpMetrics {
            duration: std::array::from_fn(|c| {
                metrics
                    .idp_duration
                    .with_label_values(&[provider, IdpCall::ALL[c].as_str()])
            }),
            requests: std::array::from_fn(|c| {
                std::array::from_fn(|o| {
                    metrics.idp_requests.with_label_values(&[
                        provider,
                        IdpCall::ALL[c].as_str(),
                        IdpOutcome::ALL[o].as_str(),
                    ])
                })
            }),
        }
    }
}

impl IdpObserver for IdpMetrics {
    fn call(&self, kind: IdpCall, outcome: IdpOutcome, elapsed: Duration) {
        self.duration[kind.index()].observe(elapsed.as_secs_f64());
        self.requests[kind.index()][outcome.index()].inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_land_in_their_series() {
        let m = Metrics::new();
        let store = StoreMetrics::new(&m);
        store.command(StoreOp::Get, StoreOutcome::Ok, Duration::from_micros(300));
        store.command(
            StoreOp::Get,
            StoreOutcome::Timeout,
            Duration::from_millis(200),
        );
        store.cache_lookup(CacheLookup::Hit);
        store.cache_lookup(CacheLookup::Hit);
        store.cache_lookup(CacheLookup::Miss);
        store.event(StoreEvent::ClusterChange);
        let idp = IdpMetrics::new(&m, "keycloak");
        idp.call(
            IdpCall::Jwks,
            IdpOutcome::Status5xx,
            Duration::from_millis(3),
        );
        let text = String::from_utf8(m.render()).unwrap();
        for line in [
            r#"gatehouse_session_store_duration_seconds_count{op="get"} 2"#,
            r#"gatehouse_session_store_errors_total{op="get",outcome="timeout"} 1"#,
            r#"gatehouse_session_store_errors_total{op="put",outcome="timeout"} 0"#,
            r#"gatehouse_session_cache_lookups_total{result="hit"} 2"#,
            r#"gatehouse_session_cache_lookups_total{result="miss"} 1"#,
            r#"gatehouse_session_store_events_total{event="cluster_change"} 1"#,
            r#"gatehouse_idp_requests_total{call="jwks",outcome="status_5xx",provider="keycloak"} 1"#,
            r#"gatehouse_idp_request_duration_seconds_count{call="jwks",provider="keycloak"} 1"#,
        ] {
            assert!(text.contains(line), "{line} in:\n{text}");
        }
        assert!(
            !text.contains(r#"gatehouse_session_store_errors_total{op="get",outcome="ok"}"#),
            "success is not an error series"
        );
    }
}
