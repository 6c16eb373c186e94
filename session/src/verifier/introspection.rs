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
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use gatehouse_config::{IdentityProvider, Secret, TokenEndpointAuthMethod};
use serde_json::Value;
use tokio::sync::{watch, Semaphore};

use super::{now_secs, TokenError, TokenVerifier, MAX_TOKEN_BYTES};
use crate::cache::TokenCache;
use crate::claims::{numeric_date, Claims};
use crate::jwks::JwksSource;

/// How long (seconds, at most) a refused token (`active: false`, wrong issuer or audience,
/// expired, too old) is remembered before the IdP is asked again.
pub const REFUSED_CACHE_SECS: u64 = 5;

/// Introspection requests one provider may have in flight at once.
pub const MAX_CONCURRENT_INTROSPECTIONS: usize = 32;

/// Bound of the refused-token cache (whatever the verifier's cache capacity).
const REFUSED_CACHE_CAPACITY: usize = 10_000;

/// After a failed discovery, introspections fail fast for this long instead of queueing
/// behind another discovery attempt.
const DISCOVERY_RETRY: Duration = Duration::from_secs(1);

type Outcome = Result<Arc<Claims>, TokenError>;

/// The introspection state of one [`TokenVerifier`].
pub(super) struct Introspection {
    /// Config `introspection`.
    pub(super) enabled: bool,
    /// `introspection-url`, which wins over discovery.
    configured_url: Option<Arc<String>>,
    /// `introspection_endpoint` of the last successful discovery.
    discovered_url: ArcSwapOption<String>,
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
    /// Serializes discoveries started by introspection; holds when the last one failed.
    discovery: tokio::sync::Mutex<Option<Instant>>,
}

impl Introspection {
    pub(super) fn new(
        provider: &IdentityProvider,
        source: &JwksSource,
        cache_capacity: usize,
        cache_bytes: usize,
    ) -> Result<Introspection, String> {
        if provider.introspection {
            if provider.client_secret.is_none() {
                return Err(format!(
                    "identity provider {}: introspection requires a client-secret",
                    provider.name
                ));
            }
            if matches!(source, JwksSource::File(_)) && provider.introspection_url.is_none() {
                return Err(format!(
                    "identity provider {}: introspection with jwks-file requires introspection-url",
                    provider.name
                ));
            }
        }
        Ok(Introspection {
            enabled: provider.introspection,
            configured_url: provider.introspection_url.clone().map(Arc::new),
            discovered_url: ArcSwapOption::empty(),
            client_id: provider.client_id.clone(),
            client_secret: provider.client_secret.clone(),
            method: provider.token_endpoint_auth_method,
            ttl: provider.introspection_cache_ttl.as_secs(),
            active: TokenCache::new(cache_capacity, cache_bytes),
            refused: TokenCache::new(cache_capacity.min(REFUSED_CACHE_CAPACITY), cache_bytes),
            in_flight: DashMap::new(),
            flight_seq: AtomicU64::new(0),
            permits: Semaphore::new(MAX_CONCURRENT_INTROSPECTIONS),
            discovery: tokio::sync::Mutex::new(None),
        })
    }

    /// Keeps the discovery document's `introspection_endpoint` (a missing one keeps the last).
    pub(super) fn set_discovered_endpoint(&self, endpoint: Option<String>) {
        if let Some(url) = endpoint {
            let changed = self
                .discovered_url
                .load()
                .as_deref()
                .is_none_or(|old| *old != url);
            if changed {
                self.discovered_url.store(Some(Arc::new(url)));
            }
        }
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

/// `application/x-www-form-urlencoded` encoding of one value (for HTTP Basic client
/// credentials, RFC 6749 §2.3.1).
fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

impl TokenVerifier {
    /// Whether this provider introspects (config `introspection`).
    pub fn introspection_enabled(&self) -> bool {
        self.introspection.enabled
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
    /// [`REFUSED_CACHE_SECS`]. Network or HTTP failure (including 401 for bad client
    /// credentials), an unusable response, no known endpoint or introspection being disabled
    /// is [`TokenError::IntrospectionUnavailable`], never cached. If discovery has not
    /// succeeded yet (and no `introspection-url` is set), it is run first. Concurrent calls for
    /// the same token share one request.
    pub async fn introspect(&self, token: &str) -> Result<Arc<Claims>, TokenError> {
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed);
        }
        let intro = &self.introspection;
        if !intro.enabled {
            tracing::debug!(provider = %self.name, "introspect called but introspection is off");
            return Err(TokenError::IntrospectionUnavailable);
        }
        let key = intro.active.key(token);
        loop {
            if let Some(cached) = self.introspection_cached(key) {
                return cached;
            }
            let joined = match intro.in_flight.entry(key) {
                Entry::Occupied(flight) => Err(flight.get().1.clone()),
                Entry::Vacant(slot) => {
                    let (tx, rx) = watch::channel(None);
                    let id = intro.flight_seq.fetch_add(1, Ordering::Relaxed);
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
                        map: &intro.in_flight,
                        key,
                        id,
                    };
                    // A flight that ended between our cache check and our insert has cached
                    // its answer.
                    if let Some(cached) = self.introspection_cached(key) {
                        tx.send_replace(Some(cached.clone()));
                        return cached;
                    }
                    let outcome = self.introspect_uncached(token, key).await;
                    tx.send_replace(Some(outcome.clone()));
                    return outcome;
                }
            }
        }
    }

    /// The synchronous fast path: the cached claims of `token` if an introspection found it
    /// active within the cache TTL (and before its `exp`). Never asks the IdP; refusals are
    /// not returned here (call [`introspect`](Self::introspect), which serves them from cache).
    pub fn introspect_cached(&self, token: &str) -> Option<Arc<Claims>> {
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES || !self.introspection.enabled {
            return None;
        }
        let intro = &self.introspection;
        intro.active.get(intro.active.key(token), now_secs())
    }

    /// Number of active introspection results cached.
    pub fn introspection_cache_len(&self) -> usize {
        self.introspection.active.len()
    }

    fn introspection_cached(&self, key: u128) -> Option<Outcome> {
        let now = now_secs();
        let intro = &self.introspection;
        if let Some(claims) = intro.active.get(key, now) {
            return Some(Ok(claims));
        }
        intro.refused.get(key, now).map(Err)
    }

    async fn introspect_uncached(&self, token: &str, key: u128) -> Outcome {
        let intro = &self.introspection;
        let url = self.introspection_endpoint().await.map_err(|error| {
            tracing::warn!(provider = %self.name, %error, "no introspection endpoint");
            TokenError::IntrospectionUnavailable
        })?;
        let permit = tokio::time::timeout(crate::http::FETCH_TIMEOUT, intro.permits.acquire())
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
        match self.check_introspection(doc, now) {
            Ok((claims, valid_until)) => {
                let weight = claims.retained_bytes();
                let claims = Arc::new(claims);
                intro
                    .active
                    .insert(key, Arc::clone(&claims), weight, 0, valid_until, now);
                Ok(claims)
            }
            Err(error) => {
                if !matches!(
                    error,
                    TokenError::IntrospectionUnavailable | TokenError::NotYetValid
                ) {
                    let until = now.saturating_add(REFUSED_CACHE_SECS.min(intro.ttl));
                    intro.refused.insert(key, error, 0, 0, until, now);
                }
                Err(error)
            }
        }
    }

    /// `introspection-url`, else the discovered endpoint, discovering first if needed.
    async fn introspection_endpoint(&self) -> Result<Arc<String>, String> {
        let intro = &self.introspection;
        if let Some(url) = &intro.configured_url {
            return Ok(Arc::clone(url));
        }
        if let Some(url) = intro.discovered_url.load_full() {
            return Ok(url);
        }
        if matches!(self.source, JwksSource::File(_)) {
            return Err("a jwks-file provider needs introspection-url".to_string());
        }
        let mut last_failure = intro.discovery.lock().await;
        if let Some(url) = intro.discovered_url.load_full() {
            return Ok(url); // someone else discovered it while we waited
        }
        if last_failure.is_some_and(|at| at.elapsed() < DISCOVERY_RETRY) {
            return Err("discovery failed moments ago".to_string());
        }
        let result = self.discover().await;
        match (result, intro.discovered_url.load_full()) {
            (Ok(_), Some(url)) => {
                *last_failure = None;
                Ok(url)
            }
            (Ok(_), None) => {
                *last_failure = Some(Instant::now());
                Err("the discovery document has no introspection_endpoint".to_string())
            }
            (Err(e), _) => {
                *last_failure = Some(Instant::now());
                Err(e)
            }
        }
    }

    async fn post_introspection(&self, url: &str, token: &str) -> Result<Value, String> {
        let intro = &self.introspection;
        let secret = intro.client_secret.as_ref().map_or("", Secret::expose);
        let mut form: Vec<(&str, &str)> =
            vec![("token", token), ("token_type_hint", "access_token")];
        let mut request = self
            .http
            .post(url)
            .header(reqwest::header::ACCEPT, "application/json");
        match intro.method {
            TokenEndpointAuthMethod::ClientSecretBasic => {
                let credentials =
                    format!("{}:{}", form_encode(&intro.client_id), form_encode(secret));
                let mut value = reqwest::header::HeaderValue::from_str(&format!(
                    "Basic {}",
                    STANDARD.encode(credentials)
                ))
                .map_err(|e| format!("client credentials: {e}"))?;
                value.set_sensitive(true);
                request = request.header(reqwest::header::AUTHORIZATION, value);
            }
            TokenEndpointAuthMethod::ClientSecretPost => {
                form.push(("client_id", &intro.client_id));
                form.push(("client_secret", secret));
            }
        }
        let response = request
            .form(&form)
            .send()
            .await
            .map_err(|e| format!("POST {url}: {}", e.without_url()))?;
        let body = crate::http::read_limited(response, "POST", url).await?;
        serde_json::from_slice(&body)
            .map_err(|e| format!("POST {url}: the introspection response is not JSON: {e}"))
    }

    /// Checks an introspection response; returns the claims and until when they may be
    /// served from the cache.
    fn check_introspection(&self, doc: Value, now: u64) -> Result<(Claims, u64), TokenError> {
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
        let mut valid_until = now.saturating_add(self.introspection.ttl);
        if let Some(exp) = date("exp")? {
            if exp.saturating_add(self.leeway) <= now {
                return Err(TokenError::Expired);
            }
            valid_until = valid_until.min(exp);
        }
        if let Some(nbf) = date("nbf")? {
            if nbf.saturating_sub(self.leeway) > now {
                return Err(TokenError::NotYetValid);
            }
        }
        match doc.get("iss") {
            None | Some(Value::Null) => {}
            Some(Value::String(iss)) if *iss == self.issuer => {}
            Some(_) => return Err(TokenError::WrongIssuer),
        }
        let audience_ok = match doc.get("aud") {
            None | Some(Value::Null) => true,
            Some(Value::String(aud)) => self.audiences.iter().any(|a| a == aud),
            Some(Value::Array(auds)) => auds
                .iter()
                .filter_map(Value::as_str)
                .any(|aud| self.audiences.iter().any(|a| a == aud)),
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
        super::kind::check_azp(self.authorized_parties.as_deref(), party)?;
        if let Some(max_age) = self.max_token_age {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding() {
        assert_eq!(form_encode("gatehouse"), "gatehouse");
        assert_eq!(form_encode("a b+c:d/é"), "a+b%2Bc%3Ad%2F%C3%A9");
        assert_eq!(form_encode("-._*~"), "-._*%7E");
    }
}
