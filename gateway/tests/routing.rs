//! Host routing, route precedence, load balancing, health checks, request IDs, security and
//! forwarding headers, through the real binary and real upstream servers.

mod support;

use std::path::Path;
use std::time::Duration;

use support::*;

fn two_tenant_config(
    p: &Ports,
    dir: &Path,
    app: &[&Upstream],
    other: &Upstream,
    balance: &str,
) -> String {
    let targets: Vec<String> = app.iter().map(|u| format!("\"{}\"", u.target())).collect();
    format!(
        r#"
listen: 127.0.0.1:{listen}
admin-listen: 127.0.0.1:{admin}
threads: 2
trusted-proxies: [127.0.0.2/32]
{provider}tenants:
  - name: demo
    hosts: [demo.localhost, "*.demo.localhost"]
    identity-provider: static
    upstreams:
      - name: app
        targets: [{targets}]
        balance: {balance}
        health-check: {{ path: /health, interval: 300ms, timeout: 200ms }}
    routes:
      - uri: /public/*
        white-listed: true
      - uri: /health
        white-listed: true
      - uri: /api/*
        roles: [admin]
      - uri: /api/open/*
        white-listed: true
        methods: [GET]
  - name: other
    hosts: [other.example]
    request-id-header: X-Correlation-ID
    security-headers:
      X-Frame-Options: SAMEORIGIN
      Content-Security-Policy: ""
    upstreams:
      - name: web
        targets: ["{other}"]
        health-check: {{ interval: 300ms }}
    routes:
      - uri: /*
        white-listed: true
"#,
        listen = p.listen,
        admin = p.admin,
        targets = targets.join(", "),
        other = other.target(),
        provider = static_provider(dir),
    )
}

fn assert_security_headers(r: &Response) {
    assert_eq!(r.header("x-frame-options"), Some("DENY"), "{r:?}");
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(
        r.header("content-security-policy"),
        Some("default-src 'self'")
    );
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    // Never over plain HTTP (RFC 6797 7.2).
    assert_eq!(r.header("strict-transport-security"), None);
    assert!(r.header("x-request-id").is_some_and(|v| !v.is_empty()));
}

#[test]
fn routes_by_host_with_wildcards_case_and_port_and_refuses_unknown_hosts() {
    let app = Upstream::start("app");
    let other = Upstream::start("other");
    let gw = Gateway::start("hosts", |p, dir| {
        two_tenant_config(p, dir, &[&app], &other, "round-robin")
    });
    for host in [
        "demo.localhost",
        "DEMO.LocalHost",
        "demo.localhost:8080",
        "a.demo.localhost",
        "x.y.demo.localhost:1",
        "demo.localhost.",
    ] {
        let r = gw.get(host, "/public/x");
        assert_eq!(r.status, 200, "host {host}: {r:?}");
        assert_eq!(r.header("x-upstream"), Some("app"), "host {host}");
        assert_security_headers(&r);
    }
    let r = gw.get("other.example", "/anything");
    assert_eq!((r.status, r.header("x-upstream")), (200, Some("other")));
    assert_eq!(r.header("x-frame-options"), Some("SAMEORIGIN"));
    assert_eq!(
        r.header("content-security-policy"),
        None,
        "\"\" removes a default header"
    );

    let before = app.hits.load(std::sync::atomic::Ordering::SeqCst)
        + other.hits.load(std::sync::atomic::Ordering::SeqCst);
    for host in [
        "unknown.localhost",
        "demo.localhost.evil.example",
        "xdemo.localhost",
        "other.example.com",
        "",
    ] {
        let r = gw.get(host, "/public/x");
        assert_eq!(r.status, 404, "host {host:?}: {r:?}");
        assert_security_headers(&r);
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["request_id"].as_str(), r.header("x-request-id"));
    }
    let after = app.hits.load(std::sync::atomic::Ordering::SeqCst)
        + other.hits.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(before, after, "unknown hosts are never proxied");
}

#[test]
fn longest_route_wins_methods_fall_through_and_protected_routes_are_refused() {
    let app = Upstream::start("app");
    let other = Upstream::start("other");
    let gw = Gateway::start("routes", |p, dir| {
        two_tenant_config(p, dir, &[&app], &other, "round-robin")
    });
    // /api/open/* is white-listed for GET only; POST falls through to /api/* (needs a role).
    assert_eq!(gw.get("demo.localhost", "/api/open/x").status, 200);
    let post = raw_request(
        gw.listen,
        b"POST /api/open/x HTTP/1.1\r\nHost: demo.localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(post.status, 401);
    assert_eq!(
        post.header("www-authenticate"),
        Some("Bearer realm=\"demo\"")
    );
    assert_eq!(gw.get("demo.localhost", "/api/private").status, 401);
    // No route matches and default deny is on: refused, not proxied.
    let r = gw.get("demo.localhost", "/elsewhere");
    assert_eq!(r.status, 401);
    assert_security_headers(&r);
    assert!(app
        .requests()
        .iter()
        .all(|s| !s.target.starts_with("/api/private") && s.target != "/elsewhere"));
}

#[test]
fn round_robin_spreads_requests_over_targets() {
    let a = Upstream::start("a");
    let b = Upstream::start("b");
    let c = Upstream::start("c");
    let other = Upstream::start("other");
    let gw = Gateway::start("rr", |p, dir| {
        two_tenant_config(p, dir, &[&a, &b, &c], &other, "round-robin")
    });
    let mut counts = std::collections::HashMap::new();
    for _ in 0..30 {
        let r = gw.get("demo.localhost", "/public/rr");
        assert_eq!(r.status, 200);
        *counts
            .entry(r.header("x-upstream").unwrap().to_string())
            .or_insert(0) += 1;
    }
    assert_eq!(counts.len(), 3, "{counts:?}");
    for (name, n) in &counts {
        assert!(
            (8..=12).contains(n),
            "target {name} got {n} of 30: {counts:?}"
        );
    }
}

#[test]
fn consistent_hash_keeps_each_client_ip_on_one_target() {
    let a = Upstream::start("a");
    let b = Upstream::start("b");
    let c = Upstream::start("c");
    let other = Upstream::start("other");
    let gw = Gateway::start("ketama", |p, dir| {
        two_tenant_config(p, dir, &[&a, &b, &c], &other, "consistent-hash")
    });
    let mut chosen = std::collections::HashMap::new();
    for client in 1..=12u8 {
        let ip = format!("127.0.{client}.9");
        for _ in 0..4 {
            let sock = socket_from(&ip, gw.listen);
            let r = request_on(
                sock,
                "GET /public/k HTTP/1.1\r\nHost: demo.localhost\r\nConnection: close\r\n\r\n",
            );
            assert_eq!(r.status, 200);
            let target = r.header("x-upstream").unwrap().to_string();
            let first = chosen.entry(ip.clone()).or_insert_with(|| target.clone());
            assert_eq!(*first, target, "client {ip} moved between targets");
        }
    }
    let distinct: std::collections::HashSet<_> = chosen.values().collect();
    assert!(
        distinct.len() >= 2,
        "12 client IPs all hashed to one target: {chosen:?}"
    );
}

#[test]
fn health_checks_take_a_killed_target_out_and_all_down_is_a_503() {
    let a = Upstream::start("a");
    let mut b = Upstream::start("b");
    let other = Upstream::start("other");
    let gw = Gateway::start("health", |p, dir| {
        two_tenant_config(p, dir, &[&a, &b], &other, "round-robin")
    });
    gw.wait_ready();
    b.kill();
    // After the check interval (300ms) plus slack, every request succeeds on the survivor.
    std::thread::sleep(Duration::from_millis(900));
    for _ in 0..20 {
        let r = gw.get("demo.localhost", "/public/h");
        assert_eq!(
            (r.status, r.header("x-upstream")),
            (200, Some("a")),
            "{r:?}"
        );
    }
    // An unhealthy answer from /health takes a target out as well.
    a.set_healthy(false);
    assert_eventually!(
        Duration::from_secs(5),
        || gw.get("demo.localhost", "/public/h").status == 503,
        "all targets down should give 503"
    );
    let r = gw.get_with(
        "demo.localhost",
        "/public/h",
        &[("X-Request-ID", "trace-503")],
    );
    assert_eq!(r.status, 503);
    assert_security_headers(&r);
    assert_eq!(r.header("x-request-id"), Some("trace-503"));
    assert!(
        r.text().contains("trace-503"),
        "the 503 body names the request ID: {}",
        r.text()
    );
    // The process stays ready; `?verbose` names the pool without a healthy target.
    let (status, text) = gw.readiness();
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("pool demo/app: down, 0/2 targets healthy"),
        "{text}"
    );
    // Back up: taken back in.
    a.set_healthy(true);
    assert_eventually!(
        Duration::from_secs(5),
        || gw.get("demo.localhost", "/public/h").status == 200,
        "a recovered target is taken back in"
    );
}

#[test]
fn request_ids_are_kept_when_valid_and_replaced_otherwise() {
    let app = Upstream::start("app");
    let other = Upstream::start("other");
    let gw = Gateway::start("reqid", |p, dir| {
        two_tenant_config(p, dir, &[&app], &other, "round-robin")
    });
    let r = gw.get_with(
        "demo.localhost",
        "/public/id",
        &[("X-Request-ID", "abc.DEF_123-x")],
    );
    assert_eq!(r.header("x-request-id"), Some("abc.DEF_123-x"));
    assert_eq!(
        app.last().unwrap().header("x-request-id"),
        Some("abc.DEF_123-x")
    );

    let long = "a".repeat(129);
    for bad in [
        "has space",
        "semi;colon",
        "quote\"",
        long.as_str(),
        "slash/",
    ] {
        let r = gw.get_with("demo.localhost", "/public/id", &[("X-Request-ID", bad)]);
        let id = r.header("x-request-id").unwrap().to_string();
        assert_ne!(id, bad);
        assert_eq!(id.len(), 32, "generated IDs are 32 hex chars: {id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(
            app.last().unwrap().header("x-request-id"),
            Some(id.as_str()),
            "upstream sees the same ID"
        );
    }
    // W3C trace context: a trace is started from a generated request ID; a client's valid
    // traceparent is forwarded unchanged.
    let r = gw.get("demo.localhost", "/public/id");
    let id = r.header("x-request-id").unwrap().to_string();
    let tp = app
        .last()
        .unwrap()
        .header("traceparent")
        .unwrap()
        .to_string();
    assert!(
        tp.starts_with(&format!("00-{id}-")) && tp.ends_with("-01"),
        "{tp}"
    );
    let client_tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    gw.get_with(
        "demo.localhost",
        "/public/id",
        &[("traceparent", client_tp)],
    );
    assert_eq!(app.last().unwrap().header("traceparent"), Some(client_tp));
    let max = "b".repeat(128);
    assert_eq!(
        gw.get_with("demo.localhost", "/public/id", &[("X-Request-ID", &max)])
            .header("x-request-id"),
        Some(max.as_str())
    );
    let a = gw.get("demo.localhost", "/public/id");
    let b = gw.get("demo.localhost", "/public/id");
    assert_ne!(a.header("x-request-id"), b.header("x-request-id"));
    // A tenant's own header name.
    let r = gw.get_with("other.example", "/x", &[("X-Correlation-ID", "corr-1")]);
    assert_eq!(r.header("x-correlation-id"), Some("corr-1"));
    assert_eq!(
        other.last().unwrap().header("x-correlation-id"),
        Some("corr-1")
    );
}

#[test]
fn forwarded_headers_are_replaced_unless_the_peer_is_trusted() {
    let app = Upstream::start("app");
    let other = Upstream::start("other");
    let gw = Gateway::start("xff", |p, dir| {
        two_tenant_config(p, dir, &[&app], &other, "round-robin")
    });
    let spoof = "GET /public/f HTTP/1.1\r\nHost: demo.localhost\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.example\r\nX-Original-URL: /api/secret\r\nX-Forwarded-Uri: /api/secret\r\nX-Auth-Subject: admin\r\nX_Auth_Userid: admin\r\nConnection: close\r\n\r\n";
    // Untrusted peer (127.0.0.1): everything replaced or dropped.
    let r = request_on(socket_from("127.0.0.1", gw.listen), spoof);
    assert_eq!(r.status, 200);
    let seen = app.last().unwrap();
    assert_eq!(
        seen.target, "/public/f",
        "X-Original-URL never changes routing"
    );
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(seen.header("x-forwarded-host"), Some("demo.localhost"));
    assert_eq!(seen.header("x-original-url"), None);
    assert_eq!(seen.header("x-forwarded-uri"), None);
    assert_eq!(
        seen.header("x-auth-subject"),
        None,
        "client identity headers are stripped"
    );
    assert_eq!(seen.header("x_auth_userid"), None);
    assert!(r.header("strict-transport-security").is_none());
    // Trusted peer (127.0.0.2): its forwarded values are believed and extended.
    let r = request_on(socket_from("127.0.0.2", gw.listen), spoof);
    assert_eq!(r.status, 200);
    let seen = app.last().unwrap();
    assert_eq!(seen.header("x-forwarded-for"), Some("6.6.6.6, 127.0.0.2"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    assert_eq!(seen.header("x-forwarded-host"), Some("evil.example"));
    assert_eq!(
        seen.header("x-auth-subject"),
        None,
        "identity headers are stripped even from trusted proxies"
    );
    assert!(
        r.header("strict-transport-security").is_some(),
        "HTTPS as reported by a trusted proxy gets HSTS"
    );
}

#[test]
fn admin_endpoints_answer() {
    let app = Upstream::start("app");
    let other = Upstream::start("other");
    let gw = Gateway::start("admin", |p, dir| {
        two_tenant_config(p, dir, &[&app], &other, "round-robin")
    });
    gw.wait_ready();
    assert_eq!(gw.get("demo.localhost", "/public/m").status, 200);
    // Requests are counted in the logging phase, just after the response is written.
    let scrape = || get(gw.admin, "admin", "/metrics", &[]).unwrap();
    assert_eventually!(
        Duration::from_secs(5),
        || {
            scrape()
            .text()
            .contains("gatehouse_requests_total{method=\"GET\",route=\"/public/*\",status_class=\"2xx\",tenant=\"demo\"} 1")
        },
        "request counted: {}",
        scrape().text()
    );
    let m = scrape();
    assert_eq!(m.status, 200);
    let text = m.text();
    assert!(
        text.contains("gatehouse_upstream_healthy_targets{tenant=\"demo\",upstream=\"app\"} 1"),
        "{text}"
    );
    assert!(text.contains("gatehouse_build_info"));
    assert_eq!(get(gw.admin, "admin", "/nope", &[]).unwrap().status, 404);
}

/// The timeouts a request arms and that almost never fire (they run on Tokio's timer wheel, see
/// `server.rs`): an upstream that accepts and never answers gets a 504 after `read-timeout`, and
/// an idle client connection is closed after `keepalive-timeout`.
#[test]
fn a_silent_upstream_is_a_504_and_idle_client_connections_are_closed() {
    use std::io::{BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::time::Instant;

    // Accepts and reads, never answers; keeps each connection open until the test ends.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for mut s in silent.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            held.push(s);
        }
    });
    let app = Upstream::start("app");
    let gw = Gateway::start("timeouts", |p, _| {
        format!(
            r#"
listen: 127.0.0.1:{listen}
admin-listen: 127.0.0.1:{admin}
keepalive-timeout: 2s
tenants:
  - name: demo
    hosts: [demo.localhost]
    upstreams:
      - name: app
        targets: ["{app}"]
      - name: silent
        targets: ["{silent_addr}"]
        read-timeout: 1s
    routes:
      - uri: /slow/*
        white-listed: true
        upstream: silent
      - uri: /*
        white-listed: true
"#,
            listen = p.listen,
            admin = p.admin,
            app = app.target(),
        )
    });
    gw.wait_ready();

    let started = Instant::now();
    let r = gw.get("demo.localhost", "/slow/x");
    let waited = started.elapsed();
    assert_eq!(r.status, 504, "{r:?}");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(6),
        "answered after {waited:?}, read-timeout is 1s"
    );

    // One request on a keep-alive connection, then silence: the gateway closes it.
    let mut stream = TcpStream::connect(gw.listen).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /x HTTP/1.1\r\nHost: demo.localhost\r\n\r\n")
        .unwrap();
    let mut reader = BufReader::new(stream);
    let r = read_response(&mut reader, false).unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    let idle_from = Instant::now();
    let mut rest = Vec::new();
    let n = reader
        .read_to_end(&mut rest)
        .expect("closed by the gateway, not by our 10 s read timeout");
    let idle = idle_from.elapsed();
    assert_eq!(n, 0, "nothing after the response: {rest:?}");
    assert!(
        idle >= Duration::from_millis(1800) && idle < Duration::from_secs(8),
        "closed after {idle:?} idle, keepalive-timeout is 2s"
    );
}
