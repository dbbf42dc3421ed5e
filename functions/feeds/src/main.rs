//! The `feeds` Lambda function (API Gateway HTTP API, payload 2.0):
//!
//! * `GET /api/v1/feeds/discover`
//! * `GET /api/v1/feeds/community`
//!
//! Clients are built once per cold start; handlers live in `livecache-http`.

#[tokio::main]
async fn main() -> Result<(), livecache_http::lambda::Error> {
    livecache_http::lambda::run("feeds").await
}
