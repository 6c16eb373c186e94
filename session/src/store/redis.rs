//! The Redis session store: one node (`redis://`) or a Redis Cluster (`redis-cluster://`), over
//! a pool of fred clients.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fred::prelude::{
    Builder, ClientLike, Config, Expiration, KeysInterface, LuaInterface, Pool, ReconnectPolicy,
    Server, ServerConfig, SetOptions, SetsInterface,
};
use fred::types::ConnectHandle;
use futures_util::future::join_all;
use gatehouse_config::{SessionStoreConfig, SessionStoreKind};

use super::memory::record_matches;
use super::{
    lock_token, ttl_millis, LockGuard, LockHandle, Probe, SessionRecord, SessionStore, StoreError,
    StoreObserver, StoreOp,
};

mod observe;
mod url;

use observe::Failure;
use url::parse_url;

/// Adds ARGV[1] to the index set KEYS[1] and makes the set live at least ARGV[2] ms (never
/// shortens it: the set must outlive its longest session).
const INDEX_SCRIPT: &str = r#"
redis.call('SADD', KEYS[1], ARGV[1])
local ttl = tonumber(ARGV[2])
if redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return 1
"#;

/// Deletes KEYS[1] only if it still holds exactly ARGV[1] (lock release by token; session
/// delete after the record was checked).
const DELETE_IF_SCRIPT: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

/// Sets KEYS[1]'s TTL to ARGV[2] ms only if it still holds ARGV[1] (lock renewal by token).
const RENEW_SCRIPT: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"#;

/// Writes ARGV[1] to KEYS[1] with a TTL of ARGV[2] ms only if KEYS[1] still exists (a refresh
/// writing back never revives a session deleted meanwhile). Returns 1 when written.
const REPLACE_SCRIPT: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"#;

/// How many sessions [`SessionStore::delete_by_sub_or_sid`] deletes concurrently.
const DELETE_BATCH: usize = 64;
/// How often a session that changed between read and delete is re-read before giving up.
const DELETE_ATTEMPTS: usize = 3;

/// Sessions in Redis, shared by every gateway replica.
///
/// Keys: `{key_prefix}s:{id}` holds the record as JSON with a TTL (`SET PX`);
/// `{key_prefix}sub:{sub}` and `{key_prefix}sid:{sid}` are index sets of session ids (for
/// back-channel logout) that live as long as their longest session; `{key_prefix}lock:{id}` is
/// the refresh lock. In a cluster these keys land in different hash slots on purpose (sessions
/// spread over all masters), so no operation spans two keys atomically: `put` writes the indexes
/// before the record (a session is never stored without its index entries), and deletions
/// compare-and-delete each record by itself. Keep braces out of `key-prefix`: a hash tag there
/// would put every session in one slot.
///
/// Connection: a pool of `pool-size` fred clients, each reconnecting forever with exponential
/// backoff (100 ms doubling to 5 s); in cluster mode fred discovers the topology from any seed
/// node and follows `MOVED`/`ASK`. Every command is bounded by `timeout`; a command that cannot
/// complete in time (Redis down, failover in progress) fails with [`StoreError::Unavailable`].
pub struct RedisStore {
    pool: Pool,
    prefix: String,
    clustered: bool,
    connections: Vec<ConnectHandle>,
    probe: Probe,
    /// The tasks forwarding fred's connection events to the observer.
    listeners: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("pool_size", &self.pool.size())
            .field("clustered", &self.clustered)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Builds the pool for `cfg` (kind `Redis`, `Rediss`, `RedisCluster` or `RedissCluster`) and
    /// starts connecting in the background.
    ///
    /// It does not wait for Redis: when Redis is down at start, `connect` still returns `Ok`, the
    /// clients keep reconnecting (100 ms .. 5 s backoff, forever) and every operation returns
    /// [`StoreError::Unavailable`] after at most `timeout` until Redis is up. Errors are only for
    /// configurations that can never work: a bad URL, `rediss` without TLS support built in, a
    /// `memory://` config. Must be called inside a tokio runtime.
    ///
    /// TLS (`rediss://`, `rediss-cluster://`) uses the system's native TLS with its trust store
    /// (crate feature `redis-tls`, on by default); cluster nodes are then verified by the address
    /// they announce.
    pub async fn connect(cfg: &SessionStoreConfig) -> Result<RedisStore, String> {
        Self::connect_observed(cfg, None).await
    }

    /// [`connect`](Self::connect) with `observer` told of every operation's latency and
    /// outcome and of the clients' connection events (reconnects, cluster topology changes,
    /// connection errors, unresponsive connections).
    pub async fn connect_observed(
        cfg: &SessionStoreConfig,
        observer: Option<Arc<dyn StoreObserver>>,
    ) -> Result<RedisStore, String> {
        let (cluster, tls) = match cfg.kind {
            SessionStoreKind::Redis => (false, false),
            SessionStoreKind::Rediss => (false, true),
            SessionStoreKind::RedisCluster => (true, false),
            SessionStoreKind::RedissCluster => (true, true),
            SessionStoreKind::Memory => {
                return Err("session-store.url: memory:// is not a Redis URL".into())
            }
        };
        let target = parse_url(&cfg.url, cluster)?;
        let server = if cluster {
            ServerConfig::Clustered {
                hosts: target
                    .hosts
                    .iter()
                    .map(|(h, p)| Server::new(h.as_str(), *p))
                    .collect(),
                policy: Default::default(),
            }
        } else {
            let (host, port) = &target.hosts[0];
            ServerConfig::Centralized {
                server: Server::new(host.as_str(), *port),
            }
        };
        #[allow(unused_mut)]
        let mut config = Config {
            // Run the reconnect policy on the first connection too: Redis may start after us.
            fail_fast: false,
            server,
            username: target.username,
            password: target.password,
            database: target.database,
            ..Config::default()
        };
        if tls {
            #[cfg(feature = "redis-tls")]
            {
                let connector = fred::types::config::TlsConnector::default_native_tls()
                    .map_err(|e| format!("session-store: TLS setup failed: {}", e.details()))?;
                config.tls = Some(connector.into());
            }
            #[cfg(not(feature = "redis-tls"))]
            return Err(
                "session-store.url: rediss needs gatehouse-session's redis-tls feature".into(),
            );
        }
        let timeout = cfg.timeout.max(Duration::from_millis(1));
        let pool = Builder::from_config(config)
            .with_performance_config(|perf| {
                perf.default_command_timeout = timeout;
            })
            .with_connection_config(|conn| {
                // Bounded so a black-holed node does not stall reconnection for the default 10 s.
                conn.connection_timeout = Duration::from_secs(2);
                conn.internal_command_timeout = Duration::from_secs(2);
                conn.tcp.nodelay = Some(true);
                // A connection that stops answering (partition, no RST) is closed and redialed.
                conn.unresponsive.max_timeout = Some(Duration::from_secs(2).max(timeout * 4));
                conn.unresponsive.interval = Duration::from_millis(500);
            })
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
            .build_pool(cfg.pool_size.max(1))
            .map_err(|e| format!("session-store: {}", e.details()))?;
        let probe = Probe::new(observer);
        // Listening before connecting, so the first connection errors are seen too.
        let listeners = observe::spawn_event_listeners(&pool, &probe);
        let connections = pool.connect_pool();
        Ok(RedisStore {
            pool,
            prefix: cfg.key_prefix.clone(),
            clustered: cluster,
            connections,
            probe,
            listeners,
        })
    }

    /// How many clients the pool holds (`pool-size`), read from fred's pool.
    pub fn pool_size(&self) -> usize {
        self.pool.size()
    }

    /// Whether this store talks to a Redis Cluster.
    pub fn is_clustered(&self) -> bool {
        self.clustered
    }

    /// Whether at least one pooled client is connected right now (for readiness checks).
    pub fn is_connected(&self) -> bool {
        self.pool.clients().iter().any(|c| c.is_connected())
    }

    /// Waits until every pooled client is connected, up to `limit`; `false` on timeout.
    pub async fn wait_connected(&self, limit: Duration) -> bool {
        matches!(
            tokio::time::timeout(limit, self.pool.wait_for_connect()).await,
            Ok(Ok(()))
        )
    }

    /// The Redis key of session `id`'s record.
    pub fn session_key(&self, id: &str) -> String {
        format!("{}s:{id}", self.prefix)
    }

    /// The Redis key of session `id`'s refresh lock.
    pub fn lock_key(&self, id: &str) -> String {
        format!("{}lock:{id}", self.prefix)
    }

    fn sub_key(&self, sub: &str) -> String {
        format!("{}sub:{sub}", self.prefix)
    }

    fn sid_key(&self, sid: &str) -> String {
        format!("{}sid:{sid}", self.prefix)
    }

    async fn index(&self, key: String, id: &str, ms: i64) -> Result<(), Failure> {
        self.pool
            .eval::<i64, _, _, _>(INDEX_SCRIPT, key, vec![id.to_string(), ms.to_string()])
            .await
            .map(|_| ())
            .map_err(Failure::from)
    }

    /// Adds `id` to the record's `sub` and `sid` index sets. Called before the record is
    /// written: a stored session must always be reachable by back-channel logout; a stale index
    /// entry (record never written, or expired) is harmless.
    async fn index_record(&self, id: &str, record: &SessionRecord, ms: i64) -> Result<(), Failure> {
        let sub = self.index(self.sub_key(&record.sub), id, ms);
        match &record.sid {
            Some(sid) => {
                let (a, b) = futures_util::join!(sub, self.index(self.sid_key(sid), id, ms));
                a.and(b)
            }
            None => sub.await,
        }
    }

    /// Deletes session `id` if its record still belongs to `sub`/`sid` (compare-and-delete, so a
    /// record rewritten meanwhile is re-checked). `Ok(true)` when it was deleted.
    async fn delete_if_matches(
        &self,
        id: &str,
        sub: Option<&str>,
        sid: Option<&str>,
    ) -> Result<bool, Failure> {
        let key = self.session_key(id);
        for _ in 0..DELETE_ATTEMPTS {
            let Some(raw) = self.pool.get::<Option<Vec<u8>>, _>(&key).await? else {
                return Ok(false);
            };
            // An undecodable record listed under this sub/sid is deleted too: it can never be
            // served and logout must not leave it behind.
            let belongs = serde_json::from_slice::<SessionRecord>(&raw)
                .map_or(true, |r| record_matches(&r, sub, sid));
            if !belongs {
                return Ok(false);
            }
            let deleted: i64 = self.pool.eval(DELETE_IF_SCRIPT, &key, vec![raw]).await?;
            if deleted == 1 {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        // Stop the connection tasks (and their endless reconnects) with the store.
        for handle in &self.connections {
            handle.abort();
        }
        for handle in &self.listeners {
            handle.abort();
        }
    }
}

// The operations themselves; the trait impl below times and classifies them.
impl RedisStore {
    async fn get_untimed(&self, id: &str) -> Result<Option<SessionRecord>, Failure> {
        let raw: Option<Vec<u8>> = self.pool.get(self.session_key(id)).await?;
        match raw {
            None => Ok(None),
            Some(raw) => serde_json::from_slice(&raw)
                .map(Some)
                .map_err(|_| Failure::Corrupt),
        }
    }

    async fn put_untimed(
        &self,
        id: &str,
        record: &SessionRecord,
        ttl: Duration,
    ) -> Result<(), Failure> {
        let json = serde_json::to_vec(record).map_err(|_| Failure::Corrupt)?;
        let ms = ttl_millis(ttl);
        self.index_record(id, record, ms).await?;
        self.pool
            .set::<(), _, _>(
                self.session_key(id),
                json,
                Some(Expiration::PX(ms)),
                None,
                false,
            )
            .await
            .map_err(Failure::from)
    }

    async fn replace_untimed(
        &self,
        id: &str,
        record: &SessionRecord,
        ttl: Duration,
    ) -> Result<bool, Failure> {
        let json = serde_json::to_vec(record).map_err(|_| Failure::Corrupt)?;
        let ms = ttl_millis(ttl);
        self.index_record(id, record, ms).await?;
        let written: i64 = self
            .pool
            .eval(
                REPLACE_SCRIPT,
                self.session_key(id),
                vec![json, ms.to_string().into_bytes()],
            )
            .await?;
        Ok(written == 1)
    }

    async fn delete_untimed(&self, id: &str) -> Result<(), Failure> {
        let raw: Option<Vec<u8>> = self.pool.getdel(self.session_key(id)).await?;
        // Tidy the indexes; an entry left behind (error here) only costs a no-op later.
        if let Some(record) = raw.and_then(|r| serde_json::from_slice::<SessionRecord>(&r).ok()) {
            let sub = self.pool.srem::<i64, _, _>(self.sub_key(&record.sub), id);
            match &record.sid {
                Some(sid) => {
                    let _ = futures_util::join!(
                        sub,
                        self.pool.srem::<i64, _, _>(self.sid_key(sid), id)
                    );
                }
                None => {
                    let _ = sub.await;
                }
            }
        }
        Ok(())
    }

    async fn delete_by_sub_or_sid_untimed(
        &self,
        sub: Option<&str>,
        sid: Option<&str>,
    ) -> Result<usize, Failure> {
        let mut indexes = Vec::with_capacity(2);
        if let Some(sub) = sub {
            indexes.push(self.sub_key(sub));
        }
        if let Some(sid) = sid {
            indexes.push(self.sid_key(sid));
        }
        let mut ids = HashSet::new();
        for index in &indexes {
            let members: Vec<String> = self.pool.smembers(index).await?;
            ids.extend(members);
        }
        let ids: Vec<String> = ids.into_iter().collect();
        let mut deleted = 0;
        for batch in ids.chunks(DELETE_BATCH) {
            let results =
                join_all(batch.iter().map(|id| self.delete_if_matches(id, sub, sid))).await;
            for r in results {
                deleted += usize::from(r?);
            }
        }
        // Drop exactly the ids handled (deleted, gone, or belonging to someone else now), not
        // the whole set: a session added meanwhile keeps its entry.
        if !ids.is_empty() {
            for index in &indexes {
                self.pool.srem::<i64, _, _>(index, ids.clone()).await?;
            }
        }
        Ok(deleted)
    }

    async fn try_lock_untimed(
        &self,
        id: &str,
        ttl: Duration,
    ) -> Result<Option<LockGuard>, Failure> {
        let key = self.lock_key(id);
        let token = lock_token();
        let set: Option<String> = self
            .pool
            .set(
                &key,
                token.as_str(),
                Some(Expiration::PX(ttl_millis(ttl))),
                Some(SetOptions::NX),
                false,
            )
            .await?;
        Ok(set.map(|_| {
            LockGuard::new(Box::new(RedisLock {
                pool: self.pool.clone(),
                key,
                token,
                probe: self.probe.clone(),
            }))
        }))
    }
}

impl RedisStore {
    /// Runs one operation, reports its latency and outcome, and maps its failure.
    async fn timed<T>(
        &self,
        op: StoreOp,
        run: impl std::future::Future<Output = Result<T, Failure>>,
    ) -> Result<T, StoreError> {
        observe::timed(&self.probe, op, run).await
    }
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn get(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        self.timed(StoreOp::Get, self.get_untimed(id)).await
    }

    async fn put(&self, id: &str, record: &SessionRecord, ttl: Duration) -> Result<(), StoreError> {
        self.timed(StoreOp::Put, self.put_untimed(id, record, ttl))
            .await
    }

    async fn replace(
        &self,
        id: &str,
        record: &SessionRecord,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.timed(StoreOp::Replace, self.replace_untimed(id, record, ttl))
            .await
    }

    async fn delete(&self, id: &str) -> Result<(), StoreError> {
        self.timed(StoreOp::Delete, self.delete_untimed(id)).await
    }

    async fn delete_by_sub_or_sid(
        &self,
        sub: Option<&str>,
        sid: Option<&str>,
    ) -> Result<usize, StoreError> {
        self.timed(
            StoreOp::DeleteBySubOrSid,
            self.delete_by_sub_or_sid_untimed(sub, sid),
        )
        .await
    }

    async fn try_lock(&self, id: &str, ttl: Duration) -> Result<Option<LockGuard>, StoreError> {
        self.timed(StoreOp::Lock, self.try_lock_untimed(id, ttl))
            .await
    }

    fn len_hint(&self) -> Option<usize> {
        None
    }

    /// A paced `SCAN` of `{key_prefix}s:*` on every master (see the module's `count_keys`);
    /// sessions whose TTL ran out are not returned by Redis.
    async fn count_sessions(&self) -> Result<Option<usize>, StoreError> {
        let pattern = format!("{}s:*", observe::glob_escape(&self.prefix));
        self.timed(StoreOp::Count, async {
            Ok(observe::count_keys(&self.pool, pattern, self.clustered).await?)
        })
        .await
        .map(Some)
    }
}

struct RedisLock {
    pool: Pool,
    key: String,
    token: String,
    probe: Probe,
}

impl RedisLock {
    async fn timed(
        &self,
        run: impl std::future::Future<Output = Result<bool, Failure>>,
    ) -> Result<bool, StoreError> {
        observe::timed(&self.probe, StoreOp::Unlock, run).await
    }
}

#[async_trait]
impl LockHandle for RedisLock {
    async fn renew(&self, ttl: Duration) -> Result<bool, StoreError> {
        self.timed(async {
            let renewed: i64 = self
                .pool
                .eval(
                    RENEW_SCRIPT,
                    &self.key,
                    vec![self.token.clone(), ttl_millis(ttl).to_string()],
                )
                .await?;
            Ok(renewed == 1)
        })
        .await
    }

    async fn release(&self) -> Result<bool, StoreError> {
        self.timed(async {
            let released: i64 = self
                .pool
                .eval(DELETE_IF_SCRIPT, &self.key, vec![self.token.clone()])
                .await?;
            Ok(released == 1)
        })
        .await
    }

    fn release_on_drop(&self) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (pool, key, token) = (self.pool.clone(), self.key.clone(), self.token.clone());
            runtime.spawn(async move {
                let _ = pool
                    .eval::<i64, _, _, _>(DELETE_IF_SCRIPT, key, vec![token])
                    .await;
            });
        }
    }
}

mod limit;
mod replay;
pub use limit::{SharedVerdict, StableHasher};

#[cfg(test)]
mod tests;
