//! Observability through the real binary: the `/metrics` families and their labels against the
//! metrics contract (exact counts for the traffic sent), and every shipped dashboard and rule
//! expression (`deploy/grafana`, `deploy/prometheus`) evaluated by a real Prometheus scraping
//! the real gateway.
//!
//! `scrape.rs` parses `/metrics` and checks it against the contract, `metrics.rs` holds the
//! metrics tests, `prometheus.rs` the dashboard and rule test; this file starts what they share.

#[path = "../support/mod.rs"]
mod support;

mod metrics;
mod prometheus;
mod scrape;

use gatehouse_test_support::keys::{with_bad_signature as bad_signature, with_kid};
use support::idp::Idp;
use support::*;

/// One tenant with white-listed, authenticated and role-protected routes, an identity
/// provider, a live upstream and one whose only target never answers.
fn config(p: &Ports, app: &Upstream, dead_port: u16, issuer: &str) -> String {
    format!(
        r#"
listen: 127.0.0.1:{listen}
admin-listen: 127.0.0.1:{admin}
threads: 2
identity-providers:
  - name: keycloak
    issuer: {issuer}
    allow-insecure-http: true
    client-id: gatehouse
    client-secret: gatehouse-secret
    audiences: [gatehouse]
    algorithms: [RS256, ES256]
    jwks-min-refetch-interval: 2s
tenants:
  - name: demo
    hosts: [demo.localhost]
    identity-provider: keycloak
    default-upstream: app
    upstreams:
      - name: app
        targets: ["{app}"]
        health-check: {{ path: /health, interval: 300ms, timeout: 200ms }}
      - name: dead
        targets: ["127.0.0.1:{dead_port}"]
        health-check: {{ interval: 300ms, timeout: 200ms }}
    routes:
      - uri: /public/*
        name: public
        white-listed: true
      - uri: /api/admin/*
        name: admin
        roles: [admin]
      - uri: /api/*
        name: api
      - uri: /down/*
        name: down
        white-listed: true
        upstream: dead
"#,
        listen = p.listen,
        admin = p.admin,
        app = app.target(),
    )
}

/// Starts the IdP, the upstream and the gateway, and waits until the gateway has the IdP's
/// keys and has health-checked both pools (`app` healthy, `dead` not).
fn start(tag: &str) -> (Idp, Upstream, Gateway) {
    let idp = Idp::start(None, &[]);
    let app = Upstream::start("app");
    let dead_port = free_port(); // bound then released: nothing listens there
    let gw = Gateway::start(tag, |p, _| config(p, &app, dead_port, &idp.issuer));
    gw.wait_readiness(
        "demo/app up, demo/dead down, keys loaded",
        |status, text| {
            status == 200
                && text.contains("pool demo/app: up,")
                && text.contains("pool demo/dead: down,")
                && text.contains(": up, signing keys loaded")
        },
    );
    (idp, app, gw)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// `token` with its header's `kid` replaced by one the IdP never published.
fn unknown_kid(token: &str) -> String {
    with_kid(token, "observability-unknown-kid")
}
