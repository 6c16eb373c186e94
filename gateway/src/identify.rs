//! Who the caller is, and whether the route lets them in: a bearer token verified (or
//! introspected) against the tenant's identity provider, else the tenant's browser session;
//! then the route's requirements checked against the claims. No response is written here: the
//! phases map the `Denial` in one place (`responses.rs`).

use std::sync::Arc;

use gatehouse_policy::authz::Forbidden;
use gatehouse_policy::resource::{credential, Scheme};
use gatehouse_policy::snapshot::{Access, Denial, RoutePolicy, RouteRef};
use gatehouse_session::claims::Claims;
use gatehouse_session::{looks_like_jwt, Audience, TokenError};
use pingora::http::RequestHeader;

use crate::auth::{bearer_token, ClaimsIdentity};
use crate::ctx::RequestCtx;
use crate::dpop::DpopDemand;
use crate::login::{login_location, session_claims, SessionOutcome, Sessions};
use crate::responses::wants_html_head;

/// The caller's identity, then the route's requirements checked against its claims.
/// `Ok(None)`: an anonymous caller on a `white-listed-anon` route.
pub(crate) async fn verify_and_authorize(
    req: &RequestHeader,
    ctx: &RequestCtx,
    tenant_index: usize,
    route_ref: RouteRef,
    runtime: &crate::runtime::Runtime,
    sessions: &Sessions,
    shared: &crate::ratelimit::SharedBuckets,
) -> Result<Option<Arc<Claims>>, Denial> {
    let route = runtime.policy.tenant(tenant_index).route(route_ref);
    let demand = route_demand(route, Some(shared));
    let Some(claims) = identify(req, ctx, tenant_index, runtime, sessions, demand).await? else {
        return Ok(None);
    };
    authorize(req, ctx, tenant_index, route_ref, runtime, &claims)?;
    Ok(Some(claims))
}

/// What a route demands of its caller's identity. `shared`: where a DPoP proof's single use is
/// recorded; `None` checks a proof without using it up (`gatehouse explain`).
pub(crate) fn route_demand<'a>(
    route: &'a RoutePolicy,
    shared: Option<&'a crate::ratelimit::SharedBuckets>,
) -> Demand<'a> {
    Demand {
        dpop: route.dpop.map(|rule| DpopDemand { rule, shared }),
        revocation_checked: route.introspect,
        resource: route.resource.as_deref(),
        identity: if route.access == Access::Optional {
            Need::Optional
        } else {
            Need::Required
        },
    }
}

/// Whether an identified caller may use the route: the tenant's default deny, the route's
/// roles, groups and claims, then its step-up (`acr`, `max-auth-age`).
pub(crate) fn authorize(
    req: &RequestHeader,
    ctx: &RequestCtx,
    tenant_index: usize,
    route_ref: RouteRef,
    runtime: &crate::runtime::Runtime,
    claims: &Claims,
) -> Result<(), Denial> {
    let tenant = runtime.policy.tenant(tenant_index);
    let route = tenant.route(route_ref);
    if route.access == Access::DefaultDeny {
        return Err(Denial::Forbidden(Forbidden::NoRoute));
    }
    let identity = ClaimsIdentity {
        claims,
        client_id: client_id(runtime, tenant_index),
    };
    route
        .requirements
        .check(&identity)
        .map_err(Denial::Forbidden)?;
    if let Some(step_up) = route.step_up.as_deref() {
        if let Err(shortfall) = step_up.check(
            claims.acr.as_deref(),
            claims.auth_time,
            crate::clock::unix_now(),
        ) {
            return Err(step_up_denial(req, ctx, tenant, step_up, shortfall));
        }
    }
    Ok(())
}

/// The tenant's provider's `client-id`: the client of bare role names ("" without a provider).
pub(crate) fn client_id(runtime: &crate::runtime::Runtime, tenant_index: usize) -> &str {
    runtime
        .provider(tenant_index)
        .map(|p| p.verifier.client_id())
        .unwrap_or_default()
}

/// A caller that falls short of the route's step-up: a browser navigation authenticated by
/// its session logs in again at the IdP with the route's `acr_values`/`max_age` (and
/// `prompt=login`), then returns to the page; everyone else gets the 401 challenge.
fn step_up_denial(
    req: &RequestHeader,
    ctx: &RequestCtx,
    tenant: &gatehouse_policy::snapshot::TenantPolicy,
    step_up: &gatehouse_policy::resource::StepUp,
    shortfall: gatehouse_policy::resource::Shortfall,
) -> Denial {
    let by_session = bearer_token(req, tenant.token_cookie.as_deref()) == Ok(None);
    if by_session && !ctx.forward_auth && wants_html_head(req) {
        let target = String::from_utf8_lossy(req.raw_path());
        let mut location = login_location(&target);
        location.push_str(&step_up.login_query());
        return Denial::LoginRequired { location };
    }
    Denial::InsufficientAuthentication(shortfall)
}

/// Whether a request must name a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    /// No caller is an answer of its own (`Ok(None)`): `white-listed-anon`, `/oauth/userinfo`.
    Optional,
    /// No caller is a refusal.
    Required,
}

/// What [`identify`] demands of a caller.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Demand<'a> {
    /// A valid JWT must also be active at the introspection endpoint (`introspect` routes).
    pub revocation_checked: bool,
    /// Whether a caller is required.
    pub identity: Need,
    /// The route's `resource` (RFC 8707): a bearer token's `aud` must contain it instead of
    /// one of the provider's audiences.
    pub resource: Option<&'a str>,
    /// The route's `dpop` (RFC 9449), `None` for `off`.
    pub dpop: Option<DpopDemand<'a>>,
}

/// Who the caller is: a bearer token checked against the tenant's identity provider (also
/// introspected when the demand says so), else the tenant's browser session. Without either:
/// `Ok(None)` when the identity is optional, else 401 — or, for a browser navigation on a
/// tenant with `login`, a redirect to the login.
pub(crate) async fn identify(
    req: &RequestHeader,
    ctx: &RequestCtx,
    tenant_index: usize,
    runtime: &crate::runtime::Runtime,
    sessions: &Sessions,
    demand: Demand<'_>,
) -> Result<Option<Arc<Claims>>, Denial> {
    let optional = demand.identity == Need::Optional;
    let tenant = runtime.policy.tenant(tenant_index);
    let provider = runtime.provider(tenant_index);
    let presented = match demand.dpop {
        None => bearer_token(req, tenant.token_cookie.as_deref())
            .map(|token| token.map(|t| (Scheme::Bearer, t))),
        Some(_) => dpop_credential(req, tenant.token_cookie.as_deref()),
    };
    let claims = match presented {
        Ok(Some((scheme, token))) => {
            let Some(provider) = provider else {
                tracing::warn!(tenant = %tenant.name, "protected route but the tenant has no identity-provider");
                return Err(Denial::Unauthenticated);
            };
            let audience = match demand.resource {
                Some(resource) => Audience::Resource(resource),
                None => Audience::Provider,
            };
            let claims = verify(provider, token, demand.revocation_checked, audience).await?;
            if let Some(dpop) = demand.dpop {
                crate::dpop::check(
                    req,
                    ctx,
                    runtime,
                    tenant_index,
                    dpop,
                    crate::dpop::Presented {
                        scheme,
                        token,
                        claims: &claims,
                        provider,
                    },
                )
                .await?;
            }
            claims
        }
        Err(()) => {
            return Err(Denial::InvalidToken {
                reason: "malformed",
                description: if demand.dpop.is_some() {
                    "the Authorization header is not a Bearer or DPoP credential"
                } else {
                    "the Authorization header is not a Bearer credential"
                },
            })
        }
        // `dpop: required` takes a DPoP-bound token only: no session, no anonymous caller. No
        // credential was sent, so the `DPoP` challenge names no error (RFC 6750 3.1).
        Ok(None) if demand.dpop.is_some_and(|d| d.rule.required) => {
            return Err(Denial::Unauthenticated)
        }
        Ok(None) => match runtime.logins[tenant_index].as_ref() {
            Some(login) => match session_claims(req, login, sessions).await {
                SessionOutcome::Authenticated(claims) => claims,
                SessionOutcome::None if optional => return Ok(None),
                SessionOutcome::None if !ctx.forward_auth && wants_html_head(req) => {
                    let target = String::from_utf8_lossy(req.raw_path()).into_owned();
                    return Err(Denial::LoginRequired {
                        location: login_location(&target),
                    });
                }
                SessionOutcome::None => return Err(Denial::Unauthenticated),
                SessionOutcome::Unavailable => return Err(Denial::SessionUnavailable),
            },
            None if optional => return Ok(None),
            None => return Err(Denial::Unauthenticated),
        },
    };
    Ok(Some(claims))
}

/// The credential of a request on a DPoP route: `Authorization: Bearer` or `DPoP` (RFC 9449
/// 7.1), else the tenant's `token-cookie` (a bearer token). `Err(())` for an `Authorization`
/// header that is neither.
#[allow(clippy::result_unit_err)]
fn dpop_credential<'a>(
    req: &'a pingora::http::RequestHeader,
    cookie_name: Option<&str>,
) -> Result<Option<(Scheme, &'a str)>, ()> {
    match req.headers.get(http::header::AUTHORIZATION) {
        Some(value) => credential(value.as_bytes()).map(Some).ok_or(()),
        None => bearer_token(req, cookie_name).map(|token| token.map(|t| (Scheme::Bearer, t))),
    }
}

/// The token's claims: a JWT is verified against the provider's keys (a cache hit costs no
/// signature check) and, on `introspect` routes, also checked for revocation at the
/// introspection endpoint; an opaque token is introspected when the provider allows it.
/// Timed into `gatehouse_token_verify_duration_seconds` by cache hit or miss.
async fn verify(
    provider: &crate::auth::Provider,
    token: &str,
    introspect: bool,
    audience: Audience<'_>,
) -> Result<Arc<Claims>, Denial> {
    let verifier = &provider.verifier;
    let started = std::time::Instant::now();
    let refused = |e: TokenError| {
        crate::otel::scope::verification(&provider.definition.name, e.reason(), started);
        match e {
            TokenError::IntrospectionUnavailable => Denial::AuthUnavailable,
            e => Denial::InvalidToken {
                reason: e.reason(),
                description: e.description(),
            },
        }
    };
    let opaque = verifier.introspection_enabled() && !looks_like_jwt(token);
    let (claims, hit) = if opaque {
        let (claims, hit) = match verifier.introspect_cached(token) {
            Some(claims) => (claims, true),
            None => (verifier.introspect(token).await.map_err(refused)?, false),
        };
        // The introspector checked the provider's audiences; a resource is checked here.
        if let Audience::Resource(_) = audience {
            audience.check(&claims).map_err(refused)?;
        }
        (claims, hit)
    } else {
        verifier
            .verify_for_audience(token, audience)
            .await
            .map_err(refused)?
    };
    if introspect && !opaque {
        // Revocation-sensitive route: the signature is not enough, the IdP must still say active.
        if verifier.introspect_cached(token).is_none() {
            verifier.introspect(token).await.map_err(refused)?;
        }
    }
    let histogram = if hit {
        &provider.verify_hit
    } else {
        &provider.verify_miss
    };
    histogram.observe(started.elapsed().as_secs_f64());
    if !hit {
        // A traced request's verification span (nothing outside a traced request's scope).
        crate::otel::scope::verification(&provider.definition.name, "ok", started);
    }
    if !hit && !opaque {
        // A signature check is the longest stretch of CPU a request spends here. Yielding once after it sends this request's upstream write out with those of
        // the other requests checked in the same scheduler pass, so an idle upstream and client
        // are woken once per batch rather than once per request (`loadtest/README.md`).
        tokio::task::yield_now().await;
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    /// A provider trusting one freshly generated P-256 key (a JWKS file in a temporary
    /// folder), and a token that key signed.
    fn provider_and_token() -> (crate::auth::Provider, String) {
        use gatehouse_test_support::keys::{jwks, now, Kind, TestKey};
        let key = TestKey::generate(Kind::P256, "k1");
        let dir = gatehouse_test_support::process::TempDir::new("identify");
        let jwks_file = dir.path().join("jwks.json");
        std::fs::write(&jwks_file, jwks(&[key.jwk()])).expect("write jwks");
        let issuer = "http://127.0.0.1:1/realms/demo";
        let yaml = format!(
            "identity-providers:\n  - name: idp\n    issuer: {issuer}\n    jwks-file: {}\n    client-id: gatehouse\n    algorithms: [ES256]\n\
             tenants:\n  - name: t\n    hosts: [t.localhost]\n    upstreams: [{{name: app, targets: [\"127.0.0.1:1\"]}}]\n    routes: [{{uri: /*, white-listed: true}}]\n",
            jwks_file.display()
        );
        let config = gatehouse_config::parse(&yaml, "test.yaml", &|_| None).expect("config");
        let definition = config.identity_provider("idp").expect("provider");
        let provider = crate::auth::Provider::new(definition, &Metrics::new()).expect("provider");
        let now = now();
        let claims = serde_json::json!({
            "iss": issuer, "aud": "gatehouse", "sub": "alice", "iat": now, "exp": now + 300,
        });
        (provider, key.mint("ES256", &claims))
    }

    /// Polls `future` once with a waker that does nothing.
    fn poll_once<F: std::future::Future>(
        future: std::pin::Pin<&mut F>,
    ) -> std::task::Poll<F::Output> {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        future.poll(&mut cx)
    }

    /// The subject of a verification that completed on this poll, else a panic naming `what`.
    fn subject(poll: std::task::Poll<Result<Arc<Claims>, Denial>>, what: &str) -> Option<String> {
        match poll {
            std::task::Poll::Ready(Ok(claims)) => claims.sub.clone(),
            other => panic!("{what}: {:?}", other.map(|r| r.map(|_| ()))),
        }
    }

    #[test]
    fn a_signature_check_yields_once_and_a_cache_hit_does_not_yield() {
        let (provider, token) = provider_and_token();
        let mut first = std::pin::pin!(verify(&provider, &token, false, Audience::Provider));
        assert!(
            poll_once(first.as_mut()).is_pending(),
            "a cache miss yields after its signature check"
        );
        let alice = Some("alice".to_string());
        let what = "the miss completes on its second poll";
        assert_eq!(subject(poll_once(first.as_mut()), what), alice);
        assert_eq!(provider.verify_miss.get_sample_count(), 1);
        let mut second = std::pin::pin!(verify(&provider, &token, false, Audience::Provider));
        let what = "a cache hit completes without yielding";
        assert_eq!(subject(poll_once(second.as_mut()), what), alice);
        assert_eq!(provider.verify_hit.get_sample_count(), 1);
        // A refused token answers at once: only a verified miss yields.
        let mut forged = token.clone().into_bytes();
        let i = forged.len() - 10; // inside the signature, away from its last (partial) character
        forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).expect("base64url");
        let mut refused = std::pin::pin!(verify(&provider, &forged, false, Audience::Provider));
        assert!(matches!(
            poll_once(refused.as_mut()),
            std::task::Poll::Ready(Err(Denial::InvalidToken { .. }))
        ));
    }
}
