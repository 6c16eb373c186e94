//! Test support: real upstream servers on loopback, the real `gatehouse` binary started with a
//! config written to a temporary folder, and a raw HTTP/1.1 client that shows exact bytes.
//! The upstream servers are in `upstream.rs`.
#![allow(dead_code)] // each test binary uses a different part of this module

pub mod login;
pub mod otlp;
mod upstream;

#[allow(unused_imports)]
pub use upstream::{Seen, Upstream};

// Shared with the session tests and benches (`testing/support`); re-exported so every test
// reaches them as `support::…`.
#[allow(unused_imports)]
pub use gatehouse_test_support::{
    http::{get, raw_request, read_response, Conn, Response},
    idp,
    process::{
        free_port, signal_pid, skip_is_failure, skip_or_fail, skip_or_fail_in, wait_until, TempDir,
    },
};

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// Asserts that `f` becomes true within `timeout`.
#[macro_export]
macro_rules! assert_eventually {
    ($timeout:expr, $f:expr, $($msg:tt)+) => {
        assert!($crate::support::wait_until($timeout, $f), $($msg)+)
    };
}

/// The issuer of [`static_provider`].
pub const STATIC_ISSUER: &str = "https://static-idp.localhost/realms/demo";

/// An `identity-providers:` section naming one provider, `static`, that needs no running IdP:
/// its key is a JWKS file written into `dir` (a fresh P-256 key), loaded at start, so readiness
/// does not wait for it. For tenants that need a provider only so that their protected routes
/// are valid config, in tests of what happens before or without a token.
pub fn static_provider(dir: &Path) -> String {
    use gatehouse_test_support::keys::{jwks, Kind, TestKey};
    let file = dir.join("static-jwks.json");
    let key = TestKey::generate(Kind::P256, "static-1");
    std::fs::write(&file, jwks(&[key.jwk()])).expect("write the static JWKS");
    format!(
        "identity-providers:\n  - name: static\n    issuer: {STATIC_ISSUER}\n    jwks-file: {}\n    \
         client-id: gatehouse\n    algorithms: [ES256]\n",
        file.display()
    )
}

/// A self-signed certificate and its key, written to `dir` as `STEM.crt` and `STEM.key` (their
/// paths returned): CN the first of `names`, every name a DNS subject alternative name.
pub fn self_signed_cert(dir: &Path, stem: &str, names: &[&str]) -> (String, String) {
    let cert = dir.join(format!("{stem}.crt"));
    let key = dir.join(format!("{stem}.key"));
    let alt_names: Vec<String> = names.iter().map(|n| format!("DNS:{n}")).collect();
    let status = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        ])
        .arg(format!("/CN={}", names[0]))
        .arg("-addext")
        .arg(format!("subjectAltName={}", alt_names.join(",")))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success());
    (cert.display().to_string(), key.display().to_string())
}

/// The `gatehouse` binary under test.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gatehouse"))
}

/// A running `gatehouse run` process; stopped (SIGINT, then SIGKILL) on drop.
pub struct Gateway {
    pub child: Child,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    pub tls: Option<SocketAddr>,
    pub dir: TempDir,
    pub config_path: PathBuf,
    pub log_path: PathBuf,
}

/// A gateway and the test IdP, each knowing the other: the IdP's port is picked first (the
/// gateway's config, `render(ports, dir, idp_port)`, names its issuer), the gateway starts
/// (while the IdP is still down), then the IdP, signing with the first key of `keys` (its own
/// key without), accepting `http://demo.localhost:PORT/oauth/callback` as a redirect URI and
/// `http://demo.localhost:PORT/` after logout, with `idp_env` on top; both ready.
pub fn gateway_with_idp(
    tag: &str,
    keys: Option<&Path>,
    idp_env: &[(&str, &str)],
    render: impl Fn(&Ports, &Path, u16) -> String,
) -> (Gateway, idp::Idp) {
    let idp_port = free_port();
    let gw = Gateway::start(tag, |p, dir| render(p, dir, idp_port));
    let base = format!("http://demo.localhost:{}", gw.listen.port());
    let (callback, after_logout) = (format!("{base}/oauth/callback"), format!("{base}/"));
    let mut env = vec![
        ("IDP_REDIRECT_URIS", callback.as_str()),
        ("IDP_POST_LOGOUT_REDIRECT_URIS", after_logout.as_str()),
    ];
    env.extend_from_slice(idp_env);
    let idp = idp::Idp::start_on(idp_port, keys, &env, TempDir::new(&format!("{tag}-idp")));
    gw.wait_ready();
    (gw, idp)
}

/// Ports and paths a test config is rendered with.
pub struct Ports {
    pub listen: u16,
    pub admin: u16,
    pub tls: u16,
}

impl Gateway {
    /// Writes the config produced by `render` (given fresh ports and the temp dir) and starts
    /// the gateway, waiting until its admin `/healthz` answers. A gateway that exits at start or
    /// finds one of its free ports taken before it bound (any outgoing connection may take one)
    /// is stopped and started again on other ports, up to three times.
    pub fn start(tag: &str, render: impl Fn(&Ports, &Path) -> String) -> Gateway {
        for attempt in 1..=3 {
            let mut gw = Gateway::spawn(tag, &render);
            let mut failed_start = false;
            let up = wait_until(Duration::from_secs(20), || {
                // Pingora retries a bind on a taken port every second instead of exiting.
                let port_taken = std::fs::read_to_string(&gw.log_path)
                    .is_ok_and(|log| log.contains(" is in use, will try again"));
                if port_taken || matches!(gw.child.try_wait(), Ok(Some(_))) {
                    failed_start = true;
                    return true;
                }
                get(gw.admin, "admin", "/healthz", &[]).is_ok_and(|r| r.status == 200)
                    && TcpStream::connect(gw.listen).is_ok()
            });
            if up && !failed_start {
                return gw;
            }
            assert!(
                failed_start && attempt < 3,
                "gatehouse did not become healthy; log:\n{}",
                gw.log()
            );
            eprintln!(
                "gatehouse could not start (attempt {attempt} of 3), again on other ports; log:\n{}",
                gw.log()
            );
        }
        unreachable!("the last attempt returns or panics")
    }

    fn spawn(tag: &str, render: &impl Fn(&Ports, &Path) -> String) -> Gateway {
        let dir = TempDir::new(tag);
        let ports = Ports {
            listen: free_port(),
            admin: free_port(),
            tls: free_port(),
        };
        let config = render(&ports, dir.path());
        let config_path = dir.path().join("gatehouse.yaml");
        std::fs::write(&config_path, config).unwrap();
        let log_path = dir.path().join("gatehouse.log");
        let child = spawn_gateway(&config_path, &log_path, false);
        Gateway {
            child,
            listen: format!("127.0.0.1:{}", ports.listen).parse().unwrap(),
            admin: format!("127.0.0.1:{}", ports.admin).parse().unwrap(),
            tls: Some(format!("127.0.0.1:{}", ports.tls).parse().unwrap()),
            dir,
            config_path,
            log_path,
        }
    }

    /// Waits until the admin listener answers `/healthz` and the proxy port accepts.
    pub fn wait_healthy(&self) {
        let ok = wait_until(Duration::from_secs(20), || {
            get(self.admin, "admin", "/healthz", &[]).is_ok_and(|r| r.status == 200)
                && TcpStream::connect(self.listen).is_ok()
        });
        assert!(ok, "gatehouse did not become healthy; log:\n{}", self.log());
    }

    /// Waits until the gateway is ready and every pool has a passing health check and every
    /// identity provider its keys (`/readyz` itself no longer waits for those: one tenant's
    /// fault must not make the process unready; `/readyz?verbose` shows each). On a machine
    /// starved by other load, a check that times out is only retried an interval later, so this
    /// allows more than the start-up itself needs.
    pub fn wait_ready(&self) {
        self.wait_readiness(
            "every pool up and every identity provider with keys",
            |status, text| {
                status == 200 && !text.contains(": down,") && !text.contains(": pending,")
            },
        );
    }

    /// `GET /metrics` on the admin listener.
    pub fn metrics(&self) -> String {
        get(self.admin, "admin", "/metrics", &[])
            .map(|r| r.text())
            .unwrap_or_default()
    }

    /// The metrics once they contain every one of `parts`, or as they are after 10 s (the
    /// caller's assertions then name what is missing). Counters of the logging phase, such as
    /// refusals by reason, are recorded just after the response the test has already read.
    pub fn metrics_containing(&self, parts: &[&str]) -> String {
        let mut text = String::new();
        wait_until(Duration::from_secs(10), || {
            text = self.metrics();
            parts.iter().all(|p| text.contains(p))
        });
        text
    }

    /// `GET /readyz?verbose`: (status, body); one line per pool and identity provider.
    pub fn readiness(&self) -> (u16, String) {
        get(self.admin, "admin", "/readyz?verbose", &[])
            .map(|r| (r.status, r.text()))
            .unwrap_or_default()
    }

    /// Polls `/readyz?verbose` until `ready(status, body)` holds (60 s, see `wait_ready`) and
    /// returns the body; panics naming `what`, the last body and the log otherwise.
    pub fn wait_readiness(&self, what: &str, mut ready: impl FnMut(u16, &str) -> bool) -> String {
        let mut last = (0, String::new());
        let ok = wait_until(Duration::from_secs(60), || {
            last = self.readiness();
            ready(last.0, &last.1)
        });
        assert!(
            ok,
            "gatehouse did not reach: {what}; /readyz?verbose {}:\n{}\nlog:\n{}",
            last.0,
            last.1,
            self.log()
        );
        last.1
    }

    /// The process's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// `GET path` on the proxy listener.
    pub fn get(&self, host: &str, path: &str) -> Response {
        get(self.listen, host, path, &[])
            .unwrap_or_else(|e| panic!("GET {host}{path}: {e}\nlog:\n{}", self.log()))
    }

    /// `GET path` with extra headers.
    pub fn get_with(&self, host: &str, path: &str, extra: &[(&str, &str)]) -> Response {
        get(self.listen, host, path, extra)
            .unwrap_or_else(|e| panic!("GET {host}{path}: {e}\nlog:\n{}", self.log()))
    }

    /// Sends a signal by name (HUP, TERM, QUIT) to the process.
    pub fn signal(&self, name: &str) {
        signal_pid(self.child.id(), name);
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        // SIGINT: Pingora's fast shutdown (SIGTERM would wait out the grace period).
        signal_pid(self.child.id(), "INT");
        let stopped = wait_until(Duration::from_secs(5), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        });
        if !stopped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Starts `gatehouse run --config path` with stderr to `log`.
pub fn spawn_gateway(config: &Path, log: &Path, upgrade: bool) -> Child {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut cmd = Command::new(binary());
    cmd.arg("run").arg("--config").arg(config);
    if upgrade {
        cmd.arg("--upgrade");
    }
    cmd.env("GATEHOUSE_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .spawn()
        .expect("start gatehouse")
}

/// Runs `gatehouse ARGS...` to completion: (exit code, stdout, stderr).
pub fn run_cli(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(binary());
    // From the workspace root, as a user runs it (example configs use paths relative to it).
    cmd.args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run gatehouse");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Counts responses by status from many concurrent workers until `stop` is set.
pub struct Load {
    pub stop: Arc<AtomicBool>,
    pub statuses: Arc<Mutex<HashMap<u16, usize>>>,
    pub errors: Arc<Mutex<Vec<String>>>,
    handles: Vec<thread::JoinHandle<()>>,
}

impl Load {
    /// Starts `workers` threads sending `GET path` to `addr` with `host`, each on fresh or
    /// keep-alive connections, at most `max_requests` each (bounded) until stopped.
    pub fn start(
        addr: SocketAddr,
        host: &str,
        path: &str,
        workers: usize,
        max_requests: usize,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let statuses = Arc::new(Mutex::new(HashMap::new()));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let mut handles = Vec::new();
        for w in 0..workers {
            let (stop, statuses, errors) = (stop.clone(), statuses.clone(), errors.clone());
            let (host, path) = (host.to_string(), path.to_string());
            handles.push(thread::spawn(move || {
                let mut conn: Option<Conn> = None;
                for i in 0..max_requests {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    // Alternate keep-alive and fresh connections across workers.
                    let result = if w % 2 == 0 {
                        get(addr, &host, &path, &[])
                    } else {
                        if conn.is_none() {
                            conn = Conn::open(addr).ok();
                        }
                        match conn.as_mut().map(|c| c.get(&host, &path)) {
                            Some(Ok(r)) => {
                                if r.header("connection")
                                    .is_some_and(|v| v.eq_ignore_ascii_case("close"))
                                {
                                    conn = None;
                                }
                                Ok(r)
                            }
                            // A keep-alive connection closed by the server between requests
                            // (graceful shutdown of an old process) is retried on a new one,
                            // as every HTTP client does for idempotent requests.
                            Some(Err(_)) | None => {
                                conn = None;
                                get(addr, &host, &path, &[])
                            }
                        }
                    };
                    match result {
                        Ok(r) => *statuses.lock().unwrap().entry(r.status).or_default() += 1,
                        Err(e) => errors.lock().unwrap().push(format!("request {i}: {e}")),
                    }
                    thread::sleep(Duration::from_millis(2));
                }
            }));
        }
        Load {
            stop,
            statuses,
            errors,
            handles,
        }
    }

    /// Stops the workers and returns (statuses, errors).
    pub fn finish(self) -> (HashMap<u16, usize>, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        for h in self.handles {
            let _ = h.join();
        }
        let s = self.statuses.lock().unwrap().clone();
        let e = self.errors.lock().unwrap().clone();
        (s, e)
    }
}

/// Connects from a chosen loopback source address (127.0.0.0/8 is all loopback on Linux).
pub fn socket_from(source_ip: &str, to: std::net::SocketAddr) -> std::net::TcpStream {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let src: std::net::SocketAddr = format!("{source_ip}:0").parse().unwrap();
    sock.bind(&src.into()).unwrap();
    sock.connect(&to.into()).unwrap();
    sock.into()
}

/// Sends raw bytes on an open connection and reads one response.
pub fn request_on(stream: std::net::TcpStream, raw: &str) -> Response {
    use std::io::Write;
    let mut s = stream;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw.as_bytes()).unwrap();
    read_response(&mut std::io::BufReader::new(s), false).unwrap()
}

/// The test IdP as the `keycloak` entry of `identity-providers` (a list item at the top
/// level): the confidential client `gatehouse` the tests log in with, plain http allowed, its
/// tokens' audience `gatehouse`. Lines that follow it (indented four) add to the entry.
pub fn keycloak_provider(issuer: &str) -> String {
    format!(
        "  - name: keycloak
    issuer: {issuer}
    allow-insecure-http: true
    client-id: gatehouse
    client-secret: gatehouse-secret
    audiences: [gatehouse]"
    )
}
