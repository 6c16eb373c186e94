//! Forward-auth (`/oauth/auth`): which original request a check from nginx `auth_request`,
//! Traefik ForwardAuth or Istio ext_authz is about.
//!
//! In this mode the gateway decides but does not proxy: the ingress in front forwards the
//! original request exactly as the client sent it. So the decision must be about exactly those
//! bytes. The path is taken from one configured header family, only up to the first `?`, and
//! must already be in normal form: deciding on a normalized path would allow
//! `/admin//../public/x` as `/public/x` while an upstream that does not merge slashes serves
//! `/admin/public/x`.

use gatehouse_config::ForwardAuthHeaders;
use http::{HeaderMap, Method};

use crate::path::{normalize_path, PathError};

/// The forward-auth endpoint served on every tenant host.
pub const FORWARD_AUTH_PATH: &str = "/oauth/auth";

/// Whether a normalized request path is a forward-auth check: `/oauth/auth`, or the original
/// path appended to it (`/oauth/auth/<path>`, Envoy ext_authz's `pathPrefix`).
#[must_use]
pub fn is_forward_auth_path(path: &str) -> bool {
    path.strip_prefix(FORWARD_AUTH_PATH)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The original request a forward-auth check is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalRequest {
    /// The original method (the check's own when the proxy names none).
    pub method: Method,
    /// The original path, in normal form, without the query.
    pub path: String,
}

/// Why a forward-auth check names no request the gateway can decide about: 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetError {
    /// The original URI is neither an absolute URI (`scheme://...`) nor a path starting with
    /// `/`.
    NotAPath,
    /// The original path would be refused for a proxied request.
    BadPath(PathError),
    /// The original path is valid but not in normal form (dot segments, `//`, encoded
    /// unreserved characters, lowercase escapes): the upstream may read it differently.
    NotNormal,
}

impl TargetError {
    /// A short, stable reason for logs and metrics.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            TargetError::NotAPath => "forward_auth_uri_not_a_path",
            TargetError::BadPath(_) => "forward_auth_bad_path",
            TargetError::NotNormal => "forward_auth_path_not_normal",
        }
    }
}

/// Header names of one family.
struct Family {
    method: &'static str,
    uri: &'static str,
}

const X_FORWARDED: Family = Family {
    method: "x-forwarded-method",
    uri: "x-forwarded-uri",
};
const X_ORIGINAL: Family = Family {
    method: "x-original-method",
    uri: "x-original-url",
};

/// The header a trusted proxy names the original host with, for `family`; `None` when the
/// family uses the check request's own `Host` (ingress-nginx sends the original `Host`).
#[must_use]
pub fn original_host_header(family: ForwardAuthHeaders) -> Option<&'static str> {
    match family {
        ForwardAuthHeaders::XForwarded => Some("x-forwarded-host"),
        ForwardAuthHeaders::XOriginal => None,
    }
}

/// The original request of a forward-auth check.
///
/// - From a peer that is not a trusted proxy, forwarded headers are ignored: the check is
///   about itself (`check_method`, `check_path`), which no route is meant to cover.
/// - From a trusted proxy, only `family`'s headers are read. The URI header's value is an
///   absolute URI only when it starts with a scheme (`^[A-Za-z][A-Za-z0-9+.-]*://`), and
///   otherwise must start with `/`; its path ends at the first `?`. Without the header, the
///   path appended to `/oauth/auth` is the original path (`/` when none).
///
/// `check_path` is the check request's raw path (without query); it must be in normal form.
///
/// # Errors
///
/// A [`TargetError`] when the original path is not a path, would be refused, or is not
/// already in normal form.
pub fn original_request(
    headers: &HeaderMap,
    check_method: &Method,
    check_path: &[u8],
    trusted: bool,
    family: ForwardAuthHeaders,
) -> Result<OriginalRequest, TargetError> {
    // The check request itself must be in normal form too: Envoy appends the client's raw
    // path to it.
    let check = normal_form(check_path)?;
    if !trusted {
        return Ok(OriginalRequest {
            method: check_method.clone(),
            path: check,
        });
    }
    let names = match family {
        ForwardAuthHeaders::XForwarded => &X_FORWARDED,
        ForwardAuthHeaders::XOriginal => &X_ORIGINAL,
    };
    let method = headers
        .get(names.method)
        .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
        .unwrap_or_else(|| check_method.clone());
    let path = match headers.get(names.uri) {
        Some(uri) => normal_form(uri_path(uri.as_bytes())?)?,
        None => match check.strip_prefix(FORWARD_AUTH_PATH) {
            Some(rest) if !rest.is_empty() => rest.to_owned(),
            _ => "/".to_owned(),
        },
    };
    Ok(OriginalRequest { method, path })
}

/// The path of an original URI: an absolute URI's path (or `/`), else the value itself, which
/// must start with `/`; in both cases up to the first `?`.
fn uri_path(uri: &[u8]) -> Result<&[u8], TargetError> {
    let before_query = |p: &[u8]| -> usize { p.iter().position(|&b| b == b'?').unwrap_or(p.len()) };
    if let Some(after_scheme) = strip_scheme(uri) {
        // The authority ends at the first '/', '?' or '#'.
        let start = after_scheme
            .iter()
            .position(|&b| matches!(b, b'/' | b'?' | b'#'))
            .unwrap_or(after_scheme.len());
        let rest = &after_scheme[start..];
        return Ok(match rest.first() {
            Some(b'/') => &rest[..before_query(rest)],
            _ => b"/",
        });
    }
    if uri.first() != Some(&b'/') {
        return Err(TargetError::NotAPath);
    }
    Ok(&uri[..before_query(uri)])
}

/// What follows `scheme://` when `uri` starts with a scheme (RFC 3986 3.1) and `://`.
fn strip_scheme(uri: &[u8]) -> Option<&[u8]> {
    if !uri.first()?.is_ascii_alphabetic() {
        return None;
    }
    let end = uri
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'.' | b'-')))?;
    uri[end..].strip_prefix(b"://")
}

/// `path` when it is already in normal form.
fn normal_form(path: &[u8]) -> Result<String, TargetError> {
    match normalize_path(path) {
        Ok(std::borrow::Cow::Borrowed(p)) => Ok(p.to_owned()),
        Ok(std::borrow::Cow::Owned(_)) => Err(TargetError::NotNormal),
        Err(e) => Err(TargetError::BadPath(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn trusted(
        pairs: &[(&'static str, &str)],
        family: ForwardAuthHeaders,
    ) -> Result<OriginalRequest, TargetError> {
        original_request(&headers(pairs), &Method::GET, b"/oauth/auth", true, family)
    }

    fn path(pairs: &[(&'static str, &str)]) -> Result<String, TargetError> {
        trusted(pairs, ForwardAuthHeaders::XForwarded).map(|r| r.path)
    }

    #[test]
    fn recognizes_the_check_path_and_appended_paths() {
        assert!(is_forward_auth_path("/oauth/auth"));
        assert!(is_forward_auth_path("/oauth/auth/api/x"));
        assert!(!is_forward_auth_path("/oauth/authx"));
        assert!(!is_forward_auth_path("/oauth"));
    }

    #[test]
    fn a_scheme_anywhere_but_the_start_is_not_an_absolute_uri() {
        // The bypass: the query named a URL, and its path was decided instead.
        assert_eq!(
            path(&[("x-forwarded-uri", "/admin/users?x=http://h/public/")]),
            Ok("/admin/users".into())
        );
        assert_eq!(
            path(&[("x-forwarded-uri", "/admin/http:/h/public/")]),
            Ok("/admin/http:/h/public/".into())
        );
        assert_eq!(
            path(&[("x-forwarded-uri", "/admin/x://h/public/")]),
            Err(TargetError::NotNormal),
            "a path, whose '//' is not normal form"
        );
        assert_eq!(
            path(&[(
                "x-forwarded-uri",
                "http://h/admin/users?rd=https://h/public"
            )]),
            Ok("/admin/users".into())
        );
        assert_eq!(
            path(&[("x-forwarded-uri", "HTTPS://h:8443")]),
            Ok("/".into())
        );
        assert_eq!(
            path(&[("x-forwarded-uri", "https://h?q=/x")]),
            Ok("/".into())
        );
        assert_eq!(
            path(&[("x-forwarded-uri", "a+b.c-d://h/p")]),
            Ok("/p".into())
        );
    }

    #[test]
    fn a_value_that_is_neither_a_uri_nor_a_path_is_refused() {
        for v in [
            "admin/users",
            "1http://h/public",
            "://h/public",
            "",
            "?x=/public",
        ] {
            assert_eq!(
                path(&[("x-forwarded-uri", v)]),
                Err(TargetError::NotAPath),
                "{v:?}"
            );
        }
    }

    #[test]
    fn a_path_not_in_normal_form_is_refused() {
        for v in [
            "/admin//../public/x",
            "/public/../admin",
            "/public/./x",
            "//admin",
            "/admin//x",
            "/%61dmin",
            "/a/%2e%2e/admin",
            "/a%3a",
            "http://h/public/../admin",
        ] {
            assert_eq!(
                path(&[("x-forwarded-uri", v)]),
                Err(TargetError::NotNormal),
                "{v:?}"
            );
        }
        for (v, e) in [
            ("/public/..%2fadmin", PathError::EncodedSlash),
            ("/public/%5c..", PathError::Backslash),
            ("/public;x/../admin", PathError::PathParameter),
        ] {
            assert_eq!(
                path(&[("x-forwarded-uri", v)]),
                Err(TargetError::BadPath(e)),
                "{v:?}"
            );
        }
        // The query is not part of the path: anything goes there.
        assert_eq!(
            path(&[("x-forwarded-uri", "/a?b=../..//%2F;")]),
            Ok("/a".into())
        );
        assert_eq!(path(&[("x-forwarded-uri", "/a%20b")]), Ok("/a%20b".into()));
    }

    #[test]
    fn only_the_configured_family_is_believed() {
        let both = [
            ("x-forwarded-method", "POST"),
            ("x-forwarded-uri", "/public/x"),
            ("x-original-method", "DELETE"),
            ("x-original-url", "/admin/y"),
        ];
        assert_eq!(
            trusted(&both, ForwardAuthHeaders::XForwarded),
            Ok(OriginalRequest {
                method: Method::POST,
                path: "/public/x".into()
            })
        );
        assert_eq!(
            trusted(&both, ForwardAuthHeaders::XOriginal),
            Ok(OriginalRequest {
                method: Method::DELETE,
                path: "/admin/y".into()
            })
        );
        // Behind ingress-nginx (x-original), a client's own X-Forwarded-Uri passed through
        // picks nothing.
        let spoofed = [
            ("x-forwarded-uri", "/public/x"),
            ("x-original-url", "http://h/admin/y"),
        ];
        assert_eq!(
            trusted(&spoofed, ForwardAuthHeaders::XOriginal).map(|r| r.path),
            Ok("/admin/y".into())
        );
        assert_eq!(original_host_header(ForwardAuthHeaders::XOriginal), None);
        assert_eq!(
            original_host_header(ForwardAuthHeaders::XForwarded),
            Some("x-forwarded-host")
        );
    }

    #[test]
    fn without_a_uri_header_the_appended_path_or_the_root_is_decided() {
        let h = headers(&[]);
        let family = ForwardAuthHeaders::XForwarded;
        let appended = original_request(&h, &Method::GET, b"/oauth/auth/api/x", true, family);
        assert_eq!(appended.map(|r| r.path), Ok("/api/x".into()));
        let bare = original_request(&h, &Method::GET, b"/oauth/auth", true, family);
        assert_eq!(bare.map(|r| r.path), Ok("/".into()));
        for odd in [
            &b"/oauth/auth/a/../b"[..],
            b"/oauth/auth//admin",
            b"/oauth//auth/admin",
        ] {
            let r = original_request(&h, &Method::GET, odd, true, family);
            assert_eq!(r, Err(TargetError::NotNormal), "{odd:?}");
            let r = original_request(&h, &Method::GET, odd, false, family);
            assert_eq!(r, Err(TargetError::NotNormal), "{odd:?}");
        }
    }

    #[test]
    fn an_untrusted_peer_is_decided_as_the_check_itself() {
        let h = headers(&[
            ("x-forwarded-uri", "/public/x"),
            ("x-forwarded-method", "PUT"),
        ]);
        let family = ForwardAuthHeaders::XForwarded;
        assert_eq!(
            original_request(&h, &Method::GET, b"/oauth/auth", false, family),
            Ok(OriginalRequest {
                method: Method::GET,
                path: "/oauth/auth".into()
            })
        );
    }
}
