//! `gatehouse import-gatekeeper` through the real binary: the configs of a user's Gatekeeper
//! setup (../shared/seeds/000_ed9813cf15343dce.txt) and of gogatekeeper's documented examples
//! (fixtures/gatekeeper/) are converted, pass `gatehouse check`, and are served by the real
//! gateway against a real upstream and the test OpenID provider; every answer is the one
//! Gatekeeper's rules give (white-listed, role-protected with all roles required, method
//! fall-through, default deny).
//!
//! Only what cannot work on a test machine is overridden, with Gatekeeper's own command-line
//! arguments after `--`: the provider's discovery URL, the upstream, the listen addresses, and
//! (where set) the Redis store and the TLS files.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{SystemTime, UNIX_EPOCH};

use support::idp::{make_keys, sign, Idp};
use support::*;

const COOKIE_KEY: &str = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";

/// The environment the converted configs reference (the gateway inherits it).
fn secrets_env() -> [(&'static str, &'static str); 4] {
    [
        ("KEYCLOAK_CLIENT_SECRET", "gatehouse-secret"),
        ("GATEKEEPER_CLIENT_SECRET", "gatehouse-secret"),
        ("PROXY_CLIENT_SECRET", "gatehouse-secret"),
        ("GATEHOUSE_COOKIE_KEY", COOKIE_KEY),
    ]
}

fn set_env() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for (k, v) in secrets_env() {
            std::env::set_var(k, v);
        }
    });
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gatekeeper")
        .join(name)
}

/// Runs `gatehouse import-gatekeeper FIXTURE -- ARGS`; returns (stdout, stderr) after checking
/// that it succeeded.
fn import(name: &str, args: &[String]) -> (String, String) {
    let path = fixture(name);
    let mut cli = vec!["import-gatekeeper", path.to_str().unwrap(), "--"];
    cli.extend(args.iter().map(String::as_str));
    let (code, out, err) = run_cli(&cli, &[]);
    assert_eq!(code, 0, "import-gatekeeper {name} failed:\n{err}\n{out}");
    (out, err)
}

/// The overrides that point a converted config at this machine.
fn local(p: &Ports, idp: &Idp, app: &Upstream, more: &[&str]) -> Vec<String> {
    let mut args = vec![
        format!(
            "--discovery-url={}/.well-known/openid-configuration",
            idp.issuer
        ),
        format!("--upstream-url=http://{}", app.target()),
        format!("--listen=127.0.0.1:{}", p.listen),
        format!("--listen-admin=127.0.0.1:{}", p.admin),
    ];
    args.extend(more.iter().map(|s| s.to_string()));
    args
}

/// `METHOD path` with Host and an optional bearer token.
fn send(gw: &Gateway, method: &str, host: &str, path: &str, token: Option<&str>) -> Response {
    let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    if let Some(t) = token {
        raw.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if method == "POST" || method == "PUT" || method == "PATCH" {
        raw.push_str("Content-Length: 0\r\n");
    }
    raw.push_str("\r\n");
    raw_request(gw.listen, raw.as_bytes())
        .unwrap_or_else(|e| panic!("{method} {path}: {e}\nlog:\n{}", gw.log()))
}

/// A Keycloak-shaped access token signed with the IdP's own key.
fn token(
    keys: &Path,
    idp: &Idp,
    aud: &[&str],
    realm: &[&str],
    clients: serde_json::Value,
    groups: &[&str],
) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "iss": idp.issuer,
        "aud": aud,
        "sub": format!("user-{}", realm.join("-")),
        "azp": aud[0],
        "typ": "Bearer",
        "iat": now,
        "exp": now + 600,
        "preferred_username": "someone",
        "email": "someone@example.com",
        "realm_access": { "roles": realm },
        "resource_access": clients,
        "groups": groups,
    });
    sign(keys, &claims, Some("at+jwt"))
}

/// Checks each `(method, path, token, status)` row.
fn expect(gw: &Gateway, host: &str, rows: &[(&str, &str, Option<&str>, u16)]) {
    for &(method, path, tok, status) in rows {
        let r = send(gw, method, host, path, tok);
        let who = tok.map_or("no token", |_| "a token");
        assert_eq!(r.status, status, "{method} {path} with {who}: {}", r.text());
    }
}

#[test]
fn the_improwised_gatekeeper_setup_answers_as_gatekeeper_did() {
    set_env();
    let keys_dir = TempDir::new("import-keys");
    let keys = make_keys(keys_dir.path(), "k", &["RS256"]);
    let idp = Idp::start(Some(&keys), &[]);
    let app = Upstream::start("app");
    let out = TempDir::new("import-out");
    let converted = out.path().join("gatehouse.yaml");
    let gw = Gateway::start("import-seed", |p, _| {
        // The guide's Redis host does not exist here: sessions stay in memory (bearer only).
        let (yaml, err) = import("improwised.yaml", &local(p, &idp, &app, &["--store-url="]));
        assert!(err.contains("not carried: headers"), "{err}");
        std::fs::write(&converted, &yaml).unwrap();
        yaml
    });
    gw.wait_ready();
    let (code, stdout, stderr) = run_cli(
        &["check", "--config", converted.to_str().unwrap()],
        &secrets_env(),
    );
    assert_eq!(code, 0, "gatehouse check:\n{stdout}{stderr}");

    let client = "improwised-gatekeeper-client";
    let roles = |r: &[&str]| serde_json::json!({ "improwised": { "roles": r } });
    let admin = token(
        &keys,
        &idp,
        &[client],
        &[],
        roles(&["admin", "super-admin", "user"]),
        &[],
    );
    let half_admin = token(&keys, &idp, &[client], &[], roles(&["admin"]), &[]);
    let user = token(&keys, &idp, &[client], &[], roles(&["user"]), &[]);
    let nobody = token(&keys, &idp, &[client], &[], serde_json::json!({}), &[]);
    // skip-access-token-clientid-check: false: a token for another client is refused.
    let other_aud = token(
        &keys,
        &idp,
        &["account"],
        &[],
        roles(&["admin", "super-admin"]),
        &[],
    );
    let host = "api.improwised.com";
    expect(
        &gw,
        host,
        &[
            // white-listed
            ("GET", "/health", None, 200),
            ("GET", "/metrics", None, 200),
            ("GET", "/api/v1/public/docs", None, 200),
            // chi's /api/v1/public/* does not match /api/v1/public: default deny asks a token.
            ("GET", "/api/v1/public", None, 401),
            // role-protected: every listed role is required
            ("GET", "/api/v1/admin/users", None, 401),
            ("GET", "/api/v1/admin/users", Some(&user), 403),
            ("GET", "/api/v1/admin/users", Some(&half_admin), 403),
            ("DELETE", "/api/v1/admin/users", Some(&admin), 200),
            ("GET", "/api/v1/admin/users", Some(&admin), 200),
            ("GET", "/api/v1/admin/users", Some(&other_aud), 401),
            // PATCH is not among the resource's methods: Gatekeeper's default deny (any token).
            ("PATCH", "/api/v1/admin/users", Some(&user), 200),
            ("PATCH", "/api/v1/admin/users", None, 401),
            ("GET", "/api/v1/user/me", Some(&user), 403),
            ("GET", "/api/v1/user/me", Some(&admin), 200),
            ("POST", "/api/v1/upload/file", Some(&user), 200),
            ("POST", "/api/v1/upload/file", Some(&nobody), 403),
            // default deny: unnamed paths need a valid token, and nothing more
            ("GET", "/elsewhere", None, 401),
            ("GET", "/elsewhere", Some(&nobody), 200),
        ],
    );
    // Gatekeeper's identity headers reach the upstream.
    send(&gw, "GET", host, "/api/v1/user/me", Some(&admin));
    let seen = app.last().unwrap();
    assert_eq!(seen.header("x-auth-email"), Some("someone@example.com"));
    assert_eq!(seen.header("x-auth-username"), Some("someone"));
    // An unknown host is not Gatekeeper's "any Host": the tenant answers its own names only.
    assert_eq!(
        send(&gw, "GET", "other.example", "/health", None).status,
        404
    );
}

#[test]
fn gogatekeepers_documented_examples_answer_as_its_rules_say() {
    set_env();
    let keys_dir = TempDir::new("import-keys");
    let keys = make_keys(keys_dir.path(), "k", &["RS256"]);
    let idp = Idp::start(Some(&keys), &[]);
    let app = Upstream::start("app");

    // The "configuration with Keycloak" example: require-any-role with groups, /admin* and
    // /backend* prefixes, white-listed static paths, default deny.
    let gw = Gateway::start("import-doc", |p, _| {
        import(
            "gogatekeeper-keycloak-example.yaml",
            &local(p, &idp, &app, &[]),
        )
        .0
    });
    gw.wait_ready();
    let aud = ["gatekeeper-client"];
    let none = serde_json::json!({});
    let realm_admins = token(
        &keys,
        &idp,
        &aud,
        &["examplerealmrole"],
        none.clone(),
        &["admins"],
    );
    let client_users = token(
        &keys,
        &idp,
        &aud,
        &[],
        serde_json::json!({ "client1": { "roles": ["test1"] } }),
        &["users"],
    );
    let role_no_group = token(&keys, &idp, &aud, &["examplerealmrole"], none.clone(), &[]);
    let group_no_role = token(&keys, &idp, &aud, &[], none.clone(), &["admins"]);
    let backend = token(
        &keys,
        &idp,
        &aud,
        &[],
        serde_json::json!({ "client": { "roles": ["test1"] } }),
        &[],
    );
    expect(
        &gw,
        "127.0.0.1",
        &[
            ("GET", "/public/index.html", None, 200),
            ("GET", "/favicon", None, 200),
            ("GET", "/css/site.css", None, 200),
            ("GET", "/img/logo.png", None, 200),
            ("GET", "/admin/panel", None, 401),
            ("GET", "/admin/panel", Some(&realm_admins), 200),
            ("GET", "/admin/panel", Some(&client_users), 200),
            ("GET", "/admin", Some(&realm_admins), 200),
            ("GET", "/admin/panel", Some(&role_no_group), 403),
            ("GET", "/admin/panel", Some(&group_no_role), 403),
            // The resource lists GET only: other methods need just a valid token.
            ("POST", "/admin/panel", Some(&group_no_role), 200),
            ("GET", "/backend/api", Some(&backend), 200),
            ("GET", "/backend/api", Some(&realm_admins), 403),
            ("GET", "/somewhere", None, 401),
            ("GET", "/somewhere", Some(&group_no_role), 200),
        ],
    );
    drop(gw);

    // kube/reverse.yml's args: default deny off, /admin/* needs the realm role admin. The
    // test IdP's own client and tokens (svc-admin has the realm role admin, svc-user not).
    let gw = Gateway::start("import-reverse", |p, _| {
        let more = ["--client-id=gatehouse", "--tls-cert=", "--tls-private-key="];
        let (yaml, err) = import(
            "gogatekeeper-reverse-args.yaml",
            &local(p, &idp, &app, &more),
        );
        assert!(err.contains("PROXY_CLIENT_SECRET"), "{err}");
        yaml
    });
    gw.wait_ready();
    let admin = idp.token("svc-admin");
    let user = idp.token("svc-user");
    expect(
        &gw,
        "www.example.com",
        &[
            ("GET", "/anything", None, 200),
            ("POST", "/anything", None, 200),
            ("GET", "/admin/x", None, 401),
            ("GET", "/admin/x", Some(&user), 403),
            ("GET", "/admin/x", Some(&admin), 200),
            // chi's /admin/* does not match /admin, which default deny off leaves public.
            ("GET", "/admin", None, 200),
        ],
    );
}

#[test]
fn every_fixture_converts_into_a_config_that_passes_check_without_copying_secrets() {
    let dir = TempDir::new("import-all");
    let literals = [
        "6447d0c0-d510-42a7-b654-6e3a16b2d7e2",
        "AgXa7xRcoClDEU0ZDSH4X0XhL5Qy2Z2j",
    ];
    let mut n = 0;
    for entry in std::fs::read_dir(fixture("")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let out = dir.path().join(&name);
        // TLS files of the examples do not exist here; everything else is as written.
        let (code, stdout, stderr) = run_cli(
            &[
                "import-gatekeeper",
                path.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--",
                "--tls-cert=",
                "--tls-private-key=",
            ],
            &[],
        );
        assert_eq!(code, 0, "{name}:\n{stderr}");
        assert!(stdout.is_empty(), "--out writes the file, not stdout");
        let yaml = std::fs::read_to_string(&out).unwrap();
        for secret in literals {
            assert!(
                !yaml.contains(secret),
                "{name}: a literal secret was copied"
            );
            assert!(
                !stderr.contains(secret),
                "{name}: a literal secret was printed"
            );
        }
        assert!(stderr.contains("option(s) not carried"), "{name}: {stderr}");
        let (code, stdout, stderr) = run_cli(
            &["check", "--config", out.to_str().unwrap()],
            &secrets_env(),
        );
        assert_eq!(
            code, 0,
            "{name}: gatehouse check:\n{stdout}{stderr}\n{yaml}"
        );
        n += 1;
    }
    assert!(n >= 5, "fixtures found: {n}");
    // A file that is not a Gatekeeper config is refused with a reason, not a panic.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "just a string").unwrap();
    let (code, _, stderr) = run_cli(&["import-gatekeeper", bad.to_str().unwrap()], &[]);
    assert_eq!(code, 1);
    assert!(stderr.contains("expected a Gatekeeper config"), "{stderr}");
    // A whole Kubernetes manifest is named as such, not converted into an empty config.
    std::fs::write(&bad, "apiVersion: v1\nkind: ConfigMap\ndata: {}\n").unwrap();
    let (code, _, stderr) = run_cli(&["import-gatekeeper", bad.to_str().unwrap()], &[]);
    assert_eq!(code, 1);
    assert!(stderr.contains("Kubernetes manifest"), "{stderr}");
    let (code, _, stderr) = run_cli(&["import-gatekeeper", "/nonexistent/gk.yaml"], &[]);
    assert_eq!(code, 1);
    assert!(stderr.contains("/nonexistent/gk.yaml"), "{stderr}");
}
