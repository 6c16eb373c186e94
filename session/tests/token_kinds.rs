//! A bearer credential is an access token of this provider, and the verified-token cache holds
//! only what the current keys still vouch for: token kinds, `authorized-parties`, eviction of
//! a key's tokens when it leaves the JWKS, a JWKS without usable keys, no redirects, https.

use std::sync::Arc;

use gatehouse_session::{TokenError, TokenUse, TokenVerifier};
use gatehouse_test_support::config::{claims, introspecting_provider, provider};
use gatehouse_test_support::fake_idp::FakeIdp;
use gatehouse_test_support::keys::{jwks, keys};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn with(mut base: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().expect("object") {
        base[k] = v.clone();
    }
    base
}

async fn setup() -> (FakeIdp, TokenVerifier) {
    let k = keys();
    let idp = FakeIdp::start(jwks(&[k.rsa.jwk(), k.rsa2.jwk()])).await;
    let v = TokenVerifier::new(&provider(&idp.issuer, None, &["RS256"]), 1000).expect("verifier");
    v.refresh_keys().await.expect("keys");
    (idp, v)
}

#[tokio::test]
async fn id_logout_and_other_non_access_tokens_are_refused_as_bearer_and_never_cached() {
    let (idp, v) = setup().await;
    let k = &keys().rsa;
    let base = claims(&idp.issuer);
    let header = |typ: Option<&str>| match typ {
        Some(t) => json!({"alg": "RS256", "kid": k.kid, "typ": t}),
        None => json!({"alg": "RS256", "kid": k.kid}),
    };
    for typ in [
        None,
        Some("JWT"),
        Some("at+jwt"),
        Some("application/at+jwt"),
    ] {
        let token = k.mint_with_header(&header(typ), &with(base.clone(), json!({"typ": "Bearer"})));
        assert!(v.verify(&token).await.is_ok(), "{typ:?}");
    }
    let refused = [
        (header(None), with(base.clone(), json!({"nonce": "n-1"}))),
        (
            header(Some("JWT")),
            with(base.clone(), json!({"typ": "ID"})),
        ),
        (
            header(Some("logout+jwt")),
            with(
                base.clone(),
                json!({"events": {"http://schemas.openid.net/event/backchannel-logout": {}}}),
            ),
        ),
        (
            header(None),
            with(base.clone(), json!({"events": {"x": {}}})),
        ),
        (
            header(Some("JWT")),
            with(base.clone(), json!({"typ": "Refresh"})),
        ),
        (header(Some("logout+jwt")), base.clone()),
        (header(Some("secevent+jwt")), base.clone()),
        (header(Some("id_token+jwt")), base.clone()),
    ];
    for (h, payload) in &refused {
        let token = k.mint_with_header(h, payload);
        for _ in 0..2 {
            assert_eq!(
                v.verify(&token).await.err(),
                Some(TokenError::NotAccessToken),
                "{h} {payload}"
            );
        }
        assert!(v.verify_cached(&token).is_none(), "{h}: never cached");
    }

    // An ID token verified for the login (its own use) is not cached, so it cannot pass as a
    // bearer credential afterwards.
    let id_token = k.mint_with_header(
        &header(None),
        &with(base.clone(), json!({"nonce": "n-2", "typ": "ID"})),
    );
    let cached_before = v.cache_len();
    assert!(v.verify_for(&id_token, TokenUse::Id).await.is_ok());
    assert_eq!(v.cache_len(), cached_before, "an ID token is never cached");
    assert_eq!(
        v.verify(&id_token).await.err(),
        Some(TokenError::NotAccessToken)
    );
    // Likewise a logout token verified for back-channel logout.
    let logout = k.mint_with_header(
        &header(Some("logout+jwt")),
        &with(base.clone(), json!({"events": {"e": {}}, "sid": "s"})),
    );
    assert!(v.verify_for(&logout, TokenUse::Logout).await.is_ok());
    assert_eq!(v.cache_len(), cached_before);
    assert_eq!(
        v.verify(&logout).await.err(),
        Some(TokenError::NotAccessToken)
    );
    // And each use refuses the other kinds.
    assert!(v.verify_for(&logout, TokenUse::Id).await.is_err());
    assert!(v.verify_for(&id_token, TokenUse::Logout).await.is_err());
}

#[tokio::test]
async fn authorized_parties_restrict_azp() {
    let idp = FakeIdp::start(jwks(&[keys().rsa.jwk()])).await;
    let mut p = provider(&idp.issuer, None, &["RS256"]);
    p.authorized_parties = Some(vec!["web-app".into(), "cli".into()]);
    let v = TokenVerifier::new(&p, 1000).expect("verifier");
    v.refresh_keys().await.expect("keys");
    let k = &keys().rsa;
    let base = claims(&idp.issuer);
    for azp in ["web-app", "cli"] {
        let token = k.mint("RS256", &with(base.clone(), json!({"azp": azp})));
        assert!(v.verify(&token).await.is_ok(), "{azp}");
    }
    for payload in [
        base.clone(),
        with(base.clone(), json!({"azp": "other"})),
        with(base.clone(), json!({"azp": "Web-App"})),
        with(base.clone(), json!({"azp": ["web-app"]})),
    ] {
        let token = k.mint("RS256", &payload);
        assert_eq!(
            v.verify(&token).await.err(),
            Some(TokenError::UnauthorizedParty),
            "{payload}"
        );
        assert!(v.verify_cached(&token).is_none());
    }
}

#[tokio::test]
async fn a_key_that_leaves_the_jwks_takes_its_cached_tokens_with_it() {
    let (idp, v) = setup().await;
    let k = keys();
    let by_first = k.rsa.mint("RS256", &claims(&idp.issuer));
    let by_second = k.rsa2.mint("RS256", &claims(&idp.issuer));
    assert!(v.verify(&by_first).await.is_ok());
    assert!(v.verify(&by_second).await.is_ok());
    assert_eq!(v.cache_len(), 2);
    // The same keys again: nothing is dropped.
    assert_eq!(v.refresh_keys().await, Ok(2));
    assert!(v.verify_cached(&by_first).is_some());
    // The first key leaves: its token is no longer served, the other one's still is.
    idp.set_jwks(jwks(&[k.rsa2.jwk()]));
    assert_eq!(v.refresh_keys().await, Ok(1));
    assert!(v.verify_cached(&by_first).is_none(), "dropped with its key");
    assert!(v.verify_cached(&by_second).is_some());
    assert_eq!(v.cache_len(), 1);
    assert_eq!(
        v.verify(&by_first).await.err(),
        Some(TokenError::UnknownKid)
    );
    // A key replaced under the same kid is another key: its old tokens go too.
    let mut impostor = k.rsa.jwk();
    impostor["kid"] = json!(k.rsa2.kid);
    idp.set_jwks(jwks(&[impostor]));
    assert_eq!(v.refresh_keys().await, Ok(1));
    assert!(v.verify_cached(&by_second).is_none());
    assert_eq!(v.cache_len(), 0);
    assert_eq!(v.cache_bytes(), 0);
}

#[tokio::test]
async fn a_jwks_without_usable_keys_never_replaces_good_keys() {
    let (idp, v) = setup().await;
    let k = keys();
    let token = k.rsa.mint("RS256", &claims(&idp.issuer));
    for useless in [
        jwks(&[]),
        jwks(&[k.p256.jwk()]), // ES256 is not allowed for this provider
        jwks(&[json!({"kty": "oct", "k": "c2VjcmV0", "kid": k.rsa.kid})]),
        jwks(&[with(k.rsa.jwk(), json!({"use": "enc"}))]),
    ] {
        idp.set_jwks(useless.clone());
        assert!(v.refresh_keys().await.is_err(), "{useless}");
        assert!(v.keys_loaded());
    }
    // The good keys are still in use: an uncached token verifies.
    assert!(v.verify_cached(&token).is_none());
    assert!(v.verify(&token).await.is_ok());
}

/// A loopback server that answers every request with a redirect to `location`; counts them.
async fn redirector(location: String) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf).await;
            let response = format!(
                "HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
    });
    (format!("http://{addr}"), hits)
}

#[tokio::test]
async fn discovery_and_jwks_requests_follow_no_redirects() {
    let idp = FakeIdp::start(jwks(&[keys().rsa.jwk()])).await;
    let real = format!("{}/.well-known/openid-configuration", idp.issuer);
    let (base, hits) = redirector(real).await;
    let mut p = provider(&idp.issuer, None, &["RS256"]);
    p.discovery_url = format!("{base}/.well-known/openid-configuration");
    let v = TokenVerifier::new(&p, 1000).expect("verifier");
    let error = v.refresh_keys().await.expect_err("a 302 is an error");
    assert!(error.contains("302"), "{error}");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(idp.discovery_hits(), 0, "the redirect was not followed");
    assert!(!v.keys_loaded());
}

#[tokio::test]
async fn plain_http_is_refused_unless_the_provider_allows_it() {
    let idp = FakeIdp::start(jwks(&[keys().rsa.jwk()])).await;
    let mut p = provider(&idp.issuer, None, &["RS256"]);
    p.allow_insecure_http = false;
    let v = TokenVerifier::new(&p, 1000).expect("verifier");
    let error = v.refresh_keys().await.expect_err("http refused");
    assert!(error.contains("https"), "{error}");
    assert_eq!(idp.discovery_hits(), 0, "nothing was fetched");
    // The login client refuses the same discovery.
    let oidc = gatehouse_session::oidc::OidcClient::new(&p, Arc::new(v)).expect("client");
    assert!(oidc.endpoints().await.is_err());
    assert_eq!(idp.discovery_hits(), 0);
}

#[tokio::test]
async fn the_cache_is_bounded_in_bytes() {
    let idp = FakeIdp::start(jwks(&[keys().rsa.jwk()])).await;
    let mut p = provider(&idp.issuer, None, &["RS256"]);
    p.token_cache_size = 64 * 1024;
    let v = TokenVerifier::new(&p, 100_000).expect("verifier");
    v.refresh_keys().await.expect("keys");
    let filler = "x".repeat(2000);
    for i in 0..200 {
        let token = keys().rsa.mint(
            "RS256",
            &with(
                claims(&idp.issuer),
                json!({"sub": format!("user-{i}"), "note": filler}),
            ),
        );
        assert!(v.verify(&token).await.is_ok());
        assert!(v.cache_bytes() <= 64 * 1024, "{} bytes", v.cache_bytes());
    }
    let held = v.cache_len();
    assert!(
        held > 0 && held < 200,
        "{held} entries of ~10 KiB in 64 KiB"
    );
}

#[tokio::test]
async fn introspected_refresh_tokens_and_other_clients_are_refused() {
    let idp = FakeIdp::start(jwks(&[keys().rsa.jwk()])).await;
    let mut p = introspecting_provider(
        &idp.issuer,
        gatehouse_config::TokenEndpointAuthMethod::ClientSecretBasic,
    );
    p.authorized_parties = Some(vec!["svc".into()]);
    let v = TokenVerifier::new(&p, 1000).expect("verifier");
    let active = |changes: Value| {
        let mut answer = with(claims(&idp.issuer), json!({"active": true}));
        answer["client_id"] = json!("svc");
        answer["token_type"] = json!("Bearer");
        with(answer, changes)
    };
    idp.set_introspection("access-1", active(json!({})));
    idp.set_introspection("access-2", active(json!({"azp": "svc", "client_id": "x"})));
    assert!(v.introspect("access-1").await.is_ok());
    assert!(
        v.introspect("access-2").await.is_ok(),
        "azp wins over client_id"
    );
    for (token, answer, error) in [
        (
            "keycloak-refresh",
            active(json!({"typ": "Refresh"})),
            TokenError::NotAccessToken,
        ),
        (
            "keycloak-offline",
            active(json!({"typ": "Offline"})),
            TokenError::NotAccessToken,
        ),
        (
            "typed-refresh",
            active(json!({"token_type": "refresh_token"})),
            TokenError::NotAccessToken,
        ),
        (
            "ory-refresh",
            active(json!({"token_use": "refresh_token"})),
            TokenError::NotAccessToken,
        ),
        (
            "other-client",
            active(json!({"client_id": "someone-else"})),
            TokenError::UnauthorizedParty,
        ),
    ] {
        idp.set_introspection(token, answer);
        assert_eq!(v.introspect(token).await.err(), Some(error), "{token}");
        assert!(v.introspect_cached(token).is_none(), "{token}");
    }
}
