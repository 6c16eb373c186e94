//! Identity assertions for upstreams: each tenant's signer (kept across reloads while its
//! `identity-assertion` is unchanged, so the assertions kept with cached identities stay
//! usable), the header set on proxied requests, and the JWKS the gateway publishes at
//! `/.well-known/gatehouse/jwks.json`.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use gatehouse_config::{Config, IdentityAssertion};
use gatehouse_session::assertion::AssertionSigner;
use gatehouse_session::claims::Claims;
use http::header::{ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

use crate::ctx::RequestCtx;
use crate::responses;

/// How long upstreams may cache the JWKS. A new key must be published (listed second in
/// `signing-key`) at least this long before it is moved first and starts signing.
pub const JWKS_MAX_AGE_SECS: u64 = 300;

/// A tenant's signer and the definition it was built from.
pub struct TenantAssertion {
    /// The tenant's name.
    pub tenant: String,
    /// The tenant's `identity-assertion`.
    pub definition: IdentityAssertion,
    /// Its keys, parsed.
    pub signer: AssertionSigner,
}

/// One signer per tenant with `identity-assertion` (indexed like the tenants); a tenant whose
/// definition is unchanged from `previous` keeps its signer.
pub fn build(
    config: &Config,
    previous: &[Option<Arc<TenantAssertion>>],
) -> Result<Vec<Option<Arc<TenantAssertion>>>, String> {
    config
        .tenants
        .iter()
        .map(|tenant| {
            let Some(definition) = &tenant.identity_assertion else {
                return Ok(None);
            };
            if let Some(kept) = previous
                .iter()
                .flatten()
                .find(|p| p.tenant == tenant.name && p.definition == *definition)
            {
                return Ok(Some(Arc::clone(kept)));
            }
            let signer = AssertionSigner::new(definition)
                .map_err(|e| format!("tenant {}: {e}", tenant.name))?;
            Ok(Some(Arc::new(TenantAssertion {
                tenant: tenant.name.clone(),
                definition: definition.clone(),
                signer,
            })))
        })
        .collect()
}

/// Seconds since the Unix epoch.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Sets the assertion for `claims` on an upstream request going to the tenant's upstream
/// `upstream` (index and name), reached at `host` over HTTPS or not.
pub fn insert(
    headers: &mut http::HeaderMap,
    assertion: &TenantAssertion,
    claims: &Claims,
    upstream: (usize, &str),
    secure: bool,
    host: &str,
) {
    let signer = &assertion.signer;
    let value = signer.assertion(claims, upstream.0, upstream.1, secure, host, unix_now());
    headers.insert(signer.header().clone(), value);
}

/// Answers `/.well-known/gatehouse/jwks.json`: the tenant's public keys (GET, HEAD), 405 for
/// another method, 404 on a tenant without `identity-assertion`. Never proxied.
pub async fn serve_jwks(
    session: &mut Session,
    ctx: &RequestCtx,
    assertion: Option<&TenantAssertion>,
) -> pingora::Result<()> {
    let Some(assertion) = assertion else {
        return responses::error_status(session, ctx, 404).await;
    };
    let method = &session.req_header().method;
    let head_only = method == http::Method::HEAD;
    if method != http::Method::GET && !head_only {
        let mut resp = ResponseHeader::build(405, Some(4))?;
        resp.insert_header(ALLOW, "GET, HEAD")?;
        resp.insert_header(CONTENT_LENGTH, 0)?;
        responses::apply_common_headers(&mut resp, ctx);
        return session.write_response_header(Box::new(resp), true).await;
    }
    let body: Bytes = assertion.signer.jwks().clone();
    let mut resp = ResponseHeader::build(200, Some(6))?;
    resp.insert_header(CONTENT_TYPE, "application/json")?;
    resp.insert_header(CONTENT_LENGTH, body.len())?;
    resp.insert_header(
        CACHE_CONTROL,
        format!("public, max-age={JWKS_MAX_AGE_SECS}"),
    )?;
    responses::apply_common_headers(&mut resp, ctx);
    if head_only {
        return session.write_response_header(Box::new(resp), true).await;
    }
    session.write_response_header(Box::new(resp), false).await?;
    session.write_response_body(Some(body), true).await
}
