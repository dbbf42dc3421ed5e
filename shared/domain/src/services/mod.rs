//! The cache-aware services: what every endpoint does, over the cache engine, the Store and the
//! EventPublisher. Handlers parse and call these; nothing here knows HTTP or Lambda.

pub mod keys;

mod admin;
mod error;
mod feeds;
mod offer_index;
mod offers;
mod products;
mod shards;
mod stale;
mod streams;
mod users;
mod verify;
mod views;

pub use admin::{
    CacheStatsAnswer, CacheStatsDetails, FeedEntries, Invalidated, JobStatus, HOT_SLOTS, STATS_ANSWER_TTL,
};
pub use error::{Result, ServiceError};
pub use feeds::{RawPage, MAX_FEED_DEPTH};
pub use keys::UserTtls;
pub use offer_index::OfferIndex;
pub use offers::{Expiry, NewOffer};
pub use products::{BatchAnswer, ProductViews};
pub use stale::Stale;
pub use streams::REINVALIDATE_AFTER_TRANSITION;
pub use users::{Achievements, AchievementsSummary, FullProfile, LeaderEntry, PublicProfile, UsersWarmed};
pub use verify::{VerifyCounts, VerifyReport};
pub(crate) use views::BatchId;
pub use views::{ViewKind, ViewLedger};

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use livecache_cache::{Cache, LoadError, Served, ServerInfo, StatsReport, TaskRunner, WarmReport};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::model::error::StoreError;
use crate::model::events::{DomainEvent, StreamStatusChanged};
use crate::model::id::Id;
use crate::model::market::{JobRun, Offer, OfferStatus, Product, Stream, StreamStatus};
use crate::model::time::{self, Timestamp};
use crate::ports::events::EventPublisher;
use crate::ports::store::{
    CommunityQuery, DiscoverQuery, FeedPage, FeedSort, FeedStore, JobLog, OfferStore, PageRequest, ProductStore, Store,
    StreamStore, UserStore, ViewChunk, ViewStore,
};
use keys::*;

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
    fn from_lookup(value: T, served: Served) -> Self {
        Self { value, cached: served != Served::Loaded, stale: matches!(served, Served::Stale | Served::FailSafe) }
    }
}

/// The source of truth, port by port: each service and job uses only the ports of its area.
pub(crate) struct Ports {
    /// The adapter's name (`"dynamodb"`, `"memory"`).
    pub(crate) kind: &'static str,
    /// Whether a change log invalidates after every committed write ([`Store::changes_logged`]).
    pub(crate) changes_logged: bool,
    pub(crate) products: Arc<dyn ProductStore>,
    pub(crate) feeds: Arc<dyn FeedStore>,
    pub(crate) streams: Arc<dyn StreamStore>,
    pub(crate) offers: Arc<dyn OfferStore>,
    pub(crate) views: Arc<dyn ViewStore>,
    pub(crate) users: Arc<dyn UserStore>,
    pub(crate) jobs: Arc<dyn JobLog>,
}

impl Ports {
    fn of(store: Arc<dyn Store>) -> Self {
        Self {
            kind: store.kind(),
            changes_logged: store.changes_logged(),
            products: store.clone(),
            feeds: store.clone(),
            streams: store.clone(),
            offers: store.clone(),
            views: store.clone(),
            users: store.clone(),
            jobs: store,
        }
    }
}

struct Inner {
    /// Next pages this instance checked (or prefetched) recently, and when (cache clock, ms).
    prefetched: std::sync::Mutex<std::collections::HashMap<String, u64>>,
    cache: Cache,
    store: Ports,
    events: Arc<dyn EventPublisher>,
    tasks: Arc<dyn TaskRunner>,
    views: ViewLedger,
    offer_index: OfferIndex,
    /// Views whose increment got no answer and were retried, and those never answered (see
    /// `count_view`).
    views_retried: std::sync::atomic::AtomicU64,
    views_unconfirmed: std::sync::atomic::AtomicU64,
    /// The last statistics answer and when (cache clock, ms) it was made.
    stats_answer: std::sync::Mutex<Option<(u64, CacheStatsAnswer)>>,
    user_ttls: UserTtls,
    verifier: verify::Verifier,
}

/// Every operation of the API. Cheap to clone.
#[derive(Clone)]
pub struct Marketplace {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Marketplace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Marketplace").field("store", &self.inner.store.kind).finish()
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
        Self {
            inner: Arc::new(Inner {
                prefetched: Default::default(),
                views: ViewLedger::new(&cache),
                offer_index: OfferIndex::new(&cache),
                cache,
                store: Ports::of(store),
                events,
                tasks,
                views_retried: Default::default(),
                views_unconfirmed: Default::default(),
                stats_answer: Default::default(),
                user_ttls: UserTtls::default(),
                verifier: Default::default(),
            }),
        }
    }

    /// With these lifetimes for user data (call before cloning it).
    pub fn with_user_ttls(mut self, ttls: UserTtls) -> Self {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.user_ttls = ttls,
            None => tracing::error!("user TTLs set on a shared Marketplace: ignored"),
        }
        self
    }

    /// Adds this instance's cache statistics to the shared aggregate (after a response, and
    /// at the end of a job run).
    pub async fn flush_stats(&self) -> std::result::Result<(), livecache_cache::CacheError> {
        self.inner.cache.flush_stats().await
    }

    /// [`flush_stats`](Self::flush_stats) at most once per `every` (on the cache's clock); the
    /// first call starts the period. Whether it flushed.
    pub async fn flush_stats_every(&self, every: Duration) -> std::result::Result<bool, livecache_cache::CacheError> {
        self.inner.cache.flush_stats_every(every).await
    }

    /// This instance's cache statistics (for the per-invocation metrics).
    pub fn cache_report(&self) -> StatsReport {
        self.inner.cache.report()
    }

    /// How often the cache backend's circuit breaker has opened since start-up.
    pub fn circuit_trips(&self) -> u64 {
        self.inner.cache.backend().circuit_trips()
    }

    pub(crate) fn cache(&self) -> &Cache {
        &self.inner.cache
    }

    /// The view counters.
    pub(crate) fn views(&self) -> &ViewLedger {
        &self.inner.views
    }

    /// The Redis expiry index of pending offers.
    pub(crate) fn offer_index(&self) -> &OfferIndex {
        &self.inner.offer_index
    }

    pub(crate) fn store(&self) -> &Ports {
        &self.inner.store
    }

    pub(crate) fn events(&self) -> &Arc<dyn EventPublisher> {
        &self.inner.events
    }
}
