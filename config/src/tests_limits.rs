//! `rate-limits` and the connection keys: what parses, the defaults, and one snippet per
//! invalid-value class (line, key and message each).

use std::time::Duration;

use crate::tests::{assert_error, errs, ok, BASE};
use crate::*;

#[test]
fn rate_limits_on_tenants_and_routes_parse_with_defaults() {
    let src = "\
session-store:
  url: redis-cluster://127.0.0.1:7000
identity-providers: [{name: kc, issuer: \"https://kc.localhost/realms/demo\", client-id: gatehouse}]
tenants:
  - name: demo
    hosts: [demo.localhost]
    identity-provider: kc
    upstreams:
      - name: app
        targets: [\"127.0.0.1:1\"]
    rate-limits:
      - key: client-ip
        rate: 100/s
        burst: 200
        shared: false
      - { key: tenant, rate: 100/m }
    routes:
      - uri: /api/*
        rate-limits:
          - { key: subject, rate: 10/s, burst: 20, shared: true }
      - uri: /*
";
    let c = ok(src);
    let t = &c.tenants[0];
    assert_eq!(
        t.rate_limits,
        [
            RateLimit {
                key: RateLimitKey::ClientIp,
                count: 100,
                period: Duration::from_secs(1),
                burst: 200,
                shared: false,
            },
            RateLimit {
                key: RateLimitKey::Tenant,
                count: 100,
                period: Duration::from_secs(60),
                burst: 2,
                shared: false,
            },
        ]
    );
    assert_eq!(
        t.routes[0].rate_limits,
        [RateLimit {
            key: RateLimitKey::Subject,
            count: 10,
            period: Duration::from_secs(1),
            burst: 20,
            shared: true,
        }]
    );
    assert!(t.routes[1].rate_limits.is_empty());
}

#[test]
fn connection_keys_parse_with_their_defaults() {
    let c = ok(BASE);
    assert_eq!(c.request_header_timeout, Duration::from_secs(10));
    assert_eq!(c.max_connections, 10_000);
    assert_eq!(c.max_connections_per_ip, 256);
    let c = ok(&format!(
        "request-header-timeout: 2s\nmax-connections: 50\nmax-connections-per-ip: 0\n{BASE}"
    ));
    assert_eq!(c.request_header_timeout, Duration::from_secs(2));
    assert_eq!(c.max_connections, 50);
    assert_eq!(c.max_connections_per_ip, 0);
}

#[test]
fn bad_connection_keys() {
    let e = errs(&format!(
        "request-header-timeout: 0s\nmax-connections: -1\nmax-connections-per-ip: lots\n{BASE}"
    ));
    assert_error(&e, 1, "request-header-timeout", "greater than zero");
    assert_error(&e, 2, "max-connections", "invalid integer");
    assert_error(&e, 3, "max-connections-per-ip", "invalid integer");
}

/// `BASE` with a tenant `rate-limits` list of one item, written as `item` (indented under
/// `- `), starting on line 14.
fn tenant_limit(item: &str) -> String {
    format!("{BASE}    rate-limits:\n      - {item}\n")
}

#[test]
fn bad_rates() {
    for (rate, text) in [
        ("10/x", "unknown unit"),
        ("0/s", "at least 1"),
        ("abc", "expected N/s, N/m or N/h"),
        ("10", "expected N/s, N/m or N/h"),
        ("2000000/s", "at most 1000000/s"),
    ] {
        let e = errs(&tenant_limit(&format!(
            "key: client-ip\n        rate: {rate}"
        )));
        assert_error(&e, 15, "tenants[0].rate-limits[0].rate", text);
        assert_eq!(e.len(), 1, "{rate}: {e:?}");
    }
}

#[test]
fn bad_key_kind_burst_and_missing_keys() {
    let e = errs(&tenant_limit(
        "key: user\n        rate: 1/s\n        burst: 0",
    ));
    assert_error(
        &e,
        14,
        "tenants[0].rate-limits[0].key",
        "invalid key \"user\" (expected client-ip, subject or tenant)",
    );
    assert_error(&e, 16, "tenants[0].rate-limits[0].burst", "at least 1");
    let e = errs(&tenant_limit("burst: 5"));
    assert_error(
        &e,
        14,
        "tenants[0].rate-limits[0].key",
        "missing required key",
    );
    assert_error(
        &e,
        14,
        "tenants[0].rate-limits[0].rate",
        "missing required key",
    );
    let e = errs(&tenant_limit(
        "key: tenant\n        rate: 1/s\n        burst: -3",
    ));
    assert_error(&e, 16, "tenants[0].rate-limits[0].burst", "invalid integer");
    let e = errs(&tenant_limit(
        "key: tenant\n        rate: 1/s\n        per: ip",
    ));
    assert_error(&e, 16, "tenants[0].rate-limits[0].per", "unknown");
}

#[test]
fn shared_needs_a_redis_session_store() {
    let e = errs(&tenant_limit(
        "key: tenant\n        rate: 1/s\n        shared: true",
    ));
    assert_error(
        &e,
        16,
        "tenants[0].rate-limits[0].shared",
        "session-store.url is not redis",
    );
    // A route's list is checked the same way.
    let e = errs(&format!(
        "{BASE}        rate-limits: [{{ key: subject, rate: 5/m, shared: true }}]\n"
    ));
    assert_error(
        &e,
        13,
        "tenants[0].routes[1].rate-limits[0].shared",
        "Redis",
    );
    let ok_src = format!(
        "session-store:\n  url: redis://127.0.0.1:6379\n{}",
        tenant_limit("key: tenant\n        rate: 1/s\n        shared: true")
    );
    assert!(ok(&ok_src).tenants[0].rate_limits[0].shared);
}
