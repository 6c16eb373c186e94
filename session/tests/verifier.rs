//! End-to-end tests of `TokenVerifier` against locally minted tokens and a counting fake IdP.

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
async fn refused_algorithms() {
    let (idp, v) = setup(&["RS256"]).await;
    let k = keys();
    let payload = claims(&idp.issuer);
    let body = format!(
        "{}.{}",
        b64(json!({"alg": "none", "kid": "rsa-1"}).to_string()),
        b64(payload.to_string())
    );
    assert_eq!(
        v.verify(&format!("{body}.")).await.err(),
        Some(TokenError::UnsupportedAlgorithm)
    );
    assert_eq!(
        v.verify(&format!("{body}.c2ln")).await.err(),
        Some(TokenError::UnsupportedAlgorithm)
    );
    let body = format!(
        "{}.{}",
        b64(json!({"alg": "None"}).to_string()),
        b64(payload.to_string())
    );
    assert_eq!(
        v.verify(&format!("{body}.")).await.err(),
        Some(TokenError::UnsupportedAlgorithm)
    );

    // HS256 signed with the RSA public key as the HMAC secret (key confusion).
    for secret in [
        k.rsa.public_key_bytes(),
        serde_json::to_vec(&k.rsa.jwk()).expect("json"),
    ] {
        let input = format!(
            "{}.{}",
            b64(json!({"alg": "HS256", "kid": "rsa-1"}).to_string()),
            b64(payload.to_string())
        );
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &secret),
            input.as_bytes(),
        );
        let token = format!("{input}.{}", b64(tag.as_ref()));
        assert_eq!(
            v.verify(&token).await.err(),
            Some(TokenError::UnsupportedAlgorithm)
        );
    }

    // ES256 with a published EC key, but the allowlist is RS256 only.
    let token = k.p256.mint("ES256", &payload);
    assert_eq!(
        v.verify(&token).await.err(),
        Some(TokenError::UnsupportedAlgorithm)
    );
    // PS256 with the RSA key: same family, still not allowed.
    let token = k.rsa.mint("PS256", &payload);
    assert_eq!(
        v.verify(&token).await.err(),
        Some(TokenError::UnsupportedAlgorithm)
    );
    assert_eq!(idp.jwks_hits(), 1, "refusals never refetch");
    assert_eq!(v.cache_len(), 0, "failures are never cached");
}

#[tokio::test]
async fn key_type_and_stated_alg_must_fit() {
    let k = keys();
    let idp = FakeIdp::start(jwks(&[k.rsa.jwk_with_alg("RS256"), k.p256.jwk(), {
        let mut enc = k.rsa2.jwk();
        enc["use"] = json!("enc");
        enc
    }]))
    .await;
    let mut p = provider(&idp.issuer, None, &["RS256", "PS256", "ES256", "ES384"]);
    p.jwks_min_refetch_interval = Duration::from_secs(3600);
    let v = TokenVerifier::new(&p, 10).expect("v");
    v.refresh_keys().await.expect("keys");
    let payload = claims(&idp.issuer);
    // The JWK says RS256; a PS256 token under the same kid is refused.
    let token = k.rsa.mint("PS256", &payload);
    assert_eq!(
        v.verify(&token).await.err(),
        Some(TokenError::UnsupportedAlgorithm)
    );
    // An ES384 token naming the P-256 key's kid: the curve does not fit.
    let forged = k
        .p384
        .mint_with_header(&json!({"alg": "ES384", "kid": "ec-256"}), &payload);
    assert_eq!(
        v.verify(&forged).await.err(),
        Some(TokenError::UnsupportedAlgorithm)
    );
    // An RS256 token naming the EC key's kid: the key type does not fit.
    let forged = k
        .rsa
        .mint_with_header(&json!({"alg": "RS256", "kid": "ec-256"}), &payload);
    assert_eq!(
        v.verify(&forged).await.err(),
        Some(TokenError::UnsupportedAlgorithm)
    );
    // A `use: enc` key is ignored: its kid is unknown.
    let token = k.rsa2.mint("RS256", &payload);
    assert_eq!(v.verify(&token).await.err(), Some(TokenError::UnknownKid));
    assert!(v.verify(&k.rsa.mint("RS256", &payload)).await.is_ok());
}

#[tokio::test]
async fn token_without_kid_uses_the_only_fitting_key() {
    let k = keys();
    let idp = FakeIdp::start(jwks(&[k.rsa.jwk(), k.p256.jwk()])).await;
    let v = TokenVerifier::new(&provider(&idp.issuer, None, &["RS256", "ES256"]), 10).expect("v");
    v.refresh_keys().await.expect("keys");
    let payload = claims(&idp.issuer);
    let token = k.rsa.mint_with_header(&json!({"alg": "RS256"}), &payload);
    assert!(v.verify(&token).await.is_ok());
    let token = k.p256.mint_with_header(&json!({"alg": "ES256"}), &payload);
    assert!(v.verify(&token).await.is_ok());
    // Two RSA keys: a kid-less RS256 token is ambiguous.
    idp.set_jwks(jwks(&[k.rsa.jwk(), k.rsa2.jwk()]));
    v.refresh_keys().await.expect("keys");
    let token = k
        .rsa
        .mint_with_header(&json!({"alg": "RS256", "typ": "JWT"}), &payload);
    assert_eq!(v.verify(&token).await.err(), Some(TokenError::UnknownKid));
}

#[tokio::test]
async fn tampering() {
    let (idp, v) = setup(&["RS256", "ES256", "EdDSA"]).await;
    let k = keys();
    for (key, alg) in [(&k.rsa, "RS256"), (&k.p256, "ES256"), (&k.ed, "EdDSA")] {
        let token = key.mint(alg, &claims(&idp.issuer));
        let parts: Vec<&str> = token.split('.').collect();
        // Payload with a different subject, original signature.
        let evil = with(claims(&idp.issuer), json!({"sub": "admin"}));
        let tampered = format!("{}.{}.{}", parts[0], b64(evil.to_string()), parts[2]);
        assert_eq!(
            v.verify(&tampered).await.err(),
            Some(TokenError::BadSignature),
            "{alg}"
        );
        // One signature byte flipped (re-encoded so the base64 stays canonical).
        let mut sig = base64_decode(parts[2]);
        sig[10] ^= 0x01;
        let tampered = format!("{}.{}.{}", parts[0], parts[1], b64(&sig));
        assert_eq!(
            v.verify(&tampered).await.err(),
            Some(TokenError::BadSignature),
            "{alg}"
        );
        // Truncated signature.
        let tampered = format!("{}.{}.{}", parts[0], parts[1], b64(&sig[..sig.len() - 1]));
        assert_eq!(
            v.verify(&tampered).await.err(),
            Some(TokenError::BadSignature),
            "{alg}"
        );
        // A valid signature by another key under this key's kid.
        let mut header: Value = serde_json::from_slice(&base64_decode(parts[0])).expect("header");
        header["kid"] = json!(key.kid);
        if alg == "RS256" {
            let forged = k.rogue.mint_with_header(&header, &claims(&idp.issuer));
            assert_eq!(
                v.verify(&forged).await.err(),
                Some(TokenError::BadSignature)
            );
        }
        assert!(v.verify(&token).await.is_ok(), "{alg}");
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .expect("base64url")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kid_refetches_once_for_a_burst_then_rate_limits() {
    let (idp, v) = setup(&["RS256"]).await;
    let v = Arc::new(v);
    *idp.jwks_delay.lock().expect("lock") = Duration::from_millis(100);
    let token = keys().rogue.mint("RS256", &claims(&idp.issuer));
    assert_eq!(idp.jwks_hits(), 1);

    let burst = |n: usize| {
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let (v, token) = (Arc::clone(&v), token.clone());
                tokio::spawn(async move { v.verify(&token).await })
            })
            .collect();
        async move {
            let mut results = Vec::new();
            for t in tasks {
                results.push(t.await.expect("task"));
            }
            results
        }
    };
    let results = burst(50).await;
    assert!(results.iter().all(|r| *r == Err(TokenError::UnknownKid)));
    assert_eq!(
        idp.jwks_hits(),
        2,
        "exactly one refetch for 50 concurrent verifications"
    );
    assert_eq!(
        idp.discovery_hits(),
        1,
        "the refetch reuses the discovered jwks_uri"
    );

    let started = std::time::Instant::now();
    let results = burst(50).await;
    assert!(results.iter().all(|r| *r == Err(TokenError::UnknownKid)));
    assert_eq!(
        idp.jwks_hits(),
        2,
        "no refetch within jwks-min-refetch-interval"
    );
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "failed without waiting on I/O"
    );
    assert_eq!(v.cache_len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_is_picked_up_by_one_refetch() {
    let (idp, v) = setup(&["RS256"]).await;
    let v = Arc::new(v);
    let k = keys();
    let old = k.rsa.mint("RS256", &claims(&idp.issuer));
    assert!(v.verify(&old).await.is_ok());
    // The IdP rotates: it now publishes rsa-2 next to rsa-1.
    idp.set_jwks(jwks(&[k.rsa2.jwk(), k.rsa.jwk()]));
    *idp.jwks_delay.lock().expect("lock") = Duration::from_millis(50);
    let new = k.rsa2.mint("RS256", &claims(&idp.issuer));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (v, token) = (Arc::clone(&v), new.clone());
            tokio::spawn(async move { v.verify(&token).await.map(|c| c.sub.clone()) })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.expect("task"), Ok(Some("user-1".to_string())));
    }
    assert_eq!(idp.jwks_hits(), 2, "one refetch");
    let fresh = k.rsa2.mint(
        "RS256",
        &with(claims(&idp.issuer), json!({"sub": "user-2"})),
    );
    assert!(v.verify(&fresh).await.is_ok());
    assert_eq!(idp.jwks_hits(), 2);
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
async fn cache_hit_skips_signature_check() {
    let (idp, v) = setup(&["RS256"]).await;
    let token = keys().rsa.mint("RS256", &claims(&idp.issuer));
    assert!(
        v.verify_cached(&token).is_none(),
        "nothing cached before the first verify"
    );
    let first = v.verify(&token).await.expect("valid");
    let cached = v.verify_cached(&token).expect("cached after verify");
    assert!(Arc::ptr_eq(&first, &cached), "the same Arc");
    // A JWKS with no usable key is refused: the keys in use (and their cached tokens) stay.
    idp.set_jwks(jwks(&[]));
    assert!(v.refresh_keys().await.is_err(), "an empty JWKS is an error");
    assert!(v.keys_loaded());
    let again = v.verify(&token).await.expect("served from cache");
    assert!(Arc::ptr_eq(&first, &again));
    let (noted, hit) = v
        .verify_noting_hit(&token)
        .await
        .expect("served from cache");
    assert!(hit && Arc::ptr_eq(&first, &noted), "a hit, and said so");
    assert_eq!(v.cache_len(), 1);
    // A different token is not a hit; a miss says so.
    let other = keys()
        .rsa
        .mint("RS256", &with(claims(&idp.issuer), json!({"sub": "x"})));
    assert!(v.verify_cached(&other).is_none());
    idp.set_jwks(all_public_keys());
    assert_eq!(v.refresh_keys().await.map(|n| n > 0), Ok(true));
    let (_, hit) = v.verify_noting_hit(&other).await.expect("valid");
    assert!(!hit, "verified, not served from the cache");
}

#[tokio::test]
async fn expired_entries_are_not_served_from_cache() {
    let idp = FakeIdp::start(all_public_keys()).await;
    let mut p = provider(&idp.issuer, None, &["RS256"]);
    p.leeway = Duration::ZERO;
    let v = TokenVerifier::new(&p, 10).expect("v");
    v.refresh_keys().await.expect("keys");
    let token = keys().rsa.mint(
        "RS256",
        &with(claims(&idp.issuer), json!({"exp": now() + 2})),
    );
    assert!(v.verify(&token).await.is_ok());
    assert!(v.verify_cached(&token).is_some());
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert!(v.verify_cached(&token).is_none(), "expired: not served");
    assert_eq!(v.cache_len(), 0, "expired entry removed on lookup");
    assert_eq!(v.verify(&token).await.err(), Some(TokenError::Expired));
}

#[tokio::test]
async fn cache_is_bounded() {
    let idp = FakeIdp::start(all_public_keys()).await;
    let v = TokenVerifier::new(&provider(&idp.issuer, None, &["RS256"]), 3).expect("v");
    v.refresh_keys().await.expect("keys");
    let tokens: Vec<String> = (0..6)
        .map(|i| {
            keys().rsa.mint(
                "RS256",
                &with(claims(&idp.issuer), json!({"sub": format!("u{i}")})),
            )
        })
        .collect();
    for t in &tokens {
        assert!(v.verify(t).await.is_ok(), "a full cache still verifies");
        assert!(v.cache_len() <= 3);
    }
    assert_eq!(v.cache_len(), 3);
    assert!(v.verify_cached(&tokens[0]).is_some());
    assert!(
        v.verify_cached(&tokens[5]).is_none(),
        "not cached once full"
    );
}

#[tokio::test]
async fn max_token_age() {
    let (idp, v) = setup(&["RS256"]).await;
    let v = v.with_max_token_age(Duration::from_secs(600));
    let rsa = &keys().rsa;
    let base = claims(&idp.issuer);
    let t = now();
    let fresh = rsa.mint("RS256", &with(base.clone(), json!({"auth_time": t - 60})));
    assert!(v.verify(&fresh).await.is_ok());
    let old = rsa.mint("RS256", &with(base.clone(), json!({"auth_time": t - 3600})));
    assert_eq!(v.verify(&old).await.err(), Some(TokenError::TooOld));
    let missing = rsa.mint("RS256", &with(base, json!({"auth_time": null})));
    assert_eq!(v.verify(&missing).await.err(), Some(TokenError::TooOld));
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
