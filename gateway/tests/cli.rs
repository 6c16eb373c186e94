//! `gatehouse check` and `gatehouse version`, as a user runs them.

mod support;

use support::*;

fn examples_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/examples")
}

#[test]
fn check_accepts_every_shipped_example() {
    let mut n = 0;
    for entry in std::fs::read_dir(examples_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let (code, out, err) = run_cli(
                &["check", "--config", path.to_str().unwrap()],
                &[
                    ("OIDC_CLIENT_SECRET", "s3cret"),
                    ("COOKIE_KEY", "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="),
                ],
            );
            assert_eq!(code, 0, "{}: {out}{err}", path.display());
            assert!(out.contains("OK:") && out.contains("tenant"), "{out}");
            assert!(!err.contains("fall through"), "{}: {err}", path.display());
            n += 1;
        }
    }
    assert!(n >= 2, "examples found: {n}");
}

#[test]
fn check_reports_every_error_with_file_line_and_key() {
    let dir = TempDir::new("check");
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "listen: 127.0.0.1:8080\ntenants:\n  - name: a\n    hosts: [a.localhost]\n    upstreams:\n      - name: app\n        targets: [\"127.0.0.1:1\"]\n        connect-timeout: 2 parsecs\n    routes:\n      - uri: /x\n        upstream: nope\n  - name: b\n    hosts: [A.localhost]\n    colour: blue\n    upstreams:\n      - name: app\n        targets: [\"127.0.0.1:1\"]\n",
    )
    .unwrap();
    let (code, out, err) = run_cli(&["check", "--config", path.to_str().unwrap()], &[]);
    assert_ne!(code, 0, "{out}");
    let file = path.display().to_string();
    for needle in ["connect-timeout", "colour", "nope", "a.localhost"] {
        assert!(err.contains(needle), "missing {needle} in:\n{err}");
    }
    assert!(
        err.contains(&format!("{file}:8:")),
        "line of the bad duration:\n{err}"
    );
    assert!(
        err.contains(&format!("{file}:14:")),
        "line of the unknown key:\n{err}"
    );
}

#[test]
fn check_warns_when_an_unlisted_method_falls_through_to_a_weaker_route() {
    let dir = TempDir::new("fallthrough");
    let path = dir.path().join("fallthrough.yaml");
    std::fs::write(
        &path,
        "identity-providers: [{name: kc, issuer: \"https://kc.localhost/realms/demo\", client-id: gatehouse}]\n\
         tenants:\n  - name: a\n    hosts: [a.localhost]\n    identity-provider: kc\n    upstreams:\n      \
         - name: app\n        targets: [\"127.0.0.1:1\"]\n    routes:\n      - uri: /api/v1/admin/*\n        \
         methods: [GET, POST, PUT, DELETE]\n        roles: [admin]\n      - uri: /*\n        \
         roles: []\n",
    )
    .unwrap();
    let (code, out, err) = run_cli(&["check", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "a warning does not fail the check: {out}{err}");
    assert!(out.contains("OK:"), "{out}");
    let file = path.display().to_string();
    assert!(
        err.contains(&format!(
            "{file}:11: warning: tenants[0].routes[0].methods: route \"/api/v1/admin/*\" lists \
             methods [GET, POST, PUT, DELETE]: HEAD, CONNECT, OPTIONS, TRACE, PATCH and any other \
             method fall through to route \"/*\" (line 13), which asks less: roles [] instead of \
             [admin]"
        )),
        "{err}"
    );
}

/// A tenant without an identity provider cannot authenticate anyone: a route that needs
/// authentication there would answer 401 forever, so `check` refuses it where it is written.
#[test]
fn check_refuses_a_protected_route_on_a_tenant_without_an_identity_provider() {
    let dir = TempDir::new("noidp");
    let path = dir.path().join("noidp.yaml");
    let tenant = "tenants:\n  - name: a\n    hosts: [a.localhost]\n    upstreams:\n      - name: app\n        \
         targets: [\"127.0.0.1:1\"]\n    routes:\n      - uri: /public/*\n        white-listed: true\n      \
         - uri: /api/*\n        roles: [user]\n";
    std::fs::write(&path, tenant).unwrap();
    let (code, out, err) = run_cli(&["check", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(code, 1, "{out}{err}");
    let file = path.display().to_string();
    assert!(
        err.contains(&format!(
            "{file}:10: tenants[0].routes[1]: route \"/api/*\" needs authentication but tenant \"a\" \
             has no identity-provider"
        )),
        "{err}"
    );
    assert!(!out.contains("OK:"), "{out}");

    // White-listed, the same tenant passes; with a provider, the protected route passes too.
    std::fs::write(&path, tenant.replace("roles: [user]", "white-listed: true")).unwrap();
    let (code, out, err) = run_cli(&["check", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{out}{err}");
    let with_provider = format!(
        "identity-providers: [{{name: kc, issuer: \"https://kc.localhost/realms/demo\", client-id: gatehouse}}]\n{}",
        tenant.replace("    upstreams:", "    identity-provider: kc\n    upstreams:")
    );
    std::fs::write(&path, with_provider).unwrap();
    let (code, out, err) = run_cli(&["check", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn check_names_an_unset_variable() {
    let dir = TempDir::new("env");
    let path = dir.path().join("env.yaml");
    std::fs::write(
        &path,
        "tenants:\n  - name: a\n    hosts: [a.localhost]\n    upstreams:\n      - name: app\n        targets: [\"${GATEHOUSE_TEST_UNSET_TARGET}\"]\n",
    )
    .unwrap();
    let (code, _out, err) = run_cli(&["check", "--config", path.to_str().unwrap()], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("GATEHOUSE_TEST_UNSET_TARGET"), "{err}");
    assert!(err.contains(":6:"), "{err}");
}

#[test]
fn run_refuses_a_listen_address_that_is_taken() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = TempDir::new("taken");
    let path = dir.path().join("taken.yaml");
    std::fs::write(
        &path,
        format!(
            "listen: 127.0.0.1:{port}\nupgrade-sock: {d}/gh.sock\npid-file: {d}/gh.pid\n\
             tenants:\n  - name: a\n    hosts: [a.localhost]\n    upstreams:\n      \
             - name: app\n        targets: [\"127.0.0.1:9\"]\n    routes:\n      \
             - uri: /*\n        white-listed: true\n",
            d = dir.path().display()
        ),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let (code, _out, err) = run_cli(&["run", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("listen 127.0.0.1:{port}: address already in use")),
        "{err}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "refused at once, not after Pingora's bind retries"
    );
    drop(taken);
}

#[test]
fn version_prints_the_version() {
    let (code, out, _) = run_cli(&["version"], &[]);
    assert_eq!(code, 0);
    assert_eq!(
        out.trim(),
        format!("gatehouse {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn a_skipped_real_component_test_fails_when_ci_is_true() {
    for ci in [Some("true"), Some("TRUE"), Some("1")] {
        assert!(skip_is_failure(ci), "{ci:?}");
        let failed = std::panic::catch_unwind(|| skip_or_fail_in(ci, "t", "prometheus missing"));
        assert!(failed.is_err(), "CI={ci:?}: a skip must fail the test");
    }
    for ci in [None, Some("false"), Some("")] {
        assert!(!skip_is_failure(ci), "{ci:?}");
        skip_or_fail_in(ci, "t", "prometheus missing"); // returns: a local skip is allowed
    }
}

#[test]
fn output_to_a_reader_that_went_away_ends_quietly() {
    // `gatehouse check ... | head -0`: the pipe's read end is closed before gatehouse writes
    // (Python makes the pipe, so the order is certain), and the write fails with EPIPE.
    let example = examples_dir().join("full.yaml");
    let closed_pipe = "import os, subprocess, sys\n\
        r, w = os.pipe()\n\
        os.close(r)\n\
        p = subprocess.run(sys.argv[1:], stdout=w, stderr=subprocess.PIPE)\n\
        sys.stderr.write(p.stderr.decode())\n\
        sys.exit(p.returncode)\n";
    for args in [
        vec!["version"],
        vec!["check", "--config", example.to_str().unwrap()],
    ] {
        let out = std::process::Command::new("python3")
            .args(["-c", closed_pipe])
            .arg(binary())
            .args(&args)
            .current_dir(examples_dir().join("../.."))
            .env("OIDC_CLIENT_SECRET", "s3cret")
            .env("COOKIE_KEY", "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=")
            .output()
            .expect("python3");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}
