//! The session store shared by every runtime (a reload keeps sessions) and the in-process
//! refresh state kept beside it.

use std::sync::atomic::{AtomicBool, Ordering};
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
    /// Set while a session count runs (one at a time).
    counting: Arc<AtomicBool>,
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
            counting: Arc::new(AtomicBool::new(false)),
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

    /// Counts the store's sessions in the background into `gatehouse_sessions_active`
    /// (called by the maintenance loop; skipped while the previous count still runs, and
    /// before the store is open). A failed count leaves the gauge as it was.
    pub fn count_in_background(&self) {
        let Some(store) = self.store.get() else {
            return;
        };
        if self.counting.swap(true, Ordering::AcqRel) {
            return;
        }
        let (store, counting) = (Arc::clone(store), Arc::clone(&self.counting));
        let gauge = self.metrics.sessions_active.clone();
        tokio::spawn(async move {
            match store.inner().count_sessions().await {
                Ok(Some(n)) => gauge.set(i64::try_from(n).unwrap_or(i64::MAX)),
                Ok(None) => {}
                Err(error) => tracing::debug!(%error, "session count failed"),
            }
            counting.store(false, Ordering::Release);
        });
    }

    /// The store, opened on first use.
    pub(crate) async fn store(
        &self,
    ) -> Result<&Arc<CachedStore<Arc<dyn SessionStore>>>, StoreError> {
        self.store
            .get_or_try_init(|| async {
                let observer = crate::otel::scope::store_observer(Arc::new(
                    crate::observers::StoreMetrics::new(&self.metrics),
                ));
                let inner = gatehouse_session::store::open(&self.config, Some(Arc::clone(&observer)))
                    .await
                    .map_err(|e| {
                        tracing::error!(error = %e, store = %self.config.redacted_url(), "cannot open the session store");
                        StoreError::Unavailable
                    })?;
                let serve_cached =
                    self.config.on_unavailable == gatehouse_config::OnUnavailable::ServeCached;
                Ok(Arc::new(
                    CachedStore::new(inner, self.config.local_cache_ttl, serve_cached)
                        .observed_by(Some(observer)),
                ))
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
