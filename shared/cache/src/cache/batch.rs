//! Many keys at once: one MGET, one loader call for the misses, one pipelined backfill; and
//! warming.

use super::lease;
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
        let out = async {
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
            // Lease the misses first (one pipelined round trip): only a leased key is filled.
            let wanted: Vec<(&Key, &Read)> = missing.iter().map(|&i| (&keys[i], &reads[i])).collect();
            let mut leases: Vec<Option<lease::Lease>> = self
                .leases(&wanted, policy)
                .await
                .into_iter()
                .map(|l| match l {
                    lease::Leased::Held(l) => Some(l),
                    _ => None,
                })
                .collect();
            let load = tokio::time::timeout(self.load_timeout(policy), loader(missing.clone())).await;
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
                Err(_) => Err(LoadError::Timeout(self.load_timeout(policy))),
            };
            if loaded.is_err() {
                let held = missing.iter().zip(leases.iter_mut()).filter_map(|(&i, l)| Some((&keys[i], l.take()?)));
                self.release(held.collect()).await;
            }
            match loaded {
                Ok(loaded) => {
                    self.inner.stats.incr(|c| &c.loads);
                    let (mut fills, mut unfilled) = (Vec::with_capacity(missing.len()), Vec::new());
                    for ((i, value), lease) in missing.iter().copied().zip(loaded).zip(leases) {
                        let keep = value.is_some() || policy.negative_ttl.is_some();
                        match (lease, reads[i].stamp, serde_json::to_vec(&value)) {
                            (Some(lease), Some(stamp), Ok(json)) if keep => fills.push((&keys[i], lease, stamp, json)),
                            (Some(lease), ..) => unfilled.push((&keys[i], lease)),
                            _ => {}
                        }
                        batch.values[i] = value;
                    }
                    self.fill(fills, policy).await;
                    self.release(unfilled).await;
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
        .await;
        self.inner.stats.latency.record(started.elapsed());
        out
    }

    /// Loads and stores each key that is not fresh in the cache; `items` pairs keys with
    /// not-yet-started loads (futures do nothing until awaited). Runs up to 8 loads at once.
    pub async fn warm<T, E, Fut>(&self, items: Vec<(Key, Fut)>, policy: &Policy) -> WarmReport
    where
        T: ToJson,
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
                todo.push((key, fut, read));
            }
        }
        // Lease them all in one round trip; a key another loader holds is being filled already.
        let wanted: Vec<(&Key, &Read)> = todo.iter().map(|(k, _, r)| (k, r)).collect();
        let leases = self.leases(&wanted, policy).await;
        let mut runs = Vec::with_capacity(todo.len());
        for ((key, fut, read), lease) in todo.into_iter().zip(leases) {
            match lease {
                lease::Leased::Held(lease) => runs.push((key, fut, read.stamp, lease)),
                lease::Leased::Busy => report.already_cached += 1,
                lease::Leased::Unavailable => report.failed += 1,
            }
        }
        let results: Vec<bool> = futures::stream::iter(runs)
            .map(|(key, fut, stamp, lease)| async move {
                match self.locked_load(&key, policy, stamp, Some(lease), || fut, || {}).await {
                    Ok((_, _, stored)) => stored,
                    Err(e) => {
                        tracing::warn!(key = %key, error = %e, "warming load failed");
                        false
                    }
                }
            })
            .buffer_unordered(8)
            .collect()
            .await;
        report.warmed = results.iter().filter(|ok| **ok).count();
        report.failed += results.len() - report.warmed;
        report
    }
}
