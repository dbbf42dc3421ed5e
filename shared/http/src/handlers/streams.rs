//! `POST /streams/{id}/go-live`, `POST /streams/{id}/end` and `GET /streams/live`.

use http::StatusCode;
use livecache_domain::StreamStatus;
use serde_json::json;

use super::{Call, Result};
use crate::api::ApiResponse;

/// Go-live (`to` = LIVE) or end (`to` = ENDED), by the stream's seller only.
pub(super) async fn transition(c: &Call<'_>, to: StreamStatus) -> Result<ApiResponse> {
    let stream = c.m.transition_stream(&c.id()?, to, c.caller()?).await?;
    Ok(ApiResponse::json(StatusCode::OK, &json!({ "stream": stream })))
}

pub(super) async fn live(c: &Call<'_>) -> Result<ApiResponse> {
    let live = c.m.live_streams().await?;
    Ok(ApiResponse::json(StatusCode::OK, &json!({ "streams": live.value, "cached": live.cached, "stale": live.stale }))
        .with_cache(live.cached, live.stale))
}
