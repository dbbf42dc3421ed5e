//! How to reach Redis: parsed from `REDIS_URL`-style text.

use std::time::Duration;

use crate::breaker::BreakerConfig;
use crate::error::{CacheError, Result};

/// How to reach Redis.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// Node URLs (`redis://` or `rediss://`); more than one means cluster mode.
    pub nodes: Vec<String>,
    pub cluster: bool,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    pub breaker: BreakerConfig,
    /// A private CA (PEM) that `rediss://` servers' certificates are checked against; `None`:
    /// the system's roots.
    pub ca_cert: Option<Vec<u8>>,
}

impl RedisConfig {
    /// Parses `REDIS_URL`-style text: `redis://host:port`, `rediss://…` for TLS, a
    /// comma-separated list of nodes for a cluster, or `?cluster=true` on one URL to use the
    /// cluster client against a single configuration endpoint (ElastiCache Serverless).
    pub fn from_url(text: &str) -> Result<Self> {
        let mut cluster = false;
        let mut nodes = Vec::new();
        for raw in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (base, query) = raw.split_once('?').unwrap_or((raw, ""));
            for kv in query.split('&').filter(|s| !s.is_empty()) {
                match kv.split_once('=') {
                    Some(("cluster", v)) => cluster |= matches!(v, "true" | "1" | "yes"),
                    _ => {
                        return Err(CacheError::Config(format!(
                            "REDIS_URL: unknown option {kv:?} (only cluster=true is known)"
                        )))
                    }
                }
            }
            if !(base.starts_with("redis://") || base.starts_with("rediss://")) {
                return Err(CacheError::Config(format!("REDIS_URL: {base:?} must start with redis:// or rediss://")));
            }
            nodes.push(base.to_string());
        }
        if nodes.is_empty() {
            return Err(CacheError::Config("REDIS_URL is empty".into()));
        }
        cluster |= nodes.len() > 1;
        Ok(Self {
            nodes,
            cluster,
            connect_timeout: Duration::from_millis(500),
            command_timeout: Duration::from_millis(250),
            breaker: BreakerConfig::default(),
            ca_cert: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_select_single_tls_or_cluster() {
        let c = RedisConfig::from_url("redis://127.0.0.1:6380").unwrap();
        assert!(!c.cluster);
        let c = RedisConfig::from_url("rediss://cache.example:6379?cluster=true").unwrap();
        assert!(c.cluster);
        assert_eq!(c.nodes, vec!["rediss://cache.example:6379"]);
        let c = RedisConfig::from_url("redis://a:1, redis://b:2").unwrap();
        assert!(c.cluster);
        assert_eq!(c.nodes.len(), 2);
        assert!(RedisConfig::from_url("http://x").is_err());
        assert!(RedisConfig::from_url("").is_err());
        assert!(RedisConfig::from_url("redis://x?bogus=1").is_err());
    }
}
