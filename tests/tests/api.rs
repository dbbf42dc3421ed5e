//! End to end: the API over HTTP (the dev server's front) against a real redis-server and
//! DynamoDB in moto's server.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{start, Api};
use livecache_domain::services::keys::discover_key;
use livecache_domain::{DiscoverQuery, FeedPage, FeedSort, PageRequest, Product, StreamStatus};
use serde_json::{json, Value};

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check().await {
        assert!(Instant::now() < deadline, "{what} did not happen within 5 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_pages_are_cached_under_one_key_per_page_size_and_filters() {
    let api = start("feeds", None).await;
    let (s, first) = api.get("/feeds/discover?page=1&per_page=10").await;
    assert_eq!((s, &first["cached"]), (200, &json!(false)));
    assert_eq!(first["items"].as_array().unwrap().len(), 10);
    let (_, again) = api.get("/feeds/discover?per_page=10&page=1").await;
    assert_eq!(again["cached"], json!(true));
    assert_eq!(again["items"], first["items"], "the cached page is the same page");
    for other in [
        "/feeds/discover?page=1&per_page=11",
        "/feeds/discover?page=1&per_page=10&category=fashion",
        "/feeds/discover?page=1&per_page=10&sort=newest",
    ] {
        let (s, v) = api.get(other).await;
        assert_eq!((s, &v["cached"]), (200, &json!(false)), "{other} has its own key");
    }
    // Same filters in another order: same key.
    let (_, v) = api.get("/feeds/discover?category=fashion&per_page=10&page=1").await;
    assert_eq!(v["cached"], json!(true));
    // Community: neighbours within the 2-decimal rounding share the page.
    let (s, c) = api.get("/feeds/community?lat=52.5201&lon=13.4049&radius_km=8").await;
    assert_eq!((s, &c["cached"]), (200, &json!(false)));
    assert!(!c["items"].as_array().unwrap().is_empty());
    assert!(c["items"].as_array().unwrap().iter().all(|i| i["distance_km"].as_f64().unwrap() <= 8.0));
    let (_, near) = api.get("/feeds/community?lat=52.5199&lon=13.4031&radius_km=8").await;
    assert_eq!(near["cached"], json!(true));
    let (_, other) = api.get("/feeds/community?lat=52.5199&lon=13.4031&radius_km=8&max_price=50").await;
    assert_eq!(other["cached"], json!(false));
    assert!(other["items"].as_array().unwrap().iter().all(|i| i["price"].as_f64().unwrap() <= 50.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_page_is_prefetched_after_the_answer() {
    let api = start("prefetch", None).await;
    let (_, p3) = api.get("/feeds/discover?page=3&per_page=5&sort=newest").await;
    assert_eq!(p3["has_more"], json!(true));
    let next = DiscoverQuery { page: PageRequest { page: 4, per_page: 5 }, category: None, sort: FeedSort::Newest };
    let key = discover_key(&api.cache, &next).unwrap();
    // Nobody asked for page 4: it appears in the cache by itself.
    eventually("prefetch of page 4", || async { api.cache.get::<FeedPage>(&key).await.is_some() }).await;
    let (_, p4) = api.get("/feeds/discover?page=4&per_page=5&sort=newest").await;
    assert_eq!(p4["cached"], json!(true));
    assert_ne!(p4["items"][0]["id"], p3["items"][0]["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn going_live_makes_the_next_feed_read_fresh_and_publishes_the_event() {
    // Post-response work waits for the test: the go-live's second invalidation (2 s later)
    // cannot land between its answer and the reads below, however slow the machine.
    let (deps, bus, clock, data) = common::real_deps("golive").await;
    let tasks = Arc::new(livecache_cache::DeferredTasks::new());
    let api = common::serve(deps, bus, clock, data, tasks, None).await;
    let (_, before) = api.get("/feeds/discover?per_page=100").await;
    assert_eq!(api.get("/feeds/discover?per_page=100").await.1["cached"], json!(true));
    assert_eq!(api.get("/streams/live").await.1["cached"], json!(false));
    assert_eq!(api.get("/streams/live").await.1["cached"], json!(true));
    let stream = api.data.streams.iter().find(|s| s.status == StreamStatus::Scheduled).unwrap();
    let seller_products: Vec<&Product> = api.data.products.iter().filter(|p| p.seller_id == stream.seller_id).collect();
    assert!(!seller_products.is_empty());
    assert!(before["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["seller_id"] != json!(stream.seller_id) || i["seller_live"] == json!(false)));

    let (s, v) = api.post_as(&stream.seller_id, &format!("/streams/{}/go-live", stream.id), json!({})).await;
    assert_eq!((s, v["stream"]["status"].as_str()), (200, Some("LIVE")));

    let (_, after) = api.get("/feeds/discover?per_page=100").await;
    assert_eq!(after["cached"], json!(false), "the go-live invalidated the feed before answering");
    let live_items: Vec<&Value> =
        after["items"].as_array().unwrap().iter().filter(|i| i["seller_id"] == json!(stream.seller_id)).collect();
    assert!(
        !live_items.is_empty() && live_items.iter().all(|i| i["seller_live"] == json!(true)),
        "the seller now ranks as live"
    );
    let (_, live) = api.get("/streams/live").await;
    assert_eq!(live["cached"], json!(true), "the go-live stored the live list patched with itself");
    assert!(live["streams"].as_array().unwrap().iter().any(|s| s["id"] == json!(stream.id)));
    let published = api.bus.published();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].detail_type, "StreamStatusChanged");
    assert_eq!(published[0].detail["stream_id"], json!(stream.id));
    assert_eq!(published[0].detail["to"], json!("LIVE"));

    let (s, v) = api.post_as(&stream.seller_id, &format!("/streams/{}/go-live", stream.id), json!({})).await;
    assert_eq!((s, v["error"].as_str()), (409, Some("invalid_transition")));
    let (s, v) = api.post_as(&stream.seller_id, &format!("/streams/{}/end", stream.id), json!({})).await;
    assert_eq!((s, v["stream"]["status"].as_str()), (200, Some("ENDED")));
    let (s, v) = api.post_as(&stream.seller_id, "/streams/stream-999/end", json!({})).await;
    assert_eq!((s, v["error"].as_str()), (404, Some("stream_not_found")));
    assert_eq!(api.bus.published().len(), 2, "refused transitions publish nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_keep_request_order_fold_duplicates_and_list_missing_ids() {
    let api = start("batch", None).await;
    let (s, v) =
        api.post("/batch/products", json!({"product_ids": ["prod-00003", "nope", "prod-00001", "prod-00003"]})).await;
    assert_eq!(s, 200);
    let ids: Vec<&str> = v["products"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["prod-00003", "prod-00001"]);
    assert_eq!(v["missing"], json!(["nope"]));
    assert_eq!((v["hits"].as_u64(), v["misses"].as_u64()), (Some(0), Some(3)));
    let (_, v) = api.post("/batch/products", json!({"product_ids": ["prod-00001", "prod-00003", "nope"]})).await;
    assert_eq!(
        (v["hits"].as_u64(), v["misses"].as_u64()),
        (Some(3), Some(0)),
        "backfilled, unknown id cached as missing"
    );
    // A product read through the single-item route shares the batch's cache entries.
    let (_, p) = api.get("/products/prod-00001").await;
    assert_eq!(p["cached"], json!(true));
    let (s, u) = api.post("/batch/users", json!({"user_ids": ["user-0002", "ghost", "user-0001"]})).await;
    assert_eq!(s, 200);
    assert_eq!(u["users"][0]["id"], json!("user-0002"));
    assert_eq!(u["users"][1]["id"], json!("user-0001"));
    assert_eq!(u["missing"], json!(["ghost"]));
    let too_many: Vec<String> = (0..101).map(|i| format!("user-{i:04}")).collect();
    let (s, v) = api.post("/batch/users", json!({ "user_ids": too_many })).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_batch_size")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_product_is_served_at_once_and_the_refresh_completes() {
    let api = start("swr", None).await;
    let (_, first) = api.get("/products/prod-00005").await;
    assert_eq!(first["cached"], json!(false));
    let mut changed = api.data.products[5].clone();
    changed.title = "Renamed while cached".into();
    api.deps.store.put_products(&[changed]).await.unwrap();
    let (_, cached) = api.get("/products/prod-00005").await;
    assert_eq!(
        (cached["cached"].clone(), cached["product"]["title"].clone()),
        (json!(true), first["product"]["title"].clone())
    );
    // Past 15 min plus the policy's 10 % jitter.
    api.clock.advance(Duration::from_secs(17 * 60));
    let (_, stale) = api.get("/products/prod-00005").await;
    assert_eq!(stale["stale"], json!(true), "past 15 minutes the value is served stale");
    assert_eq!(stale["product"]["title"], first["product"]["title"]);
    // The refresh that request started lands without any further request.
    let key = api.cache.key("products", &["prod-00005"]).unwrap();
    eventually("refresh", || async {
        api.cache
            .get::<Option<Product>>(&key)
            .await
            .is_some_and(|l| !l.is_stale() && l.value.is_some_and(|p| p.title == "Renamed while cached"))
    })
    .await;
    let (_, fresh) = api.get("/products/prod-00005").await;
    assert_eq!((fresh["cached"].clone(), fresh["stale"].clone()), (json!(true), json!(false)));
    assert_eq!(fresh["product"]["title"], json!("Renamed while cached"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_count_once_per_read_without_touching_the_database() {
    let api = start("views", None).await;
    let stored = api.data.products[9].view_count;
    for _ in 0..3 {
        assert_eq!(api.get("/products/prod-00009").await.0, 200);
    }
    let (s, v) = api.get("/products/prod-00009/views").await;
    assert_eq!(s, 200);
    assert_eq!(
        (v["stored"].as_i64(), v["pending"].as_i64(), v["views"].as_i64()),
        (Some(stored), Some(3), Some(stored + 3))
    );
    assert_eq!(api.get("/products/nope/views").await.0, 404);
    // Unknown ids are cached briefly as missing and count no view.
    assert_eq!(api.get("/products/nope").await.1["error"], json!("product_not_found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offers_are_created_tracked_extended_and_listed_when_expiring() {
    let api = start("offers", None).await;
    let product = &api.data.products[0];
    let buyer = api.data.users.iter().find(|u| u.id != product.seller_id).unwrap();
    let (s, v) = api
        .post_as(&buyer.id, "/offers", json!({"product_id": product.id, "amount": 10.499, "expires_in_minutes": 3}))
        .await;
    assert_eq!(s, 201, "{v}");
    let offer_id = v["offer"]["id"].as_str().unwrap().to_string();
    assert_eq!((v["offer"]["status"].as_str(), v["offer"]["amount"].as_f64()), (Some("PENDING"), Some(10.5)));
    let (_, soon) = api.get_as(&buyer.id, "/offers/expiring-soon?within_minutes=5").await;
    assert!(soon["offers"].as_array().unwrap().iter().any(|o| o["id"] == json!(offer_id)));
    let (s, ext) =
        api.post_as(&buyer.id, &format!("/offers/{offer_id}/extend"), json!({"expires_in_minutes": 120})).await;
    assert_eq!(s, 200);
    assert!(ext["offer"]["expires_at"].as_str().unwrap() > v["offer"]["expires_at"].as_str().unwrap());
    let (_, soon) = api.get_as(&buyer.id, "/offers/expiring-soon?within_minutes=5").await;
    assert!(!soon["offers"].as_array().unwrap().iter().any(|o| o["id"] == json!(offer_id)), "extended past the window");
    let (s, e) = api.post_as(&product.seller_id, "/offers", json!({"product_id": product.id, "amount": 5})).await;
    assert_eq!((s, e["error"].as_str()), (403, Some("own_product")));
    let (s, e) = api.post_as(&buyer.id, "/offers", json!({"product_id": "nope", "amount": 5})).await;
    assert_eq!((s, e["error"].as_str()), (404, Some("product_not_found")));
    let (s, e) = api.post_as(&buyer.id, "/offers", json!({"product_id": product.id, "amount": -1})).await;
    assert_eq!((s, e["error"].as_str()), (400, Some("invalid_amount")));
    let (s, e) = api.post_as(&buyer.id, "/offers/offer-nope/extend", json!({"expires_in_minutes": 5})).await;
    assert_eq!((s, e["error"].as_str()), (404, Some("offer_not_found")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_routes_refuse_without_the_token_and_work_with_it() {
    let api = start("admin", Some("s3cret-token")).await;
    for token in [None, Some("wrong"), Some("s3cret-toke"), Some("")] {
        let (s, v) = api.post_raw("/cache/invalidate", r#"{"namespace":"feed_discover"}"#, token).await;
        assert_eq!((s, v["error"].as_str()), (401, Some("unauthorized")), "{token:?}");
    }
    let ok = Some("s3cret-token");
    api.get("/feeds/discover").await;
    assert_eq!(api.get("/feeds/discover").await.1["cached"], json!(true));
    let (s, v) = api.post_raw("/cache/invalidate", r#"{"namespace":"feed_discover"}"#, ok).await;
    assert_eq!(s, 200);
    assert!(v["invalidated"]["namespace"]["generation"].as_u64().unwrap() > 0);
    assert_eq!(api.get("/feeds/discover").await.1["cached"], json!(false));
    // Page 1 and its prefetched page 2 are held.
    eventually("prefetch of page 2", || async { api.cache.count("feed_discover", 100).await.unwrap() == 2 }).await;
    let (s, v) = api.post_raw("/cache/invalidate", r#"{"pattern":"feed_discover:*"}"#, ok).await;
    assert_eq!((s, v["invalidated"]["pattern"]["deleted"].as_u64()), (200, Some(2)));
    assert_eq!(api.cache.count("feed_discover", 100).await.unwrap(), 0);
    let (s, v) = api.post_raw("/cache/invalidate", r#"{"version":true}"#, ok).await;
    assert!(s == 200 && v["invalidated"]["version"]["version"].as_u64().unwrap() > 0);
    // The original form, a version's name: everything is invalidated under it, the old one named.
    api.get("/feeds/discover").await;
    let (s, v) = api.post_raw("/cache/invalidate", r#"{"version":"v2.0"}"#, ok).await;
    assert_eq!(s, 200, "{v}");
    let first = v["invalidated"]["version"].clone();
    assert_eq!((first["name"].as_str(), first["previous"].as_str()), (Some("v2.0"), Some("v1")), "{v}");
    assert_eq!(api.get("/feeds/discover").await.1["cached"], json!(false), "everything invalidated");
    let (_, v) = api.post_raw("/cache/invalidate", r#"{"version":"v2.1"}"#, ok).await;
    assert_eq!(v["invalidated"]["version"]["previous"].as_str(), Some("v2.0"));
    assert!(v["invalidated"]["version"]["version"].as_u64() > first["version"].as_u64());
    let (s, v) = api.post_raw("/cache/invalidate", r#"{"version":"v 3"}"#, ok).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_version")));
    let (s, v) = api.post_raw("/cache/invalidate", r#"{"version":false}"#, ok).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_body")));
    let (s, v) = api.post_raw("/cache/invalidate", r#"{"namespace":"x","version":true}"#, ok).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_body")));
    let (s, v) = api.post_raw("/cache/invalidate", r#"{"pattern":"feed_discover:[a]*"}"#, ok).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_pattern")));
    let (s, v) = api.post_raw("/cache/warm", r#"{"pages":2}"#, ok).await;
    assert_eq!(s, 200);
    assert_eq!(v["warm"]["requested"].as_u64(), Some(4));
    assert_eq!(v["warm"]["warmed"].as_u64().unwrap() + v["warm"]["already_cached"].as_u64().unwrap(), 4);
    assert_eq!(api.get("/feeds/discover?page=2").await.1["cached"], json!(true), "warmed");
    let (s, stats) = api.get("/cache/stats").await;
    assert_eq!(s, 200);
    assert!(stats["aggregate"]["hits"].as_u64().unwrap() >= 1);
    assert!(stats["aggregate"]["latency"]["p99_us"].as_f64().unwrap() > 0.0);
    // Entry counts come from the nightly sweep (no request scans the keyspace): none before it.
    assert_eq!((stats["feed_entries"]["discover"].as_u64(), stats["feed_entries"].get("counted_at")), (Some(0), None));
    let market = api.deps.market(Arc::new(livecache_cache::SpawnTasks));
    livecache_domain::jobs::cleanup(&market, &livecache_domain::jobs::Deadline::never()).await.unwrap();
    let (_, reused) = api.get("/cache/stats").await;
    assert_eq!(reused["feed_entries"], stats["feed_entries"], "the answer is reused for a few seconds");
    api.clock.advance(livecache_domain::services::STATS_ANSWER_TTL);
    let (_, stats) = api.get("/cache/stats").await;
    assert!(stats["feed_entries"]["discover"].as_u64().unwrap() >= 2, "{stats}");
    assert!(stats["feed_entries"]["counted_at"].is_string());
    assert!(stats.get("backend").is_none(), "the cache server's details are not public: {stats}");
    let (s, details) = api.get_with("/cache/stats/details", "s3cret-token").await;
    assert_eq!(s, 200);
    assert!(!details["backend"]["version"].as_str().unwrap().is_empty());
    assert!(details["aggregate"]["hits"].as_u64().unwrap() >= 1);
    assert_eq!(api.get("/cache/stats/details").await.0, 401);
    let (s, jobs) = api.get("/cache/jobs").await;
    assert_eq!((s, jobs["jobs"].is_array()), (200, true));
    // Every scheduled job, with its schedule and next run (before or after its first run).
    let listed: Vec<(&str, &str)> = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| (j["job"].as_str().unwrap(), j["schedule"].as_str().unwrap()))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("view-sync", "rate(1 minute)"),
            ("offer-expiry", "rate(1 minute)"),
            ("cache-cleanup", "cron(0 3 * * ? *)")
        ]
    );
    assert!(jobs["jobs"].as_array().unwrap().iter().all(|j| j["next_run_at"].is_string() && j.get("error").is_none()));
    assert_eq!(api.get_with("/cache/jobs/details", "s3cret-token").await.0, 200);
    assert_eq!(api.get("/cache/jobs/details").await.0, 401);

    let closed = start("admin-closed", None).await;
    let (s, v) = closed.post_raw("/cache/warm", "{}", Some("anything")).await;
    assert_eq!((s, v["error"].as_str()), (403, Some("admin_disabled")), "fails closed without a configured token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_clear_json_error_never_a_500() {
    let api: Api = start("bad", Some("t")).await;
    let gets = [
        ("/feeds/discover?page=0", 400, "invalid_parameter"),
        ("/feeds/discover?per_page=101", 400, "invalid_parameter"),
        ("/feeds/discover?per_page=abc", 400, "invalid_parameter"),
        ("/feeds/discover?sort=random", 400, "invalid_parameter"),
        ("/feeds/discover?category=shoes", 400, "invalid_parameter"),
        ("/feeds/community?lon=13.4", 400, "missing_parameter"),
        ("/feeds/community?lat=91&lon=13.4", 400, "invalid_parameter"),
        ("/feeds/community?lat=52&lon=13&radius_km=500", 400, "invalid_parameter"),
        ("/feeds/community?lat=52&lon=13&min_price=50&max_price=10", 400, "invalid_price_range"),
        ("/feeds/community?lat=NaN&lon=13", 400, "invalid_parameter"),
        ("/products/a*b", 400, "invalid_id"),
        ("/products/%20x", 400, "invalid_id"),
        ("/offers/expiring-soon?within_minutes=0", 400, "invalid_parameter"),
        ("/nothing/here", 404, "route_not_found"),
    ];
    for (path, status, code) in gets {
        let (s, v) = api.get_as("user-0049", path).await;
        assert_eq!((s, v["error"].as_str()), (status, Some(code)), "GET {path}: {v}");
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let posts = [
        ("/batch/users", "", 400, "invalid_body"),
        ("/batch/users", "{not json", 400, "invalid_body"),
        ("/batch/users", r#"{"user_ids": "user-1"}"#, 400, "invalid_body"),
        ("/batch/users", r#"{"user_ids": []}"#, 400, "invalid_batch_size"),
        ("/batch/users", "[]", 400, "invalid_body"),
        ("/batch/users", r#"[["user-0001"]]"#, 400, "invalid_body"),
        ("/batch/users", r#"{"user_ids": ["a b"]}"#, 400, "invalid_id"),
        ("/batch/products", r#"{"ids": ["p"]}"#, 400, "invalid_body"),
        ("/offers", r#"{"product_id":"prod-00001","amount":5,"expires_in_minutes":0}"#, 400, "invalid_expiry"),
        ("/offers", r#"{"product_id":"prod-00001","amount":5,"expires_at":"yesterday"}"#, 400, "invalid_expiry"),
        ("/offers/offer-1/extend", "{}", 400, "invalid_expiry"),
        ("/streams/bad*id/go-live", "", 400, "invalid_id"),
    ];
    let signed_in = common::token("user-0049");
    for (path, body, status, code) in posts {
        let (s, v) = api.post_raw(path, body, Some(&signed_in)).await;
        assert_eq!((s, v["error"].as_str()), (status, Some(code)), "POST {path} {body}: {v}");
    }
    let resp = api.http.delete(format!("{}/offers", api.base)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    let big = format!(r#"{{"user_ids": ["{}"]}}"#, "x".repeat(70 * 1024));
    let (s, v) = api.post_raw("/batch/users", &big, None).await;
    assert_eq!((s, v["error"].as_str()), (413, Some("body_too_large")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_seller_controls_a_stream_and_only_the_buyer_owns_an_offer() {
    let api = start("auth", None).await;
    let stream = api.data.streams.iter().find(|s| s.status == StreamStatus::Scheduled).unwrap().clone();
    let go_live = format!("{}/streams/{}/go-live", api.base, stream.id);
    api.get("/feeds/discover").await;
    let expired = livecache_dev::DevAuth::new(common::TEST_JWT_SECRET).mint(&stream.seller_id, -60);
    let forged = livecache_dev::DevAuth::new("someone-elses-key").mint(&stream.seller_id, 600);
    for (token, why) in [
        (None, "missing"),
        (Some(expired.as_str()), "expired"),
        (Some(forged.as_str()), "wrongly signed"),
        (Some("garbage"), "not a JWT"),
    ] {
        let mut req = api.http.post(&go_live);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{why}");
        let v: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(v["error"], json!("unauthorized"), "{why}");
    }
    // Someone else: 403, and the store, the cache and the bus are untouched.
    let (s, v) = api.post_as("user-0049", &format!("/streams/{}/go-live", stream.id), json!({})).await;
    assert_eq!((s, v["error"].as_str()), (403, Some("not_stream_owner")));
    assert_eq!(api.deps.store.get_stream(&stream.id).await.unwrap().unwrap().status, StreamStatus::Scheduled);
    assert_eq!(api.get("/feeds/discover").await.1["cached"], json!(true), "no invalidation");
    assert!(api.bus.published().is_empty(), "no event");
    // The seller: 200.
    let (s, _) = api.post_as(&stream.seller_id, &format!("/streams/{}/go-live", stream.id), json!({})).await;
    assert_eq!(s, 200);

    // Offers: the buyer is the caller; a body naming someone else is refused; only the buyer extends.
    let product = &api.data.products[3];
    let buyer = api.data.users.iter().find(|u| u.id != product.seller_id).unwrap().id.clone();
    let (s, v) =
        api.post_as(&buyer, "/offers", json!({"product_id": product.id, "buyer_id": "user-0001", "amount": 3})).await;
    assert_eq!((s, v["error"].as_str()), (403, Some("buyer_mismatch")));
    let (s, v) =
        api.post_as(&buyer, "/offers", json!({"product_id": product.id, "buyer_id": buyer, "amount": 3})).await;
    assert_eq!(s, 201);
    assert_eq!(v["offer"]["buyer_id"], json!(buyer));
    let id = v["offer"]["id"].as_str().unwrap().to_string();
    let before = api.deps.store.get_offer(&id).await.unwrap().unwrap();
    let (s, v) = api.post_as("user-0002", &format!("/offers/{id}/extend"), json!({"expires_in_minutes": 90})).await;
    assert_eq!((s, v["error"].as_str()), (403, Some("not_offer_buyer")));
    assert_eq!(api.deps.store.get_offer(&id).await.unwrap().unwrap(), before, "unchanged");
    let (s, _) = api.post_as(&buyer, &format!("/offers/{id}/extend"), json!({"expires_in_minutes": 90})).await;
    assert_eq!(s, 200);
    // Read routes stay public.
    assert_eq!(api.get("/streams/live").await.0, 200);

    // An offer is seen by its buyer and its seller only; to anyone else it does not exist.
    for who in [buyer.as_str(), product.seller_id.as_str()] {
        let (s, v) = api.get_as(who, &format!("/offers/{id}")).await;
        assert_eq!((s, v["offer"]["id"].as_str()), (200, Some(id.as_str())), "{who}");
        let (_, soon) = api.get_as(who, "/offers/expiring-soon?within_minutes=1440").await;
        assert!(soon["offers"].as_array().unwrap().iter().any(|o| o["id"] == json!(id)), "{who} sees it expiring");
    }
    let stranger = api.data.users.iter().find(|u| u.id != buyer && u.id != product.seller_id).unwrap().id.clone();
    let (s, v) = api.get_as(&stranger, &format!("/offers/{id}")).await;
    assert_eq!((s, v["error"].as_str()), (404, Some("offer_not_found")));
    let (_, soon) = api.get_as(&stranger, "/offers/expiring-soon?within_minutes=1440").await;
    assert!(soon["offers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|o| o["buyer_id"] == json!(stranger) || o["seller_id"] == json!(stranger)));
    assert_eq!(api.get("/offers/expiring-soon").await.0, 401, "not public");
    assert_eq!(api.get(&format!("/offers/{id}")).await.0, 401, "not public");
}
