//! Process lifecycle through the real binary: hot reload (good and bad configs) under traffic,
//! zero-downtime binary upgrade under traffic, graceful shutdown, and TLS with HTTP/2.
//!
//! This file: the shared config, reloads and draining; `readiness.rs`: readiness with a dead
//! pool or IdP; `signals.rs`: the access log on signals, daemon mode, the binary upgrade;
//! `tls.rs`: TLS downstream and upstream.

#[path = "../support/mod.rs"]
mod support;

mod readiness;
mod signals;
mod tls;

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
