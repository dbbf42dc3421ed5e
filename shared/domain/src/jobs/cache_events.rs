//! cache-events: what a ProductUpdated or StreamStatusChanged event invalidates, and the
//! badges a stream's seller earned by it.

use serde::Serialize;

use super::JobError;
use crate::model::events::{DomainEvent, Envelope};
use crate::services::keys::*;
use crate::services::Marketplace;

/// What an incoming event invalidated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventOutcome {
    pub detail_type: String,
    pub invalidated: Vec<String>,
    /// Badges awarded on this event (`{user}:{code}`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub awarded: Vec<String>,
}

/// Invalidates what a ProductUpdated or StreamStatusChanged event touches. A malformed or
/// unknown event is an error the caller logs and drops (never retried for ever).
pub async fn apply_event(m: &Marketplace, event: &serde_json::Value) -> Result<EventOutcome, JobError> {
    let envelope: Envelope = serde_json::from_value(event.clone())
        .map_err(|e| JobError::BadEvent(format!("not an EventBridge event: {e}")))?;
    let parsed = envelope.event().map_err(JobError::BadEvent)?;
    let cache = m.cache();
    let mut invalidated = Vec::new();
    let mut awarded = Vec::new();
    match parsed {
        DomainEvent::ProductUpdated(p) => {
            crate::Id::parse(&p.product_id).map_err(|e| JobError::BadEvent(e.to_string()))?;
            cache.invalidate(&product_key(cache, &p.product_id)?).await?;
            invalidated.push(format!("{NS_PRODUCTS}:{}", p.product_id));
            for ns in [NS_FEED_DISCOVER, NS_FEED_COMMUNITY] {
                cache.invalidate_namespace(ns).await?;
                invalidated.push(ns.into());
            }
        }
        DomainEvent::StreamStatusChanged(e) => {
            let seller = crate::Id::parse(&e.seller_id).map_err(|e| JobError::BadEvent(e.to_string()))?;
            for ns in [NS_FEED_DISCOVER, NS_FEED_COMMUNITY, NS_LIVE] {
                cache.invalidate_namespace(ns).await?;
                invalidated.push(ns.into());
            }
            // A stream hosted (and the views it brought) can earn the seller badges.
            let badges = m.award_badges(&seller).await?;
            awarded.extend(badges.iter().map(|b| format!("{}:{}", b.user_id, b.code)));
        }
        DomainEvent::OfferExpired(_) => {
            return Err(JobError::BadEvent("OfferExpired is not an event this function handles".into()));
        }
    }
    Ok(EventOutcome { detail_type: envelope.detail_type, invalidated, awarded })
}
