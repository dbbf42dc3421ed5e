//! The `view-sync` Lambda function. Write-behind of view counts: scheduled rate(1 minute), drains every VIEW_SYNC_INTERVAL_SECS inside the run.
//!
//! Clients are built once per cold start; the job lives in `livecache-domain::jobs`.

use livecache_runtime::jobs::{run, Job};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    run(Job::ViewSync).await
}
