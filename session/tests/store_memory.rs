//! `MemoryStore`: records, TTLs, the sub/sid indexes and the process-local refresh lock.

use std::sync::Arc;
use std::time::Duration;

use gatehouse_config::SessionStoreConfig;
use gatehouse_session::store::{
    from_config, CacheLookup, CachedStore, MemoryStore, SessionRecord, SessionStore, StoreEvent,
    StoreObserver, StoreOp, StoreOutcome,
};
use serde_json::json;

fn record(sub: &str, sid: Option<&str>) -> SessionRecord {
    SessionRecord {
        tenant: "demo".into(),
        issuer: "https://idp.example/realms/demo".into(),
        sub: sub.to_string(),
        sid: sid.map(str::to_string),
        claims: json!({"sub": sub, "realm_access": {"roles": ["user"]}}).into(),
        access_token_exp: 4_000_000_000,
        refresh_token_enc: Some("v1.enc".to_string()),
        id_token_enc: None,
        created_at: 1_700_000_000,
        expires_at: 4_000_000_000,
        parsed: Default::default(),
    }
}

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn put_get_delete() {
    let store = MemoryStore::new();
    assert_eq!(store.get("a").await, Ok(None));
    let r = record("alice", Some("s1"));
    store.put("a", &r, HOUR).await.unwrap();
    assert_eq!(store.get("a").await, Ok(Some(r.clone())));
    assert_eq!(store.len_hint(), Some(1));

    let mut r2 = r.clone();
    r2.refresh_token_enc = Some("rotated".into());
    store.put("a", &r2, HOUR).await.unwrap();
    assert_eq!(store.get("a").await, Ok(Some(r2)));

    store.delete("a").await.unwrap();
    assert_eq!(store.get("a").await, Ok(None));
    store.delete("a").await.unwrap(); // deleting nothing is fine
    assert_eq!(store.len_hint(), Some(0));
}

#[tokio::test]
async fn records_expire_with_their_ttl_and_sweep_frees_them() {
    let store = MemoryStore::new();
    store
        .put("short", &record("alice", None), Duration::from_millis(60))
        .await
        .unwrap();
    store.put("long", &record("bob", None), HOUR).await.unwrap();
    assert!(store.get("short").await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(store.get("short").await, Ok(None), "expired on read");

    store
        .put("unread", &record("carol", None), Duration::from_millis(10))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(store.len_hint(), Some(2), "expired but not yet swept");
    store.sweep();
    assert_eq!(store.len_hint(), Some(1));
    assert!(store.get("long").await.unwrap().is_some());
    // The swept session's index entry is gone too: nothing left to delete for carol.
    assert_eq!(store.delete_by_sub_or_sid(Some("carol"), None).await, Ok(0));
}

#[tokio::test]
async fn delete_by_sub_and_by_sid() {
    let store = MemoryStore::new();
    store
        .put("a1", &record("alice", Some("idp-1")), HOUR)
        .await
        .unwrap();
    store
        .put("a2", &record("alice", Some("idp-2")), HOUR)
        .await
        .unwrap();
    store.put("a3", &record("alice", None), HOUR).await.unwrap();
    store
        .put("b1", &record("bob", Some("idp-3")), HOUR)
        .await
        .unwrap();

    assert_eq!(store.delete_by_sub_or_sid(None, Some("idp-1")).await, Ok(1));
    assert_eq!(store.get("a1").await, Ok(None));
    assert!(store.get("a2").await.unwrap().is_some());

    assert_eq!(store.delete_by_sub_or_sid(Some("alice"), None).await, Ok(2));
    for id in ["a2", "a3"] {
        assert_eq!(store.get(id).await, Ok(None));
    }
    assert!(store.get("b1").await.unwrap().is_some(), "bob untouched");
    assert_eq!(store.delete_by_sub_or_sid(None, None).await, Ok(0));
    assert_eq!(store.delete_by_sub_or_sid(Some("alice"), None).await, Ok(0));

    // Both at once: the union, each session counted once.
    store
        .put("b2", &record("bob", Some("idp-4")), HOUR)
        .await
        .unwrap();
    assert_eq!(
        store.delete_by_sub_or_sid(Some("bob"), Some("idp-4")).await,
        Ok(2)
    );
    assert_eq!(store.len_hint(), Some(0));
}

#[tokio::test]
async fn an_id_reused_by_another_subject_is_not_deleted_by_the_old_one() {
    let store = MemoryStore::new();
    store
        .put("x", &record("alice", Some("s-a")), HOUR)
        .await
        .unwrap();
    store
        .put("x", &record("bob", Some("s-b")), HOUR)
        .await
        .unwrap();
    assert_eq!(
        store.delete_by_sub_or_sid(Some("alice"), Some("s-a")).await,
        Ok(0)
    );
    assert_eq!(store.get("x").await.unwrap().unwrap().sub, "bob");
    assert_eq!(store.delete_by_sub_or_sid(None, Some("s-b")).await, Ok(1));
}

#[tokio::test]
async fn lock_has_one_holder_and_release_lets_the_next_in() {
    let store = MemoryStore::new();
    let ttl = Duration::from_secs(5);
    let first = store.try_lock("s", ttl).await.unwrap().expect("free lock");
    assert!(store.try_lock("s", ttl).await.unwrap().is_none(), "held");
    assert!(
        store.try_lock("other", ttl).await.unwrap().is_some(),
        "per session"
    );
    assert_eq!(first.release().await, Ok(true));
    let second = store.try_lock("s", ttl).await.unwrap().expect("released");
    assert!(store.try_lock("s", ttl).await.unwrap().is_none());
    drop(second); // dropping releases too
    assert!(store.try_lock("s", ttl).await.unwrap().is_some());
}

#[tokio::test]
async fn an_expired_lock_can_be_taken_and_its_old_holder_loses_it() {
    let store = MemoryStore::new();
    let old = store
        .try_lock("s", Duration::from_millis(40))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(70)).await;
    let new = store
        .try_lock("s", Duration::from_secs(5))
        .await
        .unwrap()
        .expect("expired lock is free");
    assert_eq!(
        old.renew(Duration::from_secs(5)).await,
        Ok(false),
        "token mismatch"
    );
    assert_eq!(
        old.release().await,
        Ok(false),
        "must not free the new holder's lock"
    );
    assert!(store
        .try_lock("s", Duration::from_secs(5))
        .await
        .unwrap()
        .is_none());
    assert_eq!(new.release().await, Ok(true));
}

#[tokio::test]
async fn renew_extends_the_lock() {
    let store = MemoryStore::new();
    let guard = store
        .try_lock("s", Duration::from_millis(50))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(guard.renew(Duration::from_secs(5)).await, Ok(true));
    tokio::time::sleep(Duration::from_millis(90)).await;
    assert!(
        store
            .try_lock("s", Duration::from_secs(1))
            .await
            .unwrap()
            .is_none(),
        "renewed lock outlives its first ttl"
    );
    store.sweep(); // a live lock survives the sweep
    assert!(store
        .try_lock("s", Duration::from_secs(1))
        .await
        .unwrap()
        .is_none());
    assert_eq!(guard.release().await, Ok(true));
}

#[tokio::test]
async fn concurrent_lockers_get_exactly_one_lock() {
    let store = Arc::new(MemoryStore::new());
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .try_lock("hot", Duration::from_secs(5))
                    .await
                    .unwrap()
                    .map(std::mem::forget)
                    .is_some()
            })
        })
        .collect();
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.unwrap());
    }
    assert_eq!(winners, 1);
}

#[tokio::test]
async fn from_config_memory_builds_a_swept_memory_store() {
    let store = from_config(&SessionStoreConfig::default()).await.unwrap();
    assert_eq!(store.len_hint(), Some(0));
    store.put("a", &record("alice", None), HOUR).await.unwrap();
    assert_eq!(store.get("a").await.unwrap().unwrap().sub, "alice");
}

#[test]
fn records_round_trip_as_json() {
    let r = record("alice", Some("s"));
    let text = serde_json::to_string(&r).unwrap();
    assert_eq!(serde_json::from_str::<SessionRecord>(&text).unwrap(), r);
}

#[tokio::test]
async fn replace_writes_only_over_a_live_record_so_a_deleted_session_stays_deleted() {
    let store = MemoryStore::new();
    let r = record("alice", Some("s1"));
    let mut refreshed = r.clone();
    refreshed.access_token_exp += 300;
    assert_eq!(
        store.replace("gone", &refreshed, HOUR).await,
        Ok(false),
        "nothing to replace"
    );
    assert_eq!(store.get("gone").await, Ok(None), "and nothing written");

    store.put("a", &r, HOUR).await.unwrap();
    assert_eq!(store.replace("a", &refreshed, HOUR).await, Ok(true));
    assert_eq!(store.get("a").await, Ok(Some(refreshed.clone())));

    // A logout between a refresh's read and its write: the write brings nothing back.
    store.delete("a").await.unwrap();
    assert_eq!(store.replace("a", &refreshed, HOUR).await, Ok(false));
    assert_eq!(store.get("a").await, Ok(None));

    // Same for a back-channel logout, and for a record that expired.
    store.put("b", &r, HOUR).await.unwrap();
    assert_eq!(store.delete_by_sub_or_sid(Some("alice"), None).await, Ok(1));
    assert_eq!(store.replace("b", &refreshed, HOUR).await, Ok(false));
    store.put("c", &r, Duration::from_millis(20)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(40)).await;
    assert_eq!(store.replace("c", &refreshed, HOUR).await, Ok(false));
    assert_eq!(store.get("c").await, Ok(None));

    // A replaced record stays reachable by back-channel logout under its sid.
    store.put("d", &r, HOUR).await.unwrap();
    let mut moved = refreshed.clone();
    moved.sid = Some("s2".into());
    assert_eq!(store.replace("d", &moved, HOUR).await, Ok(true));
    assert_eq!(store.delete_by_sub_or_sid(None, Some("s2")).await, Ok(1));
    assert_eq!(store.get("d").await, Ok(None));
}

/// Every report a store or cache made.
#[derive(Default)]
struct Recorder {
    commands: std::sync::Mutex<Vec<(StoreOp, StoreOutcome)>>,
    lookups: std::sync::Mutex<Vec<CacheLookup>>,
}

impl StoreObserver for Recorder {
    fn command(&self, op: StoreOp, outcome: StoreOutcome, _: Duration) {
        self.commands.lock().unwrap().push((op, outcome));
    }
    fn cache_lookup(&self, lookup: CacheLookup) {
        self.lookups.lock().unwrap().push(lookup);
    }
    fn event(&self, _: StoreEvent) {}
}

#[tokio::test]
async fn operations_and_cache_lookups_are_reported_and_the_count_is_exact() {
    let recorder = Arc::new(Recorder::default());
    let observer = || Some(recorder.clone() as Arc<dyn StoreObserver>);
    let store = CachedStore::new(
        MemoryStore::new().observed_by(observer()),
        Duration::from_secs(60),
        false,
    )
    .observed_by(observer());
    store.put("a", &record("alice", None), HOUR).await.unwrap();
    store
        .inner()
        .put("gone", &record("bob", None), Duration::from_millis(10))
        .await
        .unwrap();
    store.invalidate("a");
    assert!(
        store.get("a").await.unwrap().is_some(),
        "a miss: read from the store"
    );
    assert!(store.get("a").await.unwrap().is_some(), "a hit");
    assert!(store.get("b").await.unwrap().is_none(), "a miss");
    store.delete("a").await.unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(store.inner().len_hint(), Some(1), "expired, not swept");
    assert_eq!(
        store.inner().count_sessions().await,
        Ok(Some(0)),
        "the count leaves expired records out"
    );
    let ok = StoreOutcome::Ok;
    assert_eq!(
        *recorder.commands.lock().unwrap(),
        vec![
            (StoreOp::Put, ok),
            (StoreOp::Put, ok),
            (StoreOp::Get, ok),
            (StoreOp::Get, ok),
            (StoreOp::Delete, ok),
            (StoreOp::Count, ok),
        ]
    );
    assert_eq!(
        *recorder.lookups.lock().unwrap(),
        vec![CacheLookup::Miss, CacheLookup::Hit, CacheLookup::Miss]
    );
}
