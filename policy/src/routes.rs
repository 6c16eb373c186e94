//! Route matching on a normalized path and a method.
//!
//! A [`RouteTable`] holds exact patterns (`/health`) and segment-prefix patterns
//! (`/api/v1/*`), each with an optional [`MethodSet`]. A lookup costs one hash probe for the
//! exact map and at most one probe per `/` of the path for the prefixes (longest first), so it
//! does not grow with the number of routes, and it allocates nothing.

use std::collections::HashMap;
use std::fmt;
use std::ops::BitOr;

use http::Method;

use crate::path::normalize_path;

/// The standard methods a [`MethodSet`] can hold, in bit order.
const METHODS: [Method; 9] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::CONNECT,
    Method::OPTIONS,
    Method::TRACE,
    Method::PATCH,
];

/// Bit index of a standard method, `None` for an extension method.
fn method_index(method: &Method) -> Option<usize> {
    // `Method` equality on standard methods compares an enum tag, so this chain is cheap.
    METHODS.iter().position(|m| m == method)
}

/// A set of standard HTTP methods (GET HEAD POST PUT DELETE CONNECT OPTIONS TRACE PATCH).
///
/// Extension methods cannot be members: a route with a method set never matches them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MethodSet(u16);

impl MethodSet {
    /// The empty set.
    pub const EMPTY: MethodSet = MethodSet(0);
    /// Every standard method.
    pub const ALL: MethodSet = MethodSet((1 << METHODS.len()) - 1);
    /// `{GET}`.
    pub const GET: MethodSet = MethodSet(1 << 0);
    /// `{HEAD}`.
    pub const HEAD: MethodSet = MethodSet(1 << 1);
    /// `{POST}`.
    pub const POST: MethodSet = MethodSet(1 << 2);
    /// `{PUT}`.
    pub const PUT: MethodSet = MethodSet(1 << 3);
    /// `{DELETE}`.
    pub const DELETE: MethodSet = MethodSet(1 << 4);
    /// `{CONNECT}`.
    pub const CONNECT: MethodSet = MethodSet(1 << 5);
    /// `{OPTIONS}`.
    pub const OPTIONS: MethodSet = MethodSet(1 << 6);
    /// `{TRACE}`.
    pub const TRACE: MethodSet = MethodSet(1 << 7);
    /// `{PATCH}`.
    pub const PATCH: MethodSet = MethodSet(1 << 8);

    /// The set holding just `method`, or `None` for an extension method.
    pub fn single(method: &Method) -> Option<MethodSet> {
        method_index(method).map(|i| MethodSet(1 << i))
    }

    /// Parses one method name (case-sensitive, as HTTP method names are), or `None` if it is
    /// not a standard method.
    pub fn parse(name: &str) -> Option<MethodSet> {
        METHODS
            .iter()
            .position(|m| m.as_str() == name)
            .map(|i| MethodSet(1 << i))
    }

    /// Whether `method` is in the set (always `false` for an extension method).
    pub fn contains(self, method: &Method) -> bool {
        method_index(method).is_some_and(|i| self.0 & (1 << i) != 0)
    }

    /// The union of two sets.
    pub const fn union(self, other: MethodSet) -> MethodSet {
        MethodSet(self.0 | other.0)
    }

    /// Whether the sets share a method.
    pub const fn intersects(self, other: MethodSet) -> bool {
        self.0 & other.0 != 0
    }

    /// Whether the set has no method.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The methods in the set, in the order GET HEAD POST PUT DELETE CONNECT OPTIONS TRACE PATCH.
    pub fn iter(self) -> impl Iterator<Item = &'static Method> {
        METHODS
            .iter()
            .enumerate()
            .filter(move |(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, m)| m)
    }
}

impl BitOr for MethodSet {
    type Output = MethodSet;

    fn bitor(self, rhs: MethodSet) -> MethodSet {
        self.union(rhs)
    }
}

impl FromIterator<MethodSet> for MethodSet {
    fn from_iter<I: IntoIterator<Item = MethodSet>>(iter: I) -> Self {
        iter.into_iter().fold(MethodSet::EMPTY, MethodSet::union)
    }
}

impl fmt::Debug for MethodSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(Method::as_str))
            .finish()
    }
}

/// Why a route was refused by [`RouteTableBuilder::insert`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// The pattern is not a normalized absolute path, optionally ending in `/*` (the message
    /// says why).
    InvalidPattern {
        /// The pattern as given.
        pattern: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The method set is `Some` but empty, so the route could never match.
    EmptyMethodSet(String),
    /// The pattern was already added with a method set that overlaps this one (two entries
    /// without a method set overlap too).
    Duplicate(String),
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteError::InvalidPattern { pattern, reason } => {
                write!(f, "invalid route pattern `{pattern}`: {reason}")
            }
            RouteError::EmptyMethodSet(p) => write!(f, "route `{p}` has an empty method list"),
            RouteError::Duplicate(p) => {
                write!(f, "route `{p}` is defined twice for the same method")
            }
        }
    }
}

impl std::error::Error for RouteError {}

/// Marks an empty slot position.
const NONE: u32 = u32::MAX;

/// The entries of one pattern: at most one per standard method plus at most one without a
/// method set, as indices into [`RouteTable::values`].
#[derive(Debug, Clone)]
struct Slot {
    by_method: [u32; METHODS.len()],
    any: u32,
}

impl Slot {
    const EMPTY: Slot = Slot {
        by_method: [NONE; METHODS.len()],
        any: NONE,
    };

    /// The winning entry for `method`: one listing it beats one without a method set.
    #[inline]
    fn pick(&self, method: Option<usize>) -> Option<u32> {
        let listed = method.map_or(NONE, |i| self.by_method[i]);
        let idx = if listed != NONE { listed } else { self.any };
        (idx != NONE).then_some(idx)
    }
}

type Map = HashMap<Box<str>, Slot, ahash::RandomState>;

/// An immutable route matcher over normalized paths.
///
/// Patterns:
/// - exact: a normalized path (`/health`, `/a/`), matching only that path;
/// - segment prefix: a normalized path ending in `/*` (`/api/*`), matching the path before
///   `/*` itself (`/api`), with a trailing slash (`/api/`) and anything below it
///   (`/api/x/y`), but not `/apix`. `/*` matches every path.
///
/// Of the entries whose pattern matches the path and whose method set admits the method (no
/// set admits every method; a set admits only its members, never an extension method), the
/// most specific wins: an exact pattern beats every prefix, a longer prefix beats a shorter
/// one, and at one pattern an entry with a method set beats one without. A method outside the
/// longest route's set therefore falls through to the next matching route.
#[derive(Debug, Clone)]
pub struct RouteTable<T> {
    exact: Map,
    /// Keyed by the pattern without `/*` (`""` for `/*`).
    prefix: Map,
    /// Bit `n` is set if some prefix key is `n` bytes long; probes of other lengths are skipped.
    prefix_lens: Box<[u64]>,
    values: Vec<T>,
}

impl<T> RouteTable<T> {
    /// Starts an empty builder.
    pub fn builder() -> RouteTableBuilder<T> {
        RouteTableBuilder {
            exact: Map::default(),
            prefix: Map::default(),
            values: Vec::new(),
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the table has no entry.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The value of the most specific entry matching `path` and `method` (see [`RouteTable`]),
    /// or `None`. `path` must already be normalized ([`normalize_path`]). Never allocates.
    #[must_use]
    pub fn lookup(&self, path: &str, method: &Method) -> Option<&T> {
        let m = method_index(method);
        let hit = self
            .exact
            .get(path)
            .and_then(|slot| slot.pick(m))
            .or_else(|| self.lookup_prefix(path, m))?;
        self.values.get(hit as usize)
    }

    fn lookup_prefix(&self, path: &str, m: Option<usize>) -> Option<u32> {
        if self.prefix.is_empty() {
            return None;
        }
        let bytes = path.as_bytes();
        // A prefix key `k` matches when the path is `k` or starts with `k/`: probe the whole
        // path, then the part before each `/`, right to left (longest first).
        let mut end = bytes.len();
        loop {
            if self.has_prefix_len(end) {
                if let Some(idx) = self.prefix.get(&path[..end]).and_then(|s| s.pick(m)) {
                    return Some(idx);
                }
            }
            if end == 0 {
                return None;
            }
            end = bytes[..end].iter().rposition(|&b| b == b'/')?;
        }
    }

    #[inline]
    fn has_prefix_len(&self, len: usize) -> bool {
        self.prefix_lens
            .get(len / 64)
            .is_some_and(|w| w & (1 << (len % 64)) != 0)
    }
}

/// Collects routes for a [`RouteTable`].
#[derive(Debug)]
pub struct RouteTableBuilder<T> {
    exact: Map,
    prefix: Map,
    values: Vec<T>,
}

impl<T> RouteTableBuilder<T> {
    /// Adds a route (see [`RouteTable`] for the pattern syntax). `methods: None` admits every
    /// method.
    ///
    /// # Errors
    ///
    /// [`RouteError::InvalidPattern`], [`RouteError::EmptyMethodSet`], or
    /// [`RouteError::Duplicate`] if the pattern already has an entry whose method set overlaps;
    /// the builder is unchanged then (as far as lookups can tell).
    pub fn insert(
        &mut self,
        pattern: &str,
        methods: Option<MethodSet>,
        value: T,
    ) -> Result<(), RouteError> {
        let (map, key) = match pattern.strip_suffix("/*") {
            Some(key) => {
                check_pattern(pattern, &pattern[..pattern.len() - 1])?;
                (&mut self.prefix, key)
            }
            None => {
                check_pattern(pattern, pattern)?;
                (&mut self.exact, pattern)
            }
        };
        let idx = u32::try_from(self.values.len())
            .ok()
            .filter(|&i| i != NONE)
            .ok_or_else(|| RouteError::InvalidPattern {
                pattern: pattern.to_owned(),
                reason: "too many routes",
            })?;
        let slot = map.entry(key.into()).or_insert(Slot::EMPTY);
        let duplicate = || RouteError::Duplicate(pattern.to_owned());
        match methods {
            None if slot.any != NONE => return Err(duplicate()),
            None => slot.any = idx,
            Some(set) if set.is_empty() => {
                return Err(RouteError::EmptyMethodSet(pattern.to_owned()))
            }
            Some(set) => {
                let bits = (0..METHODS.len()).filter(|i| set.0 & (1 << i) != 0);
                if bits.clone().any(|i| slot.by_method[i] != NONE) {
                    return Err(duplicate());
                }
                for i in bits {
                    slot.by_method[i] = idx;
                }
            }
        }
        self.values.push(value);
        Ok(())
    }

    /// Freezes the table.
    pub fn build(self) -> RouteTable<T> {
        let max = self.prefix.keys().map(|k| k.len()).max().unwrap_or(0);
        let mut prefix_lens = vec![0u64; max / 64 + 1].into_boxed_slice();
        for k in self.prefix.keys() {
            prefix_lens[k.len() / 64] |= 1 << (k.len() % 64);
        }
        let mut exact = self.exact;
        let mut prefix = self.prefix;
        // A refused insert may have left an empty slot behind; drop those.
        exact.retain(|_, s| s.any != NONE || s.by_method.iter().any(|&i| i != NONE));
        prefix.retain(|_, s| s.any != NONE || s.by_method.iter().any(|&i| i != NONE));
        RouteTable {
            exact,
            prefix,
            prefix_lens,
            values: self.values,
        }
    }
}

/// Checks that `path` (the pattern without a trailing `*`) is a normalized absolute path.
fn check_pattern(pattern: &str, path: &str) -> Result<(), RouteError> {
    let invalid = |reason| RouteError::InvalidPattern {
        pattern: pattern.to_owned(),
        reason,
    };
    if path.contains('*') {
        return Err(invalid(
            "`*` is only allowed as the last segment, after `/`",
        ));
    }
    if path.contains('?') {
        return Err(invalid("a pattern matches the path only, without `?query`"));
    }
    match normalize_path(path.as_bytes()) {
        Ok(n) if n == path => Ok(()),
        Ok(_) => Err(invalid(
            "not normalized (repeated `/`, dot segments, or escapes that decode)",
        )),
        Err(e) => Err(invalid(e.as_str())),
    }
}

#[cfg(test)]
mod tests;
