//! Hot reload: SIGHUP (or a change of the config file's modification time, polled every
//! [`WATCH_INTERVAL`]) recompiles the config into a new runtime and swaps it in atomically. A
//! config that fails to load or compile is refused, logged and counted; the old one keeps
//! serving.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::signal::unix::{signal, SignalKind};

use crate::metrics::Metrics;
use crate::runtime::{Runtime, SharedRuntime};

/// How often the config file's modification time is checked.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// The background service that owns reloads.
pub struct ReloadService {
    /// The config file; `None` for the embedded demo (nothing to reload).
    pub path: Option<PathBuf>,
    pub runtime: SharedRuntime,
    pub metrics: Arc<Metrics>,
    /// Also reload when the file changes, not only on SIGHUP.
    pub watch: bool,
}

fn modified(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl ReloadService {
    async fn reload(&self, path: &std::path::Path) {
        let path = path.to_path_buf();
        let previous = self.runtime.load_full();
        let metrics = Arc::clone(&self.metrics);
        // Loading reads a file and may resolve DNS names: keep it off the async workers.
        let result = tokio::task::spawn_blocking(move || {
            let config = gatehouse_config::load(&path).map_err(|e| e.to_string())?;
            let listeners_changed = config.listen != previous.config.listen
                || config.tls_listen != previous.config.tls_listen
                || config.admin_listen != previous.config.admin_listen;
            let tracing_changed = config.tracing != previous.config.tracing;
            Runtime::compile(Arc::new(config), Some(&previous), &metrics)
                .map(|r| (r, listeners_changed, tracing_changed))
        })
        .await;
        match result {
            Ok(Ok((runtime, listeners_changed, tracing_changed))) => {
                if listeners_changed {
                    tracing::warn!("listener addresses changed: they take effect at the next restart or upgrade");
                }
                if tracing_changed {
                    tracing::warn!(
                        "`tracing` changed: it takes effect at the next restart or upgrade"
                    );
                }
                let tenants = runtime.config.tenants.len();
                self.runtime.store(Arc::new(runtime));
                self.metrics.record_reload(true);
                tracing::info!(tenants, "config reloaded");
            }
            Ok(Err(e)) => {
                self.metrics.record_reload(false);
                tracing::error!(error = %e, "config reload refused; the previous config keeps serving");
            }
            Err(e) => {
                self.metrics.record_reload(false);
                tracing::error!(error = %e, "config reload task failed; the previous config keeps serving");
            }
        }
    }
}

#[async_trait]
impl BackgroundService for ReloadService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGHUP; reload disabled");
                return;
            }
        };
        let mut last_modified = self.path.as_deref().and_then(modified);
        let mut poll = tokio::time::interval(WATCH_INTERVAL);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = hangup.recv() => {
                    match &self.path {
                        Some(path) => {
                            tracing::info!("SIGHUP: reloading the config");
                            last_modified = modified(path);
                            self.reload(path).await;
                        }
                        None => tracing::info!("SIGHUP: the embedded demo config has nothing to reload"),
                    }
                }
                _ = poll.tick(), if self.watch && self.path.is_some() => {
                    let path = self.path.as_deref().expect("checked above");
                    let now = modified(path);
                    if now.is_some() && now != last_modified {
                        last_modified = now;
                        tracing::info!("config file changed: reloading");
                        self.reload(path).await;
                    }
                }
            }
        }
    }
}
