//! Single keys: read-through with stale-while-revalidate and fail-safe, plain get/set, and
//! the one-round-trip read (the key's group's epoch and generation, and the value, in one MGET)
//! every lookup starts with.

use super::*;
use crate::kv::Revalidated;

impl Cache {
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
        T: ToJson + FromJson + Send + 'static,
        E: std::fmt::Display + Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<T, E>> + Send + 'static,
    {
        let started = Instant::now();
        let out = async {
            let mut loader = loader;
            loop {
                let read = self.read_one(key).await;
                let now = self.inner.clock.now_ms();
                if let Some(raw) = &read.raw {
                    match raw.times.at(now) {
                        Freshness::Fresh => {
                            if let Some(value) = self.decode(key, raw) {
                                self.inner.stats.incr(|c| &c.hits);
                                return Ok(Lookup { value, source: Served::Hit });
                            }
                        }
                        Freshness::Stale => {
                            if let Some(value) = self.decode(key, raw) {
                                self.inner.stats.incr(|c| &c.stale);
                                self.refresh_later(key, policy, read, loader);
                                return Ok(Lookup { value, source: Served::Stale });
                            }
                        }
                        Freshness::FailSafe | Freshness::Expired => {}
                    }
                }
                match self.load_coalesced(key, policy, read, loader).await {
                    Ok(done) => return done,
                    // The load this call joined cannot vouch for its value: read again.
                    Err(back) => loader = back,
                }
            }
        }
        .await;
        self.inner.stats.latency.record(started.elapsed());
        out
    }

    /// The cached value, fresh or stale, without loading.
    pub async fn get<T: FromJson>(&self, key: &Key) -> Option<Lookup<T>> {
        let read = self.read_one(key).await;
        let raw = read.raw?;
        let source = match raw.times.at(self.inner.clock.now_ms()) {
            Freshness::Fresh => Served::Hit,
            Freshness::Stale => Served::Stale,
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
        let stamp = self.stamp_in(key.namespace(), key.group()).await?;
        self.store(key, policy, stamp, json).await
    }

    pub(super) fn backend_error(&self, op: &'static str, e: &CacheError) {
        self.inner.stats.incr(|c| &c.errors);
        tracing::warn!(op, error = %e, "cache backend error; falling through");
    }

    /// One key's read: [`read_many`](Self::read_many), or — when L1 holds a copy of the value —
    /// the same round trip answering "unchanged" for it (see [`CacheBuilder::l1`]).
    pub(super) async fn read_one(&self, key: &Key) -> Read {
        let keys = std::slice::from_ref(key);
        let Some(l1) = &self.inner.l1 else {
            return self.read_many(keys).await.pop().unwrap_or_else(Read::unavailable);
        };
        let (groups, namespaces, request) = self.plan(keys);
        let held = l1.get(key.as_str()).await;
        let header = held.as_deref().map(|v| &v[..entry::HEADER_LEN.min(v.len())]).unwrap_or_default();
        let values = match self.inner.backend.mget_revalidate(&request, header).await {
            Ok((mut values, Revalidated::Unchanged)) => {
                self.inner.stats.incr(|c| &c.revalidated);
                values.push(held.map(|v| v.as_ref().clone()));
                values
            }
            Ok((mut values, Revalidated::Changed(now))) => {
                match &now {
                    Some(v) if v.len() >= L1_MIN_VALUE => {
                        l1.insert(key.as_str().to_string(), Arc::new(v.clone())).await
                    }
                    _ if held.is_some() => l1.invalidate(key.as_str()).await,
                    _ => {}
                }
                values.push(now);
                values
            }
            Err(e) => {
                self.backend_error("mget", &e);
                return Read::unavailable();
            }
        };
        self.interpret(keys, &groups, &namespaces, values).pop().unwrap_or_else(Read::unavailable)
    }

    /// The slot groups and namespace copies `keys` are judged by, and the MGET that reads them
    /// and the keys.
    fn plan<'k>(&self, keys: &'k [Key]) -> (Vec<u16>, Vec<(&'k str, u16)>, Vec<String>) {
        let mut groups: Vec<u16> = Vec::new();
        let mut namespaces: Vec<(&str, u16)> = Vec::new();
        for k in keys {
            if !groups.contains(&k.group()) {
                groups.push(k.group());
            }
            if !namespaces.contains(&(k.namespace(), k.group())) {
                namespaces.push((k.namespace(), k.group()));
            }
        }
        let mut request = Vec::with_capacity(groups.len() + namespaces.len() + keys.len());
        request.extend(groups.iter().map(|g| self.inner.keys.epoch_key(*g).to_string()));
        request.extend(namespaces.iter().map(|(ns, g)| self.inner.keys.generation_key(ns, *g)));
        request.extend(keys.iter().map(|k| k.as_str().to_string()));
        (groups, namespaces, request)
    }

    /// One MGET: the stamps each key is judged by — its slot group's copy of the epoch and of
    /// its namespace's generation — then the values. One key and its stamps share a slot: on
    /// a cluster, a single read is one command on one node.
    pub(super) async fn read_many(&self, keys: &[Key]) -> Vec<Read> {
        let (groups, namespaces, request) = self.plan(keys);
        let values = match self.inner.backend.mget(&request).await {
            Ok(v) => v,
            Err(e) => {
                self.backend_error("mget", &e);
                return keys.iter().map(|_| Read::unavailable()).collect();
            }
        };
        self.interpret(keys, &groups, &namespaces, values)
    }

    /// What the values read for `keys` (stamps first, as [`plan`](Self::plan) asked) say.
    fn interpret(
        &self,
        keys: &[Key],
        groups: &[u16],
        namespaces: &[(&str, u16)],
        mut values: Vec<Option<Vec<u8>>>,
    ) -> Vec<Read> {
        if values.len() != groups.len() + namespaces.len() + keys.len() {
            self.inner.stats.incr(|c| &c.errors);
            return keys.iter().map(|_| Read::unavailable()).collect();
        }
        let epochs: Vec<u64> = (0..groups.len()).map(|i| parse_counter(values[i].as_ref())).collect();
        let gens: Vec<u64> = (0..namespaces.len()).map(|i| parse_counter(values[groups.len() + i].as_ref())).collect();
        let first = groups.len() + namespaces.len();
        keys.iter()
            .enumerate()
            .map(|(i, k)| {
                let g = groups.iter().position(|g| *g == k.group()).unwrap_or(0);
                let ns = namespaces.iter().position(|n| *n == (k.namespace(), k.group())).unwrap_or(0);
                let stamp = Stamp { epoch: epochs[g], generation: gens[ns] };
                let Some(bytes) = values[first + i].take() else {
                    return Read { stamp: Some(stamp), raw: None, other: None, lease_until: 0 };
                };
                match entry::read(&bytes) {
                    // A lease or value of an older stamp is void.
                    Ok(e) if e.stamp == stamp => {
                        let (times, lease_until) = (e.times, e.lease_until);
                        Read { stamp: Some(stamp), raw: Some(Raw { times, bytes }), other: None, lease_until }
                    }
                    Ok(_) => Read { stamp: Some(stamp), raw: None, other: Some(bytes), lease_until: 0 },
                    Err(err) => {
                        self.inner.stats.incr(|c| &c.decode_errors);
                        tracing::warn!(key = %k, error = %err, "unreadable cache entry treated as a miss");
                        Read { stamp: Some(stamp), raw: None, other: Some(bytes), lease_until: 0 }
                    }
                }
            })
            .collect()
    }

    pub(super) fn decode<T: FromJson>(&self, key: &Key, raw: &Raw) -> Option<T> {
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

    pub(super) fn json_of(&self, raw: &Raw) -> Option<Arc<[u8]>> {
        let e = raw.entry();
        self.inner.codec.unpack_json(e.tag, e.body).ok().map(|j| Arc::from(&*j))
    }

    /// Lifetimes for a value written now, and its backend TTL.
    pub(super) fn times_for(&self, policy: &Policy, is_null: bool) -> (Times, Duration) {
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

    pub(super) async fn store(&self, key: &Key, policy: &Policy, stamp: Stamp, json: Vec<u8>) -> Result<()> {
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
}
