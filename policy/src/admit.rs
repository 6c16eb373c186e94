//! Admission: everything decided about a request before any I/O, as one pure function from the
//! request head, the compiled policy and the connection facts to an [`Admission`].
//!
//! In order: header limits, framing, the credential count, the tenant, path normalization, the
//! HTTPS redirect, CORS preflight, built-in paths, the forward-auth target, the route and the
//! declared body size. The gateway's `request_filter` gathers the facts, calls [`admit`] and
//! acts on the result; the benches call the same function.

use std::borrow::Cow;

use http::header::{
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, AUTHORIZATION, CONTENT_LENGTH,
    ORIGIN,
};
use http::{HeaderMap, HeaderValue, Method};

use crate::cors::{is_preflight, CorsHeaders};
use crate::forward_auth::{is_forward_auth_path, original_request};
use crate::path::{normalize_path, PathError};
use crate::resource::metadata_suffix;
use crate::snapshot::{Access, Denial, RouteRef, Snapshot};

/// The built-in browser paths on every tenant host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// `/oauth/login?rd=`: start a login.
    Login,
    /// `/oauth/callback`: the IdP's redirect back.
    Callback,
    /// `/oauth/logout`: end the session here and at the IdP.
    Logout,
    /// `/oauth/userinfo`: the caller's identity as JSON.
    Userinfo,
    /// `/oauth/backchannel-logout`: the IdP ends sessions (OIDC Back-Channel Logout).
    BackchannelLogout,
    /// `/.well-known/oauth-protected-resource[/<path>]` on a tenant with `resource-metadata`:
    /// RFC 9728 metadata, served without authentication and never proxied.
    ResourceMetadata,
    /// `/.well-known/gatehouse/jwks.json`: the public keys of the tenant's identity
    /// assertions (404 on a tenant without `identity-assertion`; never proxied).
    AssertionJwks,
}

/// The path of the tenant's assertion JWKS ([`Builtin::AssertionJwks`]).
pub const ASSERTION_JWKS_PATH: &str = "/.well-known/gatehouse/jwks.json";

impl Builtin {
    /// The built-in a normalized path names, if any.
    #[must_use]
    pub fn from_path(path: &str) -> Option<Builtin> {
        Some(match path {
            "/oauth/login" => Builtin::Login,
            "/oauth/callback" => Builtin::Callback,
            "/oauth/logout" => Builtin::Logout,
            "/oauth/userinfo" => Builtin::Userinfo,
            "/oauth/backchannel-logout" => Builtin::BackchannelLogout,
            ASSERTION_JWKS_PATH => Builtin::AssertionJwks,
            _ => return None,
        })
    }
}

/// What the gateway knows of a request's head when it decides.
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    /// The request method.
    pub method: &'a Method,
    /// The path of the request target, as received (origin-form, or an absolute-form's path).
    pub raw_path: &'a [u8],
    /// The query of the request target, without the `?`.
    pub query: Option<&'a [u8]>,
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The host the request names ([`crate::host::request_host`]).
    pub host: Option<&'a str>,
    /// Bytes of the request line and headers.
    pub header_bytes: usize,
    /// The head carries both `Transfer-Encoding` and a `Content-Length` field line.
    pub both_lengths: bool,
}

/// What the gateway knows of the connection and its own listeners.
#[derive(Debug, Clone, Copy)]
pub struct Connection<'a> {
    /// The tenant the host resolved to (for forward-auth checks, the original host's).
    pub tenant: Option<usize>,
    /// The client used HTTPS (TLS here, or `X-Forwarded-Proto: https` from a trusted proxy).
    pub secure: bool,
    /// The TCP peer is in `trusted-proxies`.
    pub trusted_peer: bool,
    /// `:PORT` of the TLS listener for HTTPS redirects (empty for 443).
    pub https_port_suffix: &'a str,
}

/// The outcome of admission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Proxy without authentication (a white-listed route).
    Proxy,
    /// A CORS preflight the gateway answers itself with these headers.
    Preflight(CorsHeaders),
    /// A built-in browser path (`/oauth/login`, `/oauth/callback`, ...).
    Builtin(Builtin),
    /// Answer with this denial.
    Deny(Denial),
    /// The route needs an identity: authenticate, then authorize.
    Authenticate,
}

/// [`Admission`] with what the later phases need to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The outcome.
    pub admission: Admission,
    /// The matched route (once the decision got that far).
    pub route: Option<RouteRef>,
    /// The route's `max-body-size` (`u64::MAX` before a route is known).
    pub body_limit: u64,
    /// This is a forward-auth check: answer it, never proxy it.
    pub forward_auth: bool,
    /// The request's `Origin`, when its tenant has CORS (for the response headers).
    pub cors_origin: Option<HeaderValue>,
    /// The target the upstream gets when normalization changed the path (normalized path and
    /// the query as sent); `None` when the target goes as received.
    pub rewritten_target: Option<Vec<u8>>,
}

impl Decision {
    fn new(admission: Admission) -> Decision {
        Decision {
            admission,
            route: None,
            body_limit: u64::MAX,
            forward_auth: false,
            cors_origin: None,
            rewritten_target: None,
        }
    }

    fn deny(mut self, denial: Denial) -> Decision {
        self.admission = Admission::Deny(denial);
        self
    }
}

/// Decides a request before any I/O. See the module documentation for the order.
#[must_use]
pub fn admit(policy: &Snapshot, req: &RequestHead<'_>, conn: &Connection<'_>) -> Decision {
    let decision = Decision::new(Admission::Proxy);
    if req.header_bytes as u64 > policy.max_request_header_bytes
        || req.headers.len() > policy.max_request_headers
    {
        return decision.deny(Denial::HeadersTooLarge);
    }
    // RFC 9112 6.1: a request with both lengths is a smuggling attempt, refused outright.
    if req.both_lengths {
        return decision.deny(Denial::AmbiguousFraming);
    }
    // Two credentials: the gateway would check one and a later hop might read the other. Only
    // a head that repeats some name can repeat this one (two counters, no lookup otherwise).
    if req.headers.len() != req.headers.keys_len()
        && req.headers.get_all(AUTHORIZATION).iter().nth(1).is_some()
    {
        return decision.deny(Denial::DuplicateAuthorization);
    }
    let Some(tenant_index) = conn.tenant else {
        return decision.deny(Denial::UnknownHost);
    };
    let tenant = policy.tenant(tenant_index);
    // Path: normalized before any decision; the upstream gets the normalized form.
    let path = match normalize_path(req.raw_path) {
        Ok(p) => p,
        Err(e) => return decision.deny(Denial::BadPath(e)),
    };
    if tenant.https_redirect && !conn.secure {
        return decision.deny(Denial::HttpsRequired {
            location: https_location(req, conn, &path),
        });
    }
    let mut decision = decision;
    if let (Some(cors), Some(origin)) = (&tenant.cors, req.headers.get(ORIGIN)) {
        decision.cors_origin = Some(origin.clone());
        if is_preflight(req.method, req.headers) {
            let method = req
                .headers
                .get(ACCESS_CONTROL_REQUEST_METHOD)
                .map(|v| v.as_bytes())
                .unwrap_or_default();
            let headers = req
                .headers
                .get(ACCESS_CONTROL_REQUEST_HEADERS)
                .map(|v| v.as_bytes());
            decision.admission = match cors.preflight(origin, method, headers) {
                Some(allow) => Admission::Preflight(allow),
                None => Admission::Deny(Denial::CorsRefused),
            };
            return decision;
        }
    }
    if tenant.resource_metadata.is_some() && metadata_suffix(&path).is_some() {
        decision.admission = Admission::Builtin(Builtin::ResourceMetadata);
        return decision;
    }
    if let Some(builtin) = Builtin::from_path(&path) {
        decision.admission = Admission::Builtin(builtin);
        return decision;
    }
    // A forward-auth check is decided for exactly the original request it describes.
    let (method, path) = if is_forward_auth_path(&path) {
        decision.forward_auth = true;
        match original_request(
            req.headers,
            req.method,
            req.raw_path,
            conn.trusted_peer,
            policy.forward_auth_headers,
        ) {
            Ok(original) => (Cow::Owned(original.method), Cow::Owned(original.path)),
            Err(e) => return decision.deny(Denial::ForwardAuthTarget(e)),
        }
    } else {
        (Cow::Borrowed(req.method), path)
    };
    let route_ref = tenant.lookup(&path, &method);
    let route = tenant.route(route_ref);
    decision.route = Some(route_ref);
    // Body size: refuse an over-long declared body before the upstream sees anything.
    decision.body_limit = route.max_body_size;
    if declared_length(req.headers).is_some_and(|len| len > route.max_body_size) {
        return decision.deny(Denial::BodyTooLarge);
    }
    decision.admission = match route.access {
        Access::Public => Admission::Proxy,
        Access::Authenticated | Access::DefaultDeny | Access::Optional => Admission::Authenticate,
    };
    if !decision.forward_auth {
        if let Cow::Owned(normalized) = path {
            let mut target = normalized.into_bytes();
            if let Some(q) = req.query {
                target.push(b'?');
                target.extend_from_slice(q);
            }
            decision.rewritten_target = Some(target);
        }
    }
    decision
}

/// The HTTPS URL of the same resource: the request's host without its port, the TLS
/// listener's port, the normalized path and the query as sent.
fn https_location(req: &RequestHead<'_>, conn: &Connection<'_>, path: &str) -> String {
    let host = crate::host::without_port(req.host.unwrap_or(""));
    let query = req
        .query
        .map(|q| format!("?{}", String::from_utf8_lossy(q)))
        .unwrap_or_default();
    format!("https://{host}{}{path}{query}", conn.https_port_suffix)
}

/// The declared `Content-Length`, when it is a number.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// The error a rewritten target that the HTTP library refuses maps to (it passed
/// normalization, so this should not happen).
pub const REWRITE_REFUSED: Denial = Denial::BadPath(PathError::NotAbsolute);

#[cfg(test)]
mod tests;
