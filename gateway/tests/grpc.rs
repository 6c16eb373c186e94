//! gRPC through the real binary with a real client and server (Python grpcio, the stubs
//! generated at test time from testing/grpc/echo.proto): HTTP/2 downstream over TLS (ALPN h2)
//! and over plain text with prior knowledge (`listen-h2c`), to an `h2: true` upstream. Unary
//! and server-streaming calls, the upstream's status, message and trailers passed through,
//! `te: trailers` kept (grpcio's server refuses a call without it), `grpc-timeout` reaching the
//! upstream, identity headers as metadata, and every refusal of the gateway a trailers-only
//! gRPC answer with its status code and the request ID (a rate limit's included).

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use gatehouse_test_support::keys::{jwks, now, Kind, TestKey};
use serde_json::{json, Value};
use support::*;

const ISSUER: &str = "https://issuer.test/realms/demo";

/// The Python with grpcio and grpcio-tools (scripts/install-deps.sh puts them in the test
/// venv) and the stubs generated from testing/grpc/echo.proto into a temporary folder.
struct Tools {
    python: PathBuf,
    stubs: TempDir,
    scripts: PathBuf,
}

impl Tools {
    fn find() -> Option<Tools> {
        let venv = std::env::var_os("GATEHOUSE_VENV")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/gatehouse-venv"))
            })?;
        let python = venv.join("bin/python");
        let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testing/grpc");
        let stubs = TempDir::new("grpc-stubs");
        let generated = Command::new(&python)
            .args(["-m", "grpc_tools.protoc", "-I"])
            .arg(&scripts)
            .arg(format!("--python_out={}", stubs.path().display()))
            .arg(format!("--grpc_python_out={}", stubs.path().display()))
            .arg(scripts.join("echo.proto"))
            .status()
            .is_ok_and(|s| s.success());
        generated.then_some(Tools {
            python,
            stubs,
            scripts,
        })
    }

    /// Runs `calls` (see testing/grpc/client.py) on one channel to `target` with `authority`,
    /// over TLS trusting `ca` when given, else h2c.
    fn call(&self, target: &str, authority: &str, calls: &Value, ca: Option<&str>) -> Vec<Value> {
        let mut cmd = Command::new(&self.python);
        cmd.arg(self.scripts.join("client.py"))
            .arg(self.stubs.path())
            .arg(target)
            .arg(authority)
            .arg(calls.to_string());
        if let Some(ca) = ca {
            cmd.arg(ca);
        }
        let out = cmd.output().expect("run client.py");
        assert!(
            out.status.success(),
            "client.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("client.py prints JSON")
    }
}

/// testing/grpc/server.py on a loopback port; ends with its stdin when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(tools: &Tools) -> Server {
        let mut child = Command::new(&tools.python)
            .arg(tools.scripts.join("server.py"))
            .arg(tools.stubs.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start server.py");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .strip_prefix("PORT ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("server.py did not start: {line:?}"));
        Server { child, port }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(p: &Ports, dir: &Path, jwks_file: &Path, server: &Server) -> String {
    let (cert, key) = self_signed_cert(dir, "tls", &["demo.localhost", "limited.localhost"]);
    format!(
        r#"
listen: 127.0.0.1:{listen}
listen-h2c: true
tls-listen: 127.0.0.1:{tls}
tls-cert: {cert}
tls-key: {key}
admin-listen: 127.0.0.1:{admin}
identity-providers:
  - name: static
    issuer: {ISSUER}
    jwks-file: {jwks}
    client-id: gatehouse
    algorithms: [ES256]
tenants:
  - name: demo
    hosts: [demo.localhost]
    identity-provider: static
    upstreams:
      - name: grpc
        targets: ["127.0.0.1:{port}"]
        h2: true
        read-timeout: 1s
    identity-headers:
      X-Auth-Subject: sub
    routes:
      - uri: /gatehouse.test.Echo/Count
        roles: [admin]
      - uri: /gatehouse.test.Echo/*
        max-body-size: 256
  - name: down
    hosts: [down.localhost]
    identity-provider: static
    upstreams:
      - name: gone
        targets: ["127.0.0.1:1"]
        h2: true
    routes:
      - uri: /*
  - name: limited
    hosts: [limited.localhost]
    identity-provider: static
    upstreams:
      - name: grpc
        targets: ["127.0.0.1:{port}"]
        h2: true
    routes:
      - uri: /gatehouse.test.Echo/*
        rate-limits:
          - {{ key: subject, rate: 1/h, burst: 2 }}
"#,
        listen = p.listen,
        tls = p.tls,
        admin = p.admin,
        jwks = jwks_file.display(),
        port = server.port,
    )
}

fn token(key: &TestKey, sub: &str, roles: &[&str]) -> String {
    let now = now();
    key.mint(
        "ES256",
        &json!({
            "iss": ISSUER, "aud": "gatehouse", "sub": sub, "iat": now, "exp": now + 600,
            "realm_access": {"roles": roles},
        }),
    )
}

fn bearer(token: &str) -> Value {
    json!([["authorization", format!("Bearer {token}")]])
}

/// The value of metadata `name` in a list of [key, value] pairs.
fn meta<'a>(pairs: &'a Value, name: &str) -> Option<&'a str> {
    pairs
        .as_array()?
        .iter()
        .find(|p| p[0] == name)
        .and_then(|p| p[1].as_str())
}

#[test]
fn grpc_calls_pass_over_h2c_and_tls_and_refusals_are_grpc_statuses() {
    let Some(tools) = Tools::find() else {
        skip_or_fail(
            "grpc_calls_pass_over_h2c_and_tls_and_refusals_are_grpc_statuses",
            "Python grpcio/grpcio-tools not in the test venv (scripts/install-deps.sh)",
        );
        return;
    };
    let server = Server::start(&tools);
    let key = TestKey::generate(Kind::P256, "grpc-1");
    let keys_dir = TempDir::new("grpc-keys");
    let jwks_file = keys_dir.path().join("jwks.json");
    std::fs::write(&jwks_file, jwks(&[key.jwk()])).unwrap();
    let gw = Gateway::start("grpc", |p, dir| config(p, dir, &jwks_file, &server));
    gw.wait_readiness("the gRPC upstream is up", |status, text| {
        status == 200 && text.contains("pool demo/grpc: up")
    });
    let ca = gw.dir.path().join("tls.crt");
    let alice = token(&key, "alice", &["admin"]);
    let bob = token(&key, "bob", &[]);

    let calls = json!([
        {"rpc": "unary", "request": {"message": "hello"}, "timeout": 30,
         "metadata": [["authorization", format!("Bearer {alice}")], ["x-auth-subject", "mallory"]]},
        {"rpc": "count", "request": {"n": 50}, "metadata": bearer(&alice)},
        {"rpc": "unary", "request": {"message": "no such thing", "fail_code": 5}, "metadata": bearer(&alice)},
        {"rpc": "unary", "request": {"message": "slow", "delay_ms": 5000}, "metadata": bearer(&alice), "timeout": 0.5},
        {"rpc": "unary", "request": {"message": "anonymous"}},
        {"rpc": "unary", "request": {"message": "forged"}, "metadata": bearer(&format!("{alice}x"))},
        {"rpc": "count", "request": {"n": 1}, "metadata": bearer(&bob)},
        {"rpc": "unary", "request": {"message": "x".repeat(1024)}, "metadata": bearer(&alice)},
        {"rpc": "unary", "request": {"message": "patient", "delay_ms": 2000}, "metadata": bearer(&alice), "timeout": 10},
        {"rpc": "unary", "request": {"message": "no deadline", "delay_ms": 2000}, "metadata": bearer(&alice)},
    ]);
    let h2c = gw.listen.to_string();
    let tls = gw.tls.unwrap().to_string();
    for (name, target, ca) in [
        ("h2c", &h2c, None),
        ("tls", &tls, Some(ca.to_str().unwrap())),
    ] {
        let started = std::time::Instant::now();
        let r = tools.call(target, "demo.localhost", &calls, ca);
        // The body over max-body-size is refused at once, not after the upstream's 30 s
        // read-timeout (an HTTP/2 upstream waits for the rest of a body it never gets).
        assert!(
            started.elapsed() < std::time::Duration::from_secs(15),
            "{name}: the calls took {:?}",
            started.elapsed()
        );
        let [unary, stream, failed, deadline, anonymous, forged, forbidden, too_big, patient, no_deadline] =
            &r[..]
        else {
            panic!("{name}: {r:?}")
        };
        // Unary: the reply, the identity as metadata, the token kept here, the deadline
        // forwarded, the upstream's trailers passed through, the request ID in the headers.
        assert_eq!(unary["code"], "OK", "{name}: {unary}");
        let reply = &unary["replies"][0];
        assert_eq!(reply["message"], "hello");
        let seen = &reply["metadata"];
        // (repeated keys would be joined with ","; the client's own value is gone)
        assert_eq!(seen["x-auth-subject"], "alice", "{name}: {seen}");
        assert!(seen.get("authorization").is_none(), "{name}: {seen}");
        assert!(seen.get("x-request-id").is_some(), "{name}: {seen}");
        let left: f64 = seen["deadline-seconds-left"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            (20.0..=30.0).contains(&left),
            "{name}: the upstream saw the client's 30 s deadline: {left}"
        );
        assert_eq!(
            meta(&unary["trailing"], "x-upstream-trailer"),
            Some("present")
        );
        assert!(
            meta(&unary["initial"], "x-request-id").is_some(),
            "{name}: {unary}"
        );
        // Server streaming: every message, in order.
        assert_eq!(stream["code"], "OK", "{name}: {stream}");
        let items: Vec<&str> = stream["replies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["message"].as_str().unwrap())
            .collect();
        let expected: Vec<String> = (0..50).map(|i| format!("item-{i}")).collect();
        assert_eq!(items, expected, "{name}");
        // The upstream's own status and message reach the client.
        assert_eq!(failed["code"], "NOT_FOUND", "{name}: {failed}");
        assert_eq!(failed["details"], "no such thing");
        assert_eq!(deadline["code"], "DEADLINE_EXCEEDED", "{name}: {deadline}");
        // The upstream's read-timeout is 1 s: a call whose deadline is longer waits for the
        // server as long as its client does; one without a deadline is ended by the gateway.
        assert_eq!(patient["code"], "OK", "{name}: {patient}");
        assert_eq!(patient["replies"][0]["message"], "patient");
        assert_eq!(
            no_deadline["code"], "DEADLINE_EXCEEDED",
            "{name}: {no_deadline}"
        );
        assert!(meta(&no_deadline["trailing"], "x-request-id").is_some());
        // The gateway's refusals: trailers-only (everything in the trailing metadata, no
        // headers before it), the gRPC code, the reason and the request ID.
        for (call, code, reason) in [
            (anonymous, "UNAUTHENTICATED", "unauthenticated"),
            (forged, "UNAUTHENTICATED", ""), // the token error's own reason
            (forbidden, "PERMISSION_DENIED", "missing_role"),
            (too_big, "RESOURCE_EXHAUSTED", "body_too_large"),
        ] {
            assert_eq!(call["code"], code, "{name}: {call}");
            let details = call["details"].as_str().unwrap();
            let id = meta(&call["trailing"], "x-request-id")
                .unwrap_or_else(|| panic!("{name}: the request ID: {call}"));
            assert!(
                details.starts_with(reason) && details.contains(id),
                "{name}: {details:?} names {reason} and {id}"
            );
            assert_eq!(call["initial"], json!([]), "{name}: trailers-only: {call}");
        }
    }
    // No healthy target (connection refused or health-checked down): UNAVAILABLE.
    let down = tools.call(
        &h2c,
        "down.localhost",
        &json!([{"rpc": "unary", "request": {"message": "x"}, "metadata": bearer(&alice)}]),
        None,
    );
    assert_eq!(down[0]["code"], "UNAVAILABLE", "{down:?}");
    assert!(
        meta(&down[0]["trailing"], "x-request-id").is_some(),
        "{down:?}"
    );
    // Over a rate limit (2 calls per subject, then one an hour): RESOURCE_EXHAUSTED,
    // trailers-only, the reason and the request ID, on the h2c and on the TLS listener alike
    // (one bucket per subject: the TLS call comes after the h2c calls emptied it).
    let unary =
        json!({"rpc": "unary", "request": {"message": "limited"}, "metadata": bearer(&alice)});
    let mut limited = tools.call(
        &h2c,
        "limited.localhost",
        &json!([unary, unary, unary]),
        None,
    );
    limited.extend(tools.call(
        &tls,
        "limited.localhost",
        &json!([unary]),
        Some(ca.to_str().unwrap()),
    ));
    let [first, second, refused @ ..] = &limited[..] else {
        panic!("{limited:?}")
    };
    for allowed in [first, second] {
        assert_eq!(allowed["code"], "OK", "{allowed}");
        assert_eq!(allowed["replies"][0]["message"], "limited");
    }
    assert_eq!(refused.len(), 2, "{limited:?}");
    for call in refused {
        assert_eq!(call["code"], "RESOURCE_EXHAUSTED", "{call}");
        let id = meta(&call["trailing"], "x-request-id")
            .unwrap_or_else(|| panic!("the request ID: {call}"));
        let details = call["details"].as_str().unwrap();
        assert!(
            details.starts_with("rate_limited") && details.contains(id),
            "{details:?} names rate_limited and {id}"
        );
        assert_eq!(call["initial"], json!([]), "trailers-only: {call}");
        // The refusal's HTTP fields travel in the trailers too: back in an hour.
        assert_eq!(
            meta(&call["trailing"], "retry-after"),
            Some("3600"),
            "{call}"
        );
        assert_eq!(
            meta(&call["trailing"], "ratelimit"),
            Some("\"route.subject\";r=0;t=3600"),
            "{call}"
        );
        assert_eq!(
            meta(&call["trailing"], "grpc-retry-pushback-ms"),
            Some("3600000"),
            "{call}"
        );
    }
    // The refusals never reached the upstream: it saw each allowed call only (checked by
    // the gateway's own metrics: refusals by reason).
    let series = [
        r#"gatehouse_rate_limited_total{key="subject",route="/gatehouse.test.Echo/*",tenant="limited"} 2"#,
        // ... and only the two allowed calls of that tenant reached its upstream.
        r#"gatehouse_upstream_duration_seconds_count{tenant="limited",upstream="grpc"} 2"#,
        r#"gatehouse_denials_total{reason="unauthenticated",tenant="demo"} 2"#,
    ];
    let m = gw.metrics_containing(&series);
    for line in series {
        assert!(m.contains(line), "{line} missing:\n{m}");
    }
    // HTTP/1.1 on the h2c listener keeps working.
    let r = get(
        gw.listen,
        "demo.localhost",
        "/gatehouse.test.Echo/Unary",
        &[],
    )
    .unwrap();
    assert_eq!(r.status, 401, "{r:?}");
}
