//! Every shipped dashboard and rule expression (`deploy/grafana`, `deploy/prometheus`)
//! evaluated by a real Prometheus scraping the real gateway.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::login::Browser;
use crate::support::*;
use crate::{bad_signature, bearer, start_with, unknown_kid, MEMORY_STORE};

/// `name` on PATH (or in /usr/bin, where Debian installs prometheus and promtool).
pub(crate) fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The python of the project's Python-tools venv (`scripts/python-venv.sh`: `$GATEHOUSE_VENV`,
/// default `~/.cache/gatehouse-venv`), when it has matplotlib for `plot_latency.py`.
fn venv_python_with_matplotlib() -> Option<PathBuf> {
    let venv = std::env::var_os("GATEHOUSE_VENV")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/gatehouse-venv"))
        })?;
    let python = venv.join("bin/python");
    let ok = Command::new(&python)
        .args(["-c", "import matplotlib"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(python)
}

pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// The rule files CI and operators load: every `deploy/prometheus/*.yml`.
fn rule_files() -> Vec<PathBuf> {
    let dir = repo_root().join("deploy/prometheus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no rule files in {}", dir.display());
    files
}

/// `name` on PATH, or a skip (a failure under CI) naming `test`.
pub(crate) fn tool(test: &str, name: &str) -> Option<PathBuf> {
    let found = which(name);
    if found.is_none() {
        skip_or_fail(
            test,
            &format!("`{name}` is not installed (Debian: apt-get install -y prometheus)"),
        );
    }
    found
}

/// A real Prometheus on a loopback port with its data in a temp dir; stopped on drop.
pub(crate) struct Prometheus {
    child: Child,
    pub(crate) url: String,
    log_path: PathBuf,
    _dir: TempDir,
}

impl Prometheus {
    pub(crate) fn start(
        bin: &Path,
        scrape: std::net::SocketAddr,
        rule_files: &[PathBuf],
    ) -> Prometheus {
        let dir = TempDir::new("prometheus");
        let port = free_port();
        let rules: Vec<String> = rule_files
            .iter()
            .map(|p| format!("\"{}\"", p.display()))
            .collect();
        let config = format!(
            r#"
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [{rules}]
scrape_configs:
  - job_name: gatehouse
    static_configs:
      - targets: ["{scrape}"]
"#,
            rules = rules.join(", ")
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        let log_path = dir.path().join("prometheus.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let p = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log_path,
            _dir: dir,
        };
        let addr = format!("127.0.0.1:{port}").parse().unwrap();
        let ready = wait_until(Duration::from_secs(30), || {
            get(addr, "127.0.0.1", "/-/ready", &[]).is_ok_and(|r| r.status == 200)
        });
        assert!(ready, "prometheus did not become ready; log:\n{}", p.log());
        p
    }

    /// The value of `query` now (its first series), if any.
    pub(crate) fn query(&self, query: &str) -> Option<f64> {
        let addr = self.url.trim_start_matches("http://").parse().unwrap();
        let path = format!("/api/v1/query?query={}", percent(query));
        let r = get(addr, "127.0.0.1", &path, &[]).ok()?;
        let body: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
        let value = &body["data"]["result"][0]["value"][1];
        value.as_str()?.parse().ok()
    }

    /// Waits until Prometheus has scraped the gateway once, so every later change is seen as
    /// one (a counter already moved at the first scrape shows no rate).
    pub(crate) fn wait_scraped(&self) {
        let scraped = wait_until(Duration::from_secs(20), || {
            self.query(r#"up{job="gatehouse"}"#) == Some(1.0)
        });
        assert!(
            scraped,
            "prometheus never scraped the gateway; log:\n{}",
            self.log()
        );
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        signal_pid(self.child.id(), "TERM");
        if !wait_until(Duration::from_secs(10), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        }) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// `s` percent-encoded for a query string.
fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Runs a command from the repository root: (success, stdout + stderr).
pub(crate) fn run(program: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn prometheus_evaluates_every_dashboard_and_rule_expression() {
    let Some(prometheus) = tool(
        "prometheus_evaluates_every_dashboard_and_rule_expression",
        "prometheus",
    ) else {
        return;
    };
    let promtool = which("promtool").expect("promtool (installed with prometheus)");
    let python = which("python3").expect("python3 runs testing/prometheus/*.py");

    // The rule files are valid Prometheus 2 rule files.
    let files: Vec<String> = rule_files()
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let mut args = vec!["check", "rules"];
    args.extend(files.iter().map(String::as_str));
    let (ok, out) = run(&promtool, &args);
    assert!(ok, "promtool check rules failed:\n{out}");

    // Traces go to a real OTLP/HTTP receiver (the tracing panel), one request in ten.
    let collector = crate::support::otlp::Collector::start();
    let tracing = format!(
        "tracing:\n  otlp-endpoint: {}\n  sampling-ratio: 0.1",
        collector.endpoint()
    );
    let (idp, _app, gw) = start_with("prometheus", MEMORY_STORE, &[], &tracing);
    let prom = Prometheus::start(&prometheus, gw.admin, &rule_files());
    prom.wait_scraped();

    // Browser sessions: one stays, one logs out at the end; a request held open (its body
    // never sent) keeps one request in flight while the panels are checked.
    let stays = Browser::new(gw.listen);
    let leaves = Browser::new(gw.listen);
    for b in [&stays, &leaves] {
        let page = b.login_from("/app/page", "alice", "alice-password", false);
        assert_eq!(page.status, 200, "login: {page:?}");
    }
    let mut held = std::net::TcpStream::connect(gw.listen).unwrap();
    std::io::Write::write_all(
        &mut held,
        b"POST /public/held HTTP/1.1\r\nHost: demo.localhost\r\nContent-Length: 100\r\n\r\n",
    )
    .unwrap();

    // ~15 s of mixed traffic (bounded): allowed, cached, refused, forged, unknown host, bad
    // path, 503 and over a rate limit (its one request an hour spent here), so every family
    // and label the panels and rules read has data.
    let first = gw.get_with("demo.localhost", "/limited/x", &[]);
    assert_eq!(
        first.status, 200,
        "the rate-limited route's one request: {first:?}"
    );
    let admin = idp.token("svc-admin");
    let user = idp.token("svc-user");
    let (bad_sig, bad_kid) = (bad_signature(&admin), unknown_kid(&admin));
    let h = "demo.localhost";
    let plan: Vec<(&str, &str, Option<&str>, u16)> = vec![
        (h, "/public/hello", None, 200),
        (h, "/api/admin/x", Some(admin.as_str()), 200),
        (h, "/api/things", Some(user.as_str()), 200),
        (h, "/api/things", None, 401),
        (h, "/api/admin/x", Some(user.as_str()), 403),
        (h, "/api/admin/x", Some(bad_sig.as_str()), 401),
        (h, "/api/admin/x", Some(bad_kid.as_str()), 401),
        ("nobody.example", "/", None, 404),
        (h, "/public/a%2Fb", None, 400),
        (h, "/down/x", None, 503),
        (h, "/limited/x", None, 429),
    ];
    let session = stays.cookies();
    let started = Instant::now();
    let mut sent = 0;
    for round in 0..300 {
        if started.elapsed() >= Duration::from_secs(15) {
            break;
        }
        for (host, path, token, want) in &plan {
            let header = token.map(bearer);
            let extra: Vec<(&str, &str)> = header
                .iter()
                .map(|v| ("Authorization", v.as_str()))
                .collect();
            let r = gw.get_with(host, path, &extra);
            assert_eq!(r.status, *want, "round {round}: {host}{path}: {}", r.text());
            sent += 1;
        }
        let r = gw.get_with(h, "/app/page", &[("Cookie", &session)]);
        assert_eq!(r.status, 200, "round {round}: the session: {}", r.text());
        if round == 20 {
            gw.signal("HUP"); // a reload, for the reload panels
        }
        if round % 10 == 0 {
            // 41 connections from 127.0.0.2 against max-connections-per-ip 40: the last one is
            // closed at once (the connection-limit panel); held a moment so it is accepted
            // while the 40 are open.
            let many: Vec<_> = (0..41)
                .map(|_| socket_from("127.0.0.2", gw.listen))
                .collect();
            std::thread::sleep(Duration::from_millis(200));
            drop(many);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("sent {sent} requests in {:?}", started.elapsed());
    assert!(
        wait_until(Duration::from_secs(10), || !collector.spans().is_empty()),
        "no span reached the OTLP receiver; log:\n{}",
        gw.log()
    );
    let out = leaves.get("/oauth/logout");
    assert!(out.status == 302 || out.status == 303, "logout: {out:?}");
    // A WebSocket handshake upgraded and held open while the panels are checked (the
    // upgraded-connections panel).
    let mut upgraded = std::net::TcpStream::connect(gw.listen).unwrap();
    upgraded
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    std::io::Write::write_all(
        &mut upgraded,
        b"GET /ws/x HTTP/1.1\r\nHost: demo.localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .unwrap();
    let mut head = [0u8; 12];
    std::io::Read::read_exact(&mut upgraded, &mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 101", "the upgrade was answered");

    // Every panel, variable and rule expression returns data (alerts in their bool form), and
    // every panel data that moved, but the fault panels (moved by the alerts test).
    let script = repo_root().join("testing/prometheus/promql.py");
    let fault_panels = repo_root().join("testing/prometheus/fault-panels.txt");
    let (ok, out) = run(
        &python,
        &[
            script.to_str().unwrap(),
            "check",
            "--prometheus",
            &prom.url,
            "--allow-flat-file",
            fault_panels.to_str().unwrap(),
            "--wait",
            "30",
            "--verbose",
        ],
    );
    drop(held);
    drop(upgraded);
    println!("{out}");
    assert!(
        ok,
        "expressions without data (or invalid):\n{out}\nprometheus log:\n{}",
        prom.log()
    );

    // The latency panel plots into a PNG (matplotlib, from the Python tools' venv).
    let Some(plot_python) = venv_python_with_matplotlib() else {
        skip_or_fail(
            "prometheus_evaluates_every_dashboard_and_rule_expression (the latency plot)",
            "the Python tools' venv with matplotlib is missing: run ./scripts/install-deps.sh",
        );
        return;
    };
    let out_dir = TempDir::new("plot");
    let png = out_dir.path().join("latency.png");
    let script = repo_root().join("testing/prometheus/plot_latency.py");
    let (ok, out) = run(
        &plot_python,
        &[
            script.to_str().unwrap(),
            "--prometheus",
            &prom.url,
            "--since",
            "2m",
            "--out",
            png.to_str().unwrap(),
        ],
    );
    assert!(ok, "plot_latency.py failed:\n{out}");
    let bytes = std::fs::read(&png).expect("the PNG was written");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&bytes[12..16], b"IHDR");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert!(width >= 400 && height >= 200, "{width}x{height}");
    assert!(
        bytes.len() > 4000,
        "a plot, not a blank image: {} bytes",
        bytes.len()
    );
    assert_eq!(&bytes[bytes.len() - 8..bytes.len() - 4], b"IEND");
}

#[test]
fn every_alert_threshold_passes_its_promtool_unit_test() {
    let test = "every_alert_threshold_passes_its_promtool_unit_test";
    let Some(promtool) = tool(test, "promtool") else {
        return;
    };
    let python = which("python3").expect("python3 runs testing/prometheus/*.py");
    let script = repo_root().join("testing/prometheus/rulefiles.py");
    let (ok, out) = run(
        &python,
        &[
            script.to_str().unwrap(),
            "unit",
            "--promtool",
            promtool.to_str().unwrap(),
        ],
    );
    assert!(ok && out.contains("SUCCESS"), "promtool test rules:\n{out}");
    // Every alert has a unit test.
    let tests = std::fs::read_to_string(
        repo_root().join("deploy/prometheus/tests/alerting-rules.test.yml"),
    )
    .unwrap();
    let rules =
        std::fs::read_to_string(repo_root().join("deploy/prometheus/alerting-rules.yml")).unwrap();
    for alert in rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
    {
        assert!(
            tests.contains(&format!("alertname: {alert}\n")),
            "alert {alert} has no promtool unit test"
        );
    }
}

/// The panel check fails on a panel whose every value is 0 (or NaN), and passes it when the
/// panel is listed as a fault panel: a real Prometheus evaluates both.
#[test]
fn the_panel_check_fails_a_panel_that_returns_only_zeros() {
    let test = "the_panel_check_fails_a_panel_that_returns_only_zeros";
    let Some(prometheus) = tool(test, "prometheus") else {
        return;
    };
    let python = which("python3").expect("python3 runs testing/prometheus/*.py");
    let dir = TempDir::new("flat-panels");
    let dashboard = dir.path().join("flat.json");
    let panel = |id: u32, title: &str, expr: &str| {
        serde_json::json!({"id": id, "type": "timeseries", "title": title,
            "targets": [{"expr": expr, "refId": "A"}]})
    };
    std::fs::write(
        &dashboard,
        serde_json::json!({"panels": [
            panel(1, "Zeros", "vector(0)"),
            panel(2, "NaN", "vector(0) / 0"),
            panel(3, "Moved", "vector(2)"),
        ]})
        .to_string(),
    )
    .unwrap();
    let no_rules: [PathBuf; 0] = [];
    let empty_rules = dir.path().join("none.yml");
    std::fs::write(&empty_rules, "groups: []\n").unwrap();
    let prom = Prometheus::start(
        &prometheus,
        format!("127.0.0.1:{}", free_port()).parse().unwrap(),
        &no_rules,
    );
    let script = repo_root().join("testing/prometheus/promql.py");
    let check = |extra: &[&str]| {
        let mut args = vec![
            script.to_str().unwrap(),
            "check",
            "--prometheus",
            &prom.url,
            "--dashboard",
            dashboard.to_str().unwrap(),
            "--rules",
            empty_rules.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        run(&python, &args)
    };
    let (ok, out) = check(&[]);
    assert!(!ok, "a flat panel must fail the check:\n{out}");
    assert!(
        out.contains("FLAT          ") && out.contains("Zeros [A]") && out.contains("NaN [A]"),
        "{out}"
    );
    assert!(
        out.contains("OK            ") && out.contains("Moved [A]"),
        "{out}"
    );
    let allow = dir.path().join("faults.txt");
    let id = |title: &str| format!("{} :: {title} [A]", dashboard.display());
    std::fs::write(&allow, format!("{}\n{}\n", id("Zeros"), id("NaN"))).unwrap();
    let (ok, out) = check(&["--allow-flat-file", allow.to_str().unwrap()]);
    assert!(ok, "listed fault panels may be flat:\n{out}");
    let (ok, out) = check(&["--only-file", allow.to_str().unwrap()]);
    assert!(!ok, "a fault panel must move in its fault scenario:\n{out}");
}
