//! Path normalization, limits and request smuggling shapes, through the real binary: what the
//! upstream receives, and which requests never reach it.

mod support;

use std::path::Path;

use support::*;

fn config(p: &Ports, dir: &Path, app: &Upstream) -> String {
    format!(
        r#"
listen: 127.0.0.1:{listen}
admin-listen: 127.0.0.1:{admin}
max-request-header-size: 8KiB
max-request-headers: 40
{provider}tenants:
  - name: demo
    hosts: [demo.localhost]
    identity-provider: static
    upstreams:
      - name: app
        targets: ["{app}"]
        health-check: {{ interval: 1s }}
    routes:
      - uri: /*
        white-listed: true
      - uri: /admin/*
        roles: [admin]
      - uri: /upload/*
        white-listed: true
        max-body-size: 1KiB
"#,
        listen = p.listen,
        admin = p.admin,
        app = app.target(),
        provider = static_provider(dir),
    )
}

/// (request target, expected status, path the upstream must receive when proxied)
const TABLE: &[(&str, u16, Option<&str>)] = &[
    ("/a/b", 200, Some("/a/b")),
    ("/a/./b", 200, Some("/a/b")),
    ("/a/../b", 200, Some("/b")),
    ("/../../etc/passwd", 200, Some("/etc/passwd")),
    ("//a///b", 200, Some("/a/b")),
    ("/a/%2e%2e/b", 200, Some("/b")),
    ("/a/%2E/b", 200, Some("/a/b")),
    ("/%61%62c", 200, Some("/abc")),
    ("/a%7eb", 200, Some("/a~b")),
    ("/a%20b", 200, Some("/a%20b")),
    ("/caf%c3%a9", 200, Some("/caf%C3%A9")),
    ("/a/b/", 200, Some("/a/b/")),
    ("/a/b/..", 200, Some("/a/")),
    ("/q?x=/../y&z=%2F", 200, Some("/q?x=/../y&z=%2F")),
    ("/a/./../b/?k=v", 200, Some("/b/?k=v")),
    // Bypass attempts on the protected /admin/* route: normalized first, then refused.
    ("/public/../admin/users", 401, None),
    ("/%61dmin/users", 401, None),
    ("//admin//users", 401, None),
    ("/admin/./users", 401, None),
    ("/x/%2e%2e/admin/users", 401, None),
    // Query and fragment tricks: the query never takes part in routing; an encoded `?` is path.
    (
        "/public/x?/../../admin/users",
        200,
        Some("/public/x?/../../admin/users"),
    ),
    ("/public%3f/../admin/users", 401, None),
    ("/public%3F/..%2F..%2Fadmin", 400, None),
    ("/admin/users#/public/x", 401, None), // the fragment is dropped: routed as /admin/users
    ("/admin/users?/public/x", 401, None),
    // Refused outright.
    ("/a%2fb", 400, None),
    ("/a%2Fb", 400, None),
    ("/a%5cb", 400, None),
    ("/a\\b", 400, None),
    ("/a;jsessionid=1/b", 400, None),
    ("/admin;x=1/users", 400, None),
    ("/a%3bb", 400, None),
    ("/a%00b", 400, None),
    ("/a%zz", 400, None),
    ("/a%", 400, None),
    ("/%c3%28", 400, None),
    ("/%ff", 400, None),
];

#[test]
fn normalizes_paths_before_routing_and_forwards_the_normalized_path() {
    let app = Upstream::start("app");
    let gw = Gateway::start("paths", |p, dir| config(p, dir, &app));
    for &(target, status, upstream_path) in TABLE {
        let before = app.requests().len();
        let raw =
            format!("GET {target} HTTP/1.1\r\nHost: demo.localhost\r\nConnection: close\r\n\r\n");
        let r = raw_request(gw.listen, raw.as_bytes()).unwrap();
        assert_eq!(r.status, status, "{target}: {r:?}");
        match upstream_path {
            Some(p) => assert_eq!(app.last().unwrap().target, p, "{target}"),
            None => assert_eq!(
                app.requests().len(),
                before,
                "{target} must not reach the upstream"
            ),
        }
        assert!(
            r.header("x-request-id").is_some() && r.header("x-frame-options").is_some(),
            "{target}"
        );
    }
    // Raw non-ASCII and NUL bytes in the request line: 400, never proxied.
    let before = app.requests().len();
    for raw in [
        &b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: demo.localhost\r\n\r\n"[..],
        b"GET /a\xff HTTP/1.1\r\nHost: demo.localhost\r\n\r\n",
    ] {
        let r = raw_request(gw.listen, raw).unwrap();
        assert_eq!(r.status, 400, "{r:?}");
    }
    assert_eq!(app.requests().len(), before);
}

#[test]
fn oversized_headers_get_431_and_smuggling_shapes_get_400() {
    let app = Upstream::start("app");
    let gw = Gateway::start("limits", |p, dir| config(p, dir, &app));
    let big = "x".repeat(9 * 1024);
    let r = gw.get_with("demo.localhost", "/a", &[("X-Big", &big)]);
    assert_eq!(r.status, 431);
    assert!(r.header("x-request-id").is_some());
    let mut many = Vec::new();
    for i in 0..45 {
        many.push((format!("X-H{i}"), "v".to_string()));
    }
    let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(gw.get_with("demo.localhost", "/a", &many).status, 431);
    assert_eq!(gw.get_with("demo.localhost", "/a", &many[..30]).status, 200);

    let before = app.requests().len();
    let shapes: &[&str] = &[
        // CL + TE
        "POST /a HTTP/1.1\r\nHost: demo.localhost\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST /a HTTP/1.1\r\nHost: demo.localhost\r\nTransfer-Encoding: chunked\r\nContent-Length: 30\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n",
        // duplicate, differing Content-Length
        "POST /a HTTP/1.1\r\nHost: demo.localhost\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        "POST /a HTTP/1.1\r\nHost: demo.localhost\r\nContent-Length: 3, 4\r\n\r\nabcd",
        // bad Content-Length value
        "POST /a HTTP/1.1\r\nHost: demo.localhost\r\nContent-Length: -1\r\n\r\n",
        // Transfer-Encoding other than chunked last
        "POST /a HTTP/1.1\r\nHost: demo.localhost\r\nTransfer-Encoding: gzip\r\n\r\nabc",
        // Transfer-Encoding on HTTP/1.0
        "POST /a HTTP/1.0\r\nHost: demo.localhost\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ];
    for shape in shapes {
        let r = raw_request(gw.listen, shape.as_bytes()).unwrap();
        assert_eq!(r.status, 400, "{shape:?}: {r:?}");
    }
    assert_eq!(
        app.requests().len(),
        before,
        "no smuggling shape reaches the upstream"
    );
    assert!(app.requests().iter().all(|s| s.target != "/smuggled"));
}

/// Pingora streams request bodies, so the upstream may see the request head before the chunk
/// parser fails; what it never sees is a complete request or a smuggled second request, because
/// the gateway re-frames every body it forwards.
#[test]
fn bad_chunked_bodies_get_400_and_never_complete_or_smuggle_at_the_upstream() {
    let app = Upstream::start("app");
    let gw = Gateway::start("chunks", |p, dir| config(p, dir, &app));
    for shape in [
        "POST /chunk HTTP/1.1\r\nHost: demo.localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: demo.localhost\r\n\r\n",
        "POST /chunk HTTP/1.1\r\nHost: demo.localhost\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: demo.localhost\r\n\r\n",
        "POST /chunk HTTP/1.1\r\nHost: demo.localhost\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\nabc\r\n0\r\n\r\n",
    ] {
        let r = raw_request(gw.listen, shape.as_bytes()).unwrap();
        assert_eq!(r.status, 400, "{shape:?}: {r:?}");
        assert!(r.header("x-request-id").is_some());
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        app.requests().iter().all(|s| s.target != "/chunk"),
        "a badly chunked request is never delivered whole: {:?}",
        app.requests()
    );
    let heads = app.heads.lock().unwrap().clone();
    assert!(
        heads.iter().all(|h| !h.contains("/smuggled")),
        "smuggled request reached the upstream: {heads:?}"
    );
    assert!(
        !heads.is_empty(),
        "the heads are recorded (this test can see what the upstream received)"
    );
}

#[test]
fn bodies_over_the_route_limit_get_413() {
    let app = Upstream::start("app");
    let gw = Gateway::start("body", |p, dir| config(p, dir, &app));
    let body = "y".repeat(2048);
    let raw = format!("POST /upload/f HTTP/1.1\r\nHost: demo.localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    let before = app.requests().len();
    assert_eq!(raw_request(gw.listen, raw.as_bytes()).unwrap().status, 413);
    assert_eq!(app.requests().len(), before);
    let ok = "z".repeat(1000);
    let raw = format!("POST /upload/f HTTP/1.1\r\nHost: demo.localhost\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n{ok}");
    let r = raw_request(gw.listen, raw.as_bytes()).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(app.last().unwrap().body.len(), 1000);
    // Chunked, no declared length: cut off once past the limit.
    let mut chunked = String::from("POST /upload/c HTTP/1.1\r\nHost: demo.localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
    for _ in 0..4 {
        chunked.push_str(&format!("200\r\n{}\r\n", "c".repeat(512)));
    }
    chunked.push_str("0\r\n\r\n");
    if let Ok(r) = raw_request(gw.listen, chunked.as_bytes()) {
        assert_eq!(r.status, 413, "{r:?}");
    }
    assert!(app.requests().iter().all(|s| s.target != "/upload/c"));
}

/// Two tenants behind a trusted proxy (127.0.0.1): `demo` with the defaults, `pass` with
/// `pass-rewrite-headers: true`.
fn steering_config(p: &Ports, app: &Upstream) -> String {
    format!(
        r#"
listen: 127.0.0.1:{listen}
admin-listen: 127.0.0.1:{admin}
trusted-proxies: [127.0.0.1/32]
tenants:
  - name: demo
    hosts: [demo.localhost]
    forward-access-token: true
    upstreams:
      - name: app
        targets: ["{app}"]
        health-check: {{ interval: 1s }}
    routes:
      - uri: /*
        white-listed: true
  - name: pass
    hosts: [pass.localhost]
    pass-rewrite-headers: true
    upstreams:
      - name: app
        targets: ["{app}"]
        health-check: {{ interval: 1s }}
    routes:
      - uri: /*
        white-listed: true
"#,
        listen = p.listen,
        admin = p.admin,
        app = app.target()
    )
}

#[test]
fn headers_that_steer_an_upstream_never_reach_it() {
    let app = Upstream::start("app");
    let gw = Gateway::start("steering", |p, _| steering_config(p, &app));
    gw.wait_ready();
    let send = |from: &str, host: &str, headers: &str| {
        let raw =
            format!("GET /page HTTP/1.1\r\nHost: {host}\r\n{headers}Connection: close\r\n\r\n");
        request_on(socket_from(from, gw.listen), &raw)
    };
    let never = [
        "X-HTTP-Method-Override: DELETE",
        "X_Method_Override: DELETE",
        "X-HTTP-Method: PUT",
        "X-Forwarded-User: admin",
        "X-Forwarded-Email: admin@example.com",
        "X-Forwarded-Groups: admins",
        "X-Forwarded-Preferred-Username: admin",
        "X-Auth-Request-User: admin",
        "X-Auth-Request-Email: admin@example.com",
        "Remote-User: admin",
        "remote_user: admin",
    ];
    let rewrite = [
        "X-Original-URL: /admin",
        "X-Rewrite-URL: /admin",
        "X-Forwarded-Prefix: /admin",
        "Forwarded: for=1.2.3.4;host=evil",
    ];
    let all: String = never
        .iter()
        .chain(&rewrite)
        .map(|h| format!("{h}\r\n"))
        .collect();
    let names = |list: &[&str]| -> Vec<String> {
        list.iter()
            .map(|h| h.split(':').next().unwrap().to_string())
            .collect()
    };
    // From an untrusted peer, and from the trusted proxy: none of them reaches the upstream.
    for from in ["127.0.0.9", "127.0.0.1"] {
        let r = send(from, "demo.localhost", &all);
        assert_eq!(r.status, 200, "{r:?}");
        let seen = app.last().unwrap();
        for name in names(&never).iter().chain(&names(&rewrite)) {
            assert_eq!(seen.header(name), None, "{name} from {from}: {seen:?}");
        }
    }
    // A tenant that opts in gets the trusted proxy's rewrite headers, never the others.
    let r = send("127.0.0.1", "pass.localhost", &all);
    assert_eq!(r.status, 200, "{r:?}");
    let seen = app.last().unwrap();
    assert_eq!(seen.header("x-original-url"), Some("/admin"));
    assert_eq!(seen.header("x-forwarded-prefix"), Some("/admin"));
    for name in names(&never) {
        assert_eq!(seen.header(&name), None, "{name}: {seen:?}");
    }
    let r = send("127.0.0.9", "pass.localhost", &all);
    assert_eq!(r.status, 200, "{r:?}");
    let seen = app.last().unwrap();
    assert_eq!(
        seen.header("x-original-url"),
        None,
        "only from a trusted proxy"
    );

    // Two Authorization headers: refused before anything else, never proxied.
    let before = app.requests().len();
    let r = send(
        "127.0.0.9",
        "demo.localhost",
        "Authorization: Bearer a\r\nAuthorization: Bearer b\r\n",
    );
    assert_eq!(r.status, 400, "{r:?}");
    let r = send(
        "127.0.0.9",
        "demo.localhost",
        "Authorization: Bearer a, Bearer b\r\n",
    );
    assert_eq!(
        r.status, 200,
        "one header is one credential (the upstream gets it as sent)"
    );
    assert_eq!(app.requests().len(), before + 1);
    let m = get(gw.admin, "admin", "/metrics", &[]).unwrap().text();
    let series = r#"gatehouse_auth_decisions_total{reason="duplicate_authorization",result="bad_request",tenant="demo"} 1"#;
    assert!(m.contains(series), "{m}");
    // The access log is written by its own thread.
    assert_eventually!(
        std::time::Duration::from_secs(5),
        || gw.log().contains(r#""reason":"duplicate_authorization""#),
        "the access log names the reason: {}",
        gw.log()
    );
}
