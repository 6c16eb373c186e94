//! RFC 9728 protected resource metadata of a tenant with `resource-metadata`: the document at
//! `/.well-known/oauth-protected-resource[/<path>]` (written by `well_known.rs`, without
//! authentication, never proxied) and the URL of it every 401 of the tenant names. What the
//! document says is decided by `gatehouse_policy::resource`; this module reads the request.

use bytes::Bytes;
use gatehouse_policy::path::normalize_path;
use gatehouse_policy::resource::{metadata_suffix, metadata_url, origin};
use gatehouse_policy::snapshot::RouteRef;
use pingora::proxy::Session;

use crate::ctx::{client_host, decided_host, RequestCtx};

/// How long a client may keep the document (it changes only with the config).
pub const CACHE_CONTROL: &str = "public, max-age=300";

/// The document for this request, `None` when there is none to give.
pub fn document(session: &Session, ctx: &RequestCtx) -> Option<Bytes> {
    let runtime = ctx.runtime.as_deref()?;
    let t = ctx.tenant?;
    let tenant = runtime.policy.tenant(t);
    let metadata = tenant.resource_metadata.as_ref()?;
    let issuer = runtime.provider(t)?.verifier.issuer();
    let req = session.req_header();
    let raw = req.raw_path();
    let raw = raw.split(|&b| b == b'?').next().unwrap_or_default();
    let path = normalize_path(raw).ok()?;
    let suffix = metadata_suffix(&path)?;
    let origin = origin(ctx.secure, client_host(req)?)?;
    let resource = tenant.metadata_resource(&origin, suffix)?;
    let mut body = serde_json::json!({
        "resource": resource,
        "authorization_servers": [issuer],
        "scopes_supported": metadata.scopes_supported,
        "bearer_methods_supported": ["header"],
    });
    if let Some(dpop) = tenant.metadata_dpop(suffix) {
        let algs = runtime
            .provider(t)
            .map(|p| p.verifier.algorithms())
            .unwrap_or_default();
        let names: Vec<&str> = algs
            .iter()
            .map(|a| gatehouse_session::jwks::algorithm_name(*a))
            .collect();
        body["dpop_signing_alg_values_supported"] = serde_json::json!(names);
        body["dpop_bound_access_tokens_required"] = serde_json::json!(dpop.required);
    }
    Some(Bytes::from(body.to_string()))
}

/// The `resource_metadata` URL of a 401 on a tenant with `resource-metadata`: derived from the
/// route's `resource` when it has one, else the bare document on the host the client reached
/// (for a forward-auth check, the original host a trusted proxy names). `None` on other
/// tenants, or when the host cannot be part of a URL.
pub fn challenge_url(session: &Session, ctx: &RequestCtx) -> Option<String> {
    let runtime = ctx.runtime.as_deref()?;
    let tenant = runtime.policy.tenant(ctx.tenant?);
    tenant.resource_metadata.as_ref()?;
    let route = tenant.route(ctx.route.unwrap_or(RouteRef::Unmatched));
    if let Some(resource) = route.resource.as_deref() {
        return Some(metadata_url(resource));
    }
    let host = decided_host(
        session.req_header(),
        ctx.forward_auth && ctx.trusted_peer,
        runtime.policy.forward_auth_headers,
    )?;
    let origin = origin(ctx.secure, host)?;
    Some(format!(
        "{origin}{}",
        gatehouse_policy::resource::METADATA_PATH
    ))
}
