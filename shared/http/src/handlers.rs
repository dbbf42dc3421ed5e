//! One thin handler per route: parse and validate, call the service, shape the answer.

use std::time::Duration;

use http::StatusCode;
use livecache_domain::services::{Expiry, Marketplace, NewOffer, RawPage, ServiceError};
use livecache_domain::{Category, CommunityQuery, Condition, DiscoverQuery, FeedSort, PageRequest, StreamStatus};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::api::{ApiError, ApiRequest, ApiResponse};
use crate::routes::{Route, RouteDef};

/// Largest page number served (bounds the work one request can ask of the database).
pub(crate) const MAX_PAGE: u32 = 50;
pub(crate) const MAX_PER_PAGE: u32 = 100;
pub(crate) const DEFAULT_PER_PAGE: u32 = 20;
pub(crate) const DEFAULT_RADIUS_KM: f64 = 5.0;
pub(crate) const MIN_RADIUS_KM: f64 = 1.0;
pub(crate) const MAX_RADIUS_KM: f64 = 50.0;
pub(crate) const MAX_BATCH: usize = 100;
pub(crate) const MAX_LEADERBOARD_LIMIT: u32 = 100;
/// Deepest leaderboard row served (bounds what one request reads).
pub(crate) const MAX_LEADERBOARD_OFFSET: u32 = 1000;
pub(crate) const MAX_RECENT_LIMIT: u32 = 50;

type Result<T> = std::result::Result<T, ApiError>;

pub(crate) async fn dispatch(
    m: &Marketplace,
    def: &RouteDef,
    params: &[(&'static str, String)],
    req: &ApiRequest,
) -> Result<ApiResponse> {
    let id = || params.iter().find(|(k, _)| *k == "id").map(|(_, v)| v.as_str()).unwrap_or_default();
    let q = Query(&req.query);
    match def.route {
        Route::Discover => {
            let query = DiscoverQuery {
                page: page_of(&q)?,
                category: q.parse::<Category>("category")?,
                sort: q.parse::<FeedSort>("sort")?.unwrap_or_default(),
            };
            let page = m.discover(query.clone()).await?;
            Ok(feed_response(&page.value, query.page, page.cached, page.stale))
        }
        Route::Community => {
            let min_price = q.number("min_price", 0.0, 1e9)?;
            let max_price = q.number("max_price", 0.0, 1e9)?;
            if let (Some(lo), Some(hi)) = (min_price, max_price) {
                if lo > hi {
                    return Err(ApiError::bad_request("invalid_price_range", "min_price must not exceed max_price"));
                }
            }
            let query = CommunityQuery {
                page: page_of(&q)?,
                lat: q.number("lat", -90.0, 90.0)?.ok_or_else(|| missing("lat"))?,
                lon: q.number("lon", -180.0, 180.0)?.ok_or_else(|| missing("lon"))?,
                radius_km: q.number("radius_km", MIN_RADIUS_KM, MAX_RADIUS_KM)?.unwrap_or(DEFAULT_RADIUS_KM),
                category: q.parse::<Category>("category")?,
                min_price,
                max_price,
                condition: q.parse::<Condition>("condition")?,
            };
            let page = m.community(query.clone()).await?;
            Ok(feed_response(&page.value, query.page, page.cached, page.stale))
        }
        Route::Product => {
            let p = m.product(id()).await?;
            let answer = ProductAnswer { product: &p.value, cached: p.cached, stale: p.stale };
            Ok(ApiResponse::json(StatusCode::OK, &answer).with_cache(p.cached, p.stale))
        }
        Route::ProductViews => Ok(ApiResponse::json(StatusCode::OK, &m.product_views(id()).await?)),
        Route::BatchUsers => {
            let body: BatchUsers = body_of(req)?;
            let answer = m.batch_users(&batch_ids(body.user_ids, "user_ids")?).await?;
            Ok(ApiResponse::json(
                StatusCode::OK,
                &json!({ "users": answer.items, "missing": answer.missing, "hits": answer.hits, "misses": answer.misses }),
            ))
        }
        Route::BatchProducts => {
            let body: BatchProducts = body_of(req)?;
            let answer = m.batch_products(&batch_ids(body.product_ids, "product_ids")?).await?;
            Ok(ApiResponse::json(
                StatusCode::OK,
                &json!({ "products": answer.items, "missing": answer.missing, "hits": answer.hits, "misses": answer.misses }),
            ))
        }
        Route::GoLive | Route::EndStream => {
            let to = if def.route == Route::GoLive { StreamStatus::Live } else { StreamStatus::Ended };
            let stream = m.transition_stream(id(), to, &caller(req)?).await?;
            Ok(ApiResponse::json(StatusCode::OK, &json!({ "stream": stream })))
        }
        Route::LiveStreams => {
            let live = m.live_streams().await?;
            Ok(ApiResponse::json(
                StatusCode::OK,
                &json!({ "streams": live.value, "cached": live.cached, "stale": live.stale }),
            )
            .with_cache(live.cached, live.stale))
        }
        Route::CreateOffer => {
            let body: CreateOffer = body_of(req)?;
            let expiry =
                expiry_of(body.expires_in_minutes, body.expires_at.as_deref())?.unwrap_or(Expiry::InMinutes(60));
            let new = NewOffer {
                product_id: body.product_id,
                caller: caller(req)?,
                buyer_id: body.buyer_id,
                amount: body.amount,
                expiry,
            };
            let offer = m.create_offer(new).await?;
            Ok(ApiResponse::json(StatusCode::CREATED, &json!({ "offer": offer })))
        }
        Route::GetOffer => {
            Ok(ApiResponse::json(StatusCode::OK, &json!({ "offer": m.offer_for(id(), &caller(req)?).await? })))
        }
        Route::ExtendOffer => {
            let body: ExtendOffer = body_of(req)?;
            let expiry = expiry_of(body.expires_in_minutes, body.expires_at.as_deref())?
                .ok_or_else(|| ApiError::bad_request("invalid_expiry", "give expires_in_minutes or expires_at"))?;
            let offer = m.extend_offer(id(), expiry, &caller(req)?).await?;
            Ok(ApiResponse::json(StatusCode::OK, &json!({ "offer": offer })))
        }
        Route::ExpiringSoon => {
            let minutes = q.integer("within_minutes", 1, 24 * 60)?.unwrap_or(5);
            let offers = m.expiring_soon(&caller(req)?, Duration::from_secs(minutes as u64 * 60)).await?;
            Ok(ApiResponse::json(StatusCode::OK, &json!({ "offers": offers, "within_minutes": minutes })))
        }
        Route::CacheStats => Ok(ApiResponse::json(StatusCode::OK, &m.cache_stats().await?)),
        Route::CacheStatsDetails => Ok(ApiResponse::json(StatusCode::OK, &m.cache_stats_details().await?)),
        // Schedule, next run, outcome, timing and figures for anyone; error text (it can name
        // AWS resources) only on the admin route.
        Route::CacheJobs => Ok(ApiResponse::json(StatusCode::OK, &json!({ "jobs": m.job_status(false).await? }))),
        Route::CacheJobsDetails => Ok(ApiResponse::json(StatusCode::OK, &json!({ "jobs": m.job_status(true).await? }))),
        Route::Invalidate => {
            let body: Invalidate = body_of(req)?;
            let done = match (body.namespace, body.pattern, body.version, body.user) {
                (Some(ns), None, None, None) => m.invalidate_namespace(&ns).await?,
                (None, Some(p), None, None) => m.invalidate_pattern(&p).await?,
                (None, None, Some(serde_json::Value::Bool(true)), None) => m.bump_version().await?,
                (None, None, Some(serde_json::Value::String(name)), None) => m.name_version(&name).await?,
                (None, None, None, Some(user)) => m.invalidate_user(&user).await?,
                _ => return Err(ApiError::bad_request(
                    "invalid_body",
                    "give exactly one of {\"namespace\": ..}, {\"pattern\": ..}, {\"user\": ..} or {\"version\": true | \"<new version name>\"}",
                )),
            };
            Ok(ApiResponse::json(StatusCode::OK, &json!({ "invalidated": done })))
        }
        Route::Warm => {
            let body: Warm = if req.body.is_empty() { Warm::default() } else { body_of(req)? };
            let pages = body.pages.unwrap_or(3);
            if !(1..=10).contains(&pages) {
                return Err(ApiError::bad_request("invalid_pages", "pages must be 1 to 10"));
            }
            let sellers = body.sellers.unwrap_or(20);
            if sellers > 100 {
                return Err(ApiError::bad_request("invalid_sellers", "sellers must be 0 to 100"));
            }
            let users = m.warm_users(pages, sellers as usize).await?;
            Ok(ApiResponse::json(
                StatusCode::OK,
                &json!({ "warm": m.warm(pages).await?, "pages": pages, "leaderboard": users.leaderboard, "profiles": users.profiles }),
            ))
        }
        Route::UserProfile => {
            let p = m.user_profile(id()).await?;
            Ok(ApiResponse::json(StatusCode::OK, &json!({ "user": p.value, "cached": p.cached, "stale": p.stale }))
                .with_cache(p.cached, p.stale))
        }
        Route::MyProfile => {
            let p = m.my_profile(&caller(req)?).await?;
            Ok(ApiResponse::json(StatusCode::OK, &json!({ "user": p.value, "cached": p.cached, "stale": p.stale }))
                .with_cache(p.cached, p.stale))
        }
        Route::UpdateMyProfile => {
            let patch: livecache_domain::users::ProfilePatch = body_of(req)?;
            let user = m.update_my_profile(&caller(req)?, &patch).await?;
            Ok(ApiResponse::json(StatusCode::OK, &json!({ "user": user })))
        }
        Route::UserAchievements => {
            let a = m.achievements(id()).await?;
            let body = json!({ "user_id": a.value.user_id, "badges": a.value.badges, "summary": a.value.summary, "cached": a.cached, "stale": a.stale });
            Ok(ApiResponse::json(StatusCode::OK, &body).with_cache(a.cached, a.stale))
        }
        Route::Leaderboard => {
            let limit = q.integer("limit", 1, MAX_LEADERBOARD_LIMIT)?.unwrap_or(DEFAULT_PER_PAGE);
            let offset = q.integer("offset", 0, MAX_LEADERBOARD_OFFSET)?.unwrap_or(0);
            let board = m.leaderboard(offset as usize, limit as usize).await?;
            let body = json!({ "entries": board.value, "limit": limit, "offset": offset, "cached": board.cached, "stale": board.stale });
            Ok(ApiResponse::json(StatusCode::OK, &body).with_cache(board.cached, board.stale))
        }
        Route::RecentAchievements => {
            let limit = q.integer("limit", 1, MAX_RECENT_LIMIT)?.unwrap_or(DEFAULT_PER_PAGE);
            let recent = m.recent_achievements(limit as usize).await?;
            let body =
                json!({ "badges": recent.value, "limit": limit, "cached": recent.cached, "stale": recent.stale });
            Ok(ApiResponse::json(StatusCode::OK, &body).with_cache(recent.cached, recent.stale))
        }
    }
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

#[derive(Serialize)]
struct ProductAnswer<'a> {
    product: &'a livecache_domain::Product,
    cached: bool,
    stale: bool,
}

/// The signed-in caller: the `sub` claim the JWT authorizer verified (API Gateway's
/// `requestContext.authorizer.jwt.claims`, or the dev server's emulation). Never a body field
/// or a header the client controls.
/// The signed-in caller's user id: the JWT authorizer's `sub` claim, made an id by
/// [`Id::from_subject`](livecache_domain::Id::from_subject) (any OIDC issuer's subjects).
pub(crate) fn caller(req: &ApiRequest) -> Result<String> {
    let sub = req.claims.as_ref().and_then(|c| c.get("sub")).and_then(|s| s.as_str()).filter(|s| !s.is_empty());
    let sub = sub.ok_or_else(|| {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "a signed-in caller (bearer JWT) is required")
    })?;
    let id = livecache_domain::Id::from_subject(sub).map_err(|_| {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "the token's subject is too long for a user id")
    })?;
    Ok(id.as_str().to_string())
}

fn missing(name: &str) -> ApiError {
    ApiError::bad_request("missing_parameter", format!("{name} is required"))
}

fn page_of(q: &Query<'_>) -> Result<PageRequest> {
    Ok(PageRequest {
        page: q.integer("page", 1, MAX_PAGE)?.unwrap_or(1),
        per_page: q.integer("per_page", 1, MAX_PER_PAGE)?.unwrap_or(DEFAULT_PER_PAGE),
    })
}

/// Query parameters (first value of each name wins).
struct Query<'a>(&'a [(String, String)]);

impl Query<'_> {
    /// The first value given for `name`; an empty one (`?page=`) is an error, not a default.
    fn get(&self, name: &str) -> Result<Option<&str>> {
        match self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()) {
            Some("") => Err(ApiError::bad_request("invalid_parameter", format!("{name} must not be empty"))),
            v => Ok(v),
        }
    }

    fn integer(&self, name: &str, min: u32, max: u32) -> Result<Option<u32>> {
        let Some(v) = self.get(name)? else { return Ok(None) };
        match v.parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(ApiError::bad_request(
                "invalid_parameter",
                format!("{name} must be a whole number from {min} to {max}"),
            )),
        }
    }

    fn number(&self, name: &str, min: f64, max: f64) -> Result<Option<f64>> {
        let Some(v) = self.get(name)? else { return Ok(None) };
        match v.parse::<f64>() {
            Ok(n) if n.is_finite() && (min..=max).contains(&n) => Ok(Some(n)),
            _ => {
                Err(ApiError::bad_request("invalid_parameter", format!("{name} must be a number from {min} to {max}")))
            }
        }
    }

    fn parse<T: std::str::FromStr<Err = String>>(&self, name: &str) -> Result<Option<T>> {
        self.get(name)?
            .map(|v| v.parse::<T>().map_err(|e| ApiError::bad_request("invalid_parameter", format!("{name}: {e}"))))
            .transpose()
    }
}

fn body_of<T: DeserializeOwned>(req: &ApiRequest) -> Result<T> {
    if req.body.is_empty() {
        return Err(ApiError::bad_request("invalid_body", "a JSON body is required"));
    }
    // Every body is a JSON object: serde would also read a struct from an array (`[]`).
    if req.body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::bad_request("invalid_body", "the body must be a JSON object"));
    }
    serde_json::from_slice(&req.body)
        .map_err(|e| ApiError::bad_request("invalid_body", format!("invalid JSON body: {e}")))
}

fn batch_ids(ids: Vec<String>, field: &str) -> Result<Vec<String>> {
    if ids.is_empty() || ids.len() > MAX_BATCH {
        return Err(ApiError::bad_request("invalid_batch_size", format!("{field} must hold 1 to {MAX_BATCH} ids")));
    }
    Ok(ids)
}

fn expiry_of(minutes: Option<u32>, at: Option<&str>) -> Result<Option<Expiry>> {
    match (minutes, at) {
        (Some(_), Some(_)) => {
            Err(ApiError::bad_request("invalid_expiry", "give expires_in_minutes or expires_at, not both"))
        }
        (Some(m), None) => Ok(Some(Expiry::InMinutes(m))),
        (None, Some(at)) => chrono::DateTime::parse_from_rfc3339(at)
            .map(|t| Some(Expiry::At(livecache_domain::time::truncate(t.with_timezone(&chrono::Utc)))))
            .map_err(|_| ApiError::bad_request("invalid_expiry", "expires_at must be an RFC 3339 timestamp")),
        (None, None) => Ok(None),
    }
}

/// An optional body field that, when given, must have its type: `null` is refused like any
/// other wrong type (the spec does not make these fields nullable).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> std::result::Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateOffer {
    product_id: String,
    #[serde(default, deserialize_with = "present")]
    buyer_id: Option<String>,
    amount: f64,
    #[serde(default, deserialize_with = "present")]
    expires_in_minutes: Option<u32>,
    #[serde(default, deserialize_with = "present")]
    expires_at: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtendOffer {
    #[serde(default, deserialize_with = "present")]
    expires_in_minutes: Option<u32>,
    #[serde(default, deserialize_with = "present")]
    expires_at: Option<String>,
}

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

impl From<livecache_cache::CacheError> for ApiError {
    fn from(e: livecache_cache::CacheError) -> Self {
        ServiceError::from(e).into()
    }
}
