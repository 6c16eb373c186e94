//! The per-instance cache in front of a session store.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use super::memory::record_matches;
use super::{
    CacheLookup, LockGuard, Probe, SessionRecord, SessionStore, StoreError, StoreObserver,
};

struct Cached {
    record: Arc<SessionRecord>,
    validated: Instant,
}

/// The local cache in front of any [`SessionStore`].
///
/// A record read from (or written to) the store is *validated*; it is then trusted for
/// `local_ttl` without a round trip. With `serve_cached` (`on-unavailable: serve-cached`), while
/// the store answers [`StoreError::Unavailable`], a record validated before is served until its
/// own `expires_at`; a session this instance never validated is never served. Without it
/// (`fail-closed`) the error is returned.
///
/// Deletions through this cache evict locally at once; other replicas' caches keep a deleted
/// session for at most `local_ttl` (or, with `serve_cached`, while their store is unavailable).
/// A `get` racing with a `delete` of the same id may re-cache the old record for `local_ttl`.
/// A record the store returns unchanged is not decoded into a new identity: the cached one,
/// parsed once, is returned (so with the local cache off every request still reads the store,
/// but parses the claims only when they changed). Entries for sessions never read again stay
/// until [`CachedStore::sweep`] runs.
pub struct CachedStore<S> {
    inner: S,
    local_ttl: Duration,
    serve_cached: bool,
    cache: DashMap<String, Cached>,
    probe: Probe,
}

impl<S: SessionStore> CachedStore<S> {
    /// A cache over `inner` trusting validated records for `local_ttl` (`Duration::ZERO`: every
    /// `get` goes to the store), serving them during outages when `serve_cached`.
    pub fn new(inner: S, local_ttl: Duration, serve_cached: bool) -> Self {
        CachedStore {
            inner,
            local_ttl,
            serve_cached,
            cache: DashMap::new(),
            probe: Probe::default(),
        }
    }

    /// This cache with `observer` told of every lookup's result (hit, miss, stale).
    pub fn observed_by(mut self, observer: Option<Arc<dyn StoreObserver>>) -> Self {
        self.probe = Probe::new(observer);
        self
    }

    /// The store behind the cache.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The session `id`: from the cache when validated less than `local_ttl` ago and not past its
    /// `expires_at`, else from the store (then cached). On [`StoreError::Unavailable`] with
    /// `serve_cached`, a previously validated, unexpired record; otherwise the error.
    pub async fn get(&self, id: &str) -> Result<Option<Arc<SessionRecord>>, StoreError> {
        if let Some(hit) = self.cache.get(id) {
            if hit.validated.elapsed() < self.local_ttl && !hit.record.is_expired() {
                self.probe.cache_lookup(CacheLookup::Hit);
                return Ok(Some(Arc::clone(&hit.record)));
            }
        }
        self.probe.cache_lookup(CacheLookup::Miss);
        match self.inner.get(id).await {
            Ok(Some(record)) => {
                // Unchanged in the store since this instance last read it: keep the cached
                // record, whose claims are parsed and identity headers rendered already (with
                // the local cache off, that is every request's parse saved, not a trust).
                if let Some(mut cached) = self.cache.get_mut(id) {
                    if *cached.record == record {
                        cached.validated = Instant::now();
                        return Ok(Some(Arc::clone(&cached.record)));
                    }
                }
                let record = Arc::new(record);
                self.remember(id, &record);
                Ok(Some(record))
            }
            Ok(None) => {
                self.cache.remove(id);
                Ok(None)
            }
            Err(StoreError::Unavailable) if self.serve_cached => match self.cache.get(id) {
                Some(stale) if !stale.record.is_expired() => {
                    self.probe.cache_lookup(CacheLookup::Stale);
                    Ok(Some(Arc::clone(&stale.record)))
                }
                _ => Err(StoreError::Unavailable),
            },
            Err(e) => {
                if e == StoreError::Corrupt {
                    self.cache.remove(id);
                }
                Err(e)
            }
        }
    }

    /// Stores `record` (see [`SessionStore::put`]) and, once the store took it, caches it as
    /// validated. On error the local entry is dropped: the store's state is unknown.
    pub async fn put(
        &self,
        id: &str,
        record: &SessionRecord,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        match self.inner.put(id, record, ttl).await {
            Ok(()) => {
                self.remember(id, &Arc::new(record.clone()));
                Ok(())
            }
            Err(e) => {
                self.cache.remove(id);
                Err(e)
            }
        }
    }

    /// Replaces the record only if the store still has one (see [`SessionStore::replace`]) and
    /// caches it then; `Ok(false)` (the session was deleted meanwhile) evicts it locally.
    pub async fn replace(
        &self,
        id: &str,
        record: &SessionRecord,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        match self.inner.replace(id, record, ttl).await {
            Ok(true) => {
                self.remember(id, &Arc::new(record.clone()));
                Ok(true)
            }
            other => {
                self.cache.remove(id);
                other
            }
        }
    }

    /// Evicts `id` locally, then deletes it from the store.
    pub async fn delete(&self, id: &str) -> Result<(), StoreError> {
        self.cache.remove(id);
        self.inner.delete(id).await
    }

    /// Evicts every local entry of the subject or IdP session, then deletes them from the store
    /// (see [`SessionStore::delete_by_sub_or_sid`]).
    pub async fn delete_by_sub_or_sid(
        &self,
        sub: Option<&str>,
        sid: Option<&str>,
    ) -> Result<usize, StoreError> {
        self.cache
            .retain(|_, c| !record_matches(&c.record, sub, sid));
        self.inner.delete_by_sub_or_sid(sub, sid).await
    }

    /// The store's refresh lock for `id` (see [`SessionStore::try_lock`]).
    pub async fn try_lock(&self, id: &str, ttl: Duration) -> Result<Option<LockGuard>, StoreError> {
        self.inner.try_lock(id, ttl).await
    }

    /// Forgets `id` locally: the next `get` asks the store.
    pub fn invalidate(&self, id: &str) {
        self.cache.remove(id);
    }

    /// Drops entries that can no longer be served: past their record's `expires_at`, or (without
    /// `serve_cached`) validated `local_ttl` ago or more. Call it periodically.
    pub fn sweep(&self) {
        let (ttl, keep_stale) = (self.local_ttl, self.serve_cached);
        self.cache
            .retain(|_, c| !c.record.is_expired() && (keep_stale || c.validated.elapsed() < ttl));
    }

    /// How many records are cached locally.
    pub fn cached_len(&self) -> usize {
        self.cache.len()
    }

    /// Caches `record` as validated now. With a zero `local_ttl` and fail-closed the entry is
    /// never served without a store read; it only spares re-parsing an unchanged record, until
    /// the next [`CachedStore::sweep`].
    fn remember(&self, id: &str, record: &Arc<SessionRecord>) {
        self.cache.insert(
            id.to_string(),
            Cached {
                record: Arc::clone(record),
                validated: Instant::now(),
            },
        );
    }
}
