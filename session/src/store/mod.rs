//! Browser-session storage: the [`SessionStore`] trait, the embedded [`MemoryStore`], the
//! [`RedisStore`] (single node or Redis Cluster, over a fred pool) and the [`CachedStore`] that
//! sits in front of either one.
//!
//! The gateway builds one store with [`from_config`], wraps it in a [`CachedStore`] and calls
//! that per request. Session ids are bearer secrets: nothing here logs them.

mod cached;
mod memory;
mod observe;
mod redis;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use gatehouse_config::{SessionStoreConfig, SessionStoreKind};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub use cached::CachedStore;
pub use memory::{MemoryStore, DEFAULT_SWEEP_INTERVAL};
pub(crate) use observe::Probe;
pub use observe::{CacheLookup, StoreEvent, StoreObserver, StoreOp, StoreOutcome};
pub use redis::RedisStore;

/// One browser session's record; stored as serde JSON in Redis.
///
/// It holds no token in clear: the access token is never read after login (identity comes
/// from `claims`, expiry from `access_token_exp`) and is not kept; the refresh and ID tokens
/// are sealed by the gateway (AEAD, scoped to the tenant) before they reach the store. `Debug`
/// shows neither the sealed tokens nor the claims.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct SessionRecord {
    /// The tenant the session was created for; a record is only ever served to that tenant
    /// ([`SessionRecord::belongs_to`]). Empty in records written before it existed (never
    /// served).
    #[serde(default)]
    pub tenant: String,
    /// The identity provider's issuer that authenticated the session (see `tenant`).
    #[serde(default)]
    pub issuer: String,
    /// The subject (`sub` claim) the session belongs to; indexed for back-channel logout.
    pub sub: String,
    /// The IdP's session id (`sid` claim), when it sent one; indexed for back-channel logout.
    pub sid: Option<String>,
    /// The ID-token / access-token claims used for identity.
    pub claims: ClaimsJson,
    /// When the access token expires (unix seconds): the session is refreshed before then.
    pub access_token_exp: u64,
    /// The refresh token, already encrypted by the caller (AEAD); the store never sees plaintext.
    pub refresh_token_enc: Option<String>,
    /// The ID token (for RP-initiated logout's `id_token_hint`), already encrypted by the
    /// caller like the refresh token.
    #[serde(default)]
    pub id_token_enc: Option<String>,
    /// When the session was created (unix seconds).
    pub created_at: u64,
    /// When the session ends (unix seconds); [`CachedStore`] never serves a record past it.
    pub expires_at: u64,
    /// `claims` parsed once per record (not stored).
    #[serde(skip)]
    pub parsed: ParsedClaims,
}

impl std::fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("SessionRecord")
            .field("tenant", &self.tenant)
            .field("issuer", &self.issuer)
            .field("sub", &self.sub)
            .field("sid", &hidden(&self.sid))
            .field("claims", &"<redacted>")
            .field("access_token_exp", &self.access_token_exp)
            .field("refresh_token_enc", &hidden(&self.refresh_token_enc))
            .field("id_token_enc", &hidden(&self.id_token_enc))
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// A record's claims as JSON text: stored and loaded as they are (a JSON object inside the
/// record) and parsed only into typed [`Claims`](crate::claims::Claims) when the record
/// authenticates a request, so loading a record (every request when the local cache is off)
/// builds no JSON tree.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClaimsJson(Box<serde_json::value::RawValue>);

impl ClaimsJson {
    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }
}

impl From<serde_json::Value> for ClaimsJson {
    fn from(value: serde_json::Value) -> Self {
        ClaimsJson(serde_json::value::to_raw_value(&value).expect("a Value always serializes"))
    }
}

impl PartialEq for ClaimsJson {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

/// A record's claims parsed on first use and kept with the record: a request authenticated by
/// a locally cached record then costs an `Arc` clone, not a parse of the claims JSON (a cloned
/// record, which may get other claims by a refresh, parses its own).
pub type ParsedClaims = crate::memo::Memo<Arc<crate::claims::Claims>>;

impl SessionRecord {
    /// The identity this session carries.
    pub fn identity(&self) -> Arc<crate::claims::Claims> {
        Arc::clone(self.parsed.get_or_init(|| {
            use crate::claims::Claims;
            let text = self.claims.get();
            // Not a well-formed object (never written by the gateway): read it as before.
            Arc::new(match Claims::from_json(text.to_owned()) {
                Ok((claims, _)) => claims,
                Err(_) => Claims::from_payload(serde_json::from_str(text).unwrap_or_default()),
            })
        }))
    }

    /// Whether `expires_at` has passed.
    pub fn is_expired(&self) -> bool {
        self.expires_at <= unix_now()
    }

    /// Whether the session was created for `tenant` by `issuer`: a record that fails this is
    /// no session at all for the asking tenant (two tenants may share one store).
    pub fn belongs_to(&self, tenant: &str, issuer: &str) -> bool {
        !self.tenant.is_empty() && self.tenant == tenant && self.issuer == issuer
    }
}

/// Why a store operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    /// The store could not be reached in time: timeout, connection refused or lost, cluster down.
    Unavailable,
    /// A record was found but could not be decoded.
    Corrupt,
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StoreError::Unavailable => "session store unavailable",
            StoreError::Corrupt => "session record corrupt",
        })
    }
}

impl std::error::Error for StoreError {}

/// Where browser sessions live. Implementations are shared across all requests (`Send + Sync`).
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// The record stored under `id`, or `None` when there is none or it has expired.
    async fn get(&self, id: &str) -> Result<Option<SessionRecord>, StoreError>;

    /// Stores `record` under `id` for `ttl` (at least 1 ms), replacing any previous record, and
    /// adds `id` to the record's `sub` and `sid` indexes.
    async fn put(&self, id: &str, record: &SessionRecord, ttl: Duration) -> Result<(), StoreError>;

    /// Replaces the record under `id` only if one is still stored there, atomically (a token
    /// refresh writing back must not bring back a session that a logout or a back-channel
    /// logout deleted meanwhile). `Ok(false)` when there was none. The new record's `sub` and
    /// `sid` are indexed like [`put`](Self::put)'s.
    async fn replace(
        &self,
        id: &str,
        record: &SessionRecord,
        ttl: Duration,
    ) -> Result<bool, StoreError>;

    /// Deletes the record under `id` (no error when there is none).
    async fn delete(&self, id: &str) -> Result<(), StoreError>;

    /// Deletes every session of a subject or an IdP session id (back-channel logout): the store
    /// keeps an index set per sub and per sid. A session is deleted only when its record still
    /// names that sub or sid; returns how many sessions were deleted. `(None, None)` deletes
    /// nothing.
    async fn delete_by_sub_or_sid(
        &self,
        sub: Option<&str>,
        sid: Option<&str>,
    ) -> Result<usize, StoreError>;

    /// A short lock across replicas for refreshing one session: `SET key NX PX ttl` with a random
    /// token. `Ok(None)` when someone else holds it. The guard's [`LockGuard::renew`] extends it
    /// and [`LockGuard::release`] deletes it, both only while the token still matches; a guard
    /// dropped without `release` releases in the background (best effort) or expires after `ttl`.
    async fn try_lock(&self, id: &str, ttl: Duration) -> Result<Option<LockGuard>, StoreError>;

    /// Number of sessions, when cheaply knowable (memory store: may include expired records not
    /// yet swept); `None` for Redis.
    fn len_hint(&self) -> Option<usize>;

    /// Counts the live sessions: a pass over every record, for a periodic gauge, never per
    /// request (memory store: exact; Redis: a paced `SCAN` of the session keys on every
    /// master). `Ok(None)` when the store cannot count. The default is
    /// [`len_hint`](Self::len_hint).
    async fn count_sessions(&self) -> Result<Option<usize>, StoreError> {
        Ok(self.len_hint())
    }
}

/// What a store does for the holder of one lock; implement it to give a custom
/// [`SessionStore`] a lock. Both operations act only while the lock's token still matches.
#[async_trait]
pub trait LockHandle: Send + Sync {
    /// Extends the lock to `ttl` from now; `Ok(false)` when it was lost (expired or taken).
    async fn renew(&self, ttl: Duration) -> Result<bool, StoreError>;
    /// Deletes the lock; `Ok(false)` when it was no longer ours.
    async fn release(&self) -> Result<bool, StoreError>;
    /// Called when the guard is dropped without `release`: start a best-effort release without
    /// blocking (the default does nothing and lets the lock expire).
    fn release_on_drop(&self) {}
}

/// A held refresh lock (see [`SessionStore::try_lock`]).
pub struct LockGuard {
    handle: Box<dyn LockHandle>,
    released: bool,
}

impl LockGuard {
    /// Wraps a store's lock handle.
    pub fn new(handle: Box<dyn LockHandle>) -> LockGuard {
        LockGuard {
            handle,
            released: false,
        }
    }

    /// Extends the lock to `ttl` from now (PEXPIRE only if our token still holds it);
    /// `Ok(false)` when the lock was lost, in which case the caller must stop its work.
    pub async fn renew(&self, ttl: Duration) -> Result<bool, StoreError> {
        self.handle.renew(ttl).await
    }

    /// Keeps the lock until its TTL runs out, releasing nothing (a single-use marker such as a
    /// spent login state, rather than a critical section).
    pub fn keep(mut self) {
        self.released = true;
    }

    /// Releases the lock if our token still holds it; `Ok(false)` when it had already expired
    /// or been taken by someone else (whose lock is left alone).
    pub async fn release(mut self) -> Result<bool, StoreError> {
        self.released = true;
        self.handle.release().await
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if !self.released {
            self.handle.release_on_drop();
        }
    }
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard")
            .field("released", &self.released)
            .finish_non_exhaustive()
    }
}

/// Builds the store `cfg` names: `memory://` → [`MemoryStore`] (with its background sweep),
/// `redis(s)://host:port[/db]` → a centralized [`RedisStore`], `redis(s)-cluster://h1:p1,h2:p2`
/// → a clustered one. Must be called inside a tokio runtime. Never fails because Redis is down
/// (see [`RedisStore::connect`]); fails on a URL it cannot use.
pub async fn from_config(cfg: &SessionStoreConfig) -> Result<Arc<dyn SessionStore>, String> {
    open(cfg, None).await
}

/// [`from_config`] with `observer` told of every operation's latency and outcome (and, for
/// Redis, of the client's connection events).
pub async fn open(
    cfg: &SessionStoreConfig,
    observer: Option<Arc<dyn StoreObserver>>,
) -> Result<Arc<dyn SessionStore>, String> {
    match cfg.kind {
        SessionStoreKind::Memory => {
            let store = Arc::new(MemoryStore::new().observed_by(observer));
            store.spawn_sweeper(DEFAULT_SWEEP_INTERVAL);
            Ok(store)
        }
        SessionStoreKind::Redis
        | SessionStoreKind::Rediss
        | SessionStoreKind::RedisCluster
        | SessionStoreKind::RedissCluster => {
            Ok(Arc::new(RedisStore::connect_observed(cfg, observer).await?))
        }
    }
}

/// A store TTL as whole milliseconds, at least 1 (Redis refuses `PX 0`).
pub(crate) fn ttl_millis(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1)
}

/// Seconds since the unix epoch (0 if the clock is before it).
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A fresh random lock token (128 bits, hex).
pub(crate) fn lock_token() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// A shared store is a store: lets [`CachedStore`] wrap the `Arc<dyn SessionStore>` that
/// [`from_config`] returns.
#[async_trait]
impl<T: SessionStore + ?Sized> SessionStore for Arc<T> {
    async fn get(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        (**self).get(id).await
    }

    async fn put(&self, id: &str, record: &SessionRecord, ttl: Duration) -> Result<(), StoreError> {
        (**self).put(id, record, ttl).await
    }

    async fn replace(
        &self,
        id: &str,
        record: &SessionRecord,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        (**self).replace(id, record, ttl).await
    }

    async fn delete(&self, id: &str) -> Result<(), StoreError> {
        (**self).delete(id).await
    }

    async fn delete_by_sub_or_sid(
        &self,
        sub: Option<&str>,
        sid: Option<&str>,
    ) -> Result<usize, StoreError> {
        (**self).delete_by_sub_or_sid(sub, sid).await
    }

    async fn try_lock(&self, id: &str, ttl: Duration) -> Result<Option<LockGuard>, StoreError> {
        (**self).try_lock(id, ttl).await
    }

    fn len_hint(&self) -> Option<usize> {
        (**self).len_hint()
    }

    async fn count_sessions(&self) -> Result<Option<usize>, StoreError> {
        (**self).count_sessions().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_parsed_once_and_a_clone_parses_its_own() {
        let mut record = SessionRecord {
            tenant: "demo".into(),
            issuer: "https://idp".into(),
            sub: "alice".into(),
            sid: None,
            claims: serde_json::json!({"sub": "alice", "realm_access": {"roles": ["user"]}}).into(),
            access_token_exp: 0,
            refresh_token_enc: None,
            id_token_enc: None,
            created_at: 0,
            expires_at: 0,
            parsed: ParsedClaims::default(),
        };
        let first = record.identity();
        assert!(Arc::ptr_eq(&first, &record.identity()), "parsed once");
        assert_eq!(first.realm_roles, vec!["user".to_string()]);
        let mut refreshed = record.clone();
        refreshed.claims =
            serde_json::json!({"sub": "alice", "realm_access": {"roles": ["admin"]}}).into();
        assert_eq!(refreshed.identity().realm_roles, vec!["admin".to_string()]);
        record.claims = serde_json::Value::Null.into();
        assert_eq!(
            record.identity().realm_roles,
            vec!["user".to_string()],
            "kept with the record"
        );
    }

    fn record() -> SessionRecord {
        SessionRecord {
            tenant: "a".into(),
            issuer: "https://idp/realms/a".into(),
            sub: "alice".into(),
            sid: Some("idp-session-1".into()),
            claims: serde_json::json!({"sub": "alice", "email": "alice@example.com"}).into(),
            access_token_exp: 10,
            refresh_token_enc: Some("sealed-refresh-token".into()),
            id_token_enc: Some("sealed-id-token".into()),
            created_at: 1,
            expires_at: 20,
            parsed: ParsedClaims::default(),
        }
    }

    #[test]
    fn a_record_belongs_to_its_tenant_and_issuer_only() {
        let r = record();
        assert!(r.belongs_to("a", "https://idp/realms/a"));
        assert!(!r.belongs_to("b", "https://idp/realms/a"));
        assert!(!r.belongs_to("a", "https://idp/realms/b"));
        let mut old = record();
        old.tenant.clear();
        old.issuer.clear();
        assert!(
            !old.belongs_to("", ""),
            "a record without a tenant is nobody's"
        );
    }

    #[test]
    fn records_from_before_the_tenant_field_load_and_belong_to_nobody() {
        let json = r#"{"sub":"alice","sid":null,"claims":{"sub":"alice"},"access_token":"at",
            "access_token_exp":5,"refresh_token_enc":null,"id_token":"x.y.z","created_at":1,"expires_at":9}"#;
        let r: SessionRecord = serde_json::from_str(json).expect("old records still decode");
        assert!(!r.belongs_to("demo", ""));
        assert_eq!(r.id_token_enc, None, "a clear ID token is not carried over");
    }

    #[test]
    fn debug_shows_no_token_claim_or_idp_session() {
        let text = format!("{:?}", record());
        for secret in [
            "sealed-refresh-token",
            "sealed-id-token",
            "alice@example.com",
            "idp-session-1",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(
            text.contains("tenant: \"a\"") && text.contains("expires_at: 20"),
            "{text}"
        );
        let stored = serde_json::to_string(&record()).unwrap();
        assert!(
            !stored.contains("access_token\""),
            "no access token is stored: {stored}"
        );
    }
}
