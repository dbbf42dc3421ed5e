//! What an invocation leaves behind (refreshes, prefetches, view retries, the stats flush),
//! finished before its deadline: Lambda's timeout covers this phase, and work past it would
//! end the invocation in an error and reset the environment. The HTTP functions (after the
//! response) and the job functions (after the run) share it.

use std::future::Future;
use std::time::{Duration, Instant};

use livecache_cache::{DeferredTasks, Drained};

/// How long before the deadline the queued tasks are given up, leaving time for the flush.
pub const TASKS_MARGIN: Duration = Duration::from_millis(1000);

/// How long before the deadline the stats flush is given up.
pub const FLUSH_MARGIN: Duration = Duration::from_millis(400);

/// Runs `tasks` until [`TASKS_MARGIN`] before `deadline`, then `flush` until [`FLUSH_MARGIN`]
/// before it; what is given up is logged.
pub async fn finish_before<T, E: std::fmt::Display>(
    deadline: Instant,
    tasks: &DeferredTasks,
    flush: impl Future<Output = Result<T, E>>,
) -> Drained {
    let by = |margin: Duration| {
        let now = Instant::now();
        deadline.checked_sub(margin).unwrap_or(now).max(now)
    };
    let drained = tasks.run_until(by(TASKS_MARGIN)).await;
    if drained.abandoned > 0 {
        tracing::warn!(ran = drained.ran, abandoned = drained.abandoned, "work left behind given up at the deadline");
    }
    match tokio::time::timeout_at(by(FLUSH_MARGIN).into(), flush).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "stats flush failed"),
        Err(_) => tracing::warn!("stats flush given up at the deadline"),
    }
    drained
}
