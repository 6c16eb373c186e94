//! RFC 7662 token introspection: for opaque bearer tokens (config `introspection`) and for
//! JWTs on revocation-sensitive routes (route `introspect`).
//!
//! `POST token=<token>&token_type_hint=access_token` to the provider's introspection endpoint
//! (`introspection-url`, else the discovery document's `introspection_endpoint`), the client
//! authenticating per `token-endpoint-auth-method`: `client_secret_basic` sends HTTP Basic of
//! the form-urlencoded `client-id` and `client-secret` (RFC 6749 §2.3.1), `client_secret_post`
//! sends both in the form body.
//!
//! An answer is checked like a JWT's payload, but only for the claims it has: `active` must be
//! `true` (else [`TokenError::Inactive`]); `exp` (with leeway), `nbf`, `iss`, `aud` and, with
//! max-token-age, `auth_time` are checked when present (`auth_time` is required with
//! max-token-age, as for JWTs). The whole response becomes the [`Claims`] (Keycloak puts the
//! token's claims in it: `sub`, `realm_access`, `resource_access`, `groups`, `email`, ...).
//!
//! Caching, by keyed hash of the token (never the token itself):
//! - an active result is served for `min(introspection-cache-ttl, exp - now)` (whole seconds;
//!   also bounded by max-token-age), so a revocation takes effect within the TTL;
//! - a definitive refusal (`active: false`, wrong `iss`/`aud`, expired, too old) is remembered
//!   for `min(`[`REFUSED_CACHE_SECS`]`, introspection-cache-ttl)` so a client retrying a dead
//!   token does not hammer the IdP; that cache has its own, smaller bound so a flood of garbage
//!   tokens cannot crowd out active results;
//! - failures to ask ([`TokenError::IntrospectionUnavailable`]) are never cached.
//!
//! Concurrent introspections of one token share one request (single flight; a cancelled
//! leader hands over to a waiter), and at most [`MAX_CONCURRENT_INTROSPECTIONS`] requests per
//! provider are in flight at once (a caller waits at most the fetch timeout for a slot).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use gatehouse_config::{IdentityProvider, Secret, TokenEndpointAuthMethod};
use serde_json::Value;
use tokio::sync::{watch, Semaphore};

use super::error::TokenError;
use super::rules::{now_secs, Rules, MAX_TOKEN_BYTES};
use crate::cache::TokenCache;
use crate::claims::{numeric_date, Claims};
use crate::discovery::{Document, ProviderDiscovery};
use crate::error::BuildError;
use crate::http::{IdpCall, IdpOutcome};

/// How long (seconds, at most) a refused token (`active: false`, wrong issuer or audience,
/// expired, too old) is remembered before the IdP is asked again.
pub const REFUSED_CACHE_SECS: u64 = 5;

/// Introspection requests one provider may have in flight at once.
pub const MAX_CONCURRENT_INTROSPECTIONS: usize = 32;

/// Bound of the refused-token cache (whatever the verifier's cache capacity).
const REFUSED_CACHE_CAPACITY: usize = 10_000;

type Outcome = Result<Arc<Claims>, TokenError>;

/// RFC 7662 introspection of one identity provider: endpoint, client credentials, caches and
/// in-flight requests. Held by the provider's [`TokenVerifier`](super::TokenVerifier), which
/// passes its claim rules.
pub struct Introspector {
    /// The provider's name, for logs.
    name: String,
    /// Config `introspection`.
    enabled: bool,
    /// `introspection-url`, which wins over discovery.
    configured_url: Option<Arc<String>>,
    /// The provider's discovery (its `introspection_endpoint`) and HTTP client.
    discovery: Arc<ProviderDiscovery>,
    client_id: String,
    client_secret: Option<Secret>,
    method: TokenEndpointAuthMethod,
    /// `introspection-cache-ttl` in whole seconds.
    ttl: u64,
    active: TokenCache,
    refused: TokenCache<TokenError>,
    /// token hash -> (flight id, the leader's answer once it has one).
    in_flight: DashMap<u128, (u64, watch::Receiver<Option<Outcome>>)>,
    flight_seq: AtomicU64,
    permits: Semaphore,
}

impl std::fmt::Debug for Introspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Introspector")
            .field("enabled", &self.enabled)
            .field("configured_url", &self.configured_url)
            .field("cache_len", &self.active.len())
            .finish_non_exhaustive()
    }
}

impl Introspector {
    /// The introspection of `provider`, asking the endpoint `introspection-url` or else the one
    /// `discovery` finds. Caches hold at most `cache_capacity` entries and `cache_bytes` bytes.
    ///
    /// # Errors
    ///
    /// With `introspection` on: no `client-secret`, or a `jwks-file` without
    /// `introspection-url`.
    pub fn new(
        provider: &IdentityProvider,
        discovery: Arc<ProviderDiscovery>,
        cache_capacity: usize,
        cache_bytes: usize,
    ) -> Result<Introspector, BuildError> {
        if provider.introspection {
            if provider.client_secret.is_none() {
                return Err(BuildError::IntrospectionSecret {
                    provider: provider.name.clone(),
                });
            }
            if provider.jwks_file.is_some() && provider.introspection_url.is_none() {
                return Err(BuildError::IntrospectionUrl {
                    provider: provider.name.clone(),
                });
            }
        }
        Ok(Introspector {
            name: provider.name.clone(),
            enabled: provider.introspection,
            configured_url: provider.introspection_url.clone().map(Arc::new),
            discovery,
            client_id: provider.client_id.clone(),
            client_secret: provider.client_secret.clone(),
            method: provider.token_endpoint_auth_method,
            ttl: provider.introspection_cache_ttl.as_secs(),
            active: TokenCache::new(cache_capacity, cache_bytes),
            refused: TokenCache::new(cache_capacity.min(REFUSED_CACHE_CAPACITY), cache_bytes),
            in_flight: DashMap::new(),
            flight_seq: AtomicU64::new(0),
            permits: Semaphore::new(MAX_CONCURRENT_INTROSPECTIONS),
        })
    }
}

/// Removes its in-flight entry when the leader finishes or is cancelled.
struct FlightGuard<'a> {
    map: &'a DashMap<u128, (u64, watch::Receiver<Option<Outcome>>)>,
    key: u128,
    id: u64,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        self.map.remove_if(&self.key, |_, (id, _)| *id == self.id);
    }
}

impl Introspector {
    /// Whether this provider introspects (config `introspection`).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Checks `token` with `rules`: see
    /// [`TokenVerifier::introspect`](super::TokenVerifier::introspect).
    pub(crate) async fn introspect(
        &self,
        token: &str,
        rules: &Rules,
    ) -> Result<Arc<Claims>, TokenError> {
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed);
        }
        if !self.enabled {
            tracing::debug!(provider = %self.name, "introspect called but introspection is off");
            return Err(TokenError::IntrospectionUnavailable);
        }
        let key = self.active.key(token);
        loop {
            if let Some(cached) = self.introspection_cached(key) {
                return cached;
            }
            let joined = match self.in_flight.entry(key) {
                Entry::Occupied(flight) => Err(flight.get().1.clone()),
                Entry::Vacant(slot) => {
                    let (tx, rx) = watch::channel(None);
                    let id = self.flight_seq.fetch_add(1, Ordering::Relaxed);
                    slot.insert((id, rx));
                    Ok((id, tx))
                }
            };
            match joined {
                Err(mut rx) => {
                    let answer = rx
                        .wait_for(Option::is_some)
                        .await
                        .map(|answer| answer.clone());
                    match answer {
                        Ok(Some(outcome)) => return outcome,
                        // The leader was cancelled before answering: try again (maybe as leader).
                        _ => continue,
                    }
                }
                Ok((id, tx)) => {
                    let _guard = FlightGuard {
                        map: &self.in_flight,
                        key,
                        id,
                    };
                    // A flight that ended between our cache check and our insert has cached
                    // its answer.
                    if let Some(cached) = self.introspection_cached(key) {
                        tx.send_replace(Some(cached.clone()));
                        return cached;
                    }
                    let outcome = self.introspect_uncached(token, key, rules).await;
                    tx.send_replace(Some(outcome.clone()));
                    return outcome;
                }
            }
        }
    }

    /// The synchronous fast path: the cached claims of `token` if an introspection found it
    /// active within the cache TTL (and before its `exp`). Never asks the IdP; refusals are
    /// not returned here (call [`TokenVerifier::introspect`](super::TokenVerifier::introspect),
    /// which serves them from cache).
    pub fn cached(&self, token: &str) -> Option<Arc<Claims>> {
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES || !self.enabled {
            return None;
        }
        self.active.get(self.active.key(token), now_secs())
    }

    /// Number of active introspection results cached.
    pub fn cache_len(&self) -> usize {
        self.active.len()
    }

    fn introspection_cached(&self, key: u128) -> Option<Outcome> {
        let now = now_secs();
        if let Some(claims) = self.active.get(key, now) {
            return Some(Ok(claims));
        }
        self.refused.get(key, now).map(Err)
    }

    async fn introspect_uncached(&self, token: &str, key: u128, rules: &Rules) -> Outcome {
        let url = self.introspection_endpoint().await.map_err(|error| {
            tracing::warn!(provider = %self.name, %error, "no introspection endpoint");
            TokenError::IntrospectionUnavailable
        })?;
        let permit = tokio::time::timeout(crate::http::FETCH_TIMEOUT, self.permits.acquire())
            .await
            .map_err(|_| {
                tracing::warn!(provider = %self.name, "too many introspections in flight");
                TokenError::IntrospectionUnavailable
            })?
            .map_err(|_| TokenError::IntrospectionUnavailable)?;
        let response = self.post_introspection(&url, token).await;
        drop(permit);
        let doc = response.map_err(|error| {
            tracing::warn!(provider = %self.name, %error, "introspection failed");
            TokenError::IntrospectionUnavailable
        })?;
        let now = now_secs();
        match self.check_introspection(doc, now, rules) {
            Ok((claims, valid_until)) => {
                let weight = claims.retained_bytes();
                let claims = Arc::new(claims);
                self.active
                    .insert(key, Arc::clone(&claims), weight, 0, valid_until, now);
                Ok(claims)
            }
            Err(error) => {
                if !matches!(
                    error,
                    TokenError::IntrospectionUnavailable | TokenError::NotYetValid
                ) {
                    let until = now.saturating_add(REFUSED_CACHE_SECS.min(self.ttl));
                    self.refused.insert(key, error, 0, 0, until, now);
                }
                Err(error)
            }
        }
    }

    /// `introspection-url`, else the discovered endpoint, discovering first if needed.
    async fn introspection_endpoint(&self) -> Result<Arc<String>, String> {
        if let Some(url) = &self.configured_url {
            return Ok(Arc::clone(url));
        }
        let known = self.discovery.document();
        if let Some(url) = known.and_then(|doc| doc.introspection_endpoint().ok()) {
            return Ok(url);
        }
        self.discovery
            .get_with(Document::introspection_endpoint)
            .await
            .map_err(|e| e.to_string())
    }

    async fn post_introspection(&self, url: &str, token: &str) -> Result<Value, String> {
        let mut form: Vec<(&str, &str)> =
            vec![("token", token), ("token_type_hint", "access_token")];
        let request = self
            .discovery
            .http()
            .post(url)
            .header(reqwest::header::ACCEPT, "application/json");
        let request = crate::http::authenticate_client(
            request,
            &mut form,
            &self.client_id,
            self.client_secret.as_ref(),
            self.method,
        );
        let timer = self.discovery.timer(IdpCall::Introspection);
        let response = match request.form(&form).send().await {
            Ok(response) => response,
            Err(e) => {
                timer.finish(IdpOutcome::of_send_error(&e));
                return Err(format!("POST {url}: {}", e.without_url()));
            }
        };
        let body = match crate::http::read_limited(response, "POST", url).await {
            Ok(body) => body,
            Err(e) => {
                timer.finish(e.outcome);
                return Err(e.into());
            }
        };
        let doc = serde_json::from_slice(&body)
            .map_err(|e| format!("POST {url}: the introspection response is not JSON: {e}"));
        timer.finish(match doc {
            Ok(_) => IdpOutcome::Ok,
            Err(_) => IdpOutcome::Invalid,
        });
        doc
    }

    /// Checks an introspection response; returns the claims and until when they may be
    /// served from the cache.
    fn check_introspection(
        &self,
        doc: Value,
        now: u64,
        rules: &Rules,
    ) -> Result<(Claims, u64), TokenError> {
        if !doc.is_object() {
            tracing::warn!(provider = %self.name, "introspection response is not a JSON object");
            return Err(TokenError::IntrospectionUnavailable);
        }
        match doc.get("active") {
            Some(Value::Bool(true)) => {}
            Some(Value::Bool(false)) => return Err(TokenError::Inactive),
            _ => {
                tracing::warn!(provider = %self.name, "introspection response has no boolean active");
                return Err(TokenError::IntrospectionUnavailable);
            }
        }
        super::kind::check_introspected(&doc)?;
        let date = |name: &str| -> Result<Option<u64>, TokenError> {
            match doc.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => numeric_date(v).map(Some).ok_or_else(|| {
                    tracing::warn!(provider = %self.name, claim = name, "introspection response has a bad date");
                    TokenError::IntrospectionUnavailable
                }),
            }
        };
        let mut valid_until = now.saturating_add(self.ttl);
        if let Some(exp) = date("exp")? {
            if exp.saturating_add(rules.leeway) <= now {
                return Err(TokenError::Expired);
            }
            valid_until = valid_until.min(exp);
        }
        if let Some(nbf) = date("nbf")? {
            if nbf.saturating_sub(rules.leeway) > now {
                return Err(TokenError::NotYetValid);
            }
        }
        match doc.get("iss") {
            None | Some(Value::Null) => {}
            Some(Value::String(iss)) if *iss == rules.issuer => {}
            Some(_) => return Err(TokenError::WrongIssuer),
        }
        let audience_ok = match doc.get("aud") {
            None | Some(Value::Null) => true,
            Some(Value::String(aud)) => rules.audience_ok(aud),
            Some(Value::Array(auds)) => auds
                .iter()
                .filter_map(Value::as_str)
                .any(|aud| rules.audience_ok(aud)),
            Some(_) => false,
        };
        if !audience_ok {
            return Err(TokenError::WrongAudience);
        }
        // The client the token was issued to: `azp` (Keycloak), else RFC 7662's `client_id`.
        let party = doc
            .get("azp")
            .or_else(|| doc.get("client_id"))
            .and_then(Value::as_str);
        super::kind::check_azp(rules.authorized_parties.as_deref(), party)?;
        if let Some(max_age) = rules.max_token_age {
            let auth_time = date("auth_time")?.ok_or(TokenError::TooOld)?;
            let deadline = auth_time.saturating_add(max_age);
            if deadline < now {
                return Err(TokenError::TooOld);
            }
            valid_until = valid_until.min(deadline.saturating_add(1));
        }
        Ok((Claims::from_payload(doc), valid_until))
    }
}
