//! Syntax checks for the small languages inside config values: host names and patterns,
//! `host:port` targets, URLs, origins, HTTP tokens and header values, route uris.

use std::net::{IpAddr, Ipv6Addr};

/// An HTTP token (RFC 9110 `tchar`+): method names, header names, cookie names.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A header value without control characters (so never CR/LF).
pub(crate) fn is_header_value(s: &str) -> bool {
    s.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// A DNS name (letters, digits, `-`, `_`; labels of 1..=63; 253 in all) or an IPv4 address.
/// Expects lowercase.
pub(crate) fn is_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        })
}

/// A bracketed IPv6 literal such as `[::1]`.
fn is_bracketed_ipv6(s: &str) -> bool {
    s.strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .is_some_and(|ip| ip.parse::<Ipv6Addr>().is_ok())
}

/// A host pattern as in tenants' `hosts`: an exact name or `*.` + name; returned lowercased.
pub(crate) fn host_pattern(raw: &str) -> Result<String, String> {
    let s = raw.trim().to_ascii_lowercase();
    let problem = |why: &str| Err(format!("invalid host {raw:?}: {why}"));
    if s.is_empty() {
        return problem("empty");
    }
    if is_bracketed_ipv6(&s) {
        return Ok(s);
    }
    if s.contains(':') {
        return problem("no port allowed (a port in the Host header is ignored)");
    }
    let name = s.strip_prefix("*.").unwrap_or(&s);
    if name.contains('*') {
        return problem("a wildcard is only allowed as a leading \"*.\"");
    }
    if !is_host_name(name) {
        return problem("expected a host name such as app.example.com or *.example.com");
    }
    Ok(s)
}

/// A `host:port` target: host an IP, `[IPv6]` or DNS name; port 1..=65535.
pub(crate) fn target(s: &str) -> Result<(), String> {
    let problem = |why: &str| Err(format!("invalid target {s:?}: {why} (expected host:port)"));
    let Some((host, port)) = s.rsplit_once(':') else {
        return problem("missing port");
    };
    match port.parse::<u16>() {
        Ok(p) if p > 0 => {}
        _ => return problem("invalid port"),
    }
    if host.starts_with('[') {
        return if is_bracketed_ipv6(host) {
            Ok(())
        } else {
            problem("invalid IPv6 address")
        };
    }
    if host.contains(':') {
        return problem("an IPv6 address must be in brackets");
    }
    if host.parse::<IpAddr>().is_ok() || is_host_name(&host.to_ascii_lowercase()) {
        Ok(())
    } else {
        problem("invalid host")
    }
}

/// Splits `scheme://authority/rest`, checking the scheme is http(s) and the authority a host
/// with an optional port.
fn split_http_url(s: &str) -> Result<(&str, &str, &str), String> {
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains whitespace".to_string());
    }
    let (scheme, rest) = s
        .split_once("://")
        .ok_or_else(|| "expected an absolute http:// or https:// URL".to_string())?;
    let scheme_lc = scheme.to_ascii_lowercase();
    if scheme_lc != "http" && scheme_lc != "https" {
        return Err(format!("scheme {scheme:?} is not http or https"));
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if host_port.starts_with('[') {
        match host_port.find(']') {
            Some(i) => {
                let (h, rest) = host_port.split_at(i + 1);
                if !rest.is_empty() && !rest.starts_with(':') {
                    return Err(format!("invalid host {host_port:?}"));
                }
                (h, rest.strip_prefix(':'))
            }
            None => return Err("unterminated \"[\" in host".to_string()),
        }
    } else {
        match host_port.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host_port, None),
        }
    };
    if let Some(p) = port {
        if p.parse::<u16>().is_err() {
            return Err(format!("invalid port {p:?}"));
        }
    }
    let host_lc = host.to_ascii_lowercase();
    if !(is_host_name(&host_lc) || is_bracketed_ipv6(&host_lc)) {
        return Err(format!("invalid host {host:?}"));
    }
    Ok((scheme, authority, path))
}

/// An absolute http(s) URL.
pub(crate) fn http_url(s: &str) -> Result<(), String> {
    split_http_url(s)
        .map(|_| ())
        .map_err(|why| format!("invalid URL {s:?}: {why}"))
}

/// An RFC 8707 resource indicator as a route's `resource`: an absolute http(s) URI with no
/// query, fragment or user part, printable ASCII without `"` or `\` (it is quoted in
/// `WWW-Authenticate` and compared byte for byte with a token's `aud`).
pub(crate) fn resource_uri(s: &str) -> Result<(), String> {
    let (_, authority, path) =
        split_http_url(s).map_err(|why| format!("invalid resource {s:?}: {why}"))?;
    if authority.contains('@') || path.contains(['?', '#']) {
        return Err(format!(
            "invalid resource {s:?}: must not have a user part, a query or a fragment (RFC 8707)"
        ));
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    {
        return Err(format!(
            "invalid resource {s:?}: only printable ASCII without '\"' or '\\'"
        ));
    }
    Ok(())
}

/// An RFC 6749 scope token (also the shape of an `acr` value): one or more of `!`, `#`-`[`,
/// `]`-`~` (no space, `"` or `\`).
pub(crate) fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == b'!' || (b'#'..=b'[').contains(&b) || (b']'..=b'~').contains(&b))
}

/// A CORS origin: `*`, or `scheme://host[:port]` without a path; returned lowercased.
pub(crate) fn origin(s: &str) -> Result<String, String> {
    if s == "*" {
        return Ok(s.to_string());
    }
    let lc = s.to_ascii_lowercase();
    match split_http_url(&lc) {
        Ok((_, authority, "")) if !authority.contains('@') => Ok(lc),
        Ok(_) => Err(format!(
            "invalid origin {s:?}: expected scheme://host[:port] with no path, user or trailing slash"
        )),
        Err(why) => Err(format!("invalid origin {s:?}: {why}")),
    }
}

/// A route uri: starts with `/`, optionally ends with `/*`, no other `*`, already normalized.
pub(crate) fn route_uri(uri: &str) -> Result<(), String> {
    let problem = |why: &str| {
        Err(format!(
            "invalid uri {uri:?}: {why} (expected a normalized path such as /api/v1/users or a prefix such as /api/*)"
        ))
    };
    if !uri.starts_with('/') {
        return problem("must start with \"/\"");
    }
    let path = uri.strip_suffix("/*").map_or(uri, |p| p);
    if path.contains('*') {
        return problem("\"*\" is only allowed as a final \"/*\"");
    }
    if path.contains("//") {
        return problem("contains \"//\"");
    }
    if let Some(c) = path
        .chars()
        .find(|c| matches!(c, '%' | '\\' | ';' | '?' | '#') || c.is_whitespace() || c.is_control())
    {
        return problem(&format!("contains {c:?}"));
    }
    if path.split('/').any(|seg| seg == "." || seg == "..") {
        return problem("contains a \".\" or \"..\" segment");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(host_pattern("Demo.LocalHost").unwrap(), "demo.localhost");
        assert_eq!(
            host_pattern("*.demo.localhost").unwrap(),
            "*.demo.localhost"
        );
        assert_eq!(host_pattern("127.0.0.1").unwrap(), "127.0.0.1");
        assert_eq!(host_pattern("[::1]").unwrap(), "[::1]");
        for bad in [
            "",
            "demo:8080",
            "a.*.b",
            "*",
            "*.",
            "-a.b",
            "a..b",
            "a b",
            "*x.b",
        ] {
            assert!(host_pattern(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn targets() {
        for ok in ["127.0.0.1:80", "app:8080", "[::1]:443", "App.Example.com:1"] {
            assert!(target(ok).is_ok(), "{ok}");
        }
        for bad in [
            "app",
            "app:",
            "app:0",
            "app:99999",
            "::1:80",
            "[::1]",
            "a b:80",
        ] {
            assert!(target(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_and_origins() {
        assert!(http_url("http://demo.localhost:8080/oauth/callback").is_ok());
        assert!(http_url("https://[::1]/x?y").is_ok());
        assert!(http_url("ftp://x/").is_err());
        assert!(http_url("demo.localhost/x").is_err());
        assert!(http_url("http://:80/").is_err());
        assert_eq!(
            origin("https://App.demo.localhost").unwrap(),
            "https://app.demo.localhost"
        );
        assert!(origin("http://localhost:3000").is_ok());
        assert!(origin("*").is_ok());
        assert!(origin("https://a.b/").is_err());
        assert!(origin("a.b").is_err());
    }

    #[test]
    fn uris() {
        for ok in ["/", "/*", "/health", "/api/v1/*", "/api/", "/a-b_c~d.e"] {
            assert!(route_uri(ok).is_ok(), "{ok}");
        }
        for bad in [
            "api", "/a/*/b", "/a*", "/a//b", "/a/./b", "/a/..", "/a%2f", "/a\\b", "/a;b", "/a b",
            "/a?x", "/**",
        ] {
            assert!(route_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tokens_and_values() {
        assert!(is_token("X-Request-ID"));
        assert!(!is_token("X Request"));
        assert!(!is_token(""));
        assert!(is_header_value("max-age=31536000; includeSubDomains"));
        assert!(!is_header_value("a\r\nb"));
    }
}
