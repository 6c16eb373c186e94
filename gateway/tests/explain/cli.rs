//! The CLI's JSON shape and exit codes.

use super::*;

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
