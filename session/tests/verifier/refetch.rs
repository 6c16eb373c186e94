//! An unknown kid refetches the JWKS once for a burst, then rate-limits; key rotation.

use super::*;

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
