//! `gatehouse explain` and the admin listener's `POST /debug/explain`, through the real binary
//! and the real test IdP: each refusal reason is explained at the step that failed, with the
//! status and reason the running gateway gives the same request (its
//! `gatehouse_denials_total`); the JSON shape and exit codes; the endpoint on and off; and no
//! token or cookie value in any output.
//!
//! This file holds the stack and the case checker; `refusals.rs` the refusal table,
//! `sessions.rs` the session and admin-endpoint tests, `cli.rs` the JSON shape and exit codes.

#[path = "../support/mod.rs"]
mod support;

mod cli;
mod refusals;
mod sessions;

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
