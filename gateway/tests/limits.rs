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

fn metrics(gw: &Gateway) -> String {
    get(gw.admin, "admin", "/metrics", &[]).unwrap().text()
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

    let m = metrics(&gw);
    assert!(
        m.contains(
            r#"gatehouse_rate_limited_total{key="client-ip",route="/pub/*",tenant="demo"} 3"#
        ),
        "{m}"
    );
    assert!(
        m.contains(r#"gatehouse_denials_total{reason="rate_limited",tenant="demo"} 3"#),
        "{m}"
    );
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

    let m = metrics(&gw);
    assert!(
        m.contains(r#"gatehouse_rate_limited_total{key="subject",route="/api/*",tenant="demo"} 3"#),
        "{m}"
    );
}
