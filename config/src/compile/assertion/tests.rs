//! `identity-assertion`: the accepted key kinds, and a snippet per invalid-value class (each
//! asserting line, key and message).

use super::*;
use crate::tests::{assert_error, errs, ok, BASE};

/// A fixture key's path (config/tests/keys).
fn key(name: &str) -> String {
    format!("{}/tests/keys/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// BASE with an `identity-assertion` block whose body is `body` (lines indented by 6).
fn with(body: &str) -> String {
    format!("{BASE}    identity-assertion:\n{body}")
}

fn assertion_line() -> usize {
    BASE.lines().count() + 1
}

#[test]
fn p256_pkcs8_sec1_and_ed25519_keys_are_accepted_first_signs() {
    let src = with(&format!(
        "      header: X-Gatehouse-Assertion\n      signing-key: [{}, {}, {}]\n      ttl: 2m\n      audience: https://app.example\n",
        key("assertion-p256.pem"),
        key("assertion-p256-sec1.pem"),
        key("assertion-ed25519.pem"),
    ));
    let c = ok(&src);
    let a = c.tenants[0]
        .identity_assertion
        .as_ref()
        .expect("configured");
    assert_eq!(a.header, "X-Gatehouse-Assertion");
    assert_eq!(a.ttl, Duration::from_secs(120));
    assert_eq!(a.audience.as_deref(), Some("https://app.example"));
    let algs: Vec<_> = a.signing_keys.iter().map(|k| k.algorithm).collect();
    assert_eq!(
        algs,
        [
            AssertionAlgorithm::Es256,
            AssertionAlgorithm::Es256,
            AssertionAlgorithm::EdDsa
        ]
    );
    assert!(a.signing_keys[0].path.ends_with("assertion-p256.pem"));
    assert!(!format!("{a:?}").contains(&format!("{:?}", a.signing_keys[0].der())));
}

#[test]
fn a_single_key_and_the_default_ttl() {
    let src = with(&format!(
        "      header: X-Assert\n      signing-key: {}\n",
        key("assertion-ed25519.pem")
    ));
    let c = ok(&src);
    let a = c.tenants[0].identity_assertion.as_ref().unwrap();
    assert_eq!(a.ttl, Duration::from_secs(60));
    assert_eq!(a.signing_keys.len(), 1);
    assert_eq!(a.audience, None);
    assert!(ok(BASE).tenants[0].identity_assertion.is_none());
}

#[test]
fn missing_header_and_key_are_errors() {
    let src = with("      ttl: 30s\n");
    let all = errs(&src);
    let line = assertion_line();
    assert_error(
        &all,
        line,
        "tenants[0].identity-assertion.header",
        "missing required key",
    );
    assert_error(
        &all,
        line,
        "tenants[0].identity-assertion.signing-key",
        "missing required key",
    );
}

#[test]
fn unreadable_key_file_names_the_file() {
    let src = with("      header: X-Assert\n      signing-key: /nonexistent/assertion.pem\n");
    let all = errs(&src);
    assert_error(
        &all,
        assertion_line() + 2,
        "tenants[0].identity-assertion.signing-key",
        "cannot read key file \"/nonexistent/assertion.pem\"",
    );
}

#[test]
fn rsa_keys_are_refused_in_both_pem_forms() {
    for file in ["assertion-rsa.pem", "assertion-rsa-traditional.pem"] {
        let src = with(&format!(
            "      header: X-Assert\n      signing-key: {}\n",
            key(file)
        ));
        let all = errs(&src);
        assert_error(
            &all,
            assertion_line() + 2,
            "tenants[0].identity-assertion.signing-key",
            "an RSA key",
        );
    }
}

#[test]
fn a_p384_key_is_the_wrong_curve_and_names_its_list_index() {
    let src = with(&format!(
        "      header: X-Assert\n      signing-key:\n        - {}\n        - {}\n",
        key("assertion-p256.pem"),
        key("assertion-p384.pem")
    ));
    let all = errs(&src);
    assert_error(
        &all,
        assertion_line() + 4,
        "tenants[0].identity-assertion.signing-key[1]",
        "another curve than P-256",
    );
}

#[test]
fn a_public_key_or_a_non_pem_file_is_refused() {
    let src = with(&format!(
        "      header: X-Assert\n      signing-key: {}\n",
        key("assertion-public.pem")
    ));
    assert_error(
        &errs(&src),
        assertion_line() + 2,
        "tenants[0].identity-assertion.signing-key",
        "not a private key",
    );
    let src = with(&format!(
        "      header: X-Assert\n      signing-key: {}\n",
        key("../contract.yaml")
    ));
    assert_error(
        &errs(&src),
        assertion_line() + 2,
        "tenants[0].identity-assertion.signing-key",
        "not a PEM file",
    );
}

#[test]
fn ttl_must_be_between_one_second_and_an_hour() {
    for ttl in ["0s", "500ms", "2h"] {
        let src = with(&format!(
            "      header: X-Assert\n      signing-key: {}\n      ttl: {ttl}\n",
            key("assertion-ed25519.pem")
        ));
        assert_error(
            &errs(&src),
            assertion_line() + 3,
            "tenants[0].identity-assertion.ttl",
            "must be between 1s and 1h",
        );
    }
}

#[test]
fn bad_or_reserved_header_names_are_refused() {
    let cases = [
        ("\"X Bad\"", "invalid header name"),
        ("Authorization", "used by HTTP or the gateway"),
        ("X-Forwarded-For", "used by HTTP or the gateway"),
        ("X-Auth-Assertion", "X-Auth-* names are identity headers"),
        (
            "x-request-id",
            "already the tenant's \"X-Request-ID\" header",
        ),
    ];
    for (header, text) in cases {
        let src = with(&format!(
            "      header: {header}\n      signing-key: {}\n",
            key("assertion-ed25519.pem")
        ));
        assert_error(
            &errs(&src),
            assertion_line() + 1,
            "tenants[0].identity-assertion.header",
            text,
        );
    }
}

#[test]
fn an_empty_audience_is_refused() {
    let src = with(&format!(
        "      header: X-Assert\n      signing-key: {}\n      audience: \"\"\n",
        key("assertion-ed25519.pem")
    ));
    assert_error(
        &errs(&src),
        assertion_line() + 3,
        "tenants[0].identity-assertion.audience",
        "invalid audience",
    );
}

#[test]
fn der_reader_refuses_truncated_input() {
    assert!(Der(&[0x30, 0x05, 0x02]).sequence().is_none());
    assert!(Der(&[0x30, 0x00, 0x00]).sequence().is_none());
    assert!(Der(&[0x30, 0x00]).sequence().is_some());
    assert!(key_algorithm("PRIVATE KEY", &[0x30, 0x03, 0x02, 0x01, 0x00]).is_err());
}
