//! Bearer-token verification: one [`TokenVerifier`] per identity provider. The gateway owns
//! the refresh schedule (it spans config reloads), calling [`TokenVerifier::refresh_keys`].
//!
//! A token is checked in this order, stopping at the first failure: size (16 KiB) and shape
//! (three non-empty base64url parts) → header (`alg` allowlist; `none` and `HS*` always
//! refused) → key by `kid` (an unknown `kid` triggers one single-flight, rate-limited JWKS
//! refetch and one retry) → signature → payload JSON → `exp`, `nbf`, `iat` (with leeway) →
//! `iss` → `aud` → the token's kind for its use ([`TokenUse`]: a bearer credential must be an
//! access token) → `azp` against `authorized-parties` → `auth_time` (max token age). Only then
//! are the claims cached, until `exp`, and only for the bearer use: ID and logout tokens are
//! verified by [`TokenVerifier::verify_for`] and never cached. A cached token is dropped when
//! its signing key leaves the JWKS; a JWKS without a usable key never replaces the keys in use.
//!
//! Opaque tokens (and, on `introspect` routes, JWTs too) are checked at the provider's RFC 7662
//! introspection endpoint instead: see [`TokenVerifier::introspect`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::{ArcSwapOption, Guard};
use base64::Engine;
use jsonwebtoken::Algorithm;

use crate::cache::TokenCache;
use crate::claims::Claims;
use crate::discovery::{Document, ProviderDiscovery};
use crate::encoding::B64URL;
use crate::error::{BuildError, JwksFileError};
use crate::http::{IdpCall, IdpOutcome};
use crate::jwks::{self, JwksSource, KeyMiss, KeySet};

mod accessors;
mod diagnose;
mod error;
mod introspection;
mod jws;
mod kind;
mod rules;

pub use diagnose::{fingerprint, Diagnosis, TokenCheck};
pub use error::TokenError;
pub use introspection::{Introspector, MAX_CONCURRENT_INTROSPECTIONS, REFUSED_CACHE_SECS};
pub use jws::looks_like_jwt;
use jws::{split_token, Parts};
pub use kind::TokenUse;
pub(crate) use rules::now_secs;
use rules::Rules;
pub use rules::MAX_TOKEN_BYTES;

/// Whose audience a bearer token must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience<'a> {
    /// One of the provider's `audiences` (default: its `client-id`).
    Provider,
    /// This RFC 8707 resource indicator (a route's `resource`), instead of the provider's
    /// audiences.
    Resource(&'a str),
}

impl Audience<'_> {
    /// Whether verified `claims` carry this audience: [`TokenError::WrongAudience`] if not.
    pub fn check(self, claims: &Claims) -> Result<(), TokenError> {
        let ok = match self {
            Audience::Provider => claims.provider_audience(),
            Audience::Resource(resource) => claims.has_audience(resource),
        };
        if ok {
            Ok(())
        } else {
            Err(TokenError::WrongAudience)
        }
    }
}

/// Milliseconds since the unix epoch (0 if the clock is before it).
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A key set that can verify something: an empty one (every key of another type, algorithm or
/// use, or an empty `keys` array) is an error, so it never replaces a working set.
fn usable(set: KeySet) -> Result<KeySet, JwksFileError> {
    if set.is_empty() {
        Err(JwksFileError::NoUsableKey)
    } else {
        Ok(set)
    }
}

/// Verifies bearer tokens of one identity provider and caches the verified ones.
///
/// Keys come from the provider's `jwks-file` (read at construction and on
/// [`refresh_keys`](Self::refresh_keys)) or from OIDC discovery (fetched by
/// [`refresh_keys`](Self::refresh_keys), driven by the gateway's schedule, and on
/// an unknown `kid`).
pub struct TokenVerifier {
    name: String,
    client_id: String,
    /// `iss`, `aud`, `azp`, leeway and max-token-age, shared with introspection.
    rules: Rules,
    algorithms: Vec<Algorithm>,
    source: JwksSource,
    /// The provider's discovery document (its `jwks_uri`) and HTTP client, shared with the
    /// introspector and the login client.
    discovery: Arc<ProviderDiscovery>,
    keys: ArcSwapOption<KeySet>,
    /// Bumped after every key-set swap; lets a waiter see that someone else refetched.
    generation: AtomicU64,
    /// When the keys in use were loaded or last fetched (unix milliseconds; 0: never).
    keys_fetched_ms: AtomicU64,
    /// Held across an unknown-kid refetch (single flight); holds when the last one started.
    refetch: tokio::sync::Mutex<Option<Instant>>,
    min_refetch_interval: Duration,
    refresh_interval: Duration,
    cache: TokenCache,
    /// RFC 7662 introspection: endpoint, credentials, caches, in-flight requests.
    introspector: Introspector,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("name", &self.name)
            .field("issuer", &self.rules.issuer)
            .field("source", &self.source)
            .field("keys_loaded", &self.keys_loaded())
            .field("cache_len", &self.cache_len())
            .field("introspection", &self.introspector.enabled())
            .finish_non_exhaustive()
    }
}

impl TokenVerifier {
    /// Builds the verifier of `provider` with a verified-token cache of at most
    /// `cache_capacity` entries (0 disables caching; callers commonly pass
    /// 100_000) and at most the provider's `token-cache-size` bytes. With `jwks-file` the file is read and parsed here (synchronously: this runs at
    /// start and reload, not per request) and an unreadable file is an error. The provider's
    /// `max-token-age`, if set, applies as with [`with_max_token_age`](Self::with_max_token_age).
    ///
    /// With `introspection: true` the provider's `introspection-url` (or, with discovery, the
    /// discovery document's `introspection_endpoint`), client credentials and
    /// `introspection-cache-ttl` are used by [`introspect`](Self::introspect); the
    /// introspection caches share `cache_capacity`'s bound.
    ///
    /// Errors on an algorithm outside [`jwks::ASYMMETRIC_ALGORITHMS`] (so `none`/`HS*` in the
    /// config are refused here too), an HTTP client that cannot be built, or `introspection`
    /// without a `client-secret` (or with a `jwks-file` but no `introspection-url`).
    pub fn new(
        provider: &gatehouse_config::IdentityProvider,
        cache_capacity: usize,
    ) -> Result<Self, BuildError> {
        Self::with_discovery(
            provider,
            cache_capacity,
            Arc::new(ProviderDiscovery::new(provider)?),
        )
    }

    /// [`new`](Self::new) with the provider's discovery given (shared with whoever else reads
    /// the provider's discovery document).
    pub fn with_discovery(
        provider: &gatehouse_config::IdentityProvider,
        cache_capacity: usize,
        discovery: Arc<ProviderDiscovery>,
    ) -> Result<Self, BuildError> {
        let mut algorithms = Vec::new();
        for name in &provider.algorithms {
            let alg = jwks::parse_algorithm(name).ok_or_else(|| BuildError::Algorithm {
                provider: provider.name.clone(),
                algorithm: name.clone(),
            })?;
            if !algorithms.contains(&alg) {
                algorithms.push(alg);
            }
        }
        if algorithms.is_empty() {
            algorithms.push(Algorithm::RS256);
        }
        let source = JwksSource::for_provider(provider);
        let cache_bytes = usize::try_from(provider.token_cache_size).unwrap_or(usize::MAX);
        let introspector = Introspector::new(
            provider,
            Arc::clone(&discovery),
            cache_capacity,
            cache_bytes,
        )?;
        let keys = match source.load_file_blocking(&algorithms) {
            Some(loaded) => {
                let set = loaded
                    .and_then(usable)
                    .map_err(|source| BuildError::JwksFile {
                        provider: provider.name.clone(),
                        source,
                    })?;
                Some(Arc::new(set))
            }
            None => None,
        };
        let has_keys = keys.is_some();
        Ok(TokenVerifier {
            name: provider.name.clone(),
            client_id: provider.client_id.clone(),
            rules: Rules::for_provider(provider),
            algorithms,
            source,
            discovery,
            keys: ArcSwapOption::new(keys),
            generation: AtomicU64::new(0),
            keys_fetched_ms: AtomicU64::new(if has_keys { unix_ms() } else { 0 }),
            refetch: tokio::sync::Mutex::new(None),
            min_refetch_interval: provider.jwks_min_refetch_interval,
            refresh_interval: provider.jwks_refresh_interval,
            cache: TokenCache::new(cache_capacity, cache_bytes),
            introspector,
        })
    }

    /// Requires `auth_time` (seconds) to be at most `max_age` old; tokens without `auth_time`
    /// are then refused as [`TokenError::TooOld`], and a cached token is served only until
    /// `auth_time + max_age`. Overrides the provider's `max-token-age`. Default: that setting,
    /// else no limit.
    pub fn with_max_token_age(mut self, max_age: Duration) -> Self {
        self.rules.max_token_age = Some(max_age.as_secs());
        self
    }

    /// Verifies `token` (the bearer value, without `Bearer `) as an access token
    /// ([`TokenUse::Access`]) and returns its claims.
    ///
    /// A cache hit costs a keyed hash and a map lookup: no signature check and no await on
    /// I/O. A miss verifies fully; only an unknown `kid` (or no keys yet) awaits, on the
    /// single-flight refetch. Failures are never cached.
    pub async fn verify(&self, token: &str) -> Result<Arc<Claims>, TokenError> {
        self.verify_noting_hit(token)
            .await
            .map(|(claims, _)| claims)
    }

    /// [`TokenVerifier::verify`], also saying whether the claims came from the cache (for a
    /// hit/miss metric without hashing the token twice).
    pub async fn verify_noting_hit(&self, token: &str) -> Result<(Arc<Claims>, bool), TokenError> {
        self.verify_for_audience(token, Audience::Provider).await
    }

    /// Verifies `token` as an access token for `audience` ([`Audience`]), saying whether the
    /// claims came from the cache. The cache is shared by both kinds of audience: a token
    /// verified for a resource is cached with whether it also names one of the provider's
    /// audiences, and each lookup checks its own rule.
    pub async fn verify_for_audience(
        &self,
        token: &str,
        audience: Audience<'_>,
    ) -> Result<(Arc<Claims>, bool), TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed);
        }
        let key = self.cache.key(token);
        if let Some(hit) = self.cache.get(key, now_secs()) {
            audience.check(&hit)?;
            return Ok((hit, true));
        }
        let now = now_secs();
        let (claims, valid_until, signer) = self
            .verify_uncached(token, TokenUse::Access, audience, now)
            .await?;
        let weight = claims.retained_bytes();
        let claims = Arc::new(claims);
        self.cache
            .insert(key, Arc::clone(&claims), weight, signer, valid_until, now);
        if !self.key_in_use(signer) {
            // The key left the JWKS while this token was being checked, after the eviction
            // sweep looked: its entry must not outlive the key.
            self.cache.remove(key);
        }
        audience.check(&claims)?;
        Ok((claims, false))
    }

    /// Whether the current key set has the key with this fingerprint.
    fn key_in_use(&self, fingerprint: u64) -> bool {
        self.keys
            .load()
            .as_ref()
            .is_some_and(|keys| keys.has_fingerprint(fingerprint))
    }

    /// Verifies `token` for `usage`: [`TokenUse::Access`] is [`verify`](Self::verify); an ID
    /// or logout token is verified the same way (keys, signature, registered claims) but
    /// checked against its own kind and never cached, so it can never be served to a bearer
    /// lookup.
    pub async fn verify_for(
        &self,
        token: &str,
        usage: TokenUse,
    ) -> Result<Arc<Claims>, TokenError> {
        if usage == TokenUse::Access {
            return self.verify(token).await;
        }
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed);
        }
        let (claims, _, _) = self
            .verify_uncached(token, usage, Audience::Provider, now_secs())
            .await?;
        Ok(Arc::new(claims))
    }

    /// The full check of a token for `usage`, without the cache: returns the claims, until
    /// when they may be served from the cache and the fingerprint of the verifying key.
    async fn verify_uncached(
        &self,
        token: &str,
        usage: TokenUse,
        audience: Audience<'_>,
        now: u64,
    ) -> Result<(Claims, u64, u64), TokenError> {
        let parts = split_token(token)?;
        let generation = self.generation.load(Ordering::Acquire);
        let signer = match self.check_signature(&parts) {
            Err(TokenError::UnknownKid) | Err(TokenError::KeysUnavailable) => {
                self.refetch_for_unknown_kid(generation).await;
                self.check_signature(&parts)?
            }
            other => other?,
        };
        let (claims, valid_until) = self.check_claims(&parts, usage, audience, now)?;
        Ok((claims, valid_until, signer))
    }

    /// The cached claims of `token` if it was verified before for the provider's audiences
    /// and has not expired; never verifies anything (the synchronous fast path for callers
    /// that want to avoid a future).
    pub fn verify_cached(&self, token: &str) -> Option<Arc<Claims>> {
        if token.len() > MAX_TOKEN_BYTES {
            return None;
        }
        self.cache
            .get(self.cache.key(token), now_secs())
            .filter(|claims| claims.provider_audience())
    }

    /// Checks the signature; returns the verifying key's fingerprint.
    fn check_signature(&self, parts: &Parts<'_>) -> Result<u64, TokenError> {
        if !self.algorithms.contains(&parts.alg) {
            return Err(TokenError::UnsupportedAlgorithm);
        }
        let keys: Guard<Option<Arc<KeySet>>> = self.keys.load();
        let Some(keys) = keys.as_ref() else {
            return Err(TokenError::KeysUnavailable);
        };
        let (key, fingerprint) = keys
            .select(parts.kid.as_deref(), parts.alg)
            .map_err(|miss| match miss {
                KeyMiss::UnknownKid => TokenError::UnknownKid,
                KeyMiss::WrongAlgorithm => TokenError::UnsupportedAlgorithm,
            })?;
        key.verify_sig(parts.signing_input, &parts.signature)
            .map_err(|_| TokenError::BadSignature)?;
        Ok(fingerprint)
    }

    /// Checks the registered claims of a signature-verified token and its kind for `usage`;
    /// returns the claims and until when they may be served from the cache. The provider's
    /// audiences are required for [`Audience::Provider`]; for a resource they are only noted
    /// in the claims (the resource itself is checked by [`Audience::check`]).
    fn check_claims(
        &self,
        parts: &Parts<'_>,
        usage: TokenUse,
        audience: Audience<'_>,
        now: u64,
    ) -> Result<(Claims, u64), TokenError> {
        let bytes = B64URL
            .decode(parts.payload_b64)
            .map_err(|_| TokenError::Malformed)?;
        let text = String::from_utf8(bytes).map_err(|_| TokenError::Malformed)?;
        let (mut claims, registered) =
            Claims::from_json(text).map_err(|_| TokenError::Malformed)?;
        let exp = registered.exp.ok_or(TokenError::Malformed)?;
        if exp.saturating_add(self.rules.leeway) <= now {
            return Err(TokenError::Expired);
        }
        if let Some(nbf) = registered.nbf {
            if nbf.saturating_sub(self.rules.leeway) > now {
                return Err(TokenError::NotYetValid);
            }
        }
        if let Some(iat) = registered.iat {
            if iat.saturating_sub(self.rules.leeway) > now {
                return Err(TokenError::NotYetValid);
            }
        }
        if registered.iss.as_deref() != Some(self.rules.issuer.as_str()) {
            return Err(TokenError::WrongIssuer);
        }
        claims.provider_audience = registered.aud.iter().any(|aud| self.rules.audience_ok(aud));
        if !claims.provider_audience && matches!(audience, Audience::Provider) {
            return Err(TokenError::WrongAudience);
        }
        kind::check_use(usage, parts.typ.as_deref(), &registered)?;
        if usage == TokenUse::Access {
            kind::check_azp(
                self.rules.authorized_parties.as_deref(),
                registered.azp.as_deref(),
            )?;
        }
        let mut valid_until = exp;
        if let Some(max_age) = self.rules.max_token_age {
            if registered.auth_time_malformed {
                return Err(TokenError::Malformed);
            }
            let auth_time = claims.auth_time.ok_or(TokenError::TooOld)?;
            let deadline = auth_time.saturating_add(max_age);
            if deadline < now {
                return Err(TokenError::TooOld);
            }
            valid_until = valid_until.min(deadline.saturating_add(1));
        }
        Ok((claims, valid_until))
    }

    /// The unknown-kid path: one fetch for all concurrent callers, at most one per
    /// `jwks-min-refetch-interval`; callers that arrive while one is running wait for it and
    /// then use its result.
    async fn refetch_for_unknown_kid(&self, seen_generation: u64) {
        let mut last = self.refetch.lock().await;
        if self.generation.load(Ordering::Acquire) != seen_generation {
            return; // the keys changed since this caller looked: retry with them
        }
        if last.is_some_and(|at| at.elapsed() < self.min_refetch_interval) {
            return;
        }
        *last = Some(Instant::now());
        match self.fetch_keys(false).await {
            Ok(set) => {
                tracing::info!(provider = %self.name, keys = set.len(), "JWKS refetched for an unknown kid");
                self.install(set);
            }
            Err(error) => {
                tracing::warn!(provider = %self.name, %error, "JWKS refetch for an unknown kid failed");
            }
        }
    }

    /// Fetches the JWKS: the file, or the discovered `jwks_uri`, discovering again when
    /// `discover` or when the last document has no usable one.
    async fn fetch_keys(&self, discover: bool) -> Result<KeySet, String> {
        let bytes = match &self.source {
            JwksSource::File(path) => tokio::fs::read(path)
                .await
                .map_err(|e| format!("cannot read jwks-file {}: {e}", path.display()))?,
            JwksSource::Discovery => {
                let known = self.discovery.document().filter(|_| !discover);
                let uri = match known.and_then(|doc| doc.jwks_uri().ok()) {
                    Some(uri) => Ok(uri),
                    None if discover => self.discovery.refresh().await.and_then(|d| d.jwks_uri()),
                    None => self.discovery.get_with(Document::jwks_uri).await,
                }
                .map_err(|e| e.to_string())?;
                let timer = self.discovery.timer(IdpCall::Jwks);
                let set = match crate::http::get_limited(self.discovery.http(), &uri).await {
                    Ok(bytes) => self.key_set(&bytes),
                    Err(e) => {
                        timer.finish(e.outcome);
                        return Err(e.into());
                    }
                };
                timer.finish(match set {
                    Ok(_) => IdpOutcome::Ok,
                    Err(_) => IdpOutcome::Invalid,
                });
                return set;
            }
        };
        self.key_set(&bytes)
    }

    /// The usable keys of a JWKS document.
    fn key_set(&self, bytes: &[u8]) -> Result<KeySet, String> {
        KeySet::from_jwks_json(bytes, &self.algorithms)
            .and_then(|set| usable(set).map_err(|e| e.to_string()))
    }

    /// Puts `set` in use and drops the cached tokens of every key it no longer has. The new
    /// set is stored first, so a token verified with a departing key either is swept here or
    /// sees the new set when it checks [`key_in_use`](Self::key_in_use) after caching.
    fn install(&self, set: KeySet) {
        let set = Arc::new(set);
        let old = self.keys.swap(Some(Arc::clone(&set)));
        self.generation.fetch_add(1, Ordering::Release);
        self.keys_fetched_ms.store(unix_ms(), Ordering::Relaxed);
        if let Some(old) = old {
            let gone = old.gone_in(&set);
            let evicted = self.cache.evict_signers(&gone);
            if !gone.is_empty() {
                tracing::info!(provider = %self.name, keys = gone.len(), tokens = evicted, "signing keys left the JWKS; their cached tokens are dropped");
            }
        }
    }

    /// Fetches the keys now: the `jwks-file`, or discovery + JWKS. On success the new key set
    /// replaces the old one (cached tokens of keys it lacks are dropped) and its number of
    /// usable keys is returned; on failure, including a JWKS with no usable key, the old keys
    /// stay in use.
    pub async fn refresh_keys(&self) -> Result<usize, String> {
        let set = self.fetch_keys(true).await?;
        let count = set.len();
        self.install(set);
        Ok(count)
    }
}
