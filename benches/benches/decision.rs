//! The whole per-request policy decision, as the gateway makes it before proxying
//! (`policy::admit`: limits, tenant, path normalization, route lookup) and the route's
//! authorization requirements against Keycloak-shaped claims — at 10, 1 000 and 10 000 routes
//! per tenant, beside a naive decision
//! that scans the routes linearly. Also metrics recording: a pre-resolved counter and histogram
//! (what the gateway does) beside `with_label_values` per request (the naive way).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use gatehouse_policy::admit::{admit, Admission, Connection, RequestHead};
use gatehouse_policy::authz::Identity;
use gatehouse_policy::path::normalize_path;
use gatehouse_policy::snapshot::{Access, Snapshot};
use http::header::HOST;
use http::{HeaderMap, HeaderValue, Method};
use regex::Regex;

/// Keycloak-shaped caller: realm roles, one client's roles, groups, two claims.
struct Caller;

impl Identity for Caller {
    fn has_role(&self, role: &str) -> bool {
        matches!(role, "user" | "admin" | "gatehouse:super-admin")
    }
    fn in_group(&self, group: &str) -> bool {
        group.trim_start_matches('/') == "developers"
    }
    fn claim_matches(&self, path: &str, pattern: &Regex) -> bool {
        match path {
            "email" => pattern.is_match("alice@example.com"),
            "email_verified" => pattern.is_match("true"),
            _ => false,
        }
    }
}

fn config(routes: usize) -> gatehouse_config::Config {
    let mut yaml = String::from(
        "identity-providers: [{name: kc, issuer: \"https://kc.localhost/realms/demo\", client-id: gatehouse}]\n\
         tenants:\n  - name: demo\n    hosts: [demo.localhost, \"*.demo.localhost\"]\n    identity-provider: kc\n    upstreams:\n      - name: app\n        targets: [\"127.0.0.1:1\"]\n    routes:\n      - uri: /public/*\n        white-listed: true\n",
    );
    for i in 0..routes.saturating_sub(2) {
        yaml.push_str(&format!(
            "      - uri: /svc{i}/api/v{}/*\n        roles: [admin, \"gatehouse:super-admin\"]\n        groups: [developers]\n        match-claims: {{ email_verified: \"^true$\" }}\n",
            i % 3
        ));
    }
    yaml.push_str("      - uri: /*\n        roles: [user]\n");
    gatehouse_config::parse(&yaml, "bench.yaml", &|_| None).expect("bench config")
}

/// The gateway's decision: `policy::admit` (what `request_filter` calls), then the route's
/// requirements against the caller.
fn decide(snapshot: &Snapshot, host: &str, raw_path: &[u8], method: &Method) -> bool {
    let mut headers = HeaderMap::new();
    headers.insert(HOST, HeaderValue::from_str(host).expect("host"));
    let head = RequestHead {
        method,
        raw_path,
        query: None,
        headers: &headers,
        host: Some(host),
        header_bytes: raw_path.len() + host.len() + 32,
        both_lengths: false,
    };
    let conn = Connection {
        tenant: snapshot.tenant_for_host(host),
        secure: false,
        trusted_peer: false,
        https_port_suffix: "",
    };
    let decision = admit(snapshot, &head, &conn);
    let Some(route) = decision.route else {
        return false;
    };
    let route = snapshot
        .tenant(conn.tenant.expect("a route means a tenant"))
        .route(route);
    match decision.admission {
        Admission::Proxy => true,
        Admission::Authenticate => {
            route.access != Access::DefaultDeny && route.requirements.check(&Caller).is_ok()
        }
        _ => false,
    }
}

/// The same decision with a linear scan over the config's routes (longest matching uri wins).
fn decide_naive(
    config: &gatehouse_config::Config,
    snapshot: &Snapshot,
    host: &str,
    raw_path: &[u8],
) -> bool {
    let Some(t) = snapshot.tenant_for_host(host) else {
        return false;
    };
    let Ok(path) = normalize_path(raw_path) else {
        return false;
    };
    let route = config.tenants[t]
        .routes
        .iter()
        .filter(|r| match r.uri.strip_suffix("/*") {
            Some(prefix) => {
                path.starts_with(prefix)
                    && (path.len() == prefix.len() || path.as_bytes()[prefix.len()] == b'/')
            }
            None => *path == *r.uri,
        })
        .max_by_key(|r| r.uri.len());
    route.is_some_and(|r| r.white_listed || r.roles.iter().any(|role| Caller.has_role(role)))
}

fn bench_decision(c: &mut Criterion) {
    let mut group = c.benchmark_group("policy_decision");
    for n in [10usize, 1_000, 10_000] {
        let config = config(n);
        let snapshot = Snapshot::compile(&config).unwrap();
        let deep = format!("/svc{}/api/v{}/orders/42", n / 2, (n / 2) % 3);
        assert!(decide(
            &snapshot,
            "api.demo.localhost",
            deep.as_bytes(),
            &Method::GET
        ));
        group.bench_with_input(BenchmarkId::new("compiled", n), &n, |b, _| {
            b.iter(|| {
                decide(
                    &snapshot,
                    black_box("api.demo.localhost:8080"),
                    black_box(deep.as_bytes()),
                    &Method::GET,
                )
            })
        });
        group.bench_with_input(BenchmarkId::new("naive_scan", n), &n, |b, _| {
            b.iter(|| {
                decide_naive(
                    &config,
                    &snapshot,
                    black_box("api.demo.localhost:8080"),
                    black_box(deep.as_bytes()),
                )
            })
        });
    }
    group.finish();
}

fn bench_metrics(c: &mut Criterion) {
    let registry = prometheus::Registry::new();
    let counter = prometheus::IntCounterVec::new(
        prometheus::Opts::new("requests_total", "x"),
        &["tenant", "route", "method", "status_class"],
    )
    .unwrap();
    let histogram = prometheus::HistogramVec::new(
        prometheus::HistogramOpts::new("duration_seconds", "x").buckets(vec![
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.1, 1.0,
        ]),
        &["tenant", "route"],
    )
    .unwrap();
    registry.register(Box::new(counter.clone())).unwrap();
    registry.register(Box::new(histogram.clone())).unwrap();
    let mut group = c.benchmark_group("metrics_recording");
    group.bench_function("with_label_values_per_request", |b| {
        b.iter(|| {
            counter
                .with_label_values(&[black_box("demo"), "/api/*", "GET", "2xx"])
                .inc();
            histogram
                .with_label_values(&[black_box("demo"), "/api/*"])
                .observe(0.0003);
        })
    });
    let resolved_counter = counter.with_label_values(&["demo", "/api/*", "GET", "2xx"]);
    let resolved_histogram = histogram.with_label_values(&["demo", "/api/*"]);
    group.bench_function("pre_resolved_handles", |b| {
        b.iter(|| {
            black_box(&resolved_counter).inc();
            black_box(&resolved_histogram).observe(0.0003);
        })
    });
    group.finish();
}

criterion_group!(benches, bench_decision, bench_metrics);
criterion_main!(benches);
