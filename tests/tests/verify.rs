//! Production measures its consistency: sampled product hits are checked against the source
//! after the response. The verifier proves itself here by catching an injected stale entry (a
//! change whose invalidation was lost), by not counting a write in flight (its invalidation
//! lands within the settle time) nor a view count (write-behind by design).

mod common;

use livecache_domain::Id;
use std::sync::Arc;

use livecache_cache::DeferredTasks;
use livecache_domain::services::VerifyCounts;
use livecache_domain::store::ViewChunk;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampled_hits_are_checked_and_a_stale_entry_is_caught() {
    let (deps, _bus, _clock, data) = common::memory_deps("verify").await;
    let tasks = Arc::new(DeferredTasks::new());
    let market = deps.market(tasks.clone());
    market.set_verify_rate(1.0);
    let product = data.products[3].clone();
    let read = || async { market.product(&Id::parse(&product.id).unwrap()).await.unwrap() };
    let counts = || market.verify_counts();

    // A miss is not checked; a hit is, and matches.
    assert!(!read().await.cached);
    tasks.run_all().await;
    assert_eq!(counts(), VerifyCounts::default());
    assert!(read().await.cached);
    tasks.run_all().await;
    assert_eq!(counts(), VerifyCounts { consistent: 1, ..Default::default() });

    // Views synced to the database since the entry was stored: write-behind, not a mismatch.
    let chunk = ViewChunk { id: "verify-1".into(), products: vec![(product.id.clone(), 7)], streams: vec![] };
    deps.store.apply_view_chunk(&chunk).await.unwrap();
    read().await;
    tasks.run_all().await;
    assert_eq!(counts(), VerifyCounts { consistent: 2, ..Default::default() });

    // A write in flight: the database is changed, the hit serves the old title, and the
    // write's invalidation lands before the check looks again: settled, not inconsistent.
    let mut renamed = deps.store.get_product(&product.id).await.unwrap().unwrap();
    renamed.title = "Renamed while in flight".into();
    deps.store.put_products(std::slice::from_ref(&renamed)).await.unwrap();
    assert_eq!(read().await.value.title, product.title);
    market.invalidate_pattern(&format!("products:{}", product.id)).await.unwrap();
    tasks.run_all().await;
    assert_eq!(counts(), VerifyCounts { consistent: 2, settled: 1, ..Default::default() });

    // A lost invalidation: the database changes and nothing invalidates the entry.
    assert!(!read().await.cached, "loaded again after the invalidation");
    tasks.run_all().await;
    let mut lost = renamed.clone();
    lost.title = "Changed, invalidation lost".into();
    deps.store.put_products(std::slice::from_ref(&lost)).await.unwrap();
    assert_eq!(read().await.value.title, "Renamed while in flight", "the stale entry is served");
    tasks.run_all().await;
    assert_eq!(counts(), VerifyCounts { consistent: 2, settled: 1, inconsistent: 1 });

    // None is checked at rate 0.
    market.set_verify_rate(0.0);
    read().await;
    tasks.run_all().await;
    assert_eq!(counts(), VerifyCounts { consistent: 2, settled: 1, inconsistent: 1 });
}

/// Every demo product's hit matches its source: the cache serves what it stored, to the last
/// bit of every coordinate (a JSON parser that is not exact for floats made 40 of these 300
/// count as inconsistent under load).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_product_served_from_the_cache_is_the_source_s_product() {
    let (deps, _bus, _clock, data) = common::memory_deps("verify-all").await;
    let tasks = Arc::new(DeferredTasks::new());
    let market = deps.market(tasks.clone());
    market.set_verify_rate(1.0);
    for p in &data.products {
        assert!(!market.product(&Id::parse(&p.id).unwrap()).await.unwrap().cached);
        assert!(market.product(&Id::parse(&p.id).unwrap()).await.unwrap().cached);
    }
    tasks.run_all().await;
    let n = data.products.len() as u64;
    assert_eq!(market.verify_counts(), VerifyCounts { consistent: n, ..Default::default() });
}
