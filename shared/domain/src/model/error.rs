use crate::model::market::StreamStatus;

/// Errors of the data layer. A missing item is `Ok(None)`, not an error.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: String },
    /// A stream may only go SCHEDULED → LIVE → ENDED.
    #[error("stream {id} is {from}; it cannot become {to}")]
    InvalidTransition { id: String, from: StreamStatus, to: StreamStatus },
    /// The item is not in the state the operation requires (e.g. extending a settled offer).
    #[error("{0}")]
    Conflict(String),
    #[error("{kind} {id} already exists")]
    AlreadyExists { kind: &'static str, id: String },
    /// DynamoDB or the emulator failed (after retries where they make sense).
    #[error("database: {0}")]
    Backend(String),
    #[error("stored item could not be read: {0}")]
    Corrupt(String),
    #[error("configuration: {0}")]
    Config(String),
    /// The query cannot be answered within the bounds a request may cost (too many cells or
    /// items to read): the client should narrow it.
    #[error("{0}")]
    TooBroad(String),
}

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("{failed} of {total} events were not accepted: {first_error}")]
    Rejected { failed: usize, total: usize, first_error: String },
    #[error("event bus: {0}")]
    Backend(String),
    #[error("event could not be encoded: {0}")]
    Encode(#[from] serde_json::Error),
}

pub(crate) type Result<T, E = StoreError> = std::result::Result<T, E>;
