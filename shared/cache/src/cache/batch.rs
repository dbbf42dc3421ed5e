//! Many keys at once: one MGET, one loader call for the misses, one pipelined backfill; and
//! warming.

use super::*;

impl Cache {
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

    pub(super) async fn get_many_inner<T, E, F, Fut>(
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
}
