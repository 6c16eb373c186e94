//! The real OpenID provider (`testing/idp`, the `oidc-provider` npm package with Keycloak-shaped
//! claims) started on a loopback port, plus token helpers.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::http::{get, raw_request, Response};
use crate::process::{free_port, signal_pid, wait_until, TempDir};

/// The IdP's folder in the repository.
pub fn idp_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../idp")
}

fn ensure_installed() {
    assert!(
        idp_dir().join("node_modules/oidc-provider").exists(),
        "testing/idp has no node_modules: run ./scripts/install-deps.sh (it runs npm ci there)"
    );
}

/// Writes a private JWKS (one key per algorithm) and its public half; returns the private path.
pub fn make_keys(dir: &Path, name: &str, algs: &[&str]) -> PathBuf {
    ensure_installed();
    let out = dir.join(format!("{name}.json"));
    let status = Command::new("node")
        .arg(idp_dir().join("keys.mjs"))
        .arg(&out)
        .args(algs)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("node runs");
    assert!(status.success(), "keys.mjs failed");
    out
}

/// Signs `claims` with the first key of a private JWKS file (as the IdP would).
pub fn sign(keys: &Path, claims: &serde_json::Value, typ: Option<&str>) -> String {
    let mut cmd = Command::new("node");
    cmd.arg(idp_dir().join("sign.mjs"))
        .arg(keys)
        .arg(claims.to_string());
    if let Some(t) = typ {
        cmd.arg(t);
    }
    let out = cmd.output().expect("node runs");
    assert!(
        out.status.success(),
        "sign.mjs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A running IdP; stopped on drop.
pub struct Idp {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// `http://127.0.0.1:PORT/realms/demo`.
    pub issuer: String,
    /// A folder for key files.
    pub dir: TempDir,
}

impl Idp {
    /// Starts the IdP on a free port, signing with the first key of `keys` (or a fresh RS256
    /// key), with extra environment such as `IDP_ACCESS_TOKEN_TTL`. A port that someone else
    /// took between the check and node's bind (any outgoing connection may) costs a retry on
    /// another port.
    pub fn start(keys: Option<&Path>, env: &[(&str, &str)]) -> Idp {
        let mut last = String::new();
        for _ in 0..3 {
            match Idp::try_start_on(free_port(), keys, env, TempDir::new("idp")) {
                Ok(idp) => return idp,
                Err(e) => last = e,
            }
        }
        panic!("the IdP did not start: {last}");
    }

    /// Starts the IdP on `port`. A port picked before the gateway that calls it was started
    /// can be held for a moment by something else (a connection the gateway opened towards the
    /// not-yet-listening port can connect to itself from that very port): the start is retried
    /// while the address is in use, for up to 15 s.
    pub fn start_on(port: u16, keys: Option<&Path>, env: &[(&str, &str)], dir: TempDir) -> Idp {
        let mut dir = Some(dir);
        for _ in 0..30 {
            let attempt = dir.take().unwrap_or_else(|| TempDir::new("idp"));
            match Idp::try_start_on(port, keys, env, attempt) {
                Ok(idp) => return idp,
                Err(e) if e.contains("EADDRINUSE") => {
                    std::thread::sleep(Duration::from_millis(500))
                }
                Err(e) => panic!("{e}"),
            }
        }
        panic!("the IdP could not listen on port {port} within 15 s: the address stayed in use");
    }

    fn try_start_on(
        port: u16,
        keys: Option<&Path>,
        env: &[(&str, &str)],
        dir: TempDir,
    ) -> Result<Idp, String> {
        ensure_installed();
        let stderr_path = dir.path().join("idp.stderr");
        let stderr = std::fs::File::create(&stderr_path).expect("IdP stderr file");
        let mut cmd = Command::new("node");
        cmd.arg(idp_dir().join("idp.mjs"))
            .env("IDP_PORT", port.to_string())
            .env("IDP_HOST", "127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        if let Some(k) = keys {
            cmd.env("IDP_KEYS", k);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start node testing/idp/idp.mjs");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(issuer) = line.strip_prefix("IDP READY ") {
                    let _ = tx.send(issuer.to_string());
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(issuer) => Ok(Idp {
                child,
                port,
                issuer,
                dir,
            }),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
                Err(format!(
                    "the IdP on port {port} did not print IDP READY within 30 s ({e}); its stderr:\n{}",
                    stderr.trim_end()
                ))
            }
        }
    }

    fn post_form(&self, path: &str, body: &str) -> Response {
        let raw = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n{body}",
            port = self.port,
            len = body.len()
        );
        raw_request(
            format!("127.0.0.1:{}", self.port).parse().unwrap(),
            raw.as_bytes(),
        )
        .expect("IdP answers")
    }

    /// A client-credentials access token (JWT) for a service-account client
    /// (`svc-admin`, `svc-user`, `svc-nobody`; the secret is `<client>-secret`).
    pub fn token(&self, client: &str) -> String {
        let body = format!(
            "grant_type=client_credentials&client_id={client}&client_secret={client}-secret"
        );
        let r = self.post_form("/realms/demo/protocol/openid-connect/token", &body);
        assert_eq!(r.status, 200, "token request for {client}: {}", r.text());
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        v["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    /// A client-credentials access token (JWT) for `resource` (RFC 8707 `resource=`): the IdP
    /// issues it with `aud` = that resource alone (any http(s) URL on a loopback host; the
    /// default resource `urn:gatehouse` gives the usual `["gatehouse","account"]`).
    pub fn token_for_resource(&self, client: &str, resource: &str) -> String {
        let body = format!(
            "grant_type=client_credentials&client_id={client}&client_secret={client}-secret&resource={}",
            percent_encode(resource)
        );
        let r = self.post_form("/realms/demo/protocol/openid-connect/token", &body);
        assert_eq!(
            r.status,
            200,
            "token request for {client} and {resource}: {}",
            r.text()
        );
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        v["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    /// The authorization-code grant's token response for `code` (client `gatehouse`).
    pub fn exchange_code(&self, code: &str, redirect_uri: &str) -> serde_json::Value {
        let body = format!(
            "grant_type=authorization_code&client_id=gatehouse&client_secret=gatehouse-secret&code={}&redirect_uri={}",
            percent_encode(code),
            percent_encode(redirect_uri)
        );
        let r = self.post_form("/realms/demo/protocol/openid-connect/token", &body);
        assert_eq!(r.status, 200, "code exchange: {}", r.text());
        serde_json::from_slice(&r.body).unwrap()
    }

    /// `/__test/stats`: token requests by grant type and JWKS fetches.
    pub fn stats(&self) -> serde_json::Value {
        let r = get(
            format!("127.0.0.1:{}", self.port).parse().unwrap(),
            "127.0.0.1",
            "/__test/stats",
            &[],
        )
        .unwrap();
        serde_json::from_slice(&r.body).unwrap()
    }

    /// Sets how the token endpoint answers the refresh_token grant (`/__test/refresh-fault`):
    /// `mode` is `off`, `503` or `invalid_grant`; each refresh waits `delay_ms` first.
    pub fn refresh_fault(&self, mode: &str, delay_ms: u64) {
        let r = self.post_form(
            &format!("/__test/refresh-fault?mode={mode}&delay_ms={delay_ms}"),
            "",
        );
        assert_eq!(r.status, 200, "refresh-fault {mode}: {}", r.text());
    }

    /// Makes every realm request answer 503 (`on`) or answer normally again
    /// (`/__test/outage`).
    pub fn outage(&self, on: bool) {
        let mode = if on { "503" } else { "off" };
        let r = self.post_form(&format!("/__test/outage?mode={mode}"), "");
        assert_eq!(r.status, 200, "outage {mode}: {}", r.text());
    }

    /// Refresh-grant requests and refresh-grant errors so far (`/__test/stats`).
    pub fn refreshes(&self) -> (u64, u64) {
        let s = self.stats();
        let count = |k: &str| s[k]["refresh_token"].as_u64().unwrap_or(0);
        (
            count("token_requests_by_grant_type"),
            count("token_errors_by_grant_type"),
        )
    }

    /// JWKS fetches so far.
    pub fn jwks_fetches(&self) -> u64 {
        let s = self.stats();
        s["jwks"]
            .as_u64()
            .or_else(|| s["jwks_fetches"].as_u64())
            .or_else(|| s["jwksFetches"].as_u64())
            .unwrap_or_else(|| panic!("no JWKS counter in stats: {s}"))
    }

    /// Stops the IdP (SIGTERM, then SIGKILL).
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        signal_pid(self.child.id(), "TERM");
        if !wait_until(Duration::from_secs(5), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        }) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `application/x-www-form-urlencoded` / query encoding of `s` (unreserved characters kept).
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
