//! End-to-end tests of `TokenVerifier` against locally minted tokens and a counting fake IdP.
//!
//! This file: the helpers, valid tokens, time and issuer/audience claims, malformed inputs, an
//! unreachable IdP, discovery, JWKS files and the claim helpers; `refusals.rs`: algorithms, key
//! types and tampering; `refetch.rs`: unknown `kid` refetches and rotation; `cache.rs`: the
//! verified-token cache.

mod cache;
mod refetch;
mod refusals;

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::hmac;
use gatehouse_session::{TokenError, TokenVerifier};
use gatehouse_test_support::config::{claims, provider, CLIENT_ID};
use gatehouse_test_support::fake_idp::FakeIdp;
use gatehouse_test_support::keys::{b64, jwks, keys, now, Kind, TestKey};
use gatehouse_test_support::process::temp_file;
use serde_json::{json, Value};

const ALL_ALGS: [&str; 5] = ["RS256", "PS256", "ES256", "ES384", "EdDSA"];

fn all_public_keys() -> String {
    let k = keys();
    jwks(&[k.rsa.jwk(), k.p256.jwk(), k.p384.jwk(), k.ed.jwk()])
}

/// A fake IdP publishing the standard keys and a verifier (discovery) already holding them.
async fn setup(algs: &[&str]) -> (FakeIdp, TokenVerifier) {
    let idp = FakeIdp::start(all_public_keys()).await;
    let verifier = TokenVerifier::new(&provider(&idp.issuer, None, algs), 1000).expect("verifier");
    assert!(!verifier.keys_loaded());
    verifier.refresh_keys().await.expect("initial key fetch");
    assert!(verifier.keys_loaded());
    (idp, verifier)
}

fn with(mut base: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().expect("object") {
        if v.is_null() {
            base.as_object_mut().expect("object").remove(k);
        } else {
            base[k] = v.clone();
        }
    }
    base
}

#[tokio::test]
async fn valid_tokens_for_every_algorithm() {
    let (idp, v) = setup(&ALL_ALGS).await;
    assert_eq!(idp.discovery_hits(), 1);
    assert_eq!(idp.jwks_hits(), 1);
    let k = keys();
    for (key, alg) in [
        (&k.rsa, "RS256"),
        (&k.rsa, "PS256"),
        (&k.p256, "ES256"),
        (&k.p384, "ES384"),
        (&k.ed, "EdDSA"),
    ] {
        let token = key.mint(alg, &claims(&idp.issuer));
        let c = v
            .verify(&token)
            .await
            .unwrap_or_else(|e| panic!("{alg}: {e:?}"));
        assert_eq!(c.sub.as_deref(), Some("user-1"), "{alg}");
        assert_eq!(c.preferred_username.as_deref(), Some("alice"));
    }
    assert_eq!(v.cache_len(), 5);
    assert_eq!(v.issuer(), idp.issuer);
    assert_eq!(v.client_id(), CLIENT_ID);
    assert_eq!(idp.jwks_hits(), 1, "no refetch for known keys");
}

#[tokio::test]
async fn refresh_reports_usable_key_count() {
    let idp = FakeIdp::start(all_public_keys()).await;
    let only_rsa = TokenVerifier::new(&provider(&idp.issuer, None, &["RS256"]), 10).expect("v");
    assert_eq!(
        only_rsa.refresh_keys().await,
        Ok(1),
        "EC/OKP keys unusable for RS256"
    );
    let all = TokenVerifier::new(&provider(&idp.issuer, None, &ALL_ALGS), 10).expect("v");
    assert_eq!(all.refresh_keys().await, Ok(4));
}

#[tokio::test]
async fn time_claims_with_leeway() {
    let (idp, v) = setup(&["RS256"]).await;
    let rsa = &keys().rsa;
    let t = now();
    let base = claims(&idp.issuer);
    let cases = [
        (json!({"exp": t - 40}), Err(TokenError::Expired)),
        (json!({"exp": t - 10}), Ok(())), // expired but within the 30 s leeway
        (json!({"nbf": t + 40}), Err(TokenError::NotYetValid)),
        (json!({"nbf": t + 10}), Ok(())), // not yet valid but within leeway
        (json!({"iat": t + 40}), Err(TokenError::NotYetValid)),
        (json!({"iat": t + 10}), Ok(())),
        (json!({"exp": null}), Err(TokenError::Malformed)),
        (json!({"exp": "soon"}), Err(TokenError::Malformed)),
        (json!({"nbf": t - 10, "iat": null}), Ok(())),
    ];
    for (changes, expected) in cases {
        let token = rsa.mint("RS256", &with(base.clone(), changes.clone()));
        assert_eq!(v.verify(&token).await.map(|_| ()), expected, "{changes}");
    }
}

#[tokio::test]
async fn issuer_and_audience() {
    let (idp, v) = setup(&["RS256"]).await;
    let rsa = &keys().rsa;
    let base = claims(&idp.issuer);
    let cases = [
        (
            json!({"iss": "http://evil.example/realms/test"}),
            Err(TokenError::WrongIssuer),
        ),
        (
            json!({"iss": format!("{}/", idp.issuer)}),
            Err(TokenError::WrongIssuer),
        ),
        (json!({"iss": null}), Err(TokenError::WrongIssuer)),
        (json!({"aud": "other"}), Err(TokenError::WrongAudience)),
        (json!({"aud": null}), Err(TokenError::WrongAudience)),
        (
            json!({"aud": ["account", "other"]}),
            Err(TokenError::WrongAudience),
        ),
        (json!({"aud": ["account", CLIENT_ID]}), Ok(())),
        (json!({"aud": [CLIENT_ID]}), Ok(())),
    ];
    for (changes, expected) in cases {
        let token = rsa.mint("RS256", &with(base.clone(), changes.clone()));
        assert_eq!(v.verify(&token).await.map(|_| ()), expected, "{changes}");
    }
}

#[tokio::test]
async fn malformed_inputs() {
    let (idp, v) = setup(&["RS256"]).await;
    let good = keys().rsa.mint("RS256", &claims(&idp.issuer));
    let parts: Vec<&str> = good.split('.').collect();
    let huge = format!("{}.{}.{}", parts[0], "A".repeat(17 * 1024), parts[2]);
    let inputs = [
        String::new(),
        "abc".to_string(),
        parts[0].to_string(),
        format!("{}.{}", parts[0], parts[1]),
        format!("{good}.{}", parts[2]),
        format!("{good}.x.y"),
        format!("{}..{}", parts[0], parts[2]),
        format!(".{}.{}", parts[1], parts[2]),
        format!("{}.{}.{}", "@@@", parts[1], parts[2]),
        format!("{}.{}.{}", parts[0], parts[1], "sig*nature"),
        format!("{}.{}.{}", b64("not json"), parts[1], parts[2]),
        format!("{}.{}.{}", b64("[1,2]"), parts[1], parts[2]),
        format!("{}.{}.{}", b64(r#"{"kid":"rsa-1"}"#), parts[1], parts[2]),
        huge,
        "Bearer x.y.z".to_string(),
        "\u{0}\u{1}.\u{7f}.é".to_string(),
    ];
    for input in &inputs {
        assert_eq!(
            v.verify(input).await.err(),
            Some(TokenError::Malformed),
            "{input:.80}"
        );
    }
    // A correctly signed token whose payload is not a JSON object, or repeats a member (which
    // of the two would count is parser-dependent: refused).
    for payload in [
        "not json",
        "[1,2,3]",
        "42",
        r#"{"sub":"alice","sub":"admin"}"#,
        r#"{"exp":1,"exp":4000000000}"#,
    ] {
        let input = format!("{}.{}", parts[0], b64(payload));
        let token = format!(
            "{input}.{}",
            b64(keys().rsa.sign("RS256", input.as_bytes()))
        );
        assert_eq!(
            v.verify(&token).await.err(),
            Some(TokenError::Malformed),
            "{payload}"
        );
    }
    assert_eq!(idp.jwks_hits(), 1);
}

#[tokio::test]
async fn keys_unavailable_when_idp_unreachable() {
    // Bind then drop a listener to get a loopback port with nothing behind it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let issuer = format!("http://127.0.0.1:{port}/realms/down");
    let v = TokenVerifier::new(&provider(&issuer, None, &["RS256"]), 10).expect("v");
    assert!(v.refresh_keys().await.is_err());
    assert!(!v.keys_loaded());
    let token = keys().rsa.mint("RS256", &claims(&issuer));
    assert_eq!(
        v.verify(&token).await.err(),
        Some(TokenError::KeysUnavailable)
    );
    // Within the min refetch interval: no second attempt, still unavailable.
    assert_eq!(
        v.verify(&token).await.err(),
        Some(TokenError::KeysUnavailable)
    );
}

#[tokio::test]
async fn discovery_issuer_must_match() {
    let idp = FakeIdp::start(all_public_keys()).await;
    *idp.discovery_issuer.lock().expect("lock") = "http://other.example/realms/test".into();
    let v = TokenVerifier::new(&provider(&idp.issuer, None, &["RS256"]), 10).expect("v");
    let err = v.refresh_keys().await.expect_err("issuer mismatch");
    assert!(err.contains("issuer"), "{err}");
    assert_eq!(idp.jwks_hits(), 0);
    assert!(!v.keys_loaded());
}

#[tokio::test]
async fn jwks_file_provider() {
    let k = keys();
    let issuer = "https://idp.example/realms/file";
    let path = temp_file("jwks.json", &jwks(&[k.rsa.jwk(), k.ed.jwk()]));
    let v = TokenVerifier::new(
        &provider(issuer, Some(path.clone()), &["RS256", "EdDSA"]),
        10,
    )
    .expect("v");
    assert!(v.keys_loaded(), "read at construction");
    assert!(v.verify(&k.ed.mint("EdDSA", &claims(issuer))).await.is_ok());
    // Rotation on disk is picked up by an unknown kid (file re-read, no network).
    std::fs::write(&path, jwks(&[k.rsa2.jwk()])).expect("rewrite");
    assert!(v
        .verify(&k.rsa2.mint("RS256", &claims(issuer)))
        .await
        .is_ok());
    assert_eq!(v.refresh_keys().await, Ok(1));
    // Bad files are construction errors.
    let missing = provider(issuer, Some(path.with_file_name("nope.json")), &["RS256"]);
    assert!(TokenVerifier::new(&missing, 10).is_err());
    let garbage = provider(issuer, Some(temp_file("bad.json", "{not json")), &["RS256"]);
    assert!(TokenVerifier::new(&garbage, 10).is_err());
    // So are refused algorithms in the config.
    for alg in ["HS256", "none", "XS1"] {
        assert!(
            TokenVerifier::new(&provider(issuer, None, &[alg]), 10).is_err(),
            "{alg}"
        );
    }
}

#[tokio::test]
async fn keycloak_claim_helpers_on_a_verified_token() {
    let (idp, v) = setup(&["RS256"]).await;
    let c = v
        .verify(&keys().rsa.mint("RS256", &claims(&idp.issuer)))
        .await
        .expect("valid");
    assert!(c.has_role("admin", CLIENT_ID));
    assert!(c.has_role("viewer", CLIENT_ID));
    assert!(c.has_role("billing:payer", CLIENT_ID));
    assert!(!c.has_role("payer", CLIENT_ID));
    assert!(!c.has_role("web:admin", CLIENT_ID));
    assert!(c.in_group("/developers") && c.in_group("developers"));
    assert!(c.in_group("/ops") && c.in_group("ops"));
    assert!(!c.in_group("/dev"));
    assert_eq!(c.header_value("groups").as_deref(), Some("/developers,ops"));
    assert_eq!(c.header_value("org.units").as_deref(), Some("a,b"));
    assert_eq!(c.header_value("org.id").as_deref(), Some("7"));
    assert_eq!(
        c.header_value("realm_access.roles").as_deref(),
        Some("admin,offline_access")
    );
    assert_eq!(c.header_value("org"), None);
    assert_eq!(
        c.lookup("resource_access.billing.roles"),
        Some(&json!(["payer"]))
    );
}

#[tokio::test]
async fn an_alg_outside_the_allowlist_is_refused_before_key_lookup() {
    let (idp, v) = setup(&["RS256"]).await;
    let token = TestKey::generate(Kind::Ed25519, "rsa-1").mint_with_header(
        &json!({"alg": "EdDSA", "kid": "rsa-1"}),
        &claims(&idp.issuer),
    );
    // EdDSA is not allowed here at all.
    assert_eq!(
        v.verify(&token).await.err(),
        Some(TokenError::UnsupportedAlgorithm)
    );
}
