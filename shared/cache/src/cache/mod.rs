//! The cache engine: policies on top of the ports.
//!
//! A lookup reads, in ONE round trip (MGET), the keyspace epoch, the namespace generation and
//! the value. A value stamped with an older epoch or generation is invalid, which makes
//! namespace invalidation and the global version bump O(1) and cluster-safe (no SCAN, no
//! multi-slot command). Values are stamped with the epoch/generation read *before* their load,
//! so a load racing with an invalidation can only write a value that is already invalid.
//!
//! Files: this one holds the types, the builder and the accessors; `read` single keys and the
//! one-round-trip read; `batch` many keys and warming; `flight` single-flight in-process and
//! across instances, and refreshes; `invalidate` keys, patterns, namespaces, the epoch;
//! `maintenance` counts, the sweep and statistics.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::watch;

use crate::clock::{Clock, SystemClock};
use crate::codec::{Codec, FromJson, ToJson};
use crate::entry::{self, Freshness, Stamp, Times};
use crate::error::{CacheError, CodecError, LoadError, Result};
use crate::keys::{Key, Keyspace};
use crate::kv::{Backend, Counters, ServerInfo};
use crate::policy::Policy;
use crate::stats::{Stats, StatsReport};
use crate::tasks::{SpawnTasks, TaskRunner};

/// How a value was served: from the cache (fresh or stale), loaded by this call or by a
/// concurrent one, or a fail-safe stand-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Served {
    /// Fresh from the cache.
    Hit,
    /// Stale from the cache; a refresh was handed to the task runner.
    Stale,
    /// Loaded by this call and stored.
    Loaded,
    /// Loaded by a concurrent caller (same process or, via the lock, another instance).
    Coalesced,
    /// The loader failed; a stale value within the fail-safe window stood in.
    FailSafe,
}

/// A value and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Lookup<T> {
    pub value: T,
    pub source: Served,
}

impl<T> Lookup<T> {
    /// Whether the value came out of the cache rather than from this call's load.
    pub fn cached(&self) -> bool {
        self.source != Served::Loaded
    }

    /// Whether the value is past its fresh lifetime.
    pub fn is_stale(&self) -> bool {
        matches!(self.source, Served::Stale | Served::FailSafe)
    }
}

/// The answer to a batch lookup, in request order.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch<T> {
    /// `None` where the loader had no value for the key.
    pub values: Vec<Option<T>>,
    pub hits: usize,
    pub misses: usize,
    /// Misses answered by a stale value because the loader failed.
    pub fail_safe: usize,
}

/// What [`Cache::sweep`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SweepReport {
    pub scanned: usize,
    /// Value keys with no TTL (every value is written with one).
    pub no_ttl: usize,
    /// Keys of another key version under the same prefix.
    pub old_version: usize,
    /// Values stamped with an epoch or generation that has moved on (unreachable).
    pub old_generation: usize,
    /// Live entries left, per namespace (the namespaces of `state` are not counted).
    pub entries: std::collections::BTreeMap<String, u64>,
}

impl SweepReport {
    pub fn deleted(&self) -> usize {
        self.no_ttl + self.old_version + self.old_generation
    }
}

/// What [`Cache::warm`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct WarmReport {
    pub requested: usize,
    pub warmed: usize,
    pub already_cached: usize,
    pub failed: usize,
}

/// What a leader shares: its value's JSON, where it came from, and the stamp it vouches for.
type FlightResult = std::result::Result<(Arc<[u8]>, Served, Option<Option<Stamp>>), String>;
/// Where a flight's result appears.
type FlightWatch = watch::Receiver<Option<FlightResult>>;

struct Inner {
    backend: Arc<dyn Backend>,
    keys: Keyspace,
    codec: Codec,
    clock: Arc<dyn Clock>,
    tasks: Arc<dyn TaskRunner>,
    stats: Stats,
    /// Loads in flight in this process, by key: an id (so that a finished flight removes only
    /// itself) and where its result will appear. An invalidation detaches the flights it
    /// covers, so that a read after it never joins a load that began before it.
    flights: Mutex<HashMap<String, (u64, FlightWatch)>>,
    refreshing: Mutex<HashSet<String>>,
    /// Replaces every policy's load timeout (see [`CacheBuilder::load_timeout`]).
    load_timeout: Option<Duration>,
    /// This instance's copies of large values, served only once a read confirmed them
    /// unchanged (see [`CacheBuilder::l1`]).
    l1: Option<moka::future::Cache<String, Arc<Vec<u8>>>>,
}

/// The cache. Cheap to clone; build one per process (per cold start on Lambda).
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("backend", &self.inner.backend.backend())
            .field("root", &self.inner.keys.root())
            .finish()
    }
}

/// Builds a [`Cache`].
pub struct CacheBuilder {
    backend: Arc<dyn Backend>,
    keys: Option<Keyspace>,
    codec: Codec,
    clock: Arc<dyn Clock>,
    tasks: Arc<dyn TaskRunner>,
    load_timeout: Option<Duration>,
    l1_bytes: u64,
}

/// Values smaller than this are not kept in L1: the answer they replace costs as little.
pub const L1_MIN_VALUE: usize = 1024;

impl CacheBuilder {
    /// Keeps copies of values of at least [`L1_MIN_VALUE`] bytes, up to `max_bytes` in all, in
    /// this process. A single-key read of a held value asks the backend to answer "unchanged"
    /// instead of the value when the stored entry is still the one held (its header names one
    /// write), in the same round trip that reads the stamps: a hot value costs the same round
    /// trip but a few bytes. Nothing is served from L1 without that confirmation. 0: off.
    pub fn l1(mut self, max_bytes: u64) -> Self {
        self.l1_bytes = max_bytes;
        self
    }

    pub fn keyspace(mut self, keys: Keyspace) -> Self {
        self.keys = Some(keys);
        self
    }

    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Where refresh work goes (see `crate::tasks`); defaults to spawning on tokio.
    pub fn tasks(mut self, tasks: Arc<dyn TaskRunner>) -> Self {
        self.tasks = tasks;
        self
    }

    /// How long any load may take, whatever its policy says; the load lock lasts at least as
    /// long, so that a slow load still fills its key. For a source slower than the policies
    /// expect (an emulator, a database under throttling).
    pub fn load_timeout(mut self, timeout: Duration) -> Self {
        self.load_timeout = Some(timeout);
        self
    }

    pub fn build(self) -> Cache {
        let keys = self.keys.unwrap_or_else(|| Keyspace::new(None, "v1").expect("v1 is a valid version"));
        Cache {
            inner: Arc::new(Inner {
                backend: self.backend,
                keys,
                codec: self.codec,
                clock: self.clock,
                tasks: self.tasks,
                stats: Stats::default(),
                flights: Mutex::new(HashMap::new()),
                refreshing: Mutex::new(HashSet::new()),
                load_timeout: self.load_timeout,
                l1: (self.l1_bytes > 0).then(|| {
                    moka::future::Cache::builder()
                        .max_capacity(self.l1_bytes)
                        .weigher(|k: &String, v: &Arc<Vec<u8>>| (k.len() + v.len()).min(u32::MAX as usize) as u32)
                        .build()
                }),
            }),
        }
    }
}

/// A value read from the backend whose stamp is current.
struct Raw {
    bytes: Vec<u8>,
    times: Times,
}

impl Raw {
    fn entry(&self) -> entry::Entry<'_> {
        entry::read(&self.bytes).expect("validated when read")
    }
}

/// What one MGET told us about one key.
struct Read {
    /// The epoch/generation current at read time; None if the backend could not be read.
    stamp: Option<Stamp>,
    /// The value, if its stamp is current.
    raw: Option<Raw>,
    /// What the key held when it is not a current value (an older stamp, unreadable bytes).
    other: Option<Vec<u8>>,
    /// Until when a loader holds a current lease on the key (0: nobody).
    lease_until: u64,
}

impl Read {
    fn unavailable() -> Self {
        Read { stamp: None, raw: None, other: None, lease_until: 0 }
    }

    /// What the key held, as a compare-and-swap expects it (see [`entry::prefix`]); None:
    /// absent. Copied only when a lease is asked for, never on a hit.
    fn current(&self) -> Option<Vec<u8>> {
        let bytes = self.raw.as_ref().map(|r| &r.bytes).or(self.other.as_ref())?;
        Some(entry::prefix(bytes).to_vec())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn parse_counter(v: Option<&Vec<u8>>) -> u64 {
    v.and_then(|b| std::str::from_utf8(b).ok()).and_then(|s| s.parse().ok()).unwrap_or(0)
}

impl Cache {
    pub fn builder(backend: Arc<dyn Backend>) -> CacheBuilder {
        CacheBuilder {
            backend,
            keys: None,
            codec: Codec::default(),
            clock: Arc::new(SystemClock),
            tasks: Arc::new(SpawnTasks),
            load_timeout: None,
            l1_bytes: 0,
        }
    }

    /// How long a load under `policy` may take.
    pub(crate) fn load_timeout(&self, policy: &Policy) -> Duration {
        self.inner.load_timeout.unwrap_or(policy.load_timeout)
    }

    /// How long a load lock under `policy` lasts: never shorter than the load may take.
    pub(crate) fn lock_ttl(&self, policy: &Policy) -> Duration {
        policy.lock_ttl.max(self.inner.load_timeout.unwrap_or_default())
    }

    pub fn keys(&self) -> &Keyspace {
        &self.inner.keys
    }

    /// Shorthand for `keys().key(ns, parts)`.
    pub fn key(&self, ns: &str, parts: &[&str]) -> Result<Key> {
        self.inner.keys.key(ns, parts)
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.inner.backend
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    pub fn codec(&self) -> &Codec {
        &self.inner.codec
    }

    pub fn stats(&self) -> &Stats {
        &self.inner.stats
    }
}

mod batch;
mod flight;
mod invalidate;
mod lease;
mod maintenance;
mod read;
