//! What a request costs in DynamoDB, counted on the client (moto's server, the DynamoDB
//! adapter): a feed page costs what the page holds, whatever the data; hostile inputs are
//! answered (200 or a clear 400) within the same bounds.
//!
//! `feed_costs_do_not_grow_with_the_data` prints the table BENCHMARKS.md quotes; its sizes
//! come from `SCALE_SIZES` (`products:live_sellers,…`, default `2000:20,20000:1000`).

mod common;

use std::sync::Arc;

use common::dynamo_calls::{counted_client, DynamoCalls, Tally};
use livecache_cache::DeferredTasks;
use livecache_domain::seed::{self, SeedSize};
use livecache_domain::services::{ServiceError, MAX_FEED_DEPTH};
use livecache_domain::store::CELL_READ_CAP;
use livecache_domain::tables::{self, TableNames};
use livecache_domain::{
    Category, CommunityQuery, DiscoverQuery, DynamoStore, FeedSort, PageRequest, Store, StoreError,
};
use livecache_testkit::{shared_moto, unique_prefix};

/// The DynamoDB adapter on moto, counted, with `size`'s data.
async fn seeded(name: &str, size: SeedSize) -> (Arc<dyn Store>, DynamoCalls, seed::DemoData) {
    let calls = DynamoCalls::default();
    let client = counted_client(&shared_moto().endpoint(), &calls).await;
    let names = TableNames::prefixed(&unique_prefix(name));
    tables::create_all(&client, &names).await.unwrap();
    let store: Arc<dyn Store> = Arc::new(DynamoStore::new(client, names));
    let data = seed::generate(size, livecache_domain::time::now());
    seed::seed(&*store, &data).await.unwrap();
    calls.take();
    (store, calls, data)
}

fn community(lat: f64, lon: f64, radius_km: f64, page: u32, per_page: u32) -> CommunityQuery {
    CommunityQuery {
        page: PageRequest { page, per_page },
        lat,
        lon,
        radius_km,
        category: None,
        min_price: None,
        max_price: None,
        condition: None,
    }
}

fn discover(page: u32, per_page: u32, category: Option<Category>, sort: FeedSort) -> DiscoverQuery {
    DiscoverQuery { page: PageRequest { page, per_page }, category, sort }
}

/// The code of a refusal, or "ok".
fn outcome<T>(r: &Result<T, ServiceError>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(ServiceError::Invalid { code, .. }) => code.to_string(),
        Err(e) => panic!("neither answered nor refused: {e}"),
    }
}

/// The bounds every community page stays within: at most 8 reads per covering cell (each read
/// asks for twice the one before, from 10 up to the cap), never more than the per-cell cap of
/// items.
fn assert_community_bounds(what: &str, t: &Tally) {
    let cells = livecache_domain::geo::MAX_CELLS as u64;
    assert!(t.total_calls() <= cells * 8, "{what}: {t:?}");
    assert!(t.items_read <= cells * CELL_READ_CAP as u64, "{what}: {t:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inputs_are_answered_within_the_bounds() {
    let (_, berlin_lat, berlin_lon) = seed::CITIES[0];
    // Through the DynamoDB adapter, counted.
    let (store, calls, _) = seeded("hostile", SeedSize::SMALL).await;
    // Poles: refused before any read (the covering cells are slivers), both of them.
    for (lat, lon) in [(89.9, 0.0), (-89.95, 120.0), (90.0, -180.0)] {
        let r = store.community(&community(lat, lon, 10.0, 1, 20)).await;
        assert!(matches!(r, Err(StoreError::TooBroad(_))), "({lat}, {lon}): {r:?}");
        assert_eq!(calls.take().total_calls(), 0, "({lat}, {lon}) read nothing");
    }
    // The antimeridian and the largest radius: answered within the bounds.
    for (lat, lon, r) in
        [(0.0, 179.999, 50.0), (0.0, -180.0, 50.0), (65.0, 179.99, 50.0), (berlin_lat, berlin_lon, 50.0)]
    {
        let got = store.community(&community(lat, lon, r, 1, 100)).await;
        assert!(got.is_ok(), "({lat}, {lon}) {r} km: {got:?}");
        assert_community_bounds(&format!("({lat}, {lon}) {r} km"), &calls.take());
    }
    // The deepest allowed page (page 50 of 100): a few queries at most.
    let deepest = (MAX_FEED_DEPTH / 100) as u32;
    for sort in [FeedSort::LiveFirst, FeedSort::Newest] {
        store.discover(&discover(deepest, 100, None, sort)).await.unwrap();
        let t = calls.take();
        assert!(t.total_calls() <= 5 && t.items_read <= MAX_FEED_DEPTH as u64 + 1, "{t:?}");
    }

    // Through the service (what snaps and refuses before any read), on the memory adapter.
    let (deps, _bus, _clock, _data) = common::memory_deps("hostile-service").await;
    let m = deps.market(Arc::new(DeferredTasks::new()));
    assert_eq!(outcome(&m.community(community(89.9, 0.0, 10.0, 1, 20)).await), "query_too_broad");
    // Near-identical radii and prices: one key, one load; the rest are hits.
    for i in 0..20 {
        let mut q = community(berlin_lat, berlin_lon, 5.0 + i as f64 * 0.001, 1, 20);
        q.max_price = Some(100.0 + i as f64 * 0.37);
        q.min_price = Some(9.5 + i as f64 * 0.01);
        let got = m.community(q).await.unwrap();
        assert_eq!(got.cached, i > 0, "radius {} max_price {}", 5.0 + i as f64 * 0.001, 100.0 + i as f64 * 0.37);
    }
    // A price range no bucket fits, and one page past the deepest: refused.
    let mut q = community(berlin_lat, berlin_lon, 5.0, 1, 20);
    (q.min_price, q.max_price) = (Some(51.0), Some(99.0));
    assert_eq!(outcome(&m.community(q).await), "invalid_price_range");
    for sort in [FeedSort::LiveFirst, FeedSort::Newest] {
        assert_eq!(outcome(&m.discover(discover(deepest, 100, None, sort)).await), "ok");
        assert_eq!(outcome(&m.discover(discover(deepest + 1, 100, None, sort)).await), "page_too_deep");
    }
    assert_eq!(outcome(&m.community(community(berlin_lat, berlin_lon, 5.0, deepest + 1, 100)).await), "page_too_deep");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_after_a_cached_one_reads_one_page() {
    let (store, calls, data) = seeded("cursor", SeedSize::SMALL).await;
    let (deps, _bus, _clock, _data) = common::deps_over("cursor", store.clone(), data);
    let m = deps.market(Arc::new(DeferredTasks::new()));
    let mut seen = Vec::new();
    for page in 1..=4 {
        let got = m.discover(discover(page, 20, None, FeedSort::Newest)).await.unwrap();
        assert!(!got.cached);
        let t = calls.take();
        assert_eq!(t.total_calls(), 1, "page {page}: {t:?}");
        assert!(t.items_read <= 21, "page {page} reads one page, not the pages above it: {t:?}");
        let items: Vec<serde_json::Value> = serde_json::from_slice(got.value.items_json()).unwrap();
        seen.extend(items.into_iter().map(|i| i["id"].as_str().unwrap().to_string()));
    }
    let mut offset_pages = Vec::new();
    for page in 1..=4 {
        let p = store.discover(&discover(page, 20, None, FeedSort::Newest)).await.unwrap();
        offset_pages.extend(p.items.into_iter().map(|i| i.id));
    }
    assert_eq!(seen, offset_pages, "the same pages as by offset while nothing changed");
}

/// What one cold request of each kind costs: the store's load behind a cache miss.
async fn costs(store: &dyn Store, calls: &DynamoCalls, data: &seed::DemoData) -> Vec<(&'static str, Tally)> {
    let (_, lat, lon) = seed::CITIES[0];
    let mut out = Vec::new();
    store.discover(&discover(1, 20, None, FeedSort::LiveFirst)).await.unwrap();
    out.push(("discover page 1 (live first)", calls.take()));
    let q = discover(2, 20, Some(Category::Fashion), FeedSort::Newest);
    let page2 = store.discover(&q).await.unwrap();
    calls.take();
    let after = page2.items.last().unwrap();
    store.discover_after(&discover(3, 20, Some(Category::Fashion), FeedSort::Newest), after).await.unwrap();
    out.push(("discover page 3 after page 2 (fashion, newest)", calls.take()));
    store.discover(&discover(3, 20, Some(Category::Fashion), FeedSort::Newest)).await.unwrap();
    out.push(("discover page 3 with page 2 not cached", calls.take()));
    store.community(&community(lat, lon, 5.0, 1, 20)).await.unwrap();
    out.push(("community Berlin 5 km (dense)", calls.take()));
    let mut q = community(lat, lon, 10.0, 1, 20);
    (q.category, q.max_price) = (Some(Category::Electronics), Some(200.0));
    store.community(&q).await.unwrap();
    out.push(("community Berlin 10 km, electronics ≤ 200", calls.take()));
    store.community(&community(lat + 0.45, lon + 0.6, 5.0, 1, 20)).await.unwrap();
    out.push(("community 50 km outside Berlin (sparse)", calls.take()));
    store.get_product(&data.products[7].id).await.unwrap();
    out.push(("product", calls.take()));
    let ids: Vec<String> = data.products.iter().step_by(7).take(100).map(|p| p.id.clone()).collect();
    store.get_products(&ids).await.unwrap();
    out.push(("batch of 100 products", calls.take()));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_costs_do_not_grow_with_the_data() {
    let sizes: Vec<(usize, usize)> = std::env::var("SCALE_SIZES")
        .unwrap_or_else(|_| "2000:20,20000:1000".into())
        .split(',')
        .map(|s| {
            let (p, l) = s.split_once(':').unwrap();
            (p.trim().parse().unwrap(), l.trim().parse().unwrap())
        })
        .collect();
    let mut runs = Vec::new();
    for (products, live) in &sizes {
        let size = SeedSize {
            products: *products,
            users: (*live * 2).max(100),
            streams: *live + 10,
            live_streams: *live,
            offers: 0,
            due_offers: 0,
        };
        let (store, calls, data) = seeded(&format!("scale-{products}"), size).await;
        runs.push(costs(&*store, &calls, &data).await);
    }
    println!(
        "| request | {} |",
        sizes
            .iter()
            .map(|(p, l)| format!("{p} products / {l} live: calls, items, RCU"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    for (i, (what, _)) in runs[0].iter().enumerate() {
        let cells: Vec<String> = runs
            .iter()
            .map(|r| {
                let t = &r[i].1;
                format!("{} / {} / {:.1}", t.total_calls(), t.items_read, t.read_units)
            })
            .collect();
        println!("| {what} | {} |", cells.join(" | "));
    }
    for run in &runs {
        let (what, page1) = &run[0];
        assert!(page1.total_calls() <= 5 && page1.items_read <= 3 * 20, "{what}: {page1:?}");
        // A page after a cached one starts below its last item: one page read.
        let (what, next) = &run[1];
        assert!(next.total_calls() <= 5 && next.items_read <= 3 * 20, "{what}: {next:?}");
        // Without the page before cached, it reads the items above it too (one query,
        // `Limit` = its end + 1).
        let (what, page3) = &run[2];
        assert!(page3.total_calls() <= 5 && page3.items_read <= 3 * 20 + 1, "{what}: {page3:?}");
        for (what, t) in run.iter().filter(|(w, _)| w.starts_with("community")) {
            assert_community_bounds(what, t);
        }
        // A dense area's page: its own cell holds the page.
        let (what, dense) = &run[3];
        assert!(dense.total_calls() <= 5 && dense.items_read <= 3 * 20, "{what}: {dense:?}");
        // An empty area: its own cell, then one read of the other cells' markers.
        let (what, empty) = &run[5];
        assert!(empty.total_calls() <= 2 && empty.items_read == 0, "{what}: {empty:?}");
    }
    // Ten times the data, fifty times the live sellers: the same cost for every request read
    // by key or from a ranked index, and for a dense area's community page. (A filtered
    // community page reads about a page over the filters' share, and the small data set's
    // cells hold fewer than that in all: see BENCHMARKS.md.)
    let (small, large) = (&runs[0], &runs[runs.len() - 1]);
    let filtered = |w: &str| w.starts_with("community") && !w.contains("dense");
    for ((what, a), (_, b)) in small.iter().zip(large.iter()).filter(|((w, _), _)| !filtered(w)) {
        assert!(b.total_calls() as f64 <= 1.2 * a.total_calls() as f64, "{what}: {a:?} → {b:?}");
        assert!(b.items_read as f64 <= 1.2 * a.items_read as f64, "{what}: {a:?} → {b:?}");
    }
}

/// What the users' reads cost behind a cache miss, and an award: bounded by the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_costs_are_bounded_by_the_answer() {
    use livecache_domain::users::{Badge, BadgeCode};
    let (store, calls, data) = seeded("user-costs", SeedSize::SMALL).await;
    let seller = &data.users[3].id;
    let mut rows: Vec<(&str, Tally)> = Vec::new();
    store.get_user(seller).await.unwrap();
    store.seller_figures(seller).await.unwrap();
    rows.push(("public profile (user + figures)", calls.take()));
    store.badges_of(seller).await.unwrap();
    rows.push(("a user's badges", calls.take()));
    store.leaderboard(0, 20).await.unwrap();
    rows.push(("leaderboard page 1 (20)", calls.take()));
    store.leaderboard(20, 20).await.unwrap();
    rows.push(("leaderboard page 2 (20)", calls.take()));
    store.recent_badges(20).await.unwrap();
    rows.push(("recent badges (20)", calls.take()));
    let user = store.get_user(seller).await.unwrap().unwrap();
    calls.take();
    store.save_profile(&user).await.unwrap();
    rows.push(("profile save", calls.take()));
    store
        .award_badge(&Badge::new(&data.users[40].id, BadgeCode::Catalog10, livecache_domain::time::now()))
        .await
        .unwrap();
    rows.push(("award (new badge)", calls.take()));
    store
        .award_badge(&Badge::new(&data.users[40].id, BadgeCode::Catalog10, livecache_domain::time::now()))
        .await
        .unwrap();
    rows.push(("award (held already)", calls.take()));
    for (what, t) in &rows {
        println!("| {what} | {} | {} | {:.1} |", t.total_calls(), t.items_read, t.read_units);
    }
    let get = |name: &str| rows.iter().find(|(w, _)| *w == name).unwrap().1.clone();
    assert!(get("public profile (user + figures)").total_calls() <= 3);
    assert_eq!(get("a user's badges").total_calls(), 1);
    for page in ["leaderboard page 1 (20)", "recent badges (20)"] {
        let t = get(page);
        assert!(t.total_calls() == 1 && t.items_read <= 20, "{page}: {t:?}");
    }
    let t = get("leaderboard page 2 (20)");
    assert!(t.total_calls() == 1 && t.items_read <= 40, "{t:?}");
    assert_eq!(get("profile save").total_calls(), 1);
    assert!(get("award (new badge)").total_calls() <= 3);
    assert_eq!(get("award (held already)").total_calls(), 1);
}
