//! The Lambda side: every API Gateway v2 request in `events/http/` goes through lambda_http's
//! parsing and the same App; and post-response work queued by one invocation is finished by the
//! extension's step before the environment could freeze, so the next invocation sees it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use livecache_cache::DeferredTasks;
use livecache_http::lambda::{after_response, to_api_request, to_lambda_response};
use livecache_http::{AdminAuth, App};
use livecache_runtime::telemetry::Metrics;

fn fixtures() -> Vec<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../events/http");
    let mut out: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| (p.file_stem().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap()))
        .collect();
    out.sort();
    out
}

fn status_for(name: &str) -> u16 {
    match name {
        "offers-create" => 201,
        // Ends stream-001, which the demo data has live; extends offer-00150, pending and not yet due.
        _ => 200,
    }
}

#[tokio::test]
async fn every_fixture_is_answered_through_the_lambda_request_path() {
    // The full demo data set, as under `cargo lambda watch`: the fixtures name its streams,
    // offers and owners.
    let (deps, _bus, _clock, _data) =
        common::memory_deps_sized("fixtures", livecache_domain::seed::SeedSize::DEMO).await;
    let app = App::new(&deps, Arc::new(DeferredTasks::new()), AdminAuth::Iam { principals: vec![] }, None);
    let all = fixtures();
    assert_eq!(all.len(), livecache_http::ROUTES.len(), "one fixture per route");
    for (name, json) in all {
        let req = lambda_http::request::from_str(&json).unwrap_or_else(|e| panic!("{name}: {e}"));
        let api = to_api_request(req);
        let resp = app.handle(api).await;
        let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!(resp.status.as_u16(), status_for(&name), "{name}: {body}");
        let lambda = to_lambda_response(resp);
        assert_eq!(lambda.headers()["content-type"], "application/json");
    }
}

#[tokio::test]
async fn a_function_serves_only_its_own_routes() {
    let (deps, _bus, _clock, _data) = common::memory_deps("only-own").await;
    let feeds = App::new(&deps, Arc::new(DeferredTasks::new()), AdminAuth::Disabled, Some("feeds"));
    let product = fixtures().into_iter().find(|(n, _)| n == "products-get").unwrap().1;
    let resp = feeds.handle(to_api_request(lambda_http::request::from_str(&product).unwrap())).await;
    assert_eq!(resp.status.as_u16(), 404);
}

#[tokio::test]
async fn the_caller_comes_from_the_authorizer_claims_only() {
    let (deps, bus, _clock, _data) = common::memory_deps_sized("claims", livecache_domain::seed::SeedSize::DEMO).await;
    let app = App::new(&deps, Arc::new(DeferredTasks::new()), AdminAuth::Disabled, None);
    let fixture = |name: &str| fixtures().into_iter().find(|(n, _)| n == name).unwrap().1;
    let req = to_api_request(lambda_http::request::from_str(&fixture("streams-go-live")).unwrap());
    assert_eq!(req.claims.as_ref().unwrap()["sub"], "user-0050");
    // The same request signed in as someone else: 403, and nothing changes.
    let mut other: serde_json::Value = serde_json::from_str(&fixture("streams-go-live")).unwrap();
    other["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = "user-0051".into();
    let resp = app.handle(to_api_request(lambda_http::request::from_str(&other.to_string()).unwrap())).await;
    assert_eq!(resp.status.as_u16(), 403);
    assert_eq!(
        deps.store.get_stream("stream-050").await.unwrap().unwrap().status,
        livecache_domain::StreamStatus::Scheduled
    );
    assert!(bus.published().is_empty());
    // No authorizer claims at all (a header the client sends is not a claim): 401.
    let mut unsigned: serde_json::Value = serde_json::from_str(&fixture("offers-create")).unwrap();
    unsigned["requestContext"].as_object_mut().unwrap().remove("authorizer");
    unsigned["headers"]["x-user-id"] = "user-0499".into();
    let resp = app.handle(to_api_request(lambda_http::request::from_str(&unsigned.to_string()).unwrap())).await;
    assert_eq!(resp.status.as_u16(), 401);
    // A buyer_id in the body that is not the caller: 403.
    let mut spoofed: serde_json::Value = serde_json::from_str(&fixture("offers-create")).unwrap();
    spoofed["body"] =
        serde_json::json!({"product_id": "prod-00001", "buyer_id": "user-0001", "amount": 5}).to_string().into();
    let resp = app.handle(to_api_request(lambda_http::request::from_str(&spoofed.to_string()).unwrap())).await;
    assert_eq!(resp.status.as_u16(), 403);
}

#[tokio::test]
async fn query_strings_and_path_ids_come_through() {
    let (deps, _bus, _clock, _data) = common::memory_deps("query").await;
    let app = App::new(&deps, Arc::new(DeferredTasks::new()), AdminAuth::Disabled, None);
    let json = fixtures().into_iter().find(|(n, _)| n == "feeds-community").unwrap().1;
    let req = to_api_request(lambda_http::request::from_str(&json).unwrap());
    assert_eq!(req.path, "/api/v1/feeds/community");
    assert!(req.query.contains(&("lat".to_string(), "52.52".to_string())));
    assert_eq!(req.request_id, "");
    let resp = app.handle(req).await;
    let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    assert!(body["items"].as_array().unwrap().iter().all(|i| i["category"] == "fashion"));
}

#[tokio::test]
async fn a_refresh_queued_by_one_invocation_is_done_before_the_next() {
    let (deps, _bus, clock, data) = common::memory_deps("lambda-swr").await;
    let tasks = Arc::new(DeferredTasks::new());
    let app = App::new(&deps, tasks.clone(), AdminAuth::Disabled, Some("products"));
    let metrics = Metrics::default();
    let get = || {
        let json = fixtures().into_iter().find(|(n, _)| n == "products-get").unwrap().1;
        to_api_request(lambda_http::request::from_str(&json).unwrap())
    };
    let body = |r: livecache_http::ApiResponse| serde_json::from_slice::<serde_json::Value>(&r.body).unwrap();

    // Invocation 1: a miss; its post-response step has nothing to refresh.
    assert_eq!(body(app.handle(get()).await)["cached"], false);
    after_response(&tasks, &app, &metrics, "products", far_deadline()).await;
    // The product changes in the database; 17 minutes pass (15 min fresh + jitter).
    let mut p = data.products[1].clone();
    p.title = "New title".into();
    deps.store.put_products(&[p]).await.unwrap();
    clock.advance(Duration::from_secs(17 * 60));

    // Invocation 2: served stale at once; a refresh is queued, not run inline.
    let stale = body(app.handle(get()).await);
    assert_eq!(
        (stale["stale"].clone(), stale["product"]["title"].clone()),
        (serde_json::json!(true), serde_json::json!(data.products[1].title))
    );
    assert_eq!(tasks.pending(), 1, "the refresh waits for the post-response step");
    // The extension's step after the response (what keeps the environment from freezing).
    after_response(&tasks, &app, &metrics, "products", far_deadline()).await;
    assert_eq!(tasks.pending(), 0);

    // Invocation 3: fresh, without any request having loaded it.
    let fresh = body(app.handle(get()).await);
    assert_eq!((fresh["cached"].clone(), fresh["stale"].clone()), (serde_json::json!(true), serde_json::json!(false)));
    assert_eq!(fresh["product"]["title"], "New title");
}

#[tokio::test]
async fn admin_routes_on_lambda_trust_the_iam_authorizer_and_nothing_else() {
    let (deps, _bus, _clock, _data) = common::memory_deps("iam-admin").await;
    let ops = "arn:aws:sts::123456789012:assumed-role/livecache-ops/*".to_string();
    let app = App::new(&deps, Arc::new(DeferredTasks::new()), AdminAuth::Iam { principals: vec![ops] }, None);
    let fixture: serde_json::Value =
        serde_json::from_str(&fixtures().into_iter().find(|(n, _)| n == "cache-invalidate").unwrap().1).unwrap();
    let call = |event: &serde_json::Value| {
        let req = to_api_request(lambda_http::request::from_str(&event.to_string()).unwrap());
        let app = &app;
        async move {
            let resp = app.handle(req).await;
            let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
            (resp.status.as_u16(), body["error"].as_str().unwrap_or("").to_string())
        }
    };
    // GIVEN the IAM authorizer's identity in the request context: allowed.
    assert_eq!(call(&fixture).await, (200, String::new()));
    // WITHOUT it (a request that reached the function some other way): refused.
    let mut unsigned = fixture.clone();
    unsigned["requestContext"].as_object_mut().unwrap().remove("authorizer");
    assert_eq!(call(&unsigned).await, (403, "iam_required".into()));
    // A bearer token alone opens nothing on the Lambda path.
    let mut bearer = unsigned.clone();
    bearer["headers"]["authorization"] = "Bearer dev-admin-token".into();
    assert_eq!(call(&bearer).await, (403, "iam_required".into()));
    // A principal outside ADMIN_PRINCIPAL_ARNS: refused.
    let mut stranger = fixture.clone();
    stranger["requestContext"]["authorizer"]["iam"]["userArn"] =
        "arn:aws:sts::123456789012:assumed-role/someone-else/bob".into();
    assert_eq!(call(&stranger).await, (403, "principal_not_allowed".into()));
}

/// An invocation deadline no test step comes near (the functions' timeout is 10 s).
fn far_deadline() -> std::time::Instant {
    std::time::Instant::now() + std::time::Duration::from_secs(10)
}
