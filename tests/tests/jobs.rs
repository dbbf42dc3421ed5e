//! The jobs against a real redis-server and DynamoDB in moto's server.
//!
//! Emulator note: moto does not fire schedules, so the tests call the jobs as the schedule
//! would.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use livecache_cache::SpawnTasks;
use livecache_domain::jobs::{self, Deadline, Fault, RunClock, ViewSync};
use livecache_domain::seed::DemoData;
use livecache_domain::services::{Marketplace, OfferIndex, ViewKind, ViewLedger};
use livecache_domain::{time, Offer, OfferStatus, Store};
use livecache_http::{AdminAuth, App};
use serde_json::json;

async fn market(name: &str) -> (Marketplace, DemoData, common::Api) {
    let (deps, bus, clock, data) = common::real_deps(name).await;
    let api = common::serve(deps.clone(), bus, clock, data.clone(), Arc::new(SpawnTasks), None).await;
    let app = App::new(&deps, Arc::new(SpawnTasks), AdminAuth::Disabled, None);
    (app.market.clone(), data, api)
}

/// What a test reaches beside the service: the clients, and a cache on the same keyspace
/// (for the key helpers).
#[derive(Clone)]
struct Parts {
    store: Arc<dyn Store>,
    backend: Arc<dyn livecache_cache::Backend>,
    cache: livecache_cache::Cache,
}

impl Parts {
    fn of(deps: &livecache_runtime::Deps) -> Self {
        let cache = livecache_cache::Cache::builder(deps.backend.clone()).keyspace(deps.keyspace.clone()).build();
        Self { store: deps.store.clone(), backend: deps.backend.clone(), cache }
    }

    fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    fn backend(&self) -> &Arc<dyn livecache_cache::Backend> {
        &self.backend
    }

    fn cache(&self) -> &livecache_cache::Cache {
        &self.cache
    }

    fn views(&self) -> ViewLedger {
        ViewLedger::new(&self.cache)
    }
}

async fn view_totals(store: &dyn Store, data: &DemoData) -> (i64, i64) {
    let ids: Vec<String> = data.products.iter().map(|p| p.id.clone()).collect();
    let products: i64 = store.get_products(&ids).await.unwrap().iter().map(|p| p.as_ref().unwrap().view_count).sum();
    let mut streams = 0;
    for s in &data.streams {
        streams += store.get_stream(&s.id).await.unwrap().unwrap().view_count;
    }
    (products, streams)
}

/// `n` increments spread over 40 products and 5 streams, from 8 concurrent writers.
async fn increments(p: &Parts, n: usize) {
    let mut tasks = Vec::new();
    for w in 0..8 {
        let p = p.clone();
        tasks.push(tokio::spawn(async move {
            let views = p.views();
            for i in (w..n).step_by(8) {
                if i % 10 == 0 {
                    views.add(ViewKind::Streams, &format!("stream-{:03}", i % 5), 1).await.unwrap();
                } else {
                    views.add(ViewKind::Products, &format!("prod-{:05}", i % 40), 1).await.unwrap();
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// Pending views on 250 distinct products (three chunks of at most 99); returns their sum.
async fn views_on_250_products(p: &Parts) -> i64 {
    let views = p.views();
    for i in 0..250 {
        views.add(ViewKind::Products, &format!("prod-{i:05}"), 1 + (i % 3) as i64).await.unwrap();
    }
    (0..250).map(|i| 1 + (i % 3) as i64).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn view_sync_counts_every_view_exactly_once_through_crashes() {
    let (m, data, api) = market("viewsync").await;
    let p = Parts::of(&api.deps);
    let (p0, s0) = view_totals(&**p.store(), &data).await;
    let mut counted = 0usize;

    let sync = ViewSync::new(m.clone());

    // Crash after the move: the batch is left behind, nothing applied.
    increments(&p, 1500).await;
    counted += 1500;
    let crash_after_move = ViewSync { market: m.clone(), fault: Some(Fault::AfterMove) };
    assert!(matches!(crash_after_move.drain_once().await, Err(jobs::JobError::Injected(Fault::AfterMove))));
    assert_eq!(view_totals(&**p.store(), &data).await, (p0, s0), "nothing applied yet");
    let next = sync.drain_once().await.unwrap();
    assert_eq!(next.recovered, 1, "the next run finishes the batch left behind");

    // Crash after the database write, before the delete: applied, but the batch is still there.
    increments(&p, 1500).await;
    counted += 1500;
    let crash_after_write = ViewSync { market: m.clone(), fault: Some(Fault::AfterWrite) };
    assert!(matches!(crash_after_write.drain_once().await, Err(jobs::JobError::Injected(Fault::AfterWrite))));

    // Recovery, with increments racing the drains: the applied batch is recognised, not re-added.
    let racing = {
        let p = p.clone();
        tokio::spawn(async move { increments(&p, 2000).await })
    };
    let mut recovered = 0;
    for _ in 0..5 {
        recovered += sync.drain_once().await.unwrap().recovered;
    }
    racing.await.unwrap();
    counted += 2000;
    assert_eq!(recovered, 1);
    assert_eq!(sync.drain_once().await.unwrap().recovered, 0);

    let (p1, s1) = view_totals(&**p.store(), &data).await;
    assert_eq!(((p1 - p0) + (s1 - s0)) as usize, counted, "DynamoDB holds every view, once");
    assert_eq!(s1 - s0, (counted / 10) as i64);
    assert!(p.views().pending_all(ViewKind::Products).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_shards_is_finished_by_the_next_run_and_nothing_is_counted_twice() {
    let (m, data, api) = market("viewsync-shards").await;
    let p = Parts::of(&api.deps);
    let (p0, s0) = view_totals(&**p.store(), &data).await;
    increments(&p, 1500).await;
    let shards_with_views = {
        let views = p.views();
        let mut shards = std::collections::BTreeSet::new();
        for id in views.pending_all(ViewKind::Products).await.unwrap().keys() {
            shards.insert(views.shard_of(id));
        }
        shards
    };
    assert!(shards_with_views.len() > 8, "the views are spread over shards: {shards_with_views:?}");
    let crashing = ViewSync { market: m.clone(), fault: Some(Fault::BetweenShards) };
    assert!(matches!(crashing.drain_once().await, Err(jobs::JobError::Injected(Fault::BetweenShards))));
    let left = p.views().pending_all(ViewKind::Products).await.unwrap();
    assert!(!left.is_empty() && left.values().sum::<i64>() < 1350, "half the shards moved, half still pending");
    // More views while the moved half waits, then two runs: the first finishes the half moved
    // before the crash and syncs the rest; the second finds nothing left behind.
    increments(&p, 500).await;
    let next = ViewSync::new(m.clone()).drain_once().await.unwrap();
    assert_eq!(next.recovered, 1, "{next:?}");
    assert_eq!(next.total_views, 2000, "{next:?}");
    assert_eq!(ViewSync::new(m.clone()).drain_once().await.unwrap().recovered, 0);
    let (p1, s1) = view_totals(&**p.store(), &data).await;
    assert_eq!((p1 - p0) + (s1 - s0), 2000, "DynamoDB holds every view, once");
    assert!(p.views().pending_all(ViewKind::Products).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_chunks_is_finished_without_counting_the_written_chunk_twice() {
    let (m, data, api) = market("viewsync-chunks").await;
    let p = Parts::of(&api.deps);
    let (p0, _) = view_totals(&**p.store(), &data).await;
    let counted = views_on_250_products(&p).await;
    let crashing = ViewSync { market: m.clone(), fault: Some(Fault::BetweenChunks) };
    assert!(matches!(crashing.drain_once().await, Err(jobs::JobError::Injected(Fault::BetweenChunks))));
    let (partial, _) = view_totals(&**p.store(), &data).await;
    assert!(partial > p0 && partial < p0 + counted, "one chunk of three written");
    let report = ViewSync::new(m.clone()).drain_once().await.unwrap();
    assert_eq!(report.recovered, 1);
    let (p1, _) = view_totals(&**p.store(), &data).await;
    assert_eq!(p1 - p0, counted, "the written chunk was recognised, the others applied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn view_sync_checks_the_deadline_before_each_chunk_and_the_next_run_finishes_the_batch() {
    let (m, data, api) = market("viewsync-deadline").await;
    let p = Parts::of(&api.deps);
    let (p0, _) = view_totals(&**p.store(), &data).await;
    let counted = views_on_250_products(&p).await;
    // Each reading of the clock costs 1 s; a deadline 12 s away with an 8 s margin leaves time
    // to move the batch and write a chunk or two, not all three.
    let clock = Arc::new(common::SteppingClock::new(Duration::from_secs(1)));
    let end = clock.now() + Duration::from_secs(12);
    let deadline = Deadline::with_clock(end, clock.clone());
    let report = ViewSync::new(m.clone()).run(deadline, Duration::from_secs(5), Duration::from_secs(8)).await.unwrap();
    assert_eq!(report.deferred, 1, "{report:?}");
    assert_eq!(report.batches, 0, "{report:?}");
    assert!(clock.now() < end, "never past the deadline");
    let (partial, _) = view_totals(&**p.store(), &data).await;
    assert!(partial > p0 && partial < p0 + counted, "stopped between chunks: {} of {counted}", partial - p0);
    let next = ViewSync::new(m.clone()).drain_once().await.unwrap();
    assert_eq!((next.recovered, next.deferred), (1, 0), "{next:?}");
    let (p1, _) = view_totals(&**p.store(), &data).await;
    assert_eq!(p1 - p0, counted, "the chunks written before the stop counted once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn view_sync_drains_repeatedly_inside_one_run_and_records_it() {
    let (m, _data, api) = market("viewsync-run").await;
    let p = Parts::of(&api.deps);
    increments(&p, 100).await;
    let sync = ViewSync::new(m.clone());
    // Time is the test's: each reading of the clock costs 10 ms and sleeps pass at once, so
    // the run's shape does not depend on how busy the machine is.
    let clock = Arc::new(common::SteppingClock::new(Duration::from_millis(10)));
    let deadline = clock.now() + Duration::from_secs(3);
    let report = sync
        .run(Deadline::with_clock(deadline, clock.clone()), Duration::from_millis(100), Duration::from_millis(300))
        .await
        .unwrap();
    assert!(report.drains >= 2, "{report:?}");
    assert!(clock.now() < deadline, "stops before the deadline");
    assert_eq!(report.total_views, 100);
    let (_, jobs) = api.get("/cache/jobs").await;
    let run = jobs["jobs"].as_array().unwrap().iter().find(|j| j["job"] == "view-sync").unwrap().clone();
    assert_eq!(run["outcome"], "ok");
    assert_eq!(run["figures"]["total_views"], 100);
    // Every tenth increment goes to a stream; the rest to the 36 products whose index is not a
    // multiple of 10.
    assert_eq!(run["figures"]["products_synced"], 36);
    assert_eq!(run["figures"]["streams_synced"], 1);
}

fn due_offer(i: usize, data: &DemoData) -> Offer {
    let p = &data.products[i % data.products.len()];
    Offer {
        id: format!("due-{i:05}"),
        product_id: p.id.clone(),
        buyer_id: "user-0049".into(),
        seller_id: p.seller_id.clone(),
        amount: 1.0,
        currency: "EUR".into(),
        status: OfferStatus::Pending,
        created_at: time::now(),
        expires_at: time::from_millis(time::now().timestamp_millis() - 60_000),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offer_expiry_is_idempotent_and_announces_each_offer_once() {
    let (m, data, api) = market("expiry").await;
    let p = Parts::of(&api.deps);
    let seeded_due: Vec<&Offer> = data.offers.iter().filter(|o| o.expires_at <= time::now()).collect();
    let index = OfferIndex::new(p.cache());
    let offers: Vec<Offer> = (0..150).map(|i| due_offer(i, &data)).collect();
    p.store().put_offers(&offers).await.unwrap();
    for o in &offers {
        index.track(o).await.unwrap();
    }
    // A stale index entry (no such offer), and one offer expired already by a run whose
    // OfferExpired never went out.
    index.track(&Offer { id: "ghost".into(), ..due_offer(0, &data) }).await.unwrap();
    p.store().expire_offer("due-00000", time::now()).await.unwrap();
    let announced = |bus: &livecache_domain::InProcessBus| -> Vec<String> {
        let expired = bus.published().into_iter().filter(|e| e.detail_type == "OfferExpired");
        expired.map(|e| e.detail["event_id"].as_str().unwrap().to_string()).collect()
    };
    let first = jobs::expire_offers(&m, &Deadline::at(Instant::now() + Duration::from_secs(60))).await.unwrap();
    let total = 150 + seeded_due.len();
    assert_eq!((first.processed, first.updated, first.announced), (total, total - 1, total));
    assert_eq!((first.orphans, first.not_due, first.errors, first.unannounced), (0, 0, 0, 0));
    assert_eq!(index.entries().await.unwrap().len(), 1, "announced offers leave the Redis index too");
    assert_eq!(p.store().get_offer("due-00042").await.unwrap().unwrap().status, OfferStatus::Expired);
    for o in &seeded_due {
        assert_eq!(p.store().get_offer(&o.id).await.unwrap().unwrap().status, OfferStatus::Expired, "seeded {}", o.id);
    }
    let ids: std::collections::HashSet<String> = announced(&api.bus).into_iter().collect();
    assert_eq!((ids.len(), announced(&api.bus).len()), (total, total), "one OfferExpired per offer, each its own id");
    assert!(ids.contains("offer-expired:due-00000"));
    let second = jobs::expire_offers(&m, &Deadline::at(Instant::now() + Duration::from_secs(60))).await.unwrap();
    assert_eq!((second.processed, second.updated, second.announced), (0, 0, 0), "a second run changes nothing");
    assert_eq!(announced(&api.bus).len(), total, "and announces nothing again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_due_offers_are_processed_in_one_run() {
    let (deps, _bus, _clock, data) = common::memory_deps("ten-thousand").await;
    let m = App::new(&deps, Arc::new(SpawnTasks), AdminAuth::Disabled, None).market.clone();
    let p = Parts::of(&deps);
    let index = OfferIndex::new(p.cache());
    let offers: Vec<Offer> = (0..10_000).map(|i| due_offer(i, &data)).collect();
    p.store().put_offers(&offers).await.unwrap();
    index.rebuild(&offers).await.unwrap();
    let started = Instant::now();
    let report = jobs::expire_offers(&m, &Deadline::at(Instant::now() + Duration::from_secs(50))).await.unwrap();
    let seeded_due = data.offers.iter().filter(|o| o.expires_at <= time::now()).count();
    assert_eq!((report.processed, report.updated, report.errors), (10_000 + seeded_due, 10_000 + seeded_due, 0));
    assert!(started.elapsed() < Duration::from_secs(50));
    eprintln!("10,000 due offers expired in {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_sweeps_stale_keys_and_prunes_the_index() {
    let (m, data, api) = market("cleanup").await;
    let p = Parts::of(&api.deps);
    api.get("/feeds/discover").await;
    p.cache().invalidate_namespace("feed_discover").await.unwrap();
    let root = p.cache().keys().root().to_string();
    p.backend().set(&format!("{root}:products:no-ttl"), b"x", None).await.unwrap();
    let index = OfferIndex::new(p.cache());
    index.track(&Offer { id: "ghost-offer".into(), ..due_offer(0, &data) }).await.unwrap();
    index.track(&Offer { expires_at: time::from_millis(5), ..data.offers[50].clone() }).await.unwrap();
    let report = jobs::cleanup(&m, &Deadline::never()).await.unwrap();
    assert!(
        report.deleted_expired >= 2,
        "the old-generation page, its prefetched page and the TTL-less key: {report:?}"
    );
    assert_eq!(report.deleted_orphans, 1);
    assert!(report.memory_before > 0 && report.memory_after > 0);
    // The index is rebuilt from DynamoDB: every pending offer (the seeded ones were written to
    // the store only) is in it, the ghost is not.
    assert_eq!(report.reindexed, data.offers.len());
    assert_eq!(index.entries().await.unwrap().len(), data.offers.len(), "the pending offers are indexed");
    assert_eq!(index.scheduled_at("ghost-offer").await.unwrap(), None);
    let o50 = &data.offers[50];
    assert_eq!(
        index.scheduled_at(&o50.id).await.unwrap(),
        Some(o50.expires_at.timestamp_millis() as u64),
        "at its expiry time from DynamoDB"
    );
    let (_, jobs) = api.get("/cache/jobs").await;
    assert!(jobs["jobs"].as_array().unwrap().iter().any(|j| j["job"] == "cache-cleanup" && j["outcome"] == "ok"));
}

/// A cleanup whose deadline leaves no budget after the sweep leaves the index to the next
/// run (its readers rebuild it anyway) instead of running past the deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_out_of_time_after_the_sweep_leaves_the_index_for_the_next_run() {
    let (deps, _bus, _clock, _data) = common::memory_deps("cleanup-deadline").await;
    let m = App::new(&deps, Arc::new(SpawnTasks), AdminAuth::Disabled, None).market.clone();
    let clock = Arc::new(common::SteppingClock::new(Duration::from_secs(1)));
    let deadline = Deadline::with_clock(clock.now() + Duration::from_secs(1), clock.clone());
    let report = jobs::cleanup(&m, &deadline).await.unwrap();
    assert_eq!((report.reindexed, report.deleted_orphans), (0, 0), "{report:?}");
    let report = jobs::cleanup(&m, &Deadline::never()).await.unwrap();
    assert!(report.reindexed > 0, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn product_and_stream_events_invalidate_what_they_touch() {
    let (m, _data, api) = market("events").await;
    assert_eq!(api.get("/products/prod-00002").await.1["cached"], json!(false));
    assert_eq!(api.get("/products/prod-00002").await.1["cached"], json!(true));
    api.get("/feeds/discover").await;
    api.get("/streams/live").await;
    let product_event = json!({
        "version": "0", "id": "e1", "detail-type": "ProductUpdated", "source": "marketplace.catalog",
        "account": "123456789012", "time": "2026-11-21T06:00:00Z", "region": "us-east-1", "resources": [],
        "detail": { "product_id": "prod-00002", "fields": ["price"] }
    });
    let out = jobs::apply_event(&m, &product_event).await.unwrap();
    assert_eq!(out.invalidated, vec!["products:prod-00002", "feed_discover", "feed_community"]);
    assert_eq!(api.get("/products/prod-00002").await.1["cached"], json!(false));
    assert_eq!(api.get("/feeds/discover").await.1["cached"], json!(false));
    assert_eq!(api.get("/streams/live").await.1["cached"], json!(true), "a product change leaves the live list");
    let stream_event = json!({
        "version": "0", "id": "e2", "detail-type": "StreamStatusChanged", "source": "livecache.marketplace",
        "account": "123456789012", "time": "2026-11-21T06:00:00Z", "region": "us-east-1", "resources": [],
        "detail": { "stream_id": "stream-001", "seller_id": "user-0001", "from": "LIVE", "to": "ENDED", "at": "2026-11-21T06:00:00.000Z" }
    });
    jobs::apply_event(&m, &stream_event).await.unwrap();
    assert_eq!(api.get("/streams/live").await.1["cached"], json!(false));
    for bad in [
        json!({"hello": "world"}),
        json!({"version": "0", "id": "x", "detail-type": "ProductUpdated", "source": "s", "time": "t", "detail": {"product": 1}}),
        json!({"version": "0", "id": "x", "detail-type": "ProductUpdated", "source": "s", "time": "t", "detail": {"product_id": "a*b"}}),
        json!({"version": "0", "id": "x", "detail-type": "Unknown", "source": "s", "time": "t", "detail": {}}),
    ] {
        assert!(matches!(jobs::apply_event(&m, &bad).await, Err(jobs::JobError::BadEvent(_))), "{bad}");
    }
}
