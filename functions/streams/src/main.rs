//! The `streams` Lambda function (API Gateway HTTP API, payload 2.0):
//!
//! * `POST /api/v1/streams/{id}/go-live`
//! * `POST /api/v1/streams/{id}/end`
//! * `GET /api/v1/streams/live`
//!
//! Clients are built once per cold start; handlers live in `livecache-http`.

#[tokio::main]
async fn main() -> Result<(), livecache_http::lambda::Error> {
    livecache_http::lambda::run("streams").await
}
