//! The in-memory adapter: the embedded default for local runs and fast tests.
//!
//! Values live in a bounded moka cache (entry cap, per-entry TTL, TinyLFU eviction). Expiry
//! is also checked against the injected [`Clock`] on every read, so tests can move time
//! instead of sleeping. Counters, generations and the expiry index live in plain maps that are
//! never evicted, like their TTL-less Redis counterparts.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::future::Cache as Moka;
use moka::Expiry;

use super::{Counters, ExpiryIndex, KeyTtl, KvStore, ScanAt, ServerInfo, Swap};
use crate::clock::{Clock, SystemClock};
use crate::error::Result;

mod counters;

#[derive(Clone)]
struct Entry {
    bytes: Arc<[u8]>,
    /// Clock milliseconds at which the entry expires; None = never.
    expires_at: Option<u64>,
    ttl: Option<Duration>,
}

struct EntryExpiry;

impl Expiry<String, Entry> for EntryExpiry {
    fn expire_after_create(&self, _key: &String, value: &Entry, _now: Instant) -> Option<Duration> {
        value.ttl
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Entry,
        _now: Instant,
        _left: Option<Duration>,
    ) -> Option<Duration> {
        value.ttl
    }
}

#[derive(Default)]
struct Index {
    by_id: HashMap<String, u64>,
    by_time: BTreeSet<(u64, String)>,
}

impl Index {
    fn insert(&mut self, id: &str, at: u64) {
        if let Some(old) = self.by_id.insert(id.to_string(), at) {
            self.by_time.remove(&(old, id.to_string()));
        }
        self.by_time.insert((at, id.to_string()));
    }

    fn remove(&mut self, id: &str) -> bool {
        match self.by_id.remove(id) {
            Some(at) => {
                self.by_time.remove(&(at, id.to_string()));
                true
            }
            None => false,
        }
    }
}

#[derive(Default)]
struct State {
    ints: HashMap<String, u64>,
    hashes: HashMap<String, HashMap<String, i64>>,
    /// `incr_once` keys and when they are forgotten (clock ms).
    once: HashMap<String, u64>,
    indexes: HashMap<String, Index>,
}

/// Bounded in-process backend.
pub struct MemoryBackend {
    values: Moka<String, Entry>,
    // A std Mutex: nothing awaits while it is held.
    state: Mutex<State>,
    clock: Arc<dyn Clock>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBackend").field("entries", &self.values.entry_count()).finish()
    }
}

impl MemoryBackend {
    /// A backend holding at most `max_entries` values, on the real clock.
    pub fn new(max_entries: u64) -> Self {
        Self::with_clock(max_entries, Arc::new(SystemClock))
    }

    pub fn with_clock(max_entries: u64, clock: Arc<dyn Clock>) -> Self {
        Self {
            values: Moka::builder().max_capacity(max_entries).expire_after(EntryExpiry).build(),
            state: Mutex::new(State::default()),
            clock,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters more than losing the cache, so recover from poisoning.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn live(&self, e: &Entry) -> bool {
        e.expires_at.is_none_or(|at| at > self.clock.now_ms())
    }

    fn entry(&self, ttl: Option<Duration>, value: &[u8]) -> Entry {
        Entry { bytes: Arc::from(value), expires_at: ttl.map(|t| self.clock.now_ms() + t.as_millis() as u64), ttl }
    }

    /// Values of `keys`: evictable values from moka, counters (generations) from the state map,
    /// which is locked once for the whole batch and only if some key was not a value.
    async fn read_many(&self, keys: &[String]) -> Vec<Option<Vec<u8>>> {
        let mut out = Vec::with_capacity(keys.len());
        let mut unresolved = false;
        for key in keys {
            let found = match self.values.get(key).await {
                Some(e) if self.live(&e) => Some(e.bytes.to_vec()),
                Some(_) => {
                    self.remove_if(key, |e| !self.live(e)).await;
                    None
                }
                None => None,
            };
            unresolved |= found.is_none();
            out.push(found);
        }
        if unresolved {
            let st = self.state();
            for (slot, key) in out.iter_mut().zip(keys) {
                if slot.is_none() {
                    *slot = st.ints.get(key).map(|n| n.to_string().into_bytes());
                }
            }
        }
        let hits = out.iter().filter(|v| v.is_some()).count() as u64;
        self.hits.fetch_add(hits, Ordering::Relaxed);
        self.misses.fetch_add(keys.len() as u64 - hits, Ordering::Relaxed);
        out
    }

    /// Every write of a value goes through moka's per-key compute, which is serialised per key
    /// (plain `insert`/`remove` are not serialised with it): a delete can never slip between
    /// a compare-and-swap's read and its write.
    async fn put(&self, key: &str, e: Entry) {
        self.values
            .entry(key.to_string())
            .and_compute_with(|_| std::future::ready(moka::ops::compute::Op::Put(e)))
            .await;
    }

    /// Removes `key` if its value satisfies `doomed`; returns the removed value.
    async fn remove_if(&self, key: &str, doomed: impl FnOnce(&Entry) -> bool) -> Option<Entry> {
        let result = self
            .values
            .entry(key.to_string())
            .and_compute_with(|current| {
                let op = match current {
                    Some(e) if doomed(e.value()) => moka::ops::compute::Op::Remove,
                    _ => moka::ops::compute::Op::Nop,
                };
                std::future::ready(op)
            })
            .await;
        match result {
            moka::ops::compute::CompResult::Removed(e) => Some(e.into_value()),
            _ => None,
        }
    }

    fn all_keys(&self) -> Vec<String> {
        let now = self.clock.now_ms();
        let mut keys: Vec<String> = self
            .values
            .iter()
            .filter(|(_, e)| e.expires_at.is_none_or(|at| at > now))
            .map(|(k, _)| (*k).clone())
            .collect();
        let st = self.state();
        keys.extend(st.ints.keys().cloned());
        keys.extend(st.hashes.keys().cloned());
        keys.extend(st.indexes.keys().cloned());
        keys
    }
}

/// Redis-style glob matching (`*`, `?`; the key module never lets `[` into a pattern).
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

impl MemoryBackend {
    async fn ttl_of(&self, key: &str) -> KeyTtl {
        if let Some(e) = self.values.get(key).await {
            let now = self.clock.now_ms();
            return match e.expires_at {
                None => KeyTtl::Persistent,
                Some(at) if at > now => KeyTtl::Expires(Duration::from_millis(at - now)),
                Some(_) => KeyTtl::Missing,
            };
        }
        let st = self.state();
        let persistent = st.ints.contains_key(key) || st.hashes.contains_key(key) || st.indexes.contains_key(key);
        if persistent {
            KeyTtl::Persistent
        } else {
            KeyTtl::Missing
        }
    }
}

#[async_trait]
impl KvStore for MemoryBackend {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.read_many(std::slice::from_ref(&key.to_string())).await.pop().flatten())
    }

    async fn mget(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        Ok(self.read_many(keys).await)
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        self.put(key, self.entry(ttl, value)).await;
        Ok(())
    }

    async fn mset_with_ttl(&self, entries: &[(String, Vec<u8>, Duration)]) -> Result<()> {
        for (k, v, ttl) in entries {
            self.put(k, self.entry(Some(*ttl), v)).await;
        }
        Ok(())
    }

    async fn delete(&self, keys: &[String]) -> Result<u64> {
        let mut n = 0;
        for k in keys {
            if let Some(e) = self.remove_if(k, |_| true).await {
                if self.live(&e) {
                    n += 1;
                }
            }
            let mut st = self.state();
            let found = st.ints.remove(k).is_some() | st.hashes.remove(k).is_some() | st.indexes.remove(k).is_some();
            n += found as u64;
        }
        Ok(n)
    }

    async fn scan_page(&self, pattern: &str, at: &ScanAt) -> Result<(Vec<String>, Option<ScanAt>)> {
        // Pages of 1,000 keys of the sorted keyspace; the cursor is the last key's rank.
        const PAGE: usize = 1000;
        let mut all = self.all_keys();
        all.sort_unstable();
        let from = at.cursor as usize;
        let keys = all.iter().skip(from).take(PAGE).filter(|k| glob_match(pattern, k)).cloned().collect();
        let next = (from + PAGE < all.len()).then(|| ScanAt { node: 0, cursor: (from + PAGE) as u64 });
        Ok((keys, next))
    }

    async fn delete_by_pattern(&self, pattern: &str) -> Result<u64> {
        let keys = self.scan(pattern, usize::MAX).await?;
        self.delete(&keys).await
    }

    async fn swap(&self, swaps: &[Swap]) -> Result<Vec<bool>> {
        let mut out = Vec::with_capacity(swaps.len());
        for s in swaps {
            let now = self.clock.now_ms();
            let replacement = s.value.as_ref().map(|(v, ttl)| self.entry(Some(*ttl), v));
            let mut applied = false;
            let applied_ref = &mut applied;
            self.values
                .entry(s.key.clone())
                .and_compute_with(|current| {
                    let current = current.map(|e| e.into_value()).filter(|e| e.expires_at.is_none_or(|at| at > now));
                    let matches = match (&s.expect, &current) {
                        (None, None) => true,
                        (Some(prefix), Some(e)) => e.bytes.starts_with(prefix),
                        _ => false,
                    };
                    *applied_ref = matches;
                    let op = match (matches, replacement) {
                        (true, Some(e)) => moka::ops::compute::Op::Put(e),
                        (true, None) if current.is_some() => moka::ops::compute::Op::Remove,
                        _ => moka::ops::compute::Op::Nop,
                    };
                    std::future::ready(op)
                })
                .await;
            out.push(applied);
        }
        Ok(out)
    }

    async fn set_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool> {
        let fresh = self.entry(Some(ttl), value);
        let now = self.clock.now_ms();
        let result = self
            .values
            .entry(key.to_string())
            .and_compute_with(|current| {
                let op = match current {
                    Some(e) if e.value().expires_at.is_none_or(|at| at > now) => moka::ops::compute::Op::Nop,
                    _ => moka::ops::compute::Op::Put(fresh),
                };
                std::future::ready(op)
            })
            .await;
        Ok(matches!(
            result,
            moka::ops::compute::CompResult::Inserted(_) | moka::ops::compute::CompResult::ReplacedWith(_)
        ))
    }

    async fn delete_if_equals(&self, key: &str, value: &[u8]) -> Result<bool> {
        let result = self
            .values
            .entry(key.to_string())
            .and_compute_with(|current| {
                let op = match current {
                    Some(e) if &*e.value().bytes == value => moka::ops::compute::Op::Remove,
                    _ => moka::ops::compute::Op::Nop,
                };
                std::future::ready(op)
            })
            .await;
        Ok(matches!(result, moka::ops::compute::CompResult::Removed(_)))
    }

    async fn bump(&self, key: &str, floor: u64) -> Result<u64> {
        let mut st = self.state();
        let slot = st.ints.entry(key.to_string()).or_insert(0);
        *slot = (*slot + 1).max(floor);
        Ok(*slot)
    }

    async fn ttls(&self, keys: &[String]) -> Result<Vec<KeyTtl>> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(self.ttl_of(key).await);
        }
        Ok(out)
    }

    async fn info(&self) -> Result<ServerInfo> {
        self.values.run_pending_tasks().await;
        let st = self.state();
        let values = self.values.entry_count();
        let bytes: u64 = self.values.iter().map(|(k, e)| (k.len() + e.bytes.len()) as u64).sum();
        Ok(ServerInfo {
            backend: "memory".into(),
            version: concat!("livecache-memory ", env!("CARGO_PKG_VERSION")).into(),
            nodes: 1,
            used_memory: bytes,
            used_memory_peak: bytes,
            connected_clients: 0,
            keys: values + (st.ints.len() + st.hashes.len() + st.indexes.len()) as u64,
            keyspace_hits: self.hits.load(Ordering::Relaxed),
            keyspace_misses: self.misses.load(Ordering::Relaxed),
            evicted_keys: 0,
        })
    }
}

#[cfg(test)]
mod tests;
