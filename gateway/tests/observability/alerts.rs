//! The store and IdP alerts go to firing on a real Prometheus when a Redis master dies and the
//! IdP answers 503, and resolve once both recover; the dashboard's fault panels move then.
//!
//! Prometheus loads the shipped rule files time-scaled by `testing/prometheus/rulefiles.py
//! scale` (ranges / 30, `for` / 60; thresholds untouched) and evaluates them every second, so a
//! 5-minute alert fires in seconds; `every_alert_threshold_passes_its_promtool_unit_test`
//! proves the unscaled thresholds and windows.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse_test_support::redis;

use crate::prometheus::{repo_root, run, tool, which, Prometheus};
use crate::scrape::Scrape;
use crate::support::login::Browser;
use crate::support::*;
use crate::{assert_eventually, start_with};

/// The alerts these faults must fire.
const EXPECTED: [&str; 3] = [
    "GatehouseSessionStoreErrors",
    "GatehouseIdpErrors",
    "GatehouseJwksRefreshFailing",
];

impl Prometheus {
    /// The alerts now pending or firing: (name, state).
    fn alerts(&self) -> Vec<(String, String)> {
        let addr = self.url.trim_start_matches("http://").parse().unwrap();
        let Ok(r) = get(addr, "127.0.0.1", "/api/v1/alerts", &[]) else {
            return Vec::new();
        };
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        body["data"]["alerts"]
            .as_array()
            .map(|alerts| {
                alerts
                    .iter()
                    .map(|a| {
                        (
                            a["labels"]["alertname"].as_str().unwrap_or("").to_string(),
                            a["state"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[test]
fn alerts_fire_and_resolve_on_a_real_prometheus() {
    let test = "alerts_fire_and_resolve_on_a_real_prometheus";
    let Some(prometheus) = tool(test, "prometheus") else {
        return;
    };
    let python = which("python3").expect("python3 runs testing/prometheus/*.py");
    let cluster = redis::Cluster::start();
    // Every request reads the store (no local cache) and fails closed when it cannot.
    let store = format!(
        "  url: {}\n  local-cache-ttl: 0s\n  on-unavailable: fail-closed\n  timeout: 200ms",
        cluster.url()
    );
    let (idp, _app, gw) = start_with("alerts", &store, &[], "");

    let rules = TempDir::new("scaled-rules");
    let script = repo_root().join("testing/prometheus/rulefiles.py");
    let (ok, out) = run(
        &python,
        &[
            script.to_str().unwrap(),
            "scale",
            "--factor",
            "30",
            "--for-factor",
            "60",
            "--out",
            rules.path().to_str().unwrap(),
        ],
    );
    assert!(ok, "rulefiles.py scale: {out}");
    let files: Vec<PathBuf> = out.lines().map(PathBuf::from).collect();
    assert_eq!(files.len(), 2, "{out}");
    let prom = Prometheus::start(&prometheus, gw.admin, &files);
    prom.wait_scraped();

    // Sessions spread over the three masters (15 of them: one on the killed master is all
    // but certain), each read from the store on every request.
    let cookies: Vec<String> = (0..15)
        .map(|i| {
            let b = Browser::new(gw.listen);
            let page = b.login_from("/app/page", "alice", "alice-password", false);
            assert_eq!(page.status, 200, "login {i}: {page:?}");
            b.cookies()
        })
        .collect();
    assert!(
        cluster.wait_replicated(Duration::from_secs(10)),
        "replicas caught up"
    );
    // The periodic count (a paced SCAN on every master) finds exactly these sessions.
    let active = || Scrape::fetch(&gw).value("gatehouse_sessions_active", &[]);
    assert_eventually!(
        Duration::from_secs(15),
        || active() == Some(15.0),
        "gatehouse_sessions_active = {:?}, expected the 15 sessions on Redis",
        active()
    );
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let (stop, addr) = (Arc::clone(&stop), gw.listen);
        std::thread::spawn(move || {
            let mut statuses = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) && statuses.len() < 100_000 {
                let cookie = &cookies[i % cookies.len()];
                let status = get(addr, "demo.localhost", "/app/page", &[("Cookie", cookie)])
                    .map(|r| r.status)
                    .unwrap_or(0);
                statuses.push(status);
                i += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            statuses
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    let no_alert_before = prom.alerts();
    assert!(
        no_alert_before
            .iter()
            .all(|(name, _)| !EXPECTED.contains(&name.as_str())),
        "none of the fault alerts before the faults: {no_alert_before:?}"
    );

    // The faults: a Redis master dies (a replica takes over within seconds) and the IdP
    // answers 503 to everything until told otherwise.
    let faults_at = Instant::now();
    let dead = cluster.kill_a_master();
    idp.outage(true);
    let mut fired = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while fired.len() < EXPECTED.len() && Instant::now() < deadline {
        for (name, state) in prom.alerts() {
            if state == "firing" && EXPECTED.contains(&name.as_str()) && fired.insert(name.clone())
            {
                println!("{name} firing {:?} after the faults", faults_at.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // The fault panels moved: checked while the faults are fresh in their rate windows.
    let fault_panels = repo_root().join("testing/prometheus/fault-panels.txt");
    let check = repo_root().join("testing/prometheus/promql.py");
    let (panels_ok, panels) = run(
        &python,
        &[
            check.to_str().unwrap(),
            "check",
            "--prometheus",
            &prom.url,
            "--only-file",
            fault_panels.to_str().unwrap(),
            "--wait",
            "10",
            "--verbose",
        ],
    );
    println!("{panels}");
    let missing: Vec<&str> = EXPECTED
        .iter()
        .copied()
        .filter(|a| !fired.contains(*a))
        .collect();
    assert!(
        missing.is_empty(),
        "alerts that never fired within 60 s: {missing:?}; alerts now: {:?}\n/metrics:\n{}",
        prom.alerts(),
        Scrape::fetch(&gw).text
    );
    assert!(panels_ok, "fault panels that did not move:\n{panels}");

    // Recovery: the IdP answers again and the cluster has failed over; every alert resolves.
    idp.outage(false);
    assert!(
        cluster.wait_failover(dead, Duration::from_secs(20)),
        "a replica took over"
    );
    let recovered_at = Instant::now();
    let resolved = wait_until(Duration::from_secs(120), || {
        prom.alerts()
            .iter()
            .all(|(name, _)| !EXPECTED.contains(&name.as_str()))
    });
    stop.store(true, Ordering::Relaxed);
    let statuses = traffic.join().unwrap();
    assert!(
        resolved,
        "alerts still active {:?} after recovery: {:?}",
        recovered_at.elapsed(),
        prom.alerts()
    );
    println!(
        "resolved {:?} after recovery; {} session requests, statuses {:?}",
        recovered_at.elapsed(),
        statuses.len(),
        statuses.iter().collect::<BTreeSet<_>>()
    );
    assert!(
        statuses.iter().all(|s| *s != 0 && (*s < 500 || *s == 503)),
        "a dead master or IdP never makes the gateway fail other than 503 (fail-closed)"
    );
    assert_eq!(
        get(gw.listen, "demo.localhost", "/public/after", &[])
            .map(|r| r.status)
            .unwrap_or(0),
        200
    );
}
