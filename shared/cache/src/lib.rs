//! livecache's cache engine: a general cache for serverless functions in front of a slower
//! source of truth. It knows nothing of the marketplace.
//!
//! A tour, bottom up:
//! * [`kv`]: the ports ([`KvStore`], [`Counters`], [`ExpiryIndex`]) and their two adapters,
//!   [`RedisBackend`] (single node, TLS, cluster; timeouts; circuit breaker) and
//!   [`MemoryBackend`] (bounded moka cache; the embedded default).
//! * [`codec`]: JSON, zlib above a threshold, tagged, with a decompression cap.
//! * [`keys`]: every key is built there; ids validated; filters hashed stably.
//! * [`cache`]: [`Cache`], the policies on top: read-through, stale-while-revalidate,
//!   single-flight plus a cross-instance lock, fail-safe, O(1) namespace and version
//!   invalidation, batches, warming.
//! * [`tasks`]: where post-response work (refreshes) goes, since on Lambda nothing may run
//!   after the response unless something holds the environment open.
//! * [`stats`]: per-instance counters and latency, aggregated across instances in Redis.
//! * [`config`]: choosing and connecting a backend from the environment.

pub mod breaker;
pub mod cache;
pub mod clock;
pub mod codec;
pub mod config;
pub mod entry;
pub mod error;
pub mod keys;
pub mod kv;
pub mod policy;
pub mod slot;
pub mod stats;
pub mod tasks;

pub use cache::{Batch, Cache, CacheBuilder, Lookup, Source, SweepReport, WarmReport};
pub use clock::{Clock, ManualClock, SystemClock};
pub use codec::Codec;
pub use config::{connect, BackendConfig};
pub use error::{CacheError, CodecError, LoadError};
pub use keys::{filter_hash, round_coord, Key, Keyspace};
pub use kv::memory::MemoryBackend;
pub use kv::redis::{RedisBackend, RedisConfig};
pub use kv::{Backend, Counters, ExpiryIndex, KeyTtl, KvStore, ServerInfo, Swap};
pub use policy::Policy;
pub use stats::StatsReport;
pub use tasks::{DeferredTasks, SpawnTasks, TaskRunner};
