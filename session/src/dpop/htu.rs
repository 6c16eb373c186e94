//! The `htu` comparison: RFC 9449 4.3 compares the proof's `htu` with the request's URI
//! after syntax-based and scheme-based normalization (RFC 3986 6.2.2, 6.2.3), ignoring query
//! and fragment.

/// `uri` in normal form: lowercase scheme and host, no default port (80 for http, 443 for
/// https), percent-encoded unreserved characters decoded and the remaining escapes in
/// uppercase, dot segments removed, an empty path as `/`; query and fragment dropped. `None`
/// for anything that is not an absolute http(s) URI with a host, or that has a user part.
#[must_use]
pub fn normalize_htu(uri: &str) -> Option<String> {
    let uri = uri.split(['?', '#']).next().unwrap_or_default();
    let (scheme, rest) = uri.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => "80",
        "https" => "443",
        _ => return None,
    };
    let end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let authority = authority.to_ascii_lowercase();
    let authority = match authority.rsplit_once(':') {
        // `[::1]` has colons of its own: a port follows the closing bracket.
        Some((host, port)) if !port.contains(']') => {
            if !port.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            if port.is_empty() || port == default_port {
                host.to_string()
            } else {
                authority.clone()
            }
        }
        _ => authority,
    };
    if !authority
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
    {
        return None;
    }
    let path = normalize_escapes(path)?;
    let path = remove_dot_segments(&path);
    let path = if path.is_empty() {
        "/".to_string()
    } else {
        path
    };
    Some(format!("{scheme}://{authority}{path}"))
}

/// Decodes escapes of unreserved characters and uppercases the others; `None` for a `%`
/// not followed by two hex digits, or a byte that has no place in a path.
fn normalize_escapes(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let value = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
            if value.is_ascii_alphanumeric() || matches!(value, b'-' | b'.' | b'_' | b'~') {
                out.push(value as char);
            } else {
                out.push('%');
                out.push_str(&std::str::from_utf8(hex).ok()?.to_ascii_uppercase());
            }
            i += 3;
            continue;
        }
        if !b.is_ascii_graphic() {
            return None;
        }
        out.push(b as char);
        i += 1;
    }
    Some(out)
}

/// RFC 3986 5.2.4.
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            "." | ".." => {
                if *segment == ".." {
                    out.pop();
                }
                if i == last {
                    // `/a/b/..` names the directory `/a/`.
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    if out.is_empty() {
        return String::new();
    }
    let mut s = String::with_capacity(path.len());
    for segment in out {
        s.push('/');
        s.push_str(segment);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equivalent_uris_normalize_alike() {
        let want = Some("https://api.example/a/b".to_string());
        for uri in [
            "https://api.example/a/b",
            "HTTPS://API.Example/a/b",
            "https://api.example:443/a/b",
            "https://api.example/a/./b",
            "https://api.example/a/x/../b",
            "https://api.example/%61/b",
            "https://api.example/a/b?x=1",
            "https://api.example/a/b#frag",
            "https://api.example/a/b?x=1#frag",
        ] {
            assert_eq!(normalize_htu(uri), want, "{uri}");
        }
        assert_eq!(
            normalize_htu("http://h.localhost:8080").as_deref(),
            Some("http://h.localhost:8080/")
        );
        assert_eq!(normalize_htu("http://h:80/").as_deref(), Some("http://h/"));
        assert_eq!(
            normalize_htu("http://[::1]:8080/x").as_deref(),
            Some("http://[::1]:8080/x")
        );
        assert_eq!(
            normalize_htu("http://[::1]/x").as_deref(),
            Some("http://[::1]/x")
        );
        assert_eq!(
            normalize_htu("http://h/a%2fb").as_deref(),
            Some("http://h/a%2Fb"),
            "a reserved escape stays an escape, in uppercase"
        );
        assert_eq!(
            normalize_htu("http://h/a/b/..").as_deref(),
            Some("http://h/a/")
        );
    }

    #[test]
    fn different_uris_stay_different() {
        let a = normalize_htu("https://api.example/a/b");
        for uri in [
            "http://api.example/a/b",
            "https://api.example:8443/a/b",
            "https://other.example/a/b",
            "https://api.example/a/b/",
            "https://api.example/a/B",
            "https://api.example/a%2Fb",
        ] {
            assert_ne!(normalize_htu(uri), a, "{uri}");
        }
    }

    #[test]
    fn non_http_or_odd_uris_are_refused() {
        for uri in [
            "",
            "/a/b",
            "ftp://h/a",
            "https:///a",
            "https://user@h/a",
            "https://h:x/a",
            "https://h/a b",
            "https://h/%zz",
            "https://h/%4",
            "https://h\"/a",
        ] {
            assert_eq!(normalize_htu(uri), None, "{uri:?}");
        }
    }
}
