//! The `/.well-known/` documents a tenant host answers itself, without authentication and never
//! proxied: RFC 9728 protected resource metadata (`resource_metadata.rs` decides its content)
//! and the identity assertions' JWKS (`/.well-known/gatehouse/jwks.json`). GET and HEAD only.

use gatehouse_policy::admit::Builtin;
use http::header::{ALLOW, CONTENT_LENGTH};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

use crate::ctx::RequestCtx;
use crate::responses;
use crate::runtime::Runtime;

/// How long upstreams may cache the assertion JWKS. A new key must be published (listed second
/// in `signing-key`) at least this long before it is moved first and starts signing.
pub const JWKS_CACHE_CONTROL: &str = "public, max-age=300";

/// Answers a well-known document: 200 with the JSON (GET, HEAD), 405 with `Allow` for another
/// method, 404 when the tenant has no such document (no `identity-assertion`, or a metadata
/// path naming a resource it does not serve).
pub async fn serve(
    builtin: Builtin,
    session: &mut Session,
    ctx: &RequestCtx,
    runtime: &Runtime,
) -> pingora::Result<()> {
    let method = &session.req_header().method;
    if method != http::Method::GET && method != http::Method::HEAD {
        let mut resp = ResponseHeader::build(405, Some(4))?;
        resp.insert_header(ALLOW, "GET, HEAD")?;
        resp.insert_header(CONTENT_LENGTH, 0)?;
        responses::apply_common_headers(&mut resp, ctx);
        return session.write_response_header(Box::new(resp), true).await;
    }
    let document = match builtin {
        Builtin::ResourceMetadata => crate::resource_metadata::document(session, ctx)
            .map(|body| (body, crate::resource_metadata::CACHE_CONTROL)),
        Builtin::AssertionJwks => ctx
            .tenant
            .and_then(|t| runtime.assertions[t].as_deref())
            .map(|a| (a.signer.jwks().clone(), JWKS_CACHE_CONTROL)),
        _ => None,
    };
    match document {
        Some((body, cache_control)) => responses::document(session, ctx, body, cache_control).await,
        None => responses::error_status(session, ctx, 404).await,
    }
}
