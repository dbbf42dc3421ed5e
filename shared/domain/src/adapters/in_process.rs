//! The [`EventPublisher`] in one process (memory data, the dev server): events go to the
//! subscribers here, in envelopes shaped as EventBridge delivers them.

use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;

use crate::model::error::EventError;
use crate::model::events::{DomainEvent, Envelope};
use crate::ports::events::{EventHandler, EventPublisher};

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
