//! What a [`TokenVerifier`] tells about itself (readiness, key age, caches, settings) and its
//! introspection entry points.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Algorithm;

use super::introspection::Introspector;
use super::TokenError;
use super::{unix_ms, TokenVerifier};
use crate::claims::Claims;
use crate::discovery::ProviderDiscovery;

impl TokenVerifier {
    /// Whether a key set has been loaded (for `/readyz`).
    pub fn keys_loaded(&self) -> bool {
        self.keys.load().is_some()
    }

    /// How long ago the keys in use were loaded or last fetched successfully (a refresh that
    /// returns the same keys counts as a fetch); `None` before any keys are loaded.
    pub fn keys_age(&self) -> Option<Duration> {
        match self.keys_fetched_ms.load(Ordering::Relaxed) {
            0 => None,
            at => Some(Duration::from_millis(unix_ms().saturating_sub(at))),
        }
    }

    /// Number of tokens in the verified-token cache.
    pub fn cache_len(&self) -> usize {
        self.cache.len()
    }

    /// Estimated bytes held by the verified-token cache (bounded by `token-cache-size`).
    pub fn cache_bytes(&self) -> usize {
        self.cache.bytes()
    }

    /// The provider's issuer (tokens' `iss` must equal it).
    pub fn issuer(&self) -> &str {
        &self.rules.issuer
    }

    /// The provider's algorithm allowlist (`algorithms`, default RS256): also the algorithms
    /// a DPoP proof may use on its tenant's routes.
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }

    /// The provider's clock `leeway`, seconds.
    pub fn leeway(&self) -> u64 {
        self.rules.leeway
    }

    /// The provider's `client-id` (the default client of bare role names).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The provider's name in the config.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The provider's discovery: its document and HTTP client, shared with the login client.
    pub fn discovery(&self) -> &Arc<ProviderDiscovery> {
        &self.discovery
    }

    /// The provider's RFC 7662 introspection.
    pub fn introspector(&self) -> &Introspector {
        &self.introspector
    }

    /// Whether this provider introspects (config `introspection`).
    pub fn introspection_enabled(&self) -> bool {
        self.introspector.enabled()
    }

    /// Checks `token` at the provider's RFC 7662 introspection endpoint:
    /// `POST token=<token>&token_type_hint=access_token` with the client's credentials.
    ///
    /// `active: false` is [`TokenError::Inactive`]; an active answer becomes [`Claims`] built
    /// from the whole response (Keycloak-style responses carry the token's claims: `sub`,
    /// `realm_access`, `resource_access`, `groups`, `email`, ...; [`Claims::exp`] is the
    /// response's `exp`, or 0 without one). The response's `iss` (when present) must be the
    /// provider's issuer ([`TokenError::WrongIssuer`]), its `aud` (when present) must name one
    /// of the audiences ([`TokenError::WrongAudience`]), an `exp` in the past (with leeway) is
    /// [`TokenError::Expired`], an `nbf` in the future [`TokenError::NotYetValid`], and
    /// max-token-age applies to `auth_time` as for JWTs. An answer describing another kind of
    /// token (a refresh token: Keycloak `typ: Refresh`, a `token_type` that is not `Bearer`, ...)
    /// is [`TokenError::NotAccessToken`]; with `authorized-parties`, its `azp` (else
    /// `client_id`) must be listed ([`TokenError::UnauthorizedParty`]).
    ///
    /// Active results are cached by keyed token hash for `min(introspection-cache-ttl,
    /// exp - now)`; refusals other than `NotYetValid` are cached for at most
    /// [`REFUSED_CACHE_SECS`](super::REFUSED_CACHE_SECS). Network or HTTP failure (including 401 for bad client
    /// credentials), an unusable response, no known endpoint or introspection being disabled
    /// is [`TokenError::IntrospectionUnavailable`], never cached. If discovery has not
    /// succeeded yet (and no `introspection-url` is set), it is run first. Concurrent calls for
    /// the same token share one request.
    pub async fn introspect(&self, token: &str) -> Result<Arc<Claims>, TokenError> {
        self.introspector.introspect(token, &self.rules).await
    }

    /// The cached claims of an active introspected `token`: see [`Introspector::cached`].
    pub fn introspect_cached(&self, token: &str) -> Option<Arc<Claims>> {
        self.introspector.cached(token)
    }

    /// Number of active introspection results cached.
    pub fn introspection_cache_len(&self) -> usize {
        self.introspector.cache_len()
    }

    /// The provider's `jwks-refresh-interval`.
    pub fn refresh_interval(&self) -> Duration {
        self.refresh_interval
    }
}
