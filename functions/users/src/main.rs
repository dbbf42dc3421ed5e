//! The `users` Lambda function (API Gateway HTTP API, payload 2.0):
//!
//! * `GET /api/v1/users/{id}`
//! * `GET /api/v1/users/me`, `PATCH /api/v1/users/me` (signed in)
//! * `GET /api/v1/users/{id}/achievements`
//! * `GET /api/v1/leaderboard`
//! * `GET /api/v1/achievements/recent`
//!
//! Clients are built once per cold start; handlers live in `livecache-http`.

#[tokio::main]
async fn main() -> Result<(), livecache_http::lambda::Error> {
    livecache_http::lambda::run("users").await
}
