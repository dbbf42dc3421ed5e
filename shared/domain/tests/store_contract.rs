//! THE Store contract: run against the memory store and against DynamoDB in moto's server
//! (started by the tests; tables created per test with unique names and dropped after).
//!
//! Emulator differences met here: moto ignores ClientRequestToken idempotency (so
//! exactly-once rests on the chunk marker, never on the token), does not delete items whose
//! TTL passed, and does not enforce BatchWriteItem's 25-item limit (the adapter chunks anyway).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use livecache_domain::seed::{self, DemoData, SeedSize};
use livecache_domain::store::{rank_community, rank_discover};
use livecache_domain::tables::{self, TableNames};
use livecache_domain::users::{Badge, BadgeCode};
use livecache_domain::{
    time, Category, CommunityQuery, Condition, DiscoverQuery, DynamoStore, ExpireOutcome, FeedSort, JobOutcome, JobRun,
    MemoryStore, Offer, OfferStatus, PageRequest, Store, StoreError, StreamStatus, ViewChunk,
};
use livecache_testkit::{shared_moto, unique_prefix};

struct Fixture {
    store: Arc<dyn Store>,
    data: DemoData,
    cleanup: Option<(aws_sdk_dynamodb::Client, TableNames)>,
}

impl Fixture {
    async fn memory() -> Self {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        Self::seeded(store, None).await
    }

    async fn dynamo(name: &str) -> Self {
        let conf = livecache_domain::config::emulator_config(&shared_moto().endpoint()).await;
        let client = aws_sdk_dynamodb::Client::new(&conf);
        let names = TableNames::prefixed(&unique_prefix(name).replace(['{', '}'], ""));
        tables::create_all(&client, &names).await.unwrap();
        let store: Arc<dyn Store> = Arc::new(DynamoStore::new(client.clone(), names.clone()));
        Self::seeded(store, Some((client, names))).await
    }

    async fn seeded(store: Arc<dyn Store>, cleanup: Option<(aws_sdk_dynamodb::Client, TableNames)>) -> Self {
        let data = seed::generate(SeedSize::SMALL, time::now());
        seed::seed(&*store, &data).await.unwrap();
        Self { store, data, cleanup }
    }

    async fn done(self) {
        if let Some((client, names)) = self.cleanup {
            tables::drop_all(&client, &names).await.unwrap();
        }
    }

    fn live_sellers(&self) -> HashSet<String> {
        self.data.streams.iter().filter(|s| s.status == StreamStatus::Live).map(|s| s.seller_id.clone()).collect()
    }
}

fn ids<T>(items: &[Option<T>], id: impl Fn(&T) -> &str) -> Vec<Option<String>> {
    items.iter().map(|o| o.as_ref().map(|v| id(v).to_string())).collect()
}

async fn batch_reads_keep_order_and_report_missing(f: Fixture) {
    let p = f.store.get_product("prod-00007").await.unwrap().unwrap();
    assert_eq!(p, f.data.products[7]);
    assert!(f.store.get_product("prod-99999").await.unwrap().is_none());
    // 250 ids (three BatchGetItem chunks) with unknown and repeated ids.
    let mut wanted: Vec<String> = (0..240).rev().map(seed::product_id).collect();
    wanted.insert(3, "nope-1".into());
    wanted.push("prod-00005".into());
    wanted.extend((0..9).map(|i| format!("ghost-{i}")));
    let got = f.store.get_products(&wanted).await.unwrap();
    assert_eq!(got.len(), wanted.len());
    let expected: Vec<Option<String>> = wanted.iter().map(|id| (id.starts_with("prod-")).then(|| id.clone())).collect();
    assert_eq!(ids(&got, |p| &p.id), expected);
    let users = f.store.get_users(&["user-0003".into(), "user-9999".into(), "user-0001".into()]).await.unwrap();
    assert_eq!(ids(&users, |u| &u.id), vec![Some("user-0003".into()), None, Some("user-0001".into())]);
    // (The first sellers hold badges, so their points moved on from the data set's.)
    assert_eq!(f.store.get_user("user-0030").await.unwrap().unwrap(), f.data.users[30]);
    f.done().await;
}

async fn discover_pages_rank_like_the_reference(f: Fixture) {
    let live = f.live_sellers();
    for sort in [FeedSort::Newest, FeedSort::LiveFirst] {
        for category in [None, Some(Category::Fashion), Some(Category::Toys)] {
            for page in 1..=3 {
                let q = DiscoverQuery { page: PageRequest { page, per_page: 20 }, category, sort };
                let want = rank_discover(f.data.products.clone(), &live, &q);
                let got = f.store.discover(&q).await.unwrap();
                assert_eq!(got, want, "{sort:?} {category:?} page {page}");
                // The same page read after the previous page's last item (the cursor).
                if page > 1 {
                    let before = DiscoverQuery { page: PageRequest { page: page - 1, per_page: 20 }, category, sort };
                    let after = rank_discover(f.data.products.clone(), &live, &before).items.pop().unwrap();
                    assert_eq!(f.store.discover_after(&q, &after).await.unwrap(), want, "{sort:?} {category:?} after");
                }
            }
        }
    }
    let first = f
        .store
        .discover(&DiscoverQuery {
            page: PageRequest { page: 1, per_page: 50 },
            category: None,
            sort: FeedSort::LiveFirst,
        })
        .await
        .unwrap();
    assert!(first.has_more);
    assert!(first.items[0].seller_live, "live sellers first");
    let n_live = first.items.iter().take_while(|i| i.seller_live).count();
    assert!(first.items[n_live..].iter().all(|i| !i.seller_live));
    assert!(first.items[n_live..].windows(2).all(|w| w[0].created_at >= w[1].created_at), "then newest");
    let beyond = f
        .store
        .discover(&DiscoverQuery {
            page: PageRequest { page: 100, per_page: 20 },
            category: None,
            sort: FeedSort::Newest,
        })
        .await
        .unwrap();
    assert!(beyond.items.is_empty() && !beyond.has_more);
    f.done().await;
}

async fn community_finds_everything_within_the_radius(f: Fixture) {
    let live = f.live_sellers();
    let (_, lat, lon) = seed::CITIES[0];
    let queries = [
        CommunityQuery {
            page: PageRequest { page: 1, per_page: 100 },
            lat,
            lon,
            radius_km: 5.0,
            category: None,
            min_price: None,
            max_price: None,
            condition: None,
        },
        CommunityQuery {
            page: PageRequest { page: 1, per_page: 20 },
            lat,
            lon,
            radius_km: 9.0,
            category: Some(Category::Fashion),
            min_price: Some(20.0),
            max_price: Some(400.0),
            condition: None,
        },
        CommunityQuery {
            page: PageRequest { page: 2, per_page: 5 },
            lat: lat + 0.05,
            lon: lon - 0.05,
            radius_km: 25.0,
            category: None,
            min_price: None,
            max_price: None,
            condition: Some(Condition::Good),
        },
        CommunityQuery {
            page: PageRequest { page: 1, per_page: 10 },
            lat: 0.0,
            lon: 0.0,
            radius_km: 50.0,
            category: None,
            min_price: None,
            max_price: None,
            condition: None,
        },
    ];
    for q in &queries {
        let want = rank_community(f.data.products.clone(), &live, q);
        let got = f.store.community(q).await.unwrap();
        assert_eq!(got, want, "{q:?}");
        assert!(got.items.iter().all(|i| i.distance_km.unwrap() <= q.radius_km));
    }
    let near = f.store.community(&queries[0]).await.unwrap();
    assert!(!near.items.is_empty(), "Berlin has products within 5 km");
    // By area (the point's own cell first, then the nearer ones), newest first within one.
    let (precision, cells) = livecache_domain::geo::plan_cells(queries[0].lat, queries[0].lon, 5.0).unwrap();
    let area = |id: &str| {
        let p = f.data.products.iter().find(|p| p.id == id).unwrap();
        cells.iter().position(|c| *c == livecache_domain::geo::geohash(p.lat, p.lon, precision)).unwrap()
    };
    assert!(
        near.items.windows(2).all(|w| (area(&w[0].id), std::cmp::Reverse(w[0].created_at))
            <= (area(&w[1].id), std::cmp::Reverse(w[1].created_at))),
        "by area, then newest"
    );
    assert!(f.store.community(&queries[3]).await.unwrap().items.is_empty(), "nothing in the Gulf of Guinea");
    // A product put there later, in a cell other than the point's own, is found at once.
    let mut found_later = f.data.products[0].clone();
    (found_later.id, found_later.lat, found_later.lon) = ("prod-guinea".into(), 0.25, 0.3);
    let (precision, cells) = livecache_domain::geo::plan_cells(0.0, 0.0, 50.0).unwrap();
    let cell = livecache_domain::geo::geohash(found_later.lat, found_later.lon, precision);
    assert!(cells.iter().position(|c| *c == cell).is_some_and(|i| i > 0), "{cell} in {cells:?}");
    f.store.put_products(std::slice::from_ref(&found_later)).await.unwrap();
    let got = f.store.community(&queries[3]).await.unwrap();
    assert_eq!(got.items.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["prod-guinea"]);
    f.done().await;
}

async fn stream_transitions_are_conditional(f: Fixture) {
    let live_before = f.store.live_streams().await.unwrap();
    assert_eq!(live_before.len(), 5);
    assert!(live_before.windows(2).all(|w| w[0].started_at >= w[1].started_at));
    let scheduled = f.data.streams.iter().find(|s| s.status == StreamStatus::Scheduled).unwrap();
    let at = time::now();
    let s = f.store.transition_stream(&scheduled.id, StreamStatus::Live, at).await.unwrap();
    assert_eq!((s.status, s.started_at), (StreamStatus::Live, Some(at)));
    assert_eq!(f.store.live_streams().await.unwrap().len(), 6);
    let err = f.store.transition_stream(&scheduled.id, StreamStatus::Live, at).await.unwrap_err();
    assert!(
        matches!(err, StoreError::InvalidTransition { from: StreamStatus::Live, to: StreamStatus::Live, .. }),
        "{err:?}"
    );
    let ended = f.store.transition_stream(&scheduled.id, StreamStatus::Ended, at).await.unwrap();
    assert_eq!((ended.status, ended.ended_at), (StreamStatus::Ended, Some(at)));
    let err = f.store.transition_stream(&scheduled.id, StreamStatus::Live, at).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidTransition { from: StreamStatus::Ended, .. }), "{err:?}");
    let err = f.store.transition_stream(&scheduled.id, StreamStatus::Scheduled, at).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidTransition { .. }), "{err:?}");
    let err = f.store.transition_stream("stream-999", StreamStatus::Live, at).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    assert_eq!(f.store.get_stream(&scheduled.id).await.unwrap().unwrap().status, StreamStatus::Ended);
    f.done().await;
}

async fn offers_expire_only_while_pending(f: Fixture) {
    let mut offer = f.data.offers[20].clone();
    offer.id = "offer-new".into();
    f.store.create_offer(&offer).await.unwrap();
    assert!(matches!(f.store.create_offer(&offer).await.unwrap_err(), StoreError::AlreadyExists { .. }));
    assert_eq!(f.store.get_offer("offer-new").await.unwrap().unwrap(), offer);
    let later = time::from_millis(offer.expires_at.timestamp_millis() + 600_000);
    let now = time::now();
    assert_eq!(f.store.extend_offer("offer-new", later, now).await.unwrap().expires_at, later);
    let after = time::from_millis(later.timestamp_millis() + 1);
    match f.store.expire_offer("offer-new", after).await.unwrap() {
        ExpireOutcome::Expired(o) => assert_eq!((o.status, o.expires_at), (OfferStatus::Expired, later)),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        f.store.expire_offer("offer-new", after).await.unwrap(),
        ExpireOutcome::NotPending(OfferStatus::Expired)
    );
    assert_eq!(f.store.expire_offer("offer-missing", after).await.unwrap(), ExpireOutcome::Missing);
    assert!(matches!(f.store.extend_offer("offer-new", later, now).await.unwrap_err(), StoreError::Conflict(_)));
    assert!(matches!(
        f.store.extend_offer("offer-missing", later, now).await.unwrap_err(),
        StoreError::NotFound { .. }
    ));
    f.done().await;
}

async fn due_offers_come_from_the_store_and_expiry_never_overrides_an_extension(f: Fixture) {
    let now = time::now();
    let seeded: Vec<String> = {
        let mut due: Vec<&Offer> = f.data.offers.iter().filter(|o| o.expires_at <= now).collect();
        due.sort_by(|a, b| a.expires_at.cmp(&b.expires_at).then_with(|| a.id.cmp(&b.id)));
        due.into_iter().map(|o| o.id.clone()).collect()
    };
    assert!(!seeded.is_empty());
    let due: Vec<String> = f.store.offers_due_by(now, 1000).await.unwrap().into_iter().map(|o| o.id).collect();
    assert_eq!(due, seeded, "every seeded due offer, earliest first, and nothing else");
    assert_eq!(f.store.offers_due_by(now, 3).await.unwrap().len(), 3, "limit");
    // Expired but not announced: still due (the next run announces it); announced: gone.
    let first = seeded[0].clone();
    assert!(matches!(f.store.expire_offer(&first, now).await.unwrap(), ExpireOutcome::Expired(_)));
    let again = f.store.offers_due_by(now, 1000).await.unwrap();
    assert_eq!(again.iter().find(|o| o.id == first).map(|o| o.status), Some(OfferStatus::Expired));
    f.store.offer_announced(&first).await.unwrap();
    assert!(f.store.offers_due_by(now, 1000).await.unwrap().iter().all(|o| o.id != first));
    // An offer the job read as due at `t` (its clock a little ahead) that the buyer extended
    // at `t - 2 s` (before it was due): the extension stands, the expiry is refused.
    let mut raced = f.data.offers[30].clone();
    raced.id = "offer-raced".into();
    raced.expires_at = time::from_millis(now.timestamp_millis() - 1_000);
    f.store.put_offers(std::slice::from_ref(&raced)).await.unwrap();
    assert!(f.store.offers_due_by(now, 1000).await.unwrap().iter().any(|o| o.id == "offer-raced"));
    let extended_to = time::from_millis(now.timestamp_millis() + 3_600_000);
    let before_due = time::from_millis(now.timestamp_millis() - 2_000);
    f.store.extend_offer("offer-raced", extended_to, before_due).await.unwrap();
    match f.store.expire_offer("offer-raced", now).await.unwrap() {
        ExpireOutcome::NotDue(o) => assert_eq!((o.status, o.expires_at), (OfferStatus::Pending, extended_to)),
        other => panic!("the extension must win: {other:?}"),
    }
    assert!(f.store.offers_due_by(now, 1000).await.unwrap().iter().all(|o| o.id != "offer-raced"));
    // Once due, an extension is refused (409), and the offer expires.
    let late = time::from_millis(extended_to.timestamp_millis() + 1);
    let err = f.store.extend_offer("offer-raced", late, late).await.unwrap_err();
    assert!(matches!(&err, StoreError::Conflict(m) if m.contains("due")), "{err:?}");
    assert!(matches!(f.store.expire_offer("offer-raced", late).await.unwrap(), ExpireOutcome::Expired(_)));
    // Settled offers written as such are not due.
    let mut settled = f.data.offers[31].clone();
    (settled.id, settled.status, settled.expires_at) =
        ("offer-settled".into(), OfferStatus::Accepted, raced.expires_at);
    f.store.put_offers(&[settled]).await.unwrap();
    assert!(f.store.offers_due_by(now, 1000).await.unwrap().iter().all(|o| o.id != "offer-settled"));
    f.done().await;
}

async fn a_view_chunk_applies_exactly_once(f: Fixture) {
    let before_p = f.store.get_product("prod-00001").await.unwrap().unwrap().view_count;
    let before_s = f.store.get_stream("stream-001").await.unwrap().unwrap().view_count;
    let products =
        BTreeMap::from([("prod-00001".to_string(), 5), ("prod-00002".to_string(), 1), ("prod-gone".to_string(), 9)]);
    let streams = BTreeMap::from([("stream-001".to_string(), 3)]);
    let chunks = livecache_domain::view_chunks("batch-1", &products, &streams);
    assert_eq!(chunks.len(), 1);
    let first = f.store.apply_view_chunk(&chunks[0]).await.unwrap();
    assert!(first.applied);
    assert_eq!((first.products, first.streams, first.views, first.skipped_missing), (2, 1, 9, 1));
    // A crash after the write and before the Redis delete: the same chunk comes again.
    let again = f.store.apply_view_chunk(&chunks[0]).await.unwrap();
    assert!(!again.applied, "recognised as applied");
    assert_eq!(f.store.get_product("prod-00001").await.unwrap().unwrap().view_count, before_p + 5);
    assert_eq!(f.store.get_stream("stream-001").await.unwrap().unwrap().view_count, before_s + 3);
    assert!(f.store.get_product("prod-gone").await.unwrap().is_none(), "no item created for a deleted product");
    // A different chunk id applies.
    let next = ViewChunk { id: "batch-2#0".into(), products: vec![("prod-00001".into(), 1)], streams: vec![] };
    assert!(f.store.apply_view_chunk(&next).await.unwrap().applied);
    assert_eq!(f.store.get_product("prod-00001").await.unwrap().unwrap().view_count, before_p + 6);
    f.done().await;
}

async fn a_full_chunk_fits_one_transaction(f: Fixture) {
    let products: BTreeMap<String, i64> = (0..150).map(|i| (seed::product_id(i), 2)).collect();
    let chunks = livecache_domain::view_chunks("big", &products, &BTreeMap::new());
    assert_eq!(chunks.len(), 2);
    for c in &chunks {
        assert!(f.store.apply_view_chunk(c).await.unwrap().applied);
    }
    let got = f.store.get_products(&(0..150).map(seed::product_id).collect::<Vec<_>>()).await.unwrap();
    for (i, p) in got.iter().enumerate() {
        assert_eq!(p.as_ref().unwrap().view_count, f.data.products[i].view_count + 2);
    }
    f.done().await;
}

async fn job_runs_keep_the_last_run_of_each_job(f: Fixture) {
    let run = |job: &str, outcome: JobOutcome, n: u64| JobRun {
        job: job.into(),
        started_at: time::now(),
        finished_at: time::now(),
        duration_ms: n,
        outcome,
        figures: serde_json::json!({ "processed": n }),
        error: None,
    };
    f.store.record_job_run(&run("view-sync", JobOutcome::Ok, 1)).await.unwrap();
    f.store.record_job_run(&run("view-sync", JobOutcome::Ok, 2)).await.unwrap();
    f.store.record_job_run(&run("offer-expiry", JobOutcome::Error, 3)).await.unwrap();
    let runs = f.store.job_runs(&["cache-cleanup", "offer-expiry", "view-sync"]).await.unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!((runs[0].job.as_str(), runs[0].outcome.as_str()), ("offer-expiry", "error"));
    assert_eq!((runs[1].job.as_str(), runs[1].duration_ms), ("view-sync", 2));
    assert_eq!(runs[1].figures["processed"], 2);
    f.done().await;
}

async fn profiles_badges_and_the_leaderboard(f: Fixture) {
    // The seeded badges are held, with their points.
    for user in f.data.users.iter().take(12) {
        let mine: Vec<&Badge> = f.data.badges.iter().filter(|b| b.user_id == user.id).collect();
        let stored = f.store.get_user(&user.id).await.unwrap().unwrap();
        assert_eq!(stored.points, mine.iter().map(|b| b.points).sum::<u64>(), "{}", user.id);
        assert_eq!(stored.badges as usize, mine.len());
        let held = f.store.badges_of(&user.id).await.unwrap();
        let expected: Vec<Badge> = {
            let mut v: Vec<Badge> = mine.into_iter().cloned().collect();
            v.sort_by_key(|b| std::cmp::Reverse(b.recency()));
            v
        };
        assert_eq!(held, expected, "newest first");
    }
    // A profile save writes the profile, never the points.
    let mut u = f.store.get_user("user-0003").await.unwrap().unwrap();
    let points = u.points;
    assert!(points > 0);
    u.name = "Renamed".into();
    u.bio = None;
    u.preferences.language = "fr".into();
    u.points = 0;
    assert!(f.store.save_profile(&u).await.unwrap());
    let saved = f.store.get_user("user-0003").await.unwrap().unwrap();
    assert_eq!(
        (saved.name.as_str(), saved.bio.as_deref(), saved.preferences.language.as_str()),
        ("Renamed", None, "fr")
    );
    assert_eq!(saved.points, points);
    let ghost = livecache_domain::User { id: "user-9999".into(), ..u.clone() };
    assert!(!f.store.save_profile(&ghost).await.unwrap());
    assert!(f.store.get_user("user-9999").await.unwrap().is_none());
    // Figures are counted from the data.
    for user in ["user-0014", "user-0002", "user-0049"] {
        let products = f.data.products.iter().filter(|p| p.seller_id == user);
        let (listed, views) = products.fold((0u64, 0i64), |(n, v), p| (n + 1, v + p.view_count));
        let hosted =
            f.data.streams.iter().filter(|s| s.seller_id == user && s.status != StreamStatus::Scheduled).count();
        let figures = f.store.seller_figures(user).await.unwrap();
        assert_eq!(
            (figures.products_listed, figures.total_views, figures.streams_hosted),
            (listed, views, hosted as u64)
        );
    }
    // An award counts once.
    let badge = Badge::new("user-0030", BadgeCode::Catalog10, time::now());
    assert!(f.store.award_badge(&badge).await.unwrap());
    assert!(!f.store.award_badge(&Badge::new("user-0030", BadgeCode::Catalog10, time::now())).await.unwrap());
    let u = f.store.get_user("user-0030").await.unwrap().unwrap();
    assert_eq!((u.points, u.badges), (BadgeCode::Catalog10.points(), 1));
    assert_eq!(f.store.badges_of("user-0030").await.unwrap(), vec![badge.clone()]);
    let unknown = f.store.award_badge(&Badge::new("user-9999", BadgeCode::FirstLive, time::now())).await;
    assert!(matches!(unknown, Err(StoreError::NotFound { .. })), "{unknown:?}");
    // The latest badges, newest first.
    let recent = f.store.recent_badges(4).await.unwrap();
    assert_eq!(recent.len(), 4);
    assert_eq!(recent[0], badge);
    assert!(recent.windows(2).all(|w| w[0].recency() > w[1].recency()));
    // The leaderboard: by points, then the higher id; pages without gaps.
    let users = f.store.get_users(&f.data.users.iter().map(|u| u.id.clone()).collect::<Vec<_>>()).await.unwrap();
    let mut reference: Vec<(u64, String)> =
        users.into_iter().flatten().filter(|u| u.points > 0).map(|u| (u.points, u.id)).collect();
    reference.sort_by(|a, b| b.cmp(a));
    let all: Vec<(u64, String)> =
        f.store.leaderboard(0, 50).await.unwrap().into_iter().map(|u| (u.points, u.id)).collect();
    assert_eq!(all, reference);
    let page: Vec<String> = f.store.leaderboard(2, 3).await.unwrap().into_iter().map(|u| u.id).collect();
    let expected: Vec<String> = reference.iter().skip(2).take(3).map(|(_, id)| id.clone()).collect();
    assert_eq!(page, expected);
    f.done().await;
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test]
            async fn $name() { super::$name(super::Fixture::memory().await).await }) *
        }
        mod dynamodb {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Fixture::dynamo(stringify!($name)).await).await }) *
        }
    };
}

contract!(
    batch_reads_keep_order_and_report_missing,
    discover_pages_rank_like_the_reference,
    community_finds_everything_within_the_radius,
    stream_transitions_are_conditional,
    offers_expire_only_while_pending,
    due_offers_come_from_the_store_and_expiry_never_overrides_an_extension,
    a_view_chunk_applies_exactly_once,
    a_full_chunk_fits_one_transaction,
    job_runs_keep_the_last_run_of_each_job,
    profiles_badges_and_the_leaderboard,
);
