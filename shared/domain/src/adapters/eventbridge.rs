//! The [`EventPublisher`] on AWS: EventBridge PutEvents.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use crate::model::error::EventError;
use crate::model::events::{DomainEvent, SOURCE};
use crate::ports::events::EventPublisher;

/// PutEvents takes at most this many entries.
pub(crate) const PUT_EVENTS_MAX: usize = 10;

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
