//! The scheduled and event-driven jobs. The Lambda functions under `functions/` and the dev
//! server's in-process scheduler both run these; each run leaves a [`JobRun`] record.
//!
//! Files: this one holds the job names ([`Job`]), the error type and the one run wrapper that
//! times and records every run; `deadline` the time budget of a run; `view_sync`,
//! `offer_expiry`, `cleanup`, `cache_events` and `change_log` one job each.

use std::time::Instant;

use serde::Serialize;

use crate::model::error::StoreError;
use crate::model::market::{JobOutcome, JobRun};
use crate::model::time;
use crate::services::Marketplace;

mod cache_events;
mod change_log;
mod cleanup;
mod deadline;
mod offer_expiry;
mod view_sync;

pub use crate::model::schedule::{Job, Schedule};
pub use cache_events::{apply_event, EventOutcome};
pub use change_log::{
    apply_changes, changes_of_event, sequences_of_event, stale, Change, ChangeOutcome, ChangedTable, Image,
};
pub use cleanup::{cleanup, CleanupReport};
pub use deadline::{Deadline, RunClock};
pub use offer_expiry::{expire_offers, OfferExpiryReport};
pub use view_sync::{ViewSync, ViewSyncReport};

/// Why a job run failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("cache: {0}")]
    Cache(#[from] livecache_cache::CacheError),
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Service(#[from] crate::services::ServiceError),
    /// A fault injected by a test (feature `fault-injection`, never in a function's build).
    #[cfg(feature = "fault-injection")]
    #[error("injected fault at {0:?}")]
    Injected(Fault),
    #[error("{0}")]
    BadEvent(String),
}

/// Where a test may make view-sync fail, to prove recovery.
#[cfg(feature = "fault-injection")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The pending counters were moved aside; nothing applied.
    AfterMove,
    /// Half the shards' pending counters were moved aside, the others not.
    BetweenShards,
    /// The first chunk of the batch was written to DynamoDB, the others not.
    BetweenChunks,
    /// Applied to DynamoDB; the moved batch not deleted yet.
    AfterWrite,
}

/// The one run wrapper: runs `work`, then records the run of `job` (start, duration, outcome,
/// figures or error) and logs it.
pub(crate) async fn recorded<T: Serialize>(
    m: &Marketplace,
    job: Job,
    work: impl std::future::Future<Output = Result<T, JobError>>,
) -> Result<T, JobError> {
    let (started, t0) = (time::now(), Instant::now());
    let result = work.await;
    record(m, job.name(), started, t0, &result).await;
    result
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
        Ok(r) => (JobOutcome::Ok, serde_json::to_value(r).unwrap_or_default(), None),
        Err(e) => (JobOutcome::Error, serde_json::Value::Null, Some(e.to_string())),
    };
    let run = JobRun {
        job: job.into(),
        started_at: started,
        finished_at: time::now(),
        duration_ms: t0.elapsed().as_millis() as u64,
        outcome,
        figures,
        error,
    };
    if let Err(e) = m.store().jobs.record_job_run(&run).await {
        tracing::warn!(job, error = %e, "job run not recorded");
    }
    tracing::info!(target: "job", job, outcome = outcome.as_str(), duration_ms = run.duration_ms, figures = %run.figures, error = run.error.as_deref().unwrap_or(""));
}
