//! What the refresh push needs from outside: where connections are kept, and how bytes reach
//! one.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::model::error::Result;
use crate::model::time::{self, Timestamp};

/// How long a connection is kept without being seen: API Gateway closes a WebSocket after
/// two hours at most, so a record older than that is a connection whose `$disconnect` was lost.
pub(crate) const CONNECTION_TTL: Duration = Duration::from_secs(2 * 3600);

/// One WebSocket connection and the feeds it listens to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    pub id: String,
    pub feeds: Vec<String>,
    #[serde(with = "time::rfc3339_ms")]
    pub connected_at: Timestamp,
}

/// Where connections are kept (DynamoDB with a TTL on AWS; memory for tests).
#[async_trait]
pub trait Connections: Send + Sync {
    /// Keeps `c` for `CONNECTION_TTL`.
    async fn connect(&self, c: &Connection) -> Result<()>;
    /// Sets the feeds of a known connection; false if it is unknown.
    async fn subscribe(&self, id: &str, feeds: &[String]) -> Result<bool>;
    async fn disconnect(&self, id: &str) -> Result<()>;
    /// Every connection not expired, read a page at a time.
    async fn connections(&self) -> Result<Vec<Connection>>;
}

/// How a delivery went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Delivered,
    /// The client is gone (410): the connection is dropped.
    Gone,
}

/// Sends bytes to one connection.
#[async_trait]
pub trait Poster: Send + Sync {
    async fn post(&self, connection: &str, data: &[u8]) -> std::result::Result<Delivery, String>;
}
