//! Processes, ports, folders and skips: what every real-component test needs around the
//! component.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// A free loopback port (bound then released; collisions are unlikely but retried by callers
/// that wait for readiness).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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

/// Polls `f` until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    poll_every(Duration::from_millis(25), timeout, &mut f)
}

/// Calls `f` every `interval` until it returns true (then true) or `timeout` passes (false).
pub fn poll_every(interval: Duration, timeout: Duration, f: &mut impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        thread::sleep(interval);
    }
    false
}

/// A temporary folder removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates `gatehouse-test-TAG-PID-N` in the system's temp folder.
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "gatehouse-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes `contents` to a fresh file in the temp dir and returns its path.
pub fn temp_file(name: &str, contents: &str) -> PathBuf {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "gatehouse-session-tests-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write temp file");
    path
}

/// `kill -SIG pid`.
pub fn signal_pid(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status();
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
