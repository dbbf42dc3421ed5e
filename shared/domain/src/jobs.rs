//! The scheduled and event-driven jobs. The Lambda functions under `functions/` and the dev
//! server's in-process scheduler both run these; each run leaves a [`JobRun`] record.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::Serialize;

use crate::error::StoreError;
use crate::events::{DomainEvent, Envelope, OfferExpired};
use crate::models::{JobRun, Offer, OfferStatus};
use crate::services::keys::*;
use crate::services::Marketplace;
use crate::store::ExpireOutcome;
use crate::time;

pub const VIEW_SYNC: &str = "view-sync";
pub const OFFER_EXPIRY: &str = "offer-expiry";
pub const CACHE_CLEANUP: &str = "cache-cleanup";

/// Why a job run failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("cache: {0}")]
    Cache(#[from] livecache_cache::CacheError),
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Service(#[from] crate::services::ServiceError),
    /// A fault injected by a test.
    #[error("injected fault at {0:?}")]
    Injected(Fault),
    #[error("{0}")]
    BadEvent(String),
}

/// Where a test may make view-sync fail, to prove recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The pending counters were moved aside; nothing applied.
    AfterMove,
    /// The first chunk of the batch was written to DynamoDB, the others not.
    BetweenChunks,
    /// Applied to DynamoDB; the moved batch not deleted yet.
    AfterWrite,
}

/// Records a run of `job` that started at `started`.
async fn record<T: Serialize>(
    m: &Marketplace,
    job: &str,
    started: time::Timestamp,
    t0: Instant,
    result: &Result<T, JobError>,
) {
    let (outcome, figures, error) = match result {
        Ok(r) => ("ok", serde_json::to_value(r).unwrap_or_default(), None),
        Err(e) => ("error", serde_json::Value::Null, Some(e.to_string())),
    };
    let run = JobRun {
        job: job.into(),
        started_at: started,
        finished_at: time::now(),
        duration_ms: t0.elapsed().as_millis() as u64,
        outcome: outcome.into(),
        figures,
        error,
    };
    if let Err(e) = m.store().record_job_run(&run).await {
        tracing::warn!(job, error = %e, "job run not recorded");
    }
    tracing::info!(target: "job", job, outcome, duration_ms = run.duration_ms, figures = %run.figures, error = run.error.as_deref().unwrap_or(""));
}

// ---------------------------------------------------------------- run time

/// The time a job run sees: the real clock, or one a test drives so that no assertion depends
/// on how fast the machine is.
pub trait RunClock: Send + Sync {
    fn now(&self) -> Instant;
    fn sleep(&self, d: Duration) -> futures::future::BoxFuture<'static, ()>;
}

/// Tokio's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealClock;

impl RunClock for RealClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&self, d: Duration) -> futures::future::BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(d))
    }
}

/// When a run must be finished (the Lambda deadline), and how much of the time before it is
/// kept in reserve: work starts only while more than `margin` is left, and nothing that was
/// started runs past the deadline itself.
#[derive(Clone)]
pub struct Deadline {
    at: Option<Instant>,
    margin: Duration,
    clock: Arc<dyn RunClock>,
}

impl std::fmt::Debug for Deadline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deadline").field("remaining", &self.remaining()).field("margin", &self.margin).finish()
    }
}

impl Deadline {
    /// `at` on the real clock, with no reserve.
    pub fn at(at: Instant) -> Self {
        Self::with_clock(at, Arc::new(RealClock))
    }

    /// `at` as read by `clock`.
    pub fn with_clock(at: Instant, clock: Arc<dyn RunClock>) -> Self {
        Self { at: Some(at), margin: Duration::ZERO, clock }
    }

    /// No deadline (a drain called directly).
    pub fn never() -> Self {
        Self { at: None, margin: Duration::ZERO, clock: Arc::new(RealClock) }
    }

    /// The same deadline with `margin` kept in reserve.
    pub fn with_margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }

    /// Time left before the deadline itself (`Duration::MAX` when there is none).
    pub fn remaining(&self) -> Duration {
        self.at.map_or(Duration::MAX, |at| at.saturating_duration_since(self.clock.now()))
    }

    /// Time left for starting new work: the remaining time less the reserve.
    pub fn budget(&self) -> Duration {
        self.remaining().saturating_sub(self.margin)
    }

    /// Whether new work may start.
    pub fn allows_work(&self) -> bool {
        !self.budget().is_zero()
    }

    pub async fn sleep(&self, d: Duration) {
        self.clock.sleep(d).await
    }

    /// Runs `work`, giving up when the deadline itself passes (`None`).
    async fn bounded<T>(&self, work: impl std::future::Future<Output = T>) -> Option<T> {
        match self.at {
            None => Some(work.await),
            Some(_) => tokio::time::timeout(self.remaining(), work).await.ok(),
        }
    }
}

// ---------------------------------------------------------------- view-sync

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ViewSyncReport {
    pub products_synced: usize,
    pub streams_synced: usize,
    pub total_views: i64,
    pub batches: usize,
    /// Batches left behind by an earlier, crashed run and finished by this one.
    pub recovered: usize,
    pub drains: usize,
    /// Batches left for the next run because the deadline came first (their applied chunks are
    /// recognised then, so stopping anywhere is safe).
    pub deferred: usize,
}

impl ViewSyncReport {
    fn add(&mut self, o: &Self) {
        self.products_synced += o.products_synced;
        self.streams_synced += o.streams_synced;
        self.total_views += o.total_views;
        self.batches += o.batches;
        self.recovered += o.recovered;
        self.drains += o.drains;
        self.deferred += o.deferred;
    }
}

/// Write-behind of view counts: each drain moves the pending counters aside (RENAME in the
/// `{views}` slot), applies them with exactly-once chunks, then deletes the moved batch.
/// Batches found at the start of a drain belong to a crashed run and are finished first.
#[derive(Debug, Clone)]
pub struct ViewSync {
    pub market: Marketplace,
    pub fault: Option<Fault>,
}

const KINDS: [&str; 2] = ["products", "streams"];

impl ViewSync {
    pub fn new(market: Marketplace) -> Self {
        Self { market, fault: None }
    }

    /// One drain, with no deadline.
    pub async fn drain_once(&self) -> Result<ViewSyncReport, JobError> {
        self.drain(&Deadline::never()).await
    }

    /// One drain that starts no chunk once `deadline` leaves no budget; a batch it stops in is
    /// finished by the next drain.
    pub async fn drain(&self, deadline: &Deadline) -> Result<ViewSyncReport, JobError> {
        let mut report = ViewSyncReport { drains: 1, ..Default::default() };
        let cache = self.market.cache();
        let backend = self.market.backend();
        // Finish batches left behind.
        for kind in KINDS {
            let pattern = views_batch_pattern(cache, kind)?;
            for key in backend.scan(&pattern, 10_000).await? {
                let r = self.apply_batch(kind, &key, deadline).await?;
                if r.deferred == 0 {
                    report.recovered += 1;
                }
                report.add(&r);
            }
        }
        // Move what is pending now, then apply it.
        for kind in KINDS {
            if !deadline.allows_work() {
                break;
            }
            let batch_id = format!("{}-{:08x}", time::now().timestamp_millis(), rand::random::<u32>());
            let batch = views_batch_key(cache, kind, &batch_id)?;
            if !backend.move_to(&pending_views_key(cache, kind), &batch).await? {
                continue;
            }
            if self.fault == Some(Fault::AfterMove) {
                return Err(JobError::Injected(Fault::AfterMove));
            }
            report.add(&self.apply_batch(kind, &batch, deadline).await?);
        }
        Ok(report)
    }

    /// Applies one moved batch (chunk ids derive from the batch key, so a retry is recognised)
    /// and deletes it. Checks the deadline before each chunk: a batch it stops in stays where
    /// it is, reported as deferred, and is finished by the next drain.
    async fn apply_batch(&self, kind: &str, batch_key: &str, deadline: &Deadline) -> Result<ViewSyncReport, JobError> {
        let backend = self.market.backend();
        let deferred = ViewSyncReport { deferred: 1, ..Default::default() };
        if !deadline.allows_work() {
            return Ok(deferred);
        }
        let counts: BTreeMap<String, i64> = backend.fields(batch_key).await?.into_iter().collect();
        let batch_id = batch_key.rsplit(':').next().unwrap_or(batch_key).to_string();
        let empty = BTreeMap::new();
        let (products, streams) = if kind == "products" { (&counts, &empty) } else { (&empty, &counts) };
        let chunk_batch = format!("{kind}-{batch_id}");
        let mut out = crate::store::ChunkOutcome::default();
        for (i, chunk) in crate::store::view_chunks(&chunk_batch, products, streams).iter().enumerate() {
            if self.fault == Some(Fault::BetweenChunks) && i == 1 {
                return Err(JobError::Injected(Fault::BetweenChunks));
            }
            if !deadline.allows_work() {
                return Ok(deferred);
            }
            // A write cut off by the deadline has an unknown outcome; its marker makes the
            // retry by the next drain count it once.
            let Some(done) = deadline.bounded(self.market.store().apply_view_chunk(chunk)).await else {
                return Ok(deferred);
            };
            let done = done?;
            out.products += done.products;
            out.streams += done.streams;
        }
        if self.fault == Some(Fault::AfterWrite) {
            return Err(JobError::Injected(Fault::AfterWrite));
        }
        backend.delete(&[batch_key.to_string()]).await?;
        Ok(ViewSyncReport {
            products_synced: out.products,
            streams_synced: out.streams,
            total_views: counts.values().sum(),
            batches: 1,
            ..Default::default()
        })
    }

    /// Drains every `interval` while more than `interval + margin` is left before `deadline`
    /// (a once-a-minute schedule syncing every few seconds), then records the run. Inside a
    /// drain no chunk starts with less than `margin` left, and none runs past the deadline.
    pub async fn run(
        &self,
        deadline: Deadline,
        interval: Duration,
        margin: Duration,
    ) -> Result<ViewSyncReport, JobError> {
        let (started, t0) = (time::now(), Instant::now());
        let deadline = deadline.with_margin(margin);
        let result = async {
            let mut total = ViewSyncReport::default();
            loop {
                total.add(&self.drain(&deadline).await?);
                if deadline.budget() < interval {
                    return Ok(total);
                }
                deadline.sleep(interval).await;
            }
        }
        .await;
        record(&self.market, VIEW_SYNC, started, t0, &result).await;
        result
    }
}

// ---------------------------------------------------------------- offer-expiry

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OfferExpiryReport {
    /// Due offers read from the due-offer index.
    pub processed: usize,
    /// Marked EXPIRED by this run.
    pub updated: usize,
    /// OfferExpired published (for offers expired by this run or by one whose publishing failed).
    pub announced: usize,
    /// Extended between being read as due and the conditional write: left PENDING.
    pub not_due: usize,
    /// Settled otherwise (accepted, rejected, …) or gone: taken out of the index.
    pub orphans: usize,
    pub errors: usize,
    /// Expired but not announced (publishing failed): the next run publishes them.
    pub unannounced: usize,
}

/// Expires due offers, reading them from DynamoDB's due-offer index (not from Redis, which may
/// have lost them): each marked EXPIRED only if still PENDING and due (16 at a time); then
/// OfferExpired published for every expired offer not yet announced, with a stable event id;
/// only once that succeeded does the offer leave the due index (and the Redis index). A run
/// that fails to publish leaves them for the next: at least once.
pub async fn expire_offers(m: &Marketplace, deadline: Instant) -> Result<OfferExpiryReport, JobError> {
    let (started, t0) = (time::now(), Instant::now());
    let result = expire_offers_inner(m, deadline).await;
    record(m, OFFER_EXPIRY, started, t0, &result).await;
    result
}

async fn expire_offers_inner(m: &Marketplace, deadline: Instant) -> Result<OfferExpiryReport, JobError> {
    let index = offer_index_key(m.cache());
    let now = time::now();
    let mut report = OfferExpiryReport::default();
    // Offers this run could not finish: they stay due for the next run and are not read again.
    let mut stuck: HashSet<String> = HashSet::new();
    while Instant::now() < deadline {
        let due = m.store().offers_due_by(now, 500 + stuck.len()).await?;
        let page: Vec<Offer> = due.into_iter().filter(|o| !stuck.contains(&o.id)).collect();
        if page.is_empty() {
            break;
        }
        report.processed += page.len();
        let outcomes: Vec<(Offer, Result<ExpireOutcome, StoreError>)> = futures::stream::iter(page)
            .map(|o| async move {
                let r = match o.status {
                    OfferStatus::Pending => m.store().expire_offer(&o.id, now).await,
                    // Expired by an earlier run whose OfferExpired did not go out.
                    OfferStatus::Expired => Ok(ExpireOutcome::NotPending(OfferStatus::Expired)),
                    other => Ok(ExpireOutcome::NotPending(other)),
                };
                (o, r)
            })
            .buffer_unordered(16)
            .collect()
            .await;
        let (mut to_announce, mut retire) = (Vec::new(), Vec::new());
        for (offer, outcome) in outcomes {
            match outcome {
                Ok(ExpireOutcome::Expired(o)) => {
                    report.updated += 1;
                    to_announce.push(o);
                }
                Ok(ExpireOutcome::NotPending(OfferStatus::Expired)) => to_announce.push(offer),
                Ok(ExpireOutcome::NotPending(_)) | Ok(ExpireOutcome::Missing) => {
                    report.orphans += 1;
                    retire.push(offer.id);
                }
                Ok(ExpireOutcome::NotDue(_)) => report.not_due += 1,
                Err(e) => {
                    tracing::warn!(offer = %offer.id, error = %e, "offer not expired; left for the next run");
                    report.errors += 1;
                    stuck.insert(offer.id);
                }
            }
        }
        let events: Vec<DomainEvent> =
            to_announce.iter().map(|o| DomainEvent::OfferExpired(OfferExpired::of(o))).collect();
        let mut published = 0;
        for (batch, offers) in events.chunks(100).zip(to_announce.chunks(100)) {
            match m.events().publish(batch).await {
                Ok(()) => {
                    published += batch.len();
                    retire.extend(offers.iter().map(|o| o.id.clone()));
                }
                Err(e) => {
                    tracing::error!(error = %e, offers = offers.len(), "OfferExpired not published; the next run retries");
                    report.unannounced += offers.len();
                    stuck.extend(offers.iter().map(|o| o.id.clone()));
                }
            }
        }
        report.announced += published;
        // Out of the due index only after the event is out; then out of the Redis index.
        let retired: Vec<(String, Result<(), StoreError>)> = futures::stream::iter(retire)
            .map(|id| async move {
                let r = m.store().offer_announced(&id).await;
                (id, r)
            })
            .buffer_unordered(16)
            .collect()
            .await;
        let mut done = Vec::with_capacity(retired.len());
        for (id, r) in retired {
            match r {
                Ok(()) => done.push(id),
                Err(e) => {
                    tracing::warn!(offer = %id, error = %e, "announced offer left in the due index; the next run retires it");
                    report.errors += 1;
                    stuck.insert(id);
                }
            }
        }
        if let Err(e) = m.backend().remove(&index, &done).await {
            tracing::warn!(error = %e, "expiry index not updated; the nightly repair prunes it");
        }
    }
    Ok(report)
}

// ---------------------------------------------------------------- cache-cleanup

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CleanupReport {
    pub scanned: usize,
    /// Keys that can never be served: no TTL, other key version, old epoch or generation.
    pub deleted_expired: usize,
    /// Expiry-index entries whose offer is gone or settled.
    pub deleted_orphans: usize,
    /// PENDING offers in the rebuilt expiry index (rebuilt from DynamoDB every night, so that
    /// entries Redis lost come back).
    pub reindexed: usize,
    pub memory_before: u64,
    pub memory_after: u64,
}

/// The nightly sweep (SCAN on every node, never KEYS) plus pruning the expiry index.
pub async fn cleanup(m: &Marketplace) -> Result<CleanupReport, JobError> {
    let (started, t0) = (time::now(), Instant::now());
    let result = async {
        let memory_before = m.cache().server_info().await?.used_memory;
        let swept = m.cache().sweep(&[NS_VIEWS, NS_OFFERS]).await?;
        let reindexed = m.repair_expiry_index().await?;
        let index = offer_index_key(m.cache());
        let mut orphans = Vec::new();
        let everything = m.backend().due(&index, u64::MAX, usize::MAX).await?;
        for chunk in everything.chunks(100) {
            let ids: Vec<String> = chunk.iter().map(|(id, _)| id.clone()).collect();
            let offers = m.store().get_offers(&ids).await?;
            for (id, offer) in ids.into_iter().zip(offers) {
                if offer.is_none_or(|o| o.status != crate::models::OfferStatus::Pending) {
                    orphans.push(id);
                }
            }
        }
        m.backend().remove(&index, &orphans).await?;
        let memory_after = m.cache().server_info().await?.used_memory;
        Ok(CleanupReport {
            scanned: swept.scanned,
            deleted_expired: swept.deleted(),
            deleted_orphans: orphans.len(),
            reindexed,
            memory_before,
            memory_after,
        })
    }
    .await;
    record(m, CACHE_CLEANUP, started, t0, &result).await;
    result
}

// ---------------------------------------------------------------- cache-events

/// What an incoming event invalidated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventOutcome {
    pub detail_type: String,
    pub invalidated: Vec<String>,
}

/// Invalidates what a ProductUpdated or StreamStatusChanged event touches. A malformed or
/// unknown event is an error the caller logs and drops (never retried for ever).
pub async fn apply_event(m: &Marketplace, event: &serde_json::Value) -> Result<EventOutcome, JobError> {
    let envelope: Envelope = serde_json::from_value(event.clone())
        .map_err(|e| JobError::BadEvent(format!("not an EventBridge event: {e}")))?;
    let parsed = envelope.event().map_err(JobError::BadEvent)?;
    let cache = m.cache();
    let mut invalidated = Vec::new();
    match parsed {
        DomainEvent::ProductUpdated(p) => {
            livecache_cache::keys::validate_part(&p.product_id).map_err(|e| JobError::BadEvent(e.to_string()))?;
            cache.invalidate(&product_key(cache, &p.product_id)?).await?;
            invalidated.push(format!("{NS_PRODUCTS}:{}", p.product_id));
            for ns in [NS_FEED_DISCOVER, NS_FEED_COMMUNITY] {
                cache.invalidate_namespace(ns).await?;
                invalidated.push(ns.into());
            }
        }
        DomainEvent::StreamStatusChanged(_) => {
            for ns in [NS_FEED_DISCOVER, NS_FEED_COMMUNITY, NS_LIVE] {
                cache.invalidate_namespace(ns).await?;
                invalidated.push(ns.into());
            }
        }
        DomainEvent::OfferExpired(_) => {
            return Err(JobError::BadEvent("OfferExpired is not an event this function handles".into()));
        }
    }
    Ok(EventOutcome { detail_type: envelope.detail_type, invalidated })
}
