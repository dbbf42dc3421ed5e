//! Choosing the backend from the environment.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `REDIS_URL` | `redis://`, `rediss://` (TLS), several comma-separated (cluster) or `?cluster=true` | unset: in-memory |
//! | `CACHE_MEMORY_MAX_ENTRIES` | entry cap of the in-memory backend | 100000 |
//! | `REDIS_CONNECT_TIMEOUT_MS` | connect timeout | 500 |
//! | `REDIS_COMMAND_TIMEOUT_MS` | per-command timeout | 250 |
//! | `REDIS_BREAKER_THRESHOLD` | failures in a row that open the circuit | 3 |
//! | `REDIS_BREAKER_COOLDOWN_MS` | how long the circuit stays open | 2000 |
//! | `REDIS_CA_FILE` | a PEM file of the private CA `rediss://` certificates are checked against | unset: the system's roots |

use std::sync::Arc;
use std::time::Duration;

use crate::error::{CacheError, Result};
use crate::kv::memory::MemoryBackend;
use crate::kv::redis::{RedisBackend, RedisConfig};
use crate::kv::Backend;

#[derive(Debug, Clone)]
pub enum BackendConfig {
    Memory { max_entries: u64 },
    Redis(RedisConfig),
}

fn env_num(name: &str, default: u64) -> Result<u64> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => {
            v.trim().parse().map_err(|_| CacheError::Config(format!("{name} must be a whole number, got {v:?}")))
        }
        _ => Ok(default),
    }
}

impl BackendConfig {
    /// Reads the variables above; a bad value is an error naming the variable.
    pub fn from_env() -> Result<Self> {
        match std::env::var("REDIS_URL") {
            Ok(url) if !url.trim().is_empty() => {
                let mut cfg = RedisConfig::from_url(&url)?;
                cfg.connect_timeout = Duration::from_millis(env_num("REDIS_CONNECT_TIMEOUT_MS", 500)?);
                cfg.command_timeout = Duration::from_millis(env_num("REDIS_COMMAND_TIMEOUT_MS", 250)?);
                cfg.breaker.threshold = env_num("REDIS_BREAKER_THRESHOLD", 3)? as u32;
                cfg.breaker.cooldown = Duration::from_millis(env_num("REDIS_BREAKER_COOLDOWN_MS", 2000)?);
                cfg.ca_cert = match std::env::var("REDIS_CA_FILE") {
                    Ok(path) if !path.trim().is_empty() => Some(
                        std::fs::read(path.trim())
                            .map_err(|e| CacheError::Config(format!("REDIS_CA_FILE: cannot read {path:?}: {e}")))?,
                    ),
                    _ => None,
                };
                Ok(Self::Redis(cfg))
            }
            _ => Ok(Self::Memory { max_entries: env_num("CACHE_MEMORY_MAX_ENTRIES", 100_000)? }),
        }
    }
}

/// Builds the backend once per process. A Redis that is down does not fail this.
pub async fn connect(cfg: BackendConfig) -> Result<Arc<dyn Backend>> {
    Ok(match cfg {
        BackendConfig::Memory { max_entries } => Arc::new(MemoryBackend::new(max_entries)),
        BackendConfig::Redis(cfg) => Arc::new(RedisBackend::connect(cfg).await?),
    })
}
