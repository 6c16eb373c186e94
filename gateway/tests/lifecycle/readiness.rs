//! Readiness: a dead pool or an unreachable IdP of one tenant, and the first health-check round.

use super::*;

/// Two tenants: `good` (its own pool, no identity provider) and `bad` (its own pool and an
/// identity provider whose issuer nobody answers).
fn two_tenants(p: &Ports, dir: &Path, good: &str, bad: &str, dead_issuer: &str) -> String {
    format!(
        r#"
listen: 127.0.0.1:{listen}
admin-listen: 127.0.0.1:{admin}
threads: 2
upgrade-sock: {dir}/upgrade.sock
pid-file: {dir}/gatehouse.pid
watch-config: false
identity-providers:
  - name: unreachable
    issuer: {dead_issuer}
    client-id: gatehouse
    allow-insecure-http: true
tenants:
  - name: good
    hosts: [good.localhost]
    upstreams:
      - name: app
        targets: ["{good}"]
        health-check: {{ path: /health, interval: 300ms }}
    routes:
      - uri: /public/*
        white-listed: true
  - name: bad
    hosts: [bad.localhost]
    identity-provider: unreachable
    upstreams:
      - name: app
        targets: ["{bad}"]
        health-check: {{ path: /health, interval: 300ms }}
    routes:
      - uri: /public/*
        white-listed: true
      - uri: /*
"#,
        listen = p.listen,
        admin = p.admin,
        dir = dir.display(),
    )
}

#[test]
fn one_tenants_dead_pool_and_unreachable_idp_leave_the_process_ready() {
    let good = Upstream::start("good");
    let mut bad = Upstream::start("bad");
    let dead_issuer = format!("http://127.0.0.1:{}/realms/gone", free_port());
    let gw = Gateway::start("one-tenant-down", |p, dir| {
        two_tenants(p, dir, &good.target(), &bad.target(), &dead_issuer)
    });
    gw.wait_readiness("both pools up, the provider down", |status, text| {
        status == 200
            && text.contains("pool good/app: up, 1/1 targets healthy")
            && text.contains("pool bad/app: up, 1/1 targets healthy")
            && text.contains("identity-provider unreachable: down, no signing keys (last error:")
    });
    assert_eq!(gw.get("bad.localhost", "/public/x").status, 200);

    bad.kill();
    let text = gw.wait_readiness("bad/app down", |_, text| {
        text.contains("pool bad/app: down, 0/1 targets healthy")
    });
    // The status says the process serves; the verbose lines name the dead pool and provider.
    let plain = get(gw.admin, "admin", "/readyz", &[]).unwrap();
    assert_eq!((plain.status, plain.text().as_str()), (200, "ready\n"));
    let (status, verbose) = gw.readiness();
    assert_eq!(status, 200, "{verbose}");
    assert!(verbose.starts_with("ready\n"), "{verbose}");
    for line in [
        "pool good/app: up, 1/1 targets healthy",
        "pool bad/app: down, 0/1 targets healthy",
        "identity-provider unreachable: down, no signing keys (last error:",
    ] {
        assert!(
            verbose.contains(line),
            "missing {line:?} in:\n{verbose}\n(earlier: {text})"
        );
    }
    assert_eq!(verbose.lines().count(), 4, "{verbose}");
    // The other tenant keeps serving; the dead one answers 503 itself.
    assert_eq!(gw.get("good.localhost", "/public/x").status, 200);
    assert_eq!(gw.get("bad.localhost", "/public/x").status, 503);
    let metrics = get(gw.admin, "admin", "/metrics", &[]).unwrap().text();
    assert!(
        metrics.contains("gatehouse_upstream_healthy_targets{tenant=\"bad\",upstream=\"app\"} 0"),
        "{metrics}"
    );
}

#[test]
fn readyz_waits_only_for_the_first_health_check_round() {
    // Never accepts: the kernel completes the handshake, the HTTP check waits its whole timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let app = Upstream::start("app");
    let gw = Gateway::start("first-round", |p, dir| {
        format!(
            r#"
listen: 127.0.0.1:{listen}
admin-listen: 127.0.0.1:{admin}
upgrade-sock: {dir}/upgrade.sock
pid-file: {dir}/gatehouse.pid
watch-config: false
tenants:
  - name: demo
    hosts: [demo.localhost]
    upstreams:
      - name: app
        targets: ["{app}"]
        health-check: {{ path: /health, interval: 300ms }}
      - name: slow
        targets: ["{slow}"]
        health-check: {{ path: /health, interval: 300ms, timeout: 6s }}
    routes:
      - uri: /public/*
        white-listed: true
"#,
            listen = p.listen,
            admin = p.admin,
            dir = dir.display(),
            app = app.target(),
            slow = silent.local_addr().unwrap(),
        )
    });
    // Until every pool has finished one round, the pod is not ready and says why.
    let (status, text) = gw.readiness();
    assert_eq!(status, 503, "{text}");
    assert!(
        text.starts_with("starting: first health checks not finished\n"),
        "{text}"
    );
    assert!(
        text.contains("pool demo/slow: pending, first health check not finished, 1 targets"),
        "{text}"
    );
    let plain = get(gw.admin, "admin", "/readyz", &[]).unwrap();
    assert_eq!(plain.status, 503);
    assert!(
        plain.text().contains("pool demo/slow: pending"),
        "{}",
        plain.text()
    );
    // The round ends with the check's timeout: ready, the pool down.
    gw.wait_readiness("ready with demo/slow down", |status, text| {
        status == 200
            && text.contains("pool demo/slow: down, 0/1 targets healthy")
            && text.contains("pool demo/app: up, 1/1 targets healthy")
    });
    assert_eq!(gw.get("demo.localhost", "/public/x").status, 200);
    drop(silent);
}
