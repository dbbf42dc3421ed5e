//! The cache engine: policies on top of the ports.
//!
//! A lookup reads, in ONE round trip (MGET), the keyspace epoch, the namespace generation and
//! the value. A value stamped with an older epoch or generation is invalid, which makes
//! namespace invalidation and the global version bump O(1) and cluster-safe (no SCAN, no
//! multi-slot command). Values are stamped with the epoch/generation read *before* their load,
//! so a load racing with an invalidation can only write a value that is already invalid.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::watch;

use crate::clock::{Clock, SystemClock};
use crate::codec::Codec;
use crate::entry::{self, Freshness, Stamp, Times};
use crate::error::{CacheError, CodecError, LoadError, Result};
use crate::keys::{Key, Keyspace};
use crate::kv::{Backend, Counters, ServerInfo};
use crate::policy::Policy;
use crate::stats::{Stats, StatsReport};
use crate::tasks::{SpawnTasks, TaskRunner};

/// Where a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
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
    pub source: Source,
}

impl<T> Lookup<T> {
    /// Whether the value came out of the cache rather than from this call's load.
    pub fn cached(&self) -> bool {
        self.source != Source::Loaded
    }

    /// Whether the value is past its fresh lifetime.
    pub fn is_stale(&self) -> bool {
        matches!(self.source, Source::Stale | Source::FailSafe)
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
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SweepReport {
    pub scanned: usize,
    /// Value keys with no TTL (every value is written with one).
    pub no_ttl: usize,
    /// Keys of another key version under the same prefix.
    pub old_version: usize,
    /// Values stamped with an epoch or generation that has moved on (unreachable).
    pub old_generation: usize,
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

type FlightResult = std::result::Result<(Arc<[u8]>, Source), String>;

struct Inner {
    backend: Arc<dyn Backend>,
    keys: Keyspace,
    codec: Codec,
    clock: Arc<dyn Clock>,
    tasks: Arc<dyn TaskRunner>,
    stats: Stats,
    flights: Mutex<HashMap<String, watch::Receiver<Option<FlightResult>>>>,
    refreshing: Mutex<HashSet<String>>,
    owner: String,
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
}

impl CacheBuilder {
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

    /// Where refresh work goes (see [`crate::tasks`]); defaults to spawning on tokio.
    pub fn tasks(mut self, tasks: Arc<dyn TaskRunner>) -> Self {
        self.tasks = tasks;
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
                owner: format!("{:016x}", rand::random::<u64>()),
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
    raw: Option<Raw>,
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
        }
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

    /// Read-through: the cached value if fresh; a stale one (with a refresh handed to the task
    /// runner) inside the SWR window; otherwise one load per key across callers and instances,
    /// stored with the policy's TTL. If the load fails or times out, a value still inside the
    /// fail-safe window stands in.
    pub async fn get_or_load<T, E, F, Fut>(
        &self,
        key: &Key,
        policy: &Policy,
        loader: F,
    ) -> std::result::Result<Lookup<T>, LoadError<E>>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        E: std::fmt::Display + Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<T, E>> + Send + 'static,
    {
        let started = Instant::now();
        let out = self.get_or_load_inner(key, policy, loader).await;
        self.inner.stats.latency.record(started.elapsed());
        out
    }

    async fn get_or_load_inner<T, E, F, Fut>(
        &self,
        key: &Key,
        policy: &Policy,
        loader: F,
    ) -> std::result::Result<Lookup<T>, LoadError<E>>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        E: std::fmt::Display + Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<T, E>> + Send + 'static,
    {
        let read = self.read_one(key).await;
        let now = self.inner.clock.now_ms();
        if let Some(raw) = &read.raw {
            match raw.times.at(now) {
                Freshness::Fresh => {
                    if let Some(value) = self.decode(key, raw) {
                        self.inner.stats.incr(|c| &c.hits);
                        return Ok(Lookup { value, source: Source::Hit });
                    }
                }
                Freshness::Stale => {
                    if let Some(value) = self.decode(key, raw) {
                        self.inner.stats.incr(|c| &c.stale);
                        if let Some(stamp) = read.stamp {
                            self.refresh_later(key, policy, stamp, loader);
                        }
                        return Ok(Lookup { value, source: Source::Stale });
                    }
                }
                Freshness::FailSafe | Freshness::Expired => {}
            }
        }
        self.load_coalesced(key, policy, read, loader).await
    }

    /// The cached value, fresh or stale, without loading.
    pub async fn get<T: DeserializeOwned>(&self, key: &Key) -> Option<Lookup<T>> {
        let read = self.read_one(key).await;
        let raw = read.raw?;
        let source = match raw.times.at(self.inner.clock.now_ms()) {
            Freshness::Fresh => Source::Hit,
            Freshness::Stale => Source::Stale,
            _ => return None,
        };
        let value = self.decode(key, &raw)?;
        Some(Lookup { value, source })
    }

    /// Whether `key` holds a fresh value, judged from its header alone (nothing is decoded).
    pub async fn is_fresh(&self, key: &Key) -> bool {
        self.read_one(key).await.raw.is_some_and(|r| r.times.at(self.inner.clock.now_ms()) == Freshness::Fresh)
    }

    /// Stores `value` under `key` with the policy's lifetimes.
    pub async fn set<T: Serialize + ?Sized>(&self, key: &Key, value: &T, policy: &Policy) -> Result<()> {
        let json = serde_json::to_vec(value).map_err(CodecError::from)?;
        let stamp = self.current_stamp(key.namespace()).await?;
        self.store(key, policy, stamp, json).await
    }

    /// Several keys in one MGET; the misses handed to `loader` at once (it gets their indices
    /// into `keys` and returns one `Option` per index, in that order); what it returns is
    /// backfilled in one pipelined write. `None` values are cached only if the policy has a
    /// negative TTL.
    pub async fn get_many_or_load<T, E, F, Fut>(
        &self,
        keys: &[Key],
        policy: &Policy,
        loader: F,
    ) -> std::result::Result<Batch<T>, LoadError<E>>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce(Vec<usize>) -> Fut,
        Fut: Future<Output = std::result::Result<Vec<Option<T>>, E>>,
    {
        let started = Instant::now();
        let out = self.get_many_inner(keys, policy, loader).await;
        self.inner.stats.latency.record(started.elapsed());
        out
    }

    async fn get_many_inner<T, E, F, Fut>(
        &self,
        keys: &[Key],
        policy: &Policy,
        loader: F,
    ) -> std::result::Result<Batch<T>, LoadError<E>>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce(Vec<usize>) -> Fut,
        Fut: Future<Output = std::result::Result<Vec<Option<T>>, E>>,
    {
        let reads = self.read_many(keys).await;
        let now = self.inner.clock.now_ms();
        let mut values: Vec<Option<T>> = Vec::with_capacity(keys.len());
        let mut missing = Vec::new();
        for (i, read) in reads.iter().enumerate() {
            let hit = read
                .raw
                .as_ref()
                .filter(|r| r.times.at(now) == Freshness::Fresh)
                .and_then(|r| self.decode::<Option<T>>(&keys[i], r));
            match hit {
                Some(v) => values.push(v),
                None => {
                    values.push(None);
                    missing.push(i);
                }
            }
        }
        let hits = keys.len() - missing.len();
        self.inner.stats.add(|c| &c.hits, hits as u64);
        self.inner.stats.add(|c| &c.misses, missing.len() as u64);
        let mut batch = Batch { values, hits, misses: missing.len(), fail_safe: 0 };
        if missing.is_empty() {
            return Ok(batch);
        }
        let load = tokio::time::timeout(policy.load_timeout, loader(missing.clone())).await;
        let loaded = match load {
            Ok(Ok(loaded)) if loaded.len() == missing.len() => Ok(loaded),
            Ok(Ok(loaded)) => {
                tracing::error!(
                    expected = missing.len(),
                    got = loaded.len(),
                    "batch loader returned the wrong number of values"
                );
                Err(LoadError::Coalesced(format!(
                    "batch loader returned {} values for {} keys",
                    loaded.len(),
                    missing.len()
                )))
            }
            Ok(Err(e)) => Err(LoadError::Loader(e)),
            Err(_) => Err(LoadError::Timeout(policy.load_timeout)),
        };
        match loaded {
            Ok(loaded) => {
                self.inner.stats.incr(|c| &c.loads);
                let mut writes = Vec::with_capacity(missing.len());
                for (i, value) in missing.iter().copied().zip(loaded) {
                    if value.is_some() || policy.negative_ttl.is_some() {
                        if let (Some(stamp), Ok(json)) = (reads[i].stamp, serde_json::to_vec(&value)) {
                            let (times, ttl) = self.times_for(policy, json == b"null");
                            let (tag, body) = self.inner.codec.pack_json(json);
                            writes.push((keys[i].as_str().to_string(), entry::write(stamp, times, tag, &body), ttl));
                        }
                    }
                    batch.values[i] = value;
                }
                if !writes.is_empty() {
                    match self.inner.backend.mset_with_ttl(&writes).await {
                        Ok(()) => self.inner.stats.add(|c| &c.sets, writes.len() as u64),
                        Err(e) => self.backend_error("mset", &e),
                    }
                }
                Ok(batch)
            }
            Err(e) => {
                self.inner.stats.incr(|c| &c.load_errors);
                let mut all = true;
                for i in missing {
                    let stale = reads[i]
                        .raw
                        .as_ref()
                        .filter(|r| r.times.at(now) != Freshness::Expired)
                        .and_then(|r| self.decode::<Option<T>>(&keys[i], r));
                    match stale {
                        Some(v) => {
                            batch.values[i] = v;
                            batch.fail_safe += 1;
                        }
                        None => all = false,
                    }
                }
                if all {
                    self.inner.stats.add(|c| &c.fail_safe, batch.fail_safe as u64);
                    Ok(batch)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Loads and stores each key that is not fresh in the cache; `items` pairs keys with
    /// not-yet-started loads (futures do nothing until awaited). Runs up to 8 loads at once.
    pub async fn warm<T, E, Fut>(&self, items: Vec<(Key, Fut)>, policy: &Policy) -> WarmReport
    where
        T: Serialize,
        E: std::fmt::Display,
        Fut: Future<Output = std::result::Result<T, E>>,
    {
        let keys: Vec<Key> = items.iter().map(|(k, _)| k.clone()).collect();
        let reads = self.read_many(&keys).await;
        let now = self.inner.clock.now_ms();
        let mut report = WarmReport { requested: items.len(), ..WarmReport::default() };
        let mut todo = Vec::new();
        for ((key, fut), read) in items.into_iter().zip(reads) {
            if read.raw.as_ref().is_some_and(|r| r.times.at(now) == Freshness::Fresh) {
                report.already_cached += 1;
            } else {
                todo.push((key, fut, read.stamp));
            }
        }
        let results: Vec<bool> = futures::stream::iter(todo)
            .map(|(key, fut, stamp)| async move {
                match (tokio::time::timeout(policy.load_timeout, fut).await, stamp) {
                    (Ok(Ok(v)), Some(stamp)) => match serde_json::to_vec(&v) {
                        Ok(json) => self.store(&key, policy, stamp, json).await.is_ok(),
                        Err(_) => false,
                    },
                    (Ok(Err(e)), _) => {
                        tracing::warn!(key = %key, error = %e, "warming load failed");
                        false
                    }
                    _ => false,
                }
            })
            .buffer_unordered(8)
            .collect()
            .await;
        report.warmed = results.iter().filter(|ok| **ok).count();
        report.failed = results.len() - report.warmed;
        report
    }

    /// Deletes one key.
    pub async fn invalidate(&self, key: &Key) -> Result<u64> {
        let n = self
            .inner
            .backend
            .delete(&[key.as_str().to_string()])
            .await
            .inspect_err(|e| self.backend_error("delete", e))?;
        self.inner.stats.add(|c| &c.deletes, n);
        self.inner.stats.incr(|c| &c.invalidations);
        Ok(n)
    }

    /// Invalidates every value of a namespace in O(1) by moving its generation on; returns the
    /// new generation.
    pub async fn invalidate_namespace(&self, ns: &str) -> Result<u64> {
        crate::keys::validate_part(ns)?;
        let generation = self
            .inner
            .backend
            .bump(&self.inner.keys.generation_key(ns), self.inner.clock.now_ms())
            .await
            .inspect_err(|e| self.backend_error("bump", e))?;
        self.inner.stats.incr(|c| &c.invalidations);
        Ok(generation)
    }

    /// Deletes the keys of `ns` matching `tail` (a glob with `*` and `?`) on every node;
    /// returns how many.
    pub async fn invalidate_pattern(&self, ns: &str, tail: &str) -> Result<u64> {
        let pattern = self.inner.keys.pattern(ns, Some(tail))?;
        let n = self
            .inner
            .backend
            .delete_by_pattern(&pattern)
            .await
            .inspect_err(|e| self.backend_error("delete_by_pattern", e))?;
        self.inner.stats.add(|c| &c.deletes, n);
        self.inner.stats.incr(|c| &c.invalidations);
        Ok(n)
    }

    /// Invalidates everything this keyspace holds by moving the epoch on; returns the new one.
    pub async fn bump_version(&self) -> Result<u64> {
        let epoch = self
            .inner
            .backend
            .bump(&self.inner.keys.epoch_key(), self.inner.clock.now_ms())
            .await
            .inspect_err(|e| self.backend_error("bump", e))?;
        self.inner.stats.incr(|c| &c.invalidations);
        Ok(epoch)
    }

    /// The current epoch and a namespace's generation.
    pub async fn current_stamp(&self, ns: &str) -> Result<Stamp> {
        let keys = [self.inner.keys.epoch_key(), self.inner.keys.generation_key(ns)];
        let v = self.inner.backend.mget(&keys).await.inspect_err(|e| self.backend_error("mget", e))?;
        Ok(Stamp { epoch: parse_counter(v[0].as_ref()), generation: parse_counter(v[1].as_ref()) })
    }

    /// How many keys a namespace holds (SCAN on every node; up to `limit`).
    pub async fn count(&self, ns: &str, limit: usize) -> Result<usize> {
        let pattern = self.inner.keys.pattern(ns, None)?;
        Ok(self.inner.backend.scan(&pattern, limit).await?.len())
    }

    /// Deletes what can never be served again, on every node: keys of other key versions
    /// under this keyspace's prefix, value keys without a TTL, and values stamped with an old
    /// epoch or generation. The engine's own keys and the namespaces in `state` (counters,
    /// indexes: state, not cache) are left alone. SCAN + UNLINK, never KEYS.
    pub async fn sweep(&self, state: &[&str]) -> Result<SweepReport> {
        let keys = &self.inner.keys;
        let backend = &self.inner.backend;
        let mut report = SweepReport::default();
        let root = keys.root();
        // Other versions: `[{prefix}:]{version}:...` with another version.
        let (prefix, version) = match root.rsplit_once(':') {
            Some((p, v)) => (format!("{p}:"), v.to_string()),
            None => (String::new(), root.to_string()),
        };
        let mut doomed = Vec::new();
        let mut by_ns: HashMap<String, Vec<String>> = HashMap::new();
        // One SCAN serves all three checks: every `v<n>` version under the prefix, or only this
        // keyspace when its version is not of that form.
        let pattern = if version.starts_with('v') { format!("{prefix}v*:*") } else { format!("{root}:*") };
        for key in backend.scan(&pattern, usize::MAX).await? {
            report.scanned += 1;
            let rest = &key[prefix.len()..];
            let key_version = rest.split(':').next().unwrap_or_default();
            let is_version = key_version.len() > 1
                && key_version.starts_with('v')
                && key_version[1..].bytes().all(|b| b.is_ascii_digit());
            if key_version != version && is_version {
                report.old_version += 1;
                doomed.push(key);
                continue;
            }
            if key_version != version {
                continue;
            }
            let after_root = &key[root.len() + 1..];
            let ns = after_root.split(':').next().unwrap_or_default();
            if ns == crate::keys::META_NS || state.contains(&ns) || after_root.starts_with('{') {
                continue;
            }
            if backend.ttl(&key).await? == crate::kv::KeyTtl::Persistent {
                report.no_ttl += 1;
                doomed.push(key);
            } else {
                // A live value key: its stamp is checked below, from the same scan.
                by_ns.entry(ns.to_string()).or_default().push(key);
            }
        }
        // Old generations: read values namespace by namespace, compare stamps (header only).
        for (ns, ks) in by_ns {
            let current = self.current_stamp(&ns).await?;
            for chunk in ks.chunks(500) {
                let values = backend.mget(chunk).await?;
                for (key, value) in chunk.iter().zip(values) {
                    if let Some(Ok(e)) = value.as_deref().map(entry::read) {
                        if e.stamp != current {
                            report.old_generation += 1;
                            doomed.push(key.clone());
                        }
                    }
                }
            }
        }
        for chunk in doomed.chunks(500) {
            backend.delete(chunk).await?;
        }
        self.inner.stats.add(|c| &c.deletes, doomed.len() as u64);
        Ok(report)
    }

    /// This instance's statistics.
    pub fn report(&self) -> StatsReport {
        self.inner.stats.report()
    }

    /// Adds this instance's counters to the shared aggregate.
    pub async fn flush_stats(&self) -> Result<()> {
        let counters: &dyn Counters = &*self.inner.backend;
        self.inner.stats.flush(counters, &self.inner.keys.stats_key()).await
    }

    /// Every instance's statistics, as flushed.
    pub async fn aggregate_stats(&self) -> Result<StatsReport> {
        let counters: &dyn Counters = &*self.inner.backend;
        Stats::aggregate(counters, &self.inner.keys.stats_key()).await
    }

    pub async fn server_info(&self) -> Result<ServerInfo> {
        self.inner.backend.info().await
    }

    // ---- internals ----

    fn backend_error(&self, op: &'static str, e: &CacheError) {
        self.inner.stats.incr(|c| &c.errors);
        tracing::warn!(op, error = %e, "cache backend error; falling through");
    }

    async fn read_one(&self, key: &Key) -> Read {
        self.read_many(std::slice::from_ref(key)).await.pop().unwrap_or(Read { stamp: None, raw: None })
    }

    /// One MGET: epoch, the generation of each namespace involved, then the values.
    async fn read_many(&self, keys: &[Key]) -> Vec<Read> {
        let mut namespaces: Vec<&str> = Vec::new();
        for k in keys {
            if !namespaces.contains(&k.namespace()) {
                namespaces.push(k.namespace());
            }
        }
        let mut request = Vec::with_capacity(1 + namespaces.len() + keys.len());
        request.push(self.inner.keys.epoch_key());
        request.extend(namespaces.iter().map(|ns| self.inner.keys.generation_key(ns)));
        request.extend(keys.iter().map(|k| k.as_str().to_string()));
        let mut values = match self.inner.backend.mget(&request).await {
            Ok(v) if v.len() == request.len() => v,
            Ok(_) => {
                self.inner.stats.incr(|c| &c.errors);
                return keys.iter().map(|_| Read { stamp: None, raw: None }).collect();
            }
            Err(e) => {
                self.backend_error("mget", &e);
                return keys.iter().map(|_| Read { stamp: None, raw: None }).collect();
            }
        };
        let epoch = parse_counter(values[0].as_ref());
        let gens: Vec<u64> = (0..namespaces.len()).map(|i| parse_counter(values[1 + i].as_ref())).collect();
        let first = 1 + namespaces.len();
        keys.iter()
            .enumerate()
            .map(|(i, k)| {
                let ns = namespaces.iter().position(|n| *n == k.namespace()).unwrap_or(0);
                let stamp = Stamp { epoch, generation: gens[ns] };
                let raw = values[first + i].take().and_then(|bytes| match entry::read(&bytes) {
                    Ok(e) if e.stamp == stamp => Some(Raw { times: e.times, bytes }),
                    Ok(_) => None,
                    Err(err) => {
                        self.inner.stats.incr(|c| &c.decode_errors);
                        tracing::warn!(key = %k, error = %err, "unreadable cache entry treated as a miss");
                        None
                    }
                });
                Read { stamp: Some(stamp), raw }
            })
            .collect()
    }

    fn decode<T: DeserializeOwned>(&self, key: &Key, raw: &Raw) -> Option<T> {
        let e = raw.entry();
        match self.inner.codec.decode(e.tag, e.body) {
            Ok(v) => Some(v),
            Err(err) => {
                self.inner.stats.incr(|c| &c.decode_errors);
                tracing::warn!(key = %key, error = %err, "undecodable cache value treated as a miss");
                None
            }
        }
    }

    fn json_of(&self, raw: &Raw) -> Option<Arc<[u8]>> {
        let e = raw.entry();
        self.inner.codec.unpack_json(e.tag, e.body).ok().map(|j| Arc::from(&*j))
    }

    /// Lifetimes for a value written now, and its backend TTL.
    fn times_for(&self, policy: &Policy, is_null: bool) -> (Times, Duration) {
        let now = self.inner.clock.now_ms();
        let (fresh, stale, keep) = match (is_null, policy.negative_ttl) {
            (true, Some(neg)) => (neg, Duration::ZERO, Duration::ZERO),
            _ => (policy.jittered_ttl(policy.ttl), policy.stale_for, policy.fail_safe_for),
        };
        let fresh_until = now + fresh.as_millis() as u64;
        let stale_until = fresh_until + stale.as_millis() as u64;
        let keep_until = stale_until + keep.as_millis() as u64;
        (Times { fresh_until, stale_until, keep_until }, Duration::from_millis((keep_until - now).max(1)))
    }

    async fn store(&self, key: &Key, policy: &Policy, stamp: Stamp, json: Vec<u8>) -> Result<()> {
        let (times, ttl) = self.times_for(policy, json == b"null");
        let (tag, body) = self.inner.codec.pack_json(json);
        let bytes = entry::write(stamp, times, tag, &body);
        match self.inner.backend.set(key.as_str(), &bytes, Some(ttl)).await {
            Ok(()) => {
                self.inner.stats.incr(|c| &c.sets);
                Ok(())
            }
            Err(e) => {
                self.backend_error("set", &e);
                Err(e)
            }
        }
    }

    /// Joins the load of `key` in flight in this process, or leads it.
    async fn load_coalesced<T, E, F, Fut>(
        &self,
        key: &Key,
        policy: &Policy,
        read: Read,
        loader: F,
    ) -> std::result::Result<Lookup<T>, LoadError<E>>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        E: std::fmt::Display + Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<T, E>> + Send + 'static,
    {
        loop {
            // Decide the role with the map locked, then release it before any await.
            let role = {
                let mut flights = lock(&self.inner.flights);
                match flights.get(key.as_str()) {
                    Some(rx) => Err(rx.clone()),
                    None => {
                        let (tx, rx) = watch::channel(None);
                        flights.insert(key.as_str().to_string(), rx);
                        Ok(tx)
                    }
                }
            };
            let follow = match role {
                Err(rx) => Some(rx),
                Ok(tx) => {
                    let _guard = FlightGuard { cache: self, key: key.as_str() };
                    self.inner.stats.incr(|c| &c.misses);
                    let result = self.lead_load(key, policy, read, loader).await;
                    let shared: FlightResult = match &result {
                        Ok((_, json, source)) => Ok((json.clone(), *source)),
                        Err(e) => Err(e.to_string()),
                    };
                    let _ = tx.send(Some(shared));
                    return result.map(|(value, _, source)| Lookup { value, source });
                }
            };
            if let Some(mut rx) = follow {
                let shared = match rx.wait_for(Option::is_some).await {
                    Ok(v) => v.clone(),
                    // The leader was cancelled before finishing: try again (maybe as leader).
                    Err(_) => continue,
                };
                self.inner.stats.incr(|c| &c.coalesced);
                return match shared {
                    Some(Ok((json, source))) => {
                        let source = if source == Source::Loaded { Source::Coalesced } else { source };
                        serde_json::from_slice(&json)
                            .map(|value| Lookup { value, source })
                            .map_err(|e| LoadError::Codec(e.into()))
                    }
                    Some(Err(msg)) => Err(LoadError::Coalesced(msg)),
                    None => continue,
                };
            }
        }
    }

    /// The leader's load: take the cross-instance lock (or wait briefly for its holder's
    /// value), run the loader under its timeout, store, and fall back to a stale value.
    async fn lead_load<T, E, F, Fut>(
        &self,
        key: &Key,
        policy: &Policy,
        read: Read,
        loader: F,
    ) -> std::result::Result<(T, Arc<[u8]>, Source), LoadError<E>>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        E: std::fmt::Display + Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<T, E>> + Send + 'static,
    {
        let lock_key = self.inner.keys.lock_key(key);
        let token = format!("{}:{:x}", self.inner.owner, rand::random::<u64>());
        // Without a reachable backend there is nobody to coordinate with: load.
        let locked = read.stamp.is_none()
            || self.inner.backend.set_if_absent(&lock_key, token.as_bytes(), policy.lock_ttl).await.unwrap_or(true);
        if !locked {
            if let Some(found) = self.wait_for_holder::<T>(key, policy).await {
                return Ok(found);
            }
            // The holder is slow: a value still inside the fail-safe window beats a second load.
            if let Some(raw) = read.raw.as_ref().filter(|r| r.times.at(self.inner.clock.now_ms()) != Freshness::Expired)
            {
                if let (Some(v), Some(json)) = (self.decode::<T>(key, raw), self.json_of(raw)) {
                    self.inner.stats.incr(|c| &c.fail_safe);
                    return Ok((v, json, Source::FailSafe));
                }
            }
        }
        let outcome = tokio::time::timeout(policy.load_timeout, loader()).await;
        let result = match outcome {
            Ok(Ok(value)) => {
                self.inner.stats.incr(|c| &c.loads);
                let json = serde_json::to_vec(&value).map_err(|e| LoadError::Codec(e.into()))?;
                let shared: Arc<[u8]> = Arc::from(json.as_slice());
                if let Some(stamp) = read.stamp {
                    let _ = self.store(key, policy, stamp, json).await;
                }
                Ok((value, shared, Source::Loaded))
            }
            failed => {
                self.inner.stats.incr(|c| &c.load_errors);
                let err = match failed {
                    Ok(Err(e)) => LoadError::Loader(e),
                    _ => LoadError::Timeout(policy.load_timeout),
                };
                tracing::warn!(key = %key, error = %err, "load failed");
                let stale = read
                    .raw
                    .as_ref()
                    .filter(|r| r.times.at(self.inner.clock.now_ms()) != Freshness::Expired)
                    .and_then(|raw| Some((self.decode::<T>(key, raw)?, self.json_of(raw)?)));
                match stale {
                    Some((v, json)) => {
                        self.inner.stats.incr(|c| &c.fail_safe);
                        Ok((v, json, Source::FailSafe))
                    }
                    None => Err(err),
                }
            }
        };
        if locked && read.stamp.is_some() {
            let _ = self.inner.backend.delete_if_equals(&lock_key, token.as_bytes()).await;
        }
        result
    }

    /// Polls for the value another instance is loading, up to the policy's lock wait.
    async fn wait_for_holder<T: DeserializeOwned>(&self, key: &Key, policy: &Policy) -> Option<(T, Arc<[u8]>, Source)> {
        let deadline = Instant::now() + policy.lock_wait;
        let step = (policy.lock_wait / 10).clamp(Duration::from_millis(2), Duration::from_millis(50));
        while Instant::now() < deadline {
            tokio::time::sleep(step).await;
            let read = self.read_one(key).await;
            if let Some(raw) = read.raw.filter(|r| r.times.at(self.inner.clock.now_ms()) == Freshness::Fresh) {
                if let (Some(v), Some(json)) = (self.decode::<T>(key, &raw), self.json_of(&raw)) {
                    return Some((v, json, Source::Coalesced));
                }
            }
        }
        None
    }

    /// Hands one refresh of `key` to the task runner, unless one is already pending here.
    fn refresh_later<T, E, F, Fut>(&self, key: &Key, policy: &Policy, stamp: Stamp, loader: F)
    where
        T: Serialize + Send + 'static,
        E: std::fmt::Display + Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<T, E>> + Send + 'static,
    {
        if !lock(&self.inner.refreshing).insert(key.as_str().to_string()) {
            return;
        }
        // Created outside the task so that a task dropped unrun still clears the mark.
        let mark = RefreshMark { inner: self.inner.clone(), key: key.as_str().to_string() };
        let cache = self.clone();
        let key = key.clone();
        let policy = *policy;
        self.inner.tasks.submit(Box::pin(async move {
            let _mark = mark;
            let lock_key = cache.inner.keys.lock_key(&key);
            let token = format!("{}:{:x}", cache.inner.owner, rand::random::<u64>());
            if !cache.inner.backend.set_if_absent(&lock_key, token.as_bytes(), policy.lock_ttl).await.unwrap_or(false) {
                return; // another instance is refreshing it
            }
            match tokio::time::timeout(policy.load_timeout, loader()).await {
                Ok(Ok(value)) => {
                    cache.inner.stats.incr(|c| &c.loads);
                    if let Ok(json) = serde_json::to_vec(&value) {
                        if cache.store(&key, &policy, stamp, json).await.is_ok() {
                            cache.inner.stats.incr(|c| &c.refreshes);
                        }
                    }
                }
                Ok(Err(e)) => {
                    cache.inner.stats.incr(|c| &c.load_errors);
                    tracing::warn!(key = %key, error = %e, "background refresh failed; stale value kept");
                }
                Err(_) => {
                    cache.inner.stats.incr(|c| &c.load_errors);
                    tracing::warn!(key = %key, "background refresh timed out; stale value kept");
                }
            }
            let _ = cache.inner.backend.delete_if_equals(&lock_key, token.as_bytes()).await;
        }));
    }
}

struct FlightGuard<'a> {
    cache: &'a Cache,
    key: &'a str,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        lock(&self.cache.inner.flights).remove(self.key);
    }
}

struct RefreshMark {
    inner: Arc<Inner>,
    key: String,
}

impl Drop for RefreshMark {
    fn drop(&mut self) {
        lock(&self.inner.refreshing).remove(&self.key);
    }
}
