//! CORS and the forward-auth endpoint through the real binary, including forward-auth behind a
//! real nginx `auth_request` (Debian's nginx, started by the test on loopback).

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::idp::Idp;
use support::*;

fn config(p: &Ports, app: &Upstream, issuer: &str) -> String {
    config_with(p, app, issuer, "")
}

/// The test config with `extra` top-level keys; a second tenant (`other.localhost`) white-lists
/// everything, so a check decided on the wrong tenant shows as a 200.
fn config_with(p: &Ports, app: &Upstream, issuer: &str, extra: &str) -> String {
    format!(
        r#"
listen: 127.0.0.1:{listen}
admin-listen: 127.0.0.1:{admin}
trusted-proxies: [127.0.0.1/32]
{extra}
identity-providers:
  - name: keycloak
    issuer: {issuer}
    allow-insecure-http: true
    client-id: gatehouse
    client-secret: gatehouse-secret
tenants:
  - name: demo
    hosts: [demo.localhost]
    identity-provider: keycloak
    upstreams:
      - name: app
        targets: ["{app}"]
    identity-headers:
      X-Auth-Userid: preferred_username
      X-Auth-Roles: realm_access.roles
    cors:
      origins: ["https://app.demo.localhost"]
      methods: [GET, PUT, DELETE]
      headers: [Authorization, Content-Type]
      exposed-headers: [X-Request-ID]
      credentials: true
      max-age: 10m
    routes:
      - uri: /public/*
        white-listed: true
      - uri: /api/admin/*
        roles: [admin]
      - uri: /api/*
  - name: other
    hosts: [other.localhost]
    upstreams:
      - name: app
        targets: ["{app}"]
    routes:
      - uri: /*
        white-listed: true
"#,
        listen = p.listen,
        admin = p.admin,
        app = app.target(),
    )
}

const ORIGIN: &str = "https://app.demo.localhost";

#[test]
fn cors_preflights_are_answered_here_and_actual_responses_carry_allow_headers() {
    let idp = Idp::start(None, &[]);
    let app = Upstream::start("app");
    let gw = Gateway::start("cors", |p, _| config(p, &app, &idp.issuer));
    gw.wait_ready();
    let before = app.requests().len();
    let preflight = |origin: &str, method: &str, headers: &str| {
        let raw = format!(
            "OPTIONS /api/admin/x HTTP/1.1\r\nHost: demo.localhost\r\nOrigin: {origin}\r\nAccess-Control-Request-Method: {method}\r\nAccess-Control-Request-Headers: {headers}\r\nConnection: close\r\n\r\n"
        );
        raw_request(gw.listen, raw.as_bytes()).unwrap()
    };
    // Allowed: answered by the gateway, without authentication, on a protected route.
    let r = preflight(ORIGIN, "PUT", "authorization, content-type");
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(r.header("access-control-allow-origin"), Some(ORIGIN));
    assert_eq!(
        r.header("access-control-allow-methods"),
        Some("GET, PUT, DELETE")
    );
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("Authorization, Content-Type")
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.header("access-control-max-age"), Some("600"));
    assert_eq!(r.header("vary"), Some("Origin"));
    assert!(r.header("x-request-id").is_some() && r.header("x-frame-options").is_some());
    // Refused: a foreign origin, a method or a header not allowed -> 403, no allow headers.
    for (origin, method, headers) in [
        ("https://evil.example", "GET", "authorization"),
        (
            "https://app.demo.localhost.evil.example",
            "GET",
            "authorization",
        ),
        (ORIGIN, "PATCH", "authorization"),
        (ORIGIN, "GET", "x-secret-header"),
    ] {
        let r = preflight(origin, method, headers);
        assert_eq!(r.status, 403, "{origin} {method} {headers}");
        assert!(
            r.headers
                .iter()
                .all(|(k, _)| !k.to_ascii_lowercase().starts_with("access-control-allow")),
            "{r:?}"
        );
    }
    assert_eq!(app.requests().len(), before, "preflights are never proxied");

    // Actual requests: allow headers for the allowed origin only; Vary: Origin always.
    let r = gw.get_with("demo.localhost", "/public/c", &[("Origin", ORIGIN)]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some(ORIGIN));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(
        r.header("access-control-expose-headers"),
        Some("X-Request-ID")
    );
    assert!(r
        .headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("vary") && v.contains("Origin")));
    let r = gw.get_with(
        "demo.localhost",
        "/public/c",
        &[("Origin", "https://evil.example")],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), None);
    assert!(r
        .headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("vary") && v.contains("Origin")));
    // The gateway's own 401 is readable by the allowed origin's script.
    let r = gw.get_with("demo.localhost", "/api/admin/x", &[("Origin", ORIGIN)]);
    assert_eq!(r.status, 401);
    assert_eq!(r.header("access-control-allow-origin"), Some(ORIGIN));
}

#[test]
fn forward_auth_answers_for_the_original_request_only_from_trusted_proxies() {
    let idp = Idp::start(None, &[]);
    let app = Upstream::start("app");
    let gw = Gateway::start("fwdauth", |p, _| config(p, &app, &idp.issuer));
    gw.wait_ready();
    let admin = idp.token("svc-admin");
    let user = idp.token("svc-user");
    let check = |from: &str, method: &str, uri: &str, token: Option<&str>| {
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let raw = format!(
            "GET /oauth/auth HTTP/1.1\r\nHost: demo.localhost\r\nX-Forwarded-Method: {method}\r\nX-Forwarded-Uri: {uri}\r\n{auth}Connection: close\r\n\r\n"
        );
        request_on(socket_from(from, gw.listen), &raw)
    };
    let before = app.requests().len();
    let r = check("127.0.0.1", "GET", "/api/admin/users?x=1", Some(&admin));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-auth-userid"), Some("service-account-svc-admin"));
    assert_eq!(r.header("x-auth-roles"), Some("admin,user,offline_access"));
    assert_eq!(
        check("127.0.0.1", "GET", "/api/admin/users", Some(&user)).status,
        403
    );
    assert_eq!(
        check("127.0.0.1", "GET", "/api/admin/users", None).status,
        401
    );
    assert_eq!(check("127.0.0.1", "GET", "/public/page", None).status, 200);
    // The path ends at the first '?': a URL in the query is not the original request (this was
    // decided as /public/ and allowed).
    let r = check(
        "127.0.0.1",
        "GET",
        "/api/admin/users?x=http://h/public/",
        None,
    );
    assert_eq!(r.status, 401, "{r:?}");
    let r = check(
        "127.0.0.1",
        "GET",
        "/api/admin/users?rd=https://h/public/x",
        Some(&user),
    );
    assert_eq!(r.status, 403, "{r:?}");
    // An absolute URI only when it starts with a scheme; anything else must start with '/'.
    let r = check(
        "127.0.0.1",
        "GET",
        "https://demo.localhost/api/admin/x?a=b",
        Some(&admin),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(check("127.0.0.1", "GET", "public/page", None).status, 400);
    assert_eq!(
        check("127.0.0.1", "GET", "x/http://h/public/", None).status,
        400
    );
    // The original path must already be in normal form: the upstream gets it as sent, and one
    // that does not merge slashes serves /admin//../public/x as /admin/public/x (this was
    // decided as /public/x and allowed).
    for shape in [
        "/admin//../public/x",
        "/public/../api/admin/users",
        "/public/%2e%2e/api/admin/users",
        "/public/..%2fapi/admin",
        "/%70ublic/x",
        "/public//x",
        "/public/./x",
    ] {
        let r = check("127.0.0.1", "GET", shape, Some(&admin));
        assert_eq!(r.status, 400, "{shape}: {r:?}");
        assert!(r.header("x-auth-userid").is_none(), "{shape}");
    }
    let raw = "GET /oauth/auth HTTP/1.1\r\nHost: demo.localhost\r\nX-Original-Method: GET\r\nX-Original-URL: /public/x\r\nX-Forwarded-Uri: /api/admin/x\r\nConnection: close\r\n\r\n";
    assert_eq!(
        request_on(socket_from("127.0.0.1", gw.listen), raw).status,
        401,
        "with forward-auth-headers: x-forwarded (the default) X-Original-URL is not read"
    );
    // Envoy ext_authz style: the original path appended to the check path.
    let raw = format!("GET /oauth/auth/api/admin/users HTTP/1.1\r\nHost: demo.localhost\r\nX-Forwarded-Method: GET\r\nAuthorization: Bearer {user}\r\nConnection: close\r\n\r\n");
    assert_eq!(
        request_on(socket_from("127.0.0.1", gw.listen), &raw).status,
        403
    );
    let raw = format!("GET /oauth/auth/api/admin/users HTTP/1.1\r\nHost: demo.localhost\r\nAuthorization: Bearer {admin}\r\nConnection: close\r\n\r\n");
    let r = request_on(socket_from("127.0.0.1", gw.listen), &raw);
    assert_eq!(
        (r.status, r.header("x-auth-userid")),
        (200, Some("service-account-svc-admin"))
    );
    let raw =
        "GET /oauth/auth/public/x HTTP/1.1\r\nHost: demo.localhost\r\nConnection: close\r\n\r\n";
    assert_eq!(
        request_on(socket_from("127.0.0.1", gw.listen), raw).status,
        200
    );
    // An untrusted caller's forwarded headers are ignored: the check is about /oauth/auth itself,
    // which no route covers (default deny).
    assert_eq!(check("127.0.0.9", "GET", "/public/page", None).status, 401);
    assert_eq!(
        app.requests().len(),
        before,
        "forward-auth checks are never proxied"
    );
    // Refusals name their reason in the access log and the auth decision metrics.
    // The access log is written by its own thread.
    assert_eventually!(
        Duration::from_secs(5),
        || gw
            .log()
            .contains(r#""reason":"forward_auth_path_not_normal""#),
        "the access log names the reason: {}",
        gw.log()
    );
    let m = get(gw.admin, "admin", "/metrics", &[]).unwrap().text();
    for reason in [
        "forward_auth_path_not_normal",
        "forward_auth_uri_not_a_path",
        "forward_auth_bad_path",
    ] {
        let series = format!(
            r#"gatehouse_auth_decisions_total{{reason="{reason}",result="bad_request",tenant="demo"}}"#
        );
        assert!(m.contains(&series), "{series}\n{m}");
    }
}

#[test]
fn forward_auth_believes_only_the_configured_header_family() {
    let idp = Idp::start(None, &[]);
    let app = Upstream::start("app");
    let check = |gw: &Gateway, headers: &str| {
        let raw = format!(
            "GET /oauth/auth HTTP/1.1\r\nHost: demo.localhost\r\n{headers}Connection: close\r\n\r\n"
        );
        request_on(socket_from("127.0.0.1", gw.listen), &raw).status
    };
    // x-forwarded (default): X-Forwarded-Host picks the tenant, X-Original-* are ignored.
    let gw = Gateway::start("fwdfamily", |p, _| config(p, &app, &idp.issuer));
    gw.wait_ready();
    let to_other = "X-Forwarded-Host: other.localhost\r\nX-Forwarded-Uri: /api/admin/x\r\n";
    assert_eq!(check(&gw, to_other), 200, "decided on the other tenant");
    drop(gw);
    // x-original (ingress-nginx): X-Original-URL with the request's Host; a client's own
    // X-Forwarded-Uri and X-Forwarded-Host, passed through by the ingress, pick nothing (the
    // X-Forwarded-Uri here used to win).
    let gw = Gateway::start("origfamily", |p, _| {
        config_with(p, &app, &idp.issuer, "forward-auth-headers: x-original")
    });
    gw.wait_ready();
    let spoofed = "X-Forwarded-Uri: /public/x\r\nX-Original-Method: GET\r\nX-Original-URL: http://demo.localhost/api/admin/x\r\n";
    assert_eq!(check(&gw, spoofed), 401);
    assert_eq!(check(&gw, to_other), 401, "X-Forwarded-Host is not read");
    let allowed = "X-Original-URL: /public/x?next=/api/admin\r\n";
    assert_eq!(check(&gw, allowed), 200);
    let admin = idp.token("svc-admin");
    let as_admin = format!("X-Original-URL: /api/admin/x\r\nAuthorization: Bearer {admin}\r\n");
    assert_eq!(check(&gw, &as_admin), 200);
}

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The nginx `auth_request` locations of docs/forward-auth.md, with the gateway's and the
/// app's addresses put in: the test runs the documented configuration.
fn documented_locations(gateway: std::net::SocketAddr, app: &Upstream) -> String {
    let doc = include_str!("../../docs/forward-auth.md");
    let start = doc
        .find("```nginx\n")
        .expect("docs/forward-auth.md has an nginx block")
        + 9;
    let block = &doc[start..];
    let block = &block[..block.find("```").expect("the nginx block ends")];
    for documented in ["http://gatehouse.gatehouse.svc:8080/", "http://app;"] {
        assert!(
            block.contains(documented),
            "the documented block names {documented}"
        );
    }
    block
        .replace(
            "http://gatehouse.gatehouse.svc:8080/",
            &format!("http://{gateway}/"),
        )
        .replace("http://app;", &format!("http://{};", app.target()))
}

fn start_nginx(dir: &Path, port: u16, gateway: std::net::SocketAddr, app: &Upstream) -> Nginx {
    let d = dir.display();
    let locations = documented_locations(gateway, app);
    let conf = format!(
        r#"
worker_processes 1;
daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log warn;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {d}/cb; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  server {{
    listen 127.0.0.1:{port};
{locations}
  }}
}}
"#
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let child = Command::new("nginx")
        .arg("-c")
        .arg(&path)
        .arg("-p")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx is installed (scripts/install-deps.sh)");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || std::net::TcpStream::connect(
            addr
        )
        .is_ok()),
        "nginx did not start: {}",
        std::fs::read_to_string(dir.join("nginx-error.log")).unwrap_or_default()
    );
    Nginx(child)
}

#[test]
fn forward_auth_behind_a_real_nginx_auth_request() {
    let idp = Idp::start(None, &[]);
    let app = Upstream::start("app");
    let gw = Gateway::start("nginx", |p, _| config(p, &app, &idp.issuer));
    gw.wait_ready();
    let dir = TempDir::new("nginx");
    let port = free_port();
    let _nginx = start_nginx(dir.path(), port, gw.listen, &app);
    let nginx: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let admin = idp.token("svc-admin");
    let user = idp.token("svc-user");
    let bearer = |t: &str| format!("Bearer {t}");

    let r = get(
        nginx,
        "demo.localhost",
        "/api/admin/report",
        &[("Authorization", &bearer(&admin))],
    )
    .unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    let seen = app.last().unwrap();
    assert_eq!(seen.target, "/api/admin/report");
    assert_eq!(
        seen.header("x-auth-userid"),
        Some("service-account-svc-admin"),
        "identity copied by auth_request_set"
    );
    assert_eq!(
        seen.header("x-auth-roles"),
        Some("admin,user,offline_access")
    );

    let before = app.requests().len();
    assert_eq!(
        get(
            nginx,
            "demo.localhost",
            "/api/admin/report",
            &[("Authorization", &bearer(&user))]
        )
        .unwrap()
        .status,
        403
    );
    assert_eq!(
        get(nginx, "demo.localhost", "/api/admin/report", &[])
            .unwrap()
            .status,
        401
    );
    assert_eq!(
        get(nginx, "demo.localhost", "/api/other", &[])
            .unwrap()
            .status,
        401
    );
    assert_eq!(
        app.requests().len(),
        before,
        "denied requests never reach the app"
    );
    // The query is not the original path: this was decided as /public/ and served.
    let r = get(
        nginx,
        "demo.localhost",
        "/api/admin/users?x=http://h/public/",
        &[],
    )
    .unwrap();
    assert_eq!(r.status, 401, "{r:?}");
    // A path not in normal form is refused (gatehouse 400, which nginx answers with 500): the
    // app would have been given /api/admin//../../public/x as sent.
    let r = get(nginx, "demo.localhost", "/api/admin//../../public/x", &[]).unwrap();
    assert_eq!(r.status, 500, "{r:?}");
    // A client's own forwarded headers are overwritten by nginx.
    let r = get(
        nginx,
        "demo.localhost",
        "/api/admin/report",
        &[
            ("X-Forwarded-Uri", "/public/x"),
            ("X-Forwarded-Host", "other.localhost"),
        ],
    )
    .unwrap();
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(
        app.requests().len(),
        before,
        "refused requests never reach the app"
    );
    // White-listed paths pass without a token; a user token passes on a role-free route.
    assert_eq!(
        get(nginx, "demo.localhost", "/public/x", &[])
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        get(
            nginx,
            "demo.localhost",
            "/api/other",
            &[("Authorization", &bearer(&user))]
        )
        .unwrap()
        .status,
        200
    );
}
