//! The job functions' entry point with the sample events in `events/jobs/`, against a real
//! redis-server and DynamoDB in moto's server; and the dev server's in-process stand-in for the
//! EventBridge rule.

mod common;

use livecache_domain::Id;
use std::sync::Arc;
use std::time::{Duration, Instant};

use livecache_cache::DeferredTasks;
use livecache_domain::events::ProductUpdated;
use livecache_domain::{DomainEvent, EventPublisher};
use livecache_http::{AdminAuth, App};
use livecache_runtime::jobs::{handle, InProcessCacheEvents, Job};
use livecache_runtime::JobSettings;
use serde_json::Value;

fn event(name: &str) -> Value {
    let path = format!("{}/../events/jobs/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_job_runs_on_its_schedule_event_and_refuses_anything_else() {
    let (deps, _bus, _clock, _data) = common::real_deps("worker").await;
    let app = App::new(&deps, Arc::new(DeferredTasks::new()), AdminAuth::Disabled, None);
    let soon = || Instant::now() + Duration::from_secs(10);
    let out = handle(Job::ViewSync, &app.market, &event("schedule-view-sync"), soon(), &JobSettings::default())
        .await
        .unwrap();
    assert_eq!(out["drains"], 1, "one drain when the deadline is near: {out}");
    let out = handle(
        Job::OfferExpiry,
        &app.market,
        &event("schedule-offer-expiry"),
        Instant::now() + Duration::from_secs(30),
        &JobSettings::default(),
    )
    .await
    .unwrap();
    assert!(out["processed"].is_number(), "{out}");
    let out = handle(Job::CacheCleanup, &app.market, &event("schedule-cache-cleanup"), soon(), &JobSettings::default())
        .await
        .unwrap();
    assert!(out["memory_before"].is_number(), "{out}");
    let err = handle(Job::OfferExpiry, &app.market, &event("product-updated"), soon(), &JobSettings::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("expects an EventBridge scheduled event"), "{err}");
    let err =
        handle(Job::ViewSync, &app.market, &serde_json::json!({}), soon(), &JobSettings::default()).await.unwrap_err();
    assert!(err.to_string().contains("scheduled event"), "{err}");
    let runs = app.market.job_runs().await.unwrap();
    assert_eq!(runs.iter().map(|r| r.job.as_str()).collect::<Vec<_>>(), ["cache-cleanup", "offer-expiry", "view-sync"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_events_applies_good_events_and_drops_malformed_ones() {
    let (deps, _bus, _clock, _data) = common::real_deps("cache-events").await;
    let app = App::new(&deps, Arc::new(DeferredTasks::new()), AdminAuth::Disabled, None);
    let soon = Instant::now() + Duration::from_secs(10);
    let out =
        handle(Job::CacheEvents, &app.market, &event("product-updated"), soon, &JobSettings::default()).await.unwrap();
    assert_eq!(out["invalidated"][0], "products:prod-00001");
    let out = handle(Job::CacheEvents, &app.market, &event("stream-status-changed"), soon, &JobSettings::default())
        .await
        .unwrap();
    assert_eq!(out["invalidated"].as_array().unwrap().len(), 3);
    let out = handle(Job::CacheEvents, &app.market, &event("malformed-product-updated"), soon, &JobSettings::default())
        .await
        .unwrap();
    assert!(out["dropped"].as_str().unwrap().contains("product_id"), "{out}");
}

#[tokio::test]
async fn the_dev_servers_bus_delivers_product_updates_to_cache_events() {
    let (deps, bus, _clock, _data) = common::memory_deps("bus").await;
    let app = App::new(&deps, Arc::new(DeferredTasks::new()), AdminAuth::Disabled, None);
    bus.subscribe(Arc::new(InProcessCacheEvents(app.market.clone())));
    assert!(!app.market.product(&Id::parse("prod-00003").unwrap()).await.unwrap().cached);
    assert!(app.market.product(&Id::parse("prod-00003").unwrap()).await.unwrap().cached);
    let update = DomainEvent::ProductUpdated(ProductUpdated {
        product_id: "prod-00003".into(),
        seller_id: None,
        fields: vec![],
        at: None,
    });
    bus.publish(&[update]).await.unwrap();
    assert!(
        !app.market.product(&Id::parse("prod-00003").unwrap()).await.unwrap().cached,
        "invalidated by the in-process rule"
    );
}
