//! TLS downstream (HTTP/2, SNI certificates, HTTPS redirects) and to upstreams.

use super::*;

fn curl(args: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(args)
        .output()
        .expect("curl is installed");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn tls_terminates_with_http2_sni_certificates_and_https_redirects() {
    let app = Upstream::start("app");
    let gw = Gateway::start("tls", |p, dir| {
        let (cert, key) = self_signed_cert(dir, "default", &["demo.localhost", "*.demo.localhost"]);
        let (other_cert, other_key) =
            self_signed_cert(dir, "other", &["other.localhost", "*.other.localhost"]);
        format!(
            r#"
listen: 127.0.0.1:{listen}
tls-listen: 127.0.0.1:{tls}
tls-cert: {cert}
tls-key: {key}
admin-listen: 127.0.0.1:{admin}
tenants:
  - name: demo
    hosts: [demo.localhost]
    enable-https-redirection: true
    upstreams:
      - name: app
        targets: ["{app}"]
    routes:
      - uri: /*
        white-listed: true
  - name: other
    hosts: [other.localhost]
    tls-cert: {other_cert}
    tls-key: {other_key}
    upstreams:
      - name: app
        targets: ["{app}"]
    routes:
      - uri: /*
        white-listed: true
"#,
            listen = p.listen,
            tls = p.tls,
            admin = p.admin,
            app = app.target()
        )
    });
    let tls = gw.tls.unwrap();
    let port = tls.port();
    let cacert = gw.dir.path().join("default.crt");
    let resolve = format!("demo.localhost:{port}:127.0.0.1");
    let url = format!("https://demo.localhost:{port}/h2/x?q=1");
    let (out, err) = curl(&[
        "-sS",
        "--http2",
        "--cacert",
        cacert.to_str().unwrap(),
        "--resolve",
        &resolve,
        "-o",
        "/dev/null",
        "-D",
        "-",
        "-w",
        "proto=%{http_version}\n",
        &url,
    ]);
    assert!(
        out.contains("proto=2"),
        "HTTP/2 negotiated by ALPN: {out} {err}"
    );
    assert!(
        out.to_lowercase()
            .contains("strict-transport-security: max-age=31536000"),
        "HSTS over TLS: {out}"
    );
    assert!(out.to_lowercase().contains("x-upstream: app"), "{out}");
    assert_eq!(
        app.last().unwrap().header("x-forwarded-proto"),
        Some("https")
    );
    assert_eq!(app.last().unwrap().target, "/h2/x?q=1");
    // HTTP/1.1 still works on the same listener.
    let (out, _) = curl(&[
        "-sS",
        "--http1.1",
        "--cacert",
        cacert.to_str().unwrap(),
        "--resolve",
        &resolve,
        "-o",
        "/dev/null",
        "-w",
        "%{http_version}",
        &url,
    ]);
    assert_eq!(out, "1.1");
    // SNI: the other tenant's own certificate.
    let other_ca = gw.dir.path().join("other.crt");
    let resolve_other = format!("other.localhost:{port}:127.0.0.1");
    let (out, err) = curl(&[
        "-sS",
        "--cacert",
        other_ca.to_str().unwrap(),
        "--resolve",
        &resolve_other,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("https://other.localhost:{port}/"),
    ]);
    assert_eq!(out, "200", "{err}");
    // TLS 1.0/1.1 refused.
    let (out, _) = curl(&[
        "-sS",
        "-k",
        "--tls-max",
        "1.1",
        "--resolve",
        &resolve,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &url,
    ]);
    assert_ne!(out, "200", "TLS 1.1 must be refused");
    // Plain HTTP to a tenant with enable-https-redirection: 308 to the TLS port.
    let r = gw.get("demo.localhost:8080", "/p/a?b=c");
    assert_eq!(r.status, 308);
    assert_eq!(
        r.header("location"),
        Some(format!("https://demo.localhost:{port}/p/a?b=c").as_str())
    );
    // A tenant without it is served over plain HTTP.
    assert_eq!(gw.get("other.localhost", "/x").status, 200);
}

#[test]
fn upstreams_over_tls_with_sni_and_http2() {
    // The TLS upstream is a second gatehouse terminating TLS (h2 by ALPN) in front of a plain
    // upstream; the gateway under test speaks TLS (and h2 where configured) to it.
    let app = Upstream::start("app");
    let edge = Gateway::start("tls-upstream", |p, dir| {
        let (cert, key) =
            self_signed_cert(dir, "up", &["backend.localhost", "*.backend.localhost"]);
        format!(
            r#"
listen: 127.0.0.1:{listen}
tls-listen: 127.0.0.1:{tls}
tls-cert: {cert}
tls-key: {key}
admin-listen: 127.0.0.1:{admin}
tenants:
  - name: backend
    hosts: [backend.localhost, demo.localhost]
    upstreams:
      - name: app
        targets: ["{app}"]
    routes:
      - uri: /*
        white-listed: true
"#,
            listen = p.listen,
            tls = p.tls,
            admin = p.admin,
            app = app.target()
        )
    });
    let backend_tls = edge.tls.unwrap();
    let front = Gateway::start("tls-front", |p, _| {
        format!(
            r#"
listen: 127.0.0.1:{listen}
admin-listen: 127.0.0.1:{admin}
tenants:
  - name: demo
    hosts: [demo.localhost]
    upstreams:
      - name: h1tls
        targets: ["{backend}"]
        tls: true
        sni: backend.localhost
        tls-verify: false
      - name: h2tls
        targets: ["{backend}"]
        tls: true
        h2: true
        sni: backend.localhost
        tls-verify: false
      - name: verified
        targets: ["{backend}"]
        tls: true
        sni: backend.localhost
    routes:
      - uri: /h1/*
        white-listed: true
        upstream: h1tls
      - uri: /h2/*
        white-listed: true
        upstream: h2tls
      - uri: /verified/*
        white-listed: true
        upstream: verified
"#,
            listen = p.listen,
            admin = p.admin,
            backend = backend_tls,
        )
    });
    let r = front.get("demo.localhost", "/h1/x");
    assert_eq!(
        (r.status, r.header("x-upstream")),
        (200, Some("app")),
        "{r:?}"
    );
    let seen = app.last().unwrap();
    assert_eq!(seen.target, "/h1/x");
    // The edge saw a TLS client: it sets X-Forwarded-Proto https for its own upstream.
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    let r = front.get("demo.localhost", "/h2/y");
    assert_eq!(
        (r.status, r.header("x-upstream")),
        (200, Some("app")),
        "{r:?}"
    );
    assert_eq!(app.last().unwrap().target, "/h2/y");
    // A self-signed upstream certificate fails verification unless tls-verify is off: the
    // request never reaches the upstream. Health checks do the same TLS handshake, so once they
    // ran the target is out (503); before that the handshake fails per request (502).
    let r = front.get("demo.localhost", "/verified/z");
    assert!(r.status == 502 || r.status == 503, "{r:?}");
    assert!(app.requests().iter().all(|s| s.target != "/verified/z"));
    assert!(r.header("x-request-id").is_some());
}
