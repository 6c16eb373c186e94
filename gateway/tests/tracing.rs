//! OpenTelemetry traces through the real binary: a real OTLP/HTTP receiver started by the test
//! (a loopback HTTP server) decodes every export with the official protobuf definitions
//! (`opentelemetry-proto`'s prost messages). Checked: trace IDs, the server span and its
//! children (token verification, IdP and store calls, the upstream request), the continued
//! client trace and `tracestate`, the `traceparent` the upstream received, the attributes, and
//! that no token, cookie or query string appears in any attribute; a ratio of 0 without a
//! sampled client trace exports nothing; a collector that is down costs requests nothing.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::Span;
use support::idp::Idp;
use support::login::Browser;
use support::otlp::{describe, hex, text, Collector};
use support::*;

const COOKIE_KEY: &str = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";

/// Attribute `key` of `span` as text.
fn attr(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| text(a.value.as_ref()?.value.as_ref()?))
}

fn named<'a>(spans: &'a [Span], name: &str) -> Vec<&'a Span> {
    spans.iter().filter(|s| s.name == name).collect()
}

fn server_span(spans: &[Span]) -> &Span {
    let servers: Vec<&Span> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Server as i32)
        .collect();
    assert_eq!(servers.len(), 1, "one server span: {}", describe(spans));
    servers[0]
}

fn metric(gw: &Gateway, series: &str) -> f64 {
    gw.metrics()
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

fn tracing_section(endpoint: &str, ratio: &str) -> String {
    format!("tracing:\n  otlp-endpoint: {endpoint}\n  sampling-ratio: {ratio}\n  service-name: gatehouse-under-test\n")
}

fn config(p: &Ports, app: &Upstream, idp_port: u16, tracing: &str) -> String {
    let provider = keycloak_provider(&format!("http://127.0.0.1:{idp_port}/realms/demo"));
    format!(
        r#"
listen: 127.0.0.1:{listen}
admin-listen: 127.0.0.1:{admin}
{tracing}
identity-providers:
{provider}
    introspection: true
tenants:
  - name: demo
    hosts: [demo.localhost]
    identity-provider: keycloak
    upstreams:
      - name: app
        targets: ["{app}"]
    login:
      redirect-url: http://demo.localhost:{listen}/oauth/callback
      post-logout-redirect-url: http://demo.localhost:{listen}/
    cookie:
      secure: false
      encryption-key: "{COOKIE_KEY}"
      session-ttl: 1h
    routes:
      - uri: /public/*
        white-listed: true
      - name: api
        uri: /api/*
      - name: revocable
        uri: /revocable/*
        introspect: true
      - uri: /app/*
        roles: [user]
"#,
        listen = p.listen,
        admin = p.admin,
        app = app.target(),
    )
}

/// A gateway tracing every request (`sampling-ratio: 1`) to `collector`, and the IdP that knows
/// its callback URL.
fn traced_stack(tag: &str, app: &Upstream, collector: &Collector) -> (Gateway, Idp) {
    let tracing = tracing_section(&collector.endpoint(), "1");
    gateway_with_idp(tag, None, &[], |p, _, idp_port| {
        config(p, app, idp_port, &tracing)
    })
}

/// No attribute of any span carries a secret or a query string.
fn assert_no_secrets(spans: &[(String, Span)], secrets: &[&str]) {
    for (_, s) in spans {
        for a in &s.attributes {
            let v = a
                .value
                .as_ref()
                .and_then(|v| v.value.as_ref())
                .and_then(text)
                .unwrap_or_default();
            for secret in secrets {
                assert!(
                    !v.contains(secret),
                    "span {} attribute {} carries {secret:?}: {v:?}",
                    s.name,
                    a.key
                );
            }
            assert!(
                !v.contains('?'),
                "a query string in {} {}: {v}",
                s.name,
                a.key
            );
        }
    }
}

#[test]
fn spans_are_exported_with_their_children_the_continued_trace_and_no_secrets() {
    let collector = Collector::start();
    let app = Upstream::start("app");
    let (gw, idp) = traced_stack("tracing", &app, &collector);
    let token = idp.token("svc-user");

    // A bearer request: its request ID (32 hex digits) is the trace ID.
    let rid = "4bf92f3577b34da6a3ce929d0e0e4736";
    let r = get(
        gw.listen,
        "demo.localhost",
        "/api/./items?access_token=QUERYSECRET&page=2",
        &[
            ("Authorization", &format!("Bearer {token}")),
            ("Cookie", "other=COOKIESECRET"),
            ("X-Request-ID", rid),
        ],
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = app.last().expect("proxied");
    let spans = collector.trace(rid, |s| s.len() >= 3);
    let server = server_span(&spans);
    assert!(server.parent_span_id.is_empty(), "a new trace has a root");
    assert_eq!(server.name, "GET api");
    assert_eq!(attr(server, "gatehouse.tenant").as_deref(), Some("demo"));
    assert_eq!(attr(server, "gatehouse.route").as_deref(), Some("api"));
    assert_eq!(
        attr(server, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(attr(server, "http.request.method").as_deref(), Some("GET"));
    assert_eq!(
        attr(server, "url.path").as_deref(),
        Some("/api/items"),
        "normalized, no query"
    );
    assert_eq!(attr(server, "gatehouse.auth").as_deref(), Some("allowed"));
    assert_eq!(attr(server, "gatehouse.request_id").as_deref(), Some(rid));
    let verify = named(&spans, "verify token");
    assert_eq!(
        verify.len(),
        1,
        "a cache miss is verified: {}",
        describe(&spans)
    );
    assert_eq!(verify[0].parent_span_id, server.span_id);
    assert_eq!(
        attr(verify[0], "gatehouse.token.result").as_deref(),
        Some("ok")
    );
    assert_eq!(
        attr(verify[0], "gatehouse.provider").as_deref(),
        Some("keycloak")
    );
    let upstream = named(&spans, "upstream");
    assert_eq!(upstream.len(), 1, "{}", describe(&spans));
    assert_eq!(upstream[0].parent_span_id, server.span_id);
    assert_eq!(upstream[0].kind, SpanKind::Client as i32);
    assert_eq!(
        seen.header("traceparent"),
        Some(format!("00-{rid}-{}-01", hex(&upstream[0].span_id)).as_str()),
        "the upstream's parent is the gateway's upstream span"
    );
    assert_eq!(
        seen.header("x-request-id"),
        Some(rid),
        "the request ID is unchanged"
    );
    for s in &spans {
        assert!(s.start_time_unix_nano > 0 && s.end_time_unix_nano >= s.start_time_unix_nano);
        assert!(
            s.start_time_unix_nano >= server.start_time_unix_nano,
            "{}",
            s.name
        );
    }

    // The same token again: a cache hit has no verification span.
    let rid2 = "5bf92f3577b34da6a3ce929d0e0e4737";
    let r = get(
        gw.listen,
        "demo.localhost",
        "/api/items",
        &[
            ("Authorization", &format!("Bearer {token}")),
            ("X-Request-ID", rid2),
        ],
    )
    .unwrap();
    assert_eq!(r.status, 200);
    let spans = collector.trace(rid2, |s| s.len() >= 2);
    assert!(
        named(&spans, "verify token").is_empty(),
        "{}",
        describe(&spans)
    );

    // A revocation-sensitive route: the IdP's introspection endpoint is a child too.
    let rid4 = "7bf92f3577b34da6a3ce929d0e0e4739";
    let r = get(
        gw.listen,
        "demo.localhost",
        "/revocable/x",
        &[
            ("Authorization", &format!("Bearer {token}")),
            ("X-Request-ID", rid4),
        ],
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let spans = collector.trace(rid4, |s| !named(s, "idp introspection").is_empty());
    let server = server_span(&spans);
    let introspection = named(&spans, "idp introspection")[0];
    assert_eq!(introspection.parent_span_id, server.span_id);
    assert_eq!(
        attr(introspection, "gatehouse.idp.call").as_deref(),
        Some("introspection")
    );
    assert_eq!(
        attr(introspection, "gatehouse.idp.outcome").as_deref(),
        Some("ok")
    );

    // A refusal: the server span says why; nothing went upstream.
    let rid3 = "6bf92f3577b34da6a3ce929d0e0e4738";
    let r = get(
        gw.listen,
        "demo.localhost",
        "/api/items",
        &[
            ("Authorization", "Bearer not.a.jwt"),
            ("X-Request-ID", rid3),
        ],
    )
    .unwrap();
    assert_eq!(r.status, 401);
    let spans = collector.trace(rid3, |s| s.len() >= 2);
    let server = server_span(&spans);
    assert_eq!(
        attr(server, "http.response.status_code").as_deref(),
        Some("401")
    );
    assert_eq!(
        attr(server, "gatehouse.auth").as_deref(),
        Some("unauthenticated")
    );
    assert!(
        attr(server, "gatehouse.denial").is_some(),
        "{}",
        describe(&spans)
    );
    assert_eq!(
        named(&spans, "verify token").len(),
        1,
        "a refused token is a verification"
    );
    assert!(named(&spans, "upstream").is_empty());

    // A client's sampled trace is continued; its tracestate passes through.
    let client_trace = "0af7651916cd43dd8448eb211c80319c";
    let client_span = "b7ad6b7169203331";
    let r = gw.get_with(
        "demo.localhost",
        "/public/page",
        &[
            (
                "traceparent",
                &format!("00-{client_trace}-{client_span}-01"),
            ),
            ("tracestate", "vendor=opaque,other=1"),
        ],
    );
    assert_eq!(r.status, 200);
    let seen = app.last().unwrap();
    let spans = collector.trace(client_trace, |s| s.len() >= 2);
    let server = server_span(&spans);
    assert_eq!(
        hex(&server.parent_span_id),
        client_span,
        "parent = the client's span"
    );
    assert_eq!(server.trace_state, "vendor=opaque,other=1");
    let upstream = named(&spans, "upstream");
    assert_eq!(upstream.len(), 1);
    assert_eq!(
        seen.header("traceparent"),
        Some(format!("00-{client_trace}-{}-01", hex(&upstream[0].span_id)).as_str())
    );
    assert_eq!(seen.header("tracestate"), Some("vendor=opaque,other=1"));

    // A browser login: the callback's spans are the IdP's token call and the store's writes.
    let browser = Browser::new(gw.listen);
    let page = browser.login_from("/app/page", "alice", "alice-password", false);
    assert_eq!(page.status, 200, "{page:?}");
    let cookies = browser.cookies();
    let mut callback = Vec::new();
    let ok = wait_until(Duration::from_secs(10), || {
        let all = collector.spans();
        let Some(cb) = all
            .iter()
            .map(|(_, s)| s)
            .find(|s| attr(s, "url.path").as_deref() == Some("/oauth/callback"))
        else {
            return false;
        };
        callback = all
            .iter()
            .map(|(_, s)| s.clone())
            .filter(|s| s.trace_id == cb.trace_id)
            .collect();
        !named(&callback, "idp token").is_empty()
            && !named(&callback, "session-store put").is_empty()
    });
    assert!(ok, "the callback's children: {}", describe(&callback));
    let server = server_span(&callback);
    for name in ["idp token", "session-store put"] {
        let child = named(&callback, name)[0];
        assert_eq!(child.parent_span_id, server.span_id, "{name}");
        assert_eq!(child.kind, SpanKind::Client as i32, "{name}");
    }
    assert_eq!(
        attr(named(&callback, "idp token")[0], "gatehouse.idp.outcome").as_deref(),
        Some("ok")
    );

    // Every span: the configured service, and not one secret in any attribute.
    let all = collector.spans();
    assert!(all
        .iter()
        .all(|(service, _)| service == "gatehouse-under-test"));
    let session_cookie = cookies
        .split("; ")
        .filter_map(|c| c.split_once('=').map(|(_, v)| v.to_string()))
        .collect::<Vec<_>>();
    let mut secrets = vec![
        "QUERYSECRET",
        "COOKIESECRET",
        token.as_str(),
        "not.a.jwt",
        "code=",
    ];
    secrets.extend(session_cookie.iter().map(String::as_str));
    assert_no_secrets(&all, &secrets);
    assert!(metric(&gw, "gatehouse_trace_spans_total{outcome=\"exported\"}") >= all.len() as f64);
}

#[test]
fn a_ratio_of_zero_exports_nothing_without_a_sampled_client_trace() {
    let collector = Collector::start();
    let app = Upstream::start("app");
    let tracing = tracing_section(&collector.endpoint(), "0");
    let dir = TempDir::new("tracing-zero");
    let provider = static_provider(dir.path());
    let gw = Gateway::start("tracing-zero", |p, _| {
        format!(
            "listen: 127.0.0.1:{}\nadmin-listen: 127.0.0.1:{}\n{tracing}{provider}tenants:\n  - name: demo\n    hosts: [demo.localhost]\n    identity-provider: static\n    upstreams: [{{name: app, targets: [\"{}\"]}}]\n    routes: [{{uri: /*, white-listed: true}}]\n",
            p.listen,
            p.admin,
            app.target()
        )
    });
    gw.wait_ready();
    for _ in 0..20 {
        let r = gw.get("demo.localhost", "/page");
        assert_eq!(r.status, 200);
        // Not traced: the upstream is told so, in a trace named by the request ID.
        let id = r.header("x-request-id").unwrap().to_string();
        let tp = app
            .last()
            .unwrap()
            .header("traceparent")
            .unwrap()
            .to_string();
        assert!(
            tp.starts_with(&format!("00-{id}-")) && tp.ends_with("-00"),
            "{tp}"
        );
    }
    let unsampled = "00-1af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
    for _ in 0..5 {
        let r = gw.get_with("demo.localhost", "/page", &[("traceparent", unsampled)]);
        assert_eq!(r.status, 200);
        assert_eq!(
            app.last().unwrap().header("traceparent"),
            Some(unsampled),
            "passed on"
        );
    }
    // A sampled client trace is continued even at 0: once its spans are in, anything the
    // requests before it had queued would be too (one queue, exported in order).
    let sampled = "2af7651916cd43dd8448eb211c80319c";
    let r = gw.get_with(
        "demo.localhost",
        "/page",
        &[("traceparent", &format!("00-{sampled}-b7ad6b7169203331-01"))],
    );
    assert_eq!(r.status, 200);
    collector.trace(sampled, |s| s.len() >= 2);
    std::thread::sleep(Duration::from_millis(500));
    let all = collector.spans();
    assert!(
        all.iter().all(|(_, s)| hex(&s.trace_id) == sampled),
        "only the sampled client trace was exported: {}",
        describe(&all.into_iter().map(|(_, s)| s).collect::<Vec<_>>())
    );
    // `tracing` is read at start: a reload that changes it says so and changes nothing.
    let config = std::fs::read_to_string(&gw.config_path).unwrap();
    std::fs::write(
        &gw.config_path,
        config.replace("sampling-ratio: 0\n", "sampling-ratio: 1\n"),
    )
    .unwrap();
    gw.signal("HUP");
    assert_eventually!(
        Duration::from_secs(10),
        || gw
            .log()
            .contains("`tracing` changed: it takes effect at the next restart"),
        "the reload warns: {}",
        gw.log()
    );
    let r = gw.get("demo.localhost", "/page");
    assert_eq!(r.status, 200);
    let tp = app
        .last()
        .unwrap()
        .header("traceparent")
        .unwrap()
        .to_string();
    assert!(tp.ends_with("-00"), "still not traced: {tp}");
}

/// A minimal upstream for latency figures: every response in one write, `TCP_NODELAY`, so no
/// Nagle/delayed-ACK pause (about 40 ms) hides the gateway's own time. `GET` only.
fn fast_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = conn.set_nodelay(true);
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut conn = conn;
                loop {
                    let mut line = String::new();
                    // A request head ends with an empty line.
                    loop {
                        line.clear();
                        match reader.read_line(&mut line) {
                            Ok(0) | Err(_) => return,
                            Ok(_) if line.trim_end().is_empty() => break,
                            Ok(_) => {}
                        }
                    }
                    let answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                    if conn.write_all(answer.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Latencies of `n` sequential GETs over one keep-alive connection, all answered 200.
fn timed_requests(gw: &Gateway, n: usize) -> Vec<Duration> {
    let mut conn = Conn::open(gw.listen).expect("connect");
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let r = conn.get("demo.localhost", "/page").expect("answer");
        out.push(started.elapsed());
        assert_eq!(r.status, 200, "no request fails: {}", r.text());
    }
    out.sort();
    out
}

#[test]
fn a_collector_that_is_down_costs_requests_nothing() {
    let app = fast_upstream();
    let dir = TempDir::new("tracing-down");
    let provider = static_provider(dir.path());
    // Nothing listens there.
    let closed = format!("http://127.0.0.1:{}/v1/traces", free_port());
    let render = |tracing: String| {
        let provider = provider.clone();
        move |p: &Ports, _: &std::path::Path| {
            format!(
                "listen: 127.0.0.1:{}\nadmin-listen: 127.0.0.1:{}\n{tracing}{provider}tenants:\n  - name: demo\n    hosts: [demo.localhost]\n    identity-provider: static\n    upstreams: [{{name: app, targets: [\"{app}\"]}}]\n    routes: [{{uri: /*, white-listed: true}}]\n",
                p.listen, p.admin
            )
        }
    };
    let traced = Gateway::start("tracing-down", render(tracing_section(&closed, "1")));
    let plain = Gateway::start("tracing-plain", render(String::new()));
    traced.wait_ready();
    plain.wait_ready();
    timed_requests(&traced, 50);
    timed_requests(&plain, 50);
    // Interleaved rounds, so both see the same machine load.
    let (mut with_down, mut without) = (Vec::new(), Vec::new());
    for _ in 0..4 {
        with_down.extend(timed_requests(&traced, 100));
        without.extend(timed_requests(&plain, 100));
    }
    with_down.sort();
    without.sort();
    let median = |v: &[Duration]| v[v.len() / 2];
    let (down, up) = (median(&with_down), median(&without));
    eprintln!("median latency: collector down {down:?}, no tracing {up:?}");
    assert!(
        down <= up * 2 + Duration::from_millis(2),
        "a collector that is down adds latency: median {down:?} vs {up:?}"
    );
    assert_eventually!(
        Duration::from_secs(10),
        || metric(&traced, "gatehouse_trace_spans_total{outcome=\"failed\"}") > 0.0,
        "failed exports are counted: {}",
        traced.metrics()
    );
    assert_eq!(
        metric(&traced, "gatehouse_trace_spans_total{outcome=\"exported\"}"),
        0.0
    );
    assert!(
        !plain.metrics().contains("gatehouse_trace_spans_total{"),
        "no tracing, no series"
    );
}

#[test]
fn a_collector_that_hangs_fills_the_queue_and_spans_are_dropped_not_requests() {
    // Accepts connections and never answers: every export waits for its timeout.
    let hung = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}/v1/traces", hung.local_addr().unwrap());
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&held);
    std::thread::spawn(move || {
        for conn in hung.incoming().flatten() {
            keep.lock().unwrap().push(conn);
        }
    });
    let app = fast_upstream();
    let dir = TempDir::new("tracing-hung");
    let provider = static_provider(dir.path());
    let tracing = tracing_section(&endpoint, "1");
    let gw = Gateway::start("tracing-hung", |p, _| {
        format!(
            "listen: 127.0.0.1:{}\nadmin-listen: 127.0.0.1:{}\n{tracing}{provider}tenants:\n  - name: demo\n    hosts: [demo.localhost]\n    identity-provider: static\n    upstreams: [{{name: app, targets: [\"{}\"]}}]\n    routes: [{{uri: /*, white-listed: true}}]\n",
            p.listen,
            p.admin,
            app
        )
    });
    gw.wait_ready();
    // The exporter drains a batch at most every 5 s (its timeout); the queue holds 1024
    // requests' spans: sending faster than that must drop spans, never requests.
    let dropped = "gatehouse_trace_spans_total{outcome=\"dropped\"}";
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut sent = 0;
    while metric(&gw, dropped) == 0.0 {
        assert!(
            Instant::now() < deadline,
            "no span dropped after {sent} requests: {}",
            gw.metrics()
        );
        // Four connections at once: faster than one export per timeout can drain.
        let mut times: Vec<Duration> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| timed_requests(&gw, 250)))
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap())
                .collect()
        });
        times.sort();
        sent += times.len();
        assert!(
            times[times.len() / 2] < Duration::from_millis(50),
            "requests wait for the collector: median {:?}",
            times[times.len() / 2]
        );
    }
    assert!(!held.lock().unwrap().is_empty(), "the exporter did connect");
}
