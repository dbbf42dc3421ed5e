//! view-sync: write-behind of view counts, exactly once.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

#[cfg(feature = "fault-injection")]
use super::Fault;
use super::{recorded, Deadline, Job, JobError};
use crate::services::{BatchId, Marketplace, ViewKind};

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

/// Write-behind of view counts: each drain moves every shard's pending counters aside (RENAME
/// in the shard's slot) under one batch id, applies their sum with exactly-once chunks, then
/// deletes the moved batch. A shard lists the batch in its registry (a sorted set in the same
/// slot) before the move and drops it once the batch is applied, so the batches of a crashed
/// run — also one that crashed between shards — are found by reading the registries (one
/// command per shard) and finished first; no drain scans the keyspace.
#[derive(Debug, Clone)]
pub struct ViewSync {
    pub market: Marketplace,
    /// Where a test makes the drain fail (feature `fault-injection`).
    #[cfg(feature = "fault-injection")]
    pub fault: Option<Fault>,
}

impl ViewSync {
    pub fn new(market: Marketplace) -> Self {
        Self {
            market,
            #[cfg(feature = "fault-injection")]
            fault: None,
        }
    }

    /// One drain, with no deadline.
    pub async fn drain_once(&self) -> Result<ViewSyncReport, JobError> {
        self.drain(&Deadline::never()).await
    }

    /// One drain that starts no chunk once `deadline` leaves no budget; a batch it stops in is
    /// finished by the next drain.
    pub async fn drain(&self, deadline: &Deadline) -> Result<ViewSyncReport, JobError> {
        let mut report = ViewSyncReport { drains: 1, ..Default::default() };
        let views = self.market.views();
        // Finish batches left behind.
        for kind in ViewKind::ALL {
            for batch in views.left_behind(kind).await? {
                let r = self.apply_batch(kind, &batch, deadline).await?;
                if r.deferred == 0 {
                    report.recovered += 1;
                }
                report.add(&r);
            }
        }
        // Move what is pending now (every shard, under one batch id), then apply it.
        for kind in ViewKind::ALL {
            if !deadline.allows_work() {
                break;
            }
            let batch = BatchId::fresh();
            let mut moved = false;
            for shard in 0..views.shards() {
                #[cfg(feature = "fault-injection")]
                if self.fault == Some(Fault::BetweenShards) && shard == views.shards() / 2 {
                    return Err(JobError::Injected(Fault::BetweenShards));
                }
                moved |= views.move_shard(kind, shard, &batch).await?;
            }
            if !moved {
                continue;
            }
            #[cfg(feature = "fault-injection")]
            if self.fault == Some(Fault::AfterMove) {
                return Err(JobError::Injected(Fault::AfterMove));
            }
            report.add(&self.apply_batch(kind, &batch, deadline).await?);
        }
        Ok(report)
    }

    /// Applies one moved batch (chunk ids derive from the batch id, so a retry is recognised)
    /// and deletes it. Checks the deadline before each chunk: a batch it stops in stays where
    /// it is, reported as deferred, and is finished by the next drain.
    async fn apply_batch(
        &self,
        kind: ViewKind,
        batch: &BatchId,
        deadline: &Deadline,
    ) -> Result<ViewSyncReport, JobError> {
        let views = self.market.views();
        let deferred = ViewSyncReport { deferred: 1, ..Default::default() };
        if !deadline.allows_work() {
            return Ok(deferred);
        }
        let counts = views.counts(kind, batch).await?;
        let empty = BTreeMap::new();
        let (products, streams) = match kind {
            ViewKind::Products => (&counts, &empty),
            ViewKind::Streams => (&empty, &counts),
        };
        let chunk_batch = format!("{}-{}", kind.as_str(), batch.as_str());
        let mut out = crate::ports::store::ChunkOutcome::default();
        #[cfg_attr(not(feature = "fault-injection"), allow(unused_variables))]
        for (i, chunk) in crate::ports::store::view_chunks(&chunk_batch, products, streams).iter().enumerate() {
            #[cfg(feature = "fault-injection")]
            if self.fault == Some(Fault::BetweenChunks) && i == 1 {
                return Err(JobError::Injected(Fault::BetweenChunks));
            }
            if !deadline.allows_work() {
                return Ok(deferred);
            }
            // A write cut off by the deadline has an unknown outcome; its marker makes the
            // retry by the next drain count it once.
            let Some(done) = deadline.bounded(self.market.store().views.apply_view_chunk(chunk)).await else {
                return Ok(deferred);
            };
            let done = done?;
            out.products += done.products;
            out.streams += done.streams;
        }
        #[cfg(feature = "fault-injection")]
        if self.fault == Some(Fault::AfterWrite) {
            return Err(JobError::Injected(Fault::AfterWrite));
        }
        views.forget(kind, batch).await?;
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
        let deadline = deadline.with_margin(margin);
        recorded(&self.market, Job::ViewSync, async {
            let mut total = ViewSyncReport::default();
            loop {
                total.add(&self.drain(&deadline).await?);
                if deadline.budget() < interval {
                    return Ok(total);
                }
                deadline.sleep(interval).await;
            }
        })
        .await
    }
}
