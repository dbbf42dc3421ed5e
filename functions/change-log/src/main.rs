//! The `change-log` Lambda function. Invalidates what a committed change to a cached table
//! makes stale, from the tables' DynamoDB Streams (event source mappings in `template.yaml`).
//!
//! Clients are built once per cold start; the job lives in `livecache-domain::jobs`.

use livecache_runtime::jobs::{run, Job};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    run(Job::ChangeLog).await
}
