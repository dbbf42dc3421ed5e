//! The cache-aware services: what every endpoint does, over the cache engine, the Store and the
//! EventPublisher. Handlers parse and call these; nothing here knows HTTP or Lambda.

pub mod keys;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use livecache_cache::{Backend, Cache, LoadError, ServerInfo, Source, StatsReport, TaskRunner, WarmReport};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::error::StoreError;
use crate::events::{DomainEvent, EventPublisher, StreamStatusChanged};
use crate::models::{JobRun, Offer, OfferStatus, Product, Stream, StreamStatus};
use crate::store::{CommunityQuery, DiscoverQuery, FeedPage, FeedSort, PageRequest, Store, ViewChunk};
use crate::time::{self, Timestamp};
use keys::*;

/// Why a service call failed; each kind maps to one HTTP status in the HTTP layer.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Bad input (400).
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// Unknown id (404).
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    /// Wrong state (409).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// Not allowed for this caller (403).
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// The source of truth could not answer and no cached value could stand in (503).
    #[error("{0}")]
    Unavailable(String),
}

impl ServiceError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid { code, message: message.into() }
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { kind, id } => {
                Self::NotFound { code: not_found_code(kind), message: format!("{kind} {id} not found") }
            }
            e @ StoreError::InvalidTransition { .. } => {
                Self::Conflict { code: "invalid_transition", message: e.to_string() }
            }
            e @ StoreError::Conflict(_) => Self::Conflict { code: "conflict", message: e.to_string() },
            e @ StoreError::AlreadyExists { .. } => Self::Conflict { code: "already_exists", message: e.to_string() },
            e => {
                tracing::error!(error = %e, "store failed");
                Self::Unavailable("the database is not answering; try again shortly".into())
            }
        }
    }
}

impl From<livecache_cache::CacheError> for ServiceError {
    fn from(e: livecache_cache::CacheError) -> Self {
        match e {
            livecache_cache::CacheError::InvalidKey { part, reason } => {
                Self::invalid("invalid_id", format!("{part:?} {reason}"))
            }
            e => Self::Unavailable(format!("cache: {e}")),
        }
    }
}

impl From<LoadError<StoreError>> for ServiceError {
    fn from(e: LoadError<StoreError>) -> Self {
        match e {
            LoadError::Loader(e) => e.into(),
            other => {
                tracing::error!(error = %other, "load failed");
                Self::Unavailable("the database is not answering; try again shortly".into())
            }
        }
    }
}

fn not_found_code(kind: &str) -> &'static str {
    match kind {
        "product" => "product_not_found",
        "stream" => "stream_not_found",
        "offer" => "offer_not_found",
        "user" => "user_not_found",
        _ => "not_found",
    }
}

pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

/// A value and whether it came from the cache.
#[derive(Debug, Clone, Serialize)]
pub struct Cached<T> {
    #[serde(flatten)]
    pub value: T,
    pub cached: bool,
    /// Served past its fresh lifetime (stale-while-revalidate or fail-safe).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stale: bool,
}

impl<T> Cached<T> {
    fn from_lookup(value: T, source: Source) -> Self {
        Self { value, cached: source != Source::Loaded, stale: matches!(source, Source::Stale | Source::FailSafe) }
    }
}

/// A feed page kept as JSON: the same stored form as [`FeedPage`], but the items are served
/// as the bytes the cache holds (validated, never rebuilt).
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct RawPage {
    pub items: Box<RawValue>,
    pub has_more: bool,
}

impl RawPage {
    fn of(page: FeedPage) -> Result<Self, StoreError> {
        let items = serde_json::value::to_raw_value(&page.items).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(Self { items, has_more: page.has_more })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ProductViews {
    pub product_id: String,
    pub views: i64,
    pub stored: i64,
    pub pending: i64,
}

/// A batch answer: found values in request order (duplicates folded), missing ids, counts.
#[derive(Debug, Serialize)]
pub struct BatchAnswer {
    pub items: Vec<Box<RawValue>>,
    pub missing: Vec<String>,
    pub hits: usize,
    pub misses: usize,
}

/// The public statistics: hit rates and counts, nothing about the servers.
#[derive(Debug, Clone, Serialize)]
pub struct CacheStatsAnswer {
    /// Every instance's figures, as flushed to the shared hash.
    pub aggregate: StatsReport,
    /// This instance's figures.
    pub instance: StatsReport,
    pub feed_entries: FeedEntries,
}

/// The admins' statistics: the public ones and the cache server's own figures.
#[derive(Debug, Clone, Serialize)]
pub struct CacheStatsDetails {
    #[serde(flatten)]
    pub stats: CacheStatsAnswer,
    pub backend: ServerInfo,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct FeedEntries {
    pub discover: usize,
    pub community: usize,
}

/// How an offer's expiry is given.
#[derive(Debug, Clone, Copy)]
pub enum Expiry {
    InMinutes(u32),
    At(Timestamp),
}

#[derive(Debug, Clone)]
pub struct NewOffer {
    pub product_id: String,
    /// The signed-in caller: the buyer.
    pub caller: String,
    /// The buyer as the request named it, if it did: it must be the caller.
    pub buyer_id: Option<String>,
    pub amount: f64,
    pub expiry: Expiry,
}

/// What an invalidation did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Invalidated {
    Namespace { namespace: String, generation: u64 },
    Pattern { pattern: String, deleted: u64 },
    Version { version: u64 },
}

/// When the feeds are invalidated a second time after a go-live or end: longer than the
/// propagation delay of DynamoDB's secondary indexes (typically well under a second).
pub const REINVALIDATE_AFTER_TRANSITION: Duration = Duration::from_secs(2);

/// The longest an offer may run.
pub const MAX_OFFER_MINUTES: u32 = 7 * 24 * 60;

/// A feed query: how its page is keyed, loaded, and which page follows it.
trait FeedQuery: Clone + Send + Sync + 'static {
    fn key(&self, cache: &Cache) -> Result<livecache_cache::Key, livecache_cache::CacheError>;
    fn next_page(&self) -> Self;
    fn load(&self, store: &dyn Store) -> impl std::future::Future<Output = Result<FeedPage, StoreError>> + Send;
}

impl FeedQuery for DiscoverQuery {
    fn key(&self, cache: &Cache) -> Result<livecache_cache::Key, livecache_cache::CacheError> {
        discover_key(cache, self)
    }

    fn next_page(&self) -> Self {
        Self { page: PageRequest { page: self.page.page + 1, ..self.page }, ..self.clone() }
    }

    async fn load(&self, store: &dyn Store) -> Result<FeedPage, StoreError> {
        store.discover(self).await
    }
}

impl FeedQuery for CommunityQuery {
    fn key(&self, cache: &Cache) -> Result<livecache_cache::Key, livecache_cache::CacheError> {
        community_key(cache, self)
    }

    fn next_page(&self) -> Self {
        Self { page: PageRequest { page: self.page.page + 1, ..self.page }, ..self.clone() }
    }

    async fn load(&self, store: &dyn Store) -> Result<FeedPage, StoreError> {
        store.community(self).await
    }
}

/// How long an instance trusts its own check that a next page is cached.
const PREFETCH_RECHECK: Duration = Duration::from_secs(30);

struct Inner {
    /// Next pages this instance checked (or prefetched) recently, and when.
    prefetched: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
    cache: Cache,
    backend: Arc<dyn Backend>,
    store: Arc<dyn Store>,
    events: Arc<dyn EventPublisher>,
    tasks: Arc<dyn TaskRunner>,
    /// Views sent to Redis that got no answer (see `count_view`).
    views_unconfirmed: std::sync::atomic::AtomicU64,
}

/// Every operation of the API. Cheap to clone.
#[derive(Clone)]
pub struct Marketplace {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Marketplace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Marketplace").field("store", &self.inner.store.backend()).finish()
    }
}

impl Marketplace {
    /// `tasks` must be the runner the cache was built with: post-response work (refreshes,
    /// prefetches) goes there.
    pub fn new(
        cache: Cache,
        store: Arc<dyn Store>,
        events: Arc<dyn EventPublisher>,
        tasks: Arc<dyn TaskRunner>,
    ) -> Self {
        let backend = cache.backend().clone();
        Self {
            inner: Arc::new(Inner {
                prefetched: Default::default(),
                cache,
                backend,
                store,
                events,
                tasks,
                views_unconfirmed: Default::default(),
            }),
        }
    }

    pub fn cache(&self) -> &Cache {
        &self.inner.cache
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    pub fn events(&self) -> &Arc<dyn EventPublisher> {
        &self.inner.events
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.inner.backend
    }

    // ---------------------------------------------------------------- products

    /// A product, stale-while-revalidate; unknown ids cached briefly as missing. Counts a view
    /// (one Redis increment; straight to DynamoDB only when Redis cannot take it).
    pub async fn product(&self, id: &str) -> Result<Cached<Product>> {
        let key = product_key(&self.inner.cache, id)?;
        let store = self.inner.store.clone();
        let owned = id.to_string();
        let found = self
            .inner
            .cache
            .get_or_load(&key, &product_policy(), move || async move { store.get_product(&owned).await })
            .await?;
        let Some(product) = found.value else {
            return Err(ServiceError::NotFound {
                code: "product_not_found",
                message: format!("product {id} not found"),
            });
        };
        self.count_view(id).await;
        Ok(Cached::from_lookup(product, found.source))
    }

    /// Counts a view once: in Redis, or — only when the increment certainly did not run there
    /// (circuit open, no connection) — straight in DynamoDB. An increment whose outcome is
    /// unknown (a timeout after sending: Redis may have applied it) is not written again
    /// elsewhere, where it could count twice; it is counted in `views_unconfirmed`.
    async fn count_view(&self, id: &str) {
        let pending = pending_views_key(&self.inner.cache, "products");
        if let Err(e) = self.inner.backend.incr(&pending, id, 1).await {
            if e.outcome_unknown() {
                self.inner.views_unconfirmed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(error = %e, product = id, "view sent to Redis without an answer; not written again");
                return;
            }
            tracing::warn!(error = %e, product = id, "view not counted in Redis; writing it to the database");
            let chunk = ViewChunk {
                id: format!("direct-{:032x}", rand::random::<u128>()),
                products: vec![(id.to_string(), 1)],
                streams: vec![],
            };
            if let Err(e) = self.inner.store.apply_view_chunk(&chunk).await {
                tracing::error!(error = %e, product = id, "view lost: neither Redis nor the database took it");
            }
        }
    }

    /// Views this instance sent to Redis without getting an answer: counted there if Redis
    /// applied them, lost if not; never counted twice.
    pub fn views_unconfirmed(&self) -> u64 {
        self.inner.views_unconfirmed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stored views plus increments not yet synced.
    pub async fn product_views(&self, id: &str) -> Result<ProductViews> {
        livecache_cache::keys::validate_part(id)?;
        let product = self.inner.store.get_product(id).await?.ok_or_else(|| ServiceError::NotFound {
            code: "product_not_found",
            message: format!("product {id} not found"),
        })?;
        let pending_key = pending_views_key(&self.inner.cache, "products");
        let pending = self.inner.backend.field(&pending_key, id).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "pending views unavailable");
            0
        });
        Ok(ProductViews {
            product_id: id.into(),
            views: product.view_count + pending,
            stored: product.view_count,
            pending,
        })
    }

    // ---------------------------------------------------------------- feeds

    /// A discover page (cached 5 min); page N+1 is prefetched after the answer if it is not
    /// cached yet.
    pub async fn discover(&self, q: DiscoverQuery) -> Result<Cached<RawPage>> {
        self.feed(q).await
    }

    /// A community page for the location rounded to 2 decimals (cached 5 min, so neighbours
    /// share it); page N+1 is prefetched after the answer if it is not cached yet.
    pub async fn community(&self, mut q: CommunityQuery) -> Result<Cached<RawPage>> {
        q.lat = (q.lat * 100.0).round() / 100.0;
        q.lon = (q.lon * 100.0).round() / 100.0;
        self.feed(q).await
    }

    async fn feed<Q: FeedQuery>(&self, q: Q) -> Result<Cached<RawPage>> {
        let page = self.feed_page(&q).await?;
        if page.value.has_more {
            let next = q.next_page();
            let key = next.key(&self.inner.cache)?;
            if self.should_prefetch(&key) {
                let me = self.clone();
                self.inner.tasks.submit(Box::pin(async move {
                    if !me.inner.cache.is_fresh(&key).await {
                        if let Err(e) = me.feed_page(&next).await {
                            tracing::debug!(error = %e, "prefetch of the next page failed");
                        }
                    }
                }));
            }
        }
        Ok(page)
    }

    /// Whether to check (and maybe prefetch) `next` now: at most once per
    /// [`PREFETCH_RECHECK`] per instance, so hits on a hot page do not each re-read the next.
    fn should_prefetch(&self, next: &livecache_cache::Key) -> bool {
        let now = std::time::Instant::now();
        let mut seen = self.inner.prefetched.lock().unwrap_or_else(|p| p.into_inner());
        if seen.get(next.as_str()).is_some_and(|at| now.duration_since(*at) < PREFETCH_RECHECK) {
            return false;
        }
        if seen.len() >= 10_000 {
            seen.retain(|_, at| now.duration_since(*at) < PREFETCH_RECHECK);
        }
        seen.insert(next.as_str().to_string(), now);
        true
    }

    async fn feed_page<Q: FeedQuery>(&self, q: &Q) -> Result<Cached<RawPage>> {
        let key = q.key(&self.inner.cache)?;
        let store = self.inner.store.clone();
        let query = q.clone();
        let found = self
            .inner
            .cache
            .get_or_load(&key, &feed_policy(), move || async move { RawPage::of(query.load(&*store).await?) })
            .await?;
        Ok(Cached::from_lookup(found.value, found.source))
    }

    // ---------------------------------------------------------------- batch

    /// Products by id: one MGET, one batched read for the misses, one pipelined backfill.
    pub async fn batch_products(&self, ids: &[String]) -> Result<BatchAnswer> {
        let store = self.inner.store.clone();
        self.batch(ids, NS_PRODUCTS, &product_policy(), move |wanted: Vec<String>| async move {
            raw_all(store.get_products(&wanted).await?)
        })
        .await
    }

    /// Users by id, like [`batch_products`](Self::batch_products).
    pub async fn batch_users(&self, ids: &[String]) -> Result<BatchAnswer> {
        let store = self.inner.store.clone();
        self.batch(ids, NS_USERS, &user_policy(), move |wanted: Vec<String>| async move {
            raw_all(store.get_users(&wanted).await?)
        })
        .await
    }

    async fn batch<F, Fut>(
        &self,
        ids: &[String],
        ns: &str,
        policy: &livecache_cache::Policy,
        load: F,
    ) -> Result<BatchAnswer>
    where
        F: FnOnce(Vec<String>) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<Option<Box<RawValue>>>, StoreError>>,
    {
        let mut seen = HashSet::new();
        let distinct: Vec<&String> = ids.iter().filter(|id| seen.insert(id.as_str())).collect();
        let keys = distinct.iter().map(|id| self.inner.cache.key(ns, &[id])).collect::<Result<Vec<_>, _>>()?;
        let batch = self
            .inner
            .cache
            .get_many_or_load(&keys, policy, |missing: Vec<usize>| {
                let wanted: Vec<String> = missing.iter().map(|&i| distinct[i].clone()).collect();
                load(wanted)
            })
            .await?;
        let mut items = Vec::with_capacity(distinct.len());
        let mut missing = Vec::new();
        for (id, value) in distinct.iter().zip(batch.values) {
            match value {
                Some(v) => items.push(v),
                None => missing.push((*id).clone()),
            }
        }
        Ok(BatchAnswer { items, missing, hits: batch.hits, misses: batch.misses })
    }

    // ---------------------------------------------------------------- streams

    /// Streams that are live now (cached 1 min).
    pub async fn live_streams(&self) -> Result<Cached<Vec<Stream>>> {
        let key = live_key(&self.inner.cache)?;
        let store = self.inner.store.clone();
        let found = self
            .inner
            .cache
            .get_or_load(&key, &live_policy(), move || async move { store.live_streams().await })
            .await?;
        Ok(Cached::from_lookup(found.value, found.source))
    }

    /// The live list as it was cached (or as the index returns it), corrected by a transition
    /// the index may not show yet, stored as the cached live list.
    async fn store_patched_live_list(&self, before: Option<Vec<Stream>>, changed: &Stream) {
        let mut live = match before {
            Some(live) => live,
            None => match self.inner.store.live_streams().await {
                Ok(live) => live,
                Err(e) => {
                    tracing::warn!(error = %e, "live list not rebuilt after a transition; the next read loads it");
                    return;
                }
            },
        };
        live.retain(|s| s.id != changed.id);
        if changed.status == StreamStatus::Live {
            live.push(changed.clone());
        }
        live.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(a.id.cmp(&b.id)));
        match live_key(&self.inner.cache) {
            Ok(key) => {
                if let Err(e) = self.inner.cache.set(&key, &live, &live_policy()).await {
                    tracing::warn!(error = %e, "patched live list not stored");
                }
            }
            Err(e) => tracing::warn!(error = %e, "live list key"),
        }
    }

    /// The stream's current state (for access checks before a transition).
    async fn stream(&self, id: &str) -> Result<Stream> {
        livecache_cache::keys::validate_part(id)?;
        self.inner.store.get_stream(id).await?.ok_or_else(|| ServiceError::NotFound {
            code: "stream_not_found",
            message: format!("stream {id} not found"),
        })
    }

    /// SCHEDULED → LIVE or LIVE → ENDED in DynamoDB; on success the feeds and the live list are
    /// invalidated before answering, then StreamStatusChanged is published.
    /// Only the stream's seller may; checked before anything is written, invalidated or
    /// published (403 `not_stream_owner`).
    pub async fn transition_stream(&self, id: &str, to: StreamStatus, caller: &str) -> Result<Stream> {
        if self.stream(id).await?.seller_id != caller {
            return Err(ServiceError::Forbidden {
                code: "not_stream_owner",
                message: "only the stream's seller may start or end it".into(),
            });
        }
        let live_before = match live_key(&self.inner.cache) {
            Ok(key) => self.inner.cache.get::<Vec<Stream>>(&key).await.map(|l| l.value),
            Err(_) => None,
        };
        let at = time::now();
        let stream = self.inner.store.transition_stream(id, to, at).await?;
        for ns in [NS_FEED_DISCOVER, NS_FEED_COMMUNITY, NS_LIVE] {
            if let Err(e) = self.inner.cache.invalidate_namespace(ns).await {
                tracing::error!(error = %e, namespace = ns, "invalidation failed; feeds may lag until their TTL");
            }
        }
        // The live list and the feeds are rebuilt from an index that DynamoDB updates a moment
        // after the write. The live list is patched with the write itself (on top of the list
        // cached before it, or the index) and stored, so the first read after the transition
        // already shows it; everything is invalidated once more when the index has caught up,
        // so a page rebuilt from a lagging index (or a patch lost to a concurrent one) lives at
        // most that long.
        self.store_patched_live_list(live_before, &stream).await;
        let market = self.clone();
        self.inner.tasks.submit(Box::pin(async move {
            tokio::time::sleep(REINVALIDATE_AFTER_TRANSITION).await;
            for ns in [NS_FEED_DISCOVER, NS_FEED_COMMUNITY, NS_LIVE] {
                if let Err(e) = market.inner.cache.invalidate_namespace(ns).await {
                    tracing::warn!(error = %e, namespace = ns, "second invalidation after a transition failed");
                }
            }
        }));
        let from = if to == StreamStatus::Live { StreamStatus::Scheduled } else { StreamStatus::Live };
        let event = DomainEvent::StreamStatusChanged(StreamStatusChanged {
            stream_id: stream.id.clone(),
            seller_id: stream.seller_id.clone(),
            from,
            to,
            at,
        });
        if let Err(e) = self.inner.events.publish(&[event]).await {
            tracing::error!(error = %e, stream = id, "StreamStatusChanged not published");
        }
        Ok(stream)
    }

    // ---------------------------------------------------------------- offers

    pub async fn product_for_offer(&self, product_id: &str) -> Result<Product> {
        livecache_cache::keys::validate_part(product_id)?;
        self.inner.store.get_product(product_id).await?.ok_or_else(|| ServiceError::NotFound {
            code: "product_not_found",
            message: format!("product {product_id} not found"),
        })
    }

    /// Validates and stores an offer, then tracks it in the expiry index.
    /// The buyer is the caller. A different `buyer_id` in the request is refused (403
    /// `buyer_mismatch`), not silently replaced, so a client bug cannot place an offer it did
    /// not mean; nobody offers on their own product (403 `own_product`).
    pub async fn create_offer(&self, new: NewOffer) -> Result<Offer> {
        if new.buyer_id.as_deref().is_some_and(|b| b != new.caller) {
            return Err(ServiceError::Forbidden {
                code: "buyer_mismatch",
                message: "buyer_id must be the signed-in caller (or left out)".into(),
            });
        }
        livecache_cache::keys::validate_part(&new.caller)?;
        // Amounts are kept in cents: anything that rounds to less than one cent is no offer.
        if !new.amount.is_finite() || new.amount < 0.01 || new.amount > 1e9 {
            return Err(ServiceError::invalid("invalid_amount", "amount must be from 0.01 to 1000000000"));
        }
        let product = self.product_for_offer(&new.product_id).await?;
        if product.seller_id == new.caller {
            return Err(ServiceError::Forbidden {
                code: "own_product",
                message: "a seller cannot make an offer on their own product".into(),
            });
        }
        let now = time::now();
        let expires_at = expiry_time(new.expiry, now)?;
        let offer = Offer {
            id: format!("offer-{:016x}", rand::random::<u64>()),
            product_id: product.id.clone(),
            buyer_id: new.caller,
            seller_id: product.seller_id.clone(),
            amount: (new.amount * 100.0).round() / 100.0,
            currency: product.currency.clone(),
            status: OfferStatus::Pending,
            created_at: now,
            expires_at,
        };
        self.inner.store.create_offer(&offer).await?;
        self.track_expiry(&offer).await;
        Ok(offer)
    }

    async fn track_expiry(&self, offer: &Offer) {
        let index = offer_index_key(&self.inner.cache);
        if let Err(e) = self.inner.backend.schedule(&index, &offer.id, offer.expires_at.timestamp_millis() as u64).await
        {
            tracing::error!(error = %e, offer = %offer.id, "offer not tracked in the expiry index");
        }
    }

    /// An offer, for its buyer or seller only: anyone else is told it does not exist.
    pub async fn offer_for(&self, id: &str, caller: &str) -> Result<Offer> {
        let offer = self.offer(id).await?;
        if offer.buyer_id != caller && offer.seller_id != caller {
            return Err(ServiceError::NotFound { code: "offer_not_found", message: format!("offer {id} not found") });
        }
        Ok(offer)
    }

    pub async fn offer(&self, id: &str) -> Result<Offer> {
        livecache_cache::keys::validate_part(id)?;
        self.inner
            .store
            .get_offer(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound { code: "offer_not_found", message: format!("offer {id} not found") })
    }

    /// Moves a pending offer's expiry (from now, or to a time).
    /// Only the offer's buyer may (403 `not_offer_buyer`).
    pub async fn extend_offer(&self, id: &str, expiry: Expiry, caller: &str) -> Result<Offer> {
        if self.offer(id).await?.buyer_id != caller {
            return Err(ServiceError::Forbidden {
                code: "not_offer_buyer",
                message: "only the offer's buyer may extend it".into(),
            });
        }
        let now = time::now();
        let expires_at = expiry_time(expiry, now)?;
        // Refused (409) once the offer is due, even if the expiry job has not run yet.
        let offer = self.inner.store.extend_offer(id, expires_at, now).await?;
        self.track_expiry(&offer).await;
        Ok(offer)
    }

    /// The caller's pending offers (as buyer or seller) expiring within `window`, soonest first.
    /// Read from the Redis index; an index that has lost its contents (a flush, a restart
    /// without persistence, a failover) is rebuilt from DynamoDB first.
    pub async fn expiring_soon(&self, caller: &str, window: Duration) -> Result<Vec<Offer>> {
        let index = offer_index_key(&self.inner.cache);
        if !matches!(self.inner.backend.get(&offer_index_built_key(&self.inner.cache)).await, Ok(Some(_))) {
            if let Err(e) = self.repair_expiry_index().await {
                tracing::warn!(error = %e, "expiry index not rebuilt");
            }
        }
        let now = time::now().timestamp_millis() as u64;
        let due = self.inner.backend.due_within(&index, now, window, 500).await?;
        let ids: Vec<String> = due.into_iter().map(|(id, _)| id).collect();
        let offers = self.inner.store.get_offers(&ids).await?;
        let mut out: Vec<Offer> = offers
            .into_iter()
            .flatten()
            .filter(|o| o.status == OfferStatus::Pending && (o.buyer_id == caller || o.seller_id == caller))
            .collect();
        out.sort_by(|a, b| a.expires_at.cmp(&b.expires_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Rebuilds the Redis expiry index from DynamoDB's due-offer index (every PENDING offer),
    /// then marks it complete; returns how many offers it holds. Run when the mark is missing
    /// and by the nightly cleanup. An entry it adds for an offer settled meanwhile is harmless
    /// (readers check the status) and pruned by the next cleanup.
    pub async fn repair_expiry_index(&self) -> Result<usize> {
        let horizon = time::now() + chrono::Duration::minutes(MAX_OFFER_MINUTES as i64 + 24 * 60);
        let pending: Vec<(String, u64)> = self
            .inner
            .store
            .offers_due_by(horizon, usize::MAX)
            .await?
            .into_iter()
            .filter(|o| o.status == OfferStatus::Pending)
            .map(|o| (o.id, o.expires_at.timestamp_millis() as u64))
            .collect();
        let index = offer_index_key(&self.inner.cache);
        for chunk in pending.chunks(500) {
            self.inner.backend.schedule_many(&index, chunk).await?;
        }
        self.inner.backend.set(&offer_index_built_key(&self.inner.cache), b"1", None).await?;
        tracing::info!(offers = pending.len(), "expiry index rebuilt from the due-offer index");
        Ok(pending.len())
    }

    // ---------------------------------------------------------------- admin and stats

    pub async fn cache_stats(&self) -> Result<CacheStatsAnswer> {
        let cache = &self.inner.cache;
        if let Err(e) = cache.flush_stats().await {
            tracing::warn!(error = %e, "stats flush failed");
        }
        let aggregate = cache.aggregate_stats().await.unwrap_or_else(|_| cache.report());
        let discover = cache.count(NS_FEED_DISCOVER, 1_000_000).await.unwrap_or(0);
        let community = cache.count(NS_FEED_COMMUNITY, 1_000_000).await.unwrap_or(0);
        Ok(CacheStatsAnswer { aggregate, instance: cache.report(), feed_entries: FeedEntries { discover, community } })
    }

    /// [`cache_stats`](Self::cache_stats) and the cache server's figures (admins only).
    pub async fn cache_stats_details(&self) -> Result<CacheStatsDetails> {
        let stats = self.cache_stats().await?;
        let backend =
            self.inner.cache.server_info().await.map_err(|e| ServiceError::Unavailable(format!("cache: {e}")))?;
        Ok(CacheStatsDetails { stats, backend })
    }

    pub async fn job_runs(&self) -> Result<Vec<JobRun>> {
        Ok(self.inner.store.job_runs(&JOBS).await?)
    }

    pub async fn invalidate_namespace(&self, ns: &str) -> Result<Invalidated> {
        if !NAMESPACES.contains(&ns) {
            return Err(ServiceError::invalid(
                "unknown_namespace",
                format!("namespace must be one of {}", NAMESPACES.join(", ")),
            ));
        }
        let generation = self.inner.cache.invalidate_namespace(ns).await?;
        Ok(Invalidated::Namespace { namespace: ns.into(), generation })
    }

    /// `pattern` is `<namespace>:<glob>` (glob with `*` and `?`).
    pub async fn invalidate_pattern(&self, pattern: &str) -> Result<Invalidated> {
        let (ns, tail) = pattern.split_once(':').ok_or_else(|| {
            ServiceError::invalid("invalid_pattern", "pattern must look like <namespace>:<glob>, e.g. products:prod-0*")
        })?;
        if !NAMESPACES.contains(&ns) {
            return Err(ServiceError::invalid(
                "unknown_namespace",
                format!("namespace must be one of {}", NAMESPACES.join(", ")),
            ));
        }
        let deleted = match self.inner.cache.invalidate_pattern(ns, tail).await {
            Ok(n) => n,
            Err(livecache_cache::CacheError::InvalidKey { part, reason }) => {
                return Err(ServiceError::invalid("invalid_pattern", format!("{part:?}: {reason}")))
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Invalidated::Pattern { pattern: pattern.into(), deleted })
    }

    pub async fn bump_version(&self) -> Result<Invalidated> {
        Ok(Invalidated::Version { version: self.inner.cache.bump_version().await? })
    }

    /// Loads the first `pages` pages of the popular feeds (discover, both sorts, 20 per page)
    /// that are not cached.
    pub async fn warm(&self, pages: u32) -> Result<WarmReport> {
        let mut items = Vec::new();
        for sort in [FeedSort::LiveFirst, FeedSort::Newest] {
            for page in 1..=pages {
                let q = DiscoverQuery { page: PageRequest { page, per_page: 20 }, category: None, sort };
                let key = discover_key(&self.inner.cache, &q)?;
                let store = self.inner.store.clone();
                items.push((key, async move { store.discover(&q).await }));
            }
        }
        Ok(self.inner.cache.warm(items, &feed_policy()).await)
    }
}

/// Loaded values as the raw JSON the batch answers are made of.
fn raw_all<T: Serialize>(found: Vec<Option<T>>) -> Result<Vec<Option<Box<RawValue>>>, StoreError> {
    found
        .into_iter()
        .map(|v| v.map(|v| serde_json::value::to_raw_value(&v)).transpose())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn expiry_time(expiry: Expiry, now: Timestamp) -> Result<Timestamp> {
    let at = match expiry {
        Expiry::InMinutes(m) if (1..=MAX_OFFER_MINUTES).contains(&m) => {
            time::from_millis(now.timestamp_millis() + m as i64 * 60_000)
        }
        Expiry::InMinutes(_) => {
            return Err(ServiceError::invalid(
                "invalid_expiry",
                format!("expires_in_minutes must be 1 to {MAX_OFFER_MINUTES}"),
            ))
        }
        Expiry::At(at) => at,
    };
    let horizon = now.timestamp_millis() + MAX_OFFER_MINUTES as i64 * 60_000;
    if at <= now || at.timestamp_millis() > horizon {
        return Err(ServiceError::invalid(
            "invalid_expiry",
            "expires_at must be in the future and at most 7 days away",
        ));
    }
    Ok(at)
}
