use std::time::Duration;

/// Errors of the cache engine. Callers treat every one of them as "no cache": the cache is an
/// optimisation, never a dependency.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The backend is known to be down (circuit open) or could not be reached.
    #[error("cache backend unavailable: {0}")]
    Unavailable(String),
    /// A command did not answer within its timeout.
    #[error("cache command timed out after {0:?}")]
    Timeout(Duration),
    /// Redis answered with an error.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A value could not be encoded or decoded.
    #[error("codec: {0}")]
    Codec(#[from] CodecError),
    /// A caller-supplied key part was refused.
    #[error("invalid key part {part:?}: {reason}")]
    InvalidKey { part: String, reason: &'static str },
    /// Bad configuration, named by what is wrong.
    #[error("cache configuration: {0}")]
    Config(String),
}

impl CacheError {
    /// Whether the command may have run although no answer came back (a timeout, a connection
    /// lost mid-command): a write with this error must not be repeated elsewhere, or it may
    /// count twice. False when it certainly did not run (circuit open, no connection, an
    /// error reply).
    pub fn outcome_unknown(&self) -> bool {
        match self {
            Self::Timeout(_) => true,
            Self::Redis(e) => (e.is_io_error() || e.is_connection_dropped()) && !e.is_connection_refusal(),
            _ => false,
        }
    }
}

/// Why a stored value could not be decoded (always treated as a miss by readers).
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("zlib: {0}")]
    Zlib(#[from] std::io::Error),
    #[error("lz4: {0}")]
    Lz4(#[from] lz4_flex::block::DecompressError),
    #[error("decompressed value exceeds the {limit}-byte cap")]
    TooLarge { limit: usize },
    #[error("unknown value format tag {0:#04x}")]
    UnknownFormat(u8),
    #[error("value too short for its header")]
    Truncated,
    /// Stored JSON that is not of the form its reader keeps (see [`crate::codec::FromJson`]).
    #[error("stored JSON is not {0}")]
    Form(&'static str),
}

/// Why `get_or_load` could not produce a value.
#[derive(Debug, thiserror::Error)]
pub enum LoadError<E> {
    /// The loader failed and no stale value could stand in.
    #[error("loader failed: {0}")]
    Loader(E),
    /// The loader did not finish within the policy's load timeout.
    #[error("loader timed out after {0:?}")]
    Timeout(Duration),
    /// Another caller was loading the same key and its load failed.
    #[error("a concurrent load of the same key failed: {0}")]
    Coalesced(String),
    /// The value produced by the loader could not be encoded.
    #[error("codec: {0}")]
    Codec(#[from] CodecError),
}

pub(crate) type Result<T, E = CacheError> = std::result::Result<T, E>;
