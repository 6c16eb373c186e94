//! The per-request context carried between Pingora phases.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use gatehouse_policy::request_id::new_request_id;
use gatehouse_policy::snapshot::{Denial, RouteRef};

use crate::runtime::Runtime;

/// The host the request names: its target's authority (HTTP/2 `:authority`, or an HTTP/1
/// absolute-form target, which Pingora keeps off the `Uri`), else its `Host` header
/// ([`gatehouse_policy::host::request_host`]). RFC 9112 3.2.2: the target's authority wins
/// (Pingora refuses an absolute-form request whose `Host` differs with 400 before this).
pub fn client_host(req: &pingora::http::RequestHeader) -> Option<&str> {
    let authority = match req.uri.authority() {
        Some(a) => Some(a.as_str()),
        None => absolute_form_authority(req.raw_path()),
    };
    gatehouse_policy::host::request_host(authority, req.headers.get(http::header::HOST))
}

/// The host a request is decided for: [`client_host`], except that a forward-auth check from a
/// trusted proxy (`trusted_check`) names the original request's host, in the one header family
/// the config believes (`x-original` has none: the check's own Host is the original's).
pub fn decided_host(
    req: &pingora::http::RequestHeader,
    trusted_check: bool,
    family: gatehouse_config::ForwardAuthHeaders,
) -> Option<&str> {
    let original = gatehouse_policy::forward_auth::original_host_header(family)
        .filter(|_| trusted_check)
        .and_then(|name| req.headers.get(name))
        .and_then(|v| v.to_str().ok());
    original.or_else(|| client_host(req))
}

/// What the gateway knows of a request once its head is in, before admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// The TCP peer is in `trusted-proxies`.
    pub trusted_peer: bool,
    /// The client used HTTPS: TLS here, or `X-Forwarded-Proto: https` from a trusted proxy.
    pub secure: bool,
    /// The tenant of the decided host ([`decided_host`]).
    pub tenant: Option<usize>,
}

/// The peer's trust, the scheme the client used and the tenant, from the connection (`peer`,
/// `tls`) and the head: `early_request_filter`'s decisions, shared with `gatehouse explain`.
pub fn arrival(
    policy: &gatehouse_policy::snapshot::Snapshot,
    req: &pingora::http::RequestHeader,
    peer: Option<IpAddr>,
    tls: bool,
) -> Arrival {
    let trusted_peer = peer.is_some_and(|ip| policy.trusted_proxies.contains(ip));
    let secure = tls
        || (trusted_peer
            && req
                .headers
                .get("x-forwarded-proto")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https")));
    let trusted_check =
        trusted_peer && gatehouse_policy::forward_auth::is_forward_auth_path(req.uri.path());
    let host = decided_host(req, trusted_check, policy.forward_auth_headers);
    Arrival {
        trusted_peer,
        secure,
        tenant: policy.tenant_for_host(host.unwrap_or("")),
    }
}

/// The authority of an `http`/`https` absolute-form request target (`http://host:port/path`).
pub fn absolute_form_authority(target: &[u8]) -> Option<&str> {
    use pingora::protocols::http::authority::{
        is_http_family_scheme, raw_target_authority, RawTargetAuthority,
    };
    if target.first() == Some(&b'/') {
        return None; // origin form, the usual case
    }
    match raw_target_authority(target) {
        RawTargetAuthority::Absolute {
            scheme, authority, ..
        } if is_http_family_scheme(scheme) => std::str::from_utf8(authority).ok(),
        _ => None,
    }
}

/// What one request has learned so far. Created empty by `new_ctx`, filled by
/// `early_request_filter`, read by the later phases.
pub struct RequestCtx {
    /// The runtime this request loaded once; a reload does not change it mid-request.
    pub runtime: Option<Arc<Runtime>>,
    /// Index of the tenant resolved from the Host, if any.
    pub tenant: Option<usize>,
    /// The matched route.
    pub route: Option<RouteRef>,
    /// The request ID as the header value sent upstream and to the client: a fresh one from
    /// `new_ctx`, replaced by the client's when valid. Client values are validated as
    /// `[A-Za-z0-9._-]` (`is_valid_request_id`) before they are kept, so the ID is always text.
    pub request_id: http::HeaderValue,
    /// The client's address (the TCP peer).
    pub client_ip: Option<IpAddr>,
    /// The TCP peer is in `trusted-proxies`.
    pub trusted_peer: bool,
    /// The request reached us over TLS.
    pub tls: bool,
    /// The client used HTTPS (TLS here, or `X-Forwarded-Proto: https` from a trusted proxy).
    pub secure: bool,
    /// Request body bytes allowed by the route (`max-body-size`).
    pub body_limit: u64,
    /// Request body bytes seen so far.
    pub body_seen: u64,
    /// The verified claims of the caller, on routes that authenticate.
    pub claims: Option<Arc<gatehouse_session::claims::Claims>>,
    /// Why the gateway answered the request itself, if it did.
    pub denial: Option<Denial>,
    /// The upstream pool chosen (index within the tenant) and when.
    pub upstream: Option<(usize, Instant)>,
    /// Time to the upstream's response headers.
    pub upstream_elapsed: Option<std::time::Duration>,
    /// The request's `Origin`, kept when its tenant has CORS (for the response headers).
    pub cors_origin: Option<http::HeaderValue>,
    /// This is a forward-auth check (`/oauth/auth`): answer 200/401/403, never proxy.
    pub forward_auth: bool,
    /// The authentication outcome (`allowed`, `unauthenticated`, `forbidden`), if any.
    pub auth: Option<&'static str>,
    /// When the request started (after its header was read).
    pub started: Instant,
    /// The tenant's `gatehouse_upgraded_connections` gauge, once the connection was upgraded
    /// (decremented when the request ends).
    pub upgraded: Option<prometheus::IntGauge>,
    /// This request's trace, when `tracing` is configured and the request is traced.
    pub trace: Option<Box<crate::otel::RequestTrace>>,
    /// The `traceparent` the upstream gets instead of the client's (`tracing` configured);
    /// `None`: the client's valid one, else one from the request ID (`forward_request`).
    pub traceparent: Option<http::HeaderValue>,
}

impl RequestCtx {
    /// The request's tenant name, if a tenant matched.
    pub fn tenant_name(&self) -> Option<&str> {
        let runtime = self.runtime.as_deref()?;
        self.tenant.map(|t| runtime.policy.tenant(t).name.as_str())
    }

    /// The request ID as text.
    pub fn request_id(&self) -> &str {
        self.request_id.to_str().unwrap_or("")
    }

    /// An empty context.
    pub fn new() -> Self {
        RequestCtx {
            runtime: None,
            tenant: None,
            route: None,
            // 32 hex digits: always a valid header value.
            request_id: http::HeaderValue::from_bytes(new_request_id().as_bytes())
                .expect("hex digits"),
            client_ip: None,
            trusted_peer: false,
            tls: false,
            secure: false,
            body_limit: u64::MAX,
            body_seen: 0,
            claims: None,
            upstream: None,
            upstream_elapsed: None,
            auth: None,
            cors_origin: None,
            forward_auth: false,
            denial: None,
            started: Instant::now(),
            upgraded: None,
            trace: None,
            traceparent: None,
        }
    }
}
