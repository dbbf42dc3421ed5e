//! `GET /feeds/discover` and `GET /feeds/community`.

use http::StatusCode;
use livecache_domain::services::RawPage;
use livecache_domain::{Category, CommunityQuery, Condition, DiscoverQuery, FeedSort, PageRequest};

use super::{missing, page_of, Call, Result, DEFAULT_RADIUS_KM, MAX_RADIUS_KM, MIN_RADIUS_KM};
use crate::api::{ApiError, ApiResponse};

pub(super) async fn discover(c: &Call<'_>) -> Result<ApiResponse> {
    let q = &c.query;
    let query = DiscoverQuery {
        page: page_of(q)?,
        category: q.parse::<Category>("category")?,
        sort: q.parse::<FeedSort>("sort")?.unwrap_or_default(),
    };
    let page = c.m.discover(query.clone()).await?;
    Ok(feed_response(&page.value, query.page, page.cached, page.stale))
}

pub(super) async fn community(c: &Call<'_>) -> Result<ApiResponse> {
    let q = &c.query;
    let min_price = q.number("min_price", 0.0, 1e9)?;
    let max_price = q.number("max_price", 0.0, 1e9)?;
    if let (Some(lo), Some(hi)) = (min_price, max_price) {
        if lo > hi {
            return Err(ApiError::bad_request("invalid_price_range", "min_price must not exceed max_price"));
        }
    }
    let query = CommunityQuery {
        page: page_of(q)?,
        lat: q.number("lat", -90.0, 90.0)?.ok_or_else(|| missing("lat"))?,
        lon: q.number("lon", -180.0, 180.0)?.ok_or_else(|| missing("lon"))?,
        radius_km: q.number("radius_km", MIN_RADIUS_KM, MAX_RADIUS_KM)?.unwrap_or(DEFAULT_RADIUS_KM),
        category: q.parse::<Category>("category")?,
        min_price,
        max_price,
        condition: q.parse::<Condition>("condition")?,
    };
    let page = c.m.community(query.clone()).await?;
    Ok(feed_response(&page.value, query.page, page.cached, page.stale))
}

/// The page's own members (`has_more`, `items`) spliced as the cache holds them beside the
/// request's: no parse, no re-encoding of the items.
fn feed_response(page: &RawPage, req: PageRequest, cached: bool, stale: bool) -> ApiResponse {
    use std::io::Write;
    let members = page.members();
    let mut body = Vec::with_capacity(members.len() + 80);
    // Writing into a Vec cannot fail.
    let _ = write!(body, r#"{{"page":{},"per_page":{},"cached":{cached},"stale":{stale},"#, req.page, req.per_page);
    body.extend_from_slice(members);
    body.push(b'}');
    ApiResponse::json_bytes(StatusCode::OK, body).with_cache(cached, stale)
}
