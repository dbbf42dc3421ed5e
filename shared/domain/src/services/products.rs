//! Products: the cached product read (stale-while-revalidate), the view it counts, stored
//! plus pending views, and batch reads of products and users.

use super::*;

/// How long a view's once-key is remembered: longer than any retry of it.
const VIEW_ONCE_TTL: Duration = Duration::from_secs(60);

/// How long an unanswered view increment is retried (post-response) before it is given up.
pub(super) const VIEW_RETRY_WINDOW: Duration = Duration::from_secs(10);

/// Retries in a row that cannot reach Redis (circuit open, no connection) after which an
/// unanswered view increment is given up.
const UNREACHABLE_RETRIES: u32 = 4;

#[derive(Debug, Clone, Serialize)]
pub struct ProductViews {
    pub product_id: String,
    pub views: i64,
    pub stored: i64,
    pub pending: i64,
}

/// A batch answer: found values in request order (duplicates folded), missing ids, counts.
#[derive(Debug, Serialize)]
pub struct BatchAnswer {
    pub items: Vec<Box<RawValue>>,
    pub missing: Vec<String>,
    pub hits: usize,
    pub misses: usize,
}

impl Marketplace {
    /// A product, stale-while-revalidate; unknown ids cached briefly as missing. Counts a view
    /// (one Redis increment; straight to DynamoDB only when Redis cannot take it).
    pub async fn product(&self, id: &Id) -> Result<Cached<Product>> {
        let key = product_key(&self.inner.cache, id)?;
        let store = self.inner.store.products.clone();
        let owned = id.to_string();
        let found = self
            .inner
            .cache
            .get_or_load(&key, &product_policy(), move || async move { store.get_product(&owned).await })
            .await?;
        let Some(product) = found.value else {
            return Err(ServiceError::NotFound {
                code: "product_not_found",
                message: format!("product {id} not found"),
            });
        };
        if found.source == livecache_cache::Served::Hit {
            self.sample_product_hit(&key, &product);
        }
        self.count_view(id).await;
        Ok(Cached::from_lookup(product, found.source))
    }

    /// Counts a view exactly once. In Redis, by an increment carrying its own once-key, so
    /// that repeating it is harmless: an increment whose outcome is unknown (a timeout; Redis
    /// may or may not have run it) is retried with the same key after the response until Redis
    /// answers (up to [`VIEW_RETRY_WINDOW`]), and never written anywhere else. Only an
    /// increment that certainly did not reach Redis (circuit open, no connection) goes straight
    /// to DynamoDB.
    async fn count_view(&self, id: &str) {
        let view = format!("{:032x}", rand::random::<u128>());
        let e = match self.inner.views.count_once(ViewKind::Products, id, &view, VIEW_ONCE_TTL).await {
            Ok(_) => return,
            Err(e) => e,
        };
        if e.outcome_unknown() {
            self.inner.views_retried.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(error = %e, product = id, "view increment unanswered; retrying it with the same key");
            let (market, product) = (self.clone(), id.to_string());
            self.inner.tasks.submit(Box::pin(async move {
                market.settle_view(&product, &view).await;
            }));
            return;
        }
        tracing::warn!(error = %e, product = id, "view not counted in Redis; writing it to the database");
        // The chunk's marker makes a repeat harmless, so a failed write is tried again.
        let chunk = ViewChunk { id: format!("direct-{view}"), products: vec![(id.to_string(), 1)], streams: vec![] };
        for attempt in 1..=3 {
            match self.inner.store.views.apply_view_chunk(&chunk).await {
                Ok(_) => return,
                Err(e) if attempt == 3 => {
                    tracing::error!(error = %e, product = id, "view lost: neither Redis nor the database took it");
                }
                Err(e) => {
                    tracing::warn!(error = %e, product = id, attempt, "view not written to the database; again");
                    tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
                }
            }
        }
    }

    /// Repeats an unanswered view increment under its once-key until Redis answers (applied
    /// now, or found applied before). Gives up — and counts it in `views_unconfirmed`: counted
    /// in Redis only if the first attempt was applied — after [`VIEW_RETRY_WINDOW`], after
    /// [`UNREACHABLE_RETRIES`] retries in a row that could not reach Redis at all (circuit
    /// open, no connection: the backoff outlasts a breaker's short cooldown, so a Redis that is
    /// back is found; one that stays away is not waited for while the invocation is held
    /// open), or when the invocation's deadline drops it.
    async fn settle_view(&self, product: &str, view: &str) {
        /// Counts the view unconfirmed unless it was settled (also when the task is dropped).
        struct Unsettled<'a> {
            market: &'a Marketplace,
            product: &'a str,
            settled: bool,
        }
        impl Drop for Unsettled<'_> {
            fn drop(&mut self) {
                if !self.settled {
                    self.market.inner.views_unconfirmed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::error!(
                        product = self.product,
                        "view increment unanswered; counted in Redis only if it was applied"
                    );
                }
            }
        }
        let mut guard = Unsettled { market: self, product, settled: false };
        let started = std::time::Instant::now();
        let mut pause = Duration::from_millis(20);
        let mut unreachable = 0;
        while started.elapsed() < VIEW_RETRY_WINDOW {
            tokio::time::sleep(pause).await;
            match self.inner.views.count_once(ViewKind::Products, product, view, VIEW_ONCE_TTL).await {
                Ok(_) => {
                    guard.settled = true;
                    return;
                }
                Err(e) if !e.outcome_unknown() => {
                    unreachable += 1;
                    if unreachable == UNREACHABLE_RETRIES {
                        tracing::debug!(error = %e, product, "view retry cannot reach Redis; given up");
                        return;
                    }
                }
                Err(e) => {
                    unreachable = 0;
                    tracing::debug!(error = %e, product, "view retry unanswered");
                }
            }
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    /// Views whose first increment got no answer from Redis and were retried.
    pub fn views_retried(&self) -> u64 {
        self.inner.views_retried.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Views whose increment Redis never answered within the retry window: counted there if
    /// Redis applied them, lost if not; never counted twice.
    pub fn views_unconfirmed(&self) -> u64 {
        self.inner.views_unconfirmed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stored views plus increments not yet synced.
    pub async fn product_views(&self, id: &Id) -> Result<ProductViews> {
        let product = self.inner.store.products.get_product(id).await?.ok_or_else(|| ServiceError::NotFound {
            code: "product_not_found",
            message: format!("product {id} not found"),
        })?;
        let pending = self.inner.views.pending(ViewKind::Products, id).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "pending views unavailable");
            0
        });
        Ok(ProductViews {
            product_id: id.into(),
            views: product.view_count + pending,
            stored: product.view_count,
            pending,
        })
    }
}

impl Marketplace {
    /// Products by id: one MGET, one batched read for the misses, one pipelined backfill.
    pub async fn batch_products(&self, ids: &[String]) -> Result<BatchAnswer> {
        let store = self.inner.store.products.clone();
        self.batch(ids, product_key, &product_policy(), move |wanted: Vec<String>| async move {
            raw_all(store.get_products(&wanted).await?)
        })
        .await
    }

    pub(super) async fn batch<F, Fut>(
        &self,
        ids: &[String],
        key_of: fn(&Cache, &str) -> std::result::Result<livecache_cache::Key, livecache_cache::CacheError>,
        policy: &livecache_cache::Policy,
        load: F,
    ) -> Result<BatchAnswer>
    where
        F: FnOnce(Vec<String>) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<Option<Box<RawValue>>>, StoreError>>,
    {
        let mut seen = HashSet::new();
        let distinct: Vec<&String> = ids.iter().filter(|id| seen.insert(id.as_str())).collect();
        let keys = distinct.iter().map(|id| key_of(&self.inner.cache, id)).collect::<Result<Vec<_>, _>>()?;
        let batch = self
            .inner
            .cache
            .get_many_or_load(&keys, policy, |missing: Vec<usize>| {
                let wanted: Vec<String> = missing.iter().map(|&i| distinct[i].clone()).collect();
                load(wanted)
            })
            .await?;
        let mut items = Vec::with_capacity(distinct.len());
        let mut missing = Vec::new();
        for (id, value) in distinct.iter().zip(batch.values) {
            match value {
                Some(v) => items.push(v),
                None => missing.push((*id).clone()),
            }
        }
        Ok(BatchAnswer { items, missing, hits: batch.hits, misses: batch.misses })
    }
}

/// Loaded values as the raw JSON the batch answers are made of.
pub(super) fn raw_all<T: Serialize>(found: Vec<Option<T>>) -> Result<Vec<Option<Box<RawValue>>>, StoreError> {
    found
        .into_iter()
        .map(|v| v.map(|v| serde_json::value::to_raw_value(&v)).transpose())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}
