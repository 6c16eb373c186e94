//! What the token endpoint answers and what a code exchange or refresh returns.

use serde::Deserialize;
use serde_json::Value;

/// Access-token lifetime assumed when the token response has no `expires_in` and the access
/// token is not a verifiable JWT (seconds).
pub const DEFAULT_ACCESS_TOKEN_LIFETIME: u64 = 300;

/// The result of a code exchange or a refresh. `Debug` shows no token.
#[derive(Clone)]
pub struct TokenSet {
    /// The access token.
    pub access_token: String,
    /// When the access token expires (seconds since the Unix epoch): the earlier of its
    /// verified JWT `exp` and `now + expires_in`; [`DEFAULT_ACCESS_TOKEN_LIFETIME`] from now
    /// when neither is known.
    pub access_token_exp: u64,
    /// The refresh token. After [`OidcClient::refresh`](super::OidcClient::refresh) this is the
    /// rotated one, or the one that was presented when the provider did not rotate it
    /// (RFC 6749 section 6); after
    /// [`OidcClient::exchange`](super::OidcClient::exchange) `None` means none was issued.
    pub refresh_token: Option<String>,
    /// The ID token (a refresh response may not carry one).
    pub id_token: Option<String>,
    /// The validated ID token's payload plus the access token's claims the ID token lacks
    /// (only when the access token is a JWT the provider's verifier accepts). An empty object
    /// after a refresh that returned neither.
    pub claims: Value,
    /// The ID token's `sub` (else the verified access token's; empty after a refresh that
    /// returned neither: the caller keeps the session's).
    pub sub: String,
    /// The ID token's `sid` (the IdP session, for back-channel logout), if any.
    pub sid: Option<String>,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet")
            .field("access_token_exp", &self.access_token_exp)
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| ".."))
            .field("id_token", &self.id_token.as_ref().map(|_| ".."))
            .field("sub", &self.sub)
            .field("sid", &self.sid)
            .finish_non_exhaustive()
    }
}

/// A token endpoint's 2xx answer (RFC 6749 section 5.1).
#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    pub(crate) access_token: String,
    #[serde(default)]
    pub(crate) token_type: Option<String>,
    #[serde(default)]
    pub(crate) expires_in: Option<Value>,
    #[serde(default)]
    pub(crate) refresh_token: Option<String>,
    #[serde(default)]
    pub(crate) id_token: Option<String>,
}
