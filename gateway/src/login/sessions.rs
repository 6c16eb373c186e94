//! Browser sessions on requests: the session store shared by every runtime (with the
//! in-process refresh state), and the session a request's cookie names (only ever for the
//! tenant that created it), refreshed when due (`refresh.rs`).

use std::sync::Arc;
use std::time::Instant;

use dashmap::DashMap;
use gatehouse_config::SessionStoreConfig;
use gatehouse_session::claims::Claims;
use gatehouse_session::cookie::find_cookie;
use gatehouse_session::store::{CachedStore, SessionStore, StoreError};
use pingora::proxy::Session;

use super::cookies::request_cookies;
use super::refresh::{refresh, refresh_due, Refreshed};
use super::tenant::{TenantLogin, PURPOSE_SESSION};
use super::unix_now;

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

/// The session ID in the request's session cookie, if the cookie opens for this tenant.
pub(crate) fn session_id(downstream: &Session, login: &TenantLogin) -> Option<String> {
    let sealed = find_cookie(request_cookies(downstream), &login.cookie.name)?;
    let id = login.codec.open(PURPOSE_SESSION, sealed)?;
    String::from_utf8(id).ok()
}

/// Why a browser request could not be served with a session.
pub enum SessionOutcome {
    /// A valid session: its claims.
    Authenticated(Arc<Claims>),
    /// No (usable) session cookie.
    None,
    /// The store cannot be reached and the tenant fails closed, or the session's access token
    /// has expired and the IdP cannot refresh it right now.
    Unavailable,
}

/// The claims of the request's browser session, refreshing its tokens when its access token
/// is within `refresh-before-expiry` of expiring (see the module docs for the rules). A record
/// created for another tenant or issuer is no session.
pub async fn session_claims(
    downstream: &Session,
    login: &TenantLogin,
    sessions: &Sessions,
) -> SessionOutcome {
    let Some(id) = session_id(downstream, login) else {
        return SessionOutcome::None;
    };
    let store = match sessions.store().await {
        Ok(s) => s,
        Err(_) => return SessionOutcome::Unavailable,
    };
    let record = match store.get(&id).await {
        Ok(Some(r)) => r,
        Ok(None) => return SessionOutcome::None,
        Err(_) => return SessionOutcome::Unavailable,
    };
    if !record.belongs_to(&login.tenant, &login.issuer) {
        tracing::info!(tenant = %login.tenant, "session refused: it belongs to another tenant");
        return SessionOutcome::None;
    }
    let before = login.login.refresh_before_expiry.as_secs();
    if !refresh_due(&record, unix_now(), before) || record.refresh_token_enc.is_none() {
        return SessionOutcome::Authenticated(record.identity());
    }
    match refresh(&id, login, sessions, store, record).await {
        Refreshed::Record(r) => SessionOutcome::Authenticated(r.identity()),
        Refreshed::Ended => SessionOutcome::None,
        Refreshed::Unavailable => SessionOutcome::Unavailable,
    }
}
