//! Domain events, and the envelope EventBridge delivers them in.
//!
//! Every event is published with `source` = [`SOURCE`] and a `detail-type` naming its kind:
//!
//! | detail-type | detail | published by |
//! |---|---|---|
//! | `StreamStatusChanged` | `{stream_id, seller_id, from, to, at}` | the streams function on go-live / end (and other services) |
//! | `ProductUpdated` | `{product_id, seller_id?, fields?, at?}` | other services (the product catalogue) |
//! | `OfferExpired` | `{event_id, offer_id, product_id, buyer_id, expired_at}` | the offer-expiry job, at least once: `event_id` is the same on every delivery of one expiry, for consumers to deduplicate on |
//!
//! They are published through the [`EventPublisher`](crate::EventPublisher) port:
//! [`EventBridgePublisher`](crate::EventBridgePublisher) on AWS, the
//! [`InProcessBus`](crate::InProcessBus) in one process.

use serde::{Deserialize, Serialize};

use crate::model::error::EventError;
use crate::model::market::StreamStatus;
use crate::model::time::{self, Timestamp};

/// The `source` of events this project publishes.
pub const SOURCE: &str = "livecache.marketplace";
pub const STREAM_STATUS_CHANGED: &str = "StreamStatusChanged";
pub(crate) const PRODUCT_UPDATED: &str = "ProductUpdated";
pub const OFFER_EXPIRED: &str = "OfferExpired";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamStatusChanged {
    pub stream_id: String,
    pub seller_id: String,
    pub from: StreamStatus,
    pub to: StreamStatus,
    #[serde(with = "time::rfc3339_ms")]
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductUpdated {
    pub product_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seller_id: Option<String>,
    /// Which fields changed, when the publisher says.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    #[serde(default, with = "time::rfc3339_ms_opt", skip_serializing_if = "Option::is_none")]
    pub at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OfferExpired {
    /// `offer-expired:{offer_id}`: stable across redeliveries.
    #[serde(default)]
    pub event_id: String,
    pub offer_id: String,
    pub product_id: String,
    pub buyer_id: String,
    #[serde(with = "time::rfc3339_ms")]
    pub expired_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DomainEvent {
    StreamStatusChanged(StreamStatusChanged),
    ProductUpdated(ProductUpdated),
    OfferExpired(OfferExpired),
}

impl OfferExpired {
    /// The event for an offer that has expired; the same offer always gives the same event.
    pub(crate) fn of(offer: &crate::model::market::Offer) -> Self {
        Self {
            event_id: format!("offer-expired:{}", offer.id),
            offer_id: offer.id.clone(),
            product_id: offer.product_id.clone(),
            buyer_id: offer.buyer_id.clone(),
            expired_at: offer.expires_at,
        }
    }
}

impl DomainEvent {
    pub(crate) fn detail_type(&self) -> &'static str {
        match self {
            Self::StreamStatusChanged(_) => STREAM_STATUS_CHANGED,
            Self::ProductUpdated(_) => PRODUCT_UPDATED,
            Self::OfferExpired(_) => OFFER_EXPIRED,
        }
    }

    pub(crate) fn detail(&self) -> Result<serde_json::Value, serde_json::Error> {
        match self {
            Self::StreamStatusChanged(e) => serde_json::to_value(e),
            Self::ProductUpdated(e) => serde_json::to_value(e),
            Self::OfferExpired(e) => serde_json::to_value(e),
        }
    }

    /// Reads an event from its detail-type and detail; unknown types and bad details are errors.
    pub fn parse(detail_type: &str, detail: &serde_json::Value) -> Result<Self, String> {
        let bad = |e: serde_json::Error| format!("{detail_type} detail: {e}");
        match detail_type {
            STREAM_STATUS_CHANGED => serde_json::from_value(detail.clone()).map(Self::StreamStatusChanged).map_err(bad),
            PRODUCT_UPDATED => serde_json::from_value(detail.clone()).map(Self::ProductUpdated).map_err(bad),
            OFFER_EXPIRED => serde_json::from_value(detail.clone()).map(Self::OfferExpired).map_err(bad),
            other => Err(format!("unknown detail-type {other:?}")),
        }
    }
}

/// An event as EventBridge delivers it to a target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub version: String,
    pub id: String,
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    pub source: String,
    /// Always sent by EventBridge; absent from what moto delivers, so not required on reading.
    #[serde(default)]
    pub account: String,
    pub time: String,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub resources: Vec<String>,
    pub detail: serde_json::Value,
}

impl Envelope {
    /// The envelope EventBridge would deliver for `event` published by this project, as the
    /// in-process bus hands it over (account and region are placeholders: the event never
    /// leaves the process).
    pub(crate) fn wrap(event: &DomainEvent) -> Result<Self, EventError> {
        Ok(Self {
            version: "0".into(),
            id: format!("{:032x}", rand::random::<u128>()),
            detail_type: event.detail_type().into(),
            source: SOURCE.into(),
            account: "000000000000".into(),
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            region: "local".into(),
            resources: Vec::new(),
            detail: event.detail()?,
        })
    }

    pub fn event(&self) -> Result<DomainEvent, String> {
        DomainEvent::parse(&self.detail_type, &self.detail)
    }
}
