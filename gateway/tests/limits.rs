//! Rate limits through the real binary: per client address (two loopback source addresses),
//! per subject (two users with tokens minted here, anonymous callers by address), the exact
//! 429 with the ratelimit-headers draft's fields, the upstream never reached, recovery after
//! the window, and the metrics.

mod support;

use std::time::Duration;

use gatehouse_test_support::config::claims;
use gatehouse_test_support::keys::{jwks, keys};
use serde_json::json;
use support::*;

const ISSUER: &str = "https://idp.limits.test";

fn config(p: &Ports, dir: &std::path::Path, app: &Upstream) -> String {
    let jwks_path = dir.join("jwks.json");
    std::fs::write(&jwks_path, jwks(&[keys().p256.jwk()])).unwrap();
    format!(
        r#"
listen: 127.0.0.1:{listen}
admin-listen: 127.0.0.1:{admin}
identity-providers:
  - name: static
    issuer: {ISSUER}
    jwks-file: {jwks}
    client-id: web
    algorithms: [ES256]
tenants:
  - name: demo
    hosts: [demo.localhost]
    identity-provider: static
    upstreams:
      - name: app
        targets: ["{app}"]
    routes:
      - uri: /pub/*
        white-listed: true
        rate-limits:
          - {{ key: client-ip, rate: 30/m, burst: 3 }}
      - uri: /api/*
        rate-limits:
          - {{ key: subject, rate: 30/m, burst: 2 }}
      - uri: /open/*
        white-listed: true
        rate-limits:
          - {{ key: subject, rate: 1/h, burst: 1 }}
      - uri: /free/*
        white-listed: true
"#,
        listen = p.listen,
        admin = p.admin,
        jwks = jwks_path.display(),
        app = app.target(),
    )
}

fn get_from(gw: &Gateway, from: &str, path: &str, token: Option<&str>) -> Response {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let raw =
        format!("GET {path} HTTP/1.1\r\nHost: demo.localhost\r\n{auth}Connection: close\r\n\r\n");
    request_on(socket_from(from, gw.listen), &raw)
}

fn token(sub: &str) -> String {
    let mut c = claims(ISSUER);
    c["sub"] = json!(sub);
    keys().p256.mint("ES256", &c)
}

#[test]
fn bursts_over_a_client_address_limit_get_the_draft_429_and_recover() {
    let app = Upstream::start("app");
    let gw = Gateway::start("limits-ip", |p, dir| config(p, dir, &app));
    gw.wait_ready();

    for i in 0..3 {
        let r = get_from(&gw, "127.0.0.1", "/pub/a", None);
        assert_eq!(r.status, 200, "request {i} within the burst");
    }
    let r = get_from(&gw, "127.0.0.1", "/pub/a", None);
    assert_eq!(r.status, 429, "the fourth is over the burst of 3");
    assert_eq!(r.header("retry-after"), Some("2"), "{:?}", r.headers);
    assert_eq!(
        r.header("ratelimit-policy"),
        Some("\"route.client-ip\";q=3;w=6")
    );
    assert_eq!(r.header("ratelimit"), Some("\"route.client-ip\";r=0;t=2"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.header("x-request-id").is_some());
    assert_eq!(
        app.requests().len(),
        3,
        "a refused request never reaches the upstream"
    );

    // Another address has its own bucket; a route without limits is not limited.
    for _ in 0..3 {
        assert_eq!(get_from(&gw, "127.0.0.2", "/pub/b", None).status, 200);
    }
    assert_eq!(get_from(&gw, "127.0.0.2", "/pub/b", None).status, 429);
    assert_eq!(get_from(&gw, "127.0.0.1", "/free/x", None).status, 200);

    // One token is back after 2 s (30/m), and only one.
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(get_from(&gw, "127.0.0.1", "/pub/a", None).status, 200);
    assert_eq!(get_from(&gw, "127.0.0.1", "/pub/a", None).status, 429);

    let (limited, denied) = (
        r#"gatehouse_rate_limited_total{key="client-ip",route="/pub/*",tenant="demo"} 3"#,
        r#"gatehouse_denials_total{reason="rate_limited",tenant="demo"} 3"#,
    );
    let m = gw.metrics_containing(&[limited, denied]);
    assert!(m.contains(limited), "{m}");
    assert!(m.contains(denied), "{m}");
}

#[test]
fn subject_limits_count_each_user_and_anonymous_callers_by_address() {
    let app = Upstream::start("app");
    let gw = Gateway::start("limits-sub", |p, dir| config(p, dir, &app));
    gw.wait_ready();
    let (alice, bob) = (token("alice"), token("bob"));

    // Both users from the same address: each has a bucket of 2.
    for t in [&alice, &alice, &bob, &bob] {
        assert_eq!(get_from(&gw, "127.0.0.1", "/api/x", Some(t)).status, 200);
    }
    let r = get_from(&gw, "127.0.0.1", "/api/x", Some(&alice));
    assert_eq!(r.status, 429);
    assert_eq!(r.header("ratelimit"), Some("\"route.subject\";r=0;t=2"));
    assert_eq!(
        r.header("ratelimit-policy"),
        Some("\"route.subject\";q=2;w=4")
    );
    // alice from another address is still alice.
    assert_eq!(
        get_from(&gw, "127.0.0.2", "/api/x", Some(&alice)).status,
        429
    );
    assert_eq!(get_from(&gw, "127.0.0.2", "/api/x", Some(&bob)).status, 429);
    // No token: 401 before any limit is consulted (limits apply after authentication).
    assert_eq!(get_from(&gw, "127.0.0.1", "/api/x", None).status, 401);
    assert_eq!(app.requests().len(), 4);

    // Anonymous callers on a public route count by address.
    assert_eq!(get_from(&gw, "127.0.0.1", "/open/x", None).status, 200);
    assert_eq!(get_from(&gw, "127.0.0.1", "/open/x", None).status, 429);
    assert_eq!(get_from(&gw, "127.0.0.2", "/open/x", None).status, 200);
    // A token on the public route is not looked at: still the address's bucket.
    let r = get_from(&gw, "127.0.0.2", "/open/x", Some(&bob));
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("3600"));

    let m = gw.metrics();
    assert!(
        m.contains(r#"gatehouse_rate_limited_total{key="subject",route="/api/*",tenant="demo"} 3"#),
        "{m}"
    );
}

fn shared_config(p: &Ports, app: &Upstream, redis_url: &str) -> String {
    format!(
        r#"
listen: 127.0.0.1:{listen}
admin-listen: 127.0.0.1:{admin}
session-store:
  url: {redis_url}
  timeout: 200ms
tenants:
  - name: demo
    hosts: [demo.localhost]
    upstreams:
      - name: app
        targets: ["{app}"]
    routes:
      - uri: /shared/*
        white-listed: true
        rate-limits:
          - {{ key: client-ip, rate: 30/m, burst: 4, shared: true }}
      - uri: /probe/*
        white-listed: true
        rate-limits:
          - {{ key: tenant, rate: 1000/s, burst: 1000, shared: true }}
"#,
        listen = p.listen,
        admin = p.admin,
        app = app.target(),
    )
}

fn fallbacks(gw: &Gateway) -> u64 {
    let m = gw.metrics();
    m.lines()
        .find(|l| l.starts_with(r#"gatehouse_rate_limit_shared_fallback_total{tenant="demo"}"#))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no fallback series:\n{m}"))
}

/// Waits until a shared check on `gw` is decided by Redis (not by the local fallback).
fn wait_shared(gw: &Gateway) {
    assert_eventually!(
        Duration::from_secs(20),
        || {
            let before = fallbacks(gw);
            get_from(gw, "127.0.0.9", "/probe/x", None).status == 200 && fallbacks(gw) == before
        },
        "Redis never decided a shared limit; log:\n{}",
        gw.log()
    );
}

#[test]
fn shared_limits_count_across_two_gateways_on_redis_cluster_and_fall_back_when_it_is_gone() {
    let cluster = gatehouse_test_support::redis::Cluster::start();
    let app = Upstream::start("app");
    let a = Gateway::start("limits-shared-a", |p, _| {
        shared_config(p, &app, &cluster.url())
    });
    let b = Gateway::start("limits-shared-b", |p, _| {
        shared_config(p, &app, &cluster.url())
    });
    wait_shared(&a);
    wait_shared(&b);
    let (fa, fb) = (fallbacks(&a), fallbacks(&b));

    // One bucket of 4 for 127.0.0.1 across both replicas (each alone would allow 4).
    for gw in [&a, &b, &a, &b] {
        assert_eq!(get_from(gw, "127.0.0.1", "/shared/x", None).status, 200);
    }
    for gw in [&a, &b] {
        let r = get_from(gw, "127.0.0.1", "/shared/x", None);
        assert_eq!(r.status, 429);
        assert_eq!(r.header("ratelimit"), Some("\"route.client-ip\";r=0;t=2"));
        assert_eq!(
            r.header("ratelimit-policy"),
            Some("\"route.client-ip\";q=4;w=8")
        );
    }
    // Another address has its own shared bucket.
    assert_eq!(get_from(&b, "127.0.0.2", "/shared/x", None).status, 200);
    assert_eq!((fallbacks(&a), fallbacks(&b)), (fa, fb), "Redis decided");

    // Recovery after the window: one token every 2 s, shared.
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(get_from(&b, "127.0.0.1", "/shared/x", None).status, 200);
    assert_eq!(get_from(&a, "127.0.0.1", "/shared/x", None).status, 429);

    // Redis gone: each replica limits on its own (its local bucket of 4), and says so.
    drop(cluster);
    let statuses: Vec<u16> = (0..5)
        .map(|_| get_from(&a, "127.0.0.1", "/shared/x", None).status)
        .collect();
    assert_eq!(statuses, [200, 200, 200, 200, 429]);
    assert!(
        fallbacks(&a) >= fa + 5,
        "fallbacks counted: {}",
        fallbacks(&a)
    );
}
