//! The discover and community feeds: a cached page per query, and the next page prefetched
//! after the answer.

use super::*;

/// A feed page kept as JSON: the same stored form as [`FeedPage`], but the items are served
/// as the bytes the cache holds (validated, never rebuilt).
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct RawPage {
    pub items: Box<RawValue>,
    pub has_more: bool,
}

impl RawPage {
    fn of(page: FeedPage) -> Result<Self, StoreError> {
        let items = serde_json::value::to_raw_value(&page.items).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(Self { items, has_more: page.has_more })
    }
}

/// A feed query: how its page is keyed, loaded, and which page follows it.
trait FeedQuery: Clone + Send + Sync + 'static {
    fn key(&self, cache: &Cache) -> Result<livecache_cache::Key, livecache_cache::CacheError>;
    fn next_page(&self) -> Self;
    fn load(&self, store: &dyn Store) -> impl std::future::Future<Output = Result<FeedPage, StoreError>> + Send;
}

impl FeedQuery for DiscoverQuery {
    fn key(&self, cache: &Cache) -> Result<livecache_cache::Key, livecache_cache::CacheError> {
        discover_key(cache, self)
    }

    fn next_page(&self) -> Self {
        Self { page: PageRequest { page: self.page.page + 1, ..self.page }, ..self.clone() }
    }

    async fn load(&self, store: &dyn Store) -> Result<FeedPage, StoreError> {
        store.discover(self).await
    }
}

impl FeedQuery for CommunityQuery {
    fn key(&self, cache: &Cache) -> Result<livecache_cache::Key, livecache_cache::CacheError> {
        community_key(cache, self)
    }

    fn next_page(&self) -> Self {
        Self { page: PageRequest { page: self.page.page + 1, ..self.page }, ..self.clone() }
    }

    async fn load(&self, store: &dyn Store) -> Result<FeedPage, StoreError> {
        store.community(self).await
    }
}

/// How long an instance trusts its own check that a next page is cached.
const PREFETCH_RECHECK: Duration = Duration::from_secs(30);

impl Marketplace {
    /// A discover page (cached 5 min); page N+1 is prefetched after the answer if it is not
    /// cached yet.
    pub async fn discover(&self, q: DiscoverQuery) -> Result<Cached<RawPage>> {
        self.feed(q).await
    }

    /// A community page for the location rounded to 2 decimals (cached 5 min, so neighbours
    /// share it); page N+1 is prefetched after the answer if it is not cached yet.
    pub async fn community(&self, mut q: CommunityQuery) -> Result<Cached<RawPage>> {
        q.lat = (q.lat * 100.0).round() / 100.0;
        q.lon = (q.lon * 100.0).round() / 100.0;
        self.feed(q).await
    }

    async fn feed<Q: FeedQuery>(&self, q: Q) -> Result<Cached<RawPage>> {
        let page = self.feed_page(&q).await?;
        if page.value.has_more {
            let next = q.next_page();
            let key = next.key(&self.inner.cache)?;
            if self.should_prefetch(&key) {
                let me = self.clone();
                self.inner.tasks.submit(Box::pin(async move {
                    if !me.inner.cache.is_fresh(&key).await {
                        if let Err(e) = me.feed_page(&next).await {
                            tracing::debug!(error = %e, "prefetch of the next page failed");
                        }
                    }
                }));
            }
        }
        Ok(page)
    }

    /// Whether to check (and maybe prefetch) `next` now: at most once per
    /// [`PREFETCH_RECHECK`] per instance, so hits on a hot page do not each re-read the next.
    fn should_prefetch(&self, next: &livecache_cache::Key) -> bool {
        let now = std::time::Instant::now();
        let mut seen = self.inner.prefetched.lock().unwrap_or_else(|p| p.into_inner());
        if seen.get(next.as_str()).is_some_and(|at| now.duration_since(*at) < PREFETCH_RECHECK) {
            return false;
        }
        if seen.len() >= 10_000 {
            seen.retain(|_, at| now.duration_since(*at) < PREFETCH_RECHECK);
        }
        seen.insert(next.as_str().to_string(), now);
        true
    }

    async fn feed_page<Q: FeedQuery>(&self, q: &Q) -> Result<Cached<RawPage>> {
        let key = q.key(&self.inner.cache)?;
        let store = self.inner.store.clone();
        let query = q.clone();
        let found = self
            .inner
            .cache
            .get_or_load(&key, &feed_policy(), move || async move { RawPage::of(query.load(&*store).await?) })
            .await?;
        Ok(Cached::from_lookup(found.value, found.source))
    }
}
