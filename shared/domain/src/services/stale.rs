//! What a write makes stale, and invalidating it: by the writer before it answers, and again
//! from the tables' change log (`jobs::change_log`), which cannot lose it.

use super::*;

/// Something cached that a write made stale.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stale {
    /// One product's entry.
    Product(String),
    /// Everything cached about one user (its namespace and its badges).
    User(String),
    /// A whole namespace (feeds, the live list, the leaderboard, the badges).
    Namespace(&'static str),
}

impl std::fmt::Display for Stale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stale::Product(id) => write!(f, "{NS_PRODUCTS}:{id}"),
            Stale::User(id) => write!(f, "user:{id}"),
            Stale::Namespace(ns) => f.write_str(ns),
        }
    }
}

/// How soon an invalidation that Redis did not take is tried again.
pub(crate) const INVALIDATION_RETRY: Duration = Duration::from_millis(200);

impl Marketplace {
    /// Invalidates each of `targets` once; what it invalidated. A target whose key cannot be
    /// built (an id no cached value can have) is left out: nothing cached is under it. Stops at
    /// the first failure (Redis unreachable): the caller tries again (invalidations are
    /// idempotent).
    pub(crate) async fn invalidate_stale(&self, targets: impl IntoIterator<Item = Stale>) -> Result<Vec<String>> {
        let targets: std::collections::BTreeSet<Stale> = targets.into_iter().collect();
        let cache = &self.inner.cache;
        let mut done = Vec::with_capacity(targets.len());
        for target in targets {
            let result = match &target {
                Stale::Product(id) => match product_key(cache, id) {
                    Ok(key) => cache.invalidate(&key).await.map(drop).map_err(ServiceError::from),
                    Err(e) => Err(e.into()),
                },
                Stale::User(id) => self.invalidate_user_data(id).await.map(drop),
                Stale::Namespace(ns) => cache.invalidate_namespace(ns).await.map(drop).map_err(ServiceError::from),
            };
            match result {
                Ok(()) => done.push(target.to_string()),
                Err(ServiceError::Invalid { .. }) => {
                    tracing::warn!(target = %target, "an id no cached value can have; nothing to invalidate");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    /// [`invalidate_stale`](Self::invalidate_stale), tried again every
    /// [`INVALIDATION_RETRY`] while Redis does not take it, until `until` (None: until it
    /// does); the last failure when `until` came first.
    pub(crate) async fn invalidate_retrying(
        &self,
        targets: Vec<Stale>,
        until: Option<std::time::Instant>,
    ) -> Result<Vec<String>> {
        loop {
            match self.invalidate_stale(targets.clone()).await {
                Ok(done) => return Ok(done),
                Err(e) if until.is_some_and(|u| std::time::Instant::now() + INVALIDATION_RETRY >= u) => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, "invalidation not taken (the cache does not answer); trying again");
                    tokio::time::sleep(INVALIDATION_RETRY).await;
                }
            }
        }
    }

    /// After a committed write: invalidates `targets` before the answer; whether that was done
    /// now. When Redis fails, the write is still acknowledged: on DynamoDB the tables' change
    /// log invalidates it once Redis answers (`Store::changes_logged`); with memory data the
    /// data lives in this process, and so does its log: the invalidation is tried again here
    /// until Redis takes it.
    pub(crate) async fn invalidate_after_write(&self, what: &'static str, targets: Vec<Stale>) -> bool {
        let Err(e) = self.invalidate_stale(targets.clone()).await else { return true };
        if self.inner.store.changes_logged {
            tracing::warn!(error = %e, what, "invalidation failed; the change log invalidates it when Redis answers");
            return false;
        }
        tracing::warn!(error = %e, what, "invalidation failed; tried again in-process until Redis answers");
        let market = self.clone();
        tokio::spawn(async move { market.invalidate_retrying(targets, None).await });
        false
    }
}
