//! The cache is never the only copy of the truth. Offers keep theirs in DynamoDB: they expire
//! whatever Redis lost, an extension and the expiry run cannot both win, and OfferExpired goes
//! out at least once. Streams: the first live list read after a go-live or end shows it even
//! while the index lags, and the feeds catch up within a bounded time. On redis-server and
//! DynamoDB in moto's server (and the memory adapters where a fault is injected).

mod common;

use livecache_domain::Id;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::future::BoxFuture;
use livecache_cache::{Backend, RedisBackend, RedisConfig, SpawnTasks};
use livecache_domain::jobs;
use livecache_domain::services::{Expiry, Marketplace, NewOffer};
use livecache_domain::store::{ChunkOutcome, CommunityQuery, DiscoverQuery, ExpireOutcome, FeedPage, ViewChunk};
use livecache_domain::users::{Badge, SellerFigures};
use livecache_domain::{
    time, DomainEvent, EventError, EventPublisher, FeedStore, InProcessBus, JobLog, JobRun, Offer, OfferStatus,
    OfferStore, Product, ProductStore, Store, StoreError, Stream, StreamStatus, StreamStore, User, UserStore,
    ViewStore,
};
use livecache_http::{AdminAuth, App};
use livecache_runtime::Deps;
use serde_json::json;

type StoreResult<T> = Result<T, StoreError>;

fn market(deps: &Deps) -> Marketplace {
    App::new(deps, Arc::new(SpawnTasks), AdminAuth::Disabled, None).market.clone()
}

fn soon() -> livecache_domain::jobs::Deadline {
    livecache_domain::jobs::Deadline::at(Instant::now() + Duration::from_secs(60))
}

/// Makes an offer due in the source of truth (as if its minute had passed).
async fn make_due(store: &dyn Store, id: &str) -> Offer {
    let mut offer = store.get_offer(id).await.unwrap().unwrap();
    offer.expires_at = time::from_millis(time::now().timestamp_millis() - 1_000);
    store.put_offers(std::slice::from_ref(&offer)).await.unwrap();
    offer
}

async fn status(store: &dyn Store, id: &str) -> OfferStatus {
    store.get_offer(id).await.unwrap().unwrap().status
}

/// A buyer and a product of somebody else's.
fn buyer_and_product(data: &livecache_domain::seed::DemoData) -> (String, Product) {
    let product = data.products[7].clone();
    let buyer = data.users.iter().find(|u| u.id != product.seller_id).unwrap().id.clone();
    (buyer, product)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_whose_index_entry_redis_lost_expires_on_time_and_the_index_is_rebuilt() {
    let api = common::start("offer-flushed", None).await;
    let (buyer, product) = buyer_and_product(&api.data);
    let (s, v) = api
        .post_as(&buyer, "/offers", json!({"product_id": product.id, "amount": 10.0, "expires_in_minutes": 1}))
        .await;
    assert_eq!(s, 201, "{v}");
    let id = v["offer"]["id"].as_str().unwrap().to_string();
    let (s, v) = api
        .post_as(&buyer, "/offers", json!({"product_id": product.id, "amount": 11.0, "expires_in_minutes": 30}))
        .await;
    assert_eq!(s, 201, "{v}");
    let later = v["offer"]["id"].as_str().unwrap().to_string();
    // Redis loses the index (a flush, a restart without persistence, a failover).
    let index = livecache_domain::services::OfferIndex::new(&api.cache);
    index.forget_all().await.unwrap();
    assert!(index.entries().await.unwrap().is_empty());
    // Its minute passes: the run reads DynamoDB, not Redis.
    make_due(&*api.deps.store, &id).await;
    let m = market(&api.deps);
    let report = jobs::expire_offers(&m, &soon()).await.unwrap();
    assert!(report.updated >= 1, "{report:?}");
    assert_eq!(status(&*api.deps.store, &id).await, OfferStatus::Expired);
    assert_eq!(status(&*api.deps.store, &later).await, OfferStatus::Pending);
    // The first expiring-soon read finds the index gone and rebuilds it from DynamoDB.
    let (s, soon_list) = api.get_as(&buyer, "/offers/expiring-soon?within_minutes=60").await;
    assert_eq!(s, 200);
    let ids: Vec<&str> = soon_list["offers"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&later.as_str()), "{soon_list}");
    assert!(!ids.contains(&id.as_str()), "the expired one is not listed");
    assert!(index.is_built_for(&buyer).await.unwrap(), "marked rebuilt");
    assert!(index.scheduled_at(&later).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_made_while_redis_was_down_expires_on_time() {
    let (deps, _bus, _clock, data) = common::real_deps("offer-redis-down").await;
    // The same DynamoDB, but a Redis nobody listens on.
    let dead: Arc<dyn Backend> =
        Arc::new(RedisBackend::lazy(RedisConfig::from_url("redis://127.0.0.1:1").unwrap()).unwrap());
    let down = Deps { backend: dead, ..deps.clone() };
    let (buyer, product) = buyer_and_product(&data);
    let offer = market(&down)
        .create_offer(NewOffer {
            product_id: Id::parse(&product.id).unwrap(),
            caller: Id::parse(&buyer).unwrap(),
            buyer_id: None,
            amount: 12.0,
            expiry: Expiry::InMinutes(1),
        })
        .await
        .expect("an offer is taken with Redis down");
    let m = market(&deps);
    let index = livecache_domain::services::OfferIndex::new(
        &livecache_cache::Cache::builder(deps.backend.clone()).keyspace(deps.keyspace.clone()).build(),
    );
    assert_eq!(index.scheduled_at(&offer.id).await.unwrap(), None);
    make_due(&*deps.store, &offer.id).await;
    let report = jobs::expire_offers(&m, &soon()).await.unwrap();
    assert!(report.updated >= 1, "{report:?}");
    assert_eq!(status(&*deps.store, &offer.id).await, OfferStatus::Expired);
}

/// A store with faults a test switches on: a hook run right before the expiry's conditional
/// write (an extension landing between the run's read of what is due and its update), and a
/// lagging secondary index (the live streams as they were before the last transitions).
struct Racing {
    inner: Arc<dyn Store>,
    lagging_live: Mutex<Option<Vec<Stream>>>,
    /// The offer whose expiry the hook precedes, and the hook.
    before_expire: Mutex<Option<(String, BoxFuture<'static, ()>)>>,
    /// The user whose next read returns what it read before the hook ran (an update landing
    /// while a load is in flight), and the hook.
    after_user_read: Mutex<Option<(String, BoxFuture<'static, ()>)>>,
}

impl Racing {
    fn over(inner: Arc<dyn Store>) -> Self {
        Self {
            inner,
            lagging_live: Mutex::new(None),
            before_expire: Mutex::new(None),
            after_user_read: Mutex::new(None),
        }
    }
}

#[async_trait]
impl ProductStore for Racing {
    async fn get_product(&self, id: &str) -> StoreResult<Option<Product>> {
        self.inner.get_product(id).await
    }
    async fn get_products(&self, ids: &[String]) -> StoreResult<Vec<Option<Product>>> {
        self.inner.get_products(ids).await
    }
    async fn put_products(&self, items: &[Product]) -> StoreResult<()> {
        self.inner.put_products(items).await
    }
}

#[async_trait]
impl FeedStore for Racing {
    async fn discover(&self, q: &DiscoverQuery) -> StoreResult<FeedPage> {
        self.inner.discover(q).await
    }
    async fn discover_after(&self, q: &DiscoverQuery, after: &livecache_domain::FeedItem) -> StoreResult<FeedPage> {
        self.inner.discover_after(q, after).await
    }
    async fn community(&self, q: &CommunityQuery) -> StoreResult<FeedPage> {
        self.inner.community(q).await
    }
}

#[async_trait]
impl StreamStore for Racing {
    async fn get_stream(&self, id: &str) -> StoreResult<Option<Stream>> {
        self.inner.get_stream(id).await
    }
    async fn put_streams(&self, items: &[Stream]) -> StoreResult<()> {
        self.inner.put_streams(items).await
    }
    async fn live_streams(&self) -> StoreResult<Vec<Stream>> {
        let lagging = self.lagging_live.lock().unwrap().clone();
        match lagging {
            Some(old) => Ok(old),
            None => self.inner.live_streams().await,
        }
    }
    async fn transition_stream(
        &self,
        id: &str,
        to: StreamStatus,
        at: livecache_domain::time::Timestamp,
    ) -> StoreResult<Stream> {
        self.inner.transition_stream(id, to, at).await
    }
}

#[async_trait]
impl OfferStore for Racing {
    async fn get_offer(&self, id: &str) -> StoreResult<Option<Offer>> {
        self.inner.get_offer(id).await
    }
    async fn get_offers(&self, ids: &[String]) -> StoreResult<Vec<Option<Offer>>> {
        self.inner.get_offers(ids).await
    }
    async fn put_offers(&self, items: &[Offer]) -> StoreResult<()> {
        self.inner.put_offers(items).await
    }
    async fn create_offer(&self, offer: &Offer) -> StoreResult<()> {
        self.inner.create_offer(offer).await
    }
    async fn expire_offer(&self, id: &str, now: time::Timestamp) -> StoreResult<ExpireOutcome> {
        let hook = {
            let mut slot = self.before_expire.lock().unwrap();
            if slot.as_ref().is_some_and(|(of, _)| of == id) {
                slot.take()
            } else {
                None
            }
        };
        if let Some((_, hook)) = hook {
            hook.await;
        }
        self.inner.expire_offer(id, now).await
    }
    async fn extend_offer(&self, id: &str, expires_at: time::Timestamp, now: time::Timestamp) -> StoreResult<Offer> {
        self.inner.extend_offer(id, expires_at, now).await
    }
    async fn offers_due_by(&self, until: time::Timestamp, limit: usize) -> StoreResult<Vec<Offer>> {
        self.inner.offers_due_by(until, limit).await
    }
    async fn offer_announced(&self, id: &str) -> StoreResult<()> {
        self.inner.offer_announced(id).await
    }
}

#[async_trait]
impl ViewStore for Racing {
    async fn apply_view_chunk(&self, chunk: &ViewChunk) -> StoreResult<ChunkOutcome> {
        self.inner.apply_view_chunk(chunk).await
    }
}

#[async_trait]
impl UserStore for Racing {
    async fn get_user(&self, id: &str) -> StoreResult<Option<User>> {
        let read = self.inner.get_user(id).await;
        let hook = {
            let mut slot = self.after_user_read.lock().unwrap();
            match slot.take() {
                Some((user, hook)) if user == id => Some(hook),
                other => {
                    *slot = other;
                    None
                }
            }
        };
        if let Some(hook) = hook {
            hook.await;
        }
        read
    }
    async fn get_users(&self, ids: &[String]) -> StoreResult<Vec<Option<User>>> {
        self.inner.get_users(ids).await
    }
    async fn put_users(&self, items: &[User]) -> StoreResult<()> {
        self.inner.put_users(items).await
    }
    async fn save_profile(&self, user: &User) -> StoreResult<bool> {
        self.inner.save_profile(user).await
    }
    async fn seller_figures(&self, user: &str) -> StoreResult<SellerFigures> {
        self.inner.seller_figures(user).await
    }
    async fn award_badge(&self, badge: &Badge) -> StoreResult<bool> {
        self.inner.award_badge(badge).await
    }
    async fn badges_of(&self, user: &str) -> StoreResult<Vec<Badge>> {
        self.inner.badges_of(user).await
    }
    async fn recent_badges(&self, limit: usize) -> StoreResult<Vec<Badge>> {
        self.inner.recent_badges(limit).await
    }
    async fn leaderboard(&self, offset: usize, limit: usize) -> StoreResult<Vec<User>> {
        self.inner.leaderboard(offset, limit).await
    }
}

#[async_trait]
impl JobLog for Racing {
    async fn record_job_run(&self, run: &JobRun) -> StoreResult<()> {
        self.inner.record_job_run(run).await
    }
    async fn job_runs(&self, jobs: &[&str]) -> StoreResult<Vec<JobRun>> {
        self.inner.job_runs(jobs).await
    }
}

impl Store for Racing {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extension_racing_the_expiry_run_is_refused_never_answered_200_then_expired() {
    let (deps, bus, clock, data) = common::real_deps("offer-race").await;
    let racing = Arc::new(Racing::over(deps.store.clone()));
    let deps = Deps { store: racing.clone(), ..deps };
    let api = common::serve(deps.clone(), bus, clock, data, Arc::new(SpawnTasks), None).await;
    let (buyer, product) = buyer_and_product(&api.data);
    let (s, v) =
        api.post_as(&buyer, "/offers", json!({"product_id": product.id, "amount": 9.0, "expires_in_minutes": 1})).await;
    assert_eq!(s, 201, "{v}");
    let id = v["offer"]["id"].as_str().unwrap().to_string();
    make_due(&*deps.store, &id).await;
    // The buyer's extension lands after the run read the offer as due, before its update.
    let (http, url, token) =
        (reqwest::Client::new(), format!("{}/offers/{id}/extend", api.base), common::token(&buyer));
    let (tx, rx) = tokio::sync::oneshot::channel();
    *racing.before_expire.lock().unwrap() = Some((
        id.clone(),
        Box::pin(async move {
            let resp = http.post(url).bearer_auth(token).json(&json!({"expires_in_minutes": 60})).send().await.unwrap();
            let status = resp.status().as_u16();
            let _ = tx.send((status, resp.text().await.unwrap()));
        }),
    ));
    let report = jobs::expire_offers(&market(&deps), &soon()).await.unwrap();
    let (answer, body) = rx.await.unwrap();
    let now = status(&*deps.store, &id).await;
    assert!(
        (answer == 409 && now == OfferStatus::Expired) || (answer == 200 && now == OfferStatus::Pending),
        "the buyer was told {answer} ({body}) and the offer is {now}"
    );
    assert_eq!((answer, now), (409, OfferStatus::Expired), "a due offer can no longer be extended: {body}");
    assert!(body.contains("due"), "{body}");
    assert!(report.updated >= 1, "{report:?}");
}

/// A publisher that fails while `failing` is set, then passes through.
struct Flaky {
    bus: Arc<InProcessBus>,
    failing: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl EventPublisher for Flaky {
    async fn publish(&self, events: &[DomainEvent]) -> Result<(), EventError> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(EventError::Backend("event bus unavailable (injected)".into()));
        }
        self.bus.publish(events).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_expired_event_lost_by_a_failing_publisher_is_delivered_by_the_next_run() {
    let (deps, bus, _clock, data) = common::real_deps("offer-publish").await;
    let flaky = Arc::new(Flaky { bus: bus.clone(), failing: true.into() });
    let deps = Deps { events: flaky.clone(), ..deps };
    let m = market(&deps);
    let due: Vec<String> = data.offers.iter().filter(|o| o.expires_at <= time::now()).map(|o| o.id.clone()).collect();
    assert!(!due.is_empty());
    let announced = || -> Vec<String> {
        let expired = bus.published().into_iter().filter(|e| e.detail_type == "OfferExpired");
        expired.map(|e| e.detail["event_id"].as_str().unwrap().to_string()).collect()
    };
    let first = jobs::expire_offers(&m, &soon()).await.unwrap();
    assert_eq!((first.updated, first.announced, first.unannounced), (due.len(), 0, due.len()));
    for id in &due {
        assert_eq!(status(&*deps.store, id).await, OfferStatus::Expired, "expired even though not announced");
    }
    assert!(announced().is_empty());
    flaky.failing.store(false, std::sync::atomic::Ordering::SeqCst);
    let second = jobs::expire_offers(&m, &soon()).await.unwrap();
    assert_eq!((second.updated, second.announced, second.unannounced), (0, due.len(), 0));
    let mut got = announced();
    got.sort();
    let mut want: Vec<String> = due.iter().map(|id| format!("offer-expired:{id}")).collect();
    want.sort();
    assert_eq!(got, want, "each one delivered, under its stable id");
    let third = jobs::expire_offers(&m, &soon()).await.unwrap();
    assert_eq!((third.processed, third.announced), (0, 0), "and only until delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_live_list_after_a_transition_shows_it_while_the_index_lags() {
    let (deps, bus, clock, data) = common::memory_deps("fresh-transition").await;
    let racing = Arc::new(Racing::over(deps.store.clone()));
    let deps = Deps { store: racing.clone(), ..deps };
    // Post-response work waits for `run_all`: the second invalidation runs when the test says.
    let tasks = Arc::new(livecache_cache::DeferredTasks::new());
    let api = common::serve(deps.clone(), bus, clock, data.clone(), tasks.clone(), None).await;
    let scheduled = data.streams.iter().find(|s| s.status == StreamStatus::Scheduled).unwrap().clone();
    let live = data.streams.iter().find(|s| s.status == StreamStatus::Live).unwrap().clone();
    let ids = |v: &serde_json::Value| -> Vec<String> {
        v["streams"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect()
    };
    let (_, before) = api.get("/streams/live").await;
    // From here the index answers with the live set as it was.
    *racing.lagging_live.lock().unwrap() = Some(deps.store.live_streams().await.unwrap());
    let (s, _) = api.post_as(&scheduled.seller_id, &format!("/streams/{}/go-live", scheduled.id), json!({})).await;
    assert_eq!(s, 200);
    let (_, after) = api.get("/streams/live").await;
    assert!(ids(&after).contains(&scheduled.id), "the first read after go-live shows it: {after}");
    assert_eq!(ids(&after).len(), ids(&before).len() + 1);
    let (s, _) = api.post_as(&live.seller_id, &format!("/streams/{}/end", live.id), json!({})).await;
    assert_eq!(s, 200);
    let (_, ended) = api.get("/streams/live").await;
    assert!(!ids(&ended).contains(&live.id), "the first read after the end no longer shows it: {ended}");
    assert!(ids(&ended).contains(&scheduled.id), "and still shows the earlier go-live");
    // The index catches up; the second invalidation (REINVALIDATE_AFTER_TRANSITION later)
    // replaces whatever was built meanwhile, feeds included.
    *racing.lagging_live.lock().unwrap() = None;
    let (_, page) = api.get("/feeds/discover").await;
    assert_eq!(page["cached"], json!(false));
    assert_eq!(api.get("/feeds/discover").await.1["cached"], json!(true));
    tasks.run_all().await;
    assert_eq!(api.get("/feeds/discover").await.1["cached"], json!(false), "invalidated again");
    let (_, settled) = api.get("/streams/live").await;
    assert_eq!(settled["cached"], json!(false));
    assert_eq!(ids(&settled), ids(&ended), "rebuilt from the index, which now agrees");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_load_in_flight_during_an_update_does_not_bring_the_old_profile_back() {
    let (deps, bus, clock, data) = common::real_deps("profile-race").await;
    let racing = Arc::new(Racing::over(deps.store.clone()));
    let deps = Deps { store: racing.clone(), ..deps };
    let api = common::serve(deps, bus, clock, data, Arc::new(SpawnTasks), None).await;
    let user = api.data.users[5].clone();
    let batch = json!({"user_ids": [user.id]});
    // The update lands after the profile's load read the user, before it stores what it read.
    let (http, url, token) = (reqwest::Client::new(), format!("{}/users/me", api.base), common::token(&user.id));
    let update: BoxFuture<'static, ()> = Box::pin(async move {
        let resp = http.patch(url).bearer_auth(token).json(&json!({"name": "Renamed Meanwhile"})).send().await.unwrap();
        assert_eq!(resp.status(), 200);
    });
    *racing.after_user_read.lock().unwrap() = Some((user.id.clone(), update));
    let (s, v) = api.get(&format!("/users/{}", user.id)).await;
    assert_eq!(
        (s, v["user"]["name"].clone()),
        (200, json!(user.name)),
        "the request that began first answers what it read"
    );
    assert!(racing.after_user_read.lock().unwrap().is_none(), "the update ran during the load");
    // ...but did not store it: every read after the update sees the new name.
    for _ in 0..2 {
        assert_eq!(api.get(&format!("/users/{}", user.id)).await.1["user"]["name"], json!("Renamed Meanwhile"));
        assert_eq!(api.get_as(&user.id, "/users/me").await.1["user"]["name"], json!("Renamed Meanwhile"));
        assert_eq!(api.post("/batch/users", batch.clone()).await.1["users"][0]["name"], json!("Renamed Meanwhile"));
    }
}
