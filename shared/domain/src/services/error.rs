//! Why a service call failed, and how store, cache and load errors become service errors.

use super::*;

/// Why a service call failed; each kind maps to one HTTP status in the HTTP layer.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Bad input (400).
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// Unknown id (404).
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    /// Wrong state (409).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// Not allowed for this caller (403).
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// The source of truth could not answer and no cached value could stand in (503).
    #[error("{0}")]
    Unavailable(String),
}

impl ServiceError {
    pub(crate) fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid { code, message: message.into() }
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { kind, id } => {
                Self::NotFound { code: not_found_code(kind), message: format!("{kind} {id} not found") }
            }
            e @ StoreError::InvalidTransition { .. } => {
                Self::Conflict { code: "invalid_transition", message: e.to_string() }
            }
            e @ StoreError::Conflict(_) => Self::Conflict { code: "conflict", message: e.to_string() },
            e @ StoreError::AlreadyExists { .. } => Self::Conflict { code: "already_exists", message: e.to_string() },
            StoreError::TooBroad(message) => Self::Invalid { code: "query_too_broad", message },
            e => {
                tracing::error!(error = %e, "store failed");
                Self::Unavailable("the database is not answering; try again shortly".into())
            }
        }
    }
}

impl From<crate::model::id::InvalidId> for ServiceError {
    fn from(e: crate::model::id::InvalidId) -> Self {
        Self::invalid("invalid_id", e.to_string())
    }
}

impl From<livecache_cache::CacheError> for ServiceError {
    fn from(e: livecache_cache::CacheError) -> Self {
        match e {
            livecache_cache::CacheError::InvalidKey { part, reason } => {
                Self::invalid("invalid_id", format!("{part:?} {reason}"))
            }
            e => Self::Unavailable(format!("cache: {e}")),
        }
    }
}

impl From<LoadError<StoreError>> for ServiceError {
    fn from(e: LoadError<StoreError>) -> Self {
        match e {
            LoadError::Loader(e) => e.into(),
            other => {
                tracing::error!(error = %other, "load failed");
                Self::Unavailable("the database is not answering; try again shortly".into())
            }
        }
    }
}

fn not_found_code(kind: &str) -> &'static str {
    match kind {
        "product" => "product_not_found",
        "stream" => "stream_not_found",
        "offer" => "offer_not_found",
        "user" => "user_not_found",
        _ => "not_found",
    }
}

pub type Result<T, E = ServiceError> = std::result::Result<T, E>;
