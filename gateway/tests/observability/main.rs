//! Observability through the real binary: the `/metrics` families and their labels against the
//! metrics contract (exact counts for the traffic sent), and every shipped dashboard and rule
//! expression (`deploy/grafana`, `deploy/prometheus`) evaluated by a real Prometheus scraping
//! the real gateway.
//!
//! `scrape.rs` parses `/metrics` and checks it against the contract, `metrics.rs` holds the
//! metrics tests, `prometheus.rs` the dashboard and rule test; this file starts what they share.

#[path = "../support/mod.rs"]
mod support;

mod alerts;
mod metrics;
mod prometheus;
mod scrape;

use gatehouse_test_support::keys::{with_bad_signature as bad_signature, with_kid};
use support::idp::Idp;
use support::*;

/// The cookie encryption key of the test tenant.
const COOKIE_KEY: &str = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";

/// One tenant with white-listed, authenticated and role-protected routes, browser login
/// (`/app/*`, sessions in `session_store`), an identity provider, a live upstream and one whose
/// only target never answers, a rate-limited route (`/limited/*`: one request an hour per
/// client address), a WebSocket route to `ws_port` ([`upgrade_upstream`]) and at most 40
/// connections per client address. A session's access token is refreshed 2 s after it was
/// issued (the IdP's tokens live 300 s), so browser traffic also moves the refresh calls.
fn config(
    p: &Ports,
    app: &Upstream,
    dead_port: u16,
    ws_port: u16,
    issuer: &str,
    session_store: &str,
    top_level: &str,
) -> String {
    let provider = keycloak_provider(issuer);
    format!(
        r#"
listen: 127.0.0.1:{listen}
admin-listen: 127.0.0.1:{admin}
threads: 2
max-connections-per-ip: 40
{top_level}
session-store:
{session_store}
identity-providers:
{provider}
    algorithms: [RS256, ES256]
    jwks-min-refetch-interval: 2s
    jwks-refresh-interval: 3s
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
      - name: ws
        targets: ["127.0.0.1:{ws_port}"]
    login:
      redirect-url: http://demo.localhost:{listen}/oauth/callback
      post-logout-redirect-url: http://demo.localhost:{listen}/
      refresh-before-expiry: 298s
    cookie:
      secure: false
      encryption-key: "{COOKIE_KEY}"
      session-ttl: 1h
    routes:
      - uri: /public/*
        name: public
        white-listed: true
      - uri: /app/*
        name: app
        roles: [user]
      - uri: /api/admin/*
        name: admin
        roles: [admin]
      - uri: /api/*
        name: api
      - uri: /down/*
        name: down
        white-listed: true
        upstream: dead
      - uri: /limited/*
        name: limited
        white-listed: true
        rate-limits:
          - {{ key: client-ip, rate: 1/h, burst: 1 }}
      - uri: /ws/*
        name: ws
        white-listed: true
        upstream: ws
"#,
        listen = p.listen,
        admin = p.admin,
        app = app.target(),
    )
}

/// Starts the IdP, the upstream and the gateway (sessions in memory), and waits until the
/// gateway has the IdP's keys and has health-checked both pools (`app` healthy, `dead` not).
fn start(tag: &str) -> (Idp, Upstream, Gateway) {
    start_with(tag, MEMORY_STORE, &[], "")
}

/// The `session-store` block of [`start`]: sessions in memory, cached 30 s.
const MEMORY_STORE: &str = "  url: memory://\n  local-cache-ttl: 30s";

/// [`start`] with a `session-store` block, more IdP environment and more top-level config
/// lines (`top_level`, such as a `tracing` block). The IdP is started with
/// the gateway's ports (its client's redirect URIs name the gateway's callback), before the
/// gateway: no key fetch ever finds it down.
fn start_with(
    tag: &str,
    session_store: &str,
    idp_env: &[(&str, &str)],
    top_level: &str,
) -> (Idp, Upstream, Gateway) {
    let app = Upstream::start("app");
    let ws_port = upgrade_upstream();
    let dead_port = free_port(); // bound then released: nothing listens there
    let idp = std::cell::RefCell::new(None::<Idp>);
    let gw = Gateway::start(tag, |p, _| {
        let callback = format!("http://demo.localhost:{}/oauth/callback", p.listen);
        let after_logout = format!("http://demo.localhost:{}/", p.listen);
        let mut env = vec![
            ("IDP_REDIRECT_URIS", callback.as_str()),
            ("IDP_POST_LOGOUT_REDIRECT_URIS", after_logout.as_str()),
        ];
        env.extend_from_slice(idp_env);
        // A retried start (ports taken) gets a new IdP for its new ports.
        let started = Idp::start(None, &env);
        let issuer = started.issuer.clone();
        *idp.borrow_mut() = Some(started);
        config(
            p,
            &app,
            dead_port,
            ws_port,
            &issuer,
            session_store,
            top_level,
        )
    });
    let idp = idp.into_inner().expect("the IdP was started");
    gw.wait_readiness(
        "demo/app and demo/ws up, demo/dead down, keys loaded",
        |status, text| {
            status == 200
                && text.contains("pool demo/app: up,")
                && text.contains("pool demo/dead: down,")
                && text.contains("pool demo/ws: up,")
                && text.contains(": up, signing keys loaded")
        },
    );
    (idp, app, gw)
}

/// An upstream on a loopback port that answers every request head with `101 Switching
/// Protocols` (to `websocket`) and then holds the connection until its peer closes: enough for
/// the gateway to count an upgraded connection. It answers 50 ms after the head (the Pingora
/// 0.9.1 race of gatehouse's README, WebSocket); a health check's connect-and-close ends at
/// the read. Its threads live as long as the test process.
fn upgrade_upstream() -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the upgrade upstream");
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(n) if n > 0 && head.len() < 16384 => head.extend_from_slice(&buf[..n]),
                        _ => return,
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
                let _ = stream.write_all(
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
                );
                while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });
    port
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// `token` with its header's `kid` replaced by one the IdP never published.
fn unknown_kid(token: &str) -> String {
    with_kid(token, "observability-unknown-kid")
}
