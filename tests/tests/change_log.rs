//! The change log: every committed change to a cached table is invalidated, even when the
//! writer's own invalidation failed (Redis frozen) or another service wrote straight to the
//! table; a follower stopped and started again resumes without losing a change. Two app
//! instances share one redis-server (this test's own, so it can be frozen) and moto; the
//! follower is the dev server's (`livecache_dev::follow`), reading moto's DynamoDB Streams as
//! the change-log function's event source does on AWS.

mod common;

use livecache_domain::Id;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use livecache_dev::follow::{follow, Follower};
use livecache_domain::services::Marketplace;
use livecache_domain::users::ProfilePatch;
use livecache_domain::StreamStatus;
use livecache_testkit::RedisServer;

/// How long a test waits for a change to show before calling it lost (the measured lag is
/// printed; this only tells "late" from "never": a lost invalidation lives for the TTL, 1 h).
const LOST_AFTER: Duration = Duration::from_secs(30);

struct Rig {
    server: RedisServer,
    instances: [Marketplace; 2],
    tables: common::DynamoTables,
}

impl Rig {
    async fn new(name: &str) -> Self {
        let server = RedisServer::start();
        let tables = common::dynamo_tables(name).await;
        let (deps, _bus, _clock, _) = common::deps_over(name, tables.store.clone(), tables.data.clone());
        let deps = livecache_runtime::Deps { load_timeout: Some(Duration::from_secs(30)), ..deps };
        let instances: [Marketplace; 2] = common::instances(2, &server.url(), &deps).await.try_into().unwrap();
        Self { server, instances, tables }
    }

    async fn follower(&self) -> Follower {
        follow(self.instances[0].clone(), &self.tables.sdk, &self.tables.names).await.unwrap()
    }

    /// `attr` of item `id` set to `value` straight in `table`, as another service would.
    async fn write_straight(&self, table: &str, id: &str, attr: &str, value: &str) {
        self.tables
            .client
            .update_item()
            .table_name(table)
            .key("id", AttributeValue::S(id.into()))
            .update_expression("SET #a = :v")
            .expression_attribute_names("#a", attr)
            .expression_attribute_values(":v", AttributeValue::S(value.into()))
            .send()
            .await
            .unwrap();
    }

    async fn write_name(&self, user: &str, name: &str) {
        self.write_straight(&self.tables.names.users, user, "name", name).await;
    }
}

async fn profile_name(m: &Marketplace, user: &str) -> (String, bool) {
    let p = m.user_profile(&Id::parse(user).unwrap()).await.unwrap();
    (p.value.user.name, p.cached)
}

/// Reads through every instance until each shows `name`; how long that took. Panics when a
/// change was lost.
async fn until_every_instance_shows(rig: &Rig, user: &str, name: &str) -> Duration {
    let started = Instant::now();
    for m in &rig.instances {
        loop {
            if profile_name(m, user).await.0 == name {
                break;
            }
            assert!(started.elapsed() < LOST_AFTER, "{user}: {name:?} never shown: the change was lost");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_made_straight_to_a_table_is_invalidated() {
    let rig = Rig::new("changelog-straight").await;
    let follower = rig.follower().await;
    follower.caught_up().await;
    let user = rig.tables.data.users[3].id.clone();
    let product = rig.tables.data.products[5].id.clone();
    for m in &rig.instances {
        profile_name(m, &user).await;
        assert!(profile_name(m, &user).await.1, "cached");
        m.product(&Id::parse(&product).unwrap()).await.unwrap();
    }
    rig.write_name(&user, "Written Elsewhere").await;
    rig.write_straight(&rig.tables.names.products, &product, "title", "Repriced elsewhere").await;
    let lag = until_every_instance_shows(&rig, &user, "Written Elsewhere").await;
    follower.caught_up().await;
    for m in &rig.instances {
        assert_eq!(m.product(&Id::parse(&product).unwrap()).await.unwrap().value.title, "Repriced elsewhere");
    }
    println!("a write straight to the users table shown on both instances after {lag:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_stopped_and_started_again_resumes_without_losing_a_change() {
    let rig = Rig::new("changelog-resume").await;
    let first = rig.follower().await;
    first.caught_up().await;
    let history = first.applied();
    drop(first);
    let user = rig.tables.data.users[4].id.clone();
    profile_name(&rig.instances[1], &user).await;
    rig.write_name(&user, "Changed While Stopped").await;
    // Nothing else invalidates it: the cached profile is still the old one.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (name, cached) = profile_name(&rig.instances[1], &user).await;
    assert!(cached && name != "Changed While Stopped", "{name} {cached}");

    let second = rig.follower().await;
    until_every_instance_shows(&rig, &user, "Changed While Stopped").await;
    second.caught_up().await;
    // It resumed after the last change the first one applied: not the whole history again.
    assert!(history > 100, "the first follower applied the seeded history ({history} records)");
    assert_eq!(second.applied(), 1, "the second follower applied only the change made while stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_profile_change_and_a_transition_while_redis_is_frozen_are_acknowledged_and_then_seen() {
    let rig = Rig::new("changelog-frozen").await;
    let follower = rig.follower().await;
    follower.caught_up().await;
    let data = &rig.tables.data;
    let user = data.users[6].id.clone();
    let stream = data.streams.iter().find(|s| s.status == StreamStatus::Scheduled).unwrap().clone();
    for m in &rig.instances {
        profile_name(m, &user).await;
        m.my_profile(&Id::parse(&user).unwrap()).await.unwrap();
        assert!(!m.live_streams().await.unwrap().value.iter().any(|s| s.id == stream.id));
    }
    let patch: ProfilePatch = serde_json::from_value(serde_json::json!({ "name": "Renamed While Frozen" })).unwrap();
    let frozen = rig.server.freeze();
    let answer = rig.instances[0].update_my_profile(&Id::parse(&user).unwrap(), &patch).await;
    assert!(answer.is_ok(), "a committed profile change is acknowledged: {answer:?}");
    let answer = rig.instances[1]
        .transition_stream(&Id::parse(&stream.id).unwrap(), StreamStatus::Live, &Id::parse(&stream.seller_id).unwrap())
        .await;
    assert!(answer.is_ok(), "a committed transition is acknowledged: {answer:?}");
    drop(frozen);
    let thawed = Instant::now();
    // Once the follower has applied what was committed (it tries again until Redis answers),
    // every read on every instance shows both changes, and keeps showing them.
    tokio::time::timeout(LOST_AFTER, follower.caught_up()).await.expect("the follower applies the changes");
    let lag = thawed.elapsed();
    for m in &rig.instances {
        for _ in 0..10 {
            assert_eq!(profile_name(m, &user).await.0, "Renamed While Frozen");
            assert_eq!(
                m.my_profile(&Id::parse(&user).unwrap()).await.unwrap().value.profile.user.name,
                "Renamed While Frozen"
            );
            assert!(m.live_streams().await.unwrap().value.iter().any(|s| s.id == stream.id), "live list");
        }
    }
    println!("changes acknowledged while Redis was frozen shown on both instances {lag:?} after it answered again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_memory_data_a_change_while_redis_is_frozen_is_acknowledged_and_then_seen() {
    // The data lives in the process, and so does its change log: the invalidation Redis did
    // not take is tried again in-process until it does.
    let server = RedisServer::start();
    let (deps, _bus, _clock, data) = common::memory_deps("memory-frozen").await;
    let m = common::instances(1, &server.url(), &deps).await.remove(0);
    let user = data.users[6].id.clone();
    let stream = data.streams.iter().find(|s| s.status == StreamStatus::Scheduled).unwrap().clone();
    profile_name(&m, &user).await;
    assert!(profile_name(&m, &user).await.1, "cached");
    assert!(!m.live_streams().await.unwrap().value.iter().any(|s| s.id == stream.id));
    let patch: ProfilePatch = serde_json::from_value(serde_json::json!({ "name": "Renamed In Memory" })).unwrap();
    let frozen = server.freeze();
    let answer = m.update_my_profile(&Id::parse(&user).unwrap(), &patch).await;
    assert!(answer.is_ok(), "a committed profile change is acknowledged: {answer:?}");
    let answer = m
        .transition_stream(&Id::parse(&stream.id).unwrap(), StreamStatus::Live, &Id::parse(&stream.seller_id).unwrap())
        .await;
    assert!(answer.is_ok(), "a committed transition is acknowledged: {answer:?}");
    drop(frozen);
    let thawed = Instant::now();
    loop {
        let (name, cached) = profile_name(&m, &user).await;
        let live = m.live_streams().await.unwrap();
        if name == "Renamed In Memory" && cached && live.cached && live.value.iter().any(|s| s.id == stream.id) {
            break;
        }
        assert!(thawed.elapsed() < LOST_AFTER, "a change made while Redis was frozen was lost: {name}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..10 {
        assert_eq!(profile_name(&m, &user).await.0, "Renamed In Memory");
    }
    println!("memory data: changes shown from the cache {:?} after Redis answered again", thawed.elapsed());
}
