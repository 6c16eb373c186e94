//! Identity assertions through the real binary: an upstream written the way a real one would
//! be (Python, PyJWT with cryptography, `testing/assertion/upstream.py`) verifies the JWT the
//! gateway adds against the JWKS the gateway publishes, for bearer and browser-session
//! requests; key rotation keeps old assertions verifiable while their key is published; a
//! forged or stale assertion sent by a client never reaches an upstream.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use gatehouse_test_support::keys::{Kind, TestKey};
use serde_json::Value;
use support::idp::Idp;
use support::login::Browser;
use support::*;

const COOKIE_KEY: &str = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";
const HEADER: &str = "X-Gatehouse-Assertion";

/// The project's Python venv (scripts/install-deps.sh installs PyJWT and cryptography there).
fn python() -> Option<PathBuf> {
    let venv = std::env::var_os("GATEHOUSE_VENV")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/gatehouse-venv"))
        })?;
    let py = venv.join("bin/python");
    let ok = Command::new(&py)
        .args(["-c", "import jwt, cryptography"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(py)
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testing/assertion/upstream.py")
}

/// The verifying upstream; stopped on drop.
struct PyUpstream {
    child: Child,
    port: u16,
    settings: PathBuf,
}

impl PyUpstream {
    fn start(py: &Path, dir: &TempDir) -> PyUpstream {
        let settings = dir.path().join("upstream-settings.json");
        let mut child = Command::new(py)
            .arg(script())
            .args(["serve", "--settings"])
            .arg(&settings)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start testing/assertion/upstream.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("LISTENING ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("upstream.py did not start: {line:?}"));
        PyUpstream {
            child,
            port,
            settings,
        }
    }

    fn target(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// What the upstream verifies against: the gateway's JWKS, the audience and issuer.
    fn expect(&self, gw: &Gateway, audience: &str, issuer: &str) {
        self.expect_caching(gw, audience, issuer, 300);
    }

    /// [`PyUpstream::expect`], caching the JWKS `lifespan` seconds.
    fn expect_caching(&self, gw: &Gateway, audience: &str, issuer: &str, lifespan: u64) {
        let settings = serde_json::json!({
            "jwks_url": jwks_url(gw),
            "header": HEADER,
            "audience": audience,
            "issuer": issuer,
            "jwks_lifespan": lifespan,
        });
        std::fs::write(&self.settings, settings.to_string()).unwrap();
    }
}

impl Drop for PyUpstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn jwks_url(gw: &Gateway) -> String {
    format!(
        "http://127.0.0.1:{}/.well-known/gatehouse/jwks.json",
        gw.listen.port()
    )
}

/// Verifies one token with a fresh JWKS client, as a new upstream instance would.
fn verify_once(py: &Path, gw: &Gateway, token: &str, audience: &str, issuer: &str) -> Value {
    let out = Command::new(py)
        .arg(script())
        .args(["verify", "--jwks-url", &jwks_url(gw)])
        .args(["--audience", audience, "--issuer", issuer, token])
        .output()
        .expect("run upstream.py verify");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)))
}

fn write_key(dir: &Path, name: &str, kind: Kind) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, TestKey::generate(kind, name).pkcs8_pem()).unwrap();
    path
}

/// Two tenants: `demo` signs assertions (upstreams `app` and `other`, both the verifying
/// upstream; login for browsers), `plain` does not (a recording upstream).
fn config(p: &Ports, idp_port: u16, py: &PyUpstream, plain: &Upstream, keys: &[&Path]) -> String {
    let keys: Vec<String> = keys
        .iter()
        .map(|k| format!("\"{}\"", k.display()))
        .collect();
    let provider = keycloak_provider(&format!("http://127.0.0.1:{idp_port}/realms/demo"));
    format!(
        r#"
listen: 127.0.0.1:{listen}
admin-listen: 127.0.0.1:{admin}
trusted-proxies: [127.0.0.2/32]
identity-providers:
{provider}
tenants:
  - name: demo
    hosts: [demo.localhost, 127.0.0.1]
    identity-provider: keycloak
    upstreams:
      - name: app
        targets: ["{py}"]
      - name: other
        targets: ["{py}"]
    routes:
      - uri: /public/*
        white-listed: true
      - uri: /maybe/*
        white-listed-anon: true
      - uri: /app/*
      - uri: /other/*
        upstream: other
    identity-assertion:
      header: {HEADER}
      signing-key: [{keys}]
      ttl: 60s
    login:
      redirect-url: http://demo.localhost:{listen}/oauth/callback
    cookie:
      secure: false
      encryption-key: "{COOKIE_KEY}"
  - name: plain
    hosts: [plain.localhost]
    identity-provider: keycloak
    upstreams:
      - name: app
        targets: ["{plain}"]
    routes:
      - uri: /public/*
        white-listed: true
      - uri: /*
"#,
        listen = p.listen,
        admin = p.admin,
        py = py.target(),
        plain = plain.target(),
        keys = keys.join(", "),
    )
}

struct Stack {
    py_bin: PathBuf,
    py: PyUpstream,
    plain: Upstream,
    idp: Idp,
    gw: Gateway,
    dir: TempDir,
}

/// The IdP, the two upstreams and the gateway signing with the keys `keys` names (files in the
/// stack's folder, made by `make`). `None` when PyJWT is missing (skipped, or failed under CI).
fn stack(test: &str, keys: &[(&str, Kind)]) -> Option<Stack> {
    let Some(py_bin) = python() else {
        skip_or_fail(
            test,
            "PyJWT with cryptography is not in the project's venv (run scripts/install-deps.sh)",
        );
        return None;
    };
    let dir = TempDir::new("assertion-keys");
    for (name, kind) in keys {
        write_key(dir.path(), name, *kind);
    }
    let paths: Vec<PathBuf> = keys.iter().map(|(n, _)| dir.path().join(n)).collect();
    let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    let py = PyUpstream::start(&py_bin, &dir);
    let plain = Upstream::start("plain");
    let idp_port = free_port();
    let gw = Gateway::start(test, |p, _| config(p, idp_port, &py, &plain, &refs));
    let redirect = format!("http://demo.localhost:{}/oauth/callback", gw.listen.port());
    let idp = Idp::start_on(
        idp_port,
        None,
        &[("IDP_REDIRECT_URIS", &redirect)],
        TempDir::new("assertion-idp"),
    );
    gw.wait_ready();
    Some(Stack {
        py_bin,
        py,
        plain,
        idp,
        gw,
        dir,
    })
}

impl Stack {
    /// Rewrites the config with other signing keys (files in the stack's folder) and reloads.
    fn reload_with(&self, keys: &[&str]) {
        let paths: Vec<PathBuf> = keys.iter().map(|n| self.dir.path().join(n)).collect();
        let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
        let ports = Ports {
            listen: self.gw.listen.port(),
            admin: self.gw.admin.port(),
            tls: 0,
        };
        let text = config(&ports, self.idp.port, &self.py, &self.plain, &refs);
        std::fs::write(&self.gw.config_path, text).unwrap();
        self.gw.signal("HUP");
    }

    fn jwks_kids(&self) -> Vec<String> {
        let r = self.gw.get("127.0.0.1", "/.well-known/gatehouse/jwks.json");
        assert_eq!(r.status, 200, "{}", r.text());
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        v["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_string())
            .collect()
    }

    /// A bearer request through the gateway; the upstream's JSON answer.
    fn bearer(&self, host: &str, path: &str, token: &str, extra: &[(&str, &str)]) -> Value {
        let auth = format!("Bearer {token}");
        let mut headers = vec![("Authorization", auth.as_str())];
        headers.extend_from_slice(extra);
        let r = get(self.gw.listen, host, path, &headers).unwrap();
        assert_eq!(r.status, 200, "{host}{path}: {}", r.text());
        serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.text()))
    }
}

fn header_of(token: &str) -> Value {
    gatehouse_test_support::keys::decode(token).0
}

fn split_claims(token: &str) -> Value {
    gatehouse_test_support::keys::decode(token).1
}

#[test]
fn bearer_requests_carry_an_assertion_the_upstream_verifies_against_the_served_jwks() {
    let Some(s) = stack(
        "bearer_requests_carry_an_assertion",
        &[("p256.pem", Kind::P256)],
    ) else {
        return;
    };
    let token = s.idp.token("svc-admin");
    s.py.expect(&s.gw, "app", "http://demo.localhost");

    let seen = s.bearer("demo.localhost", "/app/x", &token, &[]);
    assert_eq!(seen["verified"], true, "{seen}");
    let claims = &seen["claims"];
    assert_eq!(claims["iss"], "http://demo.localhost");
    assert_eq!(claims["aud"], "app");
    assert!(
        claims["sub"].as_str().is_some_and(|s| !s.is_empty()),
        "{claims}"
    );
    assert!(
        claims["roles"].is_array() && claims["groups"].is_array(),
        "{claims}"
    );
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        60
    );
    let raw = seen["raw"].as_str().unwrap();
    assert_eq!(header_of(raw)["alg"], "ES256");
    assert_eq!(
        header_of(raw)["kid"].as_str(),
        Some(s.jwks_kids()[0].as_str())
    );

    // Warm: the same assertion again (kept with the cached token), not a new signature.
    let again = s.bearer("demo.localhost", "/app/y", &token, &[]);
    assert_eq!(again["raw"], seen["raw"]);

    // Another upstream is another audience; another host or scheme another issuer.
    s.py.expect(&s.gw, "other", "http://demo.localhost");
    let other = s.bearer("demo.localhost", "/other/x", &token, &[]);
    assert_eq!(other["verified"], true, "{other}");
    assert_eq!(other["claims"]["aud"], "other");
    s.py.expect(
        &s.gw,
        "app",
        &format!("http://127.0.0.1:{}", s.gw.listen.port()),
    );
    let by_ip = s.bearer(
        &format!("127.0.0.1:{}", s.gw.listen.port()),
        "/app/x",
        &token,
        &[],
    );
    assert_eq!(by_ip["verified"], true, "{by_ip}");
    // The upstream pins its issuer: an assertion for another host of the tenant fails there.
    s.py.expect(&s.gw, "app", "http://demo.localhost");
    let wrong_iss = s.bearer(
        &format!("127.0.0.1:{}", s.gw.listen.port()),
        "/app/x",
        &token,
        &[],
    );
    assert_eq!(wrong_iss["verified"], false, "{wrong_iss}");

    // The scheme as the gateway sees it: a trusted proxy's X-Forwarded-Proto counts, a
    // client's does not.
    s.py.expect(&s.gw, "app", "https://demo.localhost");
    let via = |source: &str| -> Value {
        let raw = format!(
            "GET /app/x HTTP/1.1\r\nHost: demo.localhost\r\nAuthorization: Bearer {token}\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n"
        );
        let r = request_on(socket_from(source, s.gw.listen), &raw);
        assert_eq!(r.status, 200, "{}", r.text());
        serde_json::from_slice(&r.body).unwrap()
    };
    let proxied = via("127.0.0.2");
    assert_eq!(proxied["verified"], true, "{proxied}");
    assert_eq!(proxied["claims"]["iss"], "https://demo.localhost");
    let claimed = via("127.0.0.1");
    assert_eq!(
        claimed["verified"], false,
        "an untrusted client's https: {claimed}"
    );
    assert_eq!(
        split_claims(claimed["raw"].as_str().unwrap())["iss"],
        "http://demo.localhost"
    );

    // No identity on a white-listed route: no assertion; an optional-identity route carries
    // one when the caller has an identity.
    s.py.expect(&s.gw, "app", "http://demo.localhost");
    for path in ["/public/x", "/maybe/x"] {
        let r = s.gw.get("demo.localhost", path);
        let anonymous: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(anonymous["raw"], Value::Null, "{path}: {anonymous}");
    }
    let public = s.bearer("demo.localhost", "/public/x", &token, &[]);
    assert_eq!(
        public["raw"],
        Value::Null,
        "white-listed authenticates nobody"
    );
    let maybe = s.bearer("demo.localhost", "/maybe/x", &token, &[]);
    assert_eq!(maybe["verified"], true, "{maybe}");

    // The JWKS: public, cacheable, never proxied; 405 for other methods; 404 on a tenant
    // without assertions.
    let jwks =
        s.gw.get("demo.localhost", "/.well-known/gatehouse/jwks.json");
    assert_eq!(jwks.status, 200);
    assert_eq!(jwks.header("content-type"), Some("application/json"));
    assert_eq!(jwks.header("cache-control"), Some("public, max-age=300"));
    let keys: Value = serde_json::from_slice(&jwks.body).unwrap();
    assert!(keys["keys"][0].get("d").is_none(), "no private part");
    let post = raw_request(
        s.gw.listen,
        b"POST /.well-known/gatehouse/jwks.json HTTP/1.1\r\nHost: demo.localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    let hits = s.plain.requests().len();
    let none =
        s.gw.get("plain.localhost", "/.well-known/gatehouse/jwks.json");
    assert_eq!(none.status, 404);
    assert_eq!(s.plain.requests().len(), hits, "never proxied");
}

#[test]
fn browser_session_requests_carry_a_verified_assertion() {
    let Some(s) = stack(
        "browser_session_requests_carry_an_assertion",
        &[("ed25519.pem", Kind::Ed25519)],
    ) else {
        return;
    };
    let issuer = format!("http://demo.localhost:{}", s.gw.listen.port());
    s.py.expect(&s.gw, "app", &issuer);
    let browser = Browser::new(s.gw.listen);
    let page = browser.login_from("/app/page", "alice", "alice-password", false);
    assert_eq!(page.status, 200, "{page:?}");
    let seen: Value = serde_json::from_str(&page.body).unwrap();
    assert_eq!(seen["verified"], true, "{seen}");
    assert_eq!(header_of(seen["raw"].as_str().unwrap())["alg"], "EdDSA");
    let claims = &seen["claims"];
    assert_eq!(claims["iss"], issuer.as_str());
    assert!(
        claims["roles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "admin"),
        "alice's realm roles: {claims}"
    );
    assert!(
        claims["email"].as_str().is_some_and(|e| e.contains('@')),
        "{claims}"
    );
    let again: Value = serde_json::from_str(&browser.get("/app/other").body).unwrap();
    assert_eq!(again["raw"], seen["raw"], "kept with the session's claims");
}

#[test]
fn forged_or_stale_assertions_from_clients_never_reach_an_upstream() {
    let Some(s) = stack("forged_or_stale_assertions", &[("p256.pem", Kind::P256)]) else {
        return;
    };
    let token = s.idp.token("svc-user");
    s.py.expect(&s.gw, "app", "http://demo.localhost");
    // A real assertion for another identity, captured earlier: stale for this request.
    let admin = s.idp.token("svc-admin");
    let stale = s.bearer("demo.localhost", "/app/x", &admin, &[])["raw"]
        .as_str()
        .unwrap()
        .to_string();
    let forged = TestKey::generate(Kind::P256, "forged").mint(
        "ES256",
        &serde_json::json!({"iss": "http://demo.localhost", "aud": "app", "sub": "root",
                            "iat": 0, "exp": 9999999999u64}),
    );
    for value in [stale.as_str(), forged.as_str()] {
        for name in [HEADER, "x_gatehouse_assertion", "X-GATEHOUSE-ASSERTION"] {
            // A white-listed route: the upstream sees none at all, from a client or from a
            // trusted proxy.
            let r = get(s.gw.listen, "demo.localhost", "/public/x", &[(name, value)]).unwrap();
            let seen: Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(seen["raw"], Value::Null, "{name}: {seen}");
            let raw = format!(
                "GET /public/x HTTP/1.1\r\nHost: demo.localhost\r\n{name}: {value}\r\nConnection: close\r\n\r\n"
            );
            let r = request_on(socket_from("127.0.0.2", s.gw.listen), &raw);
            let seen: Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(seen["raw"], Value::Null, "trusted proxy, {name}: {seen}");
            // An authenticated route: only the gateway's own, for this caller.
            let seen = s.bearer("demo.localhost", "/app/x", &token, &[(name, value)]);
            assert_eq!(seen["count"], 1, "{name}: {seen}");
            assert_ne!(seen["raw"].as_str(), Some(value), "{name}");
            assert_eq!(seen["verified"], true, "{seen}");
            assert_ne!(seen["claims"]["sub"], "root");
            // A tenant without assertions removes the usual name too.
            for (path, auth) in [("/public/x", None), ("/x", Some(&token))] {
                let auth = auth.map(|t| format!("Bearer {t}"));
                let mut headers = vec![(name, value)];
                if let Some(a) = &auth {
                    headers.push(("Authorization", a.as_str()));
                }
                let r = get(s.gw.listen, "plain.localhost", path, &headers).unwrap();
                assert_eq!(r.status, 200, "{path}: {}", r.text());
                let last = s.plain.last().unwrap();
                assert!(
                    last.headers
                        .iter()
                        .all(|(k, _)| !k.to_ascii_lowercase().contains("gatehouse")),
                    "{name} on {path}: {last:?}"
                );
            }
        }
    }
}

#[test]
fn key_rotation_publishes_both_keys_and_old_assertions_verify_while_published() {
    let Some(s) = stack(
        "key_rotation",
        &[("old.pem", Kind::P256), ("new.pem", Kind::Ed25519)],
    ) else {
        return;
    };
    // The stack starts with both keys written; sign with the old one only at first.
    s.reload_with(&["old.pem"]);
    assert_eventually!(
        Duration::from_secs(10),
        || s.jwks_kids().len() == 1,
        "only the old key published"
    );
    let old_kid = s.jwks_kids()[0].clone();
    let token = s.idp.token("svc-admin");
    // The upstream caches the JWKS for a second (300 s in real life, like the gateway's
    // Cache-Control), and refetches for an unknown kid only after a cooldown (PyJWKClient).
    s.py.expect_caching(&s.gw, "app", "http://demo.localhost", 1);
    let first = s.bearer("demo.localhost", "/app/x", &token, &[]);
    assert_eq!(first["verified"], true, "{first}");
    assert_eq!(first["kid"], old_kid.as_str());
    let old_assertion = first["raw"].as_str().unwrap().to_string();

    // Step 1: publish the new key beside the old one; the old one still signs.
    s.reload_with(&["old.pem", "new.pem"]);
    assert_eventually!(
        Duration::from_secs(10),
        || s.jwks_kids().len() == 2,
        "both keys published"
    );
    let kids = s.jwks_kids();
    assert_eq!(kids[0], old_kid);
    let new_kid = kids[1].clone();
    // The upstream's cached JWKS expires and it fetches both keys: the rotation's waiting step
    // (in real life the JWKS's max-age).
    std::thread::sleep(Duration::from_millis(1200));
    let during = s.bearer("demo.localhost", "/app/x", &token, &[]);
    assert_eq!(during["verified"], true, "{during}");
    assert_eq!(during["kid"], old_kid.as_str(), "the first key signs");

    // Step 2: the new key signs; the old one stays published.
    s.reload_with(&["new.pem", "old.pem"]);
    assert_eventually!(
        Duration::from_secs(10),
        || s.jwks_kids() == [new_kid.clone(), old_kid.clone()],
        "the new key first"
    );
    let second = s.bearer("demo.localhost", "/app/x", &token, &[]);
    assert_eq!(
        second["verified"], true,
        "the new key was published first: {second}"
    );
    assert_eq!(second["kid"], new_kid.as_str());
    let new_assertion = second["raw"].as_str().unwrap().to_string();
    let old = verify_once(
        &s.py_bin,
        &s.gw,
        &old_assertion,
        "app",
        "http://demo.localhost",
    );
    assert_eq!(
        old["verified"], true,
        "old assertions verify while published: {old}"
    );

    // Step 3: the old key is dropped; its assertions no longer verify, the new ones do.
    s.reload_with(&["new.pem"]);
    assert_eventually!(
        Duration::from_secs(10),
        || s.jwks_kids() == [new_kid.clone()],
        "only the new key"
    );
    let old = verify_once(
        &s.py_bin,
        &s.gw,
        &old_assertion,
        "app",
        "http://demo.localhost",
    );
    assert_eq!(old["verified"], false, "{old}");
    let new = verify_once(
        &s.py_bin,
        &s.gw,
        &new_assertion,
        "app",
        "http://demo.localhost",
    );
    assert_eq!(new["verified"], true, "{new}");
}

#[test]
fn check_reports_assertion_key_and_value_errors_with_file_line_and_key() {
    let dir = TempDir::new("assertion-check");
    let keys = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/tests/keys");
    let tenant = |name: &str, assertion: &str| {
        format!(
            "  - name: {name}\n    hosts: [{name}.localhost]\n    upstreams:\n      - name: app\n        targets: [\"127.0.0.1:1\"]\n    identity-assertion:\n{assertion}"
        )
    };
    let bad = format!(
        "tenants:\n{}{}{}",
        tenant(
            "a",
            &format!(
                "      header: X-Assert\n      signing-key: {}\n",
                keys.join("assertion-rsa.pem").display()
            )
        ),
        tenant(
            "b",
            &format!(
                "      header: X-Assert\n      signing-key: [{}, {}/missing.pem]\n",
                keys.join("assertion-p256.pem").display(),
                dir.path().display()
            )
        ),
        tenant(
            "c",
            &format!(
                "      header: \"bad header\"\n      signing-key: {}\n      ttl: 0s\n",
                keys.join("assertion-p384.pem").display()
            )
        ),
    );
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, &bad).unwrap();
    let (code, out, err) = run_cli(&["check", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(code, 1, "{out}{err}");
    let file = path.display().to_string();
    for (line, key, text) in [
        (9, "tenants[0].identity-assertion.signing-key", "an RSA key"),
        (
            17,
            "tenants[1].identity-assertion.signing-key[1]",
            "cannot read key file",
        ),
        (
            24,
            "tenants[2].identity-assertion.header",
            "invalid header name",
        ),
        (
            25,
            "tenants[2].identity-assertion.signing-key",
            "another curve than P-256",
        ),
        (26, "tenants[2].identity-assertion.ttl", "between 1s and 1h"),
    ] {
        let want = format!("{file}:{line}: {key}: ");
        assert!(
            err.lines()
                .any(|l| l.starts_with(&want) && l.contains(text)),
            "{want}...{text} in:\n{err}"
        );
    }

    let good = dir.path().join("good.yaml");
    std::fs::write(
        &good,
        format!(
            "tenants:\n{}",
            tenant(
                "a",
                &format!(
                    "      header: X-Assert\n      signing-key: [{}, {}]\n",
                    keys.join("assertion-ed25519.pem").display(),
                    keys.join("assertion-p256-sec1.pem").display()
                )
            )
        ),
    )
    .unwrap();
    let (code, out, err) = run_cli(&["check", "--config", good.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{out}{err}");
}
