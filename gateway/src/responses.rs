//! The gateway's own responses: the one place a [`Denial`] or a proxy failure becomes a status,
//! headers and a body, the one writer of the gateway's answers (refusals, redirects, the login
//! paths' answers and pages), and the headers every response gets (security headers, request ID).

use bytes::Bytes;
use gatehouse_policy::challenge::Challenge;
use gatehouse_policy::headers::respond;
use gatehouse_policy::login::LoginRefusal;
use gatehouse_policy::snapshot::{Denial, ResponseHeaders};
use http::header::{
    ACCESS_CONTROL_ALLOW_ORIGIN, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, SET_COOKIE,
    WWW_AUTHENTICATE,
};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

use crate::ctx::RequestCtx;

/// Adds the tenant's security headers (HSTS only when the client used HTTPS), the request ID
/// and the CORS actual-response headers to `resp`, replacing same-named headers.
pub fn apply_common_headers(resp: &mut ResponseHeader, ctx: &RequestCtx) {
    let Some(runtime) = ctx.runtime.as_deref() else {
        return;
    };
    let policy = &runtime.policy;
    let tenant = ctx.tenant.map(|t| policy.tenant(t));
    let (security, request_id_header): (&ResponseHeaders, _) = match tenant {
        Some(t) => (&t.response_headers, &t.request_id_header),
        None => (
            &policy.default_response_headers,
            &policy.default_request_id_header,
        ),
    };
    edit_response_headers(resp, |headers| {
        respond(
            headers,
            security,
            ctx.secure,
            (request_id_header, ctx.request_id.clone()),
        );
        if let Some(cors) = tenant.and_then(|t| t.cors.as_ref()) {
            if let Some(origin) = &ctx.cors_origin {
                for (name, value) in cors.actual(origin) {
                    headers.insert(name, value);
                }
            }
            headers.append(http::header::VARY, http::HeaderValue::from_static("Origin"));
        }
    });
}

/// Edits a response header's map in place, as `http` parts: one plain map insert per header
/// instead of Pingora's case-preserving insert (see `proxy::edit_request_headers`). Header
/// names then reach the client in lowercase (Pingora title-cases the common ones) and a custom
/// reason phrase becomes the standard one.
fn edit_response_headers(resp: &mut ResponseHeader, edit: impl FnOnce(&mut http::HeaderMap)) {
    let placeholder = ResponseHeader::from(http::Response::new(()).into_parts().0);
    let mut parts = http::response::Parts::from(std::mem::replace(resp, placeholder));
    edit(&mut parts.headers);
    *resp = ResponseHeader::from(parts);
}

/// Answers an allowed CORS preflight: 204 with the allow headers.
pub async fn preflight(
    session: &mut Session,
    ctx: &mut RequestCtx,
    allow: gatehouse_policy::cors::CorsHeaders,
) -> pingora::Result<()> {
    let mut resp = ResponseHeader::build(204, Some(8))?;
    for (name, value) in allow {
        resp.insert_header(name, value)?;
    }
    // The preflight's own allow headers win over the actual-response ones.
    ctx.cors_origin = None;
    apply_common_headers(&mut resp, ctx);
    resp.insert_header(CONTENT_LENGTH, 0)?;
    session.write_response_header(Box::new(resp), true).await
}

/// Answers an allowed forward-auth check: 200 with the identity headers (for
/// `auth_request_set`, Traefik's `authResponseHeaders`, Istio's `headersToUpstreamOnAllow`).
pub async fn forward_auth_allowed(
    session: &mut Session,
    ctx: &mut RequestCtx,
) -> pingora::Result<()> {
    let mut resp = ResponseHeader::build(200, Some(12))?;
    resp.insert_header(CACHE_CONTROL, "no-store")?;
    resp.insert_header(CONTENT_LENGTH, 0)?;
    if let (Some(claims), Some(t), Some(runtime)) =
        (&ctx.claims, ctx.tenant, ctx.runtime.as_deref())
    {
        edit_response_headers(&mut resp, |headers| {
            crate::auth::each_identity_header(claims, runtime.policy.tenant(t), |name, value| {
                headers.insert(name.clone(), value.clone());
            });
        });
    }
    apply_common_headers(&mut resp, ctx);
    session.write_response_header(Box::new(resp), true).await
}

/// Writes the response for `denial` and records it in the context. Errors writing to the
/// client are returned for Pingora to log; the request is over either way.
pub async fn deny(
    session: &mut Session,
    ctx: &mut RequestCtx,
    denial: Denial,
) -> pingora::Result<()> {
    write_denial(session, ctx, denial, &[]).await
}

/// Writes a login path's refusal like [`deny`], also setting `cookies` (`Set-Cookie` values: a
/// refused callback clears its login-state cookie).
pub async fn refuse_login(
    session: &mut Session,
    ctx: &mut RequestCtx,
    refusal: LoginRefusal,
    cookies: &[String],
) -> pingora::Result<()> {
    write_denial(session, ctx, Denial::Login(refusal), cookies).await
}

async fn write_denial(
    session: &mut Session,
    ctx: &mut RequestCtx,
    denial: Denial,
    cookies: &[String],
) -> pingora::Result<()> {
    // nginx auth_request turns anything but 2xx/401/403 into a 500: a refused forward-auth
    // check is a 401 or a 403, except a 400 for a request that cannot be decided as sent
    // (which nginx then answers with a 500: refused either way).
    let status = match denial.status() {
        s @ (400 | 401 | 403) => s,
        _ if ctx.forward_auth => 403,
        s => s,
    };
    let mut resp = ResponseHeader::build(status, Some(6))?;
    if let Some(challenge) = challenge(session, ctx, &denial) {
        resp.insert_header(WWW_AUTHENTICATE, challenge)?;
    }
    match &denial {
        Denial::LoginRequired { location } => {
            resp.insert_header(LOCATION, location.as_str())?;
        }
        Denial::HttpsRequired { location } => {
            resp.insert_header(LOCATION, location.as_str())?;
        }
        Denial::RateLimited { limit, retry_after } => {
            rate_limit_headers(&mut resp, ctx, *limit, *retry_after)?;
        }
        Denial::UseDpopNonce { nonce } => {
            resp.insert_header("DPoP-Nonce", nonce.as_str())?;
        }
        _ => {}
    }
    // A refused preflight carries no allow header at all.
    if denial == Denial::CorsRefused {
        ctx.cors_origin = None;
    }
    // A request whose framing or headers are suspect must not leave bytes on the connection.
    if denial.closes_connection() {
        session.set_keepalive(None);
    }
    tracing::info!(
        tenant = ctx.tenant_name().unwrap_or("-"),
        request_id = ctx.request_id(),
        reason = denial.reason(),
        status,
        "request denied"
    );
    if !ctx.forward_auth && crate::grpc::is_grpc(&session.req_header().headers) {
        let message = crate::grpc::message(denial.reason(), ctx.request_id());
        if let Denial::RateLimited { retry_after, .. } = &denial {
            // gRPC's retry pushback (gRFC A6): a retrying client waits this long.
            resp.insert_header("grpc-retry-pushback-ms", retry_after.saturating_mul(1000))?;
        }
        ctx.denial = Some(denial);
        return crate::grpc::refuse(session, ctx, resp, status, &message).await;
    }
    let body = match &denial {
        // A person whose session cannot be used right now is told so, and that it is not a
        // logout.
        Denial::SessionUnavailable if !ctx.forward_auth && wants_html(session) => {
            Some((HTML, session_unavailable_page(ctx.request_id())))
        }
        Denial::Login(refusal) => login_body(*refusal, ctx.request_id()),
        _ => Some(("application/json", error_body(status, ctx.request_id()))),
    };
    ctx.denial = Some(denial);
    finish(session, ctx, resp, cookies, body).await
}

/// `Retry-After` and the `RateLimit-Policy` / `RateLimit` fields of
/// draft-ietf-httpapi-ratelimit-headers-11 for the limit that refused the request: the
/// policy's quota and window, nothing left, back after `retry_after` seconds.
fn rate_limit_headers(
    resp: &mut ResponseHeader,
    ctx: &RequestCtx,
    limit: usize,
    retry_after: u64,
) -> pingora::Result<()> {
    resp.insert_header(http::header::RETRY_AFTER, retry_after)?;
    let found = match (ctx.runtime.as_deref(), ctx.tenant, ctx.route) {
        (Some(runtime), Some(t), Some(route)) => runtime.limits.limit(t, route, limit),
        _ => None,
    };
    if let Some(l) = found {
        resp.insert_header("RateLimit-Policy", l.policy.clone())?;
        resp.insert_header(
            "RateLimit",
            gatehouse_policy::ratelimit::exhausted_item(&l.name, retry_after),
        )?;
    }
    Ok(())
}

/// The `WWW-Authenticate` value of a 401 that asks for a credential (one builder:
/// `gatehouse_policy::challenge`): the realm, the error of a refused token or a step-up, and,
/// on a tenant with `resource-metadata`, the metadata URL and the scopes (RFC 9728 5.1).
/// On a DPoP route (RFC 9449 7.1) the challenge is `DPoP` with `algs`; on `dpop: optional`
/// a `Bearer` challenge comes first, and carries the error of a token sent as `Bearer`.
fn challenge(session: &Session, ctx: &RequestCtx, denial: &Denial) -> Option<String> {
    let (error, description) = match denial {
        Denial::Unauthenticated => (None, None),
        Denial::InvalidToken { description, .. } | Denial::DpopRefused { description, .. } => {
            (Some("invalid_token"), Some(*description))
        }
        Denial::InvalidDpopProof { description, .. } => {
            (Some("invalid_dpop_proof"), Some(*description))
        }
        Denial::UseDpopNonce { .. } => (
            Some("use_dpop_nonce"),
            Some("the resource server requires a nonce in the DPoP proof"),
        ),
        Denial::InsufficientAuthentication(shortfall) => (
            Some("insufficient_user_authentication"),
            Some(shortfall.description()),
        ),
        // Every 401 names a scheme (RFC 9110 11.6.1): userinfo without an identity too.
        _ if denial.status() == 401 => (None, None),
        _ => return None,
    };
    let runtime = ctx.runtime.as_deref();
    let tenant = runtime.zip(ctx.tenant).map(|(r, t)| r.policy.tenant(t));
    let resource_metadata = crate::resource_metadata::challenge_url(session, ctx);
    let route = tenant.zip(ctx.route).map(|(t, r)| t.route(r));
    let step_up = match (denial, route) {
        (Denial::InsufficientAuthentication(_), Some(route)) => route.step_up.as_deref(),
        _ => None,
    };
    let bearer = Challenge {
        realm: ctx.tenant_name().unwrap_or("gatehouse"),
        error,
        description,
        scope: tenant
            .and_then(|t| t.resource_metadata.as_ref())
            .and_then(|m| m.scope.as_deref()),
        resource_metadata: resource_metadata.as_deref(),
        acr_values: step_up.and_then(|s| s.acr_values.as_deref()),
        max_age: step_up.and_then(|s| s.max_age),
        ..Challenge::default()
    };
    let Some(rule) = route.and_then(|r| r.dpop) else {
        return Some(bearer.header_value());
    };
    let algs = runtime
        .zip(ctx.tenant)
        .and_then(|(r, t)| r.provider(t))
        .map(|p| p.dpop_algs.as_str());
    let dpop = Challenge {
        dpop: true,
        algs,
        ..bearer
    };
    if rule.required {
        return Some(dpop.header_value());
    }
    // `optional`: both schemes are offered; the error goes with the scheme it is about.
    let about_dpop = match denial {
        Denial::DpopRefused { .. }
        | Denial::InvalidDpopProof { .. }
        | Denial::UseDpopNonce { .. } => true,
        Denial::InvalidToken { .. } | Denial::InsufficientAuthentication(_) => {
            sent_dpop_scheme(session)
        }
        _ => false,
    };
    fn bare(c: Challenge<'_>) -> Challenge<'_> {
        Challenge {
            error: None,
            description: None,
            acr_values: None,
            max_age: None,
            ..c
        }
    }
    let (bearer, dpop) = if about_dpop {
        (bare(bearer), dpop)
    } else {
        (bearer, bare(dpop))
    };
    Some(format!(
        "{}, {}",
        bearer.header_value(),
        dpop.header_value()
    ))
}

/// Whether the request's `Authorization` names the `DPoP` scheme.
fn sent_dpop_scheme(session: &Session) -> bool {
    session
        .req_header()
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| gatehouse_policy::resource::credential(v.as_bytes()))
        .is_some_and(|(scheme, _)| scheme == gatehouse_policy::resource::Scheme::Dpop)
}

/// Writes a public document (`status` 200, JSON) that clients may cache as `cache_control`
/// says: the resource metadata, the assertion JWKS.
pub async fn document(
    session: &mut Session,
    ctx: &RequestCtx,
    body: Bytes,
    cache_control: &'static str,
) -> pingora::Result<()> {
    let mut resp = ResponseHeader::build(200, Some(8))?;
    // Public documents any web page may read: a browser-based MCP client discovers the
    // authorization server from the metadata. A tenant with a CORS policy of its own decides by
    // that policy instead (apply_common_headers).
    let tenant_cors = ctx
        .runtime
        .as_deref()
        .zip(ctx.tenant)
        .is_some_and(|(runtime, t)| runtime.policy.tenant(t).cors.is_some());
    if !tenant_cors {
        resp.insert_header(ACCESS_CONTROL_ALLOW_ORIGIN, "*")?;
    }
    finish_with(
        session,
        ctx,
        resp,
        &[],
        Some(("application/json", body)),
        cache_control,
    )
    .await
}

/// Writes an answer that is not a refusal (a redirect, userinfo's claims, a completed logout):
/// `status`, `Location`, `Set-Cookie`s, an optional `(content type, body)`, never cached.
pub async fn answer(
    session: &mut Session,
    ctx: &RequestCtx,
    status: u16,
    location: Option<&str>,
    cookies: &[String],
    body: Option<(&'static str, Bytes)>,
) -> pingora::Result<()> {
    let mut resp = ResponseHeader::build(status, Some(8))?;
    if let Some(l) = location {
        resp.insert_header(LOCATION, l)?;
    }
    finish(session, ctx, resp, cookies, body).await
}

/// Whether the request is a browser navigation (it accepts HTML): one that lacks a session is
/// sent to log in rather than answered 401, and refusals get a page rather than JSON. A
/// WebSocket handshake never is, whatever it accepts: its client cannot follow a redirect.
pub fn wants_html(session: &Session) -> bool {
    wants_html_head(session.req_header())
}

/// [`wants_html`] of a request head.
pub fn wants_html_head(req: &pingora::http::RequestHeader) -> bool {
    req.headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
        && !crate::upgrade::is_websocket_upgrade(req)
}

/// Writes a bare error status (proxy failures: 502, 503, 504, ...) with the common headers.
pub async fn error_status(
    session: &mut Session,
    ctx: &RequestCtx,
    status: u16,
) -> pingora::Result<()> {
    if !ctx.forward_auth && crate::grpc::is_grpc(&session.req_header().headers) {
        // A refusal decided mid-proxy (body size, no healthy target) keeps its own status:
        // Pingora may report the failure it caused as another error.
        let (status, reason) = match &ctx.denial {
            Some(d) => (d.status(), d.reason()),
            None => (
                status,
                http::StatusCode::from_u16(status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("error"),
            ),
        };
        let message = crate::grpc::message(reason, ctx.request_id());
        let resp = ResponseHeader::build(200, Some(4))?;
        return crate::grpc::refuse(session, ctx, resp, status, &message).await;
    }
    let resp = ResponseHeader::build(status, Some(6))?;
    let body = error_body(status, ctx.request_id());
    finish(session, ctx, resp, &[], Some(("application/json", body))).await
}

const HTML: &str = "text/html; charset=utf-8";

/// Completes `resp` (`Set-Cookie`s, content type and length, `no-store`, the common headers)
/// and writes it with `body` (not for a HEAD request).
async fn finish(
    session: &mut Session,
    ctx: &RequestCtx,
    resp: ResponseHeader,
    cookies: &[String],
    body: Option<(&'static str, Bytes)>,
) -> pingora::Result<()> {
    finish_with(session, ctx, resp, cookies, body, "no-store").await
}

/// [`finish`] with another `Cache-Control`.
async fn finish_with(
    session: &mut Session,
    ctx: &RequestCtx,
    mut resp: ResponseHeader,
    cookies: &[String],
    body: Option<(&'static str, Bytes)>,
    cache_control: &'static str,
) -> pingora::Result<()> {
    for c in cookies {
        resp.append_header(SET_COOKIE, c.as_str())?;
    }
    let len = body.as_ref().map_or(0, |(_, b)| b.len());
    if let Some((content_type, _)) = &body {
        resp.insert_header(CONTENT_TYPE, *content_type)?;
    }
    resp.insert_header(CONTENT_LENGTH, len)?;
    resp.insert_header(CACHE_CONTROL, cache_control)?;
    apply_common_headers(&mut resp, ctx);
    let head_only = session.req_header().method == http::Method::HEAD;
    match body {
        Some((_, body)) if !head_only => {
            session.write_response_header(Box::new(resp), false).await?;
            session.write_response_body(Some(body), true).await
        }
        _ => session.write_response_header(Box::new(resp), true).await,
    }
}

/// `{"status":404,"error":"Not Found","request_id":"..."}`: names the request ID so a user can
/// quote it, and nothing else about the failure.
fn error_body(status: u16, request_id: &str) -> Bytes {
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    Bytes::from(format!(
        "{{\"status\":{status},\"error\":\"{reason}\",\"request_id\":\"{request_id}\"}}\n"
    ))
}

/// The 503 page for a browser whose session cannot be used right now (store or identity
/// provider unavailable): the session is kept, trying again later works.
fn session_unavailable_page(request_id: &str) -> Bytes {
    Bytes::from(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Temporarily unavailable</title></head><body><h1>Temporarily unavailable</h1><p>Your session cannot be checked right now (the sign-in service is unavailable). You are still signed in: try again in a moment.</p><p><small>Request ID: {request_id}</small></p></body></html>\n"
    ))
}

/// The body of a login path's refusal: a small HTML page for the steps a person sees (no
/// details an attacker could use), the shapes the other paths' callers expect, or none.
fn login_body(refusal: LoginRefusal, request_id: &str) -> Option<(&'static str, Bytes)> {
    let (title, message) = match refusal {
        LoginRefusal::NotConfigured => {
            return Some(("text/plain", Bytes::from_static(b"not found\n")));
        }
        LoginRefusal::NoIdentity => {
            let body = b"{\"error\":\"unauthenticated\"}\n";
            return Some(("application/json", Bytes::from_static(body)));
        }
        LoginRefusal::InvalidLogoutToken => {
            let body = b"{\"error\":\"invalid_request\"}\n";
            return Some(("application/json", Bytes::from_static(body)));
        }
        LoginRefusal::LogoutMethod
        | LoginRefusal::LogoutTooLarge
        | LoginRefusal::LogoutStoreUnavailable => return None,
        LoginRefusal::ProviderUnavailable => (
            "Login unavailable",
            "The identity provider cannot be reached. Try again shortly.",
        ),
        LoginRefusal::StoreUnavailable => (
            "Login unavailable",
            "Sessions cannot be stored right now. Try again shortly.",
        ),
        LoginRefusal::Incomplete => (
            "Login failed",
            "The identity provider did not complete the login.",
        ),
        LoginRefusal::MalformedState => ("Login failed", "The login response is malformed."),
        LoginRefusal::UnknownState => (
            "Login expired",
            "This login link is not valid in this browser any more (expired, already used, or started elsewhere).",
        ),
        LoginRefusal::StateUsed => ("Login expired", "This login was already completed."),
        LoginRefusal::ExchangeRefused => (
            "Login failed",
            "The identity provider did not accept this login.",
        ),
    };
    Some((HTML, login_page(title, message, request_id)))
}

/// A small HTML page for a login that cannot go on, with a way to start again.
fn login_page(title: &str, message: &str, request_id: &str) -> Bytes {
    Bytes::from(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head><body><h1>{title}</h1><p>{message}</p><p><a href=\"/oauth/login\">Log in again</a></p><p><small>Request ID: {request_id}</small></p></body></html>\n"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_unavailable_page_says_it_is_not_a_logout() {
        let page = String::from_utf8(session_unavailable_page("abc-123").to_vec()).unwrap();
        assert!(page.contains("Request ID: abc-123"), "{page}");
        assert!(page.contains("still signed in"), "{page}");
    }

    #[test]
    fn error_body_names_status_and_request_id_only() {
        let body = error_body(503, "abc-123");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["status"], 503);
        assert_eq!(v["error"], "Service Unavailable");
        assert_eq!(v["request_id"], "abc-123");
        assert_eq!(v.as_object().unwrap().len(), 3);
    }

    #[test]
    fn login_refusals_keep_their_bodies() {
        let page = |r| {
            let (content_type, body) = login_body(r, "abc-123").expect("a page");
            assert_eq!(content_type, HTML);
            String::from_utf8(body.to_vec()).unwrap()
        };
        let expired = page(LoginRefusal::UnknownState);
        assert!(
            expired.contains("<title>Login expired</title>"),
            "{expired}"
        );
        assert!(expired.contains("Request ID: abc-123"), "{expired}");
        assert!(expired.contains("href=\"/oauth/login\""), "{expired}");
        assert!(page(LoginRefusal::StoreUnavailable).contains("Sessions cannot be stored"));
        assert!(page(LoginRefusal::ProviderUnavailable).contains("cannot be reached"));
        assert_eq!(
            login_body(LoginRefusal::InvalidLogoutToken, "x"),
            Some((
                "application/json",
                Bytes::from_static(b"{\"error\":\"invalid_request\"}\n")
            ))
        );
        assert_eq!(
            login_body(LoginRefusal::NotConfigured, "x"),
            Some(("text/plain", Bytes::from_static(b"not found\n")))
        );
        assert_eq!(login_body(LoginRefusal::LogoutMethod, "x"), None);
    }
}
