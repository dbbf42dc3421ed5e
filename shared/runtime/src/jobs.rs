//! Running a job on Lambda (`lambda_runtime`, triggered by EventBridge), and the dev server's
//! in-process schedule of the same jobs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lambda_runtime::{service_fn, LambdaEvent};
use livecache_cache::DeferredTasks;
pub use livecache_domain::jobs::Job;
use livecache_domain::jobs::{self, Deadline, JobError, Schedule, ViewSync};
use livecache_domain::services::Marketplace;
use livecache_domain::{Envelope, EventHandler, TableNames};
use serde_json::{json, Value};

use crate::config::JobSettings;
use crate::telemetry;

/// Time kept in reserve before the function's deadline.
pub const SAFETY_MARGIN: Duration = Duration::from_secs(8);

fn is_schedule(event: &Value) -> bool {
    event.get("source").and_then(Value::as_str) == Some("aws.events")
        && event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event")
}

/// Handles one invocation of `job` with `event`, to be done by `deadline`.
pub async fn handle(
    job: Job,
    market: &Marketplace,
    event: &Value,
    deadline: Instant,
    settings: &JobSettings,
) -> Result<Value, JobError> {
    if job.schedule().is_some() && !is_schedule(event) {
        return Err(JobError::BadEvent(format!(
            "{} expects an EventBridge scheduled event (source \"aws.events\", detail-type \"Scheduled Event\"); see events/jobs/",
            job.name()
        )));
    }
    Ok(match job {
        Job::ViewSync => to_json(
            &ViewSync::new(market.clone())
                .run(Deadline::at(deadline), settings.view_sync_interval, SAFETY_MARGIN)
                .await?,
        ),
        Job::OfferExpiry => {
            to_json(&jobs::expire_offers(market, &Deadline::at(deadline).with_margin(SAFETY_MARGIN)).await?)
        }
        Job::CacheCleanup => to_json(&jobs::cleanup(market, &Deadline::at(deadline).with_margin(SAFETY_MARGIN)).await?),
        Job::CacheEvents => match jobs::apply_event(market, event).await {
            Ok(outcome) => to_json(&outcome),
            // Dropped, not failed: a malformed event would fail again on every retry.
            Err(JobError::BadEvent(reason)) => {
                tracing::warn!(reason = %reason, event = %event, "malformed event dropped");
                json!({ "dropped": reason })
            }
            Err(e) => return Err(e),
        },
        Job::ChangeLog => {
            apply_change_log(market, event, &settings.tables, deadline.checked_sub(SAFETY_MARGIN).unwrap_or(deadline))
                .await
        }
    })
}

/// Applies a DynamoDB Streams batch, trying again while Redis does not answer, until `until`.
/// The answer is the event source's partial-batch response (`ReportBatchItemFailures`):
/// empty when applied; else the batch's first record, so Lambda delivers the batch again
/// (nothing is skipped, invalidations are idempotent).
async fn apply_change_log(market: &Marketplace, event: &Value, tables: &TableNames, until: Instant) -> Value {
    let changes = jobs::changes_of_event(event, tables);
    match jobs::apply_changes(market, &changes, Some(until)).await {
        Ok(outcome) => {
            tracing::info!(changes = outcome.changes, invalidated = ?outcome.invalidated, "change log applied");
            json!({ "batchItemFailures": [] })
        }
        Err(e) => {
            let first = jobs::sequences_of_event(event).into_iter().next();
            tracing::error!(error = %e, first = ?first, "change log not applied; the batch is delivered again");
            json!({ "batchItemFailures": first.map(|s| json!({ "itemIdentifier": s })).into_iter().collect::<Vec<_>>() })
        }
    }
}

/// Seconds between the event's `time` (the schedule's tick, or when the event was put) and now.
fn lag(event: &Value) -> Option<f64> {
    let at = chrono::DateTime::parse_from_rfc3339(event.get("time")?.as_str()?).ok()?;
    Some((chrono::Utc::now() - at.with_timezone(&chrono::Utc)).num_milliseconds().max(0) as f64 / 1000.0)
}

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or_default()
}

/// The entry point of every job function's `main`.
pub async fn run(job: Job) -> Result<(), lambda_runtime::Error> {
    let started = Instant::now();
    telemetry::init();
    let (config, deps, timings) = crate::init().await?;
    let tasks = Arc::new(DeferredTasks::new());
    let market = deps.market(tasks.clone());
    let settings = Arc::new(config.jobs);
    telemetry::log_init(job.name(), started, timings, None);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (market, tasks, settings) = (market.clone(), tasks.clone(), settings.clone());
        async move {
            let remaining =
                event.context.deadline().duration_since(std::time::SystemTime::now()).unwrap_or(Duration::ZERO);
            let started = Instant::now();
            let out = handle(job, &market, &event.payload, started + remaining, &settings).await;
            // A batch of changes handed back to be delivered again is a failed run too.
            let failed = match &out {
                Err(_) => true,
                Ok(answer) => answer["batchItemFailures"].as_array().is_some_and(|f| !f.is_empty()),
            };
            telemetry::emit_job(job.name(), failed, started.elapsed().as_millis() as u64, lag(&event.payload));
            // What the run left behind, and the stats flush, within the invocation's deadline.
            crate::after::finish_before(started + remaining, &tasks, market.flush_stats()).await;
            out.map_err(|e| lambda_runtime::Error::from(e.to_string()))
        }
    }))
    .await
}

/// Routes in-process events to cache-events (the dev server's stand-in for the EventBridge rule).
pub struct InProcessCacheEvents(pub Marketplace);

#[async_trait::async_trait]
impl EventHandler for InProcessCacheEvents {
    async fn handle(&self, envelope: &Envelope) {
        if envelope.detail_type == livecache_domain::events::OFFER_EXPIRED {
            return; // the rule only delivers ProductUpdated and StreamStatusChanged
        }
        let event = serde_json::to_value(envelope).unwrap_or_default();
        if let Err(e) = jobs::apply_event(&self.0, &event).await {
            tracing::warn!(error = %e, "in-process event not applied");
        }
    }
}

/// Runs the schedules in-process, on their cadence: view-sync every minute (draining every
/// `VIEW_SYNC_INTERVAL_SECS` inside), offer-expiry every minute, cache-cleanup daily at 03:00 UTC.
pub fn spawn_schedules(market: Marketplace, settings: JobSettings) -> Vec<tokio::task::JoinHandle<()>> {
    let settings = Arc::new(settings);
    let schedule = |period: Duration, first: Duration, job: Job, market: Marketplace| {
        let settings = settings.clone();
        tokio::spawn(async move {
            let settings = &*settings;
            tokio::time::sleep(first).await;
            loop {
                let started = Instant::now();
                let event = json!({ "source": "aws.events", "detail-type": "Scheduled Event", "detail": {} });
                if let Err(e) = handle(job, &market, &event, started + Duration::from_secs(60), settings).await {
                    tracing::warn!(job = job.name(), error = %e, "scheduled run failed");
                }
                tokio::time::sleep(period.saturating_sub(started.elapsed())).await;
            }
        })
    };
    // The jobs' own schedules: every period from now (the first runs a second apart), or the
    // next time of day and then daily.
    Job::SCHEDULED
        .iter()
        .enumerate()
        .filter_map(|(i, job)| {
            let (period, first) = match job.schedule()? {
                Schedule::Every(period) => (period, Duration::from_secs(i as u64)),
                daily @ Schedule::DailyAt { .. } => {
                    let now = chrono::Utc::now();
                    let first = (daily.next_run(None, now) - now).to_std().unwrap_or(Duration::from_secs(86_400));
                    (Duration::from_secs(86_400), first)
                }
            };
            Some(schedule(period, first, *job, market.clone()))
        })
        .collect()
}
