//! Header application and cookie decoding, per request, each beside the naive approach.
//!
//! - `upstream_request_headers`: what the upstream gets of a bearer-authenticated request
//!   (client identity and proxy-only headers removed, `Authorization` dropped, three identity
//!   headers, `X-Forwarded-For/Proto/Host`, request ID, `traceparent`). *naive*: Pingora's
//!   case-preserving `RequestHeader::insert_header`/`remove_header` for each header (what
//!   gatehouse did first); *chosen*: the header as `http` parts and
//!   `gatehouse_policy::headers::forward_request` (what `gateway/src/proxy.rs` does).
//! - `response_headers`: the four default security headers and the request ID on an upstream
//!   response, the same two ways.
//! - `cookie_decode`: the session ID out of a browser's `Cookie` header (five cookies, ours
//!   third). *naive*: every cookie parsed into a map first; *chosen*: `find_cookie` (a scan that
//!   stops at ours) and `CookieCodec::open` (AES-256-GCM).
//!
//! Both request variants start from a clone of the same parsed request, as Pingora hands the
//! phase a clone of the downstream request.

use criterion::{criterion_group, criterion_main, Criterion};
use gatehouse_config::CookieKey;
use gatehouse_policy::headers::{
    forward_request, respond, Forwarding, ALWAYS_REMOVED_HEADERS, PROXY_ONLY_HEADERS,
    REWRITE_HEADERS,
};
use gatehouse_policy::snapshot::ResponseHeaders;
use gatehouse_session::cookie::{find_cookie, CookieCodec};
use http::{HeaderName, HeaderValue};
use pingora_http::{RequestHeader, ResponseHeader};
use std::collections::HashMap;
use std::hint::black_box;

const REQUEST_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// A request as Pingora parses it from wrk/curl: case-preserving, four headers, a ~1 KiB token.
fn client_request() -> RequestHeader {
    let mut req = RequestHeader::build("GET", b"/api/orders?page=2", Some(4)).unwrap();
    req.append_header("Host", "app.example.com").unwrap();
    req.append_header("User-Agent", "curl/7.88.1").unwrap();
    req.append_header("Accept", "*/*").unwrap();
    let token = format!("eyJhbGciOiJSUzI1NiJ9.{}.sig", "a".repeat(1000));
    req.append_header("Authorization", format!("Bearer {token}"))
        .unwrap();
    req
}

fn identity_headers() -> Vec<(HeaderName, String)> {
    ["x-auth-subject", "x-auth-username", "x-auth-roles"]
        .iter()
        .map(|n| (HeaderName::from_static(n), String::new()))
        .collect()
}

fn identity_values() -> [&'static str; 3] {
    [
        "7f1c2d7e-5b8a-4f0e-9c1d-2a3b4c5d6e7f",
        "alice",
        "user,offline_access",
    ]
}

/// The first implementation: one Pingora call per header.
fn naive_upstream(req: &mut RequestHeader, identity: &[(HeaderName, String)]) {
    let spoofed: Vec<HeaderName> = req
        .headers
        .keys()
        .filter(|n| n.as_str().starts_with("x-auth-"))
        .cloned()
        .collect();
    for name in spoofed {
        req.remove_header(&name);
    }
    for (name, value) in identity.iter().zip(identity_values()) {
        req.insert_header(name.0.clone(), HeaderValue::from_str(value).unwrap())
            .unwrap();
    }
    req.remove_header(&http::header::AUTHORIZATION);
    for name in PROXY_ONLY_HEADERS
        .iter()
        .chain(&REWRITE_HEADERS)
        .chain(&ALWAYS_REMOVED_HEADERS)
    {
        req.remove_header(*name);
    }
    req.insert_header("x-forwarded-for", "10.1.2.3".to_string())
        .unwrap();
    req.insert_header("x-forwarded-proto", "http").unwrap();
    let host = req.headers.get("host").cloned().unwrap();
    req.insert_header("x-forwarded-host", host).unwrap();
    req.insert_header(HeaderName::from_static("x-request-id"), REQUEST_ID)
        .unwrap();
    req.insert_header(
        "traceparent",
        format!("00-{REQUEST_ID}-{:016x}-01", black_box(0x1234_5678u64)),
    )
    .unwrap();
}

/// What the gateway does (`edit_request_headers` in gateway/src/proxy.rs).
fn chosen_upstream(req: &mut RequestHeader, identity: &[(HeaderName, String)], id: &HeaderName) {
    let placeholder = RequestHeader::from(http::Request::new(()).into_parts().0);
    let header = std::mem::replace(req, placeholder);
    let mut parts = http::request::Parts::from(header);
    forward_request(
        &mut parts.headers,
        &Forwarding {
            client_ip: Some([10, 1, 2, 3].into()),
            trusted_peer: false,
            tls: false,
            authority: None,
            identity_headers: identity,
            forward_access_token: false,
            pass_rewrite_headers: false,
            assertion_header: None,
            traceparent: None,
            request_id: (id, HeaderValue::from_static(REQUEST_ID)),
        },
    );
    for (name, value) in identity.iter().zip(identity_values()) {
        parts.headers.insert(
            name.0.clone(),
            HeaderValue::try_from(value.to_string()).unwrap(),
        );
    }
    *req = RequestHeader::from(parts);
}

fn upstream_response() -> ResponseHeader {
    let mut resp = ResponseHeader::build(200, Some(5)).unwrap();
    for (n, v) in [
        ("Server", "nginx/1.22.1"),
        ("Date", "Mon, 23 Nov 2026 14:03:35 GMT"),
        ("Content-Type", "text/plain"),
        ("Content-Length", "20"),
        ("Connection", "keep-alive"),
    ] {
        resp.append_header(n, v).unwrap();
    }
    resp
}

fn security_headers() -> ResponseHeaders {
    ResponseHeaders {
        always: [
            ("x-frame-options", "DENY"),
            ("x-content-type-options", "nosniff"),
            ("content-security-policy", "default-src 'self'"),
            ("referrer-policy", "no-referrer"),
        ]
        .iter()
        .map(|(n, v)| (HeaderName::from_static(n), HeaderValue::from_static(v)))
        .collect(),
        hsts: None,
    }
}

fn bench_headers(c: &mut Criterion) {
    let base = client_request();
    let identity = identity_headers();
    let id = HeaderName::from_static("x-request-id");
    let mut g = c.benchmark_group("upstream_request_headers");
    g.bench_function("clone_only", |b| b.iter(|| base.clone()));
    g.bench_function("naive_pingora_insert_header", |b| {
        b.iter(|| {
            let mut r = base.clone();
            naive_upstream(&mut r, &identity);
            r
        })
    });
    g.bench_function("chosen_http_parts", |b| {
        b.iter(|| {
            let mut r = base.clone();
            chosen_upstream(&mut r, &identity, &id);
            r
        })
    });
    g.finish();

    // Both produce the same header set.
    let (mut a, mut b) = (base.clone(), base.clone());
    naive_upstream(&mut a, &identity);
    chosen_upstream(&mut b, &identity, &id);
    let names = |r: &RequestHeader| {
        let mut v: Vec<String> = r.headers.keys().map(|k| k.to_string()).collect();
        v.sort();
        v
    };
    assert_eq!(names(&a), names(&b));

    let resp = upstream_response();
    let security = security_headers();
    let mut g = c.benchmark_group("response_headers");
    g.bench_function("naive_pingora_insert_header", |b| {
        b.iter(|| {
            let mut r = resp.clone();
            for (name, value) in &security.always {
                r.insert_header(name.clone(), value.clone()).unwrap();
            }
            r.insert_header(id.clone(), REQUEST_ID).unwrap();
            r
        })
    });
    g.bench_function("chosen_http_parts", |b| {
        b.iter(|| {
            let mut r = resp.clone();
            let placeholder = ResponseHeader::from(http::Response::new(()).into_parts().0);
            let mut parts = http::response::Parts::from(std::mem::replace(&mut r, placeholder));
            respond(
                &mut parts.headers,
                &security,
                false,
                (&id, HeaderValue::from_static(REQUEST_ID)),
            );
            ResponseHeader::from(parts)
        })
    });
    g.finish();
}

fn bench_cookie(c: &mut Criterion) {
    let codec = CookieCodec::new(&[CookieKey::new([7; 32]), CookieKey::new([9; 32])]).unwrap();
    let sealed = codec
        .seal("session", b"Zk3V0mJq8yQm2wq3n0lV9kq1sV6oWq8uJm4tP2xYc1A")
        .unwrap();
    let header = format!(
        "_ga=GA1.1.123456789.1700000000; theme=dark; gatehouse_session={sealed}; lang=en; _gid=GA1.1.987654321.1700000000"
    );
    let mut g = c.benchmark_group("cookie_decode");
    g.bench_function("naive_parse_all_then_open", |b| {
        b.iter(|| {
            let jar: HashMap<String, String> = black_box(&header)
                .split(';')
                .filter_map(|p| p.split_once('='))
                .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
                .collect();
            codec.open("session", &jar["gatehouse_session"]).unwrap()
        })
    });
    g.bench_function("chosen_find_then_open", |b| {
        b.iter(|| {
            let value = find_cookie(
                std::iter::once(black_box(header.as_str())),
                "gatehouse_session",
            )
            .unwrap();
            codec.open("session", value).unwrap()
        })
    });
    g.bench_function("open_with_second_key", |b| {
        let old = CookieCodec::new(&[CookieKey::new([9; 32])]).unwrap();
        let sealed_old = old
            .seal("session", b"Zk3V0mJq8yQm2wq3n0lV9kq1sV6oWq8uJm4tP2xYc1A")
            .unwrap();
        b.iter(|| codec.open("session", black_box(&sealed_old)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench_headers, bench_cookie);
criterion_main!(benches);
