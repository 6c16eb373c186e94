//! Fuzzing normalization + route matching together (proptest): for any request path built from
//! the tokens path-bypass attacks use, normalization never panics, its output is stable, and the
//! route it selects is the route an independent reference (decode everything, then resolve dot
//! segments) selects — so a normalized path never lands on a white-listed route that the path's
//! real meaning does not belong to.

use std::borrow::Cow;

use gatehouse_policy::path::normalize_path;
use gatehouse_policy::routes::{MethodSet, RouteTable};
use http::Method;
use proptest::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Public,
    Protected,
}

const ROUTES: &[(&str, Option<&[&str]>, Access)] = &[
    ("/public/*", None, Access::Public),
    ("/health", None, Access::Public),
    ("/admin/*", None, Access::Protected),
    ("/admin/status", Some(&["GET"]), Access::Public),
    ("/*", None, Access::Protected),
];

fn table() -> RouteTable<Access> {
    let mut b = RouteTable::builder();
    for (pattern, methods, access) in ROUTES {
        let methods = methods.map(|ms| {
            ms.iter()
                .map(|m| MethodSet::single(&Method::from_bytes(m.as_bytes()).unwrap()).unwrap())
                .fold(MethodSet::EMPTY, MethodSet::union)
        });
        b.insert(pattern, methods, *access).unwrap();
    }
    b.build()
}

/// The reference: what the path means once every escape is decoded and dot segments resolved.
fn reference_meaning(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    let decoded = String::from_utf8(decoded).ok()?;
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = decoded.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    let mut trailing_slash = false;
    for (n, seg) in segments.iter().enumerate() {
        match *seg {
            "" | "." => trailing_slash = n == last,
            ".." => {
                out.pop();
                trailing_slash = n == last;
            }
            s => {
                out.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut path = format!("/{}", out.join("/"));
    if trailing_slash && path != "/" {
        path.push('/');
    }
    Some(path)
}

/// The naive route choice on the reference meaning: longest matching pattern, exact first.
fn reference_route(path: &str, method: &Method) -> Option<Access> {
    let mut best: Option<(usize, bool, bool, Access)> = None;
    for (pattern, methods, access) in ROUTES {
        if let Some(ms) = methods {
            if !ms.contains(&method.as_str()) {
                continue;
            }
        }
        let (matches, exact, len) = match pattern.strip_suffix("/*") {
            Some(prefix) => (
                path == prefix || path.starts_with(&format!("{prefix}/")) || prefix.is_empty(),
                false,
                prefix.len(),
            ),
            None => (path == *pattern, true, pattern.len()),
        };
        if !matches {
            continue;
        }
        let key = (len, exact, methods.is_some(), *access);
        if best.is_none_or(|b| (key.1, key.0, key.2) > (b.1, b.0, b.2)) {
            best = Some(key);
        }
    }
    best.map(|b| b.3)
}

fn token() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "public", "admin", "health", "status", "x", ".", "..", "%2e", "%2E%2e", "%2e%2e",
        "%61dmin", "%70ublic", "%2f", "%5c", ";", ";x=1", "", "%00", "%2", "a%20b", "%7e", "..%2f",
        "%2e.",
    ])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    #[test]
    fn normalized_paths_route_like_their_real_meaning(
        tokens in prop::collection::vec(token(), 1..8),
        trailing in any::<bool>(),
        get in any::<bool>(),
    ) {
        let mut raw = String::new();
        for t in &tokens {
            raw.push('/');
            raw.push_str(t);
        }
        if trailing {
            raw.push('/');
        }
        let method = if get { Method::GET } else { Method::POST };
        let table = table();
        match normalize_path(raw.as_bytes()) {
            Err(_) => {} // refused with 400: never routed
            Ok(p) => {
                // Stable: normalizing the output again changes nothing.
                prop_assert!(matches!(normalize_path(p.as_bytes()), Ok(Cow::Borrowed(q)) if q == p));
                let chosen = table.lookup(&p, &method).copied();
                let meaning = reference_meaning(&raw).expect("a normalized path decodes");
                let expected = reference_route(&meaning, &method);
                prop_assert_eq!(chosen, expected, "raw {} normalized {} meaning {}", raw, p, meaning);
                if chosen == Some(Access::Public) {
                    prop_assert!(
                        meaning.starts_with("/public") || meaning == "/health" || meaning == "/admin/status",
                        "public route for {} (meaning {})", raw, meaning
                    );
                }
            }
        }
    }
}

#[test]
fn the_reference_sees_through_the_classic_bypasses() {
    let table = table();
    for raw in [
        "/public/../admin/users",
        "/public/%2e%2e/admin/users",
        "/%70ublic/%2E%2e/admin",
        "//public/./../admin/",
    ] {
        let p = normalize_path(raw.as_bytes()).unwrap();
        let meaning = reference_meaning(raw).unwrap();
        assert!(meaning.starts_with("/admin"), "{raw} -> {meaning}");
        assert_eq!(
            table.lookup(&p, &Method::GET),
            Some(&Access::Protected),
            "{raw} -> {p}"
        );
    }
    for raw in [
        "/public/..%2fadmin",
        "/public;/../admin",
        "/public/%2e%2e%5cadmin",
    ] {
        assert!(normalize_path(raw.as_bytes()).is_err(), "{raw} is refused");
    }
}
