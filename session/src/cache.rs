//! The bounded verified-token cache.
//!
//! Bounded twice: in entries and in bytes (each entry's estimated footprint, see
//! [`Claims::retained_bytes`]), so a provider whose tokens are large cannot grow the cache past
//! its `token-cache-size`. Each entry remembers which signing key verified it, so a key that
//! leaves the JWKS takes its tokens out of the cache ([`TokenCache::evict_signers`]).
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

/// Default number of cached tokens per provider (the byte bound usually binds first).
pub const DEFAULT_CACHE_CAPACITY: usize = 100_000;

/// What an entry costs besides its value's own estimate: the map slot (key, entry) and the
/// table's control byte and spare capacity.
const SLOT_OVERHEAD: usize = 64;

/// A full cache sweeps expired entries at most this often (seconds); in between, a miss on a
/// full cache simply is not cached, so a flood of distinct tokens cannot make every miss scan
/// the whole map.
const SWEEP_EVERY_SECS: u64 = 1;

struct Entry<V> {
    claims: V,
    /// Served while `now < valid_until` (the token's `exp`, or earlier with max-token-age).
    valid_until: u64,
    /// Bytes counted against the byte bound for this entry.
    weight: usize,
    /// The fingerprint of the key that verified it (0: not tied to a key).
    signer: u64,
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
    /// Sum of the entries' weights; reserved like `len`.
    bytes: AtomicUsize,
    max_bytes: usize,
    k0: u64,
    k1: u64,
    last_sweep: AtomicU64,
}

impl<V: Clone> TokenCache<V> {
    /// A cache of at most `capacity` entries weighing at most `max_bytes` together.
    pub(crate) fn new(capacity: usize, max_bytes: usize) -> TokenCache<V> {
        TokenCache {
            map: DashMap::with_hasher(BuildHasherDefault::default()),
            len: AtomicUsize::new(0),
            capacity,
            bytes: AtomicUsize::new(0),
            max_bytes,
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
        if expired {
            if let Some((_, gone)) = self.map.remove_if(&key, |_, e| now >= e.valid_until) {
                self.release(1, gone.weight);
            }
        }
        None
    }

    /// Caches `claims` until `valid_until`, counting `weight` bytes (plus the slot) against the
    /// byte bound and remembering `signer` (the verifying key's fingerprint, 0 for none); not
    /// when `valid_until` is already past or the cache is full even after sweeping expired
    /// entries.
    pub(crate) fn insert(
        &self,
        key: u128,
        claims: V,
        weight: usize,
        signer: u64,
        valid_until: u64,
        now: u64,
    ) {
        if valid_until <= now || self.capacity == 0 {
            return;
        }
        let weight = weight.saturating_add(SLOT_OVERHEAD);
        if !self.reserve(weight, now) {
            return;
        }
        let previous = self.map.insert(
            key,
            Entry {
                claims,
                valid_until,
                weight,
                signer,
            },
        );
        if let Some(previous) = previous {
            // The same token was verified twice concurrently: the old entry's share goes.
            self.release(1, previous.weight);
        }
    }

    /// Removes the entry of `key`, if any.
    pub(crate) fn remove(&self, key: u128) {
        if let Some((_, gone)) = self.map.remove(&key) {
            self.release(1, gone.weight);
        }
    }

    /// Removes every entry verified by a key whose fingerprint is in `signers` (keys that left
    /// the JWKS); returns how many. Walks the whole map: runs on a key-set change, never per
    /// request.
    pub(crate) fn evict_signers(&self, signers: &[u64]) -> usize {
        if signers.is_empty() {
            return 0;
        }
        self.remove_where(|e| signers.contains(&e.signer))
    }

    fn remove_where(&self, gone: impl Fn(&Entry<V>) -> bool) -> usize {
        let (mut count, mut weight) = (0usize, 0usize);
        self.map.retain(|_, e| {
            let drop = gone(e);
            if drop {
                count += 1;
                weight += e.weight;
            }
            !drop
        });
        self.release(count, weight);
        count
    }

    fn release(&self, count: usize, weight: usize) {
        self.len.fetch_sub(count, Ordering::Relaxed);
        self.bytes.fetch_sub(weight, Ordering::Relaxed);
    }

    /// Reserves one slot of `weight` bytes, sweeping expired entries (at most once per
    /// [`SWEEP_EVERY_SECS`]) when the cache is full.
    fn reserve(&self, weight: usize, now: u64) -> bool {
        if self.try_reserve(weight) {
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
        self.remove_where(|e| now >= e.valid_until);
        self.try_reserve(weight)
    }

    fn try_reserve(&self, weight: usize) -> bool {
        let counted = self
            .len
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |len| {
                (len < self.capacity).then_some(len + 1)
            })
            .is_ok();
        if !counted {
            return false;
        }
        let weighed = self
            .bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bytes| {
                bytes
                    .checked_add(weight)
                    .filter(|total| *total <= self.max_bytes)
            })
            .is_ok();
        if !weighed {
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
        weighed
    }

    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Bytes counted against the byte bound.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
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
        let cache: TokenCache = TokenCache::new(10, usize::MAX);
        let k = cache.key("a.b.c");
        assert_ne!(k, cache.key("a.b.d"));
        let c = claims(100);
        cache.insert(k, Arc::clone(&c), 0, 0, 100, 50);
        let hit = cache.get(k, 99).expect("hit before exp");
        assert!(Arc::ptr_eq(&hit, &c));
        assert!(cache.get(k, 100).is_none(), "at exp it is a miss");
        assert_eq!(cache.len(), 0, "expired entry removed");
    }

    #[test]
    fn keys_differ_between_caches() {
        let (a, b): (TokenCache, TokenCache) = (
            TokenCache::new(1, usize::MAX),
            TokenCache::new(1, usize::MAX),
        );
        assert_ne!(a.key("token"), b.key("token"));
    }

    #[test]
    fn already_expired_is_not_inserted() {
        let cache: TokenCache = TokenCache::new(10, usize::MAX);
        cache.insert(1, claims(10), 0, 0, 10, 10);
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn bounded_and_sweeps_expired() {
        let cache: TokenCache = TokenCache::new(3, usize::MAX);
        cache.insert(1, claims(20), 0, 0, 20, 10);
        cache.insert(2, claims(20), 0, 0, 20, 10);
        cache.insert(3, claims(1000), 0, 0, 1000, 10);
        cache.insert(4, claims(1000), 0, 0, 1000, 10);
        assert_eq!(cache.len(), 3);
        assert!(cache.get(4, 10).is_none(), "full: not inserted");
        // Later, 1 and 2 have expired: a full cache sweeps them and takes the new entry.
        cache.insert(5, claims(1000), 0, 0, 1000, 30);
        assert_eq!(cache.len(), 2);
        assert!(cache.get(5, 30).is_some());
        assert!(cache.get(3, 30).is_some());
        assert_eq!(cache.map.len(), cache.len());
    }

    #[test]
    fn reinserting_the_same_key_keeps_count() {
        let cache: TokenCache = TokenCache::new(3, usize::MAX);
        cache.insert(1, claims(20), 0, 0, 20, 10);
        cache.insert(1, claims(20), 0, 0, 20, 10);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.map.len(), 1);
    }

    #[test]
    fn zero_capacity_caches_nothing() {
        let cache: TokenCache = TokenCache::new(0, usize::MAX);
        cache.insert(1, claims(20), 0, 0, 20, 10);
        assert!(cache.get(1, 10).is_none());
    }

    #[test]
    fn bounded_in_bytes_too() {
        let cache: TokenCache = TokenCache::new(100, 3 * (1000 + SLOT_OVERHEAD));
        for k in 1..=3 {
            cache.insert(k, claims(100), 1000, 0, 100, 10);
        }
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.bytes(), 3 * (1000 + SLOT_OVERHEAD));
        cache.insert(4, claims(100), 1, 0, 100, 10);
        assert!(cache.get(4, 10).is_none(), "no room in bytes: not inserted");
        assert_eq!(cache.len(), 3, "the refused entry's slot is given back");
        cache.remove(2);
        assert_eq!(cache.bytes(), 2 * (1000 + SLOT_OVERHEAD));
        cache.insert(4, claims(100), 1000, 0, 100, 10);
        assert!(cache.get(4, 10).is_some());
        // Expired entries give their bytes back when swept.
        cache.insert(5, claims(1000), 10, 0, 1000, 200);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.bytes(), 10 + SLOT_OVERHEAD);
        // Re-inserting a key replaces its weight, it does not add to it.
        cache.insert(5, claims(1000), 20, 0, 1000, 200);
        assert_eq!(cache.bytes(), 20 + SLOT_OVERHEAD);
        assert_eq!(cache.map.len(), cache.len());
    }

    #[test]
    fn a_signer_leaving_takes_its_entries_out() {
        let cache: TokenCache = TokenCache::new(10, usize::MAX);
        cache.insert(1, claims(100), 10, 7, 100, 10);
        cache.insert(2, claims(100), 10, 8, 100, 10);
        cache.insert(3, claims(100), 10, 7, 100, 10);
        assert_eq!(cache.evict_signers(&[]), 0);
        assert_eq!(cache.evict_signers(&[9]), 0);
        assert_eq!(cache.evict_signers(&[7]), 2);
        assert!(cache.get(1, 10).is_none() && cache.get(3, 10).is_none());
        assert!(cache.get(2, 10).is_some());
        assert_eq!((cache.len(), cache.bytes()), (1, 10 + SLOT_OVERHEAD));
    }
}
