//! Introspection against the real test IdP (`testing/idp`, oidc-provider) issuing opaque
//! access tokens. Skipped (with a message; failed when `CI=true`) only when `node` is not
//! installed.

use gatehouse_config::{IdentityProvider, Secret, TokenEndpointAuthMethod};
use gatehouse_session::{looks_like_jwt, TokenError, TokenVerifier};
use gatehouse_test_support::config::idp_client;
use gatehouse_test_support::idp::Idp;
use gatehouse_test_support::process::{node_available, skip_or_fail};
use serde_json::Value;

fn start_idp() -> Idp {
    Idp::start(None, &[("IDP_ACCESS_TOKEN_FORMAT", "opaque")])
}

fn provider(issuer: &str, method: TokenEndpointAuthMethod) -> IdentityProvider {
    let mut p = idp_client(issuer, method);
    p.introspection = true;
    p
}

async fn client_credentials_token(issuer: &str, id: &str, secret: &str) -> String {
    let response: Value = reqwest::Client::new()
        .post(format!("{issuer}/protocol/openid-connect/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token request")
        .error_for_status()
        .expect("token status")
        .json()
        .await
        .expect("token JSON");
    response["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

async fn introspection_requests(idp: &Idp) -> u64 {
    let stats: Value = reqwest::get(format!("{}/__test/stats", idp.issuer))
        .await
        .expect("stats")
        .json()
        .await
        .expect("stats JSON");
    stats["introspection_requests"].as_u64().expect("counter")
}

#[tokio::test]
async fn opaque_tokens_from_the_real_idp() {
    if !node_available() {
        skip_or_fail(
            "opaque_tokens_from_the_real_idp",
            "`node` is not installed; the real-IdP introspection test needs it",
        );
        return;
    }
    let idp = tokio::task::spawn_blocking(start_idp)
        .await
        .expect("start task");
    let token = client_credentials_token(&idp.issuer, "svc-admin", "svc-admin-secret").await;
    assert!(!looks_like_jwt(&token), "IDP_ACCESS_TOKEN_FORMAT=opaque");

    for method in [
        TokenEndpointAuthMethod::ClientSecretBasic,
        TokenEndpointAuthMethod::ClientSecretPost,
    ] {
        let v = TokenVerifier::new(&provider(&idp.issuer, method), 1000).expect("verifier");
        let before = introspection_requests(&idp).await;
        let c = v
            .introspect(&token)
            .await
            .unwrap_or_else(|e| panic!("{method:?}: {e:?}"));
        assert_eq!(c.sub.as_deref(), Some("service-account-svc-admin"));
        assert!(c.has_realm_role("admin"), "{:?}", c.realm_roles);
        assert!(c.has_role("super-admin", "gatehouse"));
        assert!(c.in_group("/admins"));
        assert_eq!(c.email.as_deref(), Some("admin@example.com"));
        assert!(c.exp > 0);
        // Cached: no second request to the IdP.
        v.introspect(&token).await.expect("cached");
        assert!(v.introspect_cached(&token).is_some());
        assert_eq!(introspection_requests(&idp).await, before + 1);

        assert_eq!(
            v.introspect("definitely-not-a-token").await,
            Err(TokenError::Inactive)
        );
    }

    // A client with the wrong secret cannot introspect.
    let mut wrong = provider(&idp.issuer, TokenEndpointAuthMethod::ClientSecretBasic);
    wrong.client_secret = Some(Secret::new("nope"));
    let v = TokenVerifier::new(&wrong, 10).expect("verifier");
    assert_eq!(
        v.introspect(&token).await,
        Err(TokenError::IntrospectionUnavailable)
    );
}
