//! The bounded verified-token cache.
//!
//! Keyed by a 128-bit SipHash-1-3 of the raw token under a random per-cache key, never by the
//! token itself: the map holds no bearer credential, and an attacker who does not know the key
//! cannot aim collisions at it (a chance collision is ~2^-64 even at billions of entries).

use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use siphasher::sip128::{Hasher128, SipHasher13};

use crate::claims::Claims;

/// Default number of cached tokens per provider.
pub const DEFAULT_CACHE_CAPACITY: usize = 100_000;

/// A full cache sweeps expired entries at most this often (seconds); in between, a miss on a
/// full cache simply is not cached, so a flood of distinct tokens cannot make every miss scan
/// the whole map.
const SWEEP_EVERY_SECS: u64 = 1;

struct Entry<V> {
    claims: V,
    /// Served while `now < valid_until` (the token's `exp`, or earlier with max-token-age).
    valid_until: u64,
}

/// The map key is already a keyed hash, so hashing it again would only cost time.
#[derive(Default)]
pub(crate) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u128(&mut self, n: u128) {
        // Mix both halves: hashbrown uses the top bits for tags, dashmap picks shards from them.
        self.0 = (n as u64) ^ ((n >> 64) as u64);
    }
}

/// A bounded map from token hash to verified claims (or, for the introspection negative cache,
/// to the error a token was refused with).
pub(crate) struct TokenCache<V: Clone = Arc<Claims>> {
    map: DashMap<u128, Entry<V>, BuildHasherDefault<PassThrough>>,
    /// Entries in `map`; reserved before inserting so the bound holds under concurrency.
    len: AtomicUsize,
    capacity: usize,
    k0: u64,
    k1: u64,
    last_sweep: AtomicU64,
}

impl<V: Clone> TokenCache<V> {
    pub(crate) fn new(capacity: usize) -> TokenCache<V> {
        TokenCache {
            map: DashMap::with_hasher(BuildHasherDefault::default()),
            len: AtomicUsize::new(0),
            capacity,
            k0: rand::random(),
            k1: rand::random(),
            last_sweep: AtomicU64::new(0),
        }
    }

    pub(crate) fn key(&self, token: &str) -> u128 {
        let mut h = SipHasher13::new_with_keys(self.k0, self.k1);
        h.write(token.as_bytes());
        h.finish128().as_u128()
    }

    /// The cached claims for `key` if still valid at `now`; an expired entry is removed.
    pub(crate) fn get(&self, key: u128, now: u64) -> Option<V> {
        let expired = {
            let entry = self.map.get(&key)?;
            if now < entry.valid_until {
                return Some(entry.claims.clone());
            }
            true
        };
        if expired
            && self
                .map
                .remove_if(&key, |_, e| now >= e.valid_until)
                .is_some()
        {
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
        None
    }

    /// Caches `claims` until `valid_until` unless that is already past or the cache is full
    /// even after sweeping expired entries.
    pub(crate) fn insert(&self, key: u128, claims: V, valid_until: u64, now: u64) {
        if valid_until <= now || self.capacity == 0 {
            return;
        }
        if !self.reserve(now) {
            return;
        }
        let previous = self.map.insert(
            key,
            Entry {
                claims,
                valid_until,
            },
        );
        if previous.is_some() {
            // The same token was verified twice concurrently: one slot was reserved too many.
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Reserves one slot, sweeping expired entries (at most once per [`SWEEP_EVERY_SECS`]) when
    /// the cache is full.
    fn reserve(&self, now: u64) -> bool {
        if self.try_reserve() {
            return true;
        }
        let last = self.last_sweep.load(Ordering::Relaxed);
        if now < last.saturating_add(SWEEP_EVERY_SECS)
            || self
                .last_sweep
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return false;
        }
        let mut removed = 0usize;
        self.map.retain(|_, e| {
            let keep = now < e.valid_until;
            if !keep {
                removed += 1;
            }
            keep
        });
        self.len.fetch_sub(removed, Ordering::Relaxed);
        self.try_reserve()
    }

    fn try_reserve(&self) -> bool {
        self.len
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |len| {
                (len < self.capacity).then_some(len + 1)
            })
            .is_ok()
    }

    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(exp: u64) -> Arc<Claims> {
        Arc::new(Claims::from_payload(json!({ "exp": exp })))
    }

    #[test]
    fn hit_until_valid_until_then_removed() {
        let cache: TokenCache = TokenCache::new(10);
        let k = cache.key("a.b.c");
        assert_ne!(k, cache.key("a.b.d"));
        let c = claims(100);
        cache.insert(k, Arc::clone(&c), 100, 50);
        let hit = cache.get(k, 99).expect("hit before exp");
        assert!(Arc::ptr_eq(&hit, &c));
        assert!(cache.get(k, 100).is_none(), "at exp it is a miss");
        assert_eq!(cache.len(), 0, "expired entry removed");
    }

    #[test]
    fn keys_differ_between_caches() {
        let (a, b): (TokenCache, TokenCache) = (TokenCache::new(1), TokenCache::new(1));
        assert_ne!(a.key("token"), b.key("token"));
    }

    #[test]
    fn already_expired_is_not_inserted() {
        let cache: TokenCache = TokenCache::new(10);
        cache.insert(1, claims(10), 10, 10);
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn bounded_and_sweeps_expired() {
        let cache: TokenCache = TokenCache::new(3);
        cache.insert(1, claims(20), 20, 10);
        cache.insert(2, claims(20), 20, 10);
        cache.insert(3, claims(1000), 1000, 10);
        cache.insert(4, claims(1000), 1000, 10);
        assert_eq!(cache.len(), 3);
        assert!(cache.get(4, 10).is_none(), "full: not inserted");
        // Later, 1 and 2 have expired: a full cache sweeps them and takes the new entry.
        cache.insert(5, claims(1000), 1000, 30);
        assert_eq!(cache.len(), 2);
        assert!(cache.get(5, 30).is_some());
        assert!(cache.get(3, 30).is_some());
        assert_eq!(cache.map.len(), cache.len());
    }

    #[test]
    fn reinserting_the_same_key_keeps_count() {
        let cache: TokenCache = TokenCache::new(3);
        cache.insert(1, claims(20), 20, 10);
        cache.insert(1, claims(20), 20, 10);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.map.len(), 1);
    }

    #[test]
    fn zero_capacity_caches_nothing() {
        let cache: TokenCache = TokenCache::new(0);
        cache.insert(1, claims(20), 20, 10);
        assert!(cache.get(1, 10).is_none());
    }
}
