//! `gatehouse check` reports assertion key and value errors with file, line and key.

use super::*;

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
