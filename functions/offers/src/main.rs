//! The `offers` Lambda function (API Gateway HTTP API, payload 2.0):
//!
//! * `POST /api/v1/offers`
//! * `POST /api/v1/offers/{id}/extend`
//! * `GET /api/v1/offers/expiring-soon`
//!
//! Clients are built once per cold start; handlers live in `livecache-http`.

#[tokio::main]
async fn main() -> Result<(), livecache_http::lambda::Error> {
    livecache_http::lambda::run("offers").await
}
