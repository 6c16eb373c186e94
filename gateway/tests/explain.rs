//! `gatehouse explain` and the admin listener's `POST /debug/explain`, through the real binary
//! and the real test IdP: each refusal reason is explained at the step that failed, with the
//! status and reason the running gateway gives the same request (its
//! `gatehouse_denials_total`); the JSON shape and exit codes; the endpoint on and off; and no
//! token or cookie value in any output.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use gatehouse_test_support::keys::now;
use serde_json::{json, Value};
use support::idp::{make_keys, sign, Idp};
use support::login::Browser;
use support::*;

fn config(p: &Ports, app: &Upstream, idp_port: u16, explain: bool) -> String {
    let provider = keycloak_provider(&format!("http://127.0.0.1:{idp_port}/realms/demo"));
    format!(
        r#"
listen: 127.0.0.1:{listen}
admin-listen: 127.0.0.1:{admin}
admin-explain: {explain}
trusted-proxies: [127.0.0.1/32]
identity-providers:
{provider}
tenants:
  - name: demo
    hosts: [demo.localhost, "*.demo.localhost"]
    identity-provider: keycloak
    upstreams:
      - name: app
        targets: ["{app}"]
    login:
      redirect-url: http://demo.localhost:{listen}/oauth/callback
      post-logout-redirect-url: http://demo.localhost:{listen}/
    cookie:
      secure: false
      encryption-key: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
    routes:
      - uri: /public/*
        white-listed: true
      - uri: /app/*
      - uri: /api/*
      - uri: /api/admin/*
        roles: [admin]
      - uri: /api/team/*
        groups: [developers]
      - uri: /api/mail/*
        match-claims: {{ email: ".*@example\\.com" }}
      - uri: /api/strong/*
        acr: [gold]
      - uri: /api/resource/*
        resource: http://api.localhost/
  - name: strict
    hosts: [strict.localhost]
    identity-provider: keycloak
    enable-default-deny: true
    upstreams:
      - name: app
        targets: ["{app}"]
    routes:
      - uri: /read/*
        methods: [GET]
"#,
        listen = p.listen,
        admin = p.admin,
        app = app.target(),
    )
}

/// The gateway and the IdP (signing with the first key of `keys`), each knowing the other.
fn stack(tag: &str, app: &Upstream, keys: &Path, explain: bool) -> (Gateway, Idp) {
    gateway_with_idp(tag, Some(keys), &[], |p, _, idp_port| {
        config(p, app, idp_port, explain)
    })
}

/// Access-token claims as the IdP issues them to `svc-user`, with `extra` on top.
fn claims(issuer: &str, extra: Value) -> Value {
    let mut c = json!({
        "iss": issuer, "aud": ["gatehouse", "account"], "sub": "service-account-svc-user",
        "azp": "svc-user", "typ": "Bearer", "exp": now() + 300,
        "realm_access": {"roles": ["user"]}, "groups": ["/developers"],
        "email": "user@example.com",
    });
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

/// One request, as the gateway gets it and as explain is asked about it.
struct Case {
    name: &'static str,
    method: &'static str,
    host: &'static str,
    path: &'static str,
    headers: Vec<(String, String)>,
    /// The step that fails (`None`: allowed) and the reason of the verdict.
    step: Option<&'static str>,
    reason: &'static str,
}

fn bearer(token: &str) -> Vec<(String, String)> {
    vec![("Authorization".to_string(), format!("Bearer {token}"))]
}

fn case(
    name: &'static str,
    method: &'static str,
    host: &'static str,
    path: &'static str,
    headers: Vec<(String, String)>,
    step: Option<&'static str>,
    reason: &'static str,
) -> Case {
    Case {
        name,
        method,
        host,
        path,
        headers,
        step,
        reason,
    }
}

/// `gatehouse_denials_total` by reason (all tenants).
fn denials(gw: &Gateway) -> HashMap<String, f64> {
    let text = get(gw.admin, "admin", "/metrics", &[]).unwrap().text();
    let mut out = HashMap::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("gatehouse_denials_total{"))
    {
        let reason = line
            .split("reason=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or_default();
        let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        *out.entry(reason.to_string()).or_default() += value;
    }
    out
}

/// Sends the case to the gateway: its status, and the reason its denial counter moved for
/// (`None` when no denial was counted within a moment).
fn gateway_answer(gw: &Gateway, c: &Case) -> (u16, Option<String>) {
    let before = denials(gw);
    let mut raw = format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
        c.method, c.path, c.host
    );
    for (k, v) in &c.headers {
        raw.push_str(&format!("{k}: {v}\r\n"));
    }
    raw.push_str("\r\n");
    let r = raw_request(gw.listen, raw.as_bytes()).expect("the gateway answers");
    let mut moved = None;
    wait_until(Duration::from_secs(3), || {
        let after = denials(gw);
        moved = after
            .iter()
            .find(|(k, v)| before.get(*k).copied().unwrap_or(0.0) < **v)
            .map(|(k, _)| k.clone());
        moved.is_some()
    });
    (r.status, moved)
}

/// `gatehouse explain` for the case: (exit code, stdout, stderr).
fn explain_cli(gw: &Gateway, c: &Case, json: bool) -> (i32, String, String) {
    let url = format!("http://{}:{}{}", c.host, gw.listen.port(), c.path);
    let config = gw.config_path.display().to_string();
    let headers: Vec<String> = c.headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    let mut args = vec!["explain", "--config", &config, "--from", "127.0.0.1"];
    for h in &headers {
        args.extend(["-H", h.as_str()]);
    }
    if json {
        args.push("--json");
    }
    args.extend([c.method, url.as_str()]);
    run_cli(&args, &[])
}

/// `POST /debug/explain` with `body`: (status, body).
fn explain_admin(gw: &Gateway, body: &str) -> (u16, String) {
    let raw = format!(
        "POST /debug/explain HTTP/1.1\r\nHost: admin\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let r = raw_request(gw.admin, raw.as_bytes()).expect("the admin listener answers");
    (r.status, r.text())
}

fn admin_query(gw: &Gateway, c: &Case) -> String {
    let headers: Vec<String> = c.headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    json!({
        "method": c.method,
        "url": format!("http://{}:{}{}", c.host, gw.listen.port(), c.path),
        "headers": headers,
        "from": "127.0.0.1",
    })
    .to_string()
}

/// The secrets a case carries: its tokens and cookie values (and their signatures alone).
fn secrets(c: &Case) -> Vec<String> {
    let mut out = Vec::new();
    for (_, v) in &c.headers {
        let v = v.strip_prefix("Bearer ").unwrap_or(v);
        for part in v.split(';') {
            let value = part.split_once('=').map_or(part, |(_, v)| v).trim();
            if value.len() >= 16 {
                out.push(value.to_string());
                if let Some(sig) = value.rsplit('.').next().filter(|s| s.len() >= 16) {
                    out.push(sig.to_string());
                }
            }
        }
    }
    out
}

#[track_caller]
fn assert_no_secret(c: &Case, output: &str) {
    for s in secrets(c) {
        assert!(
            !output.contains(&s),
            "{}: output repeats a secret:\n{output}",
            c.name
        );
    }
}

/// Checks one case: the gateway's answer, the CLI's text (the failing step) and JSON (the
/// verdict agreeing with the gateway), the exit code, and no secret in any output.
#[track_caller]
fn check_case(gw: &Gateway, c: &Case) {
    let (status, moved) = gateway_answer(gw, c);
    let (code, out, err) = explain_cli(gw, c, false);
    assert_no_secret(c, &out);
    assert_no_secret(c, &err);
    let (jcode, jout, jerr) = explain_cli(gw, c, true);
    assert_no_secret(c, &jout);
    assert_no_secret(c, &jerr);
    let report: Value = serde_json::from_str(&jout)
        .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {jout}\n{jerr}", c.name));
    let verdict = &report["verdict"];
    let what = format!(
        "{}: gateway {status} {moved:?}; explain:\n{out}{err}",
        c.name
    );
    assert_eq!(code, jcode, "{what}");
    match c.step {
        None => {
            assert_eq!(code, 0, "{what}");
            assert_eq!(verdict["allowed"], true, "{what}");
            assert_eq!(verdict["reason"], "ok", "{what}");
            assert_eq!(moved, None, "{what}");
            assert!(out.contains("verdict       ALLOW"), "{what}");
        }
        Some(step) => {
            assert_eq!(code, 1, "{what}");
            assert_eq!(verdict["allowed"], false, "{what}");
            // The explanation agrees with the running gateway: status and reason.
            assert_eq!(
                verdict["status"].as_u64(),
                Some(u64::from(status)),
                "{what}"
            );
            assert_eq!(moved.as_deref(), Some(c.reason), "{what}");
            assert_eq!(verdict["reason"], c.reason, "{what}");
            // The step that failed is printed as failed, in text and in JSON.
            let failed: Vec<&str> = report["steps"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["outcome"] == "fail")
                .map(|s| s["step"].as_str().unwrap())
                .collect();
            assert!(failed.contains(&step), "{what}\nfailed steps: {failed:?}");
            let line = out
                .lines()
                .find(|l| l.starts_with(&format!("{step:<13} FAIL")))
                .unwrap_or_else(|| panic!("no FAIL line for {step}: {what}"));
            assert!(!line.is_empty());
        }
    }
}

#[test]
fn each_refusal_is_explained_at_the_step_that_failed_as_the_gateway_refuses_it() {
    let keys_dir = TempDir::new("explain-keys");
    let keys = make_keys(keys_dir.path(), "k", &["RS256"]);
    let other = make_keys(keys_dir.path(), "other", &["RS256"]);
    let app = Upstream::start("app");
    let (gw, idp) = stack("explain", &app, &keys, false);
    let iss = idp.issuer.clone();
    let user = idp.token("svc-user");
    let nobody = idp.token("svc-nobody");
    let signed = |extra: Value| sign(&keys, &claims(&iss, extra), None);
    let mut forged = user.clone().into_bytes();
    let i = forged.len() - 10;
    forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let now = now();
    let d = "demo.localhost";
    let cases = vec![
        case("allow", "GET", d, "/api/x", bearer(&user), None, "ok"),
        case("white-listed", "GET", d, "/public/x", vec![], None, "ok"),
        case(
            "no token",
            "GET",
            d,
            "/api/x",
            vec![],
            Some("session"),
            "unauthenticated",
        ),
        case(
            "malformed",
            "GET",
            d,
            "/api/x",
            bearer("not-a-jwt"),
            Some("token"),
            "malformed",
        ),
        case(
            "not bearer",
            "GET",
            d,
            "/api/x",
            vec![("Authorization".into(), "Basic dXNlcjpwYXNzd29yZA==".into())],
            Some("credential"),
            "malformed",
        ),
        case(
            "bad signature",
            "GET",
            d,
            "/api/x",
            bearer(&forged),
            Some("token"),
            "bad_signature",
        ),
        case(
            "unknown kid",
            "GET",
            d,
            "/api/x",
            bearer(&sign(&other, &claims(&iss, json!({})), None)),
            Some("token"),
            "unknown_kid",
        ),
        case(
            "wrong iss",
            "GET",
            d,
            "/api/x",
            bearer(&signed(json!({"iss": "http://127.0.0.1:1/realms/other"}))),
            Some("token"),
            "wrong_issuer",
        ),
        case(
            "wrong aud",
            "GET",
            d,
            "/api/x",
            bearer(&signed(json!({"aud": "someone-else"}))),
            Some("token"),
            "wrong_audience",
        ),
        case(
            "expired",
            "GET",
            d,
            "/api/x",
            bearer(&signed(json!({"exp": now - 600}))),
            Some("token"),
            "expired",
        ),
        case(
            "nbf in the future",
            "GET",
            d,
            "/api/x",
            bearer(&signed(json!({"nbf": now + 600}))),
            Some("token"),
            "not_yet_valid",
        ),
        case(
            "ID token as bearer",
            "GET",
            d,
            "/api/x",
            bearer(&signed(
                json!({"typ": "ID", "nonce": "n-1", "azp": "gatehouse"}),
            )),
            Some("token"),
            "not_access_token",
        ),
        case(
            "missing role",
            "GET",
            d,
            "/api/admin/x",
            bearer(&user),
            Some("requirements"),
            "missing_role",
        ),
        case(
            "missing group",
            "GET",
            d,
            "/api/team/x",
            bearer(&nobody),
            Some("requirements"),
            "missing_group",
        ),
        case(
            "claim mismatch",
            "GET",
            d,
            "/api/mail/x",
            bearer(&nobody),
            Some("requirements"),
            "claim_mismatch",
        ),
        case(
            "acr too weak",
            "GET",
            d,
            "/api/strong/x",
            bearer(&signed(json!({"acr": "silver"}))),
            Some("step-up"),
            "insufficient_acr",
        ),
        case(
            "resource audience",
            "GET",
            d,
            "/api/resource/x",
            bearer(&user),
            Some("token"),
            "wrong_audience",
        ),
        case(
            "wrong method",
            "POST",
            "strict.localhost",
            "/read/x",
            bearer(&user),
            Some("route"),
            "no_route",
        ),
        case(
            "unknown host",
            "GET",
            "nobody.localhost",
            "/api/x",
            bearer(&user),
            Some("tenant"),
            "unknown_host",
        ),
    ];
    for c in &cases {
        check_case(&gw, c);
    }
    // The detail a person reads: expected against got, and how long ago a token expired.
    let expired = &cases[9];
    let (_, out, _) = explain_cli(&gw, expired, false);
    let exp = out
        .lines()
        .find(|l| l.trim_start().starts_with("exp "))
        .expect("exp line");
    assert!(exp.contains("FAIL") && exp.contains("expired: 6"), "{out}");
    let wrong_iss = &cases[7];
    let (_, out, _) = explain_cli(&gw, wrong_iss, false);
    let iss_line = out
        .lines()
        .find(|l| l.trim_start().starts_with("iss "))
        .expect("iss line");
    assert!(
        iss_line.contains(&format!("expected {iss}"))
            && iss_line.contains("got http://127.0.0.1:1/realms/other"),
        "{out}"
    );
    let (_, out, _) = explain_cli(&gw, &cases[17], false);
    assert!(out.contains("skipped: POST is not in [GET]"), "{out}");
    let (_, out, _) = explain_cli(&gw, &cases[12], false);
    assert!(
        out.contains("role admin") && out.contains("absent"),
        "{out}"
    );
    // The tenant step names the host rule that chose it.
    let wildcard = case(
        "wildcard host",
        "GET",
        "a.demo.localhost",
        "/public/x",
        vec![],
        None,
        "ok",
    );
    let (code, out, _) = explain_cli(&gw, &wildcard, false);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("matched the host rule \"*.demo.localhost\""),
        "{out}"
    );
}

#[test]
fn sessions_are_explained_from_the_cookie_to_the_store_and_the_live_store_answers_on_the_admin_listener(
) {
    let keys_dir = TempDir::new("explain-session-keys");
    let keys = make_keys(keys_dir.path(), "k", &["RS256"]);
    let app = Upstream::start("app");
    let (gw, _idp) = stack("explain-session", &app, &keys, true);
    let browser = Browser::new(gw.listen);
    let page = browser.login_from("/app/", "alice", "alice-password", false);
    assert_eq!(page.status, 200, "login: {}", page.body);
    let cookie = browser.cookies();
    assert!(!cookie.is_empty());
    let live = case(
        "live session",
        "GET",
        "demo.localhost",
        "/app/x",
        vec![("Cookie".into(), cookie.clone())],
        None,
        "ok",
    );
    // The running process finds the session in its store.
    let (status, body) = explain_admin(&gw, &admin_query(&gw, &live));
    assert_eq!(status, 200, "{body}");
    assert_no_secret(&live, &body);
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["verdict"]["allowed"], true, "{body}");
    let session = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "session")
        .unwrap_or_else(|| panic!("no session step: {body}"));
    assert_eq!(session["outcome"], "pass", "{body}");
    assert!(
        session["summary"]
            .as_str()
            .unwrap()
            .contains("found in the store"),
        "{body}"
    );
    assert_eq!(gateway_answer(&gw, &live).0, 200);
    // A separate `gatehouse explain` has its own (empty) memory store, and says so.
    let (code, out, _) = explain_cli(&gw, &live, false);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("memory:// is this process's own store"),
        "{out}"
    );
    assert_no_secret(&live, &out);

    // Logged out: the cookie names a session the store no longer has.
    let ended = browser.get("/oauth/logout");
    assert!(ended.status < 400, "logout: {}", ended.status);
    let gone = case(
        "session ended",
        "GET",
        "demo.localhost",
        "/app/x",
        vec![("Cookie".into(), cookie.clone())],
        Some("session"),
        "unauthenticated",
    );
    check_case(&gw, &gone);
    let (status, body) = explain_admin(&gw, &admin_query(&gw, &gone));
    assert_eq!(status, 200, "{body}");
    assert_no_secret(&gone, &body);
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["verdict"]["reason"], "unauthenticated", "{body}");
    assert!(body.contains("unknown session: not in the store"), "{body}");

    // A cookie sealed with another key does not open.
    let name = cookie.split('=').next().unwrap().trim().to_string();
    let foreign = case(
        "foreign cookie",
        "GET",
        "demo.localhost",
        "/app/x",
        vec![(
            "Cookie".into(),
            format!("{name}=v1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        )],
        Some("session"),
        "unauthenticated",
    );
    check_case(&gw, &foreign);
    let (_, out, _) = explain_cli(&gw, &foreign, false);
    assert!(
        out.contains("does not open with this tenant's cookie keys"),
        "{out}"
    );
}

#[test]
fn the_admin_endpoint_is_off_unless_configured_and_agrees_with_the_cli_when_on() {
    let keys_dir = TempDir::new("explain-admin-keys");
    let keys = make_keys(keys_dir.path(), "k", &["RS256"]);
    let app = Upstream::start("app");
    let (off, idp) = stack("explain-off", &app, &keys, false);
    let expired = sign(
        &keys,
        &claims(&idp.issuer, json!({"exp": now() - 600})),
        None,
    );
    let c = case(
        "expired",
        "GET",
        "demo.localhost",
        "/api/x",
        bearer(&expired),
        Some("token"),
        "expired",
    );
    let (status, body) = explain_admin(&off, &admin_query(&off, &c));
    assert_eq!(status, 404, "{body}");
    assert!(!body.contains("expired"), "{body}");
    drop(off);
    drop(idp);

    let (on, idp) = stack("explain-on", &app, &keys, true);
    let expired = sign(
        &keys,
        &claims(&idp.issuer, json!({"exp": now() - 600})),
        None,
    );
    let c = case(
        "expired",
        "GET",
        "demo.localhost",
        "/api/x",
        bearer(&expired),
        Some("token"),
        "expired",
    );
    let (status, body) = explain_admin(&on, &admin_query(&on, &c));
    assert_eq!(status, 200, "{body}");
    assert_no_secret(&c, &body);
    let live: Value = serde_json::from_str(&body).unwrap();
    let (_, out, _) = explain_cli(&on, &c, true);
    let cli: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(live["verdict"], cli["verdict"], "{body}\n{out}");
    assert_eq!(live["verdict"]["reason"], "expired");
    // GET is not the method; a body that is not a request is 400 and not echoed.
    let r = get(on.admin, "admin", "/debug/explain", &[]).unwrap();
    assert_eq!(r.status, 405);
    let (status, body) = explain_admin(
        &on,
        &format!("{{\"method\": \"GET\", \"url\": 5, \"headers\": \"Bearer {expired}\"}}"),
    );
    assert_eq!(status, 400, "{body}");
    assert!(!body.contains(&expired), "{body}");
    let (status, body) = explain_admin(&on, r#"{"method": "GET", "url": "/relative"}"#);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("absolute"), "{body}");
}

#[test]
fn json_shape_and_exit_codes() {
    let dir = TempDir::new("explain-cli");
    let provider = static_provider(dir.path());
    let yaml = format!(
        "listen: 127.0.0.1:1\n{provider}tenants:\n  - name: t\n    hosts: [t.localhost]\n    identity-provider: static\n    \
         upstreams: [{{name: app, targets: [\"127.0.0.1:1\"]}}]\n    routes:\n      - uri: /open/*\n        white-listed: true\n      - uri: /*\n"
    );
    let config = dir.path().join("g.yaml");
    std::fs::write(&config, yaml).unwrap();
    let config = config.display().to_string();
    let (code, out, err) = run_cli(
        &[
            "explain",
            "--config",
            &config,
            "--json",
            "GET",
            "http://t.localhost/open/a",
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["request"]["method"], "GET");
    assert_eq!(v["request"]["url"], "http://t.localhost/open/a");
    assert_eq!(v["request"]["from"], "unknown");
    let steps: Vec<&str> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["tenant", "path", "route"]);
    for s in v["steps"].as_array().unwrap() {
        assert!(
            ["pass", "fail", "info"].contains(&s["outcome"].as_str().unwrap()),
            "{s}"
        );
        assert!(s["summary"].is_string(), "{s}");
    }
    assert_eq!(
        v["verdict"],
        json!({"allowed": true, "action": "proxy", "reason": "ok",
               "summary": "proxied without authentication: the route is white-listed"})
    );
    // Refused: exit 1, the status and reason in the verdict; the token's checks in order.
    let (code, out, _) = run_cli(
        &[
            "explain",
            "--config",
            &config,
            "--json",
            "-H",
            "Authorization: Bearer a.b.c",
            "GET",
            "http://t.localhost/x?q=secret",
        ],
        &[],
    );
    assert_eq!(code, 1, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["verdict"]["status"], 401);
    assert_eq!(v["verdict"]["reason"], "malformed");
    assert_eq!(
        v["request"]["url"], "http://t.localhost/x",
        "the query is left out"
    );
    assert!(!out.contains("q=secret"));
    let token = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "token")
        .unwrap();
    assert_eq!(token["checks"][0]["name"], "size");
    // Usage and config errors: exit 2.
    for args in [
        vec!["explain", "--config", &config, "GET", "/relative"],
        vec![
            "explain",
            "--config",
            &config,
            "-H",
            "no colon",
            "GET",
            "http://t.localhost/",
        ],
        vec![
            "explain",
            "--config",
            &config,
            "--from",
            "x",
            "GET",
            "http://t.localhost/",
        ],
        vec![
            "explain",
            "--config",
            "/nonexistent.yaml",
            "GET",
            "http://t.localhost/",
        ],
        vec![
            "explain",
            "--config",
            &config,
            "--jwks",
            "/nonexistent.json",
            "GET",
            "http://t.localhost/",
        ],
        vec!["explain", "--config", &config, "GET"],
    ] {
        let (code, out, err) = run_cli(&args, &[]);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
    }
}
