//! The embedded, per-instance session store.

use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dashmap::mapref::entry::Entry as MapEntry;
use dashmap::DashMap;

use super::observe::outcome;
use super::{
    LockGuard, LockHandle, Probe, SessionRecord, SessionStore, StoreError, StoreObserver, StoreOp,
    StoreOutcome,
};

/// How often the sweeper that [`super::from_config`] starts for a [`MemoryStore`] runs.
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(30);

struct Entry {
    record: SessionRecord,
    deadline: Instant,
}

struct LockEntry {
    token: u128,
    deadline: Instant,
}

type Locks = Arc<DashMap<String, LockEntry>>;

/// Sessions in this process's memory (`memory://`): lost on restart and not shared between
/// replicas, so only for a single instance or a demo.
///
/// TTLs are checked on every read; [`MemoryStore::sweep`] (run periodically by
/// [`MemoryStore::spawn_sweeper`]) frees expired records, stale index entries and expired locks.
/// Locks are process-local with the same semantics as the Redis ones.
#[derive(Default)]
pub struct MemoryStore {
    sessions: DashMap<String, Entry>,
    by_sub: DashMap<String, HashSet<String>>,
    by_sid: DashMap<String, HashSet<String>>,
    locks: Locks,
    probe: Probe,
}

// Lock order: an index map's guard may be held while reading `sessions`, never the reverse, so
// no code path here holds a `sessions` guard while touching `by_sub` or `by_sid`.

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// This store with `observer` told of every operation (latency and outcome).
    pub fn observed_by(mut self, observer: Option<Arc<dyn StoreObserver>>) -> MemoryStore {
        self.probe = Probe::new(observer);
        self
    }

    /// Removes expired records, index entries that point at no record, empty index sets and
    /// expired locks. Costs a pass over every map; call it periodically, not per request.
    pub fn sweep(&self) {
        let now = Instant::now();
        self.sessions.retain(|_, e| e.deadline > now);
        for index in [&self.by_sub, &self.by_sid] {
            index.retain(|_, ids| {
                ids.retain(|id| self.sessions.contains_key(id));
                !ids.is_empty()
            });
        }
        self.locks.retain(|_, l| l.deadline > now);
    }

    /// Runs [`MemoryStore::sweep`] every `every` on the current tokio runtime until the store is
    /// dropped (the task holds only a weak reference). Panics outside a tokio runtime.
    pub fn spawn_sweeper(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak: Weak<MemoryStore> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every.max(Duration::from_millis(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(store) => store.sweep(),
                    None => break,
                }
            }
        })
    }

    fn index(&self, id: &str, record: &SessionRecord) {
        add(&self.by_sub, &record.sub, id);
        if let Some(sid) = &record.sid {
            add(&self.by_sid, sid, id);
        }
    }

    fn unindex(&self, id: &str, record: &SessionRecord) {
        remove(&self.by_sub, &record.sub, id);
        if let Some(sid) = &record.sid {
            remove(&self.by_sid, sid, id);
        }
    }
}

fn add(index: &DashMap<String, HashSet<String>>, key: &str, id: &str) {
    index
        .entry(key.to_string())
        .or_default()
        .insert(id.to_string());
}

fn remove(index: &DashMap<String, HashSet<String>>, key: &str, id: &str) {
    if let Some(mut ids) = index.get_mut(key) {
        ids.remove(id);
    }
    index.remove_if(key, |_, ids| ids.is_empty());
}

// The operations themselves; the trait impl below times them.
impl MemoryStore {
    fn get_now(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        let now = Instant::now();
        match self.sessions.get(id) {
            None => return Ok(None),
            Some(e) if e.deadline > now => return Ok(Some(e.record.clone())),
            Some(_) => {}
        }
        if let Some((_, e)) = self.sessions.remove_if(id, |_, e| e.deadline <= now) {
            self.unindex(id, &e.record);
        }
        Ok(None)
    }

    fn put_now(&self, id: &str, record: &SessionRecord, ttl: Duration) -> Result<(), StoreError> {
        let entry = Entry {
            record: record.clone(),
            deadline: Instant::now() + ttl.max(Duration::from_millis(1)),
        };
        let old = self.sessions.insert(id.to_string(), entry);
        if let Some(old) = old {
            if old.record.sub != record.sub || old.record.sid != record.sid {
                self.unindex(id, &old.record);
            }
        }
        self.index(id, record);
        Ok(())
    }

    fn replace_now(
        &self,
        id: &str,
        record: &SessionRecord,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let now = Instant::now();
        // The shard's write lock makes check and write one step: a delete is either before
        // (nothing to replace) or after (it deletes the new record).
        let old = match self.sessions.get_mut(id) {
            Some(mut e) if e.deadline > now => {
                let old = std::mem::replace(&mut e.record, record.clone());
                e.deadline = now + ttl.max(Duration::from_millis(1));
                old
            }
            _ => return Ok(false),
        };
        // Index maps only after the `sessions` guard is gone (lock order above).
        if old.sub != record.sub || old.sid != record.sid {
            self.unindex(id, &old);
            self.index(id, record);
        }
        Ok(true)
    }

    fn delete_now(&self, id: &str) -> Result<(), StoreError> {
        if let Some((_, e)) = self.sessions.remove(id) {
            self.unindex(id, &e.record);
        }
        Ok(())
    }

    fn delete_by_sub_or_sid_now(
        &self,
        sub: Option<&str>,
        sid: Option<&str>,
    ) -> Result<usize, StoreError> {
        let mut ids = HashSet::new();
        if let Some(sub) = sub {
            ids.extend(self.by_sub.remove(sub).map(|(_, s)| s).unwrap_or_default());
        }
        if let Some(sid) = sid {
            ids.extend(self.by_sid.remove(sid).map(|(_, s)| s).unwrap_or_default());
        }
        let now = Instant::now();
        let mut deleted = 0;
        for id in ids {
            let removed = self
                .sessions
                .remove_if(&id, |_, e| record_matches(&e.record, sub, sid));
            if let Some((_, e)) = removed {
                self.unindex(&id, &e.record);
                if e.deadline > now {
                    deleted += 1;
                }
            }
        }
        Ok(deleted)
    }

    fn try_lock_now(&self, id: &str, ttl: Duration) -> Result<Option<LockGuard>, StoreError> {
        let now = Instant::now();
        let token = rand::random::<u128>();
        let fresh = LockEntry {
            token,
            deadline: now + ttl.max(Duration::from_millis(1)),
        };
        match self.locks.entry(id.to_string()) {
            MapEntry::Occupied(held) if held.get().deadline > now => return Ok(None),
            MapEntry::Occupied(mut expired) => {
                expired.insert(fresh);
            }
            MapEntry::Vacant(free) => {
                free.insert(fresh);
            }
        }
        Ok(Some(LockGuard::new(Box::new(MemoryLock {
            locks: Arc::clone(&self.locks),
            id: id.to_string(),
            token,
        }))))
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn get(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        let started = Instant::now();
        let r = self.get_now(id);
        self.probe.command(StoreOp::Get, outcome(&r), started);
        r
    }

    async fn put(&self, id: &str, record: &SessionRecord, ttl: Duration) -> Result<(), StoreError> {
        let started = Instant::now();
        let r = self.put_now(id, record, ttl);
        self.probe.command(StoreOp::Put, outcome(&r), started);
        r
    }

    async fn replace(
        &self,
        id: &str,
        record: &SessionRecord,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let started = Instant::now();
        let r = self.replace_now(id, record, ttl);
        self.probe.command(StoreOp::Replace, outcome(&r), started);
        r
    }

    async fn delete(&self, id: &str) -> Result<(), StoreError> {
        let started = Instant::now();
        let r = self.delete_now(id);
        self.probe.command(StoreOp::Delete, outcome(&r), started);
        r
    }

    async fn delete_by_sub_or_sid(
        &self,
        sub: Option<&str>,
        sid: Option<&str>,
    ) -> Result<usize, StoreError> {
        let started = Instant::now();
        let r = self.delete_by_sub_or_sid_now(sub, sid);
        self.probe
            .command(StoreOp::DeleteBySubOrSid, outcome(&r), started);
        r
    }

    async fn try_lock(&self, id: &str, ttl: Duration) -> Result<Option<LockGuard>, StoreError> {
        let started = Instant::now();
        let r = self.try_lock_now(id, ttl);
        self.probe.command(StoreOp::Lock, outcome(&r), started);
        r
    }

    fn len_hint(&self) -> Option<usize> {
        Some(self.sessions.len())
    }

    /// Exact: the records whose TTL has not run out (expired ones not yet swept are left out).
    async fn count_sessions(&self) -> Result<Option<usize>, StoreError> {
        let started = Instant::now();
        let now = Instant::now();
        let n = self.sessions.iter().filter(|e| e.deadline > now).count();
        self.probe
            .command(StoreOp::Count, StoreOutcome::Ok, started);
        Ok(Some(n))
    }
}

/// Whether `record` still belongs to the subject or IdP session being logged out.
pub(super) fn record_matches(record: &SessionRecord, sub: Option<&str>, sid: Option<&str>) -> bool {
    sub.is_some_and(|s| record.sub == s) || sid.is_some_and(|s| record.sid.as_deref() == Some(s))
}

struct MemoryLock {
    locks: Locks,
    id: String,
    token: u128,
}

impl MemoryLock {
    fn release_now(&self) -> bool {
        let now = Instant::now();
        self.locks
            .remove_if(&self.id, |_, l| l.token == self.token)
            .is_some_and(|(_, l)| l.deadline > now)
    }
}

#[async_trait]
impl LockHandle for MemoryLock {
    async fn renew(&self, ttl: Duration) -> Result<bool, StoreError> {
        let now = Instant::now();
        match self.locks.get_mut(&self.id) {
            Some(mut l) if l.token == self.token && l.deadline > now => {
                l.deadline = now + ttl.max(Duration::from_millis(1));
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release(&self) -> Result<bool, StoreError> {
        Ok(self.release_now())
    }

    fn release_on_drop(&self) {
        self.release_now();
    }
}
