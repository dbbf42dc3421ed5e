//! Faults against real Redis that these tests own — a single redis-server and a TLS-only
//! 3-master cluster (the shape of ElastiCache Serverless): killed, frozen, absent at start.
//!
//! The bound: with `command_timeout` = 100 ms and a loader of ~1 ms, no `get_or_load` takes
//! longer than 100 ms + loader + scheduling slack (asserted as < 400 ms), and once the circuit
//! opens (3 failures) calls skip Redis entirely (asserted < 50 ms each).

use std::sync::Arc;
use std::time::{Duration, Instant};

use livecache_cache::BreakerConfig;
use livecache_cache::{Cache, Keyspace, Policy, RedisBackend, RedisConfig, Served};
use livecache_testkit::{free_port, test_ca, unique_prefix, RedisCluster, RedisServer};

/// What a test breaks: one server, or every node of a TLS cluster.
enum Target {
    Single(RedisServer),
    TlsCluster(RedisCluster),
}

impl Target {
    fn single() -> Self {
        Self::Single(RedisServer::start())
    }

    fn tls_cluster() -> Self {
        Self::TlsCluster(RedisCluster::start_tls(3))
    }

    fn servers(&self) -> Vec<&RedisServer> {
        match self {
            Self::Single(s) => vec![s],
            Self::TlsCluster(c) => c.nodes().iter().collect(),
        }
    }

    fn config(&self) -> RedisConfig {
        match self {
            Self::Single(s) => config(&s.url()),
            Self::TlsCluster(c) => {
                let mut cfg = config(&c.urls().join(","));
                cfg.ca_cert = Some(test_ca().ca_pem());
                cfg
            }
        }
    }

    /// The server processes' ids (asked while they answer).
    fn pids(&self) -> Vec<String> {
        self.servers()
            .iter()
            .map(|server| {
                server
                    .cli(&["INFO", "server"])
                    .and_then(|i| i.lines().find_map(|l| l.strip_prefix("process_id:")).map(|p| p.trim().to_string()))
                    .unwrap()
            })
            .collect()
    }
}

/// Sends `signal` (`-STOP`, `-CONT`) to every process of `pids`.
fn signal(pids: &[String], signal: &str) {
    for pid in pids {
        std::process::Command::new("kill").args([signal, pid]).status().unwrap();
    }
}

fn config(url: &str) -> RedisConfig {
    let mut cfg = RedisConfig::from_url(url).unwrap();
    cfg.connect_timeout = Duration::from_millis(100);
    cfg.command_timeout = Duration::from_millis(100);
    cfg.breaker = BreakerConfig { threshold: 3, cooldown: Duration::from_millis(300) };
    cfg
}

fn cache_on(backend: Arc<RedisBackend>) -> Cache {
    Cache::builder(backend).keyspace(Keyspace::new(Some(&unique_prefix("faults")), "v1").unwrap()).build()
}

fn policy() -> Policy {
    Policy::ttl(Duration::from_secs(60)).jitter(0.0)
}

async fn lookup(cache: &Cache, id: &str) -> (Served, Duration) {
    let key = cache.key("products", &[id]).unwrap();
    let started = Instant::now();
    let id = id.to_string();
    let got = cache
        .get_or_load(&key, &policy(), move || async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            Ok::<_, String>(format!("value of {id}"))
        })
        .await
        .expect("the loader answers whatever Redis does");
    (got.source, started.elapsed())
}

/// Polls until a lookup is served from Redis again.
async fn wait_for_hit(cache: &Cache, id: &str) -> Duration {
    let started = Instant::now();
    loop {
        let (source, _) = lookup(cache, id).await;
        if source == Served::Hit {
            return started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(10), "cache never recovered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn killed_redis_degrades_to_the_loader_with_bounded_latency_and_recovers(target: Target) {
    let backend = Arc::new(RedisBackend::connect(target.config()).await.unwrap());
    let cache = cache_on(backend.clone());
    assert_eq!(lookup(&cache, "a").await.0, Served::Loaded);
    // Served from Redis before the kill (a first fill on a cold TLS connection of a busy machine
    // may miss the command timeout and be dropped; the next load fills it).
    wait_for_hit(&cache, "a").await;

    target.servers().iter().for_each(|s| s.kill());
    let mut worst = Duration::ZERO;
    for i in 0..50 {
        let (source, took) = lookup(&cache, &format!("down-{i}")).await;
        assert_eq!(source, Served::Loaded);
        worst = worst.max(took);
    }
    assert!(worst < Duration::from_millis(400), "worst lookup with Redis dead took {worst:?}");
    assert!(backend.circuit_open(), "repeated failures open the circuit");
    let (_, took) = lookup(&cache, "while-open").await;
    assert!(took < Duration::from_millis(50), "an open circuit costs nothing: {took:?}");

    target.servers().iter().for_each(|s| s.restart());
    // The restarted server is empty: the first lookups store, then one hits.
    let recovered_in = wait_for_hit(&cache, "after").await;
    assert!(!backend.circuit_open());
    eprintln!("worst lookup while down: {worst:?}; recovered {recovered_in:?} after restart");
}

async fn frozen_redis_costs_at_most_the_command_timeout(target: Target) {
    let backend = Arc::new(RedisBackend::connect(target.config()).await.unwrap());
    let cache = cache_on(backend.clone());
    assert_eq!(lookup(&cache, "f").await.0, Served::Loaded);
    // SIGSTOP: the socket stays open but nothing answers, as with a network partition.
    let pids = target.pids();
    signal(&pids, "-STOP");
    let mut worst = Duration::ZERO;
    for i in 0..20 {
        let (source, took) = lookup(&cache, &format!("frozen-{i}")).await;
        assert_eq!(source, Served::Loaded);
        worst = worst.max(took);
    }
    signal(&pids, "-CONT");
    assert!(worst < Duration::from_millis(400), "worst lookup with Redis frozen took {worst:?}");
    let recovered = wait_for_hit(&cache, "f").await;
    eprintln!("worst lookup while frozen: {worst:?}; recovered in {recovered:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_single_node() {
    killed_redis_degrades_to_the_loader_with_bounded_latency_and_recovers(Target::single()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_tls_cluster() {
    killed_redis_degrades_to_the_loader_with_bounded_latency_and_recovers(Target::tls_cluster()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_single_node() {
    frozen_redis_costs_at_most_the_command_timeout(Target::single()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_tls_cluster() {
    frozen_redis_costs_at_most_the_command_timeout(Target::tls_cluster()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absent_redis_at_start_up_does_not_fail_init_and_is_picked_up_later() {
    let port = free_port(false);
    let started = Instant::now();
    let backend = Arc::new(RedisBackend::connect(config(&format!("redis://127.0.0.1:{port}"))).await.unwrap());
    assert!(started.elapsed() < Duration::from_millis(500), "init is bounded by the connect timeout");
    let cache = cache_on(backend);
    assert_eq!(lookup(&cache, "x").await.0, Served::Loaded);
    assert!(cache.report().counts.errors >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_cannot_serve_opens_the_circuit_and_the_cache_falls_through() {
    let server = RedisServer::start();
    let backend = Arc::new(RedisBackend::connect(config(&server.url())).await.unwrap());
    let cache =
        Cache::builder(backend.clone()).keyspace(Keyspace::new(Some(&unique_prefix("oom")), "v1").unwrap()).build();
    let (source, _) = lookup(&cache, "before").await;
    assert_eq!(source, Served::Loaded);
    // Out of memory with nothing to evict: every write answers `-OOM`.
    server.cli(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]).unwrap();
    server.cli(&["CONFIG", "SET", "maxmemory", "1"]).unwrap();
    use livecache_cache::KvStore;
    for i in 0..3 {
        let err = backend.set(&format!("oom-{i}"), b"x", None).await.unwrap_err();
        assert!(err.to_string().contains("OOM"), "{err}");
    }
    assert!(backend.circuit_open(), "three OOM replies in a row count as three failures");
    let (source, took) = lookup(&cache, "while-open").await;
    assert_eq!(source, Served::Loaded, "the cache falls through to the loader");
    assert!(took < Duration::from_millis(50), "skipping Redis while the circuit is open: {took:?}");
    // Memory again: the probe after the cool-down closes the circuit.
    server.cli(&["CONFIG", "SET", "maxmemory", "0"]).unwrap();
    wait_for_hit(&cache, "after").await;
    assert!(!backend.circuit_open());
}
