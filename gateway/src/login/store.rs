//! The session store shared by every runtime (a reload keeps sessions) and the in-process
//! refresh state kept beside it.

use std::sync::Arc;
use std::time::Instant;

use dashmap::DashMap;
use gatehouse_config::SessionStoreConfig;
use gatehouse_session::store::{CachedStore, SessionStore, StoreError};

/// The session store shared by every runtime (a reload keeps sessions), opened on first use
/// inside the proxy's runtime, and the in-process refresh state.
pub struct Sessions {
    config: SessionStoreConfig,
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    store: tokio::sync::OnceCell<Arc<CachedStore<Arc<dyn SessionStore>>>>,
    /// The in-process refresh single flights, by session ID.
    pub(super) refreshing: DashMap<String, Arc<tokio::sync::Mutex<()>>>,
    /// Sessions whose last refresh failed for a passing reason: not retried before then.
    pub(super) retry_after: DashMap<String, Instant>,
}

impl Sessions {
    /// The store named by `session-store` (opened lazily).
    pub fn new(config: &SessionStoreConfig, metrics: Arc<crate::metrics::Metrics>) -> Sessions {
        Sessions {
            config: config.clone(),
            metrics,
            store: tokio::sync::OnceCell::new(),
            refreshing: DashMap::new(),
            retry_after: DashMap::new(),
        }
    }

    /// Opens the store at start (a Redis store connects in the background), so the first
    /// requests do not find it still connecting.
    pub async fn open(&self) {
        let _ = self.store().await;
    }

    /// Drops expired entries from the local session cache and the refresh retry delays
    /// (called by the maintenance loop).
    pub fn sweep(&self) {
        if let Some(store) = self.store.get() {
            store.sweep();
        }
        let now = Instant::now();
        self.retry_after.retain(|_, at| *at > now);
    }

    /// The store, opened on first use.
    pub(crate) async fn store(
        &self,
    ) -> Result<&Arc<CachedStore<Arc<dyn SessionStore>>>, StoreError> {
        self.store
            .get_or_try_init(|| async {
                let inner = gatehouse_session::store::from_config(&self.config)
                    .await
                    .map_err(|e| {
                        tracing::error!(error = %e, store = %self.config.redacted_url(), "cannot open the session store");
                        StoreError::Unavailable
                    })?;
                let serve_cached =
                    self.config.on_unavailable == gatehouse_config::OnUnavailable::ServeCached;
                Ok(Arc::new(CachedStore::new(
                    inner,
                    self.config.local_cache_ttl,
                    serve_cached,
                )))
            })
            .await
    }

    /// Whether session `id`'s last refresh failed for a passing reason too recently to retry.
    pub(super) fn retry_pending(&self, id: &str) -> bool {
        self.retry_after
            .get(id)
            .is_some_and(|at| *at > Instant::now())
    }
}
