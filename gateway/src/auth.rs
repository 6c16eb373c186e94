//! Authentication glue between the phases and `gatehouse_session`: where a request's token is
//! found, the per-provider verifiers (kept across reloads while their definition is unchanged),
//! their key-refresh schedule, the adapter that lets `policy::authz` read Keycloak claims, and
//! the identity headers rendered from claims.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gatehouse_config::IdentityProvider;
use gatehouse_policy::authz::Identity;
use gatehouse_session::claims::Claims;
use gatehouse_session::verifier::TokenVerifier;
use gatehouse_session::BuildError;
use pingora::http::RequestHeader;
use regex::Regex;
use serde_json::Value;

use crate::metrics::Metrics;

/// Retry delays while a provider's keys cannot be fetched: 1 s doubling up to 30 s.
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// One identity provider's verifier and its refresh schedule.
pub struct Provider {
    /// The definition it was built from; a reload reuses the provider (and its caches) when
    /// the definition is unchanged.
    pub definition: IdentityProvider,
    /// The verifier.
    pub verifier: Arc<TokenVerifier>,
    /// The OIDC code-flow client of this provider (used by tenants with `login`).
    pub oidc: Arc<gatehouse_session::oidc::OidcClient>,
    /// The provider's algorithms as a DPoP challenge's `algs` (space-separated): the
    /// algorithms a proof may use on its tenants' DPoP routes.
    pub dpop_algs: String,
    /// `gatehouse_token_verify_duration_seconds{cache="hit"}` for this provider.
    pub verify_hit: prometheus::Histogram,
    /// `gatehouse_token_verify_duration_seconds{cache="miss"}` for this provider.
    pub verify_miss: prometheus::Histogram,
    next_refresh_ms: AtomicU64,
    retry_delay_ms: AtomicU64,
    running: AtomicBool,
    /// The last key fetch's error; `None` once one succeeds (for `/readyz?verbose`).
    last_error: arc_swap::ArcSwapOption<String>,
}

impl Provider {
    /// Builds the verifier and the login client, which share the provider's discovery document
    /// and HTTP client (reads a `jwks-file` now, if configured; no network).
    pub fn new(definition: &IdentityProvider, metrics: &Metrics) -> Result<Provider, BuildError> {
        let observer = crate::otel::scope::idp_observer(
            Arc::new(crate::observers::IdpMetrics::new(metrics, &definition.name)),
            &definition.name,
        );
        let discovery =
            gatehouse_session::ProviderDiscovery::new(definition)?.with_observer(observer);
        let mut verifier = TokenVerifier::with_discovery(
            definition,
            gatehouse_session::DEFAULT_CACHE_CAPACITY,
            Arc::new(discovery),
        )?;
        if let Some(age) = definition.max_token_age {
            verifier = verifier.with_max_token_age(age);
        }
        let (verify_hit, verify_miss) = metrics.token_verify_histograms(&definition.name);
        let verifier = Arc::new(verifier);
        let dpop_algs = verifier
            .algorithms()
            .iter()
            .map(|a| gatehouse_session::jwks::algorithm_name(*a))
            .collect::<Vec<_>>()
            .join(" ");
        Ok(Provider {
            dpop_algs,
            oidc: Arc::new(gatehouse_session::oidc::OidcClient::new(
                definition,
                Arc::clone(&verifier),
            )?),
            verify_hit,
            verify_miss,
            definition: definition.clone(),
            verifier,
            next_refresh_ms: AtomicU64::new(0),
            retry_delay_ms: AtomicU64::new(RETRY_MIN.as_millis() as u64),
            running: AtomicBool::new(false),
            last_error: arc_swap::ArcSwapOption::empty(),
        })
    }

    /// The last key fetch's error, `None` when it succeeded or none has finished yet.
    pub fn last_refresh_error(&self) -> Option<Arc<String>> {
        self.last_error.load_full()
    }

    /// Whether a key refresh is due (and none is running).
    pub(crate) fn due(&self, now_ms: u64) -> bool {
        !self.running.load(Ordering::Acquire)
            && now_ms >= self.next_refresh_ms.load(Ordering::Relaxed)
    }

    /// Refreshes the keys when due: every `jwks-refresh-interval` once loaded, with backoff
    /// while failing. Start never fails because an IdP is down; `/readyz?verbose` says so instead.
    pub(crate) async fn tick(self: Arc<Self>, now_ms: u64, metrics: Arc<Metrics>) {
        if now_ms < self.next_refresh_ms.load(Ordering::Relaxed)
            || self.running.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let name = self.definition.name.as_str();
        match self.verifier.refresh_keys().await {
            Ok(keys) => {
                tracing::debug!(provider = name, keys, "JWKS refreshed");
                metrics.record_jwks_refresh(name, true);
                self.last_error.store(None);
                self.retry_delay_ms
                    .store(RETRY_MIN.as_millis() as u64, Ordering::Relaxed);
                let interval = self.definition.jwks_refresh_interval.as_millis() as u64;
                self.next_refresh_ms
                    .store(now_ms + interval, Ordering::Relaxed);
            }
            Err(e) => {
                metrics.record_jwks_refresh(name, false);
                self.last_error.store(Some(Arc::new(e.clone())));
                let delay = self.retry_delay_ms.load(Ordering::Relaxed);
                tracing::warn!(provider = name, error = %e, retry_in_ms = delay, "JWKS refresh failed; cached keys stay in use");
                self.next_refresh_ms
                    .store(now_ms + delay, Ordering::Relaxed);
                let next = (delay * 2).min(RETRY_MAX.as_millis() as u64);
                self.retry_delay_ms.store(next, Ordering::Relaxed);
            }
        }
        self.running.store(false, Ordering::Release);
    }
}

/// The bearer token of a request: `Authorization: Bearer <token>` (scheme case-insensitive,
/// RFC 7235), else the tenant's `token-cookie`. `Err(())` for an `Authorization` header that is
/// present but not a usable bearer credential (another scheme, empty, non-ASCII).
#[allow(clippy::result_unit_err)]
pub fn bearer_token<'a>(
    req: &'a RequestHeader,
    cookie_name: Option<&str>,
) -> Result<Option<&'a str>, ()> {
    if let Some(value) = req.headers.get(http::header::AUTHORIZATION) {
        let value = value.to_str().map_err(|_| ())?.trim();
        let (scheme, token) = value.split_once(' ').ok_or(())?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(());
        }
        let token = token.trim();
        return if token.is_empty() {
            Err(())
        } else {
            Ok(Some(token))
        };
    }
    let Some(cookie_name) = cookie_name else {
        return Ok(None);
    };
    for header in req.headers.get_all(http::header::COOKIE) {
        let Ok(header) = header.to_str() else {
            continue;
        };
        for pair in header.split(';') {
            if let Some((name, value)) = pair.trim().split_once('=') {
                if name == cookie_name && !value.is_empty() {
                    return Ok(Some(value.trim_matches('"')));
                }
            }
        }
    }
    Ok(None)
}

/// Keycloak claims seen through `policy::authz::Identity`: bare roles resolve against the
/// realm and the provider's own client-id.
pub struct ClaimsIdentity<'a> {
    pub claims: &'a Claims,
    pub client_id: &'a str,
}

impl Identity for ClaimsIdentity<'_> {
    fn has_role(&self, role: &str) -> bool {
        self.claims.has_role(role, self.client_id)
    }

    fn in_group(&self, group: &str) -> bool {
        self.claims.in_group(group)
    }

    fn claim_matches(&self, path: &str, pattern: &Regex) -> bool {
        fn scalar_matches(v: &Value, re: &Regex) -> bool {
            match v {
                Value::String(s) => re.is_match(s),
                Value::Bool(b) => re.is_match(if *b { "true" } else { "false" }),
                Value::Number(n) => re.is_match(&n.to_string()),
                _ => false,
            }
        }
        match self.claims.lookup(path) {
            Some(Value::Array(items)) => items.iter().any(|v| scalar_matches(v, pattern)),
            Some(v) => scalar_matches(v, pattern),
            None => false,
        }
    }
}

/// Calls `set` with each identity header `tenant` sets from the caller's claims (rendered once
/// per cached claims). A claim that cannot be a header value (control characters) is left out.
pub fn each_identity_header(
    claims: &Claims,
    tenant: &gatehouse_policy::snapshot::TenantPolicy,
    mut set: impl FnMut(&http::HeaderName, &http::HeaderValue),
) {
    let values =
        claims.identity_header_values(tenant.identity_headers_id, &tenant.identity_headers);
    for ((name, _), value) in tenant.identity_headers.iter().zip(values.iter()) {
        if let Some(value) = value {
            set(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn finds_bearer_tokens_case_insensitively_and_in_the_cookie() {
        assert_eq!(
            bearer_token(&req(&[("Authorization", "Bearer abc")]), None),
            Ok(Some("abc"))
        );
        assert_eq!(
            bearer_token(&req(&[("Authorization", "bEaReR   abc ")]), None),
            Ok(Some("abc"))
        );
        assert_eq!(
            bearer_token(&req(&[("Authorization", "Basic dXNlcjpwYXNz")]), None),
            Err(())
        );
        assert_eq!(
            bearer_token(&req(&[("Authorization", "Bearer ")]), None),
            Err(())
        );
        assert_eq!(
            bearer_token(&req(&[("Authorization", "Bearer")]), None),
            Err(())
        );
        assert_eq!(bearer_token(&req(&[]), None), Ok(None));
        // obs-text (bytes >= 0x80) is a header value, never a bearer credential.
        let mut non_ascii = req(&[]);
        non_ascii
            .insert_header(
                "Authorization",
                http::HeaderValue::from_bytes(b"Bearer ab\xe9c").unwrap(),
            )
            .unwrap();
        assert_eq!(bearer_token(&non_ascii, None), Err(()));
        let cookies = req(&[("Cookie", "a=1; access_token=tok; b=2")]);
        assert_eq!(
            bearer_token(&cookies, Some("access_token")),
            Ok(Some("tok"))
        );
        assert_eq!(bearer_token(&cookies, None), Ok(None));
        assert_eq!(bearer_token(&cookies, Some("other")), Ok(None));
        let both = req(&[
            ("Authorization", "Bearer header"),
            ("Cookie", "access_token=cookie"),
        ]);
        assert_eq!(
            bearer_token(&both, Some("access_token")),
            Ok(Some("header"))
        );
    }

    #[test]
    fn claims_identity_reads_keycloak_shapes() {
        let claims = Claims::from_payload(serde_json::json!({
            "sub": "u1", "exp": 4_000_000_000u64,
            "email": "a@example.com", "email_verified": true, "age": 42,
            "realm_access": {"roles": ["admin"]},
            "resource_access": {"gatehouse": {"roles": ["super-admin"]}, "account": {"roles": ["manage"]}},
            "groups": ["/developers"],
        }));
        let id = ClaimsIdentity {
            claims: &claims,
            client_id: "gatehouse",
        };
        assert!(
            id.has_role("admin") && id.has_role("super-admin") && id.has_role("account:manage")
        );
        assert!(!id.has_role("manage"));
        assert!(id.in_group("developers") && id.in_group("/developers"));
        let re = |p: &str| Regex::new(p).unwrap();
        assert!(id.claim_matches("email_verified", &re("^true$")));
        assert!(id.claim_matches("age", &re("^42$")));
        assert!(id.claim_matches("realm_access.roles", &re("^admin$")));
        assert!(
            !id.claim_matches("realm_access", &re(".*")),
            "objects never match"
        );
        assert!(!id.claim_matches("nope", &re(".*")));
    }
}
