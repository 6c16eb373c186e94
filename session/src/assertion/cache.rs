//! Signed assertions kept with the claims they were made from.
//!
//! The claims of a bearer token live in the verified-token cache and those of a browser session
//! in the session cache, both bounded; keeping the assertions there bounds them too (at most
//! [`MAX_ENTRIES`] per identity) and frees them with their identity, with no map of its own to
//! grow or sweep. A hit is one lock-free `ArcSwap` load, a scan of a few entries and a
//! reference-count increment for the header value: no lock, no allocation.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use http::HeaderValue;

/// Assertions kept per identity: one per (signer, upstream, scheme, host) in use, the oldest
/// dropped beyond this.
pub const MAX_ENTRIES: usize = 4;

/// What an assertion was made for: the signer (a tenant's keys and settings), the upstream and
/// the issuer (`scheme://host`).
#[derive(Debug, Clone, Copy)]
pub struct CacheKey<'a> {
    /// The signer's process-unique id.
    pub signer: u64,
    /// The upstream's index within its tenant.
    pub upstream: usize,
    /// The client used HTTPS.
    pub secure: bool,
    /// The host the client reached, as sent (compared without regard to case).
    pub host: &'a str,
}

struct Entry {
    signer: u64,
    upstream: usize,
    secure: bool,
    host: Box<str>,
    /// Unix seconds from which the entry is no longer handed out.
    refresh_at: u64,
    value: HeaderValue,
}

impl Entry {
    fn is(&self, k: &CacheKey<'_>) -> bool {
        self.signer == k.signer
            && self.upstream == k.upstream
            && self.secure == k.secure
            && self.host.eq_ignore_ascii_case(k.host)
    }
}

/// The assertions made for one identity. Invisible to `Clone` (a clone starts empty) and to
/// `==`, like [`crate::memo::Memo`]: a cache of what was derived from the claims is never a
/// difference between claims.
#[derive(Default)]
pub struct AssertionCache(ArcSwapOption<Vec<Entry>>);

impl AssertionCache {
    /// The kept assertion for `key`, if one is kept and `now` is before its refresh time.
    #[must_use]
    pub fn get(&self, key: &CacheKey<'_>, now: u64) -> Option<HeaderValue> {
        let entries = self.0.load();
        entries
            .as_deref()?
            .iter()
            .find(|e| e.is(key) && now < e.refresh_at)
            .map(|e| e.value.clone())
    }

    /// Keeps `value` for `key` until `refresh_at`, replacing the key's previous one; entries
    /// past their refresh time at `now` go, and the oldest beyond [`MAX_ENTRIES`].
    pub fn insert(&self, key: &CacheKey<'_>, now: u64, refresh_at: u64, value: &HeaderValue) {
        self.0.rcu(|old| {
            let mut next: Vec<Entry> = Vec::with_capacity(MAX_ENTRIES);
            next.push(Entry {
                signer: key.signer,
                upstream: key.upstream,
                secure: key.secure,
                host: key.host.into(),
                refresh_at,
                value: value.clone(),
            });
            for e in old.iter().flat_map(|v| v.iter()) {
                if next.len() == MAX_ENTRIES {
                    break;
                }
                if !e.is(key) && e.refresh_at > now {
                    next.push(Entry {
                        host: e.host.clone(),
                        value: e.value.clone(),
                        ..*e
                    });
                }
            }
            Some(Arc::new(next))
        });
    }

    /// How many assertions are kept.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.load().as_deref().map_or(0, Vec::len)
    }

    /// Whether none is kept.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Clone for AssertionCache {
    fn clone(&self) -> Self {
        AssertionCache::default()
    }
}

impl PartialEq for AssertionCache {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for AssertionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AssertionCache({} kept)", self.len())
    }
}
