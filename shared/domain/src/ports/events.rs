//! How events leave a service: the [`EventPublisher`] port, and [`EventHandler`] for what
//! subscribes in the same process.

use async_trait::async_trait;

use crate::model::error::EventError;
use crate::model::events::{DomainEvent, Envelope};

#[async_trait]
pub trait EventPublisher: Send + Sync + 'static {
    /// Publishes every event or says how many were not accepted.
    async fn publish(&self, events: &[DomainEvent]) -> Result<(), EventError>;
}

/// Receives events routed in-process.
#[async_trait]
pub trait EventHandler: Send + Sync + 'static {
    async fn handle(&self, envelope: &Envelope);
}
