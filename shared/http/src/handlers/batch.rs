//! `POST /batch/users` and `POST /batch/products`: many ids, one MGET, one read for the misses.

use http::StatusCode;
use livecache_domain::services::BatchAnswer;
use serde::Deserialize;
use serde_json::json;

use super::{body_of, Call, Result, MAX_BATCH};
use crate::api::{ApiError, ApiResponse};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchUsers {
    user_ids: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchProducts {
    product_ids: Vec<String>,
}

pub(super) async fn users(c: &Call<'_>) -> Result<ApiResponse> {
    let body: BatchUsers = body_of(c.req)?;
    Ok(answer("users", c.m.batch_users(&batch_ids(body.user_ids, "user_ids")?).await?))
}

pub(super) async fn products(c: &Call<'_>) -> Result<ApiResponse> {
    let body: BatchProducts = body_of(c.req)?;
    Ok(answer("products", c.m.batch_products(&batch_ids(body.product_ids, "product_ids")?).await?))
}

/// `{<items>: […], "missing": […], "hits": n, "misses": n}`.
fn answer(items: &str, a: BatchAnswer) -> ApiResponse {
    let mut body = serde_json::Map::new();
    body.insert(items.into(), json!(a.items));
    body.insert("missing".into(), json!(a.missing));
    body.insert("hits".into(), json!(a.hits));
    body.insert("misses".into(), json!(a.misses));
    ApiResponse::json(StatusCode::OK, &body)
}

fn batch_ids(ids: Vec<String>, field: &str) -> Result<Vec<String>> {
    if ids.is_empty() || ids.len() > MAX_BATCH {
        return Err(ApiError::bad_request("invalid_batch_size", format!("{field} must hold 1 to {MAX_BATCH} ids")));
    }
    Ok(ids)
}
