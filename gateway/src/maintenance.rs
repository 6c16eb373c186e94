//! The one background loop that keeps the current runtime's moving parts fresh: upstream health
//! checks and DNS re-resolution (per pool, on each pool's interval) and identity-provider key
//! refreshes (per provider, on its refresh interval or retry backoff), and the local session
//! cache's sweep. It reads whichever
//! runtime is current, so a reload's new pools and providers are picked up without restarting
//! anything; each item keeps its own schedule and skips a tick while its previous run is busy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::metrics::Metrics;
use crate::runtime::SharedRuntime;

/// How often the schedules are looked at (the finest health-check interval it honours).
const TICK: Duration = Duration::from_millis(100);

/// The maintenance background service.
pub struct MaintenanceService {
    pub runtime: SharedRuntime,
    pub metrics: Arc<Metrics>,
    pub sessions: Arc<crate::login::Sessions>,
}

/// The local session cache is swept this often (every this many ticks).
const SWEEP_EVERY_TICKS: u64 = 100;
/// The store's sessions are counted this often (every this many ticks).
const COUNT_EVERY_TICKS: u64 = 50;

#[async_trait]
impl BackgroundService for MaintenanceService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let epoch = Instant::now();
        let mut tick = tokio::time::interval(TICK);
        let mut ticks: u64 = 0;
        self.sessions.open().await;
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => {}
            }
            let now_ms = epoch.elapsed().as_millis() as u64;
            ticks += 1;
            if ticks.is_multiple_of(SWEEP_EVERY_TICKS) {
                self.sessions.sweep();
            }
            if ticks % COUNT_EVERY_TICKS == 1 {
                self.sessions.count_in_background();
            }
            let runtime = self.runtime.load_full();
            for pool in runtime.all_pools() {
                if pool.due(now_ms) {
                    tokio::spawn(Arc::clone(pool).tick(now_ms));
                }
            }
            for provider in runtime.providers.values() {
                if provider.due(now_ms) {
                    tokio::spawn(Arc::clone(provider).tick(now_ms, Arc::clone(&self.metrics)));
                }
                self.metrics.set_token_cache_entries(
                    &provider.definition.name,
                    provider.verifier.cache_len(),
                );
                self.metrics
                    .set_idp_keys_age(&provider.definition.name, provider.verifier.keys_age());
            }
        }
    }
}
