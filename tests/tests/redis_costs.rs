//! Redis commands per request, counted by the server (`INFO commandstats`) of a private
//! redis-server: a warm feed hit through the Lambda glue costs one command on average (the
//! statistics are flushed per interval, not per invocation), and the statistics endpoint a
//! handful whatever the keyspace holds (no SCAN).

mod common;

use std::sync::Arc;
use std::time::Duration;

use livecache_cache::{Backend, DeferredTasks, RedisBackend, RedisConfig};
use livecache_http::lambda::after_response;
use livecache_http::{AdminAuth, ApiRequest, App};
use livecache_runtime::telemetry::Metrics;
use livecache_testkit::RedisServer;

/// Commands the server has run since the last reset, per command (the counting itself left out).
fn commands(server: &RedisServer) -> Vec<(String, u64)> {
    let text = server.cli(&["INFO", "commandstats"]).unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("cmdstat_"))
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let calls = rest.split(',').find_map(|p| p.strip_prefix("calls="))?.parse().ok()?;
            Some((name.to_string(), calls))
        })
        .filter(|(name, _)| name != "info" && !name.starts_with("config"))
        .collect()
}

fn reset(server: &RedisServer) {
    server.cli(&["CONFIG", "RESETSTAT"]).unwrap();
}

fn total(c: &[(String, u64)]) -> u64 {
    c.iter().map(|(_, n)| n).sum()
}

async fn app_on(server: &RedisServer, name: &str) -> (App, Arc<DeferredTasks>, Arc<livecache_cache::ManualClock>) {
    let backend: Arc<dyn Backend> =
        Arc::new(RedisBackend::connect(RedisConfig::from_url(&server.url()).unwrap()).await.unwrap());
    let (deps, _bus, clock, _data) = common::deps_on_backend(name, backend).await;
    let tasks = Arc::new(DeferredTasks::new());
    let app = App::new(&deps, tasks.clone(), AdminAuth::Disabled, Some("feeds"));
    (app, tasks, clock)
}

fn get(path: &str) -> ApiRequest {
    common::request(lambda_http::http::Method::GET, path, None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_hit_through_the_lambda_glue_costs_one_command() {
    let server = RedisServer::start();
    let (app, tasks, clock) = app_on(&server, "per-hit").await;
    let metrics = Metrics::default();
    let page = "/api/v1/feeds/discover?page=1&per_page=20";
    // The miss, its prefetch of page 2 and the first post-response step.
    assert_eq!(app.handle(get(page)).await.status.as_u16(), 200);
    after_response(&tasks, &app, &metrics, "feeds", far_deadline()).await;
    reset(&server);
    // 100 warm hits, 100 ms apart on the cache's clock: 10 s, one flush interval.
    for _ in 0..100 {
        clock.advance(Duration::from_millis(100));
        let resp = app.handle(get(page)).await;
        assert_eq!(resp.status.as_u16(), 200);
        after_response(&tasks, &app, &metrics, "feeds", far_deadline()).await;
    }
    let used = commands(&server);
    let per_hit = total(&used) as f64 / 100.0;
    println!("commands per warm hit over 100 invocations: {per_hit:.2} ({used:?})");
    assert!(per_hit <= 1.05, "{per_hit} commands per hit: {used:?}");
    assert!(used.contains(&("bitfield".to_string(), 1)), "the statistics were flushed once, in one command: {used:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_was_not_flushed_is_flushed_at_shutdown() {
    let server = RedisServer::start();
    let backend: Arc<dyn Backend> =
        Arc::new(RedisBackend::connect(RedisConfig::from_url(&server.url()).unwrap()).await.unwrap());
    let (deps, _bus, clock, _data) = common::deps_on_backend("shutdown", backend).await;
    // Two instances of one function: each its own cache and statistics, one keyspace.
    let tasks = Arc::new(DeferredTasks::new());
    let app = App::new(&deps, tasks.clone(), AdminAuth::Disabled, Some("feeds"));
    let other = App::new(&deps, Arc::new(DeferredTasks::new()), AdminAuth::Disabled, Some("feeds"));
    let metrics = Metrics::default();
    for _ in 0..3 {
        app.handle(get("/api/v1/feeds/discover?page=1&per_page=5")).await;
        after_response(&tasks, &app, &metrics, "feeds", far_deadline()).await;
    }
    // Nothing flushed yet (the interval has not passed): another instance sees none of it.
    assert_eq!(other.market.cache_stats().await.unwrap().aggregate.counts.hits, 0);
    reset(&server);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tx.send(()).unwrap();
    livecache_http::lambda::flush_when(rx, &app).await;
    assert_eq!(commands(&server), vec![("bitfield".to_string(), 1)], "one command");
    // The other instance's next answer (after its reuse window) counts them.
    clock.advance(livecache_domain::services::STATS_ANSWER_TTL);
    assert!(other.market.cache_stats().await.unwrap().aggregate.counts.hits >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stats_endpoint_costs_a_few_commands_whatever_the_keyspace_holds() {
    let server = RedisServer::start();
    let (app, _tasks, clock) = app_on(&server, "stats-cost").await;
    server.cli(&["DEBUG", "POPULATE", "100000", "filler"]).unwrap();
    let stats = || async { app.market.cache_stats().await.unwrap() };
    reset(&server);
    let answer = stats().await;
    let used = commands(&server);
    println!("stats endpoint with 100,000 keys: {} commands ({used:?})", total(&used));
    assert!(total(&used) <= 10, "{used:?}");
    assert!(!used.iter().any(|(c, _)| c == "scan" || c == "keys"), "{used:?}");
    assert!(answer.aggregate.hit_rate >= 0.0);
    // Asked again within a few seconds: the same answer, no command at all.
    reset(&server);
    stats().await;
    assert_eq!(total(&commands(&server)), 0);
    clock.advance(livecache_domain::services::STATS_ANSWER_TTL);
    stats().await;
    assert!(total(&commands(&server)) <= 10);
}

/// An invocation deadline no test step comes near (the functions' timeout is 10 s).
fn far_deadline() -> std::time::Instant {
    std::time::Instant::now() + std::time::Duration::from_secs(10)
}
