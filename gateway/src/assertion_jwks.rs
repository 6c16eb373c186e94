//! `/.well-known/gatehouse/jwks.json`: the public keys of a tenant's identity assertions.

use bytes::Bytes;
use http::header::{ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

use crate::assertion::TenantAssertion;
use crate::ctx::RequestCtx;
use crate::responses;

/// How long upstreams may cache the JWKS. A new key must be published (listed second in
/// `signing-key`) at least this long before it is moved first and starts signing.
pub const JWKS_MAX_AGE_SECS: u64 = 300;

/// Answers `/.well-known/gatehouse/jwks.json`: the tenant's public keys (GET, HEAD), 405 for
/// another method, 404 on a tenant without `identity-assertion`. Never proxied.
pub async fn serve(
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
