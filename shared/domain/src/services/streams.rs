//! Streams: the cached live list, and go-live/end with what they invalidate and patch.

use super::*;

/// When the feeds are invalidated a second time after a go-live or end: longer than the
/// propagation delay of DynamoDB's secondary indexes (typically well under a second).
pub const REINVALIDATE_AFTER_TRANSITION: Duration = Duration::from_secs(2);

/// How long a transition waits on one holder of the live list's patch lock: a holder that
/// keeps it this long has died or frozen (its lock expires after [`LIVE_LOCK_TTL`]). Waiting
/// on a queue of holders that each finish is not bounded by it: the wait restarts whenever
/// the lock changes hands, so how many transitions run at once, or how fast the machine is,
/// does not decide whether a patch is stored.
const LIVE_LOCK_WAIT: Duration = Duration::from_secs(3);

/// How long the live list's patch lock lives if its holder never releases it (a frozen or
/// killed instance); longer than a holder's read, database write and store take.
const LIVE_LOCK_TTL: Duration = Duration::from_secs(5);

/// The live list's patch lock, held from reading the list before a transition until the
/// patched list is stored: two transitions at once (on any instances) patch one after the
/// other, so neither overwrites the other's patch.
struct LiveListLock {
    cache: livecache_cache::Cache,
    key: String,
    token: Vec<u8>,
}

impl LiveListLock {
    /// The lock, or None when Redis fails or one holder keeps it past [`LIVE_LOCK_WAIT`]: the
    /// transition then stores no patch; its invalidation makes the next read load the list
    /// from the index, and a patch stored meanwhile by a holder that read the list before this
    /// write lives until the second invalidation ([`REINVALIDATE_AFTER_TRANSITION`]).
    async fn acquire(cache: &livecache_cache::Cache) -> Option<Self> {
        let key = cache.key("locks", &["live_list"]).ok()?.as_str().to_string();
        let token = format!("{:032x}", rand::random::<u128>()).into_bytes();
        let (mut holder, mut since) = (None, std::time::Instant::now());
        let mut pause = Duration::from_millis(2);
        loop {
            let unavailable = |e: livecache_cache::CacheError| {
                tracing::warn!(error = %e, "live list lock unavailable; the transition stores no patch");
            };
            match cache.backend().set_if_absent(&key, &token, LIVE_LOCK_TTL).await {
                Ok(true) => return Some(Self { cache: cache.clone(), key, token }),
                Ok(false) => {}
                Err(e) => {
                    unavailable(e);
                    return None;
                }
            }
            match cache.backend().get(&key).await {
                Ok(now) if now != holder => (holder, since) = (now, std::time::Instant::now()),
                Ok(_) => {}
                Err(e) => {
                    unavailable(e);
                    return None;
                }
            }
            if since.elapsed() >= LIVE_LOCK_WAIT {
                tracing::warn!("live list lock held too long by one holder; the transition stores no patch");
                return None;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(10));
        }
    }

    async fn release(self) {
        if let Err(e) = self.cache.backend().delete_if_equals(&self.key, &self.token).await {
            tracing::warn!(error = %e, "live list lock not released; it expires");
        }
    }
}

impl Marketplace {
    /// Streams that are live now (cached 1 min).
    pub async fn live_streams(&self) -> Result<Cached<Vec<Stream>>> {
        let key = live_key(&self.inner.cache)?;
        let store = self.inner.store.streams.clone();
        let found = self
            .inner
            .cache
            .get_or_load(&key, &live_policy(), move || async move { store.live_streams().await })
            .await?;
        Ok(Cached::from_lookup(found.value, found.source))
    }

    /// The live list as it was cached (or as the index returns it), corrected by a transition
    /// the index may not show yet, stored as the cached live list.
    async fn store_patched_live_list(&self, before: Option<Vec<Stream>>, changed: &Stream) {
        let mut live = match before {
            Some(live) => live,
            None => match self.inner.store.streams.live_streams().await {
                Ok(live) => live,
                Err(e) => {
                    tracing::warn!(error = %e, "live list not rebuilt after a transition; the next read loads it");
                    return;
                }
            },
        };
        live.retain(|s| s.id != changed.id);
        if changed.status == StreamStatus::Live {
            live.push(changed.clone());
        }
        live.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(a.id.cmp(&b.id)));
        match live_key(&self.inner.cache) {
            Ok(key) => {
                if let Err(e) = self.inner.cache.set(&key, &live, &live_policy()).await {
                    tracing::warn!(error = %e, "patched live list not stored");
                }
            }
            Err(e) => tracing::warn!(error = %e, "live list key"),
        }
    }

    /// The stream's current state (for access checks before a transition).
    async fn stream(&self, id: &Id) -> Result<Stream> {
        self.inner.store.streams.get_stream(id).await?.ok_or_else(|| ServiceError::NotFound {
            code: "stream_not_found",
            message: format!("stream {id} not found"),
        })
    }

    /// SCHEDULED → LIVE or LIVE → ENDED in DynamoDB; on success the feeds and the live list are
    /// invalidated before answering, then StreamStatusChanged is published. When Redis fails
    /// after the write, it is acknowledged all the same and invalidated once Redis answers
    /// (`invalidate_after_write`; no patched list is stored).
    /// Only the stream's seller may; checked before anything is written, invalidated or
    /// published (403 `not_stream_owner`).
    pub async fn transition_stream(&self, id: &Id, to: StreamStatus, caller: &Id) -> Result<Stream> {
        if self.stream(id).await?.seller_id != caller {
            return Err(ServiceError::Forbidden {
                code: "not_stream_owner",
                message: "only the stream's seller may start or end it".into(),
            });
        }
        let lock = LiveListLock::acquire(&self.inner.cache).await;
        let live_before = match live_key(&self.inner.cache) {
            Ok(key) if lock.is_some() => self.inner.cache.get::<Vec<Stream>>(&key).await.map(|l| l.value),
            _ => None,
        };
        let at = time::now();
        let stream = match self.inner.store.streams.transition_stream(id, to, at).await {
            Ok(stream) => stream,
            Err(e) => {
                if let Some(lock) = lock {
                    lock.release().await;
                }
                return Err(e.into());
            }
        };
        let stale = [NS_FEED_DISCOVER, NS_FEED_COMMUNITY, NS_LIVE].map(Stale::Namespace).to_vec();
        if !self.invalidate_after_write("stream transition", stale).await {
            // Invalidated later (no patched list is stored over a cache that missed the write).
            if let Some(lock) = lock {
                lock.release().await;
            }
            self.publish_transition(&stream, to, at).await;
            return Ok(stream);
        }
        // The live list and the feeds are rebuilt from an index that DynamoDB updates a moment
        // after the write. The live list is patched with the write itself (on top of the list
        // cached before it, or the index) and stored, so the first read after the transition
        // already shows it; everything is invalidated once more when the index has caught up,
        // so a page rebuilt from a lagging index lives at most that long. Concurrent transitions
        // patch one after the other under the live list's lock.
        if let Some(lock) = lock {
            self.store_patched_live_list(live_before, &stream).await;
            lock.release().await;
        }
        let market = self.clone();
        self.inner.tasks.submit(Box::pin(async move {
            tokio::time::sleep(REINVALIDATE_AFTER_TRANSITION).await;
            for ns in [NS_FEED_DISCOVER, NS_FEED_COMMUNITY, NS_LIVE] {
                if let Err(e) = market.inner.cache.invalidate_namespace(ns).await {
                    tracing::warn!(error = %e, namespace = ns, "second invalidation after a transition failed");
                }
            }
        }));
        self.publish_transition(&stream, to, at).await;
        Ok(stream)
    }

    /// Publishes StreamStatusChanged (badges, pushes to clients); a failure is logged: the
    /// change log, not the event, is what invalidates.
    async fn publish_transition(&self, stream: &Stream, to: StreamStatus, at: Timestamp) {
        let from = if to == StreamStatus::Live { StreamStatus::Scheduled } else { StreamStatus::Live };
        let event = DomainEvent::StreamStatusChanged(StreamStatusChanged {
            stream_id: stream.id.clone(),
            seller_id: stream.seller_id.clone(),
            from,
            to,
            at,
        });
        if let Err(e) = self.inner.events.publish(&[event]).await {
            tracing::error!(error = %e, stream = %stream.id, "StreamStatusChanged not published");
        }
    }
}
