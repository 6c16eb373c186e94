//! Header rules for a proxied request and its response, applied to an `http::HeaderMap` in
//! place: what the upstream may see (client copies of identity and proxy-only headers removed,
//! `X-Forwarded-*`, the request ID, W3C `traceparent`) and what every response carries
//! (security headers, the request ID).
//!
//! These run on every request, so they work on the map directly with names known at compile
//! time: one scan over the client's headers decides what to remove (usually nothing), and each
//! added header is one map insert with no name parsing. Pingora's case-preserving
//! `RequestHeader::insert_header` costs about twice as much per header (it parses the name
//! again and keeps a second, case-keyed map); `benches/benches/headers.rs` measures both.

use std::net::IpAddr;

use http::header::{AUTHORIZATION, HOST};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::proxies::forwarded_for;
use crate::request_id::{random_u128, write_hex};
use crate::snapshot::ResponseHeaders;

/// `X-Forwarded-For`.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`.
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// W3C Trace Context `traceparent`.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

const HTTP: HeaderValue = HeaderValue::from_static("http");
const HTTPS: HeaderValue = HeaderValue::from_static("https");

/// Headers only a trusted proxy may set; from anyone else they are removed before the upstream
/// sees the request (routing never reads them: it uses the request line only).
pub const PROXY_ONLY_HEADERS: [&str; 3] =
    ["x-forwarded-method", "x-forwarded-uri", "x-original-method"];

/// Headers that make upstream frameworks route or build URLs from something other than the
/// request line (IIS/Symfony `X-Original-URL`/`X-Rewrite-URL`, Spring `X-Forwarded-Prefix`,
/// RFC 7239 `Forwarded`): removed from every peer, a trusted proxy's too, unless the tenant
/// sets `pass-rewrite-headers`.
pub const REWRITE_HEADERS: [&str; 4] = [
    "x-original-url",
    "x-rewrite-url",
    "x-forwarded-prefix",
    "forwarded",
];

/// Headers never passed to an upstream from any peer: method overrides (a `GET` the gateway
/// authorized must not become a `DELETE` behind it) and the identity headers of the proxies
/// gatehouse replaces, which their upstreams trust (oauth2-proxy, Gatekeeper, Authelia).
/// `X-Auth-Request-*` is covered by the `X-Auth-*` identity rule. The gateway's own assertion
/// header in its usual spelling is here too, so no tenant's upstream ever gets a client's copy
/// (a tenant that names another header has that one removed as well, see
/// [`Forwarding::assertion_header`]).
pub const ALWAYS_REMOVED_HEADERS: [&str; 9] = [
    "x-http-method-override",
    "x-method-override",
    "x-http-method",
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-forwarded-preferred-username",
    "remote-user",
    "x-gatehouse-assertion",
];

/// Whether header name `name` is `lower` (a lowercase name) in any case, with `_` and `-`
/// interchangeable (some servers fold `_` into `-`).
fn same_name(name: &[u8], lower: &[u8]) -> bool {
    name.len() == lower.len() && name.iter().zip(lower).all(|(&a, &b)| same_byte(a, b))
}

fn same_byte(a: u8, b: u8) -> bool {
    a.to_ascii_lowercase() == b || (a == b'_' && b == b'-')
}

/// Whether a client header name is one of `list`, in any case and `_` spelling.
fn in_list(name: &[u8], list: &[&str]) -> bool {
    list.iter().any(|l| same_name(name, l.as_bytes()))
}

/// What the gateway knows about a request when it forwards it.
pub struct Forwarding<'a> {
    /// The TCP peer's address.
    pub client_ip: Option<IpAddr>,
    /// The peer is a trusted proxy: its `X-Forwarded-*` values are kept (and appended to).
    pub trusted_peer: bool,
    /// The request arrived over TLS.
    pub tls: bool,
    /// The request-target's authority (absolute-form), used when there is no `Host`.
    pub authority: Option<&'a str>,
    /// The tenant's `identity-headers` names: client copies are removed.
    pub identity_headers: &'a [(HeaderName, String)],
    /// `forward-access-token`: keep the client's `Authorization`.
    pub forward_access_token: bool,
    /// `pass-rewrite-headers`: a trusted proxy's [`REWRITE_HEADERS`] are kept.
    pub pass_rewrite_headers: bool,
    /// The request ID header name and value.
    pub request_id: (&'a HeaderName, HeaderValue),
    /// The tenant's `identity-assertion` header: a client's copy is removed in any spelling
    /// (the gateway sets its own when the request carries an identity).
    pub assertion_header: Option<&'a HeaderName>,
    /// The `traceparent` to send instead of the client's (OpenTelemetry tracing configured: the
    /// gateway's upstream span as parent, or an unsampled one); `None`: a client's valid one
    /// is passed on, else one is started from the request ID.
    pub traceparent: Option<&'a HeaderValue>,
}

/// Whether a client header name is an identity header in any spelling: `X-Auth-*` or one of
/// the configured names, ignoring case, with `_` and `-` interchangeable (some servers fold
/// `_` into `-`, so `X_Auth_Roles` would reach them as `X-Auth-Roles`).
#[must_use]
pub fn is_identity_header(name: &[u8], configured: &[(HeaderName, String)]) -> bool {
    (name.len() > 7 && same_name(&name[..7], b"x-auth-"))
        || configured
            .iter()
            .any(|(h, _)| same_name(name, h.as_str().as_bytes()))
}

/// Whether a client header must not reach the upstream: identity headers, the headers no peer
/// may pass, proxy-only headers unless the peer is trusted, rewrite headers unless the peer is
/// trusted and the tenant passes them.
fn is_removed(name: &[u8], f: &Forwarding<'_>) -> bool {
    if is_identity_header(name, f.identity_headers)
        || f.assertion_header
            .is_some_and(|h| same_name(name, h.as_str().as_bytes()))
    {
        return true;
    }
    // Every name below starts with one of these; most request headers are decided here.
    if !matches!(name.first(), Some(b'x' | b'X' | b'r' | b'R' | b'f' | b'F')) {
        return false;
    }
    in_list(name, &ALWAYS_REMOVED_HEADERS)
        || (!f.trusted_peer && in_list(name, &PROXY_ONLY_HEADERS))
        || (!(f.trusted_peer && f.pass_rewrite_headers) && in_list(name, &REWRITE_HEADERS))
}

/// Rewrites a client's request headers for the upstream: removes client copies of identity
/// headers, method overrides and other proxies' identity headers, proxy-only headers (unless
/// the peer is trusted), rewrite headers (unless the peer is trusted and the tenant passes
/// them) and `Authorization` (unless forwarded); sets `X-Forwarded-For/Proto/Host` (a trusted proxy's values are kept), the
/// request ID, and a `traceparent` when the client sent no valid one. The caller then adds the
/// identity headers it vouches for.
pub fn forward_request(headers: &mut HeaderMap, f: &Forwarding<'_>) {
    // Room for what is added below plus the caller's identity headers and assertion: one
    // growth at most.
    headers.reserve(8 + f.identity_headers.len() + usize::from(f.assertion_header.is_some()));
    // One pass decides what to remove; the usual request has nothing to remove and allocates
    // nothing here.
    let mut remove: Vec<HeaderName> = Vec::new();
    for name in headers.keys() {
        if is_removed(name.as_str().as_bytes(), f) {
            remove.push(name.clone());
        }
    }
    for name in &remove {
        headers.remove(name);
    }
    if !f.forward_access_token {
        headers.remove(AUTHORIZATION);
    }
    if let Some(ip) = f.client_ip {
        // Only a trusted proxy's list is extended; anyone else's is replaced unread.
        let existing = if f.trusted_peer {
            headers.get(X_FORWARDED_FOR).and_then(|v| v.to_str().ok())
        } else {
            None
        };
        if let Ok(v) = HeaderValue::try_from(forwarded_for(existing, ip, f.trusted_peer)) {
            headers.insert(X_FORWARDED_FOR, v);
        }
    }
    if !f.trusted_peer || !headers.contains_key(X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO, if f.tls { HTTPS } else { HTTP });
    }
    if !f.trusted_peer || !headers.contains_key(X_FORWARDED_HOST) {
        let host = headers
            .get(HOST)
            .cloned()
            .or_else(|| f.authority.and_then(|a| HeaderValue::from_str(a).ok()));
        match host {
            Some(h) => {
                headers.insert(X_FORWARDED_HOST, h);
            }
            None => {
                headers.remove(X_FORWARDED_HOST);
            }
        }
    }
    let (id_name, id_value) = &f.request_id;
    if let Some(traceparent) = f.traceparent {
        headers.insert(TRACEPARENT, traceparent.clone());
    } else if !headers
        .get(TRACEPARENT)
        .is_some_and(|v| is_valid_traceparent(v.as_bytes()))
    {
        headers.insert(TRACEPARENT, new_traceparent(id_value.as_bytes()));
    }
    headers.insert((*id_name).clone(), id_value.clone());
}

/// Adds the headers every response carries: the security headers (HSTS only when the client
/// used HTTPS, RFC 6797 7.2) and the request ID.
pub fn respond(
    headers: &mut HeaderMap,
    security: &ResponseHeaders,
    secure: bool,
    request_id: (&HeaderName, HeaderValue),
) {
    headers.reserve(security.always.len() + 2);
    for (name, value) in &security.always {
        headers.insert(name.clone(), value.clone());
    }
    if secure {
        if let Some(hsts) = &security.hsts {
            headers.insert(http::header::STRICT_TRANSPORT_SECURITY, hsts.clone());
        }
    }
    headers.insert(request_id.0.clone(), request_id.1);
}

/// Whether `v` is a W3C `traceparent` (version 00) with a non-zero trace id and parent id.
#[must_use]
pub fn is_valid_traceparent(v: &[u8]) -> bool {
    v.len() == 55
        && &v[..3] == b"00-"
        && v[35] == b'-'
        && v[52] == b'-'
        && is_trace_context_id(&v[3..35])
        && is_trace_context_id(&v[36..52])
        && is_lower_hex(&v[53..55])
}

/// Lowercase hex digits only.
fn is_lower_hex(s: &[u8]) -> bool {
    s.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A trace context id (trace id or parent id): lowercase hex, not all zeros.
fn is_trace_context_id(s: &[u8]) -> bool {
    is_lower_hex(s) && s.iter().any(|&b| b != b'0')
}

/// A new sampled `traceparent` whose trace id is the request ID when that is 32 lowercase hex
/// digits (generated IDs are), so logs and traces correlate; else a random one.
#[must_use]
pub fn new_traceparent(request_id: &[u8]) -> HeaderValue {
    let mut out = *b"00-00000000000000000000000000000000-0000000000000000-01";
    if request_id.len() == 32 && is_trace_context_id(request_id) {
        out[3..35].copy_from_slice(request_id);
    } else {
        write_hex(&mut out[3..35], random_u128() | 1);
    }
    write_hex(&mut out[36..52], (random_u128() as u64 | 1).into());
    // Only "0-9a-f-" bytes: always a valid header value.
    HeaderValue::from_bytes(&out).expect("hex and dashes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarding<'a>(
        configured: &'a [(HeaderName, String)],
        id_name: &'a HeaderName,
        trusted: bool,
    ) -> Forwarding<'a> {
        Forwarding {
            client_ip: Some("10.1.2.3".parse().unwrap()),
            trusted_peer: trusted,
            tls: false,
            authority: None,
            identity_headers: configured,
            forward_access_token: false,
            pass_rewrite_headers: false,
            assertion_header: None,
            traceparent: None,
            request_id: (
                id_name,
                HeaderValue::from_static("4bf92f3577b34da6a3ce929d0e0e4736"),
            ),
        }
    }

    fn client_headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn strips_identity_header_spellings_and_keeps_lookalikes() {
        let configured = vec![(HeaderName::from_static("x-user-email"), "email".to_string())];
        let id = HeaderName::from_static("x-request-id");
        let mut h = client_headers(&[
            ("X-Auth-Subject", "evil"),
            ("x_auth_userid", "evil"),
            ("X-AUTH-ROLES", "admin"),
            ("X-Authority", "keep"),
            ("Accept", "*/*"),
            ("x_user_email", "evil"),
            ("X-User-Email-2", "keep"),
            ("Authorization", "Bearer t"),
        ]);
        forward_request(&mut h, &forwarding(&configured, &id, false));
        let mut names: Vec<_> = h.keys().map(|k| k.as_str().to_string()).collect();
        names.sort();
        assert_eq!(
            names,
            vec![
                "accept",
                "traceparent",
                "x-authority",
                "x-forwarded-for",
                "x-forwarded-proto",
                "x-request-id",
                "x-user-email-2"
            ]
        );
    }

    #[test]
    fn method_overrides_and_other_proxies_identity_headers_never_pass() {
        let id = HeaderName::from_static("x-request-id");
        let sent = [
            ("X-HTTP-Method-Override", "DELETE"),
            ("x_method_override", "DELETE"),
            ("X-Http-Method", "PUT"),
            ("X-Forwarded-User", "admin"),
            ("X_Forwarded_Email", "a@example.com"),
            ("x-forwarded-groups", "admins"),
            ("X-Forwarded-Preferred-Username", "admin"),
            ("X-Auth-Request-User", "admin"),
            ("x_auth_request_email", "a@example.com"),
            ("Remote-User", "admin"),
            ("remote_user", "admin"),
            ("X-Original-URL", "/admin"),
            ("x_rewrite_url", "/admin"),
            ("X-Forwarded-Prefix", "/admin"),
            ("Forwarded", "for=1.1.1.1"),
            ("x_forwarded_uri", "/admin"),
            ("Accept", "*/*"),
            ("X-Forwarded-Usernames", "kept: not a known name"),
            ("Remote-Users", "kept"),
        ];
        for trusted in [false, true] {
            let mut h = client_headers(&sent);
            let f = Forwarding {
                pass_rewrite_headers: false,
                assertion_header: None,
                ..forwarding(&[], &id, trusted)
            };
            forward_request(&mut h, &f);
            let mut names: Vec<_> = h
                .keys()
                .map(|k| k.as_str())
                .filter(|k| {
                    !matches!(
                        *k,
                        "x-forwarded-for" | "x-forwarded-proto" | "traceparent" | "x-request-id"
                    )
                })
                .collect();
            names.sort_unstable();
            let mut expected = vec!["accept", "remote-users", "x-forwarded-usernames"];
            if trusted {
                expected.push("x_forwarded_uri");
                expected.sort_unstable();
            }
            assert_eq!(names, expected, "trusted: {trusted}");
        }
    }

    #[test]
    fn forwarding_headers_from_an_untrusted_peer_are_replaced() {
        let id = HeaderName::from_static("x-request-id");
        let mut h = client_headers(&[
            ("Host", "app.example.com"),
            ("X-Forwarded-For", "1.1.1.1"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "evil.example"),
            ("X-Original-URL", "/admin"),
            ("Forwarded", "for=1.1.1.1"),
        ]);
        forward_request(&mut h, &forwarding(&[], &id, false));
        assert_eq!(h["x-forwarded-for"], "10.1.2.3");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "app.example.com");
        assert!(h.get("x-original-url").is_none() && h.get("forwarded").is_none());
        assert_eq!(h["x-request-id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        let tp = h["traceparent"].as_bytes();
        assert!(is_valid_traceparent(tp));
        assert!(tp.starts_with(b"00-4bf92f3577b34da6a3ce929d0e0e4736-"));
    }

    #[test]
    fn a_trusted_proxy_keeps_its_values_and_gets_appended_to() {
        let id = HeaderName::from_static("x-request-id");
        let mut h = client_headers(&[
            ("Host", "internal:8080"),
            ("X-Forwarded-For", "1.1.1.1"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "app.example.com"),
            ("X-Original-URL", "/x"),
            (
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
        ]);
        let mut passing = h.clone();
        forward_request(&mut h, &forwarding(&[], &id, true));
        assert_eq!(h["x-forwarded-for"], "1.1.1.1, 10.1.2.3");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "app.example.com");
        assert!(
            h.get("x-original-url").is_none(),
            "rewrite headers are removed even from a trusted proxy"
        );
        let f = Forwarding {
            pass_rewrite_headers: true,
            ..forwarding(&[], &id, true)
        };
        forward_request(&mut passing, &f);
        assert_eq!(passing["x-original-url"], "/x", "unless the tenant opts in");
        assert_eq!(
            h["traceparent"],
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        );
    }

    #[test]
    fn client_assertions_are_removed_in_any_spelling_from_any_peer() {
        let id = HeaderName::from_static("x-request-id");
        let configured = HeaderName::from_static("x-pomerium-jwt-assertion");
        for trusted in [false, true] {
            let mut h = client_headers(&[
                ("X-Gatehouse-Assertion", "forged"),
                ("x_gatehouse_assertion", "forged"),
                ("X-Pomerium-Jwt-Assertion", "forged"),
                ("X_POMERIUM_JWT_ASSERTION", "forged"),
                ("X-Pomerium-Jwt-Assertion-Extra", "kept"),
            ]);
            let f = Forwarding {
                assertion_header: Some(&configured),
                ..forwarding(&[], &id, trusted)
            };
            forward_request(&mut h, &f);
            let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
            assert!(
                !left.iter().any(|k| k.contains("gatehouse")
                    || k.contains("pomerium-jwt-assertion") && !k.ends_with("extra")
                    || k.contains("pomerium_jwt")),
                "{left:?}"
            );
            assert_eq!(h["x-pomerium-jwt-assertion-extra"], "kept");
        }
        // A tenant without the feature: the usual name is still removed.
        let mut h = client_headers(&[("X-Gatehouse-Assertion", "forged")]);
        forward_request(&mut h, &forwarding(&[], &id, false));
        assert!(h.get("x-gatehouse-assertion").is_none());
    }

    #[test]
    fn no_host_uses_the_authority_or_removes_the_header() {
        let id = HeaderName::from_static("x-request-id");
        let mut h = client_headers(&[("X-Forwarded-Host", "evil")]);
        forward_request(&mut h, &forwarding(&[], &id, false));
        assert!(h.get("x-forwarded-host").is_none());
        let mut h = HeaderMap::new();
        let f = Forwarding {
            authority: Some("example.com:8443"),
            ..forwarding(&[], &id, false)
        };
        forward_request(&mut h, &f);
        assert_eq!(h["x-forwarded-host"], "example.com:8443");
    }

    #[test]
    fn responses_get_security_headers_and_the_request_id() {
        let security = ResponseHeaders {
            always: vec![(
                HeaderName::from_static("x-frame-options"),
                HeaderValue::from_static("DENY"),
            )],
            hsts: Some(HeaderValue::from_static("max-age=31536000")),
        };
        let id = HeaderName::from_static("x-request-id");
        let mut h = client_headers(&[
            ("X-Frame-Options", "SAMEORIGIN"),
            ("Content-Type", "text/plain"),
        ]);
        respond(
            &mut h,
            &security,
            false,
            (&id, HeaderValue::from_static("abc")),
        );
        assert_eq!(
            h["x-frame-options"], "DENY",
            "the policy wins over the upstream"
        );
        assert_eq!(h["x-request-id"], "abc");
        assert!(h.get("strict-transport-security").is_none());
        respond(
            &mut h,
            &security,
            true,
            (&id, HeaderValue::from_static("abc")),
        );
        assert_eq!(h["strict-transport-security"], "max-age=31536000");
        assert_eq!(h.get_all("x-frame-options").iter().count(), 1);
    }

    #[test]
    fn traceparents_are_validated_and_started_from_the_request_id() {
        let id = b"4bf92f3577b34da6a3ce929d0e0e4736";
        let tp = new_traceparent(id);
        assert!(is_valid_traceparent(tp.as_bytes()), "{tp:?}");
        assert!(tp
            .as_bytes()
            .starts_with(b"00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        let other = new_traceparent(b"client-chosen-id");
        assert!(is_valid_traceparent(other.as_bytes()), "{other:?}");
        assert_ne!(new_traceparent(id), new_traceparent(id), "fresh parent ids");
        assert!(is_valid_traceparent(
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        for bad in [
            &b"00-00000000000000000000000000000000-00f067aa0ba902b7-01"[..],
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            b"garbage",
        ] {
            assert!(
                !is_valid_traceparent(bad),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn a_given_traceparent_replaces_the_clients_and_none_keeps_it() {
        let id = HeaderName::from_static("x-request-id");
        let client = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let ours =
            HeaderValue::from_static("00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01");
        let mut h = HeaderMap::new();
        h.insert(TRACEPARENT, HeaderValue::from_static(client));
        forward_request(&mut h, &forwarding(&[], &id, false));
        assert_eq!(h[TRACEPARENT], client, "passed on unchanged");
        let f = Forwarding {
            traceparent: Some(&ours),
            ..forwarding(&[], &id, false)
        };
        forward_request(&mut h, &f);
        assert_eq!(h[TRACEPARENT], ours, "replaced");
        let mut none = HeaderMap::new();
        forward_request(&mut none, &f);
        assert_eq!(none[TRACEPARENT], ours, "set without a client's");
    }
}
