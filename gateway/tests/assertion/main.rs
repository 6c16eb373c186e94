//! Identity assertions through the real binary: an upstream written the way a real one would
//! be (Python, PyJWT with cryptography, `testing/assertion/upstream.py`) verifies the JWT the
//! gateway adds against the JWKS the gateway publishes, for bearer and browser-session
//! requests; key rotation keeps old assertions verifiable while their key is published; a
//! forged or stale assertion sent by a client never reaches an upstream.
//!
//! This file: the Python upstream and the stack; `requests.rs`: bearer and browser-session
//! requests; `forged.rs`: client-sent assertions; `rotation.rs`: key rotation; `check.rs`:
//! `gatehouse check` on the assertion keys.

#[path = "../support/mod.rs"]
mod support;

mod check;
mod forged;
mod requests;
mod rotation;

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
