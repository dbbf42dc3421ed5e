//! `GET /products/{id}` and `GET /products/{id}/views`.

use http::StatusCode;
use serde::Serialize;

use super::{Call, Result};
use crate::api::ApiResponse;

#[derive(Serialize)]
struct ProductAnswer<'a> {
    product: &'a livecache_domain::Product,
    cached: bool,
    stale: bool,
}

pub(super) async fn product(c: &Call<'_>) -> Result<ApiResponse> {
    let p = c.m.product(&c.id()?).await?;
    let answer = ProductAnswer { product: &p.value, cached: p.cached, stale: p.stale };
    Ok(ApiResponse::json(StatusCode::OK, &answer).with_cache(p.cached, p.stale))
}

pub(super) async fn views(c: &Call<'_>) -> Result<ApiResponse> {
    Ok(ApiResponse::json(StatusCode::OK, &c.m.product_views(&c.id()?).await?))
}
