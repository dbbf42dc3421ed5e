//! `POST /offers`, `GET /offers/{id}`, `POST /offers/{id}/extend` and
//! `GET /offers/expiring-soon`: the caller's own offers only.

use std::time::Duration;

use http::StatusCode;
use livecache_domain::services::{Expiry, NewOffer};
use serde::Deserialize;
use serde_json::json;

use super::{body_of, id_of, present, Call, Result};
use crate::api::{ApiError, ApiResponse};

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

pub(super) async fn create(c: &Call<'_>) -> Result<ApiResponse> {
    let body: CreateOffer = body_of(c.req)?;
    let expiry = expiry_of(body.expires_in_minutes, body.expires_at.as_deref())?.unwrap_or(Expiry::InMinutes(60));
    let new = NewOffer {
        product_id: id_of(&body.product_id)?,
        caller: c.caller()?.clone(),
        buyer_id: body.buyer_id,
        amount: body.amount,
        expiry,
    };
    let offer = c.m.create_offer(new).await?;
    Ok(ApiResponse::json(StatusCode::CREATED, &json!({ "offer": offer })))
}

pub(super) async fn get(c: &Call<'_>) -> Result<ApiResponse> {
    Ok(ApiResponse::json(StatusCode::OK, &json!({ "offer": c.m.offer_for(&c.id()?, c.caller()?).await? })))
}

pub(super) async fn extend(c: &Call<'_>) -> Result<ApiResponse> {
    let body: ExtendOffer = body_of(c.req)?;
    let expiry = expiry_of(body.expires_in_minutes, body.expires_at.as_deref())?
        .ok_or_else(|| ApiError::bad_request("invalid_expiry", "give expires_in_minutes or expires_at"))?;
    let offer = c.m.extend_offer(&c.id()?, expiry, c.caller()?).await?;
    Ok(ApiResponse::json(StatusCode::OK, &json!({ "offer": offer })))
}

pub(super) async fn expiring_soon(c: &Call<'_>) -> Result<ApiResponse> {
    let minutes = c.query.integer("within_minutes", 1, 24 * 60)?.unwrap_or(5);
    let offers = c.m.expiring_soon(c.caller()?, Duration::from_secs(minutes as u64 * 60)).await?;
    Ok(ApiResponse::json(StatusCode::OK, &json!({ "offers": offers, "within_minutes": minutes })))
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
