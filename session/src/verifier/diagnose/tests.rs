use gatehouse_test_support::config::{provider, CLIENT_ID};
use gatehouse_test_support::keys::{jwks, now, Kind, TestKey};
use gatehouse_test_support::process::TempDir;
use serde_json::{json, Value};

use super::*;

const ISSUER: &str = "https://idp.localhost/realms/demo";

/// A verifier trusting `key` (a JWKS file), with `authorized-parties` and a max token age.
fn verifier(key: &TestKey, dir: &TempDir) -> TokenVerifier {
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, jwks(&[key.jwk()])).expect("write jwks");
    let mut p = provider(ISSUER, Some(file), &["ES256"]);
    p.authorized_parties = Some(vec!["web".to_string()]);
    p.max_token_age = Some(std::time::Duration::from_secs(3600));
    TokenVerifier::new(&p, 100).expect("verifier")
}

fn claims(extra: Value) -> Value {
    let now = now();
    let mut c = json!({
        "iss": ISSUER, "aud": CLIENT_ID, "sub": "alice", "azp": "web",
        "exp": now + 300, "iat": now, "auth_time": now,
    });
    for (k, v) in extra.as_object().expect("object") {
        c[k] = v.clone();
    }
    c
}

/// Tokens refused for each reason the walk reports, and one that passes.
fn tokens(key: &TestKey) -> Vec<(&'static str, String)> {
    let now = now();
    let other = TestKey::generate(Kind::P256, "other");
    let good = key.mint("ES256", &claims(json!({})));
    let mut forged = good.clone().into_bytes();
    let i = forged.len() - 10;
    forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
    vec![
        ("ok", good),
        ("malformed", "not-a-token".to_string()),
        ("bad_signature", String::from_utf8(forged).expect("ascii")),
        ("unknown_kid", other.mint("ES256", &claims(json!({})))),
        (
            "expired",
            key.mint("ES256", &claims(json!({"exp": now - 120}))),
        ),
        (
            "not_yet_valid",
            key.mint("ES256", &claims(json!({"nbf": now + 600}))),
        ),
        (
            "wrong_issuer",
            key.mint("ES256", &claims(json!({"iss": "https://evil.localhost"}))),
        ),
        (
            "wrong_audience",
            key.mint("ES256", &claims(json!({"aud": "account"}))),
        ),
        (
            "not_access_token",
            key.mint("ES256", &claims(json!({"nonce": "n"}))),
        ),
        (
            "unauthorized_party",
            key.mint("ES256", &claims(json!({"azp": "cli"}))),
        ),
        (
            "too_old",
            key.mint("ES256", &claims(json!({"auth_time": now - 7200}))),
        ),
    ]
}

#[tokio::test]
async fn the_first_failed_check_is_the_verdicts_reason_for_every_refusal() {
    let dir = TempDir::new("diagnose");
    let key = TestKey::generate(Kind::P256, "k1");
    let v = verifier(&key, &dir);
    for (reason, token) in tokens(&key) {
        let diagnosis = v.diagnose(&token, Audience::Provider, now());
        let verdict = v.verify_for_audience(&token, Audience::Provider).await;
        let walked = diagnosis.first_failure().and_then(|c| c.failed);
        assert_eq!(walked, verdict.as_ref().err().copied(), "{reason}");
        assert_eq!(walked.map_or("ok", |e| e.reason()), reason);
    }
}

#[test]
fn every_check_is_reported_after_the_first_failure_with_expected_and_got() {
    let dir = TempDir::new("diagnose-all");
    let key = TestKey::generate(Kind::P256, "k1");
    let v = verifier(&key, &dir);
    let now = now();
    let token = key.mint(
        "ES256",
        &claims(json!({"exp": now - 90, "iss": "https://evil.localhost", "aud": ["x", "y"]})),
    );
    let d = v.diagnose(&token, Audience::Provider, now);
    let names: Vec<&str> = d.checks.iter().map(|c| c.name).collect();
    assert_eq!(
        names,
        [
            "size",
            "alg",
            "kid",
            "signature",
            "exp",
            "iat",
            "iss",
            "aud",
            "kind",
            "azp",
            "auth_time"
        ]
    );
    let by = |n: &str| d.checks.iter().find(|c| c.name == n).expect(n);
    assert_eq!(by("exp").failed, Some(TokenError::Expired));
    assert!(by("exp").detail.starts_with("9"), "{}", by("exp").detail);
    assert_eq!(by("iss").expected.as_deref(), Some(ISSUER));
    assert_eq!(by("iss").got.as_deref(), Some("https://evil.localhost"));
    assert_eq!(by("aud").got.as_deref(), Some("[x, y]"));
    assert_eq!(by("aud").failed, Some(TokenError::WrongAudience));
    assert_eq!(by("signature").failed, None);
    assert_eq!(
        (d.alg.as_deref(), d.kid.as_deref()),
        (Some("ES256"), Some("k1"))
    );
    assert_eq!(d.claims.expect("claims").sub.as_deref(), Some("alice"));
    // A route's resource replaces the provider's audiences.
    let d = v.diagnose(&token, Audience::Resource("https://api.localhost/"), now);
    let aud = d.checks.iter().find(|c| c.name == "aud").expect("aud");
    assert!(aud
        .expected
        .as_deref()
        .unwrap_or_default()
        .contains("https://api.localhost/"));
}

#[test]
fn no_check_repeats_the_token() {
    let dir = TempDir::new("diagnose-secret");
    let key = TestKey::generate(Kind::P256, "k1");
    let v = verifier(&key, &dir);
    for (_, token) in tokens(&key) {
        let d = v.diagnose(&token, Audience::Provider, now());
        let signature = token.rsplit('.').next().unwrap_or_default();
        for c in &d.checks {
            let text = format!("{c:?}");
            assert!(!text.contains(&token), "{text}");
            assert!(signature.len() < 8 || !text.contains(signature), "{text}");
        }
    }
}

#[test]
fn a_fingerprint_is_short_stable_and_not_the_secret() {
    let f = fingerprint("secret-token-value");
    assert_eq!(f, fingerprint("secret-token-value"));
    assert_ne!(f, fingerprint("secret-token-valuf"));
    assert_eq!(f.len(), "sha256:".len() + 12);
    assert!(!f.contains("secret"));
}
