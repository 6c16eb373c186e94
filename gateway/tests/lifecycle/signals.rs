//! The access log on SIGTERM and SIGINT, a daemonized gateway, and the binary upgrade.

use super::*;

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
