//! Library-path benchmarks against a real redis-server started here, each next to its
//! baseline measured in the same run:
//! * `hit_1KiB`: `Cache::get_or_load` hit of a ~1 KiB value vs a raw redis-rs GET of the same key;
//! * `batch_100`: a 100-key `get_many_or_load` hit (decoded to raw JSON, as the batch endpoint
//!   serves it, and to typed structs) vs one raw MGET, and vs 100 sequential GETs;
//!
//! The compared measurements are paired: each runs the same loop that alternates the raw call
//! and the cache call, and reports its own side's time, so both sides see the same machine
//! state (on 2 cores shared with redis-server, sequential runs drift by more than the
//! differences measured).
//! * `codec_10KiB`: encode+compress and decode of a 10 KiB feed-like JSON page.
//!
//! `infra/bench.sh` runs this and prints the ratios.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use livecache_cache::{Cache, Codec, Compression, Keyspace, MemoryBackend, Policy, RedisBackend, RedisConfig};
use livecache_testkit::RedisServer;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct FeedItem {
    id: String,
    seller_id: String,
    title: String,
    price_cents: u64,
    currency: String,
    condition: String,
    category: String,
    image: String,
    seller_live: bool,
    created_at: String,
}

fn feed_item(i: usize) -> FeedItem {
    let words = ["vintage", "denim", "jacket", "sneakers", "leather", "camera", "lens", "watch", "lamp", "vinyl"];
    FeedItem {
        id: format!("prod-{i:06}"),
        seller_id: format!("user-{:04}", i * 7 % 500),
        title: format!("{} {} {}", words[i % 10], words[(i * 3) % 10], words[(i * 7) % 10]),
        price_cents: 500 + (i as u64 * 1_337) % 50_000,
        currency: "EUR".into(),
        condition: ["new", "like_new", "good", "fair"][i % 4].into(),
        category: ["fashion", "electronics", "home", "collectibles"][i % 4].into(),
        image: format!("https://img.example.com/p/{i:06}/main.jpg"),
        seller_live: i % 5 == 0,
        created_at: format!("2026-11-{:02}T{:02}:{:02}:00Z", 1 + i % 28, i % 24, i % 60),
    }
}

/// Items whose JSON is about `bytes` long.
fn page_of(bytes: usize) -> Vec<FeedItem> {
    let mut items = Vec::new();
    while serde_json::to_vec(&items).unwrap().len() < bytes {
        items.push(feed_item(items.len()));
    }
    items
}

fn benches(c: &mut Criterion) {
    // One thread for the client side (no cross-thread wake-ups between the benchmark loop and
    // the connection's driver task), pinned apart from redis-server, to keep run-to-run noise
    // below the differences being measured.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let server = RedisServer::start();
    pin_apart(&server);
    let backend = rt.block_on(RedisBackend::connect(RedisConfig::from_url(&server.url()).unwrap())).unwrap();
    let cache = Cache::builder(Arc::new(backend)).keyspace(Keyspace::new(Some("bench"), "v1").unwrap()).build();
    let raw_client = redis::Client::open(server.url()).unwrap();
    let mut raw = rt.block_on(raw_client.get_multiplexed_async_connection()).unwrap();
    let policy = Policy::ttl(Duration::from_secs(3600));

    // ---- 1 KiB hit, paired with a raw GET of the same key
    let value = page_of(1000);
    let json_len = serde_json::to_vec(&value).unwrap().len();
    let key = cache.key("bench", &["one"]).unwrap();
    rt.block_on(cache.set(&key, &value, &policy)).unwrap();
    let stored: Vec<u8> = rt.block_on(redis::cmd("GET").arg(key.as_str()).query_async(&mut raw)).unwrap();
    eprintln!("hit_1KiB: value JSON {json_len} B, stored {} B", stored.len());
    let mut g = c.benchmark_group("hit_1KiB");
    for (name, side) in [("raw_redis_get", 0), ("cache_get_or_load", 1)] {
        g.bench_function(name, |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let (mut conn, cache, key) = (raw.clone(), cache.clone(), key.clone());
                async move {
                    let mut took = [Duration::ZERO; 2];
                    for _ in 0..iters {
                        let t = Instant::now();
                        let v: Vec<u8> = redis::cmd("GET").arg(key.as_str()).query_async(&mut conn).await.unwrap();
                        black_box(v);
                        took[0] += t.elapsed();
                        let t = Instant::now();
                        let got = cache
                            .get_or_load(&key, &policy, || async { Err::<Vec<FeedItem>, _>("must not load") })
                            .await
                            .unwrap();
                        black_box(got);
                        took[1] += t.elapsed();
                    }
                    took[side]
                }
            })
        });
    }
    g.finish();

    // ---- a 6 KiB feed page's hit without and with L1 revalidation, paired
    let l1_cache = Cache::builder(cache.backend().clone())
        .keyspace(Keyspace::new(Some("bench"), "v1").unwrap())
        .l1(32 << 20)
        .build();
    let page = page_of(6 * 1024);
    let page_key = cache.key("bench", &["page"]).unwrap();
    rt.block_on(cache.set(&page_key, &page, &policy)).unwrap();
    let load = || async { Err::<Vec<FeedItem>, _>("must not load") };
    rt.block_on(l1_cache.get_or_load(&page_key, &policy, load)).unwrap();
    let mut g = c.benchmark_group("hit_6KiB_page");
    for (name, side) in [("without_l1", 0), ("with_l1", 1)] {
        g.bench_function(name, |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let (plain, held, key) = (cache.clone(), l1_cache.clone(), page_key.clone());
                async move {
                    let mut took = [Duration::ZERO; 2];
                    for _ in 0..iters {
                        for (i, c) in [&plain, &held].into_iter().enumerate() {
                            let t = Instant::now();
                            black_box(c.get_or_load(&key, &policy, load).await.unwrap());
                            took[i] += t.elapsed();
                        }
                    }
                    took[side]
                }
            })
        });
    }
    g.finish();
    assert!(l1_cache.report().counts.revalidated > 0, "the L1 side was served from its copy");

    // ---- 100-key batch hit, paired with one raw MGET of the same keys
    let keys: Vec<_> = (0..100).map(|i| cache.key("users", &[&format!("user-{i:04}")]).unwrap()).collect();
    for (i, k) in keys.iter().enumerate() {
        rt.block_on(cache.set(k, &feed_item(i), &policy)).unwrap();
    }
    let raw_keys: Vec<String> = keys.iter().map(|k| k.as_str().to_string()).collect();
    let mut g = c.benchmark_group("batch_100");
    for (name, side) in
        [("raw_redis_mget", 0), ("cache_get_many_or_load_raw_json", 1), ("cache_get_many_or_load_typed", 2)]
    {
        g.bench_function(name, |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let (mut conn, cache, keys, raw_keys) = (raw.clone(), cache.clone(), keys.clone(), raw_keys.clone());
                async move {
                    let mut took = [Duration::ZERO; 3];
                    for _ in 0..iters {
                        let t = Instant::now();
                        let v: Vec<Option<Vec<u8>>> =
                            redis::cmd("MGET").arg(&raw_keys).query_async(&mut conn).await.unwrap();
                        black_box(v);
                        took[0] += t.elapsed();
                        let t = Instant::now();
                        let got = cache
                            .get_many_or_load(&keys, &policy, |_m: Vec<usize>| async {
                                Err::<Vec<Option<Box<RawValue>>>, _>("must not load")
                            })
                            .await
                            .unwrap();
                        assert_eq!(got.hits, 100);
                        black_box(got);
                        took[1] += t.elapsed();
                        let t = Instant::now();
                        let got = cache
                            .get_many_or_load(&keys, &policy, |_m: Vec<usize>| async {
                                Err::<Vec<Option<FeedItem>>, _>("must not load")
                            })
                            .await
                            .unwrap();
                        black_box(got);
                        took[2] += t.elapsed();
                    }
                    took[side]
                }
            })
        });
    }
    g.bench_function("raw_redis_100_sequential_gets", |b| {
        b.to_async(&rt).iter(|| {
            let mut conn = raw.clone();
            let keys = raw_keys.clone();
            async move {
                for k in keys {
                    let v: Option<Vec<u8>> = redis::cmd("GET").arg(k).query_async(&mut conn).await.unwrap();
                    black_box(v);
                }
            }
        })
    });
    g.finish();

    // ---- in-process backend, for reference
    let mem = Cache::builder(Arc::new(MemoryBackend::new(10_000))).build();
    let mkey = mem.key("bench", &["one"]).unwrap();
    rt.block_on(mem.set(&mkey, &value, &policy)).unwrap();
    c.bench_function("memory_hit_1KiB", |b| {
        b.to_async(&rt).iter(|| async {
            let got =
                mem.get_or_load(&mkey, &policy, || async { Err::<Vec<FeedItem>, _>("must not load") }).await.unwrap();
            black_box(got)
        })
    });

    // ---- codec on a 10 KiB feed page
    let codec = Codec::default();
    let page = page_of(10 * 1024);
    let (tag, body) = codec.encode(&page).unwrap();
    eprintln!(
        "codec_10KiB: {} items, JSON {} B, compressed {} B (tag {tag:#04x}, ratio {:.2})",
        page.len(),
        serde_json::to_vec(&page).unwrap().len(),
        body.len(),
        body.len() as f64 / serde_json::to_vec(&page).unwrap().len() as f64
    );
    let mut g = c.benchmark_group("codec_10KiB");
    g.bench_function("encode_compress", |b| b.iter(|| black_box(codec.encode(black_box(&page)).unwrap())));
    g.bench_function("decode", |b| b.iter(|| black_box(codec.decode::<Vec<FeedItem>>(tag, black_box(&body)).unwrap())));
    g.bench_function("json_only_encode", |b| b.iter(|| black_box(serde_json::to_vec(black_box(&page)).unwrap())));
    // Decompression alone, each compression of the same page, paired in one group.
    let json = serde_json::to_vec(&page).unwrap();
    let zlib = Codec { compression: Compression::Zlib { level: 1 }, ..Codec::default() };
    let (lz4_tag, lz4_body) = codec.pack_json(json.clone());
    let (zlib_tag, zlib_body) = zlib.pack_json(json);
    eprintln!("codec_10KiB: zlib {} B", zlib_body.len());
    g.bench_function("unpack_lz4", |b| b.iter(|| black_box(codec.unpack_json(lz4_tag, black_box(&lz4_body)).unwrap())));
    g.bench_function("unpack_zlib", |b| {
        b.iter(|| black_box(codec.unpack_json(zlib_tag, black_box(&zlib_body)).unwrap()))
    });
    g.finish();
}

/// On a machine with 2+ cores, puts redis-server on the last core and this process on the others.
fn pin_apart(server: &RedisServer) {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    if cores < 2 || !livecache_testkit::on_path("taskset") {
        return;
    }
    let pid = server
        .cli(&["INFO", "server"])
        .and_then(|i| i.lines().find_map(|l| l.strip_prefix("process_id:")).map(|p| p.trim().to_string()));
    if let Some(pid) = pid {
        let _ = std::process::Command::new("taskset").args(["-a", "-pc", &(cores - 1).to_string(), &pid]).output();
        let mine = format!("0-{}", cores - 2);
        let _ =
            std::process::Command::new("taskset").args(["-a", "-pc", &mine, &std::process::id().to_string()]).output();
    }
}

criterion_group! {
    name = cache;
    config = Criterion::default().sample_size(60).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(cache);
