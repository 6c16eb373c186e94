//! Base configs: the identity provider the session tests and benches verify against, and
//! claims that provider accepts.

use std::path::PathBuf;
use std::time::Duration;

use gatehouse_config::{IdentityProvider, TokenEndpointAuthMethod};
use serde_json::{json, Value};

use crate::keys::now;

/// The client ID (and audience) of [`provider`].
pub const CLIENT_ID: &str = "web";
/// The client secret the fake IdP's introspection endpoint accepts for [`CLIENT_ID`].
pub const CLIENT_SECRET: &str = "web secret/+:é";

/// Valid claims for `issuer`, audience [`CLIENT_ID`], expiring in 5 minutes.
pub fn claims(issuer: &str) -> Value {
    let now = now();
    json!({
        "iss": issuer,
        "aud": CLIENT_ID,
        "sub": "user-1",
        "preferred_username": "alice",
        "email": "alice@example.com",
        "exp": now + 300,
        "iat": now,
        "auth_time": now,
        "realm_access": {"roles": ["admin", "offline_access"]},
        "resource_access": {"web": {"roles": ["viewer"]}, "billing": {"roles": ["payer"]}},
        "groups": ["/developers", "ops"],
        "org": {"id": 7, "units": ["a", "b"]}
    })
}

/// An identity-provider config with the defaults a validated config would have.
pub fn provider(issuer: &str, jwks_file: Option<PathBuf>, algorithms: &[&str]) -> IdentityProvider {
    IdentityProvider {
        name: "test".to_string(),
        issuer: issuer.to_string(),
        discovery_url: format!("{issuer}/.well-known/openid-configuration"),
        jwks_file,
        client_id: CLIENT_ID.to_string(),
        client_secret: None,
        audiences: vec![CLIENT_ID.to_string()],
        algorithms: algorithms.iter().map(|a| a.to_string()).collect(),
        leeway: Duration::from_secs(30),
        scopes: vec!["openid".to_string()],
        token_endpoint_auth_method: TokenEndpointAuthMethod::ClientSecretBasic,
        jwks_refresh_interval: Duration::from_secs(600),
        jwks_min_refetch_interval: Duration::from_secs(60),
        max_token_age: None,
        introspection: false,
        introspection_url: None,
        introspection_cache_ttl: Duration::from_secs(30),
        authorized_parties: None,
        allow_insecure_http: true,
        token_cache_size: gatehouse_config::DEFAULT_TOKEN_CACHE_SIZE,
    }
}

/// [`provider`] with introspection on (discovery, [`CLIENT_SECRET`], the given auth method).
pub fn introspecting_provider(issuer: &str, method: TokenEndpointAuthMethod) -> IdentityProvider {
    let mut p = provider(issuer, None, &["RS256"]);
    p.introspection = true;
    p.client_secret = Some(gatehouse_config::Secret::new(CLIENT_SECRET));
    p.token_endpoint_auth_method = method;
    p
}

/// The real test IdP's confidential `gatehouse` client (`testing/idp`): [`provider`] named
/// `demo`, with its client ID, audience and secret and the given client authentication.
pub fn idp_client(issuer: &str, method: TokenEndpointAuthMethod) -> IdentityProvider {
    let mut p = provider(issuer, None, &["RS256"]);
    p.name = "demo".to_string();
    p.client_id = "gatehouse".to_string();
    p.client_secret = Some(gatehouse_config::Secret::new("gatehouse-secret"));
    p.audiences = vec!["gatehouse".to_string()];
    p.token_endpoint_auth_method = method;
    p.jwks_min_refetch_interval = Duration::from_secs(30);
    p
}
