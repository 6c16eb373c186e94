//! The verified-token cache: hits skip the signature, expired entries are not served, it is bounded, max token age.

use super::*;

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
