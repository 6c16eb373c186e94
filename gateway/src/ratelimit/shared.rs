//! `shared: true` limits: one bucket per key for every replica, in the session store's Redis.
//!
//! The connection is opened at start (by the maintenance service) and outlives reloads, like
//! the session store. A check is one script call (one round trip, bounded by
//! `session-store.timeout`). When Redis is not connected or does not answer, the limit's local
//! bucket decides instead and `gatehouse_rate_limit_shared_fallback_total` counts it: a replica
//! then limits on its own, never lets everyone through.

use std::sync::Arc;

use gatehouse_config::SessionStoreConfig;
use gatehouse_session::store::{RedisStore, SharedVerdict};

/// The Redis connection of the shared limits (none with a `memory://` session store).
pub struct SharedBuckets {
    config: SessionStoreConfig,
    store: tokio::sync::OnceCell<Option<Arc<RedisStore>>>,
}

impl SharedBuckets {
    /// Buckets in the Redis `config` names (opened by [`Self::open`]).
    pub fn new(config: &SessionStoreConfig) -> SharedBuckets {
        SharedBuckets {
            config: config.clone(),
            store: tokio::sync::OnceCell::new(),
        }
    }

    /// Connects (in the background; Redis may come up later). Must run inside a tokio runtime.
    pub async fn open(&self) {
        self.store
            .get_or_init(|| async {
                if self.config.kind == gatehouse_config::SessionStoreKind::Memory {
                    return None;
                }
                match RedisStore::connect(&self.config).await {
                    Ok(s) => Some(Arc::new(s)),
                    Err(e) => {
                        tracing::error!(error = %e, "shared rate limits: cannot open Redis");
                        None
                    }
                }
            })
            .await;
    }

    /// The session store's kind: a `memory://` store has no Redis to share.
    pub fn kind(&self) -> gatehouse_config::SessionStoreKind {
        self.config.kind
    }

    /// The Redis connection, when the store is Redis and it could be opened (also used by the
    /// DPoP replay check, `dpop.rs`).
    pub fn redis(&self) -> Option<&Arc<RedisStore>> {
        self.store.get()?.as_ref()
    }

    /// Takes a token from the shared bucket `id` (already unique per tenant, route, limit and
    /// key), or `None` when Redis cannot decide now (not connected, error, timeout).
    pub async fn take(&self, id: &str, interval_us: u64, burst: u64) -> Option<SharedVerdict> {
        let store = self.store.get()?.as_ref()?;
        if !store.is_connected() {
            return None;
        }
        let interval_ms = interval_us.div_ceil(1000);
        store
            .take_token(store.limit_key(id), interval_ms, burst)
            .await
            .ok()
    }
}
