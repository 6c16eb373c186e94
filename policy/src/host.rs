//! Host (virtual host / tenant) lookup by the `Host` header.
//!
//! A [`HostTable`] holds exact host names and `*.suffix` wildcards. A lookup lowercases the
//! header into a stack buffer, so it never allocates, costs one hash probe for the exact map and
//! at most one probe per `.` for the wildcards (longest suffix first), whatever the table size.

use std::collections::HashMap;
use std::fmt;
use std::net::Ipv6Addr;

/// Longest host name [`HostTable::lookup`] accepts (DNS names are at most 253 bytes; an IPv6
/// literal is shorter). Longer headers never match.
pub const MAX_HOST_LEN: usize = 255;

type Map<V> = HashMap<Box<str>, V, ahash::RandomState>;

/// Why a host pattern was refused while building a [`HostTable`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostError {
    /// The same pattern (compared after lowercasing and trailing-dot removal) was given twice.
    Duplicate(String),
    /// The pattern is not a host name, an IP literal or `*.suffix`.
    Invalid(String),
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::Duplicate(p) => write!(f, "duplicate host pattern `{p}`"),
            HostError::Invalid(p) => write!(
                f,
                "invalid host pattern `{p}` (expected a host name, an IP address or `*.suffix`)"
            ),
        }
    }
}

impl std::error::Error for HostError {}

/// An immutable map from host patterns to values.
///
/// Patterns:
/// - an exact name (`api.example.com`), an IPv4 address (`10.0.0.1`) or an IPv6 address, with
///   or without brackets (`[::1]` and `::1` are the same pattern);
/// - `*.suffix` (`*.example.com`), which matches any name ending in `.suffix` at any depth
///   (`a.example.com`, `a.b.example.com`) but not `suffix` itself.
///
/// Patterns are case-insensitive and a trailing dot is ignored. An exact match beats every
/// wildcard, and among wildcards the longest suffix wins.
#[derive(Debug, Clone)]
pub struct HostTable<T> {
    exact: Map<T>,
    /// IPv6 literals, keyed by address so that every spelling of one address matches.
    ipv6: HashMap<Ipv6Addr, T, ahash::RandomState>,
    /// Keyed by the suffix without `*.`.
    wildcard: Map<T>,
    /// Shortest and longest wildcard suffix, to skip probes that cannot hit.
    min_suffix: usize,
    max_suffix: usize,
}

impl<T> HostTable<T> {
    /// Starts an empty builder.
    pub fn builder() -> HostTableBuilder<T> {
        HostTableBuilder {
            exact: Map::default(),
            ipv6: HashMap::default(),
            wildcard: Map::default(),
        }
    }

    /// Builds a table from `(pattern, value)` pairs.
    ///
    /// # Errors
    ///
    /// [`HostError::Invalid`] or [`HostError::Duplicate`] for the first bad pattern.
    pub fn new<I, S>(pairs: I) -> Result<Self, HostError>
    where
        I: IntoIterator<Item = (S, T)>,
        S: AsRef<str>,
    {
        let mut b = Self::builder();
        for (pattern, value) in pairs {
            b.insert(pattern.as_ref(), value)?;
        }
        Ok(b.build())
    }

    /// Number of patterns in the table.
    pub fn len(&self) -> usize {
        self.exact.len() + self.ipv6.len() + self.wildcard.len()
    }

    /// Whether the table has no pattern.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Finds the value for a `Host` header value (or `:authority`).
    ///
    /// Accepts `name`, `name:port`, `IPv4`, `IPv4:port`, `[IPv6]` and `[IPv6]:port`; the port is
    /// ignored, as are a trailing dot and letter case. An IPv6 literal matches a pattern for the
    /// same address however either is spelled (`[::1]`, `[0:0::1]`); an unbracketed IPv6
    /// address is malformed in a `Host` header and never matches. Returns `None` for an empty, malformed or over-long ([`MAX_HOST_LEN`]) host and
    /// for a host no pattern matches. Never allocates.
    #[must_use]
    pub fn lookup(&self, host_header: &str) -> Option<&T> {
        let name = match split_host(host_header)? {
            SplitHost::Name(name) => name,
            SplitHost::Ipv6(addr) => return self.ipv6.get(&addr.parse::<Ipv6Addr>().ok()?),
        };
        let mut buf = [0u8; MAX_HOST_LEN];
        let host = canonical_name(name, &mut buf)?;
        if let Some(v) = self.exact.get(host) {
            return Some(v);
        }
        if self.wildcard.is_empty() {
            return None;
        }
        // Each `.` starts a candidate suffix; the leftmost gives the longest, which wins.
        for (i, b) in host.bytes().enumerate() {
            if b != b'.' {
                continue;
            }
            let suffix = &host[i + 1..];
            if suffix.len() > self.max_suffix {
                continue;
            }
            if suffix.len() < self.min_suffix {
                break;
            }
            if let Some(v) = self.wildcard.get(suffix) {
                return Some(v);
            }
        }
        None
    }
}

/// Collects patterns for a [`HostTable`].
#[derive(Debug)]
pub struct HostTableBuilder<T> {
    exact: Map<T>,
    ipv6: HashMap<Ipv6Addr, T, ahash::RandomState>,
    wildcard: Map<T>,
}

impl<T> HostTableBuilder<T> {
    /// Adds a pattern (see [`HostTable`] for the syntax).
    ///
    /// # Errors
    ///
    /// [`HostError::Invalid`] if the pattern is not valid, [`HostError::Duplicate`] if it was
    /// already added; the builder is unchanged then.
    pub fn insert(&mut self, pattern: &str, value: T) -> Result<(), HostError> {
        let invalid = || HostError::Invalid(pattern.to_owned());
        let duplicate = || HostError::Duplicate(pattern.to_owned());
        let (map, key) = match pattern.strip_prefix("*.") {
            Some(suffix) => match canonical_pattern(suffix) {
                Some(PatternKey::Name(key)) => (&mut self.wildcard, key),
                _ => return Err(invalid()),
            },
            None => match canonical_pattern(pattern).ok_or_else(invalid)? {
                PatternKey::Name(key) => (&mut self.exact, key),
                PatternKey::Ipv6(addr) => {
                    if self.ipv6.contains_key(&addr) {
                        return Err(duplicate());
                    }
                    self.ipv6.insert(addr, value);
                    return Ok(());
                }
            },
        };
        if map.contains_key(key.as_str()) {
            return Err(duplicate());
        }
        map.insert(key.into_boxed_str(), value);
        Ok(())
    }

    /// Freezes the table.
    pub fn build(self) -> HostTable<T> {
        let min_suffix = self.wildcard.keys().map(|k| k.len()).min().unwrap_or(0);
        let max_suffix = self.wildcard.keys().map(|k| k.len()).max().unwrap_or(0);
        HostTable {
            exact: self.exact,
            ipv6: self.ipv6,
            wildcard: self.wildcard,
            min_suffix,
            max_suffix,
        }
    }
}

/// Where a pattern goes and under which key.
enum PatternKey {
    Name(String),
    Ipv6(Ipv6Addr),
}

/// The lookup key of an exact pattern (a wildcard's suffix included), or `None` if it is not a
/// valid host.
fn canonical_pattern(pattern: &str) -> Option<PatternKey> {
    // A pattern is written without a port; refuse one rather than silently ignoring it.
    let v6 = match pattern.strip_prefix('[') {
        Some(rest) => Some(rest.strip_suffix(']')?),
        None if pattern.contains(':') => Some(pattern),
        None => None,
    };
    if let Some(v6) = v6 {
        return v6.parse().ok().map(PatternKey::Ipv6);
    }
    let mut buf = [0u8; MAX_HOST_LEN];
    canonical_name(pattern, &mut buf).map(|s| PatternKey::Name(s.to_owned()))
}

/// Lowercases a host name (minus a trailing dot) into `buf` and returns it, or `None` if it is
/// not a plausible host name or IPv4 address.
fn canonical_name<'b>(name: &str, buf: &'b mut [u8; MAX_HOST_LEN]) -> Option<&'b str> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > MAX_HOST_LEN {
        return None;
    }
    let mut prev = b'.';
    for (dst, &b) in buf.iter_mut().zip(name.as_bytes()) {
        // Letters, digits, `-` and `_` (seen in real names); no empty label.
        match b {
            b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => *dst = b,
            b'A'..=b'Z' => *dst = b.to_ascii_lowercase(),
            b'.' if prev != b'.' => *dst = b,
            _ => return None,
        }
        prev = b;
    }
    std::str::from_utf8(&buf[..name.len()]).ok()
}

/// The host a request names (RFC 9112 3.2.2): an absolute-form target's authority, else the
/// `Host` header; `None` when neither is there or the header is not text. The tenant, the
/// HTTPS redirect and the login's redirect checks all read this one answer.
#[must_use]
pub fn request_host<'a>(
    authority: Option<&'a str>,
    host_header: Option<&'a http::HeaderValue>,
) -> Option<&'a str> {
    authority.or_else(|| host_header.and_then(|h| h.to_str().ok()))
}

/// A host as a client sent it (`name:port`, `[v6]:port`) without its port, split by the same
/// rule as the host table's lookup (a host whose port part is malformed is returned whole);
/// used to build URLs on the same host, never to decide which tenant it is.
#[must_use]
pub fn without_port(host: &str) -> &str {
    match split_host(host) {
        Some(SplitHost::Name(name)) => name,
        // `[` + the address + `]`.
        Some(SplitHost::Ipv6(addr)) => &host[..addr.len() + 2],
        None => host,
    }
}

/// A `Host` header without its port.
enum SplitHost<'a> {
    /// A name or IPv4 address, not yet validated.
    Name(&'a str),
    /// The inside of `[...]`, not yet validated.
    Ipv6(&'a str),
}

/// Splits the port off a `Host` header, or `None` if the port or brackets are malformed.
fn split_host(header: &str) -> Option<SplitHost<'_>> {
    if let Some(rest) = header.strip_prefix('[') {
        let (addr, after) = rest.split_once(']')?;
        if !after.is_empty() && !is_port(after.strip_prefix(':')?) {
            return None;
        }
        return Some(SplitHost::Ipv6(addr));
    }
    match header.split_once(':') {
        Some((name, port)) if is_port(port) => Some(SplitHost::Name(name)),
        Some(_) => None,
        None => Some(SplitHost::Name(header)),
    }
}

/// An optional (possibly empty, as RFC 3986 allows) decimal port of at most 5 digits.
fn is_port(s: &str) -> bool {
    s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> HostTable<&'static str> {
        HostTable::new([
            ("api.example.com", "api"),
            ("*.example.com", "star-example"),
            ("*.eu.example.com", "star-eu"),
            ("EXACT.eu.example.com.", "exact-eu"),
            ("*.deep.a.b.example.com", "star-deep"),
            ("10.0.0.1", "v4"),
            ("[::1]", "v6-loopback"),
            ("2001:DB8::1", "v6-doc"),
            ("localhost", "localhost"),
        ])
        .expect("valid table")
    }

    #[test]
    fn the_authority_of_an_absolute_target_wins_over_host() {
        let host = http::HeaderValue::from_static("a.localhost");
        assert_eq!(
            request_host(Some("b.localhost:8080"), Some(&host)),
            Some("b.localhost:8080")
        );
        assert_eq!(request_host(None, Some(&host)), Some("a.localhost"));
        assert_eq!(request_host(None, None), None);
        let binary = http::HeaderValue::from_bytes(b"caf\xe9").unwrap();
        assert_eq!(request_host(None, Some(&binary)), None);
    }

    #[test]
    fn without_port_keeps_names_and_brackets() {
        assert_eq!(without_port("demo.localhost:8080"), "demo.localhost");
        assert_eq!(without_port("demo.localhost"), "demo.localhost");
        assert_eq!(without_port("[::1]:8080"), "[::1]");
        assert_eq!(without_port("[::1]"), "[::1]");
    }

    #[test]
    fn exact_and_case() {
        let t = table();
        assert_eq!(t.lookup("api.example.com"), Some(&"api"));
        assert_eq!(t.lookup("API.Example.COM"), Some(&"api"));
        assert_eq!(t.lookup("exact.EU.example.com"), Some(&"exact-eu"));
        assert_eq!(t.lookup("localhost"), Some(&"localhost"));
        assert_eq!(t.len(), 9);
    }

    #[test]
    fn port_and_trailing_dot() {
        let t = table();
        assert_eq!(t.lookup("api.example.com:8080"), Some(&"api"));
        assert_eq!(t.lookup("api.example.com."), Some(&"api"));
        assert_eq!(t.lookup("api.example.com.:443"), Some(&"api"));
        assert_eq!(t.lookup("api.example.com:"), Some(&"api"));
        assert_eq!(t.lookup("10.0.0.1:80"), Some(&"v4"));
        assert_eq!(t.lookup("api.example.com:80x"), None);
        assert_eq!(t.lookup("api.example.com:123456"), None);
        assert_eq!(t.lookup("api.example.com:80:80"), None);
        assert_eq!(t.lookup("api.example.com.."), None);
    }

    #[test]
    fn ipv6() {
        let t = table();
        assert_eq!(t.lookup("[::1]"), Some(&"v6-loopback"));
        assert_eq!(t.lookup("[::1]:8080"), Some(&"v6-loopback"));
        assert_eq!(t.lookup("[2001:db8::1]:443"), Some(&"v6-doc"));
        assert_eq!(t.lookup("[2001:DB8::1]"), Some(&"v6-doc"));
        assert_eq!(t.lookup("[0:0::1]"), Some(&"v6-loopback"));
        assert_eq!(t.lookup("[2001:0db8:0:0:0:0:0:1]"), Some(&"v6-doc"));
        assert_eq!(t.lookup("[::2]"), None);
        // Unbracketed IPv6 in a Host header is malformed (the colons are ambiguous with a port).
        assert_eq!(t.lookup("::1"), None);
        assert_eq!(t.lookup("[::1"), None);
        assert_eq!(t.lookup("[::1]x"), None);
        assert_eq!(t.lookup("[::1]:x"), None);
        assert_eq!(t.lookup("[]"), None);
        assert_eq!(t.lookup("[zz::1]"), None);
    }

    #[test]
    fn wildcards() {
        let t = table();
        assert_eq!(t.lookup("a.example.com"), Some(&"star-example"));
        assert_eq!(t.lookup("a.b.c.example.com"), Some(&"star-example"));
        assert_eq!(t.lookup("example.com"), None);
        assert_eq!(t.lookup("xexample.com"), None);
        assert_eq!(t.lookup("a.eu.example.com"), Some(&"star-eu"));
        assert_eq!(t.lookup("a.b.eu.example.com"), Some(&"star-eu"));
        // `*.example.com` covers `eu.example.com` itself; `*.eu.example.com` does not.
        assert_eq!(t.lookup("eu.example.com"), Some(&"star-example"));
        assert_eq!(t.lookup("x.deep.a.b.example.com"), Some(&"star-deep"));
        assert_eq!(t.lookup("deep.a.b.example.com"), Some(&"star-example"));
        assert_eq!(t.lookup("A.EU.Example.Com:8443"), Some(&"star-eu"));
        assert_eq!(t.lookup("a.example.org"), None);
    }

    #[test]
    fn garbage_is_none() {
        let t = table();
        for bad in [
            "",
            ":",
            ":80",
            ".",
            "..",
            ".example.com",
            "a..example.com",
            "a b.example.com",
            "a/b.example.com",
            "exämple.com",
            "a.example.com\0",
            "*.example.com",
            "user@api.example.com",
        ] {
            assert_eq!(t.lookup(bad), None, "{bad:?}");
        }
        let long = format!("{}.example.com", "a".repeat(300));
        assert_eq!(t.lookup(&long), None);
        let max = format!("{}.example.com", "a".repeat(MAX_HOST_LEN - 12));
        assert_eq!(max.len(), MAX_HOST_LEN);
        assert_eq!(t.lookup(&max), Some(&"star-example"));
    }

    #[test]
    fn builder_errors() {
        let dup = HostTable::new([("a.example.com", 1), ("A.Example.com.", 2)]);
        assert_eq!(
            dup.unwrap_err(),
            HostError::Duplicate("A.Example.com.".to_owned())
        );
        let dup = HostTable::new([("*.example.com", 1), ("*.EXAMPLE.com", 2)]);
        assert!(matches!(dup, Err(HostError::Duplicate(_))));
        let dup = HostTable::new([("[::1]", 1), ("::1", 2)]);
        assert!(matches!(dup, Err(HostError::Duplicate(_))));
        // A wildcard and the exact name of its suffix are different patterns.
        assert!(HostTable::new([("*.example.com", 1), ("example.com", 2)]).is_ok());
        for bad in [
            "",
            "*",
            "*.",
            "*.[::1]",
            "[::1",
            "::1]",
            "[::zz]",
            "a.*.com",
            "*example.com",
            "**.a.com",
            "a.com:80",
            "[::1]:80",
            "a b",
            "[a.com]",
            ".a.com",
        ] {
            assert_eq!(
                HostTable::new([(bad, 1)]).unwrap_err(),
                HostError::Invalid(bad.to_owned()),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn many_hosts() {
        let pairs: Vec<(String, usize)> = (0..10_000)
            .map(|i| {
                if i % 2 == 0 {
                    (format!("host{i}.example.com"), i)
                } else {
                    (format!("*.t{i}.example.com"), i)
                }
            })
            .collect();
        let t = HostTable::new(pairs).expect("valid");
        assert_eq!(t.lookup("host42.example.com"), Some(&42));
        assert_eq!(t.lookup("x.y.t43.example.com"), Some(&43));
        assert_eq!(t.lookup("t43.example.com"), None);
        assert!(t.lookup("host43.example.com").is_none());
        assert!(HostTable::<u8>::new(Vec::<(&str, u8)>::new())
            .expect("empty")
            .is_empty());
    }
}
