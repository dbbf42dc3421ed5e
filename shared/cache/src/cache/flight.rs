//! Single-flight: one load per key in this process (followers wait for the leader), one
//! across instances (the key's lease, see `lease`), and refreshes handed to the task runner.

use super::lease;
use super::*;

impl Cache {
    /// Joins the load of `key` in flight in this process, or leads it. A follower takes the
    /// leader's value only when the leader can vouch that no invalidation came between its
    /// read of the source and this follower's arrival (it filled the key under an intact lease
    /// with the stamp the follower read, or its load failed, or there is no backend to
    /// invalidate); otherwise the loader is handed back and the caller reads again.
    pub(super) async fn load_coalesced<T, E, F, Fut>(
        &self,
        key: &Key,
        policy: &Policy,
        read: Read,
        loader: F,
    ) -> std::result::Result<std::result::Result<Lookup<T>, LoadError<E>>, F>
    where
        T: ToJson + FromJson + Send + 'static,
        E: std::fmt::Display + Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<T, E>> + Send + 'static,
    {
        loop {
            // Decide the role with the map locked, then release it before any await.
            let role = {
                let mut flights = lock(&self.inner.flights);
                match flights.get(key.as_str()) {
                    Some((_, rx)) => Err(rx.clone()),
                    None => {
                        let (tx, rx) = watch::channel(None);
                        let id = rand::random::<u64>();
                        flights.insert(key.as_str().to_string(), (id, rx));
                        Ok((tx, id))
                    }
                }
            };
            let mut rx = match role {
                Err(rx) => rx,
                Ok((tx, id)) => {
                    let flight = Flight { cache: self, key: key.as_str(), id };
                    self.inner.stats.incr(|c| &c.misses);
                    let result = self.lead_load(key, policy, read, loader, &flight).await;
                    let shared: FlightResult = match &result {
                        Ok(led) => Ok((led.json.clone(), led.source, led.vouched)),
                        Err(e) => Err(e.to_string()),
                    };
                    let _ = tx.send(Some(shared));
                    return Ok(result.map(|led| Lookup { value: led.value, source: led.source }));
                }
            };
            let shared = match rx.wait_for(Option::is_some).await {
                Ok(v) => v.clone(),
                // The leader was cancelled before finishing: try again (maybe as leader).
                Err(_) => continue,
            };
            return match shared {
                Some(Ok((json, source, vouched))) if vouched == Some(read.stamp) => {
                    self.inner.stats.incr(|c| &c.coalesced);
                    let source = if source == Served::Loaded { Served::Coalesced } else { source };
                    Ok(T::from_json(std::borrow::Cow::Borrowed(&json))
                        .map(|value| Lookup { value, source })
                        .map_err(LoadError::Codec))
                }
                Some(Ok(_)) => Err(loader),
                Some(Err(msg)) => {
                    self.inner.stats.incr(|c| &c.coalesced);
                    Ok(Err(LoadError::Coalesced(msg)))
                }
                None => continue,
            };
        }
    }

    /// The leader's load: lease the key (or, when another instance holds the lease, wait
    /// briefly for its value, then fall back to a stale one), load under the lease, and fall
    /// back to a stale value if the load fails. Without a lease the value is returned but not
    /// stored: only a lease can tell whether an invalidation came in between.
    pub(super) async fn lead_load<T, E, F, Fut>(
        &self,
        key: &Key,
        policy: &Policy,
        read: Read,
        loader: F,
        flight: &Flight<'_>,
    ) -> std::result::Result<Led<T>, LoadError<E>>
    where
        T: ToJson + FromJson + Send + 'static,
        E: std::fmt::Display + Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<T, E>> + Send + 'static,
    {
        let unvouched = |(value, json, source)| Led { value, json, source, vouched: None };
        let lease = match self.lease(key, &read, policy).await {
            lease::Leased::Held(lease) => Some(lease),
            lease::Leased::Unavailable => None,
            lease::Leased::Busy => {
                // What comes next is not this flight's to vouch for: nobody joins it any more.
                flight.close();
                if let Some(found) = self.wait_for_holder::<T>(key, policy).await {
                    return Ok(unvouched(found));
                }
                // The holder is slow: a value still inside the fail-safe window beats a load.
                if let Some(found) = self.stand_in::<T>(key, &read) {
                    return Ok(unvouched(found));
                }
                None
            }
        };
        let leased = lease.is_some();
        match self.locked_load(key, policy, read.stamp, lease, loader, || flight.close()).await {
            Ok((value, json, stored)) => {
                // A fill under an intact lease proves no delete came after the lease; without a
                // backend there is nothing to invalidate.
                let vouched = (stored || (!leased && read.stamp.is_none())).then_some(read.stamp);
                Ok(Led { value, json, source: Served::Loaded, vouched })
            }
            Err(err) => {
                tracing::warn!(key = %key, error = %err, "load failed");
                // A failing source is shared as it is (one error or stale stand-in for all).
                let (value, json, source) = self.stand_in::<T>(key, &read).ok_or(err)?;
                Ok(Led { value, json, source, vouched: Some(read.stamp) })
            }
        }
    }

    /// The one load sequence of first loads, refreshes and warming: run the loader under its
    /// timeout, then fill the key under `lease` (calling `before_fill` first) — or, if the load
    /// failed, give the lease back. Returns the value, its JSON and whether it was stored.
    pub(super) async fn locked_load<T, E, F, Fut>(
        &self,
        key: &Key,
        policy: &Policy,
        stamp: Option<Stamp>,
        lease: Option<lease::Lease>,
        loader: F,
        before_fill: impl FnOnce(),
    ) -> std::result::Result<(T, Arc<[u8]>, bool), LoadError<E>>
    where
        T: ToJson,
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
    {
        let outcome = tokio::time::timeout(self.load_timeout(policy), loader()).await;
        let value = match outcome {
            Ok(Ok(value)) => value,
            failed => {
                self.inner.stats.incr(|c| &c.load_errors);
                if let Some(lease) = lease {
                    self.release(vec![(key, lease)]).await;
                }
                return Err(match failed {
                    Ok(Err(e)) => LoadError::Loader(e),
                    _ => LoadError::Timeout(self.load_timeout(policy)),
                });
            }
        };
        self.inner.stats.incr(|c| &c.loads);
        let json = match value.to_json() {
            Ok(json) => json,
            Err(e) => {
                if let Some(lease) = lease {
                    self.release(vec![(key, lease)]).await;
                }
                return Err(LoadError::Codec(e));
            }
        };
        let shared: Arc<[u8]> = Arc::from(json.as_slice());
        before_fill();
        let stored = match (lease, stamp) {
            (Some(lease), Some(stamp)) => self.fill(vec![(key, lease, stamp, json)], policy).await == 1,
            _ => false,
        };
        Ok((value, shared, stored))
    }

    /// A value still inside the fail-safe window, standing in for one that could not be had.
    fn stand_in<T: FromJson>(&self, key: &Key, read: &Read) -> Option<(T, Arc<[u8]>, Served)> {
        let raw = read.raw.as_ref().filter(|r| r.times.at(self.inner.clock.now_ms()) != Freshness::Expired)?;
        let found = (self.decode::<T>(key, raw)?, self.json_of(raw)?);
        self.inner.stats.incr(|c| &c.fail_safe);
        Some((found.0, found.1, Served::FailSafe))
    }

    /// Polls for the value another instance is loading, up to the policy's lock wait.
    pub(super) async fn wait_for_holder<T: FromJson>(
        &self,
        key: &Key,
        policy: &Policy,
    ) -> Option<(T, Arc<[u8]>, Served)> {
        let deadline = Instant::now() + policy.lock_wait;
        let step = (policy.lock_wait / 10).clamp(Duration::from_millis(2), Duration::from_millis(50));
        while Instant::now() < deadline {
            tokio::time::sleep(step).await;
            let read = self.read_one(key).await;
            if let Some(raw) = read.raw.filter(|r| r.times.at(self.inner.clock.now_ms()) == Freshness::Fresh) {
                if let (Some(v), Some(json)) = (self.decode::<T>(key, &raw), self.json_of(&raw)) {
                    return Some((v, json, Served::Coalesced));
                }
            }
        }
        None
    }

    /// Hands one refresh of `key` to the task runner, unless one is already pending here or
    /// another instance holds the key's lease.
    pub(super) fn refresh_later<T, E, F, Fut>(&self, key: &Key, policy: &Policy, read: Read, loader: F)
    where
        T: ToJson + Send + 'static,
        E: std::fmt::Display + Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<T, E>> + Send + 'static,
    {
        if read.lease_until > self.inner.clock.now_ms()
            || !lock(&self.inner.refreshing).insert(key.as_str().to_string())
        {
            return;
        }
        // Created outside the task so that a task dropped unrun still clears the mark.
        let mark = RefreshMark { inner: self.inner.clone(), key: key.as_str().to_string() };
        let cache = self.clone();
        let key = key.clone();
        let policy = *policy;
        self.inner.tasks.submit(Box::pin(async move {
            let _mark = mark;
            let lease::Leased::Held(lease) = cache.lease(&key, &read, &policy).await else {
                return; // another instance is refreshing it, or Redis is not answering
            };
            match cache.locked_load(&key, &policy, read.stamp, Some(lease), loader, || {}).await {
                Ok((_, _, true)) => cache.inner.stats.incr(|c| &c.refreshes),
                Ok(_) => {}
                Err(e) => tracing::warn!(key = %key, error = %e, "background refresh failed; stale value kept"),
            }
        }));
    }

    /// Detaches the loads in flight here whose keys `covers` selects: reads after an
    /// invalidation start a load of their own instead of joining one that began before it.
    pub(super) fn detach_flights(&self, covers: impl Fn(&str) -> bool) {
        lock(&self.inner.flights).retain(|key, _| !covers(key));
    }
}

/// The leader's hold on its entry in the flight map.
pub(super) struct Flight<'a> {
    cache: &'a Cache,
    key: &'a str,
    id: u64,
}

impl Flight<'_> {
    /// Takes this flight out of the map: callers arriving from now on start their own. Done
    /// before the step that decides what the flight can vouch for (the fill), so that every
    /// follower joined before it.
    pub(super) fn close(&self) {
        let mut flights = lock(&self.cache.inner.flights);
        // Only this flight: an invalidation may have detached it and a newer one taken its place.
        if flights.get(self.key).is_some_and(|(id, _)| *id == self.id) {
            flights.remove(self.key);
        }
    }
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        self.close();
    }
}

/// What a leader's load produced, and for followers with which stamp it can vouch.
pub(super) struct Led<T> {
    value: T,
    json: Arc<[u8]>,
    source: Served,
    /// `Some(stamp)`: followers whose own read saw `stamp` may take the value; `None`: nobody.
    vouched: Option<Option<Stamp>>,
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
