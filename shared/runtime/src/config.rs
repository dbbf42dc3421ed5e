//! The whole configuration of a function, read from the environment once, at init. Every
//! variable is parsed here (the cache and data parts by their crates' parsers); a bad value is
//! an init error naming the variable, never a silent default.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `REDIS_URL`, `REDIS_*`, `CACHE_MEMORY_MAX_ENTRIES` | the cache backend (see `livecache_cache::BackendConfig`) | in-memory |
//! | `CACHE_KEY_PREFIX` | prefix of every cache key (tenancy, tests) | none |
//! | `CACHE_KEY_VERSION` | schema version of cached values | `v1` |
//! | `CACHE_SLOT_GROUPS` | how many slot groups values and their stamps are spread over (1–1024; 1: one epoch and one generation per namespace, every key untagged) | 256 |
//! | `DATA_BACKEND`, `*_TABLE`, `EVENT_BUS_NAME` | the data layer (see `livecache_domain::config`) | |
//! | `DATA_CREATE_TABLES` | `true`: create missing DynamoDB tables and seed them (emulators) | `false` |
//! | `VIEW_SYNC_INTERVAL_SECS` | how often view-sync drains inside one run | 5 |
//! | `CACHE_VERIFY_RATE` | the share of product hits checked against the database after the response (0–1); finds are the EMF metrics `CacheConsistent`, `CacheInconsistent`, `CacheVerifySettled` | `0.001` |
//! | `CACHE_L1_MB` | megabytes of this instance's copies of large values (≥ 1 KiB), each served only after the read's round trip (a script) confirmed it unchanged: a hot value moves a few bytes instead of itself, at about 8× the server CPU of a plain read — for bandwidth-bound nodes, not for ElastiCache Serverless's ECPUs (Redis backends only) | 0 (off) |
//! | `CACHE_LOAD_TIMEOUT_SECS` | how long any cache load may take (1–60), replacing each policy's own (3 s): for a slow source such as an emulator | each policy's |
//! | `USER_PROFILE_TTL_SECS`, `USER_ACHIEVEMENTS_TTL_SECS`, `LEADERBOARD_TTL_SECS`, `RECENT_ACHIEVEMENTS_TTL_SECS` | how long profiles, a user's badges, leaderboard pages and the latest badges stay fresh (1–86400) | 3600, 1800, 900, 300 |
//! | `ADMIN_PRINCIPAL_ARNS` | comma-separated IAM principals allowed on admin routes (`*` suffix allowed) | any IAM-signed caller |

use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use livecache_cache::{BackendConfig, Keyspace};
use livecache_domain::services::UserTtls;
use livecache_domain::DataConfig;

/// Settings of the scheduled jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSettings {
    /// How often view-sync drains inside one run.
    pub view_sync_interval: Duration,
    /// The tables, by name: change-log tells the cached ones by the stream a record came from.
    pub tables: livecache_domain::TableNames,
}

impl Default for JobSettings {
    fn default() -> Self {
        Self { view_sync_interval: Duration::from_secs(5), tables: livecache_domain::TableNames::defaults() }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub cache: BackendConfig,
    pub keyspace: Keyspace,
    pub data: DataConfig,
    pub create_tables: bool,
    pub jobs: JobSettings,
    pub admin_principals: Vec<String>,
    /// How often an HTTP function adds its cache statistics to the shared aggregate
    /// (`STATS_FLUSH_SECS`, 1–300, default 10), besides once when it shuts down.
    pub stats_flush: Duration,
    /// How long any cache load may take (`CACHE_LOAD_TIMEOUT_SECS`, 1–60); None: each
    /// policy's own.
    pub load_timeout: Option<Duration>,
    /// Bytes of L1 copies of large values (`CACHE_L1_MB`, 0–4096, default
    /// [`DEFAULT_L1_MB`]; used with Redis only).
    pub l1_bytes: u64,
    /// Lifetimes of user data.
    pub user_ttls: UserTtls,
    /// The share of product hits checked against the source after the response
    /// (`CACHE_VERIFY_RATE`, 0–1, default [`DEFAULT_VERIFY_RATE`]).
    pub verify_rate: f64,
}

/// The default L1 size, in megabytes.
pub const DEFAULT_L1_MB: u64 = 0;

/// The default of [`Config::verify_rate`]: one hit in a thousand.
pub const DEFAULT_VERIFY_RATE: f64 = 0.001;

/// The default of [`Config::stats_flush`].
pub const STATS_FLUSH_DEFAULT: Duration = Duration::from_secs(10);

impl Config {
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The cache and data parts come from their crates' parsers (which read the environment);
    /// the rest from `var`, so that tests can pass values without touching the process.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let cache = BackendConfig::from_env()?;
        let prefix = var("CACHE_KEY_PREFIX").filter(|p| !p.is_empty());
        let version = var("CACHE_KEY_VERSION").unwrap_or_else(|| "v1".into());
        let keyspace = Keyspace::new(prefix.as_deref(), &version)
            .map_err(|e| anyhow!("CACHE_KEY_PREFIX / CACHE_KEY_VERSION: {e}"))?;
        let keyspace = match var("CACHE_SLOT_GROUPS").as_deref().map(str::trim) {
            None | Some("") => keyspace,
            Some(text) => match text.parse::<u16>() {
                Ok(groups) => keyspace.with_slot_groups(groups).map_err(|e| anyhow!("CACHE_SLOT_GROUPS: {e}"))?,
                Err(_) => bail!("CACHE_SLOT_GROUPS = {text:?}: expected a number of slot groups from 1 to 1024"),
            },
        };
        let data = DataConfig::from_env()?;
        let create_tables = match var("DATA_CREATE_TABLES").as_deref().map(str::trim) {
            None | Some("") | Some("false") => false,
            Some("true") => true,
            Some(other) => bail!("DATA_CREATE_TABLES = {other:?}: expected true or false"),
        };
        let view_sync_interval = seconds("VIEW_SYNC_INTERVAL_SECS", var("VIEW_SYNC_INTERVAL_SECS"), 1..=50)?
            .unwrap_or(JobSettings::default().view_sync_interval);
        let stats_flush = seconds("STATS_FLUSH_SECS", var("STATS_FLUSH_SECS"), 1..=300)?.unwrap_or(STATS_FLUSH_DEFAULT);
        let load_timeout = seconds("CACHE_LOAD_TIMEOUT_SECS", var("CACHE_LOAD_TIMEOUT_SECS"), 1..=60)?;
        let l1_mb = match var("CACHE_L1_MB").as_deref().map(str::trim) {
            None | Some("") => DEFAULT_L1_MB,
            Some(text) => match text.parse::<u64>() {
                Ok(mb) if mb <= 4096 => mb,
                _ => bail!("CACHE_L1_MB = {text:?}: expected megabytes from 0 (off) to 4096"),
            },
        };
        let ttl = |name: &str, default: Duration| -> anyhow::Result<Duration> {
            Ok(seconds(name, var(name), 1..=86_400)?.unwrap_or(default))
        };
        let d = UserTtls::default();
        let user_ttls = UserTtls {
            profile: ttl("USER_PROFILE_TTL_SECS", d.profile)?,
            achievements: ttl("USER_ACHIEVEMENTS_TTL_SECS", d.achievements)?,
            leaderboard: ttl("LEADERBOARD_TTL_SECS", d.leaderboard)?,
            recent: ttl("RECENT_ACHIEVEMENTS_TTL_SECS", d.recent)?,
        };
        let verify_rate = match var("CACHE_VERIFY_RATE").as_deref().map(str::trim) {
            None | Some("") => DEFAULT_VERIFY_RATE,
            Some(text) => match text.parse::<f64>() {
                Ok(rate) if (0.0..=1.0).contains(&rate) => rate,
                _ => bail!("CACHE_VERIFY_RATE = {text:?}: expected a share of hits from 0 to 1 (e.g. 0.001)"),
            },
        };
        let admin_principals = var("ADMIN_PRINCIPAL_ARNS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        let jobs = JobSettings { view_sync_interval, tables: data.tables.clone() };
        Ok(Self {
            cache,
            keyspace,
            data,
            create_tables,
            jobs,
            admin_principals,
            stats_flush,
            load_timeout,
            l1_bytes: l1_mb << 20,
            user_ttls,
            verify_rate,
        })
    }
}

/// The configuration of the `ws` and `push` functions (they have no cache): the tables, and
/// for `push` the WebSocket API stage's Management API endpoint (`WEBSOCKET_ENDPOINT`,
/// `https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`).
#[derive(Debug, Clone)]
pub struct PushConfig {
    pub tables: livecache_domain::TableNames,
    pub websocket_endpoint: Option<String>,
}

impl PushConfig {
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The tables come from their crate's parser (which reads the environment); the endpoint
    /// from `var`.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let tables = livecache_domain::TableNames::from_env()?;
        let websocket_endpoint = var("WEBSOCKET_ENDPOINT").map(|e| e.trim().to_string()).filter(|e| !e.is_empty());
        if let Some(e) = &websocket_endpoint {
            if !e.starts_with("https://") && !e.starts_with("http://") {
                bail!("WEBSOCKET_ENDPOINT = {e:?}: expected the stage's https:// endpoint");
            }
        }
        Ok(Self { tables, websocket_endpoint })
    }
}

/// A whole number of seconds within `range` from variable `name`'s `value` (unset or empty:
/// None).
fn seconds(
    name: &str,
    value: Option<String>,
    range: std::ops::RangeInclusive<u64>,
) -> anyhow::Result<Option<Duration>> {
    match value.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => {
            let secs: u64 = v.parse().ok().filter(|s| range.contains(s)).with_context(|| {
                format!("{name} = {v:?}: expected whole seconds from {} to {}", range.start(), range.end())
            })?;
            Ok(Some(Duration::from_secs(secs)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> anyhow::Result<Config> {
        let map: std::collections::HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_and_values() {
        let c = with(&[]).unwrap();
        assert_eq!((c.jobs.view_sync_interval, c.create_tables), (Duration::from_secs(5), false));
        assert!(c.admin_principals.is_empty());
        assert_eq!(c.stats_flush, STATS_FLUSH_DEFAULT);
        assert_eq!(c.load_timeout, None);
        let c = with(&[
            ("VIEW_SYNC_INTERVAL_SECS", "10"),
            ("DATA_CREATE_TABLES", "true"),
            ("ADMIN_PRINCIPAL_ARNS", " arn:aws:iam::1:role/Ops , ,arn:aws:sts::1:assumed-role/Ops/*"),
            ("CACHE_KEY_PREFIX", "t1"),
            ("STATS_FLUSH_SECS", "30"),
            ("CACHE_LOAD_TIMEOUT_SECS", "20"),
            ("LEADERBOARD_TTL_SECS", "60"),
        ])
        .unwrap();
        assert_eq!(c.user_ttls.leaderboard, Duration::from_secs(60));
        assert_eq!(c.user_ttls.profile, Duration::from_secs(3600));
        assert_eq!(c.load_timeout, Some(Duration::from_secs(20)));
        assert_eq!(c.stats_flush, Duration::from_secs(30));
        assert_eq!((c.jobs.view_sync_interval, c.create_tables), (Duration::from_secs(10), true));
        assert_eq!(c.admin_principals.len(), 2);
        assert_eq!(c.keyspace.root(), "t1:v1");
    }

    #[test]
    fn bad_values_are_init_errors_naming_the_variable() {
        for (name, value) in [
            ("VIEW_SYNC_INTERVAL_SECS", "five"),
            ("VIEW_SYNC_INTERVAL_SECS", "0"),
            ("VIEW_SYNC_INTERVAL_SECS", "600"),
            ("DATA_CREATE_TABLES", "yes"),
            ("CACHE_KEY_VERSION", "v:1"),
            ("STATS_FLUSH_SECS", "0"),
            ("CACHE_LOAD_TIMEOUT_SECS", "61"),
            ("USER_PROFILE_TTL_SECS", "0"),
            ("RECENT_ACHIEVEMENTS_TTL_SECS", "a day"),
        ] {
            let err = with(&[(name, value)]).unwrap_err().to_string();
            assert!(err.contains(name), "{name}={value}: {err}");
        }
    }
}
