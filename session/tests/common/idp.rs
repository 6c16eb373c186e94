//! The real test IdP (`testing/idp/idp.mjs`, oidc-provider) as a child process on a free
//! loopback port, for the tests that talk to it.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The IdP child process, killed when dropped.
pub struct Idp {
    child: Child,
    /// Its issuer URL, as it printed it when ready.
    pub issuer: String,
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a skipped real-component test must fail instead: `CI` is `true` or `1` (as GitHub
/// Actions, GitLab CI and most runners set it). A skipped test is not a pass in CI.
pub fn skip_is_failure(ci: Option<&str>) -> bool {
    ci.is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Skips the calling test because a real component (`why`) is missing: prints
/// `SKIPPED test: why` and returns, or panics with that line when `CI=true`.
pub fn skip_or_fail(test: &str, why: &str) {
    skip_or_fail_in(std::env::var("CI").ok().as_deref(), test, why);
}

/// [`skip_or_fail`] with the value of `CI` given.
pub fn skip_or_fail_in(ci: Option<&str>, test: &str, why: &str) {
    let line = format!("SKIPPED {test}: {why}");
    assert!(
        !skip_is_failure(ci),
        "{line} (CI=true: a real-component test may not be skipped; install it)"
    );
    eprintln!("{line}");
}

/// Whether `node` is installed (the IdP tests are skipped, with a message, without it; they
/// fail instead when `CI=true`).
pub fn node_available() -> bool {
    Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Idp {
    /// Starts the IdP with these extra `IDP_*` settings and waits (up to 30 s) for its
    /// `IDP READY <issuer>` line. A port taken between the check and node's bind (any outgoing
    /// connection may take it) costs a retry on another port.
    pub fn start(env: &[(&str, &str)]) -> Idp {
        for attempt in 1..=3 {
            match Idp::try_start(env) {
                Some(idp) => return idp,
                None => eprintln!("the IdP exited before IDP READY (attempt {attempt} of 3)"),
            }
        }
        panic!("the IdP did not print IDP READY <issuer> (3 attempts; its stderr is above)");
    }

    fn try_start(env: &[(&str, &str)]) -> Option<Idp> {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.local_addr().expect("addr").port()
        };
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testing/idp");
        let mut child = Command::new("node")
            .arg("idp.mjs")
            .current_dir(&dir)
            .env("IDP_PORT", port.to_string())
            .env("IDP_HOST", "127.0.0.1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start node idp.mjs");
        let stdout = child.stdout.take().expect("stdout");
        let mut idp = Idp {
            child,
            issuer: String::new(),
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(issuer) = line.strip_prefix("IDP READY ") {
                    let _ = tx.send(issuer.trim().to_string());
                }
            }
        });
        // `idp` is dropped (its process stopped) when it never got ready.
        idp.issuer = rx.recv_timeout(Duration::from_secs(30)).ok()?;
        Some(idp)
    }
}
