//! Lambda ends an invocation at the function's `Timeout`, and the timeout covers the
//! extension's post-response phase: the refreshes, prefetches, view retries and the stats flush
//! left behind by a response must be done — or given up — before the invocation's deadline,
//! also while Redis does not answer. Through the Lambda glue (the handler, then the
//! extension's post-response step with the invocation's deadline), with the function's
//! `Timeout` read from `template.yaml` and a redis-server of its own frozen (SIGSTOP) midway.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use livecache_cache::{Backend, DeferredTasks, RedisBackend, RedisConfig};
use livecache_domain::jobs::ViewSync;
use livecache_http::lambda::{after_response, to_api_request};
use livecache_http::{AdminAuth, App};
use livecache_runtime::telemetry::Metrics;
use livecache_testkit::RedisServer;
use serde_yaml::Value;

/// The `Timeout` of the function resource `id` (its own, else the template's global one).
fn function_timeout(id: &str) -> Duration {
    let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let t: Value = serde_yaml::from_str(&std::fs::read_to_string(root.join("template.yaml")).unwrap()).unwrap();
    let own = &t["Resources"][id]["Properties"]["Timeout"];
    let secs = own.as_u64().or_else(|| t["Globals"]["Function"]["Timeout"].as_u64()).unwrap();
    Duration::from_secs(secs)
}

fn product_request(id: &str) -> lambda_http::Request {
    let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let mut event: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("events/http/products-get.json")).unwrap()).unwrap();
    let path = format!("/api/v1/products/{id}");
    event["rawPath"] = path.clone().into();
    event["requestContext"]["http"]["path"] = path.into();
    event["pathParameters"] = serde_json::json!({ "id": id });
    lambda_http::request::from_str(&event.to_string()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_invocation_ends_before_its_deadline_while_redis_is_frozen() {
    let timeout = function_timeout("ProductsFunction");
    let server = RedisServer::start();
    let (deps, _bus, _clock, data) = common::memory_deps("deadline").await;
    let redis: Arc<dyn Backend> =
        Arc::new(RedisBackend::connect(RedisConfig::from_url(&server.url()).unwrap()).await.unwrap());
    let deps = livecache_runtime::Deps { backend: redis, ..deps };
    let tasks = Arc::new(DeferredTasks::new());
    let app = App::new(&deps, tasks.clone(), AdminAuth::Disabled, Some("products"));
    let metrics = Metrics::default();
    let ids: Vec<String> = data.products.iter().take(10).map(|p| p.id.clone()).collect();
    let store_views = || async {
        let found = deps.store.get_products(&ids).await.unwrap();
        found.iter().map(|p| p.as_ref().unwrap().view_count).sum::<i64>()
    };
    let before = store_views().await;

    // One invocation: the handler's answer, then the post-response step, which Lambda ends at
    // the deadline.
    let served = std::sync::atomic::AtomicI64::new(0);
    let invoke = |id: String| {
        let (app, tasks, metrics, served) = (&app, &tasks, &metrics, &served);
        async move {
            let started = Instant::now();
            let resp = app.handle(to_api_request(product_request(&id))).await;
            if resp.status.is_success() {
                served.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            after_response(tasks, app, metrics, "products", started + timeout).await;
            started.elapsed()
        }
    };
    for id in &ids {
        invoke(id.clone()).await;
    }
    let frozen = server.freeze();
    let mut longest = Duration::ZERO;
    for i in 0..30 {
        longest = longest.max(invoke(ids[i % ids.len()].clone()).await);
    }
    drop(frozen);
    println!("longest invocation with Redis frozen: {longest:?}, deadline {timeout:?}");
    assert!(longest < timeout, "an invocation ran {longest:?}, past its {timeout:?} deadline");

    // Nothing counted twice; what was given up is bounded by what could not be confirmed.
    let served = served.load(std::sync::atomic::Ordering::SeqCst);
    let healthy = App::new(&deps, Arc::new(DeferredTasks::new()), AdminAuth::Disabled, None).market.clone();
    let sync = ViewSync::new(healthy);
    // Once the breaker lets commands through again (its cooldown), every pending view is synced.
    let mut drained = 0;
    for _ in 0..600 {
        match sync.drain_once().await {
            Ok(_) => drained += 1,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
        if drained == 3 {
            break;
        }
    }
    assert_eq!(drained, 3, "Redis answers again");
    let counted = store_views().await - before;
    let unconfirmed = app.market.views_unconfirmed() as i64;
    println!("views served {served}, counted {counted}, unconfirmed {unconfirmed}");
    assert!(counted <= served, "{counted} views counted for {served} served");
    assert!(counted >= served - unconfirmed, "{counted} counted, {served} served, {unconfirmed} unconfirmed");
}
