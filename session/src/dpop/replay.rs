//! The memory of used proofs: a proof's `jti` is accepted once per key within the time its
//! `iat` is accepted. Bounded: expired entries are swept at most once per sweep interval and
//! whenever the table is full; a table still full of live entries refuses new proofs rather
//! than forget one that could then be replayed.

use std::sync::atomic::{AtomicU64, Ordering};

use aws_lc_rs::digest::{digest, SHA256};
use dashmap::DashMap;

/// Entries a [`ReplayCache`] holds by default: about 30 MB at most, 4,000 proofs a second
/// with a 60 s window and 5 s leeway each way.
pub const DEFAULT_REPLAY_CAPACITY: usize = 262_144;

/// Why a proof's `jti` cannot be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayError {
    /// Seen before and not expired.
    Replayed,
    /// The memory is full of live entries (or, for the shared memory, Redis cannot answer):
    /// the single use cannot be established now.
    Unavailable,
}

/// The key of one proof in the replay memory: SHA-256 of the token's `cnf.jkt` and the
/// proof's `jti`, as 32 hex digits (the first 128 bits). Every replica computes the same key,
/// so it also names the proof in Redis; `jti`s of different keys never collide.
#[must_use]
pub fn replay_key(jkt: &str, jti: &str) -> String {
    let mut input = Vec::with_capacity(jkt.len() + 1 + jti.len());
    input.extend_from_slice(jkt.as_bytes());
    input.push(0);
    input.extend_from_slice(jti.as_bytes());
    let hash = digest(&SHA256, &input);
    hash.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Proofs seen by this process, until they expire.
#[derive(Debug)]
pub struct ReplayCache {
    /// First 128 bits of the replay key → until when (seconds since the epoch).
    seen: DashMap<u128, u64>,
    capacity: usize,
    /// When the last sweep ran (seconds since the epoch).
    last_sweep: AtomicU64,
    /// How often expired entries are swept without the table being full (seconds).
    sweep_every: u64,
}

impl ReplayCache {
    /// A memory of at most `capacity` proofs, swept of expired entries every `sweep_every`
    /// seconds.
    #[must_use]
    pub fn new(capacity: usize, sweep_every: u64) -> ReplayCache {
        ReplayCache {
            seen: DashMap::new(),
            capacity: capacity.max(1),
            last_sweep: AtomicU64::new(0),
            sweep_every: sweep_every.max(1),
        }
    }

    /// Records the proof `key` ([`replay_key`]) as used until `until`, at `now`; `Err` if it
    /// was used before and has not expired, or there is no room.
    pub fn first_use(&self, key: &str, until: u64, now: u64) -> Result<(), ReplayError> {
        let key = u128::from_str_radix(key, 16).map_err(|_| ReplayError::Unavailable)?;
        let last = self.last_sweep.load(Ordering::Relaxed);
        // A full table is swept at most once a second: a table full of live entries must
        // not cost a whole sweep per request.
        let due = now.saturating_sub(last) >= self.sweep_every
            || (self.seen.len() >= self.capacity && now > last);
        if due
            && self
                .last_sweep
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            self.seen.retain(|_, expires| *expires >= now);
        }
        // Read before `entry`, which holds its shard's lock: `len` takes every shard's.
        let full = self.seen.len() >= self.capacity;
        match self.seen.entry(key) {
            dashmap::Entry::Occupied(mut e) => {
                if *e.get() >= now {
                    return Err(ReplayError::Replayed);
                }
                e.insert(until);
            }
            dashmap::Entry::Vacant(e) => {
                if full {
                    return Err(ReplayError::Unavailable);
                }
                e.insert(until);
            }
        }
        Ok(())
    }

    /// Entries held (live or not yet swept).
    #[must_use]
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no entry is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_is_accepted_once_until_it_expires() {
        let cache = ReplayCache::new(10, 60);
        let k = replay_key("jkt", "jti-1");
        assert_eq!(k.len(), 32);
        assert_eq!(cache.first_use(&k, 170, 100), Ok(()));
        assert_eq!(cache.first_use(&k, 171, 101), Err(ReplayError::Replayed));
        assert_eq!(cache.first_use(&k, 270, 170), Err(ReplayError::Replayed));
        assert_eq!(
            cache.first_use(&k, 271, 171),
            Ok(()),
            "expired: usable again"
        );
        let other_key = replay_key("other-jkt", "jti-1");
        assert_ne!(
            other_key, k,
            "the same jti under another key is another proof"
        );
        assert_eq!(cache.first_use(&other_key, 271, 171), Ok(()));
    }

    #[test]
    fn a_full_memory_refuses_rather_than_forgets() {
        let cache = ReplayCache::new(3, 1_000);
        for i in 0..3 {
            let k = replay_key("j", &i.to_string());
            assert_eq!(cache.first_use(&k, 200, 100), Ok(()));
        }
        let fourth = replay_key("j", "3");
        assert_eq!(
            cache.first_use(&fourth, 200, 100),
            Err(ReplayError::Unavailable)
        );
        assert_eq!(
            cache.first_use(&replay_key("j", "0"), 200, 100),
            Err(ReplayError::Replayed),
            "no live entry was dropped"
        );
        // Once the others expire, the sweep a full table triggers makes room.
        assert_eq!(cache.first_use(&fourth, 400, 201), Ok(()));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn expired_entries_are_swept_periodically() {
        let cache = ReplayCache::new(100, 10);
        for i in 0..50 {
            let k = replay_key("j", &i.to_string());
            cache.first_use(&k, 105, 100).expect("room");
        }
        assert_eq!(cache.len(), 50);
        cache
            .first_use(&replay_key("j", "x"), 200, 111)
            .expect("room");
        assert_eq!(cache.len(), 1, "the sweep dropped what had expired");
        assert!(!cache.is_empty());
    }

    #[test]
    fn concurrent_first_uses_of_one_proof_admit_exactly_one() {
        let cache = std::sync::Arc::new(ReplayCache::new(1000, 60));
        let key = replay_key("jkt", "raced");
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let cache = std::sync::Arc::clone(&cache);
                let key = key.clone();
                std::thread::spawn(move || cache.first_use(&key, 200, 100).is_ok())
            })
            .collect();
        let admitted = handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .filter(|ok| *ok)
            .count();
        assert_eq!(admitted, 1);
    }
}
