//! Process lifecycle through the real binary: hot reload (good and bad configs) under traffic,
//! zero-downtime binary upgrade under traffic, graceful shutdown, and TLS with HTTP/2.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::*;

fn config(p: &Ports, dir: &Path, target: &str, extra_route: &str) -> String {
    format!(
        r#"
listen: 127.0.0.1:{listen}
admin-listen: 127.0.0.1:{admin}
threads: 2
grace-period: 1s
graceful-shutdown-timeout: 2s
upgrade-sock: {dir}/upgrade.sock
pid-file: {dir}/gatehouse.pid
watch-config: false
tenants:
  - name: demo
    hosts: [demo.localhost]
    upstreams:
      - name: app
        targets: ["{target}"]
        health-check: {{ path: /health, interval: 300ms }}
    routes:
      - uri: /public/*
        white-listed: true
{extra_route}
"#,
        listen = p.listen,
        admin = p.admin,
        dir = dir.display(),
    )
}

fn reload_count(gw: &Gateway, result: &str) -> u64 {
    let m = get(gw.admin, "admin", "/metrics", &[]).unwrap().text();
    let key = format!("gatehouse_config_reload_total{{result=\"{result}\"}} ");
    m.lines()
        .find_map(|l| l.strip_prefix(&key))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0)
}

#[test]
fn reload_swaps_good_configs_and_refuses_bad_ones_under_traffic() {
    let a = Upstream::start("a");
    let b = Upstream::start("b");
    let gw = Gateway::start("reload", |p, dir| config(p, dir, &a.target(), ""));
    gw.wait_ready();
    let p = Ports {
        listen: gw.listen.port(),
        admin: gw.admin.port(),
        tls: 0,
    };
    let load = Load::start(gw.listen, "demo.localhost", "/public/load", 8, 5_000);

    // Good config: new upstream and a new white-listed route.
    std::fs::write(
        &gw.config_path,
        config(
            &p,
            gw.dir.path(),
            &b.target(),
            "      - uri: /new/*\n        white-listed: true\n",
        ),
    )
    .unwrap();
    gw.signal("HUP");
    assert_eventually!(
        Duration::from_secs(10),
        || gw.get("demo.localhost", "/new/x").status == 200,
        "reloaded route serves"
    );
    assert_eventually!(
        Duration::from_secs(5),
        || gw.get("demo.localhost", "/public/x").header("x-upstream") == Some("b"),
        "traffic moves to the new upstream"
    );
    assert_eq!(reload_count(&gw, "success"), 2, "start + one reload");

    // Bad config: refused; the previous one keeps serving.
    std::fs::write(
        &gw.config_path,
        "tenants:\n  - name: demo\n    hosts: [demo.localhost]\n    bogus-key: 1\n",
    )
    .unwrap();
    gw.signal("HUP");
    assert_eventually!(
        Duration::from_secs(10),
        || reload_count(&gw, "failure") == 1,
        "bad reload counted"
    );
    assert!(
        gw.log().contains("bogus-key"),
        "the refusal names the key: {}",
        gw.log()
    );
    assert_eq!(gw.get("demo.localhost", "/new/x").status, 200);
    assert_eq!(
        gw.get("demo.localhost", "/public/x").header("x-upstream"),
        Some("b")
    );

    std::thread::sleep(Duration::from_millis(300));
    let (statuses, errors) = load.finish();
    assert!(
        errors.is_empty(),
        "failed requests during reloads: {errors:?}"
    );
    let total: usize = statuses.values().sum();
    assert_eq!(
        statuses.get(&200).copied().unwrap_or(0),
        total,
        "non-200 during reloads: {statuses:?}"
    );
    assert!(total > 50, "the load actually ran: {statuses:?}");
}

#[test]
fn sigterm_drains_in_flight_requests() {
    let app = Upstream::start("app");
    let mut gw = Gateway::start("drain", |p, dir| config(p, dir, &app.target(), ""));
    gw.wait_ready();
    let load = Load::start(gw.listen, "demo.localhost", "/public/drain", 4, 2_000);
    std::thread::sleep(Duration::from_millis(300));
    gw.signal("TERM");
    let exited = wait_until(Duration::from_secs(15), || {
        matches!(gw.child.try_wait(), Ok(Some(_)))
    });
    assert!(exited, "gatehouse did not stop on SIGTERM");
    let (statuses, _errors) = load.finish();
    // Connections refused after the listener closed are expected; responses must all be 200.
    assert!(statuses.keys().all(|&s| s == 200), "{statuses:?}");
    assert!(statuses.get(&200).copied().unwrap_or(0) > 10);
}

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

/// Starts a gateway whose grace period is zero (it stops right after the signal), sends
/// `requests` requests with known IDs, signals `signal`, and returns the IDs the access log
/// (stdout, in the log file) holds once the process has exited.
fn logged_after_signal(tag: &str, signal: &str, requests: usize) -> (Vec<String>, Vec<String>) {
    let app = Upstream::start("app");
    let mut gw = Gateway::start(tag, |p, dir| {
        config(p, dir, &app.target(), "").replace("grace-period: 1s", "grace-period: 0s")
    });
    gw.wait_ready();
    let sent: Vec<String> = (0..requests).map(|i| format!("{tag}-{i}")).collect();
    for id in &sent {
        let r = gw.get_with("demo.localhost", "/public/logged", &[("X-Request-ID", id)]);
        assert_eq!(r.status, 200);
    }
    gw.signal(signal);
    let exited = wait_until(Duration::from_secs(15), || {
        matches!(gw.child.try_wait(), Ok(Some(_)))
    });
    assert!(exited, "gatehouse did not stop on SIG{signal}");
    let logged = gw
        .log()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["request_id"].as_str().map(str::to_string))
        .collect();
    (sent, logged)
}

#[test]
fn the_access_log_keeps_the_last_lines_on_sigterm_and_sigint() {
    // Several rounds: without the final flush, each round loses its last lines whenever the
    // process exits before the writer's next collection.
    for round in 0..3 {
        for signal in ["TERM", "INT"] {
            let tag = format!("log-{signal}-{round}").to_lowercase();
            let (mut sent, mut logged) = logged_after_signal(&tag, signal, 20);
            // Each proxy thread buffers its own lines: compare as sets.
            sent.sort();
            logged.sort();
            assert_eq!(logged, sent, "SIG{signal}, round {round}");
        }
    }
}

#[test]
fn a_daemonized_gateway_writes_its_access_log() {
    let app = Upstream::start("app");
    let dir = TempDir::new("daemon");
    let ports = Ports {
        listen: free_port(),
        admin: free_port(),
        tls: 0,
    };
    let config_path = dir.path().join("gatehouse.yaml");
    let config_text = config(&ports, dir.path(), &app.target(), "")
        .replace("grace-period: 1s", "grace-period: 0s");
    std::fs::write(&config_path, config_text).unwrap();
    let log_path = dir.path().join("gatehouse.log");
    let mut parent = Command::new(binary())
        .args(["run", "--daemon", "--config"])
        .arg(&config_path)
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&log_path).unwrap())
        .stderr(
            std::fs::File::options()
                .append(true)
                .open(&log_path)
                .unwrap(),
        )
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    // The parent returns once it has forked; the daemon writes its pid file.
    let pid_file = dir.path().join("gatehouse.pid");
    let pid = || {
        std::fs::read_to_string(&pid_file)
            .ok()?
            .trim()
            .parse::<u32>()
            .ok()
    };
    assert_eventually!(
        Duration::from_secs(20),
        || pid().is_some()
            && get(
                format!("127.0.0.1:{}", ports.admin).parse().unwrap(),
                "admin",
                "/healthz",
                &[]
            )
            .is_ok(),
        "the daemon did not start; log:\n{}",
        log()
    );
    let _ = parent.wait();
    let pid = pid().unwrap();
    let listen = format!("127.0.0.1:{}", ports.listen).parse().unwrap();
    for i in 0..5 {
        let id = format!("daemon-{i}");
        let r = get(
            listen,
            "demo.localhost",
            "/public/d",
            &[("X-Request-ID", &id)],
        )
        .unwrap();
        assert_eq!(r.status, 200);
    }
    signal_pid(pid, "TERM");
    let alive = || {
        Command::new("kill")
            .args(["-0", &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success())
    };
    assert_eventually!(
        Duration::from_secs(15),
        || !alive(),
        "the daemon did not stop"
    );
    let mut logged: Vec<String> = log()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["request_id"].as_str().map(str::to_string))
        .collect();
    logged.sort();
    assert_eq!(
        logged,
        ["daemon-0", "daemon-1", "daemon-2", "daemon-3", "daemon-4"],
        "log:\n{}",
        log()
    );
}

#[test]
fn binary_upgrade_hands_over_listeners_without_failing_requests() {
    let app = Upstream::start("app");
    let gw = Gateway::start("upgrade", |p, dir| config(p, dir, &app.target(), ""));
    gw.wait_ready();
    let load = Load::start(gw.listen, "demo.localhost", "/public/up", 8, 10_000);
    std::thread::sleep(Duration::from_millis(400));

    // The new process waits for the sockets; SIGQUIT makes the old one hand them over and drain.
    let log2 = gw.dir.path().join("gatehouse-new.log");
    let mut new = spawn_gateway(&gw.config_path, &log2, true);
    std::thread::sleep(Duration::from_millis(500));
    let old_pid = gw.child.id();
    gw.signal("QUIT");
    let mut old = gw;
    let old_exited = wait_until(Duration::from_secs(20), || {
        matches!(old.child.try_wait(), Ok(Some(_)))
    });
    assert!(old_exited, "the old process did not exit after the upgrade");
    // The new one serves.
    let r = get(old.listen, "demo.localhost", "/public/after", &[]).unwrap();
    assert_eq!(r.status, 200);
    std::thread::sleep(Duration::from_millis(300));
    let (statuses, errors) = load.finish();
    let log_new = std::fs::read_to_string(&log2).unwrap_or_default();
    assert!(
        errors.is_empty(),
        "requests failed during the upgrade: {errors:?}\nnew log:\n{log_new}"
    );
    let total: usize = statuses.values().sum();
    assert_eq!(
        statuses.get(&200).copied().unwrap_or(0),
        total,
        "{statuses:?}"
    );
    assert!(total > 100, "the load ran across the upgrade: {statuses:?}");
    assert_ne!(new.id(), old_pid);
    signal_pid(new.id(), "TERM");
    let _ = wait_until(Duration::from_secs(10), || {
        matches!(new.try_wait(), Ok(Some(_)))
    });
    let _ = new.kill();
    let _ = new.wait();
}

fn make_cert(dir: &Path, name: &str, cn: &str) -> (String, String) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let status = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        ])
        .arg(format!("/CN={cn}"))
        .arg("-addext")
        .arg(format!("subjectAltName=DNS:{cn},DNS:*.{cn}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success());
    (cert.display().to_string(), key.display().to_string())
}

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
        let (cert, key) = make_cert(dir, "default", "demo.localhost");
        let (other_cert, other_key) = make_cert(dir, "other", "other.localhost");
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
        let (cert, key) = make_cert(dir, "up", "backend.localhost");
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
