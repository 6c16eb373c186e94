//! What a token must satisfy whichever way it is checked, by signature or by introspection:
//! its size, the provider's issuer and audiences, the authorized parties, the clock leeway and
//! the maximum age of the authentication.

use std::time::{SystemTime, UNIX_EPOCH};

/// Tokens longer than this (bytes) are refused as malformed without being parsed.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Seconds since the Unix epoch (0 before it).
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// One provider's claim rules, shared by [`TokenVerifier`](super::TokenVerifier) and its
/// [`Introspector`](super::Introspector).
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    /// The provider's issuer: `iss` must equal it.
    pub(crate) issuer: String,
    /// `aud` must name one of these (default: the `client-id`).
    pub(crate) audiences: Vec<String>,
    /// `authorized-parties`: the `azp` values a bearer token may carry (`None`: any).
    pub(crate) authorized_parties: Option<Vec<String>>,
    /// Clock leeway for `exp`, `nbf` and `iat` (seconds).
    pub(crate) leeway: u64,
    /// `max-token-age` (seconds): `auth_time` must be at most this old.
    pub(crate) max_token_age: Option<u64>,
}

impl Rules {
    /// The rules of a configured provider.
    pub(crate) fn for_provider(provider: &gatehouse_config::IdentityProvider) -> Rules {
        let audiences = if provider.audiences.is_empty() {
            vec![provider.client_id.clone()]
        } else {
            provider.audiences.clone()
        };
        Rules {
            issuer: provider.issuer.clone(),
            audiences,
            authorized_parties: provider.authorized_parties.clone(),
            leeway: provider.leeway.as_secs(),
            max_token_age: provider.max_token_age.map(|age| age.as_secs()),
        }
    }

    /// Whether `aud` is one of the audiences.
    pub(crate) fn audience_ok(&self, aud: &str) -> bool {
        self.audiences.iter().any(|a| a == aud)
    }
}
