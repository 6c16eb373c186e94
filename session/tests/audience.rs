//! RFC 8707 resource audiences and the verified-token cache: a token verified for a route's
//! `resource` is cached with whether it also names one of the provider's audiences, and each
//! lookup, hit or miss, checks its own rule.

use gatehouse_session::{Audience, TokenError, TokenVerifier};
use gatehouse_test_support::config::{claims, provider, CLIENT_ID};
use gatehouse_test_support::fake_idp::FakeIdp;
use gatehouse_test_support::keys::{jwks, keys};
use serde_json::{json, Value};

const MCP: &str = "https://mcp.localhost/mcp";

async fn setup() -> (FakeIdp, TokenVerifier) {
    let idp = FakeIdp::start(jwks(&[keys().rsa.jwk()])).await;
    let verifier = TokenVerifier::new(&provider(&idp.issuer, None, &["RS256"]), 1000).expect("v");
    verifier.refresh_keys().await.expect("keys");
    (idp, verifier)
}

fn token(issuer: &str, aud: Value) -> String {
    let mut c = claims(issuer);
    c["aud"] = aud;
    keys().rsa.mint("RS256", &c)
}

#[tokio::test]
async fn a_resource_only_token_passes_its_resource_and_nothing_else() {
    let (idp, v) = setup().await;
    let t = token(&idp.issuer, json!(MCP));
    let (claims, hit) = v
        .verify_for_audience(&t, Audience::Resource(MCP))
        .await
        .unwrap();
    assert!(!hit);
    assert_eq!(claims.aud, [MCP]);
    assert!(!claims.provider_audience());
    // Cached now, and still refused where the provider's audiences apply: hit and sync path.
    assert_eq!(v.cache_len(), 1);
    assert_eq!(v.verify(&t).await.unwrap_err(), TokenError::WrongAudience);
    assert!(v.verify_cached(&t).is_none());
    // Another resource is another audience, on a hit as on a miss.
    let other = Audience::Resource("https://mcp.localhost/other");
    assert_eq!(
        v.verify_for_audience(&t, other).await.unwrap_err(),
        TokenError::WrongAudience
    );
    let (_, hit) = v
        .verify_for_audience(&t, Audience::Resource(MCP))
        .await
        .unwrap();
    assert!(hit);
}

#[tokio::test]
async fn a_provider_token_is_refused_on_a_resource_route_even_when_cached() {
    let (idp, v) = setup().await;
    let t = token(&idp.issuer, json!([CLIENT_ID, "account"]));
    v.verify(&t).await.expect("provider audience");
    assert_eq!(
        v.verify_for_audience(&t, Audience::Resource(MCP))
            .await
            .unwrap_err(),
        TokenError::WrongAudience,
        "cache hit"
    );
    let fresh = token(&idp.issuer, json!([CLIENT_ID]));
    assert_eq!(
        v.verify_for_audience(&fresh, Audience::Resource(MCP))
            .await
            .unwrap_err(),
        TokenError::WrongAudience,
        "cache miss"
    );
    // A token for both passes both.
    let both = token(&idp.issuer, json!([CLIENT_ID, MCP]));
    v.verify_for_audience(&both, Audience::Resource(MCP))
        .await
        .expect("resource");
    v.verify(&both).await.expect("provider");
}

#[tokio::test]
async fn a_provider_route_still_refuses_foreign_tokens_without_caching_them() {
    let (idp, v) = setup().await;
    let t = token(&idp.issuer, json!("someone-else"));
    assert_eq!(v.verify(&t).await.unwrap_err(), TokenError::WrongAudience);
    assert_eq!(v.cache_len(), 0);
}
