//! What a lookup costs Redis, counted with `INFO commandstats` on a redis-server this test
//! owns (counts, not timings): a hit is one MGET; a miss adds one lease and one fill (both
//! single-key scripts); a batch adds one pipelined lease round trip and one pipelined fill.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use livecache_cache::{Cache, Keyspace, Policy, RedisBackend, RedisConfig};
use livecache_testkit::{unique_prefix, RedisServer};

/// Calls per command since the last reset, e.g. `{"eval": 2, "mget": 1}`. Redis also counts
/// the GET and SET a script runs (server-side, no round trip).
fn commands(server: &RedisServer) -> BTreeMap<String, u64> {
    let text = server.cli(&["INFO", "commandstats"]).unwrap();
    let counts = text.lines().filter_map(|l| {
        let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
        let calls = rest.split(',').find_map(|kv| kv.strip_prefix("calls="))?.parse().ok()?;
        Some((name.to_string(), calls))
    });
    counts.filter(|(name, _)| !name.contains('|') && !matches!(name.as_str(), "info" | "hello" | "client")).collect()
}

fn reset(server: &RedisServer) {
    server.cli(&["CONFIG", "RESETSTAT"]).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hit_is_one_mget_and_a_miss_adds_a_lease_and_a_fill() {
    let server = RedisServer::start();
    let backend = Arc::new(RedisBackend::connect(RedisConfig::from_url(&server.url()).unwrap()).await.unwrap());
    let cache = Cache::builder(backend).keyspace(Keyspace::new(Some(&unique_prefix("costs")), "v1").unwrap()).build();
    let policy = Policy::ttl(Duration::from_secs(60)).jitter(0.0);
    let key = cache.key("products", &["p1"]).unwrap();
    let load = || async { Ok::<_, String>(vec![1u32, 2, 3]) };

    reset(&server);
    cache.get_or_load(&key, &policy, load).await.unwrap();
    let miss = commands(&server);
    reset(&server);
    cache.get_or_load(&key, &policy, load).await.unwrap();
    let hit = commands(&server);
    println!("miss: {miss:?}\nhit: {hit:?}");
    assert_eq!(hit, BTreeMap::from([("mget".to_string(), 1)]), "a hit costs one MGET, leases or not");
    let counts =
        |pairs: &[(&str, u64)]| -> BTreeMap<String, u64> { pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect() };
    // Read (MGET), lease (EVAL: GET + SET), fill (EVAL: GET + SET): three round trips, as
    // before leases (MGET, SET NX of a lock, SET, and a script to release the lock: four).
    assert_eq!(miss, counts(&[("eval", 2), ("get", 2), ("mget", 1), ("set", 2)]), "read, lease, fill");

    let keys: Vec<_> = (0..100).map(|i| cache.key("users", &[&format!("u{i}")]).unwrap()).collect();
    let batch = |missing: Vec<usize>| async move { Ok::<_, String>(missing.iter().map(|&i| Some(i)).collect()) };
    reset(&server);
    cache.get_many_or_load(&keys, &policy, batch).await.unwrap();
    let batch_miss = commands(&server);
    reset(&server);
    let again = cache.get_many_or_load(&keys, &policy, batch).await.unwrap();
    let batch_hit = commands(&server);
    println!("batch of 100, all misses: {batch_miss:?}\nbatch of 100, all hits: {batch_hit:?}");
    assert_eq!(again.hits, 100);
    assert_eq!(batch_hit, BTreeMap::from([("mget".to_string(), 1)]));
    // 100 leases in one pipeline, 100 fills in another: three round trips in all.
    assert_eq!(batch_miss, counts(&[("eval", 200), ("get", 200), ("mget", 1), ("set", 200)]));
}
