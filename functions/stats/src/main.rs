//! The `stats` Lambda function (API Gateway HTTP API, payload 2.0):
//!
//! * `GET /api/v1/cache/stats`
//! * `GET /api/v1/cache/jobs`
//! * `POST /api/v1/cache/invalidate (admin)`
//! * `POST /api/v1/cache/warm (admin)`
//!
//! Clients are built once per cold start; handlers live in `livecache-http`.

#[tokio::main]
async fn main() -> Result<(), livecache_http::lambda::Error> {
    livecache_http::lambda::run("stats").await
}
