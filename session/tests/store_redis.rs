//! `RedisStore` against real Redis: a 6-node cluster (3 masters + 3 replicas) and a single
//! node, both started per test on free loopback ports by `testing/redis/cluster.sh`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse_config::{OnUnavailable, SessionStoreConfig, SessionStoreKind};
use gatehouse_session::store::{
    from_config, CacheLookup, CachedStore, RedisStore, SessionRecord, SessionStore, StoreError,
    StoreEvent, StoreObserver, StoreOp, StoreOutcome,
};
use gatehouse_test_support::redis;
use redis::{cli, free_base, Cluster, Single};
use serde_json::json;

const HOUR: Duration = Duration::from_secs(3600);

/// The cluster tests share the machine; the failover test takes it alone. Its 2 s
/// `cluster-node-timeout` is what makes a failover quick, and on a starved 2-core CI machine
/// the same timeout can let a busy node be voted out before the test kills one, which loses
/// the writes it took meanwhile (Redis Cluster's documented write loss), not the store's fault.
static MACHINE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

fn record(sub: &str, sid: Option<&str>) -> SessionRecord {
    SessionRecord {
        tenant: "demo".into(),
        issuer: "https://idp.example/realms/demo".into(),
        sub: sub.to_string(),
        sid: sid.map(str::to_string),
        claims: json!({"sub": sub, "groups": ["/staff"]}).into(),
        access_token_exp: 4_000_000_000,
        refresh_token_enc: Some("v1.nonce.ciphertext".to_string()),
        id_token_enc: Some("v2.sealed.id-token".to_string()),
        created_at: 1_700_000_000,
        expires_at: 4_000_000_000,
        parsed: Default::default(),
    }
}

fn config(url: &str, kind: SessionStoreKind, timeout_ms: u64) -> SessionStoreConfig {
    SessionStoreConfig {
        url: url.to_string(),
        kind,
        pool_size: 4,
        key_prefix: "gh:".to_string(),
        timeout: Duration::from_millis(timeout_ms),
        local_cache_ttl: Duration::from_secs(5),
        on_unavailable: OnUnavailable::FailClosed,
    }
}

async fn connected(cfg: &SessionStoreConfig) -> RedisStore {
    let store = RedisStore::connect(cfg).await.expect("connect");
    assert!(
        store.wait_connected(Duration::from_secs(10)).await,
        "pool never connected"
    );
    store
}

/// Every report a store made, in order.
#[derive(Default)]
struct Recorder {
    commands: std::sync::Mutex<Vec<(StoreOp, StoreOutcome, Duration)>>,
    events: std::sync::Mutex<Vec<StoreEvent>>,
}

impl StoreObserver for Recorder {
    fn command(&self, op: StoreOp, outcome: StoreOutcome, elapsed: Duration) {
        self.commands.lock().unwrap().push((op, outcome, elapsed));
    }
    fn cache_lookup(&self, _: CacheLookup) {}
    fn event(&self, event: StoreEvent) {
        self.events.lock().unwrap().push(event);
    }
}

impl Recorder {
    fn count(&self, op: StoreOp, outcome: StoreOutcome) -> usize {
        let commands = self.commands.lock().unwrap();
        commands
            .iter()
            .filter(|(o, r, _)| *o == op && *r == outcome)
            .count()
    }
}

async fn cluster_store(cluster: &Cluster) -> RedisStore {
    connected(&config(&cluster.url(), SessionStoreKind::RedisCluster, 500)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_put_get_delete_spread_over_masters_with_ttls() {
    let _shared = MACHINE.read().await;
    let cluster = Cluster::start();
    let store = cluster_store(&cluster).await;
    assert!(store.is_clustered());
    assert_eq!(store.pool_size(), 4, "fred pool holds pool-size clients");

    let ids: Vec<String> = (0..24).map(|i| format!("session-{i}")).collect();
    let mut slots = HashSet::new();
    let mut masters = HashSet::new();
    for id in &ids {
        let key = store.session_key(id);
        slots.insert(cluster.keyslot(&key));
        masters.insert(cluster.master_of(&key));
    }
    assert!(slots.len() > 10, "ids land in different slots: {slots:?}");
    assert_eq!(masters.len(), 3, "and on every master");

    for (i, id) in ids.iter().enumerate() {
        let r = record(&format!("user-{i}"), Some(&format!("sid-{i}")));
        store.put(id, &r, HOUR).await.unwrap();
        assert_eq!(store.get(id).await, Ok(Some(r)));
    }
    // The count scans every master for the session keys only (not the sub/sid indexes).
    assert_eq!(store.count_sessions().await, Ok(Some(ids.len())));
    // Every record is where the cluster says, with its TTL.
    for id in &ids {
        let key = store.session_key(id);
        let pttl: i64 = cli(cluster.master_of(&key), &["pttl", &key])
            .unwrap()
            .parse()
            .unwrap();
        assert!(pttl > 0 && pttl <= 3_600_000, "PTTL {pttl}");
    }
    // And readable through redis-cli's own redirection handling.
    let raw = cluster.cli_c(&["get", &store.session_key(&ids[0])]);
    assert_eq!(
        serde_json::from_str::<SessionRecord>(&raw).unwrap().sub,
        "user-0"
    );

    for id in &ids {
        store.delete(id).await.unwrap();
        assert_eq!(store.get(id).await, Ok(None));
    }
    assert_eq!(store.count_sessions().await, Ok(Some(0)));

    store
        .put("short", &record("u", None), Duration::from_millis(300))
        .await
        .unwrap();
    assert!(store.get("short").await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(store.get("short").await, Ok(None), "expired by Redis");

    // An undecodable record is Corrupt, not a crash or a session.
    let key = store.session_key("bad");
    cli(cluster.master_of(&key), &["set", &key, "{not json"]).unwrap();
    assert_eq!(store.get("bad").await, Err(StoreError::Corrupt));
    assert_eq!(store.len_hint(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_replace_never_revives_a_deleted_session() {
    let _shared = MACHINE.read().await;
    let cluster = Cluster::start();
    let store = cluster_store(&cluster).await;
    let r = record("alice", Some("idp-1"));
    let mut refreshed = r.clone();
    refreshed.access_token_exp += 300;
    assert_eq!(store.replace("never", &refreshed, HOUR).await, Ok(false));
    assert_eq!(store.get("never").await, Ok(None));

    store.put("live", &r, HOUR).await.unwrap();
    assert_eq!(store.replace("live", &refreshed, HOUR).await, Ok(true));
    assert_eq!(store.get("live").await, Ok(Some(refreshed.clone())));
    let key = store.session_key("live");
    let pttl: i64 = cli(cluster.master_of(&key), &["pttl", &key])
        .unwrap()
        .parse()
        .unwrap();
    assert!(pttl > 3_000_000, "the new TTL is set: {pttl}");

    // Logout, then the refresh's write-back: still gone.
    store.delete("live").await.unwrap();
    assert_eq!(store.replace("live", &refreshed, HOUR).await, Ok(false));
    assert_eq!(store.get("live").await, Ok(None));

    // Back-channel logout, then the write-back: still gone.
    store.put("bcl", &r, HOUR).await.unwrap();
    assert_eq!(store.delete_by_sub_or_sid(None, Some("idp-1")).await, Ok(1));
    assert_eq!(store.replace("bcl", &refreshed, HOUR).await, Ok(false));
    assert_eq!(store.get("bcl").await, Ok(None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_delete_by_sub_and_sid_across_slots() {
    let _shared = MACHINE.read().await;
    let cluster = Cluster::start();
    let store = cluster_store(&cluster).await;
    for (id, sub, sid) in [
        ("a1", "alice", Some("idp-1")),
        ("a2", "alice", Some("idp-2")),
        ("a3", "alice", None),
        ("b1", "bob", Some("idp-3")),
        ("reused", "alice", Some("idp-1")),
    ] {
        store.put(id, &record(sub, sid), HOUR).await.unwrap();
    }
    // "reused" now belongs to carol: alice's logout must not touch it.
    store
        .put("reused", &record("carol", Some("idp-9")), HOUR)
        .await
        .unwrap();
    let index_key = "gh:sub:alice";
    let pttl: i64 = cli(cluster.master_of(index_key), &["pttl", index_key])
        .unwrap()
        .parse()
        .unwrap();
    assert!(pttl > 0, "index sets expire too");

    assert_eq!(store.delete_by_sub_or_sid(None, Some("idp-1")).await, Ok(1));
    assert_eq!(store.get("a1").await, Ok(None));
    assert_eq!(store.delete_by_sub_or_sid(Some("alice"), None).await, Ok(2));
    for id in ["a2", "a3"] {
        assert_eq!(store.get(id).await, Ok(None));
    }
    assert_eq!(store.get("reused").await.unwrap().unwrap().sub, "carol");
    assert!(store.get("b1").await.unwrap().is_some());
    assert_eq!(store.delete_by_sub_or_sid(Some("alice"), None).await, Ok(0));
    assert_eq!(
        store.delete_by_sub_or_sid(Some("bob"), Some("idp-9")).await,
        Ok(2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_lock_is_shared_by_two_replicas_and_bound_to_its_token() {
    let _shared = MACHINE.read().await;
    let cluster = Cluster::start();
    let (a, b) = (cluster_store(&cluster).await, cluster_store(&cluster).await);
    let ttl = Duration::from_secs(5);

    // Many concurrent attempts from two "replicas": exactly one wins.
    let (ra, rb) = futures_util::future::join(
        futures_util::future::join_all((0..8).map(|_| a.try_lock("s1", ttl))),
        futures_util::future::join_all((0..8).map(|_| b.try_lock("s1", ttl))),
    )
    .await;
    let mut guards: Vec<_> = ra
        .into_iter()
        .chain(rb)
        .filter_map(|r| r.unwrap())
        .collect();
    assert_eq!(guards.len(), 1, "one holder");
    let held = guards.pop().unwrap();
    let lock_key = a.lock_key("s1");
    let pttl: i64 = cli(cluster.master_of(&lock_key), &["pttl", &lock_key])
        .unwrap()
        .parse()
        .unwrap();
    assert!(pttl > 0 && pttl <= 5000);
    assert!(b.try_lock("s1", ttl).await.unwrap().is_none());
    assert_eq!(held.release().await, Ok(true));
    let next = b.try_lock("s1", ttl).await.unwrap().expect("released");
    assert_eq!(next.release().await, Ok(true));

    // Renew extends past the first ttl.
    let short = Duration::from_millis(300);
    let g = a.try_lock("s2", short).await.unwrap().unwrap();
    assert_eq!(g.renew(Duration::from_secs(5)).await, Ok(true));
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(b.try_lock("s2", ttl).await.unwrap().is_none(), "renewed");
    assert_eq!(g.release().await, Ok(true));

    // An expired lock is taken by the other replica; the old holder can neither renew nor
    // release it.
    let old = a.try_lock("s3", short).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(450)).await;
    let new = b
        .try_lock("s3", ttl)
        .await
        .unwrap()
        .expect("expired lock is free");
    assert_eq!(old.renew(ttl).await, Ok(false));
    assert_eq!(old.release().await, Ok(false));
    assert!(a.try_lock("s3", ttl).await.unwrap().is_none(), "still b's");
    assert_eq!(new.renew(ttl).await, Ok(true));
    drop(new); // released in the background
    assert!(
        wait_for_lock(&a, "s3").await,
        "a dropped guard releases its lock"
    );
}

async fn wait_for_lock(store: &RedisStore, id: &str) -> bool {
    for _ in 0..40 {
        if let Ok(Some(g)) = store.try_lock(id, Duration::from_secs(1)).await {
            let _ = g.release().await;
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_node_redis_url_works_too() {
    let _shared = MACHINE.read().await;
    let redis = Single::start();
    let cfg = config(&format!("{}/3", redis.url()), SessionStoreKind::Redis, 500);
    let store = from_config(&cfg).await.unwrap();
    let ready = wait_for_ok(&*store, Duration::from_secs(10)).await;
    assert!(ready, "single node never answered");
    store
        .put("a", &record("alice", Some("s")), HOUR)
        .await
        .unwrap();
    assert_eq!(store.get("a").await.unwrap().unwrap().sub, "alice");
    // Database 3 was selected.
    let pttl: i64 = cli(redis.port, &["-n", "3", "pttl", "gh:s:a"])
        .unwrap()
        .parse()
        .unwrap();
    assert!(pttl > 0);
    let g = store.try_lock("a", HOUR).await.unwrap().unwrap();
    assert!(store.try_lock("a", HOUR).await.unwrap().is_none());
    assert_eq!(g.release().await, Ok(true));
    assert_eq!(store.delete_by_sub_or_sid(None, Some("s")).await, Ok(1));
    assert_eq!(store.get("a").await, Ok(None));
    assert_eq!(store.len_hint(), None);
}

async fn wait_for_ok(store: &dyn SessionStore, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if store.get("probe").await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_at_connect_is_unavailable_until_it_comes_up() {
    let _shared = MACHINE.read().await;
    let port = free_base(1);
    let cfg = config(
        &format!("redis://127.0.0.1:{port}"),
        SessionStoreKind::Redis,
        100,
    );
    let store = RedisStore::connect(&cfg)
        .await
        .expect("connect does not need Redis up");
    assert!(!store.is_connected());
    for _ in 0..3 {
        let start = Instant::now();
        assert_eq!(store.get("a").await, Err(StoreError::Unavailable));
        assert_eq!(
            store.put("a", &record("alice", None), HOUR).await,
            Err(StoreError::Unavailable)
        );
        assert!(
            start.elapsed() < Duration::from_millis(2 * 100 + 400),
            "two ops within timeout + slack: {:?}",
            start.elapsed()
        );
    }

    let redis = Single::start_on(port);
    let start = Instant::now();
    assert!(
        wait_for_ok(&store, Duration::from_secs(15)).await,
        "store never recovered"
    );
    eprintln!("recovered {:?} after Redis came up", start.elapsed());
    store.put("a", &record("alice", None), HOUR).await.unwrap();
    assert!(store.get("a").await.unwrap().is_some());
    drop(redis);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_store_over_redis_serves_validated_records_only_when_configured() {
    let _shared = MACHINE.read().await;
    let redis = Single::start();
    let cfg = config(&redis.url(), SessionStoreKind::Redis, 100);
    let serve = CachedStore::new(connected(&cfg).await, Duration::ZERO, true);
    let closed = CachedStore::new(connected(&cfg).await, Duration::ZERO, false);
    serve.put("a", &record("alice", None), HOUR).await.unwrap();
    serve
        .inner()
        .put("b", &record("bob", None), HOUR)
        .await
        .unwrap();
    assert!(serve.get("a").await.unwrap().is_some());
    assert!(closed.get("a").await.unwrap().is_some());

    redis.shutdown();
    assert_eq!(serve.get("a").await.unwrap().unwrap().sub, "alice");
    assert_eq!(
        serve.get("b").await,
        Err(StoreError::Unavailable),
        "b was never validated here"
    );
    assert_eq!(closed.get("a").await, Err(StoreError::Unavailable));
}

/// Kills one master while a loop reads and writes; asserts that operations succeed again after
/// the failover window and that every record written *and replicated* before the kill (the
/// test waits for replica offsets to catch up) is still there. Writes acknowledged during the
/// outage are not asserted: Redis replication is asynchronous and may lose them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_failover_recovers_and_keeps_replicated_records() {
    let _alone = MACHINE.write().await;
    let cluster = Cluster::start();
    let recorder = Arc::new(Recorder::default());
    let cfg = config(&cluster.url(), SessionStoreKind::RedisCluster, 200);
    let store =
        RedisStore::connect_observed(&cfg, Some(recorder.clone() as Arc<dyn StoreObserver>))
            .await
            .expect("connect");
    assert!(
        store.wait_connected(Duration::from_secs(10)).await,
        "pool never connected"
    );
    let store = Arc::new(store);
    let before: Vec<String> = (0..200).map(|i| format!("pre-{i}")).collect();
    for id in &before {
        store.put(id, &record(id, None), HOUR).await.unwrap();
    }
    assert!(
        cluster.wait_replicated(Duration::from_secs(10)),
        "replicas never caught up"
    );
    // Every record is there before the kill: a loss found below is the failover's.
    for id in &before {
        let got = store.get(id).await.unwrap();
        assert_eq!(
            got.map(|r| r.sub),
            Some(id.clone()),
            "record {id} missing before the kill"
        );
    }

    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let load = {
        let (store, ok, failed) = (Arc::clone(&store), Arc::clone(&ok), Arc::clone(&failed));
        tokio::spawn(async move {
            // (elapsed, success) per operation, ~10 s of traffic.
            let mut log = Vec::new();
            let mut i = 0u64;
            while start.elapsed() < Duration::from_secs(12) {
                let id = format!("load-{}", i % 500);
                let r = if i & 1 == 0 {
                    store.put(&id, &record(&id, None), HOUR).await
                } else {
                    store.get(&id).await.map(|_| ())
                };
                let counter = if r.is_ok() { &ok } else { &failed };
                counter.fetch_add(1, Ordering::Relaxed);
                log.push((start.elapsed(), r.is_ok()));
                i += 1;
                if r.is_err() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            log
        })
    };

    tokio::time::sleep(Duration::from_secs(1)).await;
    let dead = cluster.kill_a_master();
    let killed_at = start.elapsed();
    assert!(
        tokio::task::block_in_place(|| cluster.wait_failover(dead, Duration::from_secs(15))),
        "no replica took over"
    );
    let promoted_at = start.elapsed();
    let log = load.await.unwrap();

    let last_failure = log
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(t, _)| *t)
        .max()
        .unwrap_or(killed_at);
    let after: Vec<_> = log.iter().filter(|(t, _)| *t > last_failure).collect();
    eprintln!(
        "failover: killed at {killed_at:?}, promoted at {promoted_at:?}, last failure at \
         {last_failure:?}, {} ok / {} failed, {} ops after recovery",
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        after.len()
    );
    assert!(
        last_failure < Duration::from_secs(10),
        "operations still failing {last_failure:?} into the run (killed at {killed_at:?})"
    );
    // Every operation was reported, each failure with the kind fred gave it.
    let (puts, gets) = (StoreOp::Put, StoreOp::Get);
    let reported_failures: usize = StoreOutcome::ALL
        .iter()
        .filter(|o| **o != StoreOutcome::Ok)
        .map(|o| recorder.count(puts, *o) + recorder.count(gets, *o))
        .sum();
    let failures = failed.load(Ordering::Relaxed);
    assert_eq!(
        reported_failures, failures,
        "each failed operation reported once"
    );
    assert!(failures > 0, "the kill made operations fail");
    let kinds: HashSet<StoreOutcome> = recorder
        .commands
        .lock()
        .unwrap()
        .iter()
        .map(|(_, o, _)| *o)
        .filter(|o| *o != StoreOutcome::Ok)
        .collect();
    assert!(
        kinds.iter().all(|k| matches!(
            k,
            StoreOutcome::Timeout
                | StoreOutcome::ConnectionLost
                | StoreOutcome::ClusterDown
                | StoreOutcome::Redirect
                | StoreOutcome::Routing
        )),
        "a dead master fails by timeout, lost connection or cluster state, never as other: {kinds:?}"
    );
    let timeouts = recorder
        .commands
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, o, _)| *o == StoreOutcome::Timeout)
        .map(|(_, _, took)| *took)
        .collect::<Vec<_>>();
    assert!(
        timeouts.iter().all(|t| *t >= Duration::from_millis(150)),
        "a timeout's latency is the wait it cost: {timeouts:?}"
    );
    let events = recorder.events.lock().unwrap().clone();
    assert!(
        events.contains(&StoreEvent::ConnectionError) || events.contains(&StoreEvent::Reconnect),
        "the lost connection was reported: {events:?}"
    );
    assert!(after.len() > 100, "traffic flowed after recovery");

    for id in &before {
        let got = store.get(id).await.unwrap();
        if got.as_ref().map(|r| &r.sub) != Some(id) {
            // Seen on CI twice (both times `pre-2`, nothing else reported): show the
            // cluster as it is now, for whoever chases it.
            let live: Vec<u16> = cluster.ports().into_iter().filter(|p| *p != dead).collect();
            for p in &live {
                let dbsize = cli(*p, &["dbsize"]).unwrap_or_else(|e| e);
                let role = cli(*p, &["role"]).unwrap_or_else(|e| e).replace('\n', " ");
                eprintln!("node {p}: dbsize {dbsize}, role {role}");
            }
            eprintln!(
                "killed {dead}; cluster nodes:\n{}",
                cli(live[0], &["cluster", "nodes"]).unwrap_or_else(|e| e)
            );
        }
        assert_eq!(got.map(|r| r.sub), Some(id.clone()), "record {id} lost");
    }
}
