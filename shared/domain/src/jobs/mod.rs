//! The scheduled and event-driven jobs. The Lambda functions under `functions/` and the dev
//! server's in-process scheduler both run these; each run leaves a [`JobRun`] record.
//!
//! Rooms: this file holds the job names ([`Job`]), the error type and the one run wrapper that
//! times and records every run; `deadline` the time budget of a run; `view_sync`,
//! `offer_expiry`, `cleanup` and `cache_events` one job each.

use std::time::Instant;

use serde::Serialize;

use crate::error::StoreError;
use crate::models::JobRun;
use crate::services::Marketplace;
use crate::time;

mod cache_events;
mod cleanup;
mod deadline;
mod offer_expiry;
mod view_sync;

use crate::time::Timestamp;

pub use cache_events::{apply_event, EventOutcome};
pub use cleanup::{cleanup, CleanupReport};
pub use deadline::{Deadline, RealClock, RunClock};
pub use offer_expiry::{expire_offers, OfferExpiryReport};
pub use view_sync::{ViewSync, ViewSyncReport};

/// When a scheduled job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Every period (whole minutes).
    Every(std::time::Duration),
    /// Every day at this time (UTC).
    DailyAt { hour: u32, minute: u32 },
}

impl Schedule {
    /// The EventBridge schedule expression.
    pub fn expression(&self) -> String {
        match self {
            Schedule::Every(d) if d.as_secs() == 60 => "rate(1 minute)".into(),
            Schedule::Every(d) => format!("rate({} minutes)", d.as_secs() / 60),
            Schedule::DailyAt { hour, minute } => format!("cron({minute} {hour} * * ? *)"),
        }
    }

    /// When the next run is due: a period after the last run started (now if that has
    /// passed or it never ran), or the next time of day after `now`.
    pub fn next_run(&self, last_started: Option<Timestamp>, now: Timestamp) -> Timestamp {
        match self {
            Schedule::Every(d) => {
                let period = chrono::Duration::from_std(*d).unwrap_or(chrono::Duration::MAX);
                last_started.map(|t| t + period).filter(|t| *t > now).unwrap_or(now)
            }
            Schedule::DailyAt { hour, minute } => {
                let today = now.date_naive().and_hms_opt(*hour, *minute, 0).unwrap_or_default().and_utc();
                if today > now {
                    today
                } else {
                    today + chrono::Duration::days(1)
                }
            }
        }
    }
}

/// Every job, named once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Job {
    ViewSync,
    OfferExpiry,
    CacheCleanup,
    CacheEvents,
}

impl Job {
    /// The scheduled jobs (whose runs `GET /api/v1/cache/jobs` shows).
    pub const SCHEDULED: [Job; 3] = [Job::ViewSync, Job::OfferExpiry, Job::CacheCleanup];

    /// When it runs (None: on events, not on a schedule). `template.yaml` declares the same
    /// (a test compares).
    pub fn schedule(&self) -> Option<Schedule> {
        match self {
            Job::ViewSync | Job::OfferExpiry => Some(Schedule::Every(std::time::Duration::from_secs(60))),
            Job::CacheCleanup => Some(Schedule::DailyAt { hour: 3, minute: 0 }),
            Job::CacheEvents => None,
        }
    }

    /// Its name: the function's, the run records', the metrics' dimension.
    pub fn name(&self) -> &'static str {
        match self {
            Job::ViewSync => "view-sync",
            Job::OfferExpiry => "offer-expiry",
            Job::CacheCleanup => "cache-cleanup",
            Job::CacheEvents => "cache-events",
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_runs_follow_the_schedules() {
        let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&chrono::Utc);
        let now = at("2026-11-21T17:10:30Z");
        let every = Job::ViewSync.schedule().unwrap();
        assert_eq!(every.expression(), "rate(1 minute)");
        assert_eq!(every.next_run(Some(at("2026-11-21T17:10:00Z")), now), at("2026-11-21T17:11:00Z"));
        assert_eq!(every.next_run(Some(at("2026-11-21T17:00:00Z")), now), now, "overdue: now");
        assert_eq!(every.next_run(None, now), now);
        let nightly = Job::CacheCleanup.schedule().unwrap();
        assert_eq!(nightly.expression(), "cron(0 3 * * ? *)");
        assert_eq!(nightly.next_run(None, now), at("2026-11-22T03:00:00Z"));
        assert_eq!(nightly.next_run(None, at("2026-11-21T02:59:00Z")), at("2026-11-21T03:00:00Z"));
        assert!(Job::CacheEvents.schedule().is_none());
    }
}
