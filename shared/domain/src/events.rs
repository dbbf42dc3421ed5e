//! Domain events and the EventPublisher port.
//!
//! Every event is published with `source` = [`SOURCE`] and a `detail-type` naming its kind:
//!
//! | detail-type | detail | published by |
//! |---|---|---|
//! | `StreamStatusChanged` | `{stream_id, seller_id, from, to, at}` | the streams function on go-live / end (and other services) |
//! | `ProductUpdated` | `{product_id, seller_id?, fields?, at?}` | other services (the product catalogue) |
//! | `OfferExpired` | `{event_id, offer_id, product_id, buyer_id, expired_at}` | the offer-expiry job, at least once: `event_id` is the same on every delivery of one expiry, for consumers to deduplicate on |
//!
//! Adapters: [`EventBridgePublisher`] (PutEvents in batches of ≤ 10, failed entries retried,
//! then reported) and [`InProcessBus`] (routes to subscribers in the same process; the dev
//! server's bus).

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use serde::{Deserialize, Serialize};

use crate::error::EventError;
use crate::model::market::StreamStatus;
use crate::model::time::{self, Timestamp};

/// The `source` of events this project publishes.
pub const SOURCE: &str = "livecache.marketplace";
pub const STREAM_STATUS_CHANGED: &str = "StreamStatusChanged";
pub const PRODUCT_UPDATED: &str = "ProductUpdated";
pub const OFFER_EXPIRED: &str = "OfferExpired";
/// PutEvents takes at most this many entries.
pub const PUT_EVENTS_MAX: usize = 10;

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
    pub fn of(offer: &crate::model::market::Offer) -> Self {
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
    pub fn detail_type(&self) -> &'static str {
        match self {
            Self::StreamStatusChanged(_) => STREAM_STATUS_CHANGED,
            Self::ProductUpdated(_) => PRODUCT_UPDATED,
            Self::OfferExpired(_) => OFFER_EXPIRED,
        }
    }

    pub fn detail(&self) -> Result<serde_json::Value, serde_json::Error> {
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
    pub fn wrap(event: &DomainEvent) -> Result<Self, EventError> {
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

#[async_trait]
pub trait EventPublisher: Send + Sync + 'static {
    /// Publishes every event or says how many were not accepted.
    async fn publish(&self, events: &[DomainEvent]) -> Result<(), EventError>;
}

/// EventBridge: PutEvents in batches of 10; entries that fail are retried (3 attempts with
/// backoff), and what still fails is reported with the first error.
#[derive(Debug, Clone)]
pub struct EventBridgePublisher {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

impl EventBridgePublisher {
    pub fn new(client: aws_sdk_eventbridge::Client, bus: impl Into<String>) -> Self {
        Self { client, bus: bus.into() }
    }
}

#[async_trait]
impl EventPublisher for EventBridgePublisher {
    async fn publish(&self, events: &[DomainEvent]) -> Result<(), EventError> {
        let mut entries = Vec::with_capacity(events.len());
        for e in events {
            entries.push(
                PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus)
                    .source(SOURCE)
                    .detail_type(e.detail_type())
                    .detail(serde_json::to_string(&e.detail()?)?)
                    .build(),
            );
        }
        let total = entries.len();
        let mut failed_total = 0;
        let mut first_error = String::new();
        for batch in entries.chunks(PUT_EVENTS_MAX) {
            let mut pending: Vec<PutEventsRequestEntry> = batch.to_vec();
            for attempt in 0..3u32 {
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                }
                let out = match self.client.put_events().set_entries(Some(pending.clone())).send().await {
                    Ok(out) => out,
                    Err(e) => {
                        first_error = format!("{e:?}").chars().take(300).collect();
                        continue;
                    }
                };
                if out.failed_entry_count == 0 {
                    pending.clear();
                    break;
                }
                let results = out.entries.unwrap_or_default();
                let mut retry = Vec::new();
                for (entry, result) in pending.iter().zip(results.iter()) {
                    if let Some(code) = result.error_code() {
                        if first_error.is_empty() {
                            first_error = format!("{code}: {}", result.error_message().unwrap_or_default());
                        }
                        retry.push(entry.clone());
                    }
                }
                pending = retry;
                if pending.is_empty() {
                    break;
                }
            }
            failed_total += pending.len();
        }
        if failed_total > 0 {
            return Err(EventError::Rejected { failed: failed_total, total, first_error });
        }
        Ok(())
    }
}

/// Receives events routed in-process.
#[async_trait]
pub trait EventHandler: Send + Sync + 'static {
    async fn handle(&self, envelope: &Envelope);
}

/// Routes published events to the subscribers in this process, and remembers the last 1,000.
#[derive(Default)]
pub struct InProcessBus {
    handlers: RwLock<Vec<Arc<dyn EventHandler>>>,
    log: Mutex<Vec<Envelope>>,
}

impl std::fmt::Debug for InProcessBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessBus").field("published", &self.published().len()).finish()
    }
}

impl InProcessBus {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn subscribe(&self, handler: Arc<dyn EventHandler>) {
        self.handlers.write().unwrap_or_else(|p| p.into_inner()).push(handler);
    }

    /// What was published, oldest first.
    pub fn published(&self) -> Vec<Envelope> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[async_trait]
impl EventPublisher for InProcessBus {
    async fn publish(&self, events: &[DomainEvent]) -> Result<(), EventError> {
        let envelopes = events.iter().map(Envelope::wrap).collect::<Result<Vec<_>, _>>()?;
        {
            let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
            log.extend(envelopes.iter().cloned());
            let excess = log.len().saturating_sub(1000);
            log.drain(..excess);
        }
        let handlers: Vec<Arc<dyn EventHandler>> = self.handlers.read().unwrap_or_else(|p| p.into_inner()).clone();
        for envelope in &envelopes {
            for h in &handlers {
                h.handle(envelope).await;
            }
        }
        Ok(())
    }
}
