//! The steps `request_filter` runs before it acts: gather the request's facts and have
//! `policy::admit` decide, take a token from each rate limit, authenticate and authorize; and
//! the request-target helpers they use.

use gatehouse_policy::admit::{admit, Admission, Connection, RequestHead, REWRITE_REFUSED};
use gatehouse_policy::snapshot::Denial;
use http::header::TRANSFER_ENCODING;
use pingora::http::RequestHeader;
use pingora::proxy::Session;

use crate::ctx::{absolute_form_authority, client_host, RequestCtx};
use crate::identify::verify_and_authorize;

use super::Gateway;

impl Gateway {
    /// Gathers the request's facts, has `policy::admit` decide, and records what the later
    /// phases need; a normalized path becomes the upstream's target here.
    pub(super) fn admit(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        runtime: &crate::runtime::Runtime,
    ) -> Admission {
        let raw = session
            .as_downstream()
            .as_http1()
            .map(|h1| h1.get_headers_raw_bytes());
        let head = request_head(session.req_header(), raw.as_deref());
        let conn = Connection {
            tenant: ctx.tenant,
            secure: ctx.secure,
            trusted_peer: ctx.trusted_peer,
            https_port_suffix: &self.https_port_suffix,
        };
        let decision = admit(&runtime.policy, &head, &conn);
        ctx.route = decision.route;
        ctx.body_limit = decision.body_limit;
        ctx.forward_auth = decision.forward_auth;
        ctx.cors_origin = decision.cors_origin;
        // An absolute-form target goes upstream in origin form, with its authority as Host.
        let absolute = absolute_form_authority(session.req_header().raw_path())
            .and_then(|a| http::HeaderValue::from_str(a).ok());
        let target = decision.rewritten_target.or_else(|| {
            absolute.as_ref()?;
            let (path, query) = split_target(session.req_header());
            let mut t = path.to_vec();
            if let Some(q) = query {
                t.push(b'?');
                t.extend_from_slice(q);
            }
            Some(t)
        });
        if let Some(target) = target {
            let req = session.req_header_mut();
            if set_target(req, &target).is_err() {
                return Admission::Deny(REWRITE_REFUSED);
            }
            if let Some(host) = absolute {
                if req.insert_header(http::header::HOST, host).is_err() {
                    return Admission::Deny(REWRITE_REFUSED);
                }
            }
        }
        decision.admission
    }

    /// Takes a token from each of the tenant's and the route's `rate-limits` (after
    /// authentication, so `subject` limits know the caller); the first empty bucket refuses
    /// the request with 429. Costs nothing on tenants without limits.
    pub(super) async fn rate_limit(
        &self,
        session: &Session,
        ctx: &RequestCtx,
        runtime: &crate::runtime::Runtime,
    ) -> Result<(), Denial> {
        let (Some(t), Some(route)) = (ctx.tenant, ctx.route) else {
            return Ok(());
        };
        let limits = runtime.limits.tenant(t);
        if !limits.any {
            return Ok(());
        }
        let ip = ctx.client_ip.map(|peer| {
            gatehouse_policy::ratelimit::client_address(
                peer,
                &runtime.policy.trusted_proxies,
                session
                    .req_header()
                    .headers
                    .get_all("x-forwarded-for")
                    .iter()
                    .map(|v| v.as_bytes()),
            )
        });
        let caller = crate::ratelimit::Caller {
            ip,
            subject: ctx.claims.as_ref().and_then(|c| c.sub.as_deref()),
        };
        let tenant = runtime.policy.tenant(t);
        crate::ratelimit::check(
            limits,
            route,
            &caller,
            std::time::Instant::now(),
            &self.shared_limits,
            || self.metrics.record_rate_limit_fallback(&tenant.name),
        )
        .await
        .map_err(|(denial, key)| {
            self.metrics
                .record_rate_limited(&tenant.name, &tenant.route(route).name, key.as_str());
            denial
        })
    }

    /// Authenticates the bearer token and authorizes the route: the only async step before
    /// proxying (a verified-token cache hit does not await). Counts the outcome.
    pub(super) async fn authenticate(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        runtime: &crate::runtime::Runtime,
    ) -> Result<(), Denial> {
        let (Some(t), Some(route_ref)) = (ctx.tenant, ctx.route) else {
            return Err(Denial::Unauthenticated);
        };
        let tenant = runtime.policy.tenant(t);
        let result = verify_and_authorize(
            session.req_header(),
            ctx,
            t,
            route_ref,
            runtime,
            &self.sessions,
            &self.shared_limits,
        )
        .await;
        let outcome = match &result {
            Ok(_) => {
                runtime.tenant_metrics[t].auth_allowed.inc();
                "allowed"
            }
            Err(d) => {
                let outcome = d.auth_result();
                self.metrics
                    .record_auth_refusal(&tenant.name, outcome, d.reason());
                outcome
            }
        };
        ctx.auth = Some(outcome);
        ctx.claims = result?;
        Ok(())
    }
}

/// The facts `policy::admit` decides on, from a request head and, for HTTP/1, its raw bytes:
/// their length is what `max-request-header-size` counts, and since Pingora drops
/// Content-Length when Transfer-Encoding is present, only they tell that both were sent.
pub(crate) fn request_head<'a>(req: &'a RequestHeader, raw_h1: Option<&[u8]>) -> RequestHead<'a> {
    let header_bytes = match raw_h1 {
        Some(raw) => raw.len(),
        None => {
            req.headers
                .iter()
                .map(|(k, v)| k.as_str().len() + v.len() + 4)
                .sum::<usize>()
                + req.uri.to_string().len()
        }
    };
    let both_lengths = req.headers.contains_key(TRANSFER_ENCODING)
        && raw_h1.is_some_and(|raw| has_header_line(raw, b"content-length"));
    let (raw_path, query) = split_target(req);
    RequestHead {
        method: &req.method,
        raw_path,
        query,
        headers: &req.headers,
        host: client_host(req),
        header_bytes,
        both_lengths,
    }
}

/// Replaces the request target with `target` (origin form). A URI with an authority (HTTP/2's
/// `:scheme` and `:authority`) keeps it, so the upstream still gets the request's host.
fn set_target(req: &mut RequestHeader, target: &[u8]) -> Result<(), ()> {
    let Some(authority) = req.uri.authority().cloned() else {
        return req.set_raw_path(target).map_err(|_| ());
    };
    let mut parts = http::uri::Parts::default();
    parts.scheme = req.uri.scheme().cloned();
    parts.authority = Some(authority);
    parts.path_and_query = Some(http::uri::PathAndQuery::try_from(target).map_err(|_| ())?);
    req.set_uri(http::Uri::from_parts(parts).map_err(|_| ())?);
    Ok(())
}

/// The path and query of the request target (origin-form, or the path of an absolute-form).
pub(crate) fn split_target(req: &RequestHeader) -> (&[u8], Option<&[u8]>) {
    let raw = if req.uri.authority().is_some() || req.raw_path().first() != Some(&b'/') {
        req.uri
            .path_and_query()
            .map(|p| p.as_str().as_bytes())
            .unwrap_or(b"/")
    } else {
        req.raw_path()
    };
    match raw.iter().position(|&b| b == b'?') {
        Some(i) => (&raw[..i], Some(&raw[i + 1..])),
        None => (raw, None),
    }
}

/// Whether the raw HTTP/1 header block has a field line named `name` (lowercase).
fn has_header_line(raw: &[u8], name: &[u8]) -> bool {
    raw.split(|&b| b == b'\n').skip(1).any(|line| {
        line.len() > name.len()
            && line[..name.len()].eq_ignore_ascii_case(name)
            && matches!(line[name.len()], b':' | b' ' | b'\t')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_target_keeps_an_http2_authority_and_replaces_an_origin_form() {
        let mut h2 = RequestHeader::build("GET", b"/a/../b", None).unwrap();
        h2.set_uri("https://demo.localhost:8443/a/../b?q=1".parse().unwrap());
        set_target(&mut h2, b"/b?q=1").unwrap();
        assert_eq!(h2.uri.to_string(), "https://demo.localhost:8443/b?q=1");
        assert_eq!(h2.uri.authority().unwrap().as_str(), "demo.localhost:8443");
        let mut h1 = RequestHeader::build("GET", b"/a/../b?q=1", None).unwrap();
        set_target(&mut h1, b"/b?q=1").unwrap();
        assert_eq!(h1.raw_path(), b"/b?q=1");
        assert!(h1.uri.authority().is_none());
    }

    #[test]
    fn absolute_form_targets_name_their_authority_and_path() {
        assert_eq!(
            absolute_form_authority(b"http://demo.localhost:8080/a?q=1"),
            Some("demo.localhost:8080")
        );
        assert_eq!(absolute_form_authority(b"/a"), None);
        assert_eq!(absolute_form_authority(b"ftp://x/a"), None);
        let mut req = RequestHeader::build("GET", b"http://demo.localhost/a/b?q=1", None).unwrap();
        req.set_raw_path(b"http://demo.localhost/a/b?q=1").unwrap();
        let (path, query) = split_target(&req);
        assert_eq!((path, query), (&b"/a/b"[..], Some(&b"q=1"[..])));
    }

    #[test]
    fn finds_content_length_line_case_insensitively() {
        let raw = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\ncontent-LENGTH: 5\r\n\r\n";
        assert!(has_header_line(raw, b"content-length"));
        let raw = b"POST / HTTP/1.1\r\nHost: a\r\nX-Content-Length: 5\r\n\r\n";
        assert!(!has_header_line(raw, b"content-length"));
        let raw = b"POST /content-length: HTTP/1.1\r\nHost: a\r\n\r\n";
        assert!(!has_header_line(raw, b"content-length"));
    }
}
