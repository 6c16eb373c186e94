//! CORS and the forward-auth endpoint through the real binary, including forward-auth behind a
//! real nginx `auth_request` (Debian's nginx, started by the test on loopback).

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::idp::Idp;
use support::*;

fn config(p: &Ports, app: &Upstream, issuer: &str) -> String {
    format!(
        r#"
listen: 127.0.0.1:{listen}
admin-listen: 127.0.0.1:{admin}
trusted-proxies: [127.0.0.1/32]
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
    // The original URI is normalized like any request path; bypass shapes do not work.
    assert_eq!(
        check(
            "127.0.0.1",
            "GET",
            "/public/../api/admin/users",
            Some(&user)
        )
        .status,
        403
    );
    assert_eq!(
        check("127.0.0.1", "GET", "/public/%2e%2e/api/admin/users", None).status,
        401
    );
    assert_eq!(
        check("127.0.0.1", "GET", "/public/..%2fapi/admin", None).status,
        403,
        "refused shapes are a 403 here"
    );
    // X-Original-URL as an absolute URL (nginx style).
    let raw = format!("GET /oauth/auth HTTP/1.1\r\nHost: demo.localhost\r\nX-Original-Method: GET\r\nX-Original-URL: http://demo.localhost/api/admin/x\r\nAuthorization: Bearer {user}\r\nConnection: close\r\n\r\n");
    assert_eq!(
        request_on(socket_from("127.0.0.1", gw.listen), &raw).status,
        403
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
}

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_nginx(dir: &Path, port: u16, gateway: std::net::SocketAddr, app: &Upstream) -> Nginx {
    let d = dir.display();
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
    location / {{
      auth_request /_gatehouse_auth;
      auth_request_set $auth_userid $upstream_http_x_auth_userid;
      auth_request_set $auth_roles $upstream_http_x_auth_roles;
      proxy_set_header X-Auth-Userid $auth_userid;
      proxy_set_header X-Auth-Roles $auth_roles;
      proxy_pass http://{app};
    }}
    location = /_gatehouse_auth {{
      internal;
      proxy_pass http://{gateway}/oauth/auth;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-Method $request_method;
      proxy_set_header X-Forwarded-Uri $request_uri;
    }}
  }}
}}
"#,
        app = app.target()
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
