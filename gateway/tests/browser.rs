//! Browser login end to end: headless Chromium (Debian's `chromium`, driven by
//! `testing/browser/e2e.mjs` through `playwright-core`) logs in through the real gateway at the
//! real test OpenID provider, keeps its session, reads `/oauth/userinfo`, logs out at the gateway
//! and at the IdP, and is asked to log in again. And the login paths' refusals, each counted in
//! `gatehouse_denials_total` under its own reason.

mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use support::*;

/// The whole browser run may take this long (e2e.mjs bounds itself to 75 s and each step to 15 s).
const E2E_TIMEOUT: Duration = Duration::from_secs(80);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn browser_dir() -> PathBuf {
    repo_root().join("testing/browser")
}

/// Why the browser test cannot run here, if it cannot.
fn missing_prerequisite() -> Option<String> {
    if !Path::new("/usr/bin/chromium").exists() {
        return Some("/usr/bin/chromium is missing (apt-get install chromium)".into());
    }
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !node.is_ok_and(|s| s.success()) {
        return Some("node is not on PATH".into());
    }
    if !browser_dir().join("node_modules/playwright-core").exists() {
        return Some("testing/browser/node_modules is missing (npm ci in testing/browser)".into());
    }
    None
}

fn config(p: &Ports, idp_port: u16, app: &Upstream) -> String {
    format!(
        r#"
listen: 127.0.0.1:{listen}
admin-listen: 127.0.0.1:{admin}
session-store:
  url: "memory://"
identity-providers:
  - name: keycloak
    issuer: http://127.0.0.1:{idp_port}/realms/demo
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
    login:
      redirect-url: http://demo.localhost:{listen}/oauth/callback
      post-logout-redirect-url: http://demo.localhost:{listen}/
    cookie:
      secure: false
      encryption-key: "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="
    routes:
      - uri: /app/*
        roles: [user]
      - uri: /
        white-listed: true
"#,
        listen = p.listen,
        admin = p.admin,
        app = app.target(),
    )
}

/// Runs `node e2e.mjs ARGS` with a hard time limit: (exit code or None on timeout, stdout, stderr).
fn run_e2e(args: &[String]) -> (Option<i32>, String, String) {
    let mut child = Command::new("node")
        .arg(browser_dir().join("e2e.mjs"))
        .args(args)
        .current_dir(browser_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start node testing/browser/e2e.mjs");
    let drain = |mut r: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let finished = wait_until(E2E_TIMEOUT, || matches!(child.try_wait(), Ok(Some(_))));
    if !finished {
        // SIGTERM lets playwright-core close Chromium; SIGKILL if it does not go.
        signal_pid(child.id(), "TERM");
        if !wait_until(Duration::from_secs(5), || {
            matches!(child.try_wait(), Ok(Some(_)))
        }) {
            let _ = child.kill();
        }
    }
    let code = child.wait().ok().and_then(|s| s.code());
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    (if finished { code } else { None }, out, err)
}

#[test]
fn chromium_logs_in_keeps_the_session_and_logs_out() {
    if let Some(why) = missing_prerequisite() {
        skip_or_fail(
            "chromium_logs_in_keeps_the_session_and_logs_out",
            &format!("{why}; run ./scripts/install-deps.sh"),
        );
        return;
    }
    let started = Instant::now();
    let app = Upstream::start("app");
    let (gw, idp) = gateway_with_idp("browser", None, &[], |p, _, idp_port| {
        config(p, idp_port, &app)
    });
    let gw_port = gw.listen.port();
    let base = format!("http://demo.localhost:{gw_port}");

    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser-e2e-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    let args: Vec<String> = [
        "--base",
        &base,
        "--user",
        "alice",
        "--password",
        "alice-password",
        "--expect-user",
        "alice",
        "--post-logout",
        &format!("{base}/"),
        "--idp",
        &idp.issuer,
        "--screenshot",
        &shots.to_string_lossy(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (code, stdout, stderr) = run_e2e(&args);
    let log = gw.log();
    let tail: String = {
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    };
    assert_eq!(
        code,
        Some(0),
        "the browser run failed (exit {code:?}; screenshots in {})\nstdout: {stdout}\nstderr: {stderr}\ngateway log (tail):\n{tail}",
        shots.display()
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("e2e.mjs printed no JSON line ({e}): {stdout}"));
    assert_eq!(report["ok"].as_bool(), Some(true), "{report}");
    assert_eq!(
        report["steps"].as_array().map(Vec::len),
        Some(7),
        "{report}"
    );

    // The upstream saw alice on every request for the protected page (after the login and on
    // the reload), and never one without her identity.
    let seen = app.requests();
    let pages: Vec<&Seen> = seen.iter().filter(|r| r.target == "/app/page").collect();
    assert!(
        pages.len() >= 2,
        "the upstream should have served /app/page after the login and on the reload: {seen:?}"
    );
    for r in &pages {
        assert_eq!(
            r.header("X-Auth-Userid"),
            Some("alice"),
            "a request for /app/page reached the upstream without alice's identity: {r:?}"
        );
        assert!(
            r.header("X-Auth-Roles")
                .is_some_and(|v| v.split(',').any(|role| role.trim() == "user")),
            "X-Auth-Roles of alice should list `user`: {r:?}"
        );
    }
    // After logout (the post-logout landing page, white-listed) nobody is logged in any more.
    for r in seen.iter().filter(|r| !r.target.starts_with("/app/")) {
        assert_eq!(
            r.header("X-Auth-Userid"),
            None,
            "identity on a request after logout: {r:?}"
        );
    }

    // One login at the IdP (the reload was served from the session), one code exchange, and the
    // RP-initiated logout reached the IdP.
    let stats = idp.stats();
    assert_eq!(stats["logins"], 1, "IdP stats: {stats}");
    assert_eq!(
        stats["token_requests_by_grant_type"]["authorization_code"], 1,
        "IdP stats: {stats}"
    );
    assert!(
        stats["end_session_requests"].as_u64().unwrap_or(0) >= 1,
        "IdP stats: {stats}"
    );
    eprintln!("e2e.mjs: {}", stdout.trim());
    eprintln!(
        "browser e2e passed in {:.1}s (browser run {} ms); screenshots in {}",
        started.elapsed().as_secs_f64(),
        report["total_ms"],
        shots.display()
    );
}

/// The value of `gatehouse_denials_total` for tenant demo and `reason` (0 when absent).
fn denials(gw: &Gateway, reason: &str) -> f64 {
    let m = get(gw.admin, "admin", "/metrics", &[]).unwrap().text();
    let series = format!(r#"gatehouse_denials_total{{reason="{reason}",tenant="demo"}} "#);
    m.lines()
        .find_map(|l| l.strip_prefix(series.as_str()))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

#[test]
fn login_refusals_are_denials_counted_under_their_own_reason() {
    // No identity provider answers: none of these refusals needs one.
    let app = Upstream::start("app");
    let idp_port = free_port();
    let gw = Gateway::start("login-denials", |p, _| config(p, idp_port, &app));
    gw.wait_healthy();
    let cases: [(&str, &str, u16, &str); 5] = [
        (
            "GET",
            "/oauth/callback?code=abc&state=forged",
            400,
            "login_state_malformed",
        ),
        ("GET", "/oauth/callback?code=abc", 403, "login_incomplete"),
        (
            "GET",
            "/oauth/backchannel-logout",
            405,
            "logout_method_not_allowed",
        ),
        ("GET", "/oauth/userinfo", 401, "userinfo_unauthenticated"),
        (
            "POST",
            "/oauth/backchannel-logout",
            400,
            "logout_token_invalid",
        ),
    ];
    for (method, path, status, reason) in cases {
        assert_eq!(denials(&gw, reason), 0.0, "{reason} before any request");
        let raw = format!(
            "{method} {path} HTTP/1.1\r\nHost: demo.localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let r = raw_request(gw.listen, raw.as_bytes()).unwrap();
        assert_eq!(r.status, status, "{method} {path}: {r:?}");
        // Counted when the request is logged, just after the response.
        assert_eventually!(
            Duration::from_secs(5),
            || denials(&gw, reason) == 1.0,
            "{method} {path} counted under {reason}"
        );
    }
    // A well-shaped state that is not this browser's: 403, its cookie cleared, the page kept.
    let state = "A-_z".repeat(10) + "xyz";
    let r = get(
        gw.listen,
        "demo.localhost",
        &format!("/oauth/callback?code=abc&state={state}"),
        &[],
    )
    .unwrap();
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.text().contains("<title>Login expired</title>"), "{r:?}");
    let cleared = r.header("set-cookie").unwrap_or("");
    assert!(
        cleared.starts_with("gatehouse_session_login_A-_zA-_zA-_z=")
            && cleared.contains("Max-Age=0"),
        "{r:?}"
    );
    assert_eventually!(
        Duration::from_secs(5),
        || denials(&gw, "login_state_unknown") == 1.0,
        "counted under login_state_unknown"
    );
    assert_eventually!(
        Duration::from_secs(5),
        || gw.log().contains(r#""reason":"login_state_unknown""#),
        "the access log names the reason: {}",
        gw.log()
    );
}
