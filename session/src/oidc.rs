//! The OpenID Connect authorization code flow client (browser login): discovery, PKCE, state
//! and nonce, code exchange, refresh and RP-initiated logout. One [`OidcClient`] per identity
//! provider that a `login` tenant uses.
//!
//! ## How the ID token is validated
//!
//! The provider's [`TokenVerifier`] does the cryptography and the registered claims: signature
//! with the provider's keys (the same cached JWKS, single-flight unknown-`kid` refetch and
//! algorithm allowlist as bearer tokens), `iss`, `exp`/`nbf`/`iat` with leeway, `auth_time`
//! against `max-token-age`, and `aud` against the provider's `audiences`. Its keys are private
//! to it, so this module calls [`TokenVerifier::verify_for`] with [`TokenUse::Id`] (which
//! never caches the ID token, so it cannot later pass as a bearer credential) and then adds
//! the ID-token rules on the verified payload:
//! `aud` contains the `client-id`, `azp` (when present, or required when there are several
//! audiences) equals the `client-id`, `sub` is a non-empty string, and `nonce` equals the
//! login's (constant-time). Consequence: **the provider's `audiences` must include its
//! `client-id`** for login to work (the default `audiences` is `[client-id]`); otherwise every
//! login fails with [`OidcError::InvalidIdToken`]`("wrong_audience")`. A second key cache
//! just for ID tokens would double JWKS traffic and could disagree with the bearer path
//! during a rotation, so it was not built. `at_hash` is not checked (optional in the code
//! flow, OIDC Core 3.1.3.8): the access token comes straight from the token endpoint.
//!
//! The access token, when it is a JWT that the same verifier accepts (Keycloak-style roles
//! live there), contributes its claims too: [`TokenSet::claims`] is the ID token's payload
//! plus every access-token claim the ID token does not have. An access token that is opaque
//! or does not verify (e.g. its `aud` is not one of `audiences`) is used as is, unread.

use std::sync::Arc;

use gatehouse_config::{IdentityProvider, Secret, TokenEndpointAuthMethod};
use reqwest::Url;
use serde_json::{Map, Value};

use crate::claims::{numeric_date, Claims};
use crate::cookie::random_token;
use crate::discovery::{Document, ProviderDiscovery};
pub use crate::discovery::{Endpoints, DISCOVERY_RETRY_INTERVAL};
use crate::error::BuildError;
use crate::http::{BodyError, IdpCall, IdpOutcome, MAX_DOCUMENT_BYTES};
use crate::verifier::{looks_like_jwt, now_secs, TokenUse, TokenVerifier};

mod error;
mod state;
mod tokens;

use error::sanitize;
pub use error::OidcError;
pub use state::{pkce_challenge, LoginState, LOGIN_STATE_TTL};
use tokens::TokenResponse;
pub use tokens::{TokenSet, DEFAULT_ACCESS_TOKEN_LIFETIME};

/// The login-flow client of one identity provider.
///
/// The endpoints come from the provider's discovery document, shared with its verifier
/// ([`ProviderDiscovery`]: fetched on first use, a failure stands for
/// [`DISCOVERY_RETRY_INTERVAL`]); a network failure at the token endpoint marks the document
/// stale so the next call rediscovers. The HTTP client follows no redirects and gives every
/// request [`FETCH_TIMEOUT`](crate::http::FETCH_TIMEOUT); responses are read up to [`MAX_DOCUMENT_BYTES`].
pub struct OidcClient {
    issuer: String,
    client_id: String,
    client_secret: Option<Secret>,
    auth_method: TokenEndpointAuthMethod,
    scope: String,
    verifier: Arc<TokenVerifier>,
    discovery: Arc<ProviderDiscovery>,
}

impl std::fmt::Debug for OidcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcClient")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("discovery", &self.discovery)
            .finish_non_exhaustive()
    }
}

impl OidcClient {
    /// Builds the client of `provider`; `verifier` is the provider's bearer-token verifier,
    /// shared with its discovery document and HTTP client (see the module docs for why the
    /// provider's `audiences` must include its `client-id`). Requested scopes are the
    /// provider's `scopes`, with `openid` added if missing. Nothing is fetched here.
    ///
    /// # Errors
    ///
    /// When `verifier` is another provider's.
    pub fn new(
        provider: &IdentityProvider,
        verifier: Arc<TokenVerifier>,
    ) -> Result<Self, BuildError> {
        if verifier.name() != provider.name {
            return Err(BuildError::ForeignVerifier {
                provider: provider.name.clone(),
                verifier: verifier.name().to_owned(),
            });
        }
        let mut scopes: Vec<&str> = provider.scopes.iter().map(String::as_str).collect();
        if !scopes.contains(&"openid") {
            scopes.insert(0, "openid");
        }
        Ok(OidcClient {
            issuer: provider.issuer.clone(),
            client_id: provider.client_id.clone(),
            client_secret: provider.client_secret.clone(),
            auth_method: provider.token_endpoint_auth_method,
            scope: scopes.join(" "),
            discovery: Arc::clone(verifier.discovery()),
            verifier,
        })
    }

    /// The provider's endpoints: from the cache, else discovered now (single flight). The
    /// document's `issuer` must equal the configured one and it must name http(s)
    /// `authorization_endpoint` and `token_endpoint`.
    pub async fn endpoints(&self) -> Result<Arc<Endpoints>, OidcError> {
        self.discovery
            .get_with(Document::login_endpoints)
            .await
            .map_err(|error| {
                tracing::warn!(issuer = %self.issuer, %error, "OIDC discovery failed");
                OidcError::Discovery(error.to_string())
            })
    }

    /// Starts a login: a fresh `state`, `nonce` and PKCE `code_verifier` (each 32 random bytes,
    /// base64url: 43 characters) with its S256 `code_challenge`. Returns the authorization URL
    /// to redirect the browser to (`response_type=code`, `client_id`, `redirect_uri`, `scope`,
    /// `state`, `nonce`, `code_challenge`, `code_challenge_method=S256`) and the
    /// [`LoginState`] to seal into the pre-login cookie, valid for [`LOGIN_STATE_TTL`].
    /// `return_to` is stored as given: pass it through `safe_redirect` first.
    pub async fn begin(
        &self,
        redirect_uri: &str,
        return_to: &str,
    ) -> Result<(String, LoginState), OidcError> {
        self.begin_with(redirect_uri, return_to, &[]).await
    }

    /// [`begin`](Self::begin) with `extra` parameters appended to the authorization URL (a
    /// step-up login's `acr_values`, `max_age`, `prompt`).
    pub async fn begin_with(
        &self,
        redirect_uri: &str,
        return_to: &str,
        extra: &[(&str, String)],
    ) -> Result<(String, LoginState), OidcError> {
        let endpoints = self.endpoints().await?;
        let state = LoginState {
            state: random_token(),
            nonce: random_token(),
            code_verifier: random_token(),
            return_to: return_to.to_owned(),
            expires_at: now_secs() + LOGIN_STATE_TTL.as_secs(),
        };
        let challenge = pkce_challenge(&state.code_verifier);
        let mut url = Url::parse(&endpoints.authorization_endpoint)
            .map_err(|e| OidcError::Discovery(format!("authorization_endpoint: {e}")))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &self.scope)
            .append_pair("state", &state.state)
            .append_pair("nonce", &state.nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        for (name, value) in extra {
            url.query_pairs_mut().append_pair(name, value);
        }
        Ok((url.into(), state))
    }

    /// Exchanges the authorization `code` of the login `state` at the token endpoint (with the
    /// PKCE `code_verifier` and the same `redirect_uri` as [`begin`](Self::begin), client
    /// authentication per `token-endpoint-auth-method`), then validates the ID token (see the
    /// module docs) including its `nonce`. The caller has already checked the callback's
    /// `state` with [`LoginState::state_matches`]; an expired `state` is refused here too.
    pub async fn exchange(
        &self,
        code: &str,
        state: &LoginState,
        redirect_uri: &str,
    ) -> Result<TokenSet, OidcError> {
        if state.is_expired(now_secs()) {
            return Err(OidcError::LoginExpired);
        }
        let response = self
            .token_request(
                IdpCall::Token,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", code),
                    ("redirect_uri", redirect_uri),
                    ("code_verifier", &state.code_verifier),
                ],
            )
            .await?;
        let id_token = response
            .id_token
            .as_deref()
            .ok_or(OidcError::InvalidIdToken("missing"))?;
        let id_claims = self.validate_id_token(id_token, Some(&state.nonce)).await?;
        self.token_set(response, Some(id_claims), None).await
    }

    /// Uses `refresh_token` (grant `refresh_token`). A returned ID token is validated like the
    /// login's, without a nonce (OIDC Core 12.2); the caller must check that a non-empty
    /// [`TokenSet::sub`] equals the session's. When the provider rotates refresh tokens the
    /// presented one is used up and the new one is in the result.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenSet, OidcError> {
        let response = self
            .token_request(
                IdpCall::Refresh,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh_token),
                ],
            )
            .await?;
        let id_claims = match response.id_token.as_deref() {
            Some(id_token) => Some(self.validate_id_token(id_token, None).await?),
            None => None,
        };
        self.token_set(response, id_claims, Some(refresh_token))
            .await
    }

    /// The RP-initiated logout URL (OpenID Connect RP-Initiated Logout 1.0): the provider's
    /// `end_session_endpoint` with `client_id` and whichever of `id_token_hint`,
    /// `post_logout_redirect_uri` and `state` are given. `Ok(None)` when the provider has no
    /// end-session endpoint (the caller then just clears its session).
    pub async fn end_session_url(
        &self,
        id_token_hint: Option<&str>,
        post_logout_redirect_uri: Option<&str>,
        state: Option<&str>,
    ) -> Result<Option<String>, OidcError> {
        let endpoints = self.endpoints().await?;
        let Some(endpoint) = endpoints.end_session_endpoint.as_deref() else {
            return Ok(None);
        };
        let mut url = Url::parse(endpoint)
            .map_err(|e| OidcError::Discovery(format!("end_session_endpoint: {e}")))?;
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("client_id", &self.client_id);
            if let Some(hint) = id_token_hint {
                query.append_pair("id_token_hint", hint);
            }
            if let Some(uri) = post_logout_redirect_uri {
                query.append_pair("post_logout_redirect_uri", uri);
            }
            if let Some(state) = state {
                query.append_pair("state", state);
            }
        }
        Ok(Some(url.into()))
    }

    /// POSTs a grant to the token endpoint with client authentication and parses a 2xx answer.
    async fn token_request(
        &self,
        kind: IdpCall,
        form: &[(&str, &str)],
    ) -> Result<TokenResponse, OidcError> {
        let endpoints = self.endpoints().await?;
        let timer = self.discovery.timer(kind);
        match self.post_token(&endpoints, form).await {
            Ok(response) => {
                timer.finish(IdpOutcome::Ok);
                Ok(response)
            }
            Err((outcome, error)) => {
                timer.finish(outcome);
                Err(error)
            }
        }
    }

    /// The token endpoint call of [`token_request`](Self::token_request); a failure carries
    /// the call's outcome for the metrics.
    async fn post_token(
        &self,
        endpoints: &Endpoints,
        form: &[(&str, &str)],
    ) -> Result<TokenResponse, (IdpOutcome, OidcError)> {
        let mut params: Vec<(&str, &str)> = form.to_vec();
        let request = self
            .discovery
            .http()
            .post(&endpoints.token_endpoint)
            .header(reqwest::header::ACCEPT, "application/json");
        // A public client (no secret) only names itself; PKCE protects the code.
        let request = crate::http::authenticate_client(
            request,
            &mut params,
            &self.client_id,
            self.client_secret.as_ref(),
            self.auth_method,
        );
        let response = match request.form(&params).send().await {
            Ok(response) => response,
            Err(e) => {
                // The IdP may have moved; rediscover on the next call.
                self.discovery.mark_stale();
                return Err((
                    IdpOutcome::of_send_error(&e),
                    OidcError::Network(e.without_url().to_string()),
                ));
            }
        };
        let status = response.status();
        let body = crate::http::read_body(response)
            .await
            .map_err(|e| match e {
                BodyError::TooLarge => (
                    IdpOutcome::Invalid,
                    OidcError::Network(format!("body over {MAX_DOCUMENT_BYTES} bytes")),
                ),
                BodyError::Read(e) => (
                    IdpOutcome::of_send_error(&e),
                    OidcError::Network(e.without_url().to_string()),
                ),
            })?;
        if !status.is_success() {
            let detail = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|doc| {
                    let error = doc.get("error")?.as_str()?;
                    Some(match doc.get("error_description").and_then(Value::as_str) {
                        Some(description) => format!("{error}: {description}"),
                        None => error.to_owned(),
                    })
                })
                .unwrap_or_else(|| "no OAuth error in the response".to_string());
            return Err((
                IdpOutcome::of_status(status),
                OidcError::TokenEndpoint(status.as_u16(), sanitize(&detail)),
            ));
        }
        let invalid = |why: &str| {
            (
                IdpOutcome::Invalid,
                OidcError::TokenEndpoint(status.as_u16(), why.to_string()),
            )
        };
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|_| invalid("the response is not a token response"))?;
        if parsed
            .token_type
            .as_deref()
            .is_some_and(|t| !t.eq_ignore_ascii_case("bearer"))
        {
            return Err(invalid("the token type is not Bearer"));
        }
        if parsed.access_token.is_empty() {
            return Err(invalid("the access token is empty"));
        }
        Ok(parsed)
    }

    /// The ID-token rules on top of the verifier's checks (see the module docs).
    async fn validate_id_token(
        &self,
        id_token: &str,
        nonce: Option<&str>,
    ) -> Result<Arc<Claims>, OidcError> {
        let claims = self
            .verifier
            .verify_for(id_token, TokenUse::Id)
            .await
            .map_err(|e| OidcError::InvalidIdToken(e.reason()))?;
        let payload = claims.raw();
        let audiences: Vec<&str> = match payload.get("aud") {
            Some(Value::String(aud)) => vec![aud.as_str()],
            Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !audiences.contains(&self.client_id.as_str()) {
            return Err(OidcError::InvalidIdToken("wrong_audience"));
        }
        match payload.get("azp") {
            Some(Value::String(azp)) if *azp == self.client_id => {}
            None if audiences.len() == 1 => {}
            _ => return Err(OidcError::InvalidIdToken("wrong_azp")),
        }
        if claims.sub.as_deref().is_none_or(str::is_empty) {
            return Err(OidcError::InvalidIdToken("missing_sub"));
        }
        if let Some(expected) = nonce {
            let found = payload.get("nonce").and_then(Value::as_str).unwrap_or("");
            if aws_lc_rs::constant_time::verify_slices_are_equal(
                found.as_bytes(),
                expected.as_bytes(),
            )
            .is_err()
            {
                return Err(OidcError::NonceMismatch);
            }
        }
        Ok(claims)
    }

    /// Builds the [`TokenSet`]: merges verified access-token claims, computes the expiry.
    async fn token_set(
        &self,
        response: TokenResponse,
        id_claims: Option<Arc<Claims>>,
        presented_refresh_token: Option<&str>,
    ) -> Result<TokenSet, OidcError> {
        let now = now_secs();
        let access_claims = if looks_like_jwt(&response.access_token) {
            match self.verifier.verify(&response.access_token).await {
                Ok(claims) => Some(claims),
                Err(error) => {
                    tracing::debug!(issuer = %self.issuer, reason = error.reason(), "access token claims not used");
                    None
                }
            }
        } else {
            None
        };
        let mut merged = match &id_claims {
            Some(claims) => claims.raw().as_object().cloned().unwrap_or_default(),
            None => Map::new(),
        };
        let mut sub = id_claims
            .as_ref()
            .and_then(|c| c.sub.clone())
            .unwrap_or_default();
        if let Some(access) = &access_claims {
            let access_sub = access.sub.as_deref().unwrap_or("");
            if sub.is_empty() {
                sub = access_sub.to_owned();
            } else if !access_sub.is_empty() && access_sub != sub {
                return Err(OidcError::InvalidIdToken("sub_mismatch"));
            }
            if let Some(object) = access.raw().as_object() {
                for (key, value) in object {
                    merged.entry(key.clone()).or_insert_with(|| value.clone());
                }
            }
        }
        let from_expires_in = response
            .expires_in
            .as_ref()
            .and_then(numeric_date)
            .map(|secs| now.saturating_add(secs));
        let access_token_exp = match (access_claims.as_ref().map(|c| c.exp), from_expires_in) {
            (Some(exp), Some(by_ttl)) => exp.min(by_ttl),
            (Some(exp), None) => exp,
            (None, Some(by_ttl)) => by_ttl,
            (None, None) => now + DEFAULT_ACCESS_TOKEN_LIFETIME,
        };
        let sid = id_claims
            .as_ref()
            .and_then(|c| c.raw().get("sid"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let refresh_token = response
            .refresh_token
            .or_else(|| presented_refresh_token.map(str::to_owned));
        Ok(TokenSet {
            access_token: response.access_token,
            access_token_exp,
            refresh_token,
            id_token: response.id_token,
            claims: Value::Object(merged),
            sub,
            sid,
        })
    }
}
