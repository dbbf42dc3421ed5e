//! The statistics and job routes (public and admin) and the admin `invalidate` and `warm`.

use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::{body_of, id_of, present, Call, Result};
use crate::api::{ApiError, ApiResponse};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Invalidate {
    #[serde(default, deserialize_with = "present")]
    namespace: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pattern: Option<String>,
    #[serde(default, deserialize_with = "present")]
    version: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "present")]
    user: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Warm {
    #[serde(default, deserialize_with = "present")]
    pages: Option<u32>,
    /// Profiles of the top sellers to warm.
    #[serde(default, deserialize_with = "present")]
    sellers: Option<u32>,
}

pub(super) async fn stats(c: &Call<'_>) -> Result<ApiResponse> {
    Ok(ApiResponse::json(StatusCode::OK, &c.m.cache_stats().await?))
}

pub(super) async fn stats_details(c: &Call<'_>) -> Result<ApiResponse> {
    Ok(ApiResponse::json(StatusCode::OK, &c.m.cache_stats_details().await?))
}

/// Schedule, next run, outcome, timing and figures for anyone; the error text (it can name AWS
/// resources) only `with_errors`, on the admin route.
pub(super) async fn jobs(c: &Call<'_>, with_errors: bool) -> Result<ApiResponse> {
    Ok(ApiResponse::json(StatusCode::OK, &json!({ "jobs": c.m.job_status(with_errors).await? })))
}

pub(super) async fn invalidate(c: &Call<'_>) -> Result<ApiResponse> {
    let body: Invalidate = body_of(c.req)?;
    let m = c.m;
    let done = match (body.namespace, body.pattern, body.version, body.user) {
        (Some(ns), None, None, None) => m.invalidate_namespace(&ns).await?,
        (None, Some(p), None, None) => m.invalidate_pattern(&p).await?,
        (None, None, Some(serde_json::Value::Bool(true)), None) => m.bump_version().await?,
        (None, None, Some(serde_json::Value::String(name)), None) => m.name_version(&name).await?,
        (None, None, None, Some(user)) => m.invalidate_user(&id_of(&user)?).await?,
        _ => {
            return Err(ApiError::bad_request(
                "invalid_body",
                "give exactly one of {\"namespace\": ..}, {\"pattern\": ..}, {\"user\": ..} or {\"version\": true | \"<new version name>\"}",
            ))
        }
    };
    Ok(ApiResponse::json(StatusCode::OK, &json!({ "invalidated": done })))
}

pub(super) async fn warm(c: &Call<'_>) -> Result<ApiResponse> {
    let body: Warm = if c.req.body.is_empty() { Warm::default() } else { body_of(c.req)? };
    let pages = body.pages.unwrap_or(3);
    if !(1..=10).contains(&pages) {
        return Err(ApiError::bad_request("invalid_pages", "pages must be 1 to 10"));
    }
    let sellers = body.sellers.unwrap_or(20);
    if sellers > 100 {
        return Err(ApiError::bad_request("invalid_sellers", "sellers must be 0 to 100"));
    }
    let users = c.m.warm_users(pages, sellers as usize).await?;
    Ok(ApiResponse::json(
        StatusCode::OK,
        &json!({ "warm": c.m.warm(pages).await?, "pages": pages, "leaderboard": users.leaderboard, "profiles": users.profiles }),
    ))
}
