//! `CachedStore` over a scripted inner store: local hits, serve-cached and fail-closed.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use gatehouse_session::store::{
    CachedStore, LockGuard, MemoryStore, SessionRecord, SessionStore, StoreError,
};
use serde_json::json;

fn record(sub: &str, expires_at: u64) -> SessionRecord {
    SessionRecord {
        tenant: "demo".into(),
        issuer: "https://idp.example/realms/demo".into(),
        sub: sub.to_string(),
        sid: Some(format!("sid-{sub}")),
        claims: json!({"sub": sub}).into(),
        access_token_exp: expires_at,
        refresh_token_enc: None,
        id_token_enc: None,
        created_at: 1_700_000_000,
        expires_at,
        parsed: Default::default(),
    }
}

const FAR: u64 = 4_000_000_000;
const HOUR: Duration = Duration::from_secs(3600);

/// The handle the cache owns; the test keeps another to script the store.
struct Shared(Arc<Flaky>);

/// A memory store that counts `get`s and can be switched to answer `Unavailable`.
#[derive(Default)]
struct Flaky {
    inner: MemoryStore,
    gets: AtomicUsize,
    down: AtomicBool,
}

impl Flaky {
    /// Writes `r` straight into the store behind the cache (for an hour), as another replica
    /// would.
    async fn seed(&self, id: &str, r: &SessionRecord) {
        self.inner.put(id, r, HOUR).await.unwrap();
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable)
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl SessionStore for Shared {
    async fn get(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        self.0.gets.fetch_add(1, Ordering::SeqCst);
        self.0.check()?;
        self.0.inner.get(id).await
    }
    async fn put(&self, id: &str, r: &SessionRecord, ttl: Duration) -> Result<(), StoreError> {
        self.0.check()?;
        self.0.inner.put(id, r, ttl).await
    }
    async fn replace(
        &self,
        id: &str,
        r: &SessionRecord,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.0.check()?;
        self.0.inner.replace(id, r, ttl).await
    }
    async fn delete(&self, id: &str) -> Result<(), StoreError> {
        self.0.check()?;
        self.0.inner.delete(id).await
    }
    async fn delete_by_sub_or_sid(
        &self,
        sub: Option<&str>,
        sid: Option<&str>,
    ) -> Result<usize, StoreError> {
        self.0.check()?;
        self.0.inner.delete_by_sub_or_sid(sub, sid).await
    }
    async fn try_lock(&self, id: &str, ttl: Duration) -> Result<Option<LockGuard>, StoreError> {
        self.0.check()?;
        self.0.inner.try_lock(id, ttl).await
    }
    fn len_hint(&self) -> Option<usize> {
        self.0.inner.len_hint()
    }
}

fn cached(local_ttl: Duration, serve_cached: bool) -> (Arc<Flaky>, CachedStore<Shared>) {
    let flaky = Arc::new(Flaky::default());
    (
        Arc::clone(&flaky),
        CachedStore::new(Shared(flaky), local_ttl, serve_cached),
    )
}

#[tokio::test]
async fn a_hit_within_the_local_ttl_makes_no_store_call() {
    let (flaky, store) = cached(Duration::from_millis(200), false);
    flaky.seed("a", &record("alice", FAR)).await;
    let first = store.get("a").await.unwrap().unwrap();
    assert_eq!(flaky.gets.load(Ordering::SeqCst), 1);
    for _ in 0..10 {
        let again = store.get("a").await.unwrap().unwrap();
        assert!(Arc::ptr_eq(&first, &again), "the same cached Arc");
    }
    assert_eq!(
        flaky.gets.load(Ordering::SeqCst),
        1,
        "no round trip within the ttl"
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    store.get("a").await.unwrap().unwrap();
    assert_eq!(
        flaky.gets.load(Ordering::SeqCst),
        2,
        "revalidated after the ttl"
    );
}

#[tokio::test]
async fn put_caches_and_delete_and_invalidate_evict() {
    let (flaky, store) = cached(HOUR, false);
    store.put("a", &record("alice", FAR), HOUR).await.unwrap();
    assert!(store.get("a").await.unwrap().is_some());
    assert_eq!(flaky.gets.load(Ordering::SeqCst), 0, "put validated it");

    store.invalidate("a");
    assert!(store.get("a").await.unwrap().is_some());
    assert_eq!(flaky.gets.load(Ordering::SeqCst), 1);

    store.delete("a").await.unwrap();
    assert_eq!(store.get("a").await, Ok(None));
    assert_eq!(flaky.gets.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn back_channel_logout_evicts_locally() {
    let (_flaky, store) = cached(HOUR, true);
    store.put("a1", &record("alice", FAR), HOUR).await.unwrap();
    store.put("b1", &record("bob", FAR), HOUR).await.unwrap();
    assert_eq!(
        store.delete_by_sub_or_sid(None, Some("sid-alice")).await,
        Ok(1)
    );
    assert_eq!(store.get("a1").await, Ok(None));
    assert!(store.get("b1").await.unwrap().is_some());
}

#[tokio::test]
async fn serve_cached_serves_a_validated_record_while_the_store_is_unavailable() {
    let (flaky, store) = cached(Duration::ZERO, true);
    flaky.seed("a", &record("alice", FAR)).await;
    flaky.seed("never-read", &record("eve", FAR)).await;
    let validated = store.get("a").await.unwrap().unwrap();

    flaky.down.store(true, Ordering::SeqCst);
    let served = store
        .get("a")
        .await
        .unwrap()
        .expect("served from the cache");
    assert_eq!(served, validated);
    assert_eq!(
        flaky.gets.load(Ordering::SeqCst),
        2,
        "the store was asked first"
    );
    assert_eq!(
        store.get("never-read").await,
        Err(StoreError::Unavailable),
        "never a record that was not validated before"
    );

    flaky.down.store(false, Ordering::SeqCst);
    flaky.inner.delete("a").await.unwrap();
    assert_eq!(
        store.get("a").await,
        Ok(None),
        "the store's answer wins when it is up"
    );
    flaky.down.store(true, Ordering::SeqCst);
    assert_eq!(
        store.get("a").await,
        Err(StoreError::Unavailable),
        "evicted on None"
    );
}

#[tokio::test]
async fn serve_cached_stops_at_the_records_own_expiry() {
    let (flaky, store) = cached(Duration::ZERO, true);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    flaky.seed("a", &record("alice", now + 1)).await;
    store.get("a").await.unwrap().unwrap();
    flaky.down.store(true, Ordering::SeqCst);
    assert!(store.get("a").await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(store.get("a").await, Err(StoreError::Unavailable));
    store.sweep();
    assert_eq!(store.cached_len(), 0, "expired entries are swept");
}

#[tokio::test]
async fn fail_closed_returns_unavailable_even_for_a_cached_record() {
    let (flaky, store) = cached(Duration::from_millis(50), false);
    flaky.seed("a", &record("alice", FAR)).await;
    store.get("a").await.unwrap().unwrap();
    flaky.down.store(true, Ordering::SeqCst);
    assert!(
        store.get("a").await.unwrap().is_some(),
        "still within the local ttl"
    );
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(store.get("a").await, Err(StoreError::Unavailable));
    store.sweep();
    assert_eq!(store.cached_len(), 0);
}

#[tokio::test]
async fn with_the_local_cache_off_every_get_reads_the_store_but_an_unchanged_record_is_parsed_once()
{
    let (flaky, store) = cached(Duration::ZERO, false);
    flaky.seed("a", &record("alice", FAR)).await;
    let first = store.get("a").await.unwrap().unwrap();
    let identity = first.identity();
    let again = store.get("a").await.unwrap().unwrap();
    assert_eq!(
        flaky.gets.load(Ordering::SeqCst),
        2,
        "no local trust: both reads hit the store"
    );
    assert!(
        Arc::ptr_eq(&first, &again),
        "the unchanged record is the cached one"
    );
    assert!(
        Arc::ptr_eq(&identity, &again.identity()),
        "its claims are not parsed again"
    );
    // Another replica changes the session in the store: the next read returns the new claims.
    let mut changed = record("alice", FAR);
    changed.claims = json!({"sub": "alice", "groups": ["ops"]}).into();
    flaky.seed("a", &changed).await;
    let fresh = store.get("a").await.unwrap().unwrap();
    assert!(!Arc::ptr_eq(&first, &fresh));
    assert_eq!(fresh.identity().groups, vec!["ops".to_string()]);
    // ...and deletes it: gone at once, and never served from the local entry while down.
    flaky.inner.delete("a").await.unwrap();
    assert_eq!(store.get("a").await, Ok(None));
    flaky.seed("a", &changed).await;
    store.get("a").await.unwrap().unwrap();
    flaky.down.store(true, Ordering::SeqCst);
    assert_eq!(
        store.get("a").await,
        Err(StoreError::Unavailable),
        "fail-closed"
    );
    assert_eq!(flaky.gets.load(Ordering::SeqCst), 6);
}

#[tokio::test]
async fn replace_caches_a_written_record_and_evicts_a_session_deleted_meanwhile() {
    let (flaky, store) = cached(HOUR, false);
    let mut refreshed = record("alice", FAR);
    refreshed.access_token_exp = FAR - 1;
    assert_eq!(store.replace("a", &refreshed, HOUR).await, Ok(false));
    assert_eq!(store.get("a").await, Ok(None));

    store.put("a", &record("alice", FAR), HOUR).await.unwrap();
    assert_eq!(store.replace("a", &refreshed, HOUR).await, Ok(true));
    let gets = flaky.gets.load(Ordering::SeqCst);
    assert_eq!(store.get("a").await.unwrap().as_deref(), Some(&refreshed));
    assert_eq!(flaky.gets.load(Ordering::SeqCst), gets, "cached as written");

    // Deleted behind this cache (another replica's logout): the write-back finds nothing and
    // the local copy is dropped too, so it is not served for local-cache-ttl either.
    flaky.inner.delete("a").await.unwrap();
    assert_eq!(store.replace("a", &refreshed, HOUR).await, Ok(false));
    assert_eq!(store.get("a").await, Ok(None));
}
