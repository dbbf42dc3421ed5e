//! One thin handler per route, one file per area: parse and validate, call the service, shape
//! the answer. [`dispatch`] only picks the handler; the caller a `User` route needs was taken
//! once, by the access check, from the request's verified claims.

mod admin;
mod batch;
mod feeds;
mod offers;
mod products;
mod streams;
mod users;

use http::StatusCode;
use livecache_domain::services::{Marketplace, ServiceError};
use livecache_domain::{Id, PageRequest, StreamStatus};
use serde::de::DeserializeOwned;
use serde::Deserialize;

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

/// What a handler gets: the service, the request, its path parameters and query, and the
/// signed-in caller on `User` routes.
pub(crate) struct Call<'a> {
    m: &'a Marketplace,
    req: &'a ApiRequest,
    params: &'a [(&'static str, String)],
    query: Query<'a>,
    caller: Option<Id>,
}

impl Call<'_> {
    /// The `{id}` path parameter as an id (the router matched it, so it is there on the routes
    /// that have one): checked here, once, 400 `invalid_id` if it is none.
    fn id(&self) -> Result<Id> {
        id_of(self.params.iter().find(|(k, _)| *k == "id").map(|(_, v)| v.as_str()).unwrap_or_default())
    }

    /// The signed-in caller (taken by the access check of a `User` route).
    fn caller(&self) -> Result<&Id> {
        self.caller.as_ref().ok_or_else(unauthorized)
    }
}

pub(crate) async fn dispatch(
    m: &Marketplace,
    def: &RouteDef,
    params: &[(&'static str, String)],
    req: &ApiRequest,
    caller: Option<Id>,
) -> Result<ApiResponse> {
    let c = Call { m, req, params, query: Query(&req.query), caller };
    match def.route {
        Route::Discover => feeds::discover(&c).await,
        Route::Community => feeds::community(&c).await,
        Route::Product => products::product(&c).await,
        Route::ProductViews => products::views(&c).await,
        Route::BatchUsers => batch::users(&c).await,
        Route::BatchProducts => batch::products(&c).await,
        Route::GoLive => streams::transition(&c, StreamStatus::Live).await,
        Route::EndStream => streams::transition(&c, StreamStatus::Ended).await,
        Route::LiveStreams => streams::live(&c).await,
        Route::CreateOffer => offers::create(&c).await,
        Route::GetOffer => offers::get(&c).await,
        Route::ExtendOffer => offers::extend(&c).await,
        Route::ExpiringSoon => offers::expiring_soon(&c).await,
        Route::CacheStats => admin::stats(&c).await,
        Route::CacheStatsDetails => admin::stats_details(&c).await,
        Route::CacheJobs => admin::jobs(&c, false).await,
        Route::CacheJobsDetails => admin::jobs(&c, true).await,
        Route::Invalidate => admin::invalidate(&c).await,
        Route::Warm => admin::warm(&c).await,
        Route::UserProfile => users::profile(&c).await,
        Route::MyProfile => users::me(&c).await,
        Route::UpdateMyProfile => users::update_me(&c).await,
        Route::UserAchievements => users::achievements(&c).await,
        Route::Leaderboard => users::leaderboard(&c).await,
        Route::RecentAchievements => users::recent_achievements(&c).await,
    }
}

fn unauthorized() -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "a signed-in caller (bearer JWT) is required")
}

/// The signed-in caller's user id: the `sub` claim the JWT authorizer verified (API Gateway's
/// `requestContext.authorizer.jwt.claims`, or the dev server's emulation), made an id by
/// [`Id::from_subject`](livecache_domain::Id::from_subject) (any OIDC issuer's subjects).
/// Never a body field or a header the client controls.
pub(crate) fn caller(req: &ApiRequest) -> Result<Id> {
    let sub = req.claims.as_ref().and_then(|c| c.get("sub")).and_then(|s| s.as_str()).filter(|s| !s.is_empty());
    let sub = sub.ok_or_else(unauthorized)?;
    Id::from_subject(sub).map_err(|_| {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "the token's subject is too long for a user id")
    })
}

/// An id from the request (path or body), checked once here: 400 `invalid_id` if it is none.
fn id_of(text: &str) -> Result<Id> {
    Ok(Id::parse(text).map_err(ServiceError::from)?)
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

/// An optional body field that, when given, must have its type: `null` is refused like any
/// other wrong type (the spec does not make these fields nullable).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> std::result::Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

impl From<livecache_cache::CacheError> for ApiError {
    fn from(e: livecache_cache::CacheError) -> Self {
        ServiceError::from(e).into()
    }
}
