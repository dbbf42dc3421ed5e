//! A randomized concurrency checker for invalidation: many tasks over three cache instances
//! (three Lambda instances sharing one Redis) do reads, batch reads, stale-while-revalidate
//! refreshes (the clock moves), key, pattern and namespace invalidations against a versioned
//! source. The property: once the invalidation that followed a write has completed, no read
//! that starts afterwards returns a version older than the one that write made.
//!
//! Run on the memory backend, a single redis-server, a 3-master cluster and a TLS-only one, at least 10,000
//! operations each. The seed is printed; `CHECKER_SEED=<n>` replays the same operations.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use livecache_cache::{Backend, Cache, Keyspace, ManualClock, MemoryBackend, Policy, RedisBackend, RedisConfig};
use livecache_testkit::{shared_cluster, shared_redis, shared_tls_cluster, test_ca, unique_prefix};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

const OPS: usize = 12_000;
const TASKS: usize = 12;
const KEYS: usize = 8;
const INSTANCES: usize = 3;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Versioned {
    key: usize,
    version: u64,
}

struct World {
    /// The source of truth: each key's current version.
    versions: Vec<AtomicU64>,
    /// Per key, the highest version whose write's invalidation has completed.
    floors: Vec<AtomicU64>,
    violations: AtomicU64,
    failed_invalidations: AtomicU64,
    reads: AtomicU64,
    ops: AtomicU64,
    caches: Vec<Cache>,
    clock: Arc<ManualClock>,
    policy: Policy,
}

impl World {
    fn name(k: usize) -> String {
        format!("g{}-k{k}", k % 2)
    }

    fn key(&self, c: &Cache, k: usize) -> livecache_cache::Key {
        c.key("items", &[&Self::name(k)]).unwrap()
    }

    /// Reads the source, then lets other tasks run before answering: the window in which an
    /// update and its invalidation can land between a load's read and its store.
    async fn load(world: Arc<World>, k: usize, pause: u8) -> Versioned {
        let version = world.versions[k].load(Ordering::SeqCst);
        for _ in 0..pause {
            tokio::task::yield_now().await;
        }
        if pause >= 3 {
            tokio::time::sleep(Duration::from_micros(200 * pause as u64)).await;
        }
        Versioned { key: k, version }
    }

    fn check(&self, k: usize, got: u64, floor: u64, how: &str) {
        self.reads.fetch_add(1, Ordering::Relaxed);
        if got < floor {
            self.violations.fetch_add(1, Ordering::Relaxed);
            eprintln!("violation: {how} of key {k} returned version {got} after version {floor} was invalidated");
        }
    }

    /// Moves keys on in the source, then runs `invalidate`; once it has succeeded, the versions
    /// written are the floor for every read that starts. (An invalidation that failed — a
    /// command timeout on a busy machine — promises nothing.)
    async fn write<E>(&self, ks: &[usize], invalidate: impl std::future::Future<Output = Result<u64, E>>) {
        let written: Vec<u64> = ks.iter().map(|&k| self.versions[k].fetch_add(1, Ordering::SeqCst) + 1).collect();
        if invalidate.await.is_err() {
            self.failed_invalidations.fetch_add(1, Ordering::Relaxed);
            return;
        }
        for (&k, v) in ks.iter().zip(written) {
            self.floors[k].fetch_max(v, Ordering::SeqCst);
        }
    }
}

async fn run_task(world: Arc<World>, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    for _ in 0..OPS / TASKS {
        let c = world.caches[rng.random_range(0..INSTANCES)].clone();
        let k = rng.random_range(0..KEYS);
        let pause: u8 = rng.random_range(0..5);
        match rng.random_range(0..100u32) {
            0..55 => {
                let floor = world.floors[k].load(Ordering::SeqCst);
                let (w, key) = (world.clone(), world.key(&c, k));
                let got =
                    c.get_or_load(&key, &world.policy, move || async move {
                        Ok::<_, String>(World::load(w, k, pause).await)
                    })
                    .await
                    .expect("the loader never fails");
                assert_eq!(got.value.key, k);
                world.check(k, got.value.version, floor, "read");
            }
            55..70 => {
                let ks: Vec<usize> = (0..KEYS).filter(|_| rng.random_bool(0.5)).collect();
                let floors: Vec<u64> = ks.iter().map(|&k| world.floors[k].load(Ordering::SeqCst)).collect();
                let keys: Vec<_> = ks.iter().map(|&k| world.key(&c, k)).collect();
                let (w, ks2) = (world.clone(), ks.clone());
                let batch = c
                    .get_many_or_load(&keys, &world.policy, move |missing: Vec<usize>| async move {
                        let mut out = Vec::with_capacity(missing.len());
                        for i in missing {
                            out.push(Some(World::load(w.clone(), ks2[i], pause).await));
                        }
                        Ok::<_, String>(out)
                    })
                    .await
                    .expect("the loader never fails");
                for ((&k, floor), v) in ks.iter().zip(floors).zip(batch.values) {
                    world.check(k, v.expect("every key exists").version, floor, "batch read");
                }
            }
            70..85 => {
                let key = world.key(&c, k);
                world.write(&[k], c.invalidate(&key)).await;
            }
            85..93 => {
                let group = k % 2;
                let ks: Vec<usize> = (0..KEYS).filter(|k| k % 2 == group).collect();
                let tail = format!("g{group}-*");
                world.write(&ks, c.invalidate_pattern("items", &tail)).await;
            }
            93..96 => {
                let ks: Vec<usize> = (0..KEYS).collect();
                world.write(&ks, c.invalidate_namespace("items")).await;
            }
            _ => world.clock.advance(Duration::from_millis(rng.random_range(0..12_000))),
        }
        world.ops.fetch_add(1, Ordering::Relaxed);
    }
}

async fn check(backend: Arc<dyn Backend>, name: &str) {
    let seed: u64 = std::env::var("CHECKER_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    println!("{name}: CHECKER_SEED={seed}");
    let clock = Arc::new(ManualClock::new());
    let keys = Keyspace::new(Some(&unique_prefix(name)), "v1").unwrap();
    let caches = (0..INSTANCES)
        .map(|_| Cache::builder(backend.clone()).keyspace(keys.clone()).clock(clock.clone()).build())
        .collect();
    let world = Arc::new(World {
        versions: (0..KEYS).map(|_| AtomicU64::new(1)).collect(),
        floors: (0..KEYS).map(|_| AtomicU64::new(0)).collect(),
        violations: AtomicU64::new(0),
        failed_invalidations: AtomicU64::new(0),
        reads: AtomicU64::new(0),
        ops: AtomicU64::new(0),
        caches,
        clock,
        // Short enough that values go stale and expire as the clock moves; a short lock wait
        // so that instances waiting on another's lease soon load for themselves.
        policy: Policy::ttl(Duration::from_secs(5))
            .jitter(0.0)
            .stale_while_revalidate(Duration::from_secs(10))
            .fail_safe(Duration::from_secs(10))
            .lock(Duration::from_secs(2), Duration::from_millis(5)),
    });
    let tasks: Vec<_> = (0..TASKS as u64).map(|t| tokio::spawn(run_task(world.clone(), seed ^ (t * 0x9E37)))).collect();
    for t in tasks {
        t.await.unwrap();
    }
    let (ops, reads, violations) =
        (world.ops.load(Ordering::SeqCst), world.reads.load(Ordering::SeqCst), world.violations.load(Ordering::SeqCst));
    let counts = world
        .caches
        .iter()
        .map(|c| c.report().counts)
        .fold((0, 0, 0), |a, c| (a.0 + c.loads, a.1 + c.voided, a.2 + c.refreshes));
    println!(
        "{name}: {ops} operations, {reads} values read, {} loads, {} fills voided, {} refreshes, \
         {} failed invalidations, {violations} violations",
        counts.0,
        counts.1,
        counts.2,
        world.failed_invalidations.load(Ordering::SeqCst)
    );
    assert!(ops >= 10_000);
    assert_eq!(violations, 0, "replay with CHECKER_SEED={seed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_backend_never_serves_an_invalidated_version() {
    check(Arc::new(MemoryBackend::new(100_000)), "checker-memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_never_serves_an_invalidated_version() {
    let backend = RedisBackend::connect(RedisConfig::from_url(&shared_redis().url()).unwrap()).await.unwrap();
    check(Arc::new(backend), "checker-redis").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_cluster_never_serves_an_invalidated_version() {
    let backend =
        RedisBackend::connect(RedisConfig::from_url(&shared_cluster().urls().join(",")).unwrap()).await.unwrap();
    check(Arc::new(backend), "checker-cluster").await;
}

/// The TLS-only cluster, as ElastiCache Serverless is.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_tls_cluster_never_serves_an_invalidated_version() {
    let mut config = RedisConfig::from_url(&shared_tls_cluster().urls().join(",")).unwrap();
    config.ca_cert = Some(test_ca().ca_pem());
    check(Arc::new(RedisBackend::connect(config).await.unwrap()), "checker-tls-cluster").await;
}
