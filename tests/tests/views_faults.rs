//! View counts stay exact when Redis applies an increment and the answer never comes back:
//! redis-server (its own, behind a proxy that holds replies back) in a test binary of its own,
//! so that its load does not slow the other tests.
//!
//! The source of truth here is the memory store, not DynamoDB in moto: while Redis is skipped,
//! views go straight to the database as dozens of concurrent transactions ADDing to the same
//! items, and moto does not apply those atomically (measured with boto3 against moto_server:
//! 600 TransactWriteItems from 32 threads, each ADDing 1 to one item, left it at 599), which
//! would blur an exact count. DynamoDB's ADD is atomic, and the adapter's exactly-once chunks are proved
//! on moto by the store contract suite (`a_view_chunk_applies_exactly_once`).

mod common;

use livecache_domain::Id;
use std::sync::Arc;
use std::time::Duration;

use livecache_cache::SpawnTasks;
use livecache_domain::jobs::ViewSync;
use livecache_domain::seed::DemoData;
use livecache_domain::Store;
use livecache_http::{AdminAuth, App};

async fn product_views(store: &dyn Store, data: &DemoData) -> i64 {
    let ids: Vec<String> = data.products.iter().map(|p| p.id.clone()).collect();
    store.get_products(&ids).await.unwrap().iter().map(|p| p.as_ref().unwrap().view_count).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn views_applied_by_redis_but_unanswered_are_counted_exactly_once() {
    use livecache_cache::BreakerConfig;
    use livecache_cache::{Backend, RedisBackend, RedisConfig};
    use livecache_testkit::{RedisServer, SlowReplies};
    // A redis-server of its own: the fault and the load stay out of other tests' way.
    let server = RedisServer::start();
    let (deps, _bus, _clock, data) = common::memory_deps("views-unanswered").await;
    let redis: Arc<dyn Backend> =
        Arc::new(RedisBackend::connect(RedisConfig::from_url(&server.url()).unwrap()).await.unwrap());
    let deps = livecache_runtime::Deps { backend: redis, ..deps };
    // Redis behind a proxy that, while armed, holds replies back longer than the command
    // timeout: Redis applies each HINCRBY, the client hears nothing and gives up.
    let proxy = SlowReplies::start(server.port(), Duration::from_millis(300));
    let mut cfg = RedisConfig::from_url(&proxy.url()).unwrap();
    cfg.command_timeout = Duration::from_millis(100);
    cfg.breaker = BreakerConfig { threshold: 3, cooldown: Duration::from_millis(50) };
    let faulty: Arc<dyn Backend> = Arc::new(RedisBackend::connect(cfg).await.unwrap());
    // Post-response work (the retries of unanswered increments) waits for `run_all`.
    let tasks = Arc::new(livecache_cache::DeferredTasks::new());
    let faulty = App::new(
        &livecache_runtime::Deps { backend: faulty, ..deps.clone() },
        tasks.clone(),
        AdminAuth::Disabled,
        None,
    )
    .market
    .clone();
    let healthy = App::new(&deps, Arc::new(SpawnTasks), AdminAuth::Disabled, None).market.clone();
    let p0 = product_views(&*deps.store, &data).await;
    const VIEWS: usize = 5_000;
    const FAULTY: usize = 600;
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // A read that fails (the database too slow on a loaded machine) serves no view and counts
    // none; every view served must be counted exactly once.
    let served = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    proxy.arm(true);
    let ids: Vec<String> = data.products.iter().take(40).map(|p| p.id.clone()).collect();
    let views = futures::stream::iter(0..VIEWS).for_each_concurrent(32, |i| {
        let (m, id, done, proxy, served) =
            (faulty.clone(), ids[i % ids.len()].clone(), done.clone(), &proxy, served.clone());
        async move {
            if m.product(&Id::parse(&id).unwrap()).await.is_ok() {
                served.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            if done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == FAULTY {
                proxy.arm(false);
            }
        }
    });
    use futures::StreamExt;
    views.await;
    proxy.arm(false);
    assert!(faulty.views_retried() > 0, "the fault was exercised");
    // Redis answers again: every unanswered increment is repeated under its once-key.
    tasks.run_all().await;
    assert_eq!(faulty.views_unconfirmed(), 0, "each retry got its answer");
    // Everything Redis holds is synced; every view is in DynamoDB exactly once.
    let sync = ViewSync::new(healthy.clone());
    for _ in 0..3 {
        sync.drain_once().await.unwrap();
    }
    let p1 = product_views(&*deps.store, &data).await;
    let served = served.load(std::sync::atomic::Ordering::SeqCst);
    assert!(served >= VIEWS * 9 / 10, "{served} of {VIEWS} reads served");
    assert_eq!(
        p1 - p0,
        served as i64,
        "{} views were sent without an answer and retried; each counted once",
        faulty.views_retried()
    );
}
