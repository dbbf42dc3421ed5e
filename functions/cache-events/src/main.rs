//! The `cache-events` Lambda function. Invalidates what ProductUpdated and StreamStatusChanged events touch (EventBridge rule).
//!
//! Clients are built once per cold start; the job lives in `livecache-domain::jobs`.

use livecache_runtime::jobs::{run, Job};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    run(Job::CacheEvents).await
}
