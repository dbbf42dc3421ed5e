//! The `batch` Lambda function (API Gateway HTTP API, payload 2.0):
//!
//! * `POST /api/v1/batch/users`
//! * `POST /api/v1/batch/products`
//!
//! Clients are built once per cold start; handlers live in `livecache-http`.

#[tokio::main]
async fn main() -> Result<(), livecache_http::lambda::Error> {
    livecache_http::lambda::run("batch").await
}
