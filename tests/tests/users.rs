//! Users over HTTP: profiles cached and invalidated at once by an update (single, full,
//! batch), badges awarded once, the leaderboard and the latest badges, and their lifetimes on a
//! controlled clock. On Redis + DynamoDB (moto) and on the embedded defaults.

mod common;

use livecache_cache::{Clock, SpawnTasks};
use livecache_domain::jobs;
use livecache_domain::time;
use livecache_domain::users::BadgeCode;
use livecache_domain::Id;
use serde_json::{json, Value};
use std::sync::Arc;

async fn on_both(name: &str) -> Vec<common::Api> {
    let (deps, bus, clock, data) = common::real_deps(name).await;
    let real = common::serve(deps, bus, clock, data, Arc::new(SpawnTasks), Some("admin-token")).await;
    let (deps, bus, clock, data) = common::memory_deps(name).await;
    let memory = common::serve(deps, bus, clock, data, Arc::new(SpawnTasks), Some("admin-token")).await;
    vec![real, memory]
}

fn names(v: &Value, field: &str) -> Vec<String> {
    v[field].as_array().unwrap().iter().map(|e| e["user_id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_are_cached_and_an_update_makes_every_read_about_the_user_fresh_at_once() {
    for api in on_both("profiles").await {
        let user = api.data.users[7].clone();
        let other = api.data.users[8].id.clone();
        let path = format!("/users/{}", user.id);
        let (s, first) = api.get(&path).await;
        assert_eq!((s, first["cached"].clone()), (200, json!(false)), "{first}");
        assert_eq!(first["user"]["name"], json!(user.name));
        assert!(first["user"]["figures"]["products_listed"].is_u64());
        assert!(first["user"].get("preferences").is_none(), "preferences are the user's own");
        assert_eq!(api.get(&path).await.1["cached"], json!(true));

        let (s, e) = api.get("/users/me").await;
        assert_eq!((s, e["error"].as_str()), (401, Some("unauthorized")));
        let (_, me) = api.get_as(&user.id, "/users/me").await;
        assert_eq!(me["cached"], json!(false));
        assert_eq!(me["user"]["preferences"]["language"], json!(user.preferences.language));
        assert_eq!(api.get_as(&user.id, "/users/me").await.1["cached"], json!(true));
        let batch = json!({"user_ids": [user.id, other]});
        api.post("/batch/users", batch.clone()).await;
        let (_, cards) = api.post("/batch/users", batch.clone()).await;
        assert_eq!((cards["hits"].as_u64(), cards["users"][0]["name"].clone()), (Some(2), json!(user.name)));
        assert!(cards["users"][0].get("preferences").is_none());

        let change = json!({"name": "Ada Renamed", "bio": "", "preferences": {"language": "de", "notifications": {"email_digest": true}}});
        let (s, updated) = api.patch_as(&user.id, "/users/me", change).await;
        assert_eq!(s, 200, "{updated}");
        assert_eq!(updated["user"]["name"], json!("Ada Renamed"));
        assert!(updated["user"].get("bio").is_none(), "an empty bio clears it");
        assert_eq!(updated["user"]["preferences"]["language"], json!("de"));
        assert_eq!(updated["user"]["preferences"]["notifications"]["email_digest"], json!(true));
        assert_eq!(
            updated["user"]["preferences"]["notifications"]["live_alerts"],
            json!(user.preferences.notifications.live_alerts),
            "fields not given keep their value"
        );

        // Every read about the user is fresh at once: single, full, batch.
        let (_, single) = api.get(&path).await;
        assert_eq!((single["cached"].clone(), single["user"]["name"].clone()), (json!(false), json!("Ada Renamed")));
        let (_, me) = api.get_as(&user.id, "/users/me").await;
        assert_eq!((me["cached"].clone(), me["user"]["preferences"]["language"].clone()), (json!(false), json!("de")));
        let (_, cards) = api.post("/batch/users", batch.clone()).await;
        assert_eq!(cards["users"][0]["name"], json!("Ada Renamed"));
        assert_eq!(
            (cards["hits"].as_u64(), cards["misses"].as_u64()),
            (Some(1), Some(1)),
            "the other user stays cached"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_leader_is_renamed_on_the_leaderboard_at_once() {
    for api in on_both("leader-renamed").await {
        let (s, board) = api.get("/leaderboard?limit=10").await;
        assert_eq!(s, 200, "{board}");
        let leader = board["entries"][0]["user_id"].as_str().unwrap().to_string();
        assert_eq!(api.get("/leaderboard?limit=10").await.1["cached"], json!(true));
        let (s, _) = api
            .patch_as(&leader, "/users/me", json!({"name": "Renamed Leader", "avatar": "https://img.example/r.png"}))
            .await;
        assert_eq!(s, 200);
        let (_, board) = api.get("/leaderboard?limit=10").await;
        let entry = board["entries"].as_array().unwrap().iter().find(|e| e["user_id"] == json!(leader)).unwrap();
        assert_eq!(
            (entry["name"].clone(), entry["avatar"].clone()),
            (json!("Renamed Leader"), json!("https://img.example/r.png"))
        );
        // A change of what no board shows leaves the boards cached.
        assert_eq!(api.get("/leaderboard?limit=10").await.1["cached"], json!(true));
        api.patch_as(&leader, "/users/me", json!({"bio": "only the bio"})).await;
        assert_eq!(api.get("/leaderboard?limit=10").await.1["cached"], json!(true));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_updates_are_validated_and_unknown_fields_refused() {
    let (deps, bus, clock, data) = common::memory_deps("patch-checks").await;
    let api = common::serve(deps, bus, clock, data, Arc::new(SpawnTasks), None).await;
    let user = api.data.users[1].id.clone();
    let long = "x".repeat(61);
    for (body, code) in [
        (json!({}), "invalid_body"),
        (json!({"nickname": "x"}), "invalid_body"),
        (json!({"name": null}), "invalid_body"),
        (json!({"preferences": {"theme": "dark"}}), "invalid_body"),
        (json!({"preferences": {"interests": ["cars"]}}), "invalid_body"),
        (json!({"name": ""}), "invalid_profile"),
        (json!({"name": long}), "invalid_profile"),
        (json!({"name": "a\u{7}b"}), "invalid_profile"),
        (json!({"avatar": "http://img/x.jpg"}), "invalid_profile"),
        (json!({"preferences": {"language": "xx"}}), "invalid_profile"),
    ] {
        let (s, v) = api.patch_as(&user, "/users/me", body.clone()).await;
        assert_eq!((s, v["error"].as_str()), (400, Some(code)), "{body}");
    }
    let (s, v) = api.patch_as("user-unknown", "/users/me", json!({"name": "x"})).await;
    assert_eq!((s, v["error"].as_str()), (404, Some("user_not_found")));
    let (s, _) = api.get("/users/nope").await;
    assert_eq!(s, 404);
    let (s, v) = api.get("/users/bad%20id").await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_id")));
    // The longest id there is has a namespace of its own too.
    let longest = "u".repeat(128);
    assert_eq!(api.get(&format!("/users/{longest}")).await.0, 404);
    let (s, v) = api.post("/batch/users", json!({"user_ids": [longest, user]})).await;
    assert_eq!((s, v["missing"].clone()), (200, json!(["u".repeat(128)])), "{v}");
    let (s, v) = api.post("/batch/users", json!({"user_ids": [""]})).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_id")));
    let (s, v) =
        api.patch_as(&user, "/users/me", json!({"preferences": {"interests": ["books", "books", "toys"]}})).await;
    assert_eq!((s, v["user"]["preferences"]["interests"].clone()), (200, json!(["books", "toys"])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn badges_are_awarded_once_under_concurrent_triggers_and_refresh_the_boards() {
    for api in on_both("badges").await {
        let market =
            livecache_http::App::new(&api.deps, Arc::new(SpawnTasks), livecache_http::AdminAuth::Disabled, None)
                .market
                .clone();
        let store = api.deps.store.clone();
        // A seller whose stream ended: its figures earn badges it does not hold yet.
        let stream = api.data.streams.iter().rev().find(|s| s.started_at.is_some()).unwrap();
        let seller = stream.seller_id.clone();
        let figures = store.seller_figures(&seller).await.unwrap();
        let held = store.badges_of(&seller).await.unwrap();
        let due: Vec<BadgeCode> = BadgeCode::ALL
            .iter()
            .copied()
            .filter(|c| c.earned(&figures) && !held.iter().any(|b| b.code == *c))
            .collect();
        assert!(due.contains(&BadgeCode::FirstLive), "{figures:?} {held:?}");

        let (_, board) = api.get("/leaderboard?limit=50").await;
        assert!(!names(&board, "entries").contains(&seller));
        let (_, achievements) = api.get(&format!("/users/{seller}/achievements")).await;
        assert_eq!(api.get(&format!("/users/{seller}/achievements")).await.1["cached"], json!(true));
        api.get("/achievements/recent").await;

        // Eight triggers (the event delivered twice, and more): each badge once. At once on
        // the memory store; one after another on moto, whose TransactWriteItems are not
        // isolated from each other (DynamoDB's are: the badge's conditional put and the
        // points' ADD commit together or not at all).
        let seller_id = Id::parse(&seller).unwrap();
        let runs = if store.kind() == "memory" {
            futures::future::join_all((0..8).map(|_| market.award_badges(&seller_id))).await
        } else {
            let mut runs = Vec::new();
            for _ in 0..8 {
                runs.push(market.award_badges(&seller_id).await);
            }
            runs
        };
        let awarded: usize = runs.into_iter().map(|r| r.unwrap().len()).sum();
        assert_eq!(awarded, due.len());
        let event = json!({
            "version": "0", "id": "e1", "detail-type": "StreamStatusChanged", "source": "livecache.marketplace",
            "account": "123456789012", "time": "2026-11-21T06:00:00Z", "region": "us-east-1", "resources": [],
            "detail": {"stream_id": stream.id, "seller_id": seller, "from": "LIVE", "to": "ENDED", "at": time::format(&time::now())}
        });
        let again = jobs::apply_event(&market, &event).await.unwrap();
        assert!(again.awarded.is_empty(), "{again:?}");
        let badges = store.badges_of(&seller).await.unwrap();
        assert_eq!(badges.len(), held.len() + due.len());
        let points: u64 = badges.iter().map(|b| b.points).sum();

        // The user's badges, the leaderboard and the latest badges are fresh at once.
        let (_, now) = api.get(&format!("/users/{seller}/achievements")).await;
        assert_eq!(now["cached"], json!(false));
        assert_eq!(now["summary"]["count"].as_u64(), Some(badges.len() as u64));
        assert_eq!(now["summary"]["points"].as_u64(), Some(points), "{}: {badges:?}", store.kind());
        assert!(now["summary"]["count"].as_u64() > achievements["summary"]["count"].as_u64());
        let (_, board) = api.get("/leaderboard?limit=50").await;
        assert_eq!(board["cached"], json!(false));
        let row = board["entries"].as_array().unwrap().iter().find(|e| e["user_id"] == json!(seller)).unwrap();
        assert_eq!(row["points"].as_u64(), Some(points));
        let (_, recent) = api.get("/achievements/recent").await;
        assert_eq!((recent["cached"].clone(), recent["badges"][0]["user_id"].clone()), (json!(false), json!(seller)));
        let (_, profile) = api.get(&format!("/users/{seller}")).await;
        assert_eq!(profile["user"]["points"].as_u64(), Some(points));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leaderboard_ranks_by_points_and_pages_without_gaps() {
    for api in on_both("leaderboard").await {
        let (s, all) = api.get("/leaderboard?limit=12").await;
        assert_eq!((s, all["cached"].clone()), (200, json!(false)));
        assert_eq!(api.get("/leaderboard?limit=12").await.1["cached"], json!(true));
        let rows = all["entries"].as_array().unwrap();
        assert!(rows.len() >= 6, "the demo data has badged sellers: {all}");
        let order: Vec<(u64, String)> =
            rows.iter().map(|r| (r["points"].as_u64().unwrap(), r["user_id"].as_str().unwrap().to_string())).collect();
        let mut sorted = order.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(order, sorted, "most points first, ties by the higher id");
        assert!(rows.iter().enumerate().all(|(i, r)| r["rank"].as_u64() == Some(i as u64 + 1)));
        let (_, first) = api.get("/leaderboard?limit=3&offset=0").await;
        let (_, second) = api.get("/leaderboard?limit=3&offset=3").await;
        let paged: Vec<String> = names(&first, "entries").into_iter().chain(names(&second, "entries")).collect();
        assert_eq!(paged, names(&all, "entries")[..6].to_vec());
        assert_eq!(second["entries"][0]["rank"].as_u64(), Some(4));
        for bad in [
            "/leaderboard?limit=0",
            "/leaderboard?limit=101",
            "/leaderboard?offset=1001",
            "/achievements/recent?limit=51",
        ] {
            let (s, v) = api.get(bad).await;
            assert_eq!((s, v["error"].as_str()), (400, Some("invalid_parameter")), "{bad}");
        }
        let (_, recent) = api.get("/achievements/recent?limit=5").await;
        let at: Vec<&str> =
            recent["badges"].as_array().unwrap().iter().map(|b| b["awarded_at"].as_str().unwrap()).collect();
        assert_eq!(at.len(), 5);
        assert!(at.windows(2).all(|w| w[0] >= w[1]), "newest first: {at:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_data_lives_as_long_as_specified() {
    let (deps, bus, clock, data) = common::memory_deps("ttls").await;
    let api = common::serve(deps, bus, clock, data, Arc::new(SpawnTasks), None).await;
    let user = api.data.users[0].id.clone();
    // (path, fresh lifetime): checked at 99 % (fresh) and 111 % (past the 10 % jitter).
    let reads = [
        (format!("/users/{user}"), 3600),
        (format!("/users/{user}/achievements"), 30 * 60),
        ("/leaderboard".to_string(), 15 * 60),
        ("/achievements/recent".to_string(), 5 * 60),
    ];
    for (path, secs) in reads {
        let start = api.clock.now_ms();
        assert_eq!(api.get(&path).await.1["cached"], json!(false), "{path}");
        api.clock.set_ms(start + secs * 990);
        let (_, v) = api.get(&path).await;
        assert_eq!((v["cached"].clone(), v["stale"].clone()), (json!(true), json!(false)), "{path} at 99 %");
        api.clock.set_ms(start + secs * 1110);
        let (_, v) = api.get(&path).await;
        let expired = v["cached"] == json!(false) || v["stale"] == json!(true);
        assert!(expired, "{path} at 111 %: {v}");
        api.clock.set_ms(start + secs * 1110 + 1);
    }
    // The full profile: same lifetime as the public one.
    let start = api.clock.now_ms();
    api.get_as(&user, "/users/me").await;
    api.clock.set_ms(start + 3600 * 990);
    assert_eq!(api.get_as(&user, "/users/me").await.1["stale"], json!(false));
    api.clock.set_ms(start + 3600 * 1110);
    assert_eq!(api.get_as(&user, "/users/me").await.1["stale"], json!(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_invalidate_a_user_the_badges_or_the_leaderboard_and_warm_them() {
    for api in on_both("users-admin").await {
        let admin = Some("admin-token");
        let user = api.data.users[2].id.clone();
        let reads = [format!("/users/{user}"), format!("/users/{user}/achievements")];
        for path in &reads {
            api.get(path).await;
            assert_eq!(api.get(path).await.1["cached"], json!(true), "{path}");
        }
        let (s, v) = api.post_raw("/cache/invalidate", &json!({"user": user}).to_string(), admin).await;
        assert_eq!((s, v["invalidated"]["user"]["user"].clone()), (200, json!(user)), "{v}");
        for path in &reads {
            assert_eq!(api.get(path).await.1["cached"], json!(false), "{path} after the user's invalidation");
        }
        let (s, v) = api.post_raw("/cache/invalidate", r#"{"user": "bad id"}"#, admin).await;
        assert_eq!((s, v["error"].as_str()), (400, Some("invalid_id")));
        for (ns, path) in [("leaderboard", "/leaderboard"), ("achievements", "/achievements/recent")] {
            api.get(path).await;
            assert_eq!(api.get(path).await.1["cached"], json!(true));
            let (s, _) = api.post_raw("/cache/invalidate", &json!({"namespace": ns}).to_string(), admin).await;
            assert_eq!(s, 200);
            assert_eq!(api.get(path).await.1["cached"], json!(false), "{ns}");
        }
        let (s, v) = api.post_raw("/cache/invalidate", r#"{"namespace": "users"}"#, admin).await;
        assert_eq!((s, v["error"].as_str()), (400, Some("unknown_namespace")));

        // Warming: the leaderboard's first pages and the top sellers' profiles.
        api.post_raw("/cache/invalidate", r#"{"namespace": "leaderboard"}"#, admin).await;
        let (s, v) = api.post_raw("/cache/warm", r#"{"pages": 1, "sellers": 5}"#, admin).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["leaderboard"]["requested"].as_u64(), Some(1));
        assert_eq!(v["profiles"]["requested"].as_u64(), Some(5));
        assert_eq!(api.get("/leaderboard?limit=20&offset=0").await.1["cached"], json!(true), "warmed");
        // The most viewed live streams' sellers (the demo data has 5 live streams).
        let mut live: Vec<_> =
            api.data.streams.iter().filter(|s| s.status == livecache_domain::StreamStatus::Live).collect();
        live.sort_by_key(|s| std::cmp::Reverse(s.view_count));
        for stream in live.iter().take(5) {
            let (_, profile) = api.get(&format!("/users/{}", stream.seller_id)).await;
            assert_eq!(profile["cached"], json!(true), "{} warmed", stream.seller_id);
        }
        let (s, v) = api.post_raw("/cache/warm", r#"{"sellers": 101}"#, admin).await;
        assert_eq!((s, v["error"].as_str()), (400, Some("invalid_sellers")));
    }
}
