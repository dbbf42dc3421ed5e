//! The `cache-cleanup` Lambda function. Nightly sweep of the cache: scheduled cron(0 3 * * ? *).
//!
//! Clients are built once per cold start; the job lives in `livecache-domain::jobs`.

use livecache_runtime::jobs::{run, Job};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    run(Job::CacheCleanup).await
}
