//! The `push` Lambda function: on StreamStatusChanged and ProductUpdated (EventBridge rule),
//! posts `feed_refresh_required` to every subscribed WebSocket connection through the API
//! Gateway Management API, in parallel and bounded, and drops the connections that are gone.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    livecache_runtime::push::run_push().await
}
