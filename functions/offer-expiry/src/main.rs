//! The `offer-expiry` Lambda function. Expires due offers: scheduled rate(1 minute).
//!
//! Clients are built once per cold start; the job lives in `livecache-domain::jobs`.

use livecache_runtime::jobs::{run, Job};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    run(Job::OfferExpiry).await
}
