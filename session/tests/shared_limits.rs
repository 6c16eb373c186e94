//! Shared rate-limit buckets (`RedisStore::take_token`) against a real Redis Cluster: the GCRA
//! step, the key under `key-prefix` in one slot, its expiry, and concurrent takers.

use std::sync::Arc;
use std::time::Duration;

use gatehouse_config::{OnUnavailable, SessionStoreConfig, SessionStoreKind};
use gatehouse_session::store::{RedisStore, SharedVerdict};
use gatehouse_test_support::redis::{cli, Cluster};

async fn store(cluster: &Cluster) -> RedisStore {
    let cfg = SessionStoreConfig {
        url: cluster.url(),
        kind: SessionStoreKind::RedisCluster,
        pool_size: 2,
        key_prefix: "gh:".to_string(),
        timeout: Duration::from_millis(500),
        local_cache_ttl: Duration::from_secs(5),
        on_unavailable: OnUnavailable::FailClosed,
    };
    let store = RedisStore::connect(&cfg).await.expect("connect");
    assert!(store.wait_connected(Duration::from_secs(10)).await);
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_bucket_is_one_hash_tagged_key_that_refills_and_expires() {
    let cluster = Cluster::start();
    let store = store(&cluster).await;
    let key = store.limit_key("demo/route/0:00ff");
    assert_eq!(key, "gh:rl:{demo/route/0:00ff}");
    // 1 token every 400 ms, 2 at most.
    let take = || store.take_token(key.clone(), 400, 2);
    assert_eq!(take().await.unwrap(), SharedVerdict::Allowed(1));
    assert_eq!(take().await.unwrap(), SharedVerdict::Allowed(0));
    match take().await.unwrap() {
        SharedVerdict::Limited(ms) => assert!((300..=400).contains(&ms), "wait {ms} ms"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // The key lives on the master of its hash tag's slot, with a TTL no longer than a refill.
    let master = cluster.master_of(&key);
    assert_eq!(cluster.keyslot(&key), cluster.keyslot("demo/route/0:00ff"));
    let ttl: i64 = cli(master, &["pttl", &key]).unwrap().parse().unwrap();
    assert!(ttl > 0 && ttl <= 801, "pttl {ttl}");
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(take().await.unwrap(), SharedVerdict::Allowed(0));
    // Full again after the window: the key is gone.
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(cli(master, &["exists", &key]).unwrap(), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_takers_share_exactly_the_burst() {
    let cluster = Cluster::start();
    let store = Arc::new(store(&cluster).await);
    let key = store.limit_key("demo/-/0");
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let (store, key) = (store.clone(), key.clone());
            tokio::spawn(async move { store.take_token(key, 60_000, 25).await.unwrap() })
        })
        .collect();
    let mut allowed = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), SharedVerdict::Allowed(_)) {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 25);
}
