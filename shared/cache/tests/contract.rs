//! THE contract suite: every port and policy, run against the in-memory backend, a real
//! single-node redis-server, a real 3-master Redis cluster and the same cluster speaking TLS
//! only (all started by the tests on free ports). An adapter is correct when it passes all of it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use livecache_cache::entry;
use livecache_cache::{
    Backend, Cache, Clock, Codec, Counters, DeferredTasks, ExpiryIndex, KeyTtl, Keyspace, KvStore, LoadError,
    ManualClock, MemoryBackend, Policy, RedisBackend, RedisConfig, Served, Swap, L1_MIN_VALUE,
};
use livecache_cache::{Compression, TAG_LZ4_JSON, TAG_ZLIB_JSON};
use livecache_testkit::{shared_cluster, shared_redis, shared_tls_cluster, test_ca, unique_prefix};
use serde::{Deserialize, Serialize};

struct Fixture {
    backend: Arc<dyn Backend>,
    clock: Arc<ManualClock>,
    keys: Keyspace,
    tasks: Arc<DeferredTasks>,
    /// Whether the backend keeps its own (real) time.
    real_time: bool,
    cluster: bool,
}

impl Fixture {
    async fn memory(name: &str) -> Self {
        let clock = Arc::new(ManualClock::new());
        let backend = Arc::new(MemoryBackend::with_clock(100_000, clock.clone()));
        Self::new(name, backend, clock, false, false)
    }

    async fn redis(name: &str) -> Self {
        let cfg = RedisConfig::from_url(&shared_redis().url()).unwrap();
        let backend = Arc::new(RedisBackend::connect(cfg).await.unwrap());
        Self::new(name, backend, Arc::new(ManualClock::new()), true, false)
    }

    async fn cluster(name: &str) -> Self {
        let cfg = RedisConfig::from_url(&shared_cluster().urls().join(",")).unwrap();
        let backend = Arc::new(RedisBackend::connect(cfg).await.unwrap());
        Self::new(name, backend, Arc::new(ManualClock::new()), true, true)
    }

    /// A TLS-only 3-master cluster (`rediss://`, certificates from the test CA), the shape
    /// ElastiCache Serverless has.
    async fn tls_cluster(name: &str) -> Self {
        let mut cfg = RedisConfig::from_url(&shared_tls_cluster().urls().join(",")).unwrap();
        cfg.ca_cert = Some(test_ca().ca_pem());
        let backend = Arc::new(RedisBackend::connect(cfg).await.unwrap());
        Self::new(name, backend, Arc::new(ManualClock::new()), true, true)
    }

    fn new(name: &str, backend: Arc<dyn Backend>, clock: Arc<ManualClock>, real_time: bool, cluster: bool) -> Self {
        let keys = Keyspace::new(Some(&unique_prefix(name)), "v1").unwrap();
        Self { backend, clock, keys, tasks: Arc::new(DeferredTasks::new()), real_time, cluster }
    }

    fn cache(&self) -> Cache {
        self.cache_with(Codec::default())
    }

    fn cache_with(&self, codec: Codec) -> Cache {
        self.builder().codec(codec).build()
    }

    fn builder(&self) -> livecache_cache::CacheBuilder {
        Cache::builder(self.backend.clone())
            .keyspace(self.keys.clone())
            .clock(self.clock.clone())
            .tasks(self.tasks.clone())
    }

    fn k(&self, name: &str) -> String {
        format!("{}:raw:{name}", self.keys.root())
    }

    /// Lets `d` pass: on the manual clock, and for real servers in real time too.
    async fn elapse(&self, d: Duration) {
        self.clock.advance(d);
        if self.real_time {
            tokio::time::sleep(d).await;
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Item {
    id: String,
    title: String,
    price: u32,
}

fn item(id: &str, price: u32) -> Item {
    Item { id: id.into(), title: format!("title of {id}"), price }
}

fn policy() -> Policy {
    Policy::ttl(Duration::from_secs(60)).jitter(0.0)
}

/// A loader that counts its calls.
#[derive(Clone, Default)]
struct Calls(Arc<AtomicUsize>);

impl Calls {
    fn loader<T: Send + 'static>(
        &self,
        value: T,
    ) -> impl FnOnce() -> std::future::Ready<Result<T, String>> + Send + 'static {
        let calls = self.0.clone();
        move || {
            calls.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Ok(value))
        }
    }

    fn failing<T: Send + 'static>(&self) -> impl FnOnce() -> std::future::Ready<Result<T, String>> + Send + 'static {
        let calls = self.0.clone();
        move || {
            calls.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Err("source of truth is down".to_string()))
        }
    }

    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

// ---------------------------------------------------------------- key/value port

async fn kv_round_trips_values_and_reports_misses(f: Fixture) {
    let kv: &dyn KvStore = &*f.backend;
    let (a, b, c) = (f.k("a"), f.k("b"), f.k("c"));
    kv.set(&a, b"alpha", None).await.unwrap();
    kv.set(&b, &[0u8, 255, 1], Some(Duration::from_secs(60))).await.unwrap();
    assert_eq!(kv.get(&a).await.unwrap().as_deref(), Some(&b"alpha"[..]));
    assert_eq!(kv.get(&c).await.unwrap(), None);
    let got = kv.mget(&[a.clone(), c.clone(), b.clone()]).await.unwrap();
    assert_eq!(got, vec![Some(b"alpha".to_vec()), None, Some(vec![0, 255, 1])]);
    assert_eq!(kv.delete(&[a.clone(), c.clone()]).await.unwrap(), 1);
    assert_eq!(kv.get(&a).await.unwrap(), None);
}

async fn kv_values_expire_after_their_ttl(f: Fixture) {
    let kv: &dyn KvStore = &*f.backend;
    let (short, long, forever) = (f.k("short"), f.k("long"), f.k("forever"));
    kv.set(&short, b"1", Some(Duration::from_millis(150))).await.unwrap();
    kv.set(&long, b"2", Some(Duration::from_secs(600))).await.unwrap();
    kv.set(&forever, b"3", None).await.unwrap();
    assert!(matches!(kv.ttl(&short).await.unwrap(), KeyTtl::Expires(d) if d <= Duration::from_millis(150)));
    assert_eq!(kv.ttl(&forever).await.unwrap(), KeyTtl::Persistent);
    assert_eq!(kv.ttl(&f.k("none")).await.unwrap(), KeyTtl::Missing);
    f.elapse(Duration::from_millis(400)).await;
    assert_eq!(kv.get(&short).await.unwrap(), None, "expired");
    assert_eq!(kv.get(&long).await.unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(kv.get(&forever).await.unwrap().as_deref(), Some(&b"3"[..]));
}

async fn kv_batches_cross_slots(f: Fixture) {
    let kv: &dyn KvStore = &*f.backend;
    let keys: Vec<String> = (0..100).map(|i| f.k(&format!("batch-{i}"))).collect();
    let slots: std::collections::HashSet<u16> = keys.iter().map(|k| livecache_cache::key_slot(k.as_bytes())).collect();
    assert!(slots.len() > 50, "the keys spread over many slots");
    let entries: Vec<(String, Vec<u8>, Duration)> = keys
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 2 == 0)
        .map(|(i, k)| (k.clone(), format!("v{i}").into_bytes(), Duration::from_secs(60)))
        .collect();
    kv.mset_with_ttl(&entries).await.unwrap();
    let got = kv.mget(&keys).await.unwrap();
    assert_eq!(got.len(), 100);
    for (i, v) in got.iter().enumerate() {
        let want = (i % 2 == 0).then(|| format!("v{i}").into_bytes());
        assert_eq!(v, &want, "key {i} in request order");
    }
    assert!(matches!(kv.ttl(&keys[0]).await.unwrap(), KeyTtl::Expires(_)));
    assert_eq!(kv.delete(&keys).await.unwrap(), 50);
}

async fn kv_pattern_delete_reaches_every_node(f: Fixture) {
    let kv: &dyn KvStore = &*f.backend;
    let doomed: Vec<(String, Vec<u8>, Duration)> =
        (0..300).map(|i| (f.k(&format!("doomed:{i}")), b"x".to_vec(), Duration::from_secs(60))).collect();
    kv.mset_with_ttl(&doomed).await.unwrap();
    for i in 0..10 {
        kv.set(&f.k(&format!("kept:{i}")), b"y", None).await.unwrap();
    }
    let pattern = format!("{}:raw:doomed:*", f.keys.root());
    assert_eq!(kv.scan(&pattern, 10_000).await.unwrap().len(), 300);
    assert_eq!(kv.scan(&pattern, 7).await.unwrap().len(), 7, "scan honours its limit");
    assert_eq!(kv.delete_by_pattern(&pattern).await.unwrap(), 300);
    assert!(kv.scan(&pattern, 10_000).await.unwrap().is_empty());
    assert_eq!(kv.scan(&format!("{}:raw:kept:*", f.keys.root()), 100).await.unwrap().len(), 10);
    if f.cluster {
        // 300 keys over 3 masters: each held some, and each was emptied.
        for node in shared_cluster().nodes() {
            let left = node.cli(&["--scan", "--pattern", &pattern]).unwrap_or_default();
            assert!(left.trim().is_empty(), "node {} still holds {left}", node.port());
        }
    }
}

async fn kv_set_if_absent_is_a_lock(f: Fixture) {
    let kv: &dyn KvStore = &*f.backend;
    let lock = f.k("lock");
    assert!(kv.set_if_absent(&lock, b"me", Duration::from_secs(5)).await.unwrap());
    assert!(!kv.set_if_absent(&lock, b"you", Duration::from_secs(5)).await.unwrap());
    assert!(!kv.delete_if_equals(&lock, b"you").await.unwrap(), "only the owner releases");
    assert!(kv.delete_if_equals(&lock, b"me").await.unwrap());
    assert!(kv.set_if_absent(&lock, b"you", Duration::from_millis(100)).await.unwrap());
    f.elapse(Duration::from_millis(300)).await;
    assert!(kv.set_if_absent(&lock, b"me", Duration::from_secs(5)).await.unwrap(), "an expired lock is free");
}

async fn kv_swap_compares_and_sets(f: Fixture) {
    let kv: &dyn KvStore = &*f.backend;
    let k = f.k("swap");
    let put = |expect: Option<&[u8]>, value: Option<&[u8]>| Swap {
        key: k.clone(),
        expect: expect.map(<[u8]>::to_vec),
        value: value.map(|v| (v.to_vec(), Duration::from_secs(60))),
    };
    assert_eq!(kv.swap(&[put(Some(b"x"), Some(b"never"))]).await.unwrap(), vec![false], "absent is not `x`");
    assert_eq!(kv.swap(&[put(None, Some(b"lease-1"))]).await.unwrap(), vec![true], "absent as expected");
    assert_eq!(kv.swap(&[put(None, Some(b"lease-2"))]).await.unwrap(), vec![false], "taken");
    assert_eq!(kv.swap(&[put(Some(b"lease-2"), Some(b"v2"))]).await.unwrap(), vec![false], "not my lease");
    assert_eq!(kv.swap(&[put(Some(b"lease-1"), Some(b"value-1"))]).await.unwrap(), vec![true], "prefix matches");
    assert_eq!(kv.get(&k).await.unwrap().as_deref(), Some(&b"value-1"[..]));
    assert_eq!(kv.swap(&[put(Some(b"value"), Some(b"value-2"))]).await.unwrap(), vec![true], "a prefix is enough");
    kv.delete(std::slice::from_ref(&k)).await.unwrap();
    assert_eq!(kv.swap(&[put(Some(b"value"), Some(b"late"))]).await.unwrap(), vec![false], "a delete voids it");
    assert_eq!(kv.get(&k).await.unwrap(), None);
    // Deleting under a condition, and many keys (many slots on a cluster) in one call, in order.
    kv.set(&k, b"mine", None).await.unwrap();
    assert_eq!(kv.swap(&[put(Some(b"yours"), None), put(Some(b"mine"), None)]).await.unwrap(), vec![false, true]);
    assert_eq!(kv.get(&k).await.unwrap(), None);
    let many: Vec<Swap> = (0..40)
        .map(|i| Swap {
            key: f.k(&format!("swap-{i}")),
            expect: (i % 2 == 1).then(|| b"odd".to_vec()),
            value: Some((format!("v{i}").into_bytes(), Duration::from_secs(60))),
        })
        .collect();
    let applied = kv.swap(&many).await.unwrap();
    assert_eq!(applied, (0..40).map(|i| i % 2 == 0).collect::<Vec<_>>());
    assert_eq!(kv.get(&f.k("swap-38")).await.unwrap().as_deref(), Some(&b"v38"[..]));
    assert_eq!(kv.get(&f.k("swap-39")).await.unwrap(), None);
}

async fn kv_bump_moves_forward_past_a_floor(f: Fixture) {
    let kv: &dyn KvStore = &*f.backend;
    let g = f.k("gen");
    assert_eq!(kv.bump(&g, 0).await.unwrap(), 1);
    assert_eq!(kv.bump(&g, 0).await.unwrap(), 2);
    assert_eq!(kv.bump(&g, 1_700_000_000_000).await.unwrap(), 1_700_000_000_000);
    assert_eq!(kv.bump(&g, 5).await.unwrap(), 1_700_000_000_001);
    assert_eq!(kv.get(&g).await.unwrap().as_deref(), Some(&b"1700000000001"[..]));
    assert_eq!(kv.ttl(&g).await.unwrap(), KeyTtl::Persistent);
}

async fn kv_info_reports_server_figures(f: Fixture) {
    let kv: &dyn KvStore = &*f.backend;
    kv.set(&f.k("info"), b"x", None).await.unwrap();
    let _ = kv.get(&f.k("info")).await.unwrap();
    let info = kv.info().await.unwrap();
    assert!(!info.version.is_empty());
    assert!(info.keys >= 1);
    assert!(info.keyspace_hits >= 1);
    assert_eq!(info.nodes, if f.cluster { 3 } else { 1 });
}

// ---------------------------------------------------------------- counters port

async fn counters_increment_read_and_drain(f: Fixture) {
    let c: &dyn Counters = &*f.backend;
    let h = f.k("views");
    assert_eq!(c.incr(&h, "p1", 1).await.unwrap(), 1);
    assert_eq!(c.incr(&h, "p1", 2).await.unwrap(), 3);
    c.incr_many(&h, &[("p2".into(), 5), ("p1".into(), 1)]).await.unwrap();
    assert_eq!(c.field(&h, "p1").await.unwrap(), 4);
    assert_eq!(c.field(&h, "nope").await.unwrap(), 0);
    assert_eq!(c.fields(&h).await.unwrap(), HashMap::from([("p1".into(), 4), ("p2".into(), 5)]));
    assert_eq!(c.drain(&h).await.unwrap(), HashMap::from([("p1".into(), 4), ("p2".into(), 5)]));
    assert!(c.fields(&h).await.unwrap().is_empty());
    assert!(c.drain(&h).await.unwrap().is_empty());
}

async fn counters_increment_once_per_key(f: Fixture) {
    let c: &dyn Counters = &*f.backend;
    // The hash and its once-keys share a slot (`{views}`), as the write-behind keys do.
    let root = f.keys.root().to_string();
    let (h, once) = (format!("{root}:{{views}}:h"), |id: &str| format!("{root}:{{views}}:once:{id}"));
    let ttl = Duration::from_millis(200);
    assert!(c.incr_once(&h, "p1", 1, &once("a"), ttl).await.unwrap(), "applied");
    assert!(!c.incr_once(&h, "p1", 1, &once("a"), ttl).await.unwrap(), "a retry of the same increment is a no-op");
    assert!(c.incr_once(&h, "p1", 1, &once("b"), ttl).await.unwrap());
    assert_eq!(c.field(&h, "p1").await.unwrap(), 2);
    f.elapse(Duration::from_millis(400)).await;
    assert!(c.incr_once(&h, "p1", 1, &once("a"), ttl).await.unwrap(), "forgotten after its TTL");
    assert_eq!(c.field(&h, "p1").await.unwrap(), 3);
}

async fn counters_drain_racing_with_increments_loses_nothing(f: Fixture) {
    let h = f.k("race");
    let writers = 8;
    let per_writer = 400;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let backend = f.backend.clone();
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_writer {
                backend.incr(&h, &format!("p{}", (w + i) % 7), 1).await.unwrap();
            }
        }));
    }
    let drainer = {
        let backend = f.backend.clone();
        let h = h.clone();
        tokio::spawn(async move {
            let mut total = 0i64;
            for _ in 0..50 {
                total += backend.drain(&h).await.unwrap().values().sum::<i64>();
                tokio::task::yield_now().await;
            }
            total
        })
    };
    for t in tasks {
        t.await.unwrap();
    }
    let mut total = drainer.await.unwrap();
    total += f.backend.drain(&h).await.unwrap().values().sum::<i64>();
    assert_eq!(total, (writers * per_writer) as i64, "every increment drained exactly once");
}

async fn counters_move_aside_within_one_slot(f: Fixture) {
    let pending = f.keys.tagged_key("views", "pending", &["products"]).unwrap().to_string();
    let batch = f.keys.tagged_key("views", "batch", &["b1"]).unwrap().to_string();
    assert!(!f.backend.move_to(&pending, &batch).await.unwrap(), "nothing to move");
    f.backend.incr(&pending, "p1", 3).await.unwrap();
    assert!(f.backend.move_to(&pending, &batch).await.unwrap());
    assert!(f.backend.fields(&pending).await.unwrap().is_empty());
    f.backend.incr(&pending, "p1", 1).await.unwrap();
    assert!(!f.backend.move_to(&pending, &batch).await.unwrap(), "an unfinished batch is never overwritten");
    assert_eq!(f.backend.fields(&batch).await.unwrap(), HashMap::from([("p1".into(), 3)]));
    assert_eq!(f.backend.field(&pending, "p1").await.unwrap(), 1);
}

// ---------------------------------------------------------------- expiry index port

async fn expiry_index_orders_by_due_time(f: Fixture) {
    let idx: &dyn ExpiryIndex = &*f.backend;
    let i = f.k("offers-expiry");
    let t0 = 1_700_000_000_000u64;
    for (id, at) in [("o1", t0 + 10), ("o2", t0 + 5), ("o3", t0 + 60_000), ("o4", t0 + 20)] {
        idx.schedule(&i, id, at).await.unwrap();
    }
    assert_eq!(idx.count(&i).await.unwrap(), 4);
    let due = idx.due(&i, t0 + 15, 10).await.unwrap();
    assert_eq!(due, vec![("o2".to_string(), t0 + 5), ("o1".to_string(), t0 + 10)]);
    assert_eq!(idx.due(&i, t0 + 100, 2).await.unwrap().len(), 2, "limit");
    assert_eq!(idx.due(&i, u64::MAX, usize::MAX).await.unwrap().len(), 4, "everything");
    let soon = idx.due_within(&i, t0 + 10, Duration::from_millis(10), 10).await.unwrap();
    assert_eq!(soon, vec![("o1".to_string(), t0 + 10), ("o4".to_string(), t0 + 20)]);
    assert!(idx.extend(&i, "o2", t0 + 90_000).await.unwrap());
    assert!(!idx.extend(&i, "ghost", t0).await.unwrap(), "extend never creates");
    assert_eq!(idx.scheduled_at(&i, "o2").await.unwrap(), Some(t0 + 90_000));
    assert_eq!(idx.scheduled_at(&i, "ghost").await.unwrap(), None);
    assert_eq!(idx.due(&i, t0 + 15, 10).await.unwrap(), vec![("o1".to_string(), t0 + 10)]);
    assert_eq!(idx.remove(&i, &["o1".into(), "ghost".into()]).await.unwrap(), 1);
    assert_eq!(idx.count(&i).await.unwrap(), 3);
    let many: Vec<(String, u64)> = (0..300).map(|n| (format!("m{n}"), t0 + 1_000_000 + n)).collect();
    idx.schedule_many(&i, &many).await.unwrap();
    idx.schedule_many(&i, &[]).await.unwrap();
    assert_eq!(idx.scheduled_at(&i, "m299").await.unwrap(), Some(t0 + 1_000_299), "many in one call");
    assert_eq!(idx.count(&i).await.unwrap(), 303);
}

// ---------------------------------------------------------------- policies

async fn read_through_loads_once_then_hits(f: Fixture) {
    let cache = f.cache();
    let key = cache.key("products", &["p-1"]).unwrap();
    let calls = Calls::default();
    let first = cache.get_or_load(&key, &policy(), calls.loader(item("p-1", 10))).await.unwrap();
    assert_eq!((first.source, first.cached()), (Served::Loaded, false));
    let second = cache.get_or_load(&key, &policy(), calls.loader(item("p-1", 99))).await.unwrap();
    assert_eq!(second.value, item("p-1", 10));
    assert_eq!((second.source, second.cached()), (Served::Hit, true));
    assert_eq!(calls.count(), 1);
    let r = cache.report();
    assert_eq!((r.counts.hits, r.counts.misses, r.counts.loads, r.counts.sets), (1, 1, 1, 1));
}

async fn values_expire_on_the_controlled_clock(f: Fixture) {
    let cache = f.cache();
    let key = cache.key("products", &["p-2"]).unwrap();
    let calls = Calls::default();
    cache.get_or_load(&key, &policy(), calls.loader(item("p-2", 1))).await.unwrap();
    f.clock.advance(Duration::from_secs(59));
    assert_eq!(cache.get_or_load(&key, &policy(), calls.loader(item("p-2", 2))).await.unwrap().source, Served::Hit);
    f.clock.advance(Duration::from_secs(2));
    let after = cache.get_or_load(&key, &policy(), calls.loader(item("p-2", 2))).await.unwrap();
    assert_eq!((after.source, after.value.price), (Served::Loaded, 2));
    assert_eq!(calls.count(), 2);
}

async fn stale_value_is_served_while_refresh_runs(f: Fixture) {
    let cache = f.cache();
    let swr = Policy::ttl(Duration::from_secs(10)).jitter(0.0).stale_while_revalidate(Duration::from_secs(60));
    let key = cache.key("products", &["p-3"]).unwrap();
    let calls = Calls::default();
    cache.get_or_load(&key, &swr, calls.loader(item("p-3", 1))).await.unwrap();
    f.clock.advance(Duration::from_secs(11));
    let stale = cache.get_or_load(&key, &swr, calls.loader(item("p-3", 2))).await.unwrap();
    assert_eq!((stale.source, stale.value.price), (Served::Stale, 1), "stale served at once");
    // A second stale read while the refresh is pending does not queue another.
    let again = cache.get_or_load(&key, &swr, calls.loader(item("p-3", 3))).await.unwrap();
    assert_eq!(again.source, Served::Stale);
    assert_eq!(f.tasks.pending(), 1, "one refresh handed to the task runner");
    assert_eq!(calls.count(), 1, "nothing loaded inline");
    assert_eq!(f.tasks.run_all().await, 1);
    assert_eq!(calls.count(), 2);
    let fresh = cache.get_or_load(&key, &swr, calls.loader(item("p-3", 4))).await.unwrap();
    assert_eq!((fresh.source, fresh.value.price), (Served::Hit, 2), "the refresh landed");
    f.clock.advance(Duration::from_secs(10 + 61));
    let gone = cache.get_or_load(&key, &swr, calls.loader(item("p-3", 5))).await.unwrap();
    assert_eq!(gone.source, Served::Loaded, "past the hard TTL the value is gone");
    assert_eq!(cache.report().counts.refreshes, 1);
}

async fn concurrent_misses_load_once(f: Fixture) {
    let cache = f.cache();
    let key = cache.key("feeds", &["hot"]).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (cache, key, calls) = (cache.clone(), key.clone(), calls.clone());
        tasks.push(tokio::spawn(async move {
            cache
                .get_or_load(&key, &policy(), move || async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Ok::<_, String>(item("hot", 7))
                })
                .await
                .unwrap()
        }));
    }
    let mut sources = HashMap::new();
    for t in tasks {
        let got = t.await.unwrap();
        assert_eq!(got.value, item("hot", 7));
        *sources.entry(got.source).or_insert(0) += 1;
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "50 concurrent misses, one load: {sources:?}");
    assert_eq!(sources.get(&Served::Loaded), Some(&1));
}

async fn instances_share_one_load_through_the_lock(f: Fixture) {
    let a = f.cache();
    let b = f.cache(); // a second instance: its own single-flight map, the same backend
    let p = policy().lock(Duration::from_secs(5), Duration::from_secs(3));
    let key = a.key("feeds", &["cross"]).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let load = |calls: Arc<AtomicUsize>| {
        move || async move {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok::<_, String>(item("cross", 1))
        }
    };
    let (ra, rb) =
        tokio::join!(a.get_or_load(&key, &p, load(calls.clone())), b.get_or_load(&key, &p, load(calls.clone())));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.value, rb.value);
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one load across instances");
    let mut sources = [ra.source, rb.source];
    sources.sort_by_key(|s| format!("{s:?}"));
    assert_eq!(sources, [Served::Coalesced, Served::Loaded]);
}

async fn failing_loader_falls_back_to_stale_value(f: Fixture) {
    let cache = f.cache();
    let p = Policy::ttl(Duration::from_secs(10)).jitter(0.0).fail_safe(Duration::from_secs(300));
    let key = cache.key("products", &["p-4"]).unwrap();
    let calls = Calls::default();
    cache.get_or_load(&key, &p, calls.loader(item("p-4", 1))).await.unwrap();
    f.clock.advance(Duration::from_secs(60));
    let got = cache.get_or_load(&key, &p, calls.failing::<Item>()).await.unwrap();
    assert_eq!((got.source, got.value.price, got.is_stale()), (Served::FailSafe, 1, true));
    // The loader recovers: a fresh value replaces the stale one.
    let got = cache.get_or_load(&key, &p, calls.loader(item("p-4", 2))).await.unwrap();
    assert_eq!((got.source, got.value.price), (Served::Loaded, 2));
    // Past the fail-safe window nothing stands in.
    f.clock.advance(Duration::from_secs(10 + 301));
    let err = cache.get_or_load(&key, &p, calls.failing::<Item>()).await.unwrap_err();
    assert!(matches!(err, LoadError::Loader(_)), "{err:?}");
    assert_eq!(cache.report().counts.fail_safe, 1);
}

async fn slow_loader_times_out(f: Fixture) {
    let cache = f.cache();
    let p = policy().load_timeout(Duration::from_millis(50));
    let key = cache.key("products", &["slow"]).unwrap();
    let err = cache
        .get_or_load(&key, &p, || async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<_, String>(item("slow", 1))
        })
        .await
        .unwrap_err();
    assert!(matches!(err, LoadError::Timeout(_)), "{err:?}");
}

async fn large_values_are_compressed_and_capped(f: Fixture) {
    let big: Vec<Item> = (0..100).map(|i| item(&format!("p-{i}"), i)).collect();
    let json_len = serde_json::to_vec(&big).unwrap().len();
    // The default (LZ4) and zlib: each written with its own tag, each read back by the other.
    let zlib = Codec { compression: Compression::Zlib { level: 1 }, ..Codec::default() };
    for (name, codec, tag, at_most) in
        [("lz4", Codec::default(), TAG_LZ4_JSON, json_len / 2), ("zlib", zlib, TAG_ZLIB_JSON, json_len / 3)]
    {
        let cache = f.cache_with(codec.clone());
        let key = cache.key("feeds", &["big", name]).unwrap();
        cache.set(&key, &big, &policy()).await.unwrap();
        let raw = KvStore::get(&*f.backend, key.as_str()).await.unwrap().unwrap();
        let e = entry::read(&raw).unwrap();
        assert_eq!(e.tag, tag);
        assert!(raw.len() < at_most, "{name}: {} bytes stored for {json_len} bytes of JSON", raw.len());
        let back = cache.get::<Vec<Item>>(&key).await.unwrap();
        assert_eq!(back.value, big);
        let other = if name == "lz4" {
            Codec { compression: Compression::Zlib { level: 1 }, ..codec }
        } else {
            Codec::default()
        };
        assert_eq!(f.cache_with(other).get::<Vec<Item>>(&key).await.unwrap().value, big, "{name} read by the other");
    }
    let cache = f.cache();
    let key = cache.key("feeds", &["big", "lz4"]).unwrap();
    assert!(cache.get::<Vec<Item>>(&key).await.is_some());
    // A reader whose cap is below the decompressed size treats the value as a miss.
    let capped = f.cache_with(Codec { max_decoded: 1024, ..Codec::default() });
    assert!(capped.get::<Vec<Item>>(&key).await.is_none());
    let calls = Calls::default();
    let reloaded = capped.get_or_load(&key, &policy(), calls.loader(vec![item("small", 1)])).await.unwrap();
    assert_eq!(reloaded.source, Served::Loaded);
    assert_eq!(capped.report().counts.decode_errors, 2);
}

async fn corrupt_values_are_misses_not_errors(f: Fixture) {
    let cache = f.cache();
    let key = cache.key("products", &["corrupt"]).unwrap();
    f.backend.set(key.as_str(), b"\x00garbage that is not an entry", None).await.unwrap();
    let calls = Calls::default();
    let got = cache.get_or_load(&key, &policy(), calls.loader(item("corrupt", 1))).await.unwrap();
    assert_eq!(got.source, Served::Loaded);
    // A well-framed entry whose body is not JSON of the right type is a miss too.
    let stamp = cache.current_stamp("products").await.unwrap();
    let now = f.clock.now_ms();
    let times = entry::Times { fresh_until: now + 60_000, stale_until: now + 60_000, keep_until: now + 60_000 };
    f.backend.set(key.as_str(), &entry::write(stamp, times, 0x01, b"{\"nope\":"), None).await.unwrap();
    let got = cache.get_or_load(&key, &policy(), calls.loader(item("corrupt", 2))).await.unwrap();
    assert_eq!((got.source, got.value.price), (Served::Loaded, 2));
}

async fn namespace_invalidation_is_o1_and_scoped(f: Fixture) {
    let cache = f.cache();
    let calls = Calls::default();
    let feed1 = cache.key("feeds", &["1"]).unwrap();
    let feed2 = cache.key("feeds", &["2"]).unwrap();
    let prod = cache.key("products", &["1"]).unwrap();
    for k in [&feed1, &feed2, &prod] {
        cache.get_or_load(k, &policy(), calls.loader(item("x", 1))).await.unwrap();
    }
    let g1 = cache.invalidate_namespace("feeds").await.unwrap();
    let g2 = cache.invalidate_namespace("feeds").await.unwrap();
    assert!(g2 > g1);
    assert_eq!(cache.get_or_load(&feed1, &policy(), calls.loader(item("x", 2))).await.unwrap().source, Served::Loaded);
    assert!(cache.get::<Item>(&feed2).await.is_none());
    assert_eq!(cache.get_or_load(&prod, &policy(), calls.loader(item("x", 3))).await.unwrap().source, Served::Hit);
}

async fn a_load_racing_an_invalidation_never_resurrects_old_data(f: Fixture) {
    let cache = f.cache();
    let key = cache.key("feeds", &["race"]).unwrap();
    let c2 = cache.clone();
    // The invalidation lands while the (old) load is in flight.
    let got = cache
        .get_or_load(&key, &policy(), move || async move {
            c2.invalidate_namespace("feeds").await.unwrap();
            Ok::<_, String>(item("old", 1))
        })
        .await
        .unwrap();
    assert_eq!(got.source, Served::Loaded);
    assert!(cache.get::<Item>(&key).await.is_none(), "the value loaded before the invalidation is not served after it");
}

/// A namespace's generation has a copy in every slot group; its invalidation moves them all
/// (a fan-out). Loads in every group, each in flight while the fan-out runs, read before it
/// and fill after it: not one of them is served after the invalidation returned.
async fn an_invalidation_fan_out_racing_loads_in_every_group_resurrects_nothing(f: Fixture) {
    let cache = f.cache();
    let groups = f.keys.slot_groups() as usize;
    // One key in each group.
    let mut keys: Vec<livecache_cache::Key> = Vec::new();
    for i in 0.. {
        let key = cache.key("feeds", &[&format!("fan-{i}")]).unwrap();
        if !keys.iter().any(|k| k.group() == key.group()) {
            keys.push(key);
        }
        if keys.len() == groups {
            break;
        }
    }
    let started = Arc::new(tokio::sync::Barrier::new(groups + 1));
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    let loads: Vec<_> = keys
        .iter()
        .map(|key| {
            let (cache, key, started, mut done) = (cache.clone(), key.clone(), started.clone(), done_rx.clone());
            tokio::spawn(async move {
                cache
                    .get_or_load(&key, &policy(), move || async move {
                        // Read from the source before the invalidation, stored after it.
                        started.wait().await;
                        let _ = done.wait_for(|d| *d).await;
                        Ok::<_, String>(item("old", 1))
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    started.wait().await;
    cache.invalidate_namespace("feeds").await.unwrap();
    done_tx.send(true).unwrap();
    for load in loads {
        assert_eq!(load.await.unwrap().source, Served::Loaded);
    }
    for key in &keys {
        assert!(
            cache.get::<Item>(key).await.is_none(),
            "group {}: a fill older than the invalidation served",
            key.group()
        );
    }
}

/// A versioned source of truth: `write` moves a key's version on.
#[derive(Clone, Default)]
struct Source2(Arc<std::sync::Mutex<HashMap<String, u32>>>);

impl Source2 {
    fn read(&self, id: &str) -> Item {
        item(id, *self.0.lock().unwrap().get(id).unwrap_or(&1))
    }

    fn write(&self, id: &str) {
        *self.0.lock().unwrap().entry(id.to_string()).or_insert(1) += 1;
    }
}

async fn a_load_racing_a_key_invalidation_is_not_stored(f: Fixture) {
    let cache = f.cache();
    let src = Source2::default();
    let key = cache.key("products", &["p1"]).unwrap();
    let (c2, k2, s2) = (cache.clone(), key.clone(), src.clone());
    // The load reads version 1; the update and its invalidation land before the load stores.
    let got = cache
        .get_or_load(&key, &policy(), move || async move {
            let read = s2.read("p1");
            s2.write("p1");
            c2.invalidate(&k2).await.unwrap();
            Ok::<_, String>(read)
        })
        .await
        .unwrap();
    assert_eq!((got.source, got.value.price), (Served::Loaded, 1), "the caller that asked first gets what it read");
    assert!(cache.get::<Item>(&key).await.is_none(), "version 1 is not stored after the invalidation");
    let s3 = src.clone();
    let next = cache.get_or_load(&key, &policy(), move || async move { Ok::<_, String>(s3.read("p1")) }).await.unwrap();
    assert_eq!((next.source, next.value.price), (Served::Loaded, 2));
    assert_eq!(cache.report().counts.voided, 1);
}

async fn a_refresh_racing_an_invalidation_is_not_stored(f: Fixture) {
    let cache = f.cache();
    let src = Source2::default();
    let swr = Policy::ttl(Duration::from_secs(10)).jitter(0.0).stale_while_revalidate(Duration::from_secs(60));
    let key = cache.key("products", &["p2"]).unwrap();
    let s1 = src.clone();
    cache.get_or_load(&key, &swr, move || async move { Ok::<_, String>(s1.read("p2")) }).await.unwrap();
    f.clock.advance(Duration::from_secs(11));
    // The refresh reads version 1 (the source has not moved yet); the update and its
    // invalidation land before the refresh stores.
    let (c2, k2, s2) = (cache.clone(), key.clone(), src.clone());
    let stale = cache
        .get_or_load(&key, &swr, move || async move {
            let read = s2.read("p2");
            s2.write("p2");
            c2.invalidate(&k2).await.unwrap();
            Ok::<_, String>(read)
        })
        .await
        .unwrap();
    assert_eq!(stale.source, Served::Stale);
    assert_eq!(f.tasks.run_all().await, 1);
    assert!(cache.get::<Item>(&key).await.is_none(), "the refresh's version 1 is not stored after the invalidation");
    let s3 = src.clone();
    let next = cache.get_or_load(&key, &swr, move || async move { Ok::<_, String>(s3.read("p2")) }).await.unwrap();
    assert_eq!((next.source, next.value.price), (Served::Loaded, 2));
    assert_eq!(cache.report().counts.refreshes, 0);
}

async fn a_load_racing_a_pattern_invalidation_is_not_stored(f: Fixture) {
    let cache = f.cache();
    let src = Source2::default();
    let key = cache.key("feeds", &["discover", "1"]).unwrap();
    let (c2, s2) = (cache.clone(), src.clone());
    cache
        .get_or_load(&key, &policy(), move || async move {
            let read = s2.read("d1");
            s2.write("d1");
            c2.invalidate_pattern("feeds", "discover:*").await.unwrap();
            Ok::<_, String>(read)
        })
        .await
        .unwrap();
    assert!(cache.get::<Item>(&key).await.is_none(), "the pattern invalidation voided the load in flight");
    // Batches too: every key's fill is voided by the invalidation that lands during the load.
    let keys: Vec<_> = (0..20).map(|i| cache.key("feeds", &["discover", &format!("b{i}")]).unwrap()).collect();
    let (c3, s3) = (cache.clone(), src.clone());
    let batch = cache
        .get_many_or_load(&keys, &policy(), move |missing: Vec<usize>| async move {
            let read: Vec<_> = missing.iter().map(|i| Some(s3.read(&format!("b{i}")))).collect();
            for i in &missing {
                s3.write(&format!("b{i}"));
            }
            c3.invalidate_pattern("feeds", "discover:b*").await.unwrap();
            Ok::<_, String>(read)
        })
        .await
        .unwrap();
    assert_eq!(batch.misses, 20);
    for k in &keys {
        assert!(cache.get::<Item>(k).await.is_none(), "{k} was not stored");
    }
    let s4 = src.clone();
    let again = cache
        .get_many_or_load(&keys, &policy(), move |missing: Vec<usize>| async move {
            Ok::<_, String>(missing.iter().map(|i| Some(s4.read(&format!("b{i}")))).collect())
        })
        .await
        .unwrap();
    assert!(again.values.iter().all(|v| v.as_ref().unwrap().price == 2), "the reload reads version 2");
    assert_eq!(cache.get::<Item>(&keys[3]).await.unwrap().value.price, 2, "and stores it");
}

async fn a_read_after_an_invalidation_does_not_join_an_older_load(f: Fixture) {
    let cache = f.cache();
    let src = Source2::default();
    let key = cache.key("products", &["p3"]).unwrap();
    let (read_tx, read_rx) = tokio::sync::oneshot::channel();
    let (gate_tx, gate_rx) = tokio::sync::oneshot::channel::<()>();
    let (c1, k1, s1) = (cache.clone(), key.clone(), src.clone());
    let old = tokio::spawn(async move {
        c1.get_or_load(&k1, &policy(), move || async move {
            let read = s1.read("p3");
            let _ = read_tx.send(());
            let _ = gate_rx.await;
            Ok::<_, String>(read)
        })
        .await
    });
    read_rx.await.unwrap();
    src.write("p3");
    cache.invalidate(&key).await.unwrap();
    // This read starts after the invalidation: it loads version 2 itself.
    let s2 = src.clone();
    let new = cache.get_or_load(&key, &policy(), move || async move { Ok::<_, String>(s2.read("p3")) }).await.unwrap();
    assert_eq!((new.source, new.value.price), (Served::Loaded, 2));
    gate_tx.send(()).unwrap();
    assert_eq!(old.await.unwrap().unwrap().value.price, 1, "the older read gets what it read");
    assert_eq!(cache.get::<Item>(&key).await.unwrap().value.price, 2, "and does not overwrite version 2");
}

async fn a_lease_left_by_a_cancelled_load_lapses(f: Fixture) {
    let cache = f.cache();
    let pol = policy().lock(Duration::from_secs(3), Duration::from_millis(20));
    let key = cache.key("products", &["p4"]).unwrap();
    let (c1, k1) = (cache.clone(), key.clone());
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let cancelled = tokio::spawn(async move {
        c1.get_or_load(&k1, &pol, move || async move {
            let _ = started_tx.send(());
            std::future::pending::<Result<Item, String>>().await
        })
        .await
    });
    started_rx.await.unwrap(); // the lease is taken before the loader runs
    cancelled.abort();
    let _ = cancelled.await;
    // Another instance meanwhile: the lease is held, so it loads without storing.
    let other = f.cache();
    let calls = Calls::default();
    let got = other.get_or_load(&key, &pol, calls.loader(item("p4", 1))).await.unwrap();
    assert_eq!(got.source, Served::Loaded);
    assert!(other.get::<Item>(&key).await.is_none(), "not stored over somebody else's lease");
    // Once the lease has lapsed, the next load takes the key over and stores.
    f.clock.advance(Duration::from_secs(4));
    other.get_or_load(&key, &pol, calls.loader(item("p4", 2))).await.unwrap();
    assert_eq!(other.get::<Item>(&key).await.unwrap().value.price, 2);
}

async fn version_bump_invalidates_everything(f: Fixture) {
    let cache = f.cache();
    let calls = Calls::default();
    let a = cache.key("feeds", &["1"]).unwrap();
    let b = cache.key("products", &["1"]).unwrap();
    cache.get_or_load(&a, &policy(), calls.loader(item("a", 1))).await.unwrap();
    cache.get_or_load(&b, &policy(), calls.loader(item("b", 1))).await.unwrap();
    let e1 = cache.bump_version().await.unwrap();
    assert!(e1 > 0);
    assert!(cache.get::<Item>(&a).await.is_none());
    assert!(cache.get::<Item>(&b).await.is_none());
    assert!(cache.bump_version().await.unwrap() > e1);
}

async fn pattern_and_key_invalidation_delete(f: Fixture) {
    let cache = f.cache();
    for page in 1..=30 {
        cache
            .set(&cache.key("feeds", &["discover", &page.to_string()]).unwrap(), &item("x", page), &policy())
            .await
            .unwrap();
    }
    cache.set(&cache.key("feeds", &["community", "1"]).unwrap(), &item("c", 1), &policy()).await.unwrap();
    assert_eq!(cache.count("feeds", 1000).await.unwrap(), 31);
    assert_eq!(cache.invalidate_pattern("feeds", "discover:*").await.unwrap(), 30);
    assert_eq!(cache.count("feeds", 1000).await.unwrap(), 1);
    assert_eq!(cache.invalidate(&cache.key("feeds", &["community", "1"]).unwrap()).await.unwrap(), 1);
    assert!(cache.invalidate_pattern("feeds", "[a-z]*").await.is_err(), "character classes are refused");
}

async fn unknown_ids_are_cached_briefly_as_missing(f: Fixture) {
    let cache = f.cache();
    let p = policy().negative(Duration::from_secs(30));
    let key = cache.key("products", &["ghost"]).unwrap();
    let calls = Calls::default();
    let first = cache.get_or_load(&key, &p, calls.loader(None::<Item>)).await.unwrap();
    assert_eq!((first.value, first.source), (None, Served::Loaded));
    let second = cache.get_or_load(&key, &p, calls.loader(Some(item("ghost", 1)))).await.unwrap();
    assert_eq!((second.value, second.source), (None, Served::Hit));
    f.clock.advance(Duration::from_secs(31));
    let third = cache.get_or_load(&key, &p, calls.loader(Some(item("ghost", 1)))).await.unwrap();
    assert_eq!(third.value, Some(item("ghost", 1)));
    assert_eq!(calls.count(), 2);
}

async fn batch_reads_hit_once_load_misses_once_and_keep_order(f: Fixture) {
    let cache = f.cache();
    let ids: Vec<String> = (0..100).map(|i| format!("u{i}")).collect();
    let keys: Vec<_> = ids.iter().map(|id| cache.key("users", &[id]).unwrap()).collect();
    for i in (0..100).step_by(5) {
        cache.set(&keys[i], &item(&ids[i], i as u32), &policy()).await.unwrap();
    }
    let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let asked2 = asked.clone();
    let ids2 = ids.clone();
    let batch = cache
        .get_many_or_load(&keys, &policy(), move |missing: Vec<usize>| async move {
            asked2.lock().unwrap().push(missing.clone());
            // The source knows every id but the multiples of 7.
            Ok::<_, String>(missing.iter().map(|&i| (i % 7 != 0).then(|| item(&ids2[i], 1000 + i as u32))).collect())
        })
        .await
        .unwrap();
    assert_eq!((batch.hits, batch.misses), (20, 80));
    assert_eq!(asked.lock().unwrap().len(), 1, "one batched load");
    assert_eq!(asked.lock().unwrap()[0].len(), 80);
    for (i, v) in batch.values.iter().enumerate() {
        let want = if i % 5 == 0 {
            Some(item(&ids[i], i as u32))
        } else if i % 7 == 0 {
            None
        } else {
            Some(item(&ids[i], 1000 + i as u32))
        };
        assert_eq!(v, &want, "position {i}");
    }
    let again = cache
        .get_many_or_load(&keys, &policy(), |missing: Vec<usize>| async move {
            Ok::<_, String>(missing.iter().map(|_| None::<Item>).collect())
        })
        .await
        .unwrap();
    // Multiples of 7 that are not multiples of 5 were unknown and not cached: 12 of them.
    assert_eq!(again.misses, 12, "only the unknown ids miss again");
}

async fn batch_falls_back_to_stale_values_when_the_source_fails(f: Fixture) {
    let cache = f.cache();
    let p = Policy::ttl(Duration::from_secs(10)).jitter(0.0).fail_safe(Duration::from_secs(600));
    let keys: Vec<_> = (0..3).map(|i| cache.key("users", &[&format!("s{i}")]).unwrap()).collect();
    for (i, k) in keys.iter().enumerate() {
        cache.set(k, &item("s", i as u32), &p).await.unwrap();
    }
    f.clock.advance(Duration::from_secs(20));
    let batch = cache
        .get_many_or_load(&keys, &p, |_m: Vec<usize>| async { Err::<Vec<Option<Item>>, _>("db down") })
        .await
        .unwrap();
    assert_eq!(batch.fail_safe, 3);
    assert_eq!(batch.values[2], Some(item("s", 2)));
}

async fn warming_loads_only_what_is_missing(f: Fixture) {
    let cache = f.cache();
    let keys: Vec<_> = (1..=10).map(|p| cache.key("feeds", &["discover", &p.to_string()]).unwrap()).collect();
    for k in &keys[..3] {
        cache.set(k, &item("pre", 0), &policy()).await.unwrap();
    }
    let loads = Arc::new(AtomicUsize::new(0));
    let items = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let loads = loads.clone();
            (k.clone(), async move {
                loads.fetch_add(1, Ordering::SeqCst);
                if i == 9 {
                    Err("page 10 failed".to_string())
                } else {
                    Ok(item("warm", i as u32))
                }
            })
        })
        .collect();
    let report = cache.warm(items, &policy()).await;
    assert_eq!((report.requested, report.warmed, report.already_cached, report.failed), (10, 6, 3, 1));
    assert_eq!(loads.load(Ordering::SeqCst), 7);
    assert_eq!(cache.get::<Item>(&keys[4]).await.unwrap().value, item("warm", 4));
}

async fn stats_aggregate_across_instances(f: Fixture) {
    let a = f.cache();
    let b = f.cache();
    let calls = Calls::default();
    let key = a.key("products", &["s"]).unwrap();
    a.get_or_load(&key, &policy(), calls.loader(item("s", 1))).await.unwrap();
    b.get_or_load(&key, &policy(), calls.loader(item("s", 1))).await.unwrap();
    b.get_or_load(&key, &policy(), calls.loader(item("s", 1))).await.unwrap();
    a.flush_stats().await.unwrap();
    b.flush_stats().await.unwrap();
    b.flush_stats().await.unwrap(); // a second flush adds nothing new
    let all = a.aggregate_stats().await.unwrap();
    assert_eq!((all.counts.hits, all.counts.misses, all.counts.loads), (2, 1, 1));
    assert!((all.hit_rate - 2.0 / 3.0).abs() < 1e-9);
    assert_eq!(all.latency.count, 3);
    assert!(all.latency.p99_us >= all.latency.p50_us);
}

async fn sweep_deletes_only_what_can_never_be_served(f: Fixture) {
    let cache = f.cache();
    let root = f.keys.root().to_string();
    let prefix = root.rsplit_once(':').unwrap().0.to_string();
    let fresh = cache.key("feeds", &["fresh"]).unwrap();
    cache.set(&fresh, &item("f", 1), &policy()).await.unwrap();
    let old_gen = cache.key("products", &["old"]).unwrap();
    cache.set(&old_gen, &item("o", 1), &policy()).await.unwrap();
    cache.invalidate_namespace("products").await.unwrap();
    let kept_after_bump = cache.key("products", &["new"]).unwrap();
    cache.set(&kept_after_bump, &item("n", 1), &policy()).await.unwrap();
    f.backend.set(&format!("{prefix}:v0:feeds:legacy"), b"x", Some(Duration::from_secs(600))).await.unwrap();
    f.backend.set(&format!("{root}:feeds:forever"), b"no ttl", None).await.unwrap();
    f.backend.incr(&format!("{root}:views:pending"), "p1", 3).await.unwrap();
    let tagged = f.keys.tagged_key("views", "views", &["pending", "products"]).unwrap().to_string();
    f.backend.incr(&tagged, "p1", 1).await.unwrap();
    f.backend.schedule(&format!("{root}:offers:expiry"), "o1", 1).await.unwrap();
    let report = cache.sweep(&["views", "offers"]).await.unwrap();
    assert_eq!((report.old_version, report.no_ttl, report.old_generation), (1, 1, 1), "{report:?}");
    assert!(cache.get::<Item>(&fresh).await.is_some());
    assert!(cache.get::<Item>(&kept_after_bump).await.is_some());
    assert!(KvStore::get(&*f.backend, old_gen.as_str()).await.unwrap().is_none(), "unreachable value deleted");
    assert_eq!(f.backend.field(&format!("{root}:views:pending"), "p1").await.unwrap(), 3, "state is kept");
    assert_eq!(f.backend.field(&tagged, "p1").await.unwrap(), 1, "hash-tagged state is kept");
    assert_eq!(f.backend.count(&format!("{root}:offers:expiry")).await.unwrap(), 1);
    assert!(cache.current_stamp("products").await.unwrap().generation > 0, "generations are kept");
    assert_eq!(cache.sweep(&["views", "offers"]).await.unwrap().deleted(), 0, "a second sweep finds nothing");
}

// ---------------------------------------------------------------- L1 revalidation

/// A large value held in L1 is served from it only when the read's own round trip confirms the
/// stored entry is the one held; any write, deletion or invalidation in between (by another
/// instance) is seen at once.
async fn l1_copies_are_served_only_when_confirmed_unchanged(f: Fixture) {
    let a = f.builder().l1(1 << 20).build();
    let b = f.cache();
    let key = a.key("products", &["big"]).unwrap();
    // Hardly compressible, so that it is stored larger than L1's minimum.
    let noise: String =
        (1..=L1_MIN_VALUE as u64 / 4).map(|i| format!("{:x}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15))).collect();
    let big = |price: u32| Item { id: "big".into(), title: noise.clone(), price };
    let calls = Calls::default();
    let read = |price: u32| {
        let (a, key, calls) = (a.clone(), key.clone(), calls.clone());
        async move { a.get_or_load(&key, &policy(), calls.loader(big(price))).await.unwrap() }
    };
    let revalidated = |c: &Cache| c.report().counts.revalidated;
    assert_eq!(read(1).await.source, Served::Loaded);
    assert_eq!(read(1).await.value.price, 1, "first hit: the value comes back and is kept");
    let before = revalidated(&a);
    let hit = read(1).await;
    assert_eq!((hit.source, hit.value.price), (Served::Hit, 1));
    assert_eq!(revalidated(&a), before + 1, "served from L1, confirmed unchanged");
    // Another instance writes a new value: the next read sees it, not the copy.
    b.set(&key, &big(2), &policy()).await.unwrap();
    assert_eq!(read(3).await.value.price, 2);
    assert_eq!(revalidated(&a), before + 1);
    assert_eq!(read(3).await.value.price, 2, "the new value is held now");
    assert_eq!(revalidated(&a), before + 2);
    // Invalidated by another instance: a miss, loaded again.
    b.invalidate_namespace("products").await.unwrap();
    let after = read(4).await;
    assert_eq!((after.source, after.value.price), (Served::Loaded, 4));
    // Deleted by another instance: a miss too.
    b.invalidate(&key).await.unwrap();
    assert_eq!(read(5).await.value.price, 5);
    assert_eq!(calls.count(), 3, "loaded at the start, after the invalidation and after the delete");
    // A small value is never held.
    let small = a.key("products", &["small"]).unwrap();
    a.get_or_load(&small, &policy(), calls.loader(item("s", 1))).await.unwrap();
    let n = revalidated(&a);
    for _ in 0..3 {
        a.get_or_load(&small, &policy(), calls.loader(item("s", 1))).await.unwrap();
    }
    assert_eq!(revalidated(&a), n);
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Fixture::memory(stringify!($name)).await).await }) *
        }
        mod redis_single_node {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Fixture::redis(stringify!($name)).await).await }) *
        }
        mod redis_cluster {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Fixture::cluster(stringify!($name)).await).await }) *
        }
        mod redis_tls_cluster {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Fixture::tls_cluster(stringify!($name)).await).await }) *
        }
    };
}

contract!(
    kv_round_trips_values_and_reports_misses,
    kv_values_expire_after_their_ttl,
    kv_batches_cross_slots,
    kv_pattern_delete_reaches_every_node,
    kv_set_if_absent_is_a_lock,
    kv_swap_compares_and_sets,
    kv_bump_moves_forward_past_a_floor,
    kv_info_reports_server_figures,
    counters_increment_read_and_drain,
    counters_increment_once_per_key,
    counters_drain_racing_with_increments_loses_nothing,
    counters_move_aside_within_one_slot,
    expiry_index_orders_by_due_time,
    read_through_loads_once_then_hits,
    values_expire_on_the_controlled_clock,
    stale_value_is_served_while_refresh_runs,
    concurrent_misses_load_once,
    instances_share_one_load_through_the_lock,
    failing_loader_falls_back_to_stale_value,
    slow_loader_times_out,
    large_values_are_compressed_and_capped,
    corrupt_values_are_misses_not_errors,
    namespace_invalidation_is_o1_and_scoped,
    a_load_racing_an_invalidation_never_resurrects_old_data,
    an_invalidation_fan_out_racing_loads_in_every_group_resurrects_nothing,
    a_load_racing_a_key_invalidation_is_not_stored,
    a_refresh_racing_an_invalidation_is_not_stored,
    a_load_racing_a_pattern_invalidation_is_not_stored,
    a_read_after_an_invalidation_does_not_join_an_older_load,
    a_lease_left_by_a_cancelled_load_lapses,
    version_bump_invalidates_everything,
    pattern_and_key_invalidation_delete,
    unknown_ids_are_cached_briefly_as_missing,
    batch_reads_hit_once_load_misses_once_and_keep_order,
    batch_falls_back_to_stale_values_when_the_source_fails,
    warming_loads_only_what_is_missing,
    stats_aggregate_across_instances,
    sweep_deletes_only_what_can_never_be_served,
    l1_copies_are_served_only_when_confirmed_unchanged,
);
