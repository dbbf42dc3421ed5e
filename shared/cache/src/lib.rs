//! livecache's cache engine: a general cache for serverless functions in front of a slower
//! source of truth. It knows nothing of the marketplace.
//!
//! A tour, bottom up:
//! * `kv`: the ports ([`KvStore`] with compare-and-swap, [`Counters`] with once-keyed
//!   increments, [`ExpiryIndex`]) and their two adapters, [`RedisBackend`] (`kv/redis/`:
//!   `config`, the connection and breaker in `mod`, `store`, `counters`; single node, TLS,
//!   cluster) and [`MemoryBackend`] (`kv/memory/`: bounded moka cache; the embedded default).
//! * `codec`: JSON, LZ4 (or zlib) above a threshold, tagged, with a decompression cap;
//!   [`ToJson`]/[`FromJson`], how a value becomes stored JSON and comes back (serde by
//!   default; a type may keep the stored bytes as they are).
//! * `keys`: every key is built, and read back (the sweep's `classify`), there; parts
//!   validated; filters hashed stably.
//! * [`entry`]: the stored form of a value: a header (nonce, lease, stamps, lifetimes), then
//!   the body.
//! * `cache`: [`Cache`], the policies on top, one file each: `read` (read-through,
//!   stale-while-revalidate, fail-safe, the one-MGET read), `batch` (many keys, warming),
//!   `lease` (a fill never undoes an invalidation), `flight` (single-flight in-process and,
//!   through the lease, across instances; the one `locked_load` of loads and refreshes),
//!   `invalidate` (key, pattern, O(1) namespace and version), `maintenance` (counts, the sweep,
//!   statistics).
//! * `tasks`: where post-response work (refreshes) goes, since on Lambda nothing may run
//!   after the response unless something holds the environment open.
//! * `stats`: per-instance counters and latency, aggregated across instances in Redis.
//! * `config`: choosing and connecting a backend from the environment.

#![warn(unreachable_pub)]

mod breaker;
mod cache;
mod clock;
mod codec;
mod config;
pub mod entry;
mod error;
mod keys;
mod kv;
mod policy;
mod slot;
mod stats;
mod tasks;

// The public surface: everything a caller needs is named here (modules are private; `entry`,
// the stored form, is public as the documented wire format).
pub use breaker::BreakerConfig;
pub use cache::{Batch, Cache, CacheBuilder, Lookup, Served, SweepReport, WarmReport, L1_MIN_VALUE};
pub use clock::{Clock, ManualClock, SystemClock};
pub use codec::{Codec, Compression, FromJson, ToJson, TAG_JSON, TAG_LZ4_JSON, TAG_ZLIB_JSON};
pub use config::{connect, BackendConfig};
pub use error::{CacheError, CodecError, LoadError};
pub use keys::{
    filter_hash, round_coord, spread_tag, stable_hash, Key, Keyspace, DEFAULT_SLOT_GROUPS, MAX_PART_LEN, STATS_SHARDS,
};
pub use kv::memory::MemoryBackend;
pub use kv::redis::{RedisBackend, RedisConfig};
pub use kv::{
    Backend, Counters, ExpiryIndex, KeyTtl, KvStore, Revalidated, ScanAt, ServerInfo, SlotReport, SlotStat, Swap,
};
pub use policy::Policy;
pub use slot::slot as key_slot;
pub use stats::{CountsSnapshot, StatsReport};
pub use tasks::{DeferredTasks, Drained, SpawnTasks, TaskRunner};
