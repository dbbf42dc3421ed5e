//! The live list under concurrent transitions: go-lives and ends answered at the same time by
//! two app instances sharing one Redis are all in the first read after their answers — served
//! from the cache (no second invalidation has run), so a patch lost to a concurrent one would
//! show.

mod common;

use livecache_domain::Id;
use std::collections::BTreeSet;
use std::sync::Arc;

use livecache_cache::{Backend, DeferredTasks, RedisBackend, RedisConfig};
use livecache_domain::seed::SeedSize;
use livecache_domain::StreamStatus;
use livecache_testkit::shared_redis;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_transitions_on_two_instances_are_all_in_the_first_read() {
    let size = SeedSize { products: 300, users: 80, streams: 80, live_streams: 10, offers: 20, due_offers: 2 };
    let (deps, _bus, _clock, data) = common::memory_deps_sized("live-concurrent", size).await;
    let redis: Arc<dyn Backend> =
        Arc::new(RedisBackend::connect(RedisConfig::from_url(&shared_redis().url()).unwrap()).await.unwrap());
    let deps = livecache_runtime::Deps { backend: redis, ..deps };
    // Two instances; their post-response work (the second invalidation) never runs here.
    let instances = [deps.market(Arc::new(DeferredTasks::new())), deps.market(Arc::new(DeferredTasks::new()))];
    let before = instances[0].live_streams().await.unwrap();
    assert_eq!(before.value.len(), 10);

    // Every scheduled stream goes live and every live one ends, all at once, alternating instances.
    let transitions: Vec<(String, String, StreamStatus)> = data
        .streams
        .iter()
        .filter_map(|s| match s.status {
            StreamStatus::Scheduled => Some((s.id.clone(), s.seller_id.clone(), StreamStatus::Live)),
            StreamStatus::Live => Some((s.id.clone(), s.seller_id.clone(), StreamStatus::Ended)),
            _ => None,
        })
        .collect();
    assert!(transitions.len() >= 50, "{} transitions", transitions.len());
    let answers = futures::future::join_all(transitions.iter().enumerate().map(|(i, (id, seller, to))| {
        let market = &instances[i % 2];
        async move { market.transition_stream(&Id::parse(id).unwrap(), *to, &Id::parse(seller).unwrap()).await }
    }))
    .await;
    for (answer, (id, ..)) in answers.iter().zip(&transitions) {
        assert!(answer.is_ok(), "{id}: {answer:?}");
    }
    let expected: BTreeSet<String> =
        transitions.iter().filter(|(.., to)| *to == StreamStatus::Live).map(|(id, ..)| id.clone()).collect();
    for (i, market) in instances.iter().enumerate() {
        let live = market.live_streams().await.unwrap();
        let shown: BTreeSet<String> = live.value.iter().map(|s| s.id.clone()).collect();
        let missing: Vec<&String> = expected.difference(&shown).collect();
        let extra: Vec<&String> = shown.difference(&expected).collect();
        assert!(missing.is_empty() && extra.is_empty(), "instance {i}: missing {missing:?}, still listed {extra:?}");
    }
}
