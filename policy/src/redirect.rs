//! Post-login redirect targets (`?rd=` / the login state's `return_to`): open-redirect defence.
//!
//! [`safe_redirect`] lets through only two shapes and answers `/` for everything else:
//!
//! - a **relative path on the same host**: starts with exactly one `/` (not `//`, not `/\`),
//!   e.g. `/app/page?x=1#frag`;
//! - an **absolute `http`/`https` URL** (scheme written as `http://` or `https://`, any case)
//!   whose host matches one of the allowed host patterns (exactly, or by a `*.suffix` wildcard;
//!   see [`HostTable`]) or equals the request's own host. A port is allowed; userinfo
//!   (`user@host`) is not.
//!
//! Whatever the shape, the value must be visible ASCII only (`0x21..=0x7e`: no spaces, tabs,
//! newlines, control or non-ASCII characters; browsers strip or reinterpret those, which is how
//! `/\t/evil` or `java\nscript:` tricks work), contain no backslash (browsers read `\` as `/`),
//! no percent-encoded control character (`%00`-`%1f`, `%7f`) and no encoded backslash (`%5c`),
//! and a relative path must not start with an encoded slash (`/%2f`, which some servers decode
//! into `//`). Values longer than [`MAX_REDIRECT_LEN`] are refused.
//!
//! The check is deliberately stricter than the URL grammar: a refused target only costs the user
//! a landing on `/`, while an accepted malicious one is a phishing vector. Non-ASCII paths must
//! be percent-encoded, as browsers already send them. Pure: no I/O, no allocation except the
//! returned `String`.

use crate::host::{HostError, HostTable};

/// Longest redirect target accepted, in bytes; longer ones become `/`.
pub const MAX_REDIRECT_LEN: usize = 4096;

/// Where a refused redirect target goes.
pub const FALLBACK_REDIRECT: &str = "/";

/// Returns `rd` if it is a safe post-login redirect target, else `/` (see the module docs for
/// exactly what is safe).
///
/// `request_host` is the `Host` of the request (already matched to the tenant, so one of its
/// hosts); an absolute URL to that host is accepted even when `allowed_hosts` is narrower.
/// Ports are ignored when comparing hosts, as [`HostTable::lookup`] does. `allowed_hosts` is
/// the tenant's `login.allowed-redirect-hosts` (by default its `hosts`), built once per config
/// load, e.g. with [`redirect_host_table`].
#[must_use]
pub fn safe_redirect(rd: &str, request_host: &str, allowed_hosts: &HostTable<()>) -> String {
    if is_safe(rd, request_host, allowed_hosts) {
        rd.to_owned()
    } else {
        FALLBACK_REDIRECT.to_owned()
    }
}

/// Builds the table of allowed redirect hosts from patterns (exact names, IP literals,
/// `*.suffix`); duplicates are ignored.
///
/// # Errors
///
/// [`HostError::Invalid`] for the first pattern that is not a host pattern.
pub fn redirect_host_table(patterns: &[String]) -> Result<HostTable<()>, HostError> {
    let mut builder = HostTable::builder();
    for pattern in patterns {
        match builder.insert(pattern, ()) {
            Ok(()) | Err(HostError::Duplicate(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(builder.build())
}

fn is_safe(rd: &str, request_host: &str, allowed_hosts: &HostTable<()>) -> bool {
    if rd.is_empty() || rd.len() > MAX_REDIRECT_LEN || !clean_characters(rd) {
        return false;
    }
    if let Some(rest) = rd.strip_prefix('/') {
        // `//host` is protocol-relative; `/%2f...` decodes to `//` on some servers.
        return !rest.starts_with('/') && !starts_with_ignore_case(rest, "%2f");
    }
    let after_scheme = if starts_with_ignore_case(rd, "https://") {
        &rd["https://".len()..]
    } else if starts_with_ignore_case(rd, "http://") {
        &rd["http://".len()..]
    } else {
        // Relative paths without a leading `/`, `javascript:`, `data:`, `https:host`, ...
        return false;
    };
    let authority_end = after_scheme
        .find(['/', '?', '#'])
        .unwrap_or(after_scheme.len());
    let authority = &after_scheme[..authority_end];
    // Userinfo (`user@host`, even an empty one) and percent-encoded hosts (browsers decode
    // them) are refused outright.
    if authority.is_empty() || authority.contains(['@', '%']) {
        return false;
    }
    if allowed_hosts.lookup(authority).is_some() {
        return true;
    }
    same_host(authority, request_host)
}

/// Visible ASCII, no backslash, no encoded control character or backslash.
fn clean_characters(rd: &str) -> bool {
    let bytes = rd.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if !(0x21..=0x7e).contains(&b) || b == b'\\' {
            return false;
        }
        if b == b'%' {
            let (Some(&hi), Some(&lo)) = (bytes.get(i + 1), bytes.get(i + 2)) else {
                continue;
            };
            let (Some(hi), Some(lo)) = (hex(hi), hex(lo)) else {
                continue;
            };
            let decoded = hi * 16 + lo;
            if decoded < 0x20 || decoded == 0x7f || decoded == b'\\' {
                return false;
            }
        }
    }
    true
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// Whether `authority` (from the URL) names the request's host, ports ignored.
fn same_host(authority: &str, request_host: &str) -> bool {
    let (Some(a), Some(b)) = (strip_port(authority), strip_port(request_host)) else {
        return false;
    };
    let a = a.strip_suffix('.').unwrap_or(a);
    let b = b.strip_suffix('.').unwrap_or(b);
    !a.is_empty() && a.eq_ignore_ascii_case(b)
}

/// `host[:port]` or `[v6][:port]` without the port; `None` when the port is not digits.
fn strip_port(authority: &str) -> Option<&str> {
    if authority.starts_with('[') {
        let end = authority.find(']')?;
        let after = &authority[end + 1..];
        let port_ok = after.is_empty()
            || after
                .strip_prefix(':')
                .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()));
        return port_ok.then(|| &authority[..=end]);
    }
    match authority.split_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => Some(host),
        Some(_) => None,
        None => Some(authority),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> HostTable<()> {
        redirect_host_table(&[
            "demo.localhost".to_string(),
            "*.apps.example.com".to_string(),
            "127.0.0.1".to_string(),
            "[::1]".to_string(),
            "demo.localhost".to_string(), // duplicate: ignored
        ])
        .expect("valid patterns")
    }

    const REQUEST_HOST: &str = "demo.localhost:8080";

    #[test]
    fn table_driven() {
        let t = table();
        // (rd, accepted)
        let rows: &[(&str, bool)] = &[
            // relative paths on the same host
            ("/", true),
            ("/app", true),
            ("/app/page?x=1&y=2#frag", true),
            ("/a/b/../c", true),
            ("/path%20with%20space", true),
            ("/caf%C3%A9", true),
            ("/a//b", true),
            ("/x?next=//evil.example", true),
            ("/x?u=https://evil.example", true),
            ("/foo:bar", true),
            // absolute URLs to allowed hosts
            ("http://demo.localhost/", true),
            ("https://demo.localhost", true),
            ("https://demo.localhost:8443/app?x=1", true),
            ("HTTPS://DEMO.localhost/app", true),
            ("https://demo.localhost./app", true),
            ("https://a.apps.example.com/x", true),
            ("https://a.b.apps.example.com/x", true),
            ("http://127.0.0.1:8080/", true),
            ("http://[::1]:8080/x", true),
            ("https://demo.localhost#@evil.example", true),
            ("https://demo.localhost?@evil.example", true),
            // everything else
            ("", false),
            ("//evil.example", false),
            ("//evil.example/path", false),
            ("/\\evil.example", false),
            ("/\\/evil.example", false),
            ("\\\\evil.example", false),
            ("/app\\..\\..\\evil", false),
            ("https://evil.example", false),
            ("https://evil.example/", false),
            ("https://demo.localhost.evil.example", false),
            ("https://evildemo.localhost", false),
            ("https://apps.example.com/", false),
            ("https://evilapps.example.com/", false),
            ("https://user@demo.localhost", false),
            ("https://user:pw@demo.localhost/", false),
            ("https://@demo.localhost/", false),
            ("https://demo.localhost@evil.example/", false),
            ("https://demo.localhost:443@evil.example/", false),
            ("https://demo.localhost\\@evil.example/", false),
            ("https://demo.localhost%2eevil.example/", false),
            ("https://demo%2elocalhost/", false),
            ("https://demo.localhost:port/", false),
            ("javascript:alert(1)", false),
            ("JavaScript:alert(1)", false),
            ("data:text/html,<script>alert(1)</script>", false),
            ("vbscript:msgbox", false),
            ("ftp://demo.localhost/", false),
            ("HTTPS:/\\evil.example", false),
            ("https:/\\evil.example", false),
            ("https:evil.example", false),
            ("https:/evil.example", false),
            ("https:///evil.example", false),
            ("https://", false),
            ("%2F%2Fevil.example", false),
            ("/%2F%2Fevil.example", false),
            ("/%2fevil.example", false),
            ("/%5Cevil.example", false),
            ("/%5cevil.example", false),
            ("/\t/evil.example", false),
            ("/\n/evil.example", false),
            ("/app\r\nSet-Cookie:x=1", false),
            ("/app%0d%0aSet-Cookie:x=1", false),
            ("/app%00", false),
            ("/app%1F", false),
            ("/app%7f", false),
            (" /app", false),
            ("/app page", false),
            ("/caf\u{e9}", false),
            ("https://d\u{e9}mo.localhost/", false),
            ("/\u{2215}/evil.example", false),
            ("\u{0}/app", false),
            ("app/page", false),
            ("evil.example", false),
            ("?x=1", false),
            ("#frag", false),
            ("http://[::2]/", false),
            ("http://[::1/", false),
        ];
        assert!(rows.len() >= 30);
        for &(rd, accepted) in rows {
            let want = if accepted { rd } else { "/" };
            assert_eq!(safe_redirect(rd, REQUEST_HOST, &t), want, "rd = {rd:?}");
        }
    }

    #[test]
    fn request_host_is_always_allowed() {
        let empty = redirect_host_table(&[]).expect("empty table");
        assert_eq!(
            safe_redirect(
                "https://demo.localhost:9443/x",
                "demo.localhost:8080",
                &empty
            ),
            "https://demo.localhost:9443/x"
        );
        assert_eq!(
            safe_redirect("https://DEMO.localhost./x", "demo.localhost", &empty),
            "https://DEMO.localhost./x"
        );
        assert_eq!(
            safe_redirect("http://[::1]/x", "[::1]:8080", &empty),
            "http://[::1]/x"
        );
        assert_eq!(
            safe_redirect("https://other.localhost/x", "demo.localhost", &empty),
            "/"
        );
        assert_eq!(safe_redirect("https://x/", "", &empty), "/");
    }

    #[test]
    fn long_values_are_refused() {
        let t = table();
        let long = format!("/{}", "a".repeat(MAX_REDIRECT_LEN));
        assert_eq!(safe_redirect(&long, REQUEST_HOST, &t), "/");
        let fits = format!("/{}", "a".repeat(MAX_REDIRECT_LEN - 1));
        assert_eq!(safe_redirect(&fits, REQUEST_HOST, &t), fits);
    }

    #[test]
    fn invalid_pattern_is_an_error() {
        assert!(redirect_host_table(&["not a host".to_string()]).is_err());
    }
}
