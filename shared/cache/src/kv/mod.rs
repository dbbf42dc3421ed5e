//! Ports by capability, each implemented by [`RedisBackend`](redis::RedisBackend) and
//! [`MemoryBackend`](memory::MemoryBackend), both proved by one contract suite
//! (`tests/contract.rs`).
//!
//! * [`KvStore`]: values with TTL, batches, pattern deletion, locks, generations, server info.
//! * [`Counters`]: hash counters with an atomic drain and a same-slot move for write-behind.
//! * [`ExpiryIndex`]: ids ordered by a due time.
//!
//! Values are evictable cache data. Counters, generations and index entries are state: the
//! memory adapter never evicts them, and in Redis they carry no TTL (so `volatile-*` eviction
//! policies leave them alone).

pub(crate) mod memory;
pub(crate) mod redis;

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;

/// How long a key has left.
/// Where a paged SCAN continues: which node (in the order the store lists them) and that
/// node's cursor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanAt {
    pub node: usize,
    pub cursor: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyTtl {
    Missing,
    Persistent,
    Expires(Duration),
}

/// Figures a backend reports about itself (summed over every node of a cluster).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ServerInfo {
    pub backend: String,
    pub version: String,
    pub nodes: u32,
    pub used_memory: u64,
    pub used_memory_peak: u64,
    pub connected_clients: u64,
    pub keys: u64,
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
    pub evicted_keys: u64,
}

/// What a conditional read ([`KvStore::mget_revalidate`]) found for the value it was asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revalidated {
    /// It still starts with the bytes the caller holds.
    Unchanged,
    /// It changed (or is gone): what it is now.
    Changed(Option<Vec<u8>>),
}

impl Revalidated {
    /// `value` judged against `held`.
    pub fn of(value: Option<Vec<u8>>, held: &[u8]) -> Self {
        match value {
            Some(v) if !held.is_empty() && v.starts_with(held) => Self::Unchanged,
            other => Self::Changed(other),
        }
    }
}

/// The busiest cluster slots as the servers count them (`CLUSTER SLOT-STATS`, Valkey 8+,
/// ElastiCache Serverless, Redis 8.2+), or why they cannot be told.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SlotReport {
    pub available: bool,
    /// Why not, when not available.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The statistic the slots are ordered by, busiest first: `cpu-usec` where the servers
    /// track it (`cluster-slot-stats-enabled yes`), else `key-count`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ordered_by: Option<String>,
    pub slots: Vec<SlotStat>,
}

impl SlotReport {
    pub fn unavailable(reason: impl Into<String>) -> Self {
        Self { available: false, reason: Some(reason.into()), ..Self::default() }
    }
}

/// One slot's figures since the servers' last reset.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SlotStat {
    pub slot: u16,
    /// The master serving it (`host:port`).
    pub node: String,
    pub key_count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_usec: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_bytes_in: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_bytes_out: Option<u64>,
}

/// One conditional write: `key` is replaced by `value` (or deleted, when `value` is `None`) only
/// if it holds what `expect` says — absent (`None`), or a value starting with these bytes.
/// The cache's fills are swaps against the header their loader saw, so that a delete in
/// between voids them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Swap {
    pub key: String,
    pub expect: Option<Vec<u8>>,
    pub value: Option<(Vec<u8>, Duration)>,
}

#[async_trait]
pub trait KvStore: Send + Sync + 'static {
    /// `"redis"`, `"redis-cluster"` or `"memory"`.
    fn backend(&self) -> &'static str;

    /// How often a circuit breaker in front of the store has opened since start-up (0 for
    /// stores without one).
    fn circuit_trips(&self) -> u64 {
        0
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;

    /// Values in the order of `keys`; works across cluster slots.
    async fn mget(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>>;

    /// [`mget`](Self::mget), except that the last key's value is not sent back when it starts
    /// with `held` (the caller has those bytes already): the values of the other keys, and what
    /// became of the last. On Redis one script on one slot, whose answer for an unchanged value
    /// is a few bytes (keys in different slots of a cluster: a plain MGET, compared here).
    async fn mget_revalidate(&self, keys: &[String], held: &[u8]) -> Result<(Vec<Option<Vec<u8>>>, Revalidated)> {
        let mut values = self.mget(keys).await?;
        let last = Revalidated::of(values.pop().flatten(), held);
        Ok((values, last))
    }

    /// Stores `value`; `ttl: None` keeps it until deleted.
    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()>;

    /// Stores many values, each with its own TTL, pipelined (grouped by slot on a cluster).
    async fn mset_with_ttl(&self, entries: &[(String, Vec<u8>, Duration)]) -> Result<()>;

    /// Deletes keys of any kind; returns how many existed.
    async fn delete(&self, keys: &[String]) -> Result<u64>;

    /// Up to `limit` keys matching a glob, from every node (SCAN, never KEYS): pages of
    /// [`scan_page`](Self::scan_page) collected.
    async fn scan(&self, pattern: &str, limit: usize) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut at = Some(ScanAt::default());
        while let Some(from) = at.filter(|_| out.len() < limit) {
            let (keys, next) = self.scan_page(pattern, &from).await?;
            out.extend(keys);
            at = next;
        }
        out.truncate(limit);
        Ok(out)
    }

    /// One step of a SCAN over every node: some keys matching a glob (about a thousand are
    /// looked at), from `at` (`ScanAt::default()` starts), and where the next step starts
    /// (`None`: every node is done). A key present throughout is returned at least once; a
    /// caller never holds more than one page.
    async fn scan_page(&self, pattern: &str, at: &ScanAt) -> Result<(Vec<String>, Option<ScanAt>)>;

    /// Deletes every key matching a glob on every node (SCAN + UNLINK); returns how many.
    async fn delete_by_pattern(&self, pattern: &str) -> Result<u64>;

    /// Conditional writes, each atomic on its own key, pipelined (grouped by slot on a
    /// cluster); whether each one was applied, in order.
    async fn swap(&self, swaps: &[Swap]) -> Result<Vec<bool>>;

    /// SET NX PX: true when this call created the key.
    async fn set_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool>;

    /// Deletes `key` only if it still holds `value` (releasing a lock one owns).
    async fn delete_if_equals(&self, key: &str, value: &[u8]) -> Result<bool>;

    /// Sets a persistent integer to `max(current + 1, floor)` and returns it.
    async fn bump(&self, key: &str, floor: u64) -> Result<u64>;

    /// [`bump`](Self::bump) on each of `keys`, pipelined (grouped by slot on a cluster); the
    /// new values, in order.
    async fn bump_many(&self, keys: &[String], floor: u64) -> Result<Vec<u64>> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(self.bump(key, floor).await?);
        }
        Ok(out)
    }

    async fn ttl(&self, key: &str) -> Result<KeyTtl> {
        Ok(self.ttls(&[key.to_string()]).await?.pop().unwrap_or(KeyTtl::Missing))
    }

    /// The lifetimes of many keys, in order, pipelined (grouped by slot on a cluster).
    async fn ttls(&self, keys: &[String]) -> Result<Vec<KeyTtl>>;

    async fn info(&self) -> Result<ServerInfo>;

    /// The `limit` busiest slots over every master, busiest first (see [`SlotReport`]);
    /// unavailable where there are no slots or the servers do not count them.
    async fn hot_slots(&self, _limit: usize) -> Result<SlotReport> {
        Ok(SlotReport::unavailable("this backend has no cluster slots"))
    }
}

#[async_trait]
pub trait Counters: Send + Sync + 'static {
    /// HINCRBY.
    async fn incr(&self, key: &str, field: &str, by: i64) -> Result<i64>;

    /// HINCRBY at most once per `once` key (which must share the hash's cluster slot): the
    /// first call with a given `once` key applies and remembers it for `ttl`; a repeat is a
    /// no-op. True when this call applied it. Makes a retry after an unknown outcome safe.
    async fn incr_once(&self, key: &str, field: &str, by: i64, once: &str, ttl: Duration) -> Result<bool>;

    /// Several fields of one hash in one round trip.
    async fn incr_many(&self, key: &str, deltas: &[(String, i64)]) -> Result<()>;

    /// Adds to numbered 64-bit counters packed in one value, all in one command (Redis:
    /// `BITFIELD … INCRBY i64 #slot`): a many-counter update that costs one command.
    async fn add_slots(&self, key: &str, deltas: &[(u32, i64)]) -> Result<()>;

    /// The counters [`add_slots`](Self::add_slots) packed in `key`, by slot (absent: 0; as
    /// many as the highest slot written).
    async fn slots(&self, key: &str) -> Result<Vec<i64>>;

    /// One field (0 when absent).
    async fn field(&self, key: &str, field: &str) -> Result<i64>;

    /// Every field of the hash.
    async fn fields(&self, key: &str) -> Result<HashMap<String, i64>>;

    /// Reads and deletes the hash in one atomic step: an increment racing with it lands
    /// either in what is returned or in the hash afterwards, never nowhere.
    async fn drain(&self, key: &str) -> Result<HashMap<String, i64>>;

    /// Renames `from` to `to` if `from` exists and `to` does not (both in one slot). Returns
    /// false when there was nothing to move or `to` is taken.
    async fn move_to(&self, from: &str, to: &str) -> Result<bool>;
}

#[async_trait]
pub trait ExpiryIndex: Send + Sync + 'static {
    /// Adds or reschedules `id` at `at_ms`.
    async fn schedule(&self, index: &str, id: &str, at_ms: u64) -> Result<()>;

    /// Adds or reschedules many ids in one round trip.
    async fn schedule_many(&self, index: &str, entries: &[(String, u64)]) -> Result<()>;

    /// Ids due at or before `now_ms`, earliest first, at most `limit`.
    async fn due(&self, index: &str, now_ms: u64, limit: usize) -> Result<Vec<(String, u64)>>;

    /// Ids due in `[now_ms, now_ms + window]`, earliest first, at most `limit`.
    async fn due_within(&self, index: &str, now_ms: u64, window: Duration, limit: usize) -> Result<Vec<(String, u64)>>;

    /// Removes ids; returns how many were present.
    async fn remove(&self, index: &str, ids: &[String]) -> Result<u64>;

    /// Moves an id that is present to `at_ms`; false if it is not in the index.
    async fn extend(&self, index: &str, id: &str, at_ms: u64) -> Result<bool>;

    async fn count(&self, index: &str) -> Result<u64>;

    /// The due time of `id`, if scheduled.
    async fn scheduled_at(&self, index: &str, id: &str) -> Result<Option<u64>>;
}

/// One backend seen through all three ports.
pub trait Backend: KvStore + Counters + ExpiryIndex {}
impl<T: KvStore + Counters + ExpiryIndex> Backend for T {}
