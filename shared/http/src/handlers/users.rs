//! `GET /users/{id}`, `GET|PATCH /users/me`, `GET /users/{id}/achievements`,
//! `GET /leaderboard` and `GET /achievements/recent`.

use http::StatusCode;
use serde_json::json;

use super::{body_of, Call, Result, DEFAULT_PER_PAGE, MAX_LEADERBOARD_LIMIT, MAX_LEADERBOARD_OFFSET, MAX_RECENT_LIMIT};
use crate::api::ApiResponse;

pub(super) async fn profile(c: &Call<'_>) -> Result<ApiResponse> {
    let p = c.m.user_profile(&c.id()?).await?;
    Ok(ApiResponse::json(StatusCode::OK, &json!({ "user": p.value, "cached": p.cached, "stale": p.stale }))
        .with_cache(p.cached, p.stale))
}

pub(super) async fn me(c: &Call<'_>) -> Result<ApiResponse> {
    let p = c.m.my_profile(c.caller()?).await?;
    Ok(ApiResponse::json(StatusCode::OK, &json!({ "user": p.value, "cached": p.cached, "stale": p.stale }))
        .with_cache(p.cached, p.stale))
}

pub(super) async fn update_me(c: &Call<'_>) -> Result<ApiResponse> {
    let patch: livecache_domain::users::ProfilePatch = body_of(c.req)?;
    let user = c.m.update_my_profile(c.caller()?, &patch).await?;
    Ok(ApiResponse::json(StatusCode::OK, &json!({ "user": user })))
}

pub(super) async fn achievements(c: &Call<'_>) -> Result<ApiResponse> {
    let a = c.m.achievements(&c.id()?).await?;
    let body = json!({ "user_id": a.value.user_id, "badges": a.value.badges, "summary": a.value.summary, "cached": a.cached, "stale": a.stale });
    Ok(ApiResponse::json(StatusCode::OK, &body).with_cache(a.cached, a.stale))
}

pub(super) async fn leaderboard(c: &Call<'_>) -> Result<ApiResponse> {
    let limit = c.query.integer("limit", 1, MAX_LEADERBOARD_LIMIT)?.unwrap_or(DEFAULT_PER_PAGE);
    let offset = c.query.integer("offset", 0, MAX_LEADERBOARD_OFFSET)?.unwrap_or(0);
    let board = c.m.leaderboard(offset as usize, limit as usize).await?;
    let body = json!({ "entries": board.value, "limit": limit, "offset": offset, "cached": board.cached, "stale": board.stale });
    Ok(ApiResponse::json(StatusCode::OK, &body).with_cache(board.cached, board.stale))
}

pub(super) async fn recent_achievements(c: &Call<'_>) -> Result<ApiResponse> {
    let limit = c.query.integer("limit", 1, MAX_RECENT_LIMIT)?.unwrap_or(DEFAULT_PER_PAGE);
    let recent = c.m.recent_achievements(limit as usize).await?;
    let body = json!({ "badges": recent.value, "limit": limit, "cached": recent.cached, "stale": recent.stale });
    Ok(ApiResponse::json(StatusCode::OK, &body).with_cache(recent.cached, recent.stale))
}
