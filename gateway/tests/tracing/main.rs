//! OpenTelemetry traces through the real binary: a real OTLP/HTTP receiver started by the test
//! (a loopback HTTP server) decodes every export with the official protobuf definitions
//! (`opentelemetry-proto`'s prost messages). Checked: trace IDs, the server span and its
//! children (token verification, IdP and store calls, the upstream request), the continued
//! client trace and `tracestate`, the `traceparent` the upstream received, the attributes, and
//! that no token, cookie or query string appears in any attribute; a ratio of 0 without a
//! sampled client trace exports nothing; a collector that is down costs requests nothing.
//!
//! This file: the receiver helpers and the config; `spans.rs`: the exported spans and sampling;
//! `collector.rs`: a collector that is down or hangs.

#[path = "../support/mod.rs"]
mod support;

mod collector;
mod spans;

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
