//! Single-flight: one load per key in this process (followers wait for the leader), one
//! across instances (a short Redis lock), and refreshes handed to the task runner.

use super::*;

impl Cache {
    /// Joins the load of `key` in flight in this process, or leads it.
    pub(super) async fn load_coalesced<T, E, F, Fut>(
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
    pub(super) async fn lead_load<T, E, F, Fut>(
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
    pub(super) async fn wait_for_holder<T: DeserializeOwned>(
        &self,
        key: &Key,
        policy: &Policy,
    ) -> Option<(T, Arc<[u8]>, Source)> {
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
    pub(super) fn refresh_later<T, E, F, Fut>(&self, key: &Key, policy: &Policy, stamp: Stamp, loader: F)
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
