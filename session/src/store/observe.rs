//! What the session stores report about themselves, for whoever keeps metrics: each store
//! operation's latency and outcome, the local cache's hits and misses, and the Redis client's
//! connection events. The session crate defines the vocabulary (small `Copy` enums with fixed
//! label names) and calls a [`StoreObserver`]; the gateway implements it over Prometheus
//! handles resolved once, so a report costs a virtual call and an atomic add, never a lock, a
//! label lookup or an allocation.

use std::sync::Arc;
use std::time::{Duration, Instant};

/// A session-store operation, as the gateway calls it (one operation may be several Redis
/// commands: `put` writes the index sets, then the record).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreOp {
    /// [`SessionStore::get`](super::SessionStore::get).
    Get,
    /// [`SessionStore::put`](super::SessionStore::put).
    Put,
    /// [`SessionStore::replace`](super::SessionStore::replace).
    Replace,
    /// [`SessionStore::delete`](super::SessionStore::delete).
    Delete,
    /// [`SessionStore::delete_by_sub_or_sid`](super::SessionStore::delete_by_sub_or_sid).
    DeleteBySubOrSid,
    /// [`SessionStore::try_lock`](super::SessionStore::try_lock).
    Lock,
    /// A held lock's renewal or release.
    Unlock,
    /// [`SessionStore::count_sessions`](super::SessionStore::count_sessions).
    Count,
}

impl StoreOp {
    /// Every operation, in label order.
    pub const ALL: [StoreOp; 8] = [
        StoreOp::Get,
        StoreOp::Put,
        StoreOp::Replace,
        StoreOp::Delete,
        StoreOp::DeleteBySubOrSid,
        StoreOp::Lock,
        StoreOp::Unlock,
        StoreOp::Count,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreOp::Get => "get",
            StoreOp::Put => "put",
            StoreOp::Replace => "replace",
            StoreOp::Delete => "delete",
            StoreOp::DeleteBySubOrSid => "delete_by_sub_or_sid",
            StoreOp::Lock => "lock",
            StoreOp::Unlock => "unlock",
            StoreOp::Count => "count",
        }
    }

    /// The position in [`StoreOp::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// How a store operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreOutcome {
    /// It completed (whatever it found).
    Ok,
    /// No answer within `session-store.timeout`.
    Timeout,
    /// The connection failed or closed with the command in flight.
    ConnectionLost,
    /// The cluster answered `CLUSTERDOWN` (slots without a master).
    ClusterDown,
    /// A `MOVED`/`ASK` redirection reached the caller (fred follows them itself; one that
    /// surfaces means the topology changed faster than it could follow).
    Redirect,
    /// No node could be found for the key's slot, or too many redirections.
    Routing,
    /// A record or reply could not be decoded.
    Corrupt,
    /// Any other failure.
    Other,
}

impl StoreOutcome {
    /// Every outcome, in label order.
    pub const ALL: [StoreOutcome; 8] = [
        StoreOutcome::Ok,
        StoreOutcome::Timeout,
        StoreOutcome::ConnectionLost,
        StoreOutcome::ClusterDown,
        StoreOutcome::Redirect,
        StoreOutcome::Routing,
        StoreOutcome::Corrupt,
        StoreOutcome::Other,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreOutcome::Ok => "ok",
            StoreOutcome::Timeout => "timeout",
            StoreOutcome::ConnectionLost => "connection_lost",
            StoreOutcome::ClusterDown => "cluster_down",
            StoreOutcome::Redirect => "redirect",
            StoreOutcome::Routing => "routing",
            StoreOutcome::Corrupt => "corrupt",
            StoreOutcome::Other => "other",
        }
    }

    /// The position in [`StoreOutcome::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What a local-cache lookup ([`CachedStore::get`](super::CachedStore::get)) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CacheLookup {
    /// Served from the local cache without a store round trip.
    Hit,
    /// Not cached (or no longer fresh): the store was asked.
    Miss,
    /// The store was unavailable and a validated record was served from the cache
    /// (`on-unavailable: serve-cached`); that lookup was reported as a miss first.
    Stale,
}

impl CacheLookup {
    /// Every lookup result, in label order.
    pub const ALL: [CacheLookup; 3] = [CacheLookup::Hit, CacheLookup::Miss, CacheLookup::Stale];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheLookup::Hit => "hit",
            CacheLookup::Miss => "miss",
            CacheLookup::Stale => "stale",
        }
    }

    /// The position in [`CacheLookup::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A connection event of the Redis client (fred's event streams).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreEvent {
    /// A connection to a node was (re)established after a failure.
    Reconnect,
    /// The cluster topology changed (nodes added or removed: a failover, a resharding; fred
    /// learns it from `MOVED` replies and its periodic sync).
    ClusterChange,
    /// A connection failed.
    ConnectionError,
    /// A connection stopped answering and was closed.
    Unresponsive,
}

impl StoreEvent {
    /// Every event, in label order.
    pub const ALL: [StoreEvent; 4] = [
        StoreEvent::Reconnect,
        StoreEvent::ClusterChange,
        StoreEvent::ConnectionError,
        StoreEvent::Unresponsive,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreEvent::Reconnect => "reconnect",
            StoreEvent::ClusterChange => "cluster_change",
            StoreEvent::ConnectionError => "connection_error",
            StoreEvent::Unresponsive => "unresponsive",
        }
    }

    /// The position in [`StoreEvent::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Receives the stores' reports. Called on request paths: implementations must not block,
/// lock or allocate.
pub trait StoreObserver: Send + Sync {
    /// One store operation finished after `elapsed`.
    fn command(&self, op: StoreOp, outcome: StoreOutcome, elapsed: Duration);
    /// One local-cache lookup.
    fn cache_lookup(&self, lookup: CacheLookup);
    /// One connection event (Redis only).
    fn event(&self, event: StoreEvent);
}

/// An optional observer, cheap to clone and to call when absent.
#[derive(Clone, Default)]
pub(crate) struct Probe(Option<Arc<dyn StoreObserver>>);

impl Probe {
    pub(crate) fn new(observer: Option<Arc<dyn StoreObserver>>) -> Probe {
        Probe(observer)
    }

    /// Reports `op` as started at `started` and ended with `outcome`.
    pub(crate) fn command(&self, op: StoreOp, outcome: StoreOutcome, started: Instant) {
        if let Some(o) = &self.0 {
            o.command(op, outcome, started.elapsed());
        }
    }

    pub(crate) fn cache_lookup(&self, lookup: CacheLookup) {
        if let Some(o) = &self.0 {
            o.cache_lookup(lookup);
        }
    }

    pub(crate) fn event(&self, event: StoreEvent) {
        if let Some(o) = &self.0 {
            o.event(event);
        }
    }
}

/// The outcome of an operation that failed only with the store's own error (no client
/// error to classify: the memory store, a record that would not encode).
pub(crate) fn outcome<T>(result: &Result<T, super::StoreError>) -> StoreOutcome {
    match result {
        Ok(_) => StoreOutcome::Ok,
        Err(super::StoreError::Corrupt) => StoreOutcome::Corrupt,
        Err(super::StoreError::Unavailable) => StoreOutcome::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_follow_label_order() {
        for (i, op) in StoreOp::ALL.iter().enumerate() {
            assert_eq!(op.index(), i);
        }
        for (i, o) in StoreOutcome::ALL.iter().enumerate() {
            assert_eq!(o.index(), i);
        }
        for (i, c) in CacheLookup::ALL.iter().enumerate() {
            assert_eq!(c.index(), i);
        }
        for (i, e) in StoreEvent::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
        }
    }
}
