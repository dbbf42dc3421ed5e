//! Signed-in callers from any OIDC issuer: the JWT authorizer passes the token's `sub` as it
//! is — `auth0|…`, `google-oauth2|…`, a Cognito UUID, a plain id — and each reaches the
//! signed-in routes as its own user, whose data stays apart from everyone else's.

mod common;

use std::sync::Arc;

use livecache_domain::Id;
use serde_json::json;

const SUBJECTS: [&str; 4] = [
    "auth0|5f7c8ec7c33c6c004bbafe82",
    "google-oauth2|104386672014521354987",
    "3f9c1a2e-7b4d-4c8e-9a61-2d5e8f0b7c13",
    "member-0077",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subjects_of_every_issuer_reach_the_signed_in_routes_as_separate_users() {
    let (deps, bus, clock, data) = common::memory_deps("subjects").await;
    // Each subject's user record, as sign-up would have made it.
    let users: Vec<_> = SUBJECTS
        .iter()
        .enumerate()
        .map(|(i, sub)| {
            let mut u = data.users[10 + i].clone();
            u.id = Id::from_subject(sub).unwrap().as_str().to_string();
            u
        })
        .collect();
    deps.store.put_users(&users).await.unwrap();
    let api = common::serve(deps, bus, clock, data.clone(), Arc::new(livecache_cache::SpawnTasks), None).await;
    let product = data
        .products
        .iter()
        .find(|p| SUBJECTS.iter().all(|s| Id::from_subject(s).unwrap().as_str() != p.seller_id))
        .unwrap();

    let mut offers = Vec::new();
    for (i, sub) in SUBJECTS.iter().enumerate() {
        let name = format!("Subject {i}");
        let (s, body) = api.patch_as(sub, "/users/me", json!({ "name": name })).await;
        assert_eq!(s, 200, "{sub}: {body}");
        let (s, body) = api.get_as(sub, "/users/me").await;
        assert_eq!((s, body["user"]["name"].clone()), (200, json!(name)), "{sub}: {body}");
        let (s, body) = api
            .post_as(
                sub,
                "/offers",
                json!({ "product_id": product.id, "amount": 10.0 + i as f64, "expires_in_minutes": 30 }),
            )
            .await;
        assert_eq!(s, 201, "{sub}: {body}");
        offers.push(body["offer"]["id"].as_str().unwrap().to_string());
    }
    for (i, sub) in SUBJECTS.iter().enumerate() {
        let (s, body) = api.get_as(sub, "/offers/expiring-soon?within_minutes=60").await;
        assert_eq!(s, 200, "{sub}: {body}");
        let listed: Vec<&str> = body["offers"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap()).collect();
        assert_eq!(listed, vec![offers[i].as_str()], "{sub} sees its own offer only");
        let (s, _) = api.get_as(sub, &format!("/offers/{}", offers[i])).await;
        assert_eq!(s, 200, "{sub}");
        let other = &offers[(i + 1) % offers.len()];
        let (s, _) = api.get_as(sub, &format!("/offers/{other}")).await;
        assert_eq!(s, 404, "{sub} cannot see another's offer");
    }
    let (s, body) = api.get_as(&"|".repeat(100), "/users/me").await;
    assert_eq!((s, body["error"].clone()), (401, json!("unauthorized")), "{body}");
}
