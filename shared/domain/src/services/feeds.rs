//! The discover and community feeds: a cached page per query, and the next page prefetched
//! after the answer.

use std::borrow::Cow;

use livecache_cache::{CodecError, FromJson, ToJson};

use super::*;
use crate::model::market::FeedItem;

/// A feed page as the cache holds it and the API serves it: the JSON
/// `{"has_more":<bool>,"items":[…]}`, kept as bytes. This code wrote it (serde, fields in that
/// order), so a read checks its form — how it starts and ends — instead of parsing every byte,
/// and an answer splices it in as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawPage {
    json: Vec<u8>,
    has_more: bool,
}

const MORE: &[u8] = br#"{"has_more":true,"items":["#;
const LAST: &[u8] = br#"{"has_more":false,"items":["#;

impl RawPage {
    pub(super) fn of(page: &FeedPage) -> Result<Self, StoreError> {
        #[derive(Serialize)]
        struct Stored<'a> {
            has_more: bool,
            items: &'a [FeedItem],
        }
        let json = serde_json::to_vec(&Stored { has_more: page.has_more, items: &page.items })
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(Self { json, has_more: page.has_more })
    }

    pub fn has_more(&self) -> bool {
        self.has_more
    }

    /// The page's members without the object's braces, `"has_more":…,"items":[…]`, for an
    /// answer to put beside its own.
    pub fn members(&self) -> &[u8] {
        &self.json[1..self.json.len() - 1]
    }

    /// The items' JSON array.
    pub fn items_json(&self) -> &[u8] {
        let start = if self.has_more { MORE.len() } else { LAST.len() } - 1;
        &self.json[start..self.json.len() - 1]
    }

    fn items(&self) -> Result<Vec<FeedItem>, StoreError> {
        serde_json::from_slice(self.items_json()).map_err(|e| StoreError::Corrupt(e.to_string()))
    }
}

impl ToJson for RawPage {
    fn to_json(&self) -> Result<Vec<u8>, CodecError> {
        Ok(self.json.clone())
    }
}

impl FromJson for RawPage {
    fn from_json(json: Cow<'_, [u8]>) -> Result<Self, CodecError> {
        let has_more = if json.starts_with(MORE) {
            true
        } else if json.starts_with(LAST) {
            false
        } else {
            return Err(CodecError::Form("a feed page"));
        };
        if !json.ends_with(b"]}") {
            return Err(CodecError::Form("a feed page"));
        }
        Ok(Self { json: json.into_owned(), has_more })
    }
}

/// A feed query: how its page is keyed, loaded, and which page follows it.
trait FeedQuery: Clone + Send + Sync + 'static {
    fn key(&self, cache: &Cache) -> Result<livecache_cache::Key, livecache_cache::CacheError>;
    fn next_page(&self) -> Self;
    fn page(&self) -> PageRequest;
    fn set_page(&mut self, page: u32);
    fn load(&self, store: &dyn FeedStore) -> impl std::future::Future<Output = Result<FeedPage, StoreError>> + Send;
    /// The page that follows `after` (the last item of the previous page as cached); feeds
    /// without a cursor load by offset.
    fn load_after(
        &self,
        store: &dyn FeedStore,
        after: &FeedItem,
    ) -> impl std::future::Future<Output = Result<FeedPage, StoreError>> + Send {
        let _ = after;
        self.load(store)
    }
    /// Whether pages of this feed can start from the previous page's last item.
    fn has_cursor(&self) -> bool {
        false
    }
}

impl FeedQuery for DiscoverQuery {
    fn key(&self, cache: &Cache) -> Result<livecache_cache::Key, livecache_cache::CacheError> {
        discover_key(cache, self)
    }

    fn next_page(&self) -> Self {
        Self { page: PageRequest { page: self.page.page + 1, ..self.page }, ..self.clone() }
    }

    fn page(&self) -> PageRequest {
        self.page
    }

    fn set_page(&mut self, page: u32) {
        self.page.page = page;
    }

    async fn load(&self, store: &dyn FeedStore) -> Result<FeedPage, StoreError> {
        store.discover(self).await
    }

    async fn load_after(&self, store: &dyn FeedStore, after: &FeedItem) -> Result<FeedPage, StoreError> {
        store.discover_after(self, after).await
    }

    fn has_cursor(&self) -> bool {
        true
    }
}

impl FeedQuery for CommunityQuery {
    fn key(&self, cache: &Cache) -> Result<livecache_cache::Key, livecache_cache::CacheError> {
        community_key(cache, self)
    }

    fn next_page(&self) -> Self {
        Self { page: PageRequest { page: self.page.page + 1, ..self.page }, ..self.clone() }
    }

    fn page(&self) -> PageRequest {
        self.page
    }

    fn set_page(&mut self, page: u32) {
        self.page.page = page;
    }

    async fn load(&self, store: &dyn FeedStore) -> Result<FeedPage, StoreError> {
        store.community(self).await
    }
}

/// How deep into a feed a page may reach (page × per_page): a page is read with `Limit` up to
/// its end, so this bounds what one request can cost.
pub const MAX_FEED_DEPTH: usize = 5_000;

fn within_depth(page: PageRequest) -> Result<()> {
    if page.end() > MAX_FEED_DEPTH {
        return Err(ServiceError::invalid(
            "page_too_deep",
            format!("page × per_page may not exceed {MAX_FEED_DEPTH}; narrow the feed with filters instead"),
        ));
    }
    Ok(())
}

/// The radii a community query is answered for (km): a radius is snapped down to one of them.
pub(crate) const RADIUS_BUCKETS_KM: [f64; 6] = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0];

/// The price bounds a community query is answered for: 0 and the 1-2-5 series up to 10^9.
pub(crate) fn price_buckets() -> impl Iterator<Item = f64> {
    std::iter::once(0.0).chain((0..=9).flat_map(|e| [1.0, 2.0, 5.0].map(|m| m * 10f64.powi(e)))).filter(|p| *p <= 1e9)
}

/// A community query on the key grid: location to 2 decimals, radius down to a bucket (at
/// least the smallest), min_price up and max_price down to a price bucket.
pub(crate) fn snap_community(mut q: CommunityQuery) -> Result<CommunityQuery> {
    q.lat = (q.lat * 100.0).round() / 100.0;
    q.lon = (q.lon * 100.0).round() / 100.0;
    q.radius_km = RADIUS_BUCKETS_KM.iter().copied().rfind(|b| *b <= q.radius_km + 1e-9).unwrap_or(RADIUS_BUCKETS_KM[0]);
    q.min_price = q.min_price.map(|m| price_buckets().find(|b| *b >= m - 1e-9).unwrap_or(1e9));
    q.max_price = q.max_price.map(|m| price_buckets().filter(|b| *b <= m + 1e-9).last().unwrap_or(0.0));
    if let (Some(lo), Some(hi)) = (q.min_price, q.max_price) {
        if lo > hi {
            return Err(ServiceError::invalid(
                "invalid_price_range",
                "the price range holds no price bucket (0, 1, 2, 5, 10, 20, 50, …): widen it",
            ));
        }
    }
    Ok(q)
}

/// How long an instance trusts its own check that a next page is cached.
const PREFETCH_RECHECK: Duration = Duration::from_secs(30);

impl Marketplace {
    /// A discover page (cached 5 min); page N+1 is prefetched after the answer if it is not
    /// cached yet.
    pub async fn discover(&self, q: DiscoverQuery) -> Result<Cached<RawPage>> {
        within_depth(q.page)?;
        self.feed(q).await
    }

    /// A community page (cached 5 min); page N+1 is prefetched after the answer if it is not
    /// cached yet. The query is snapped first so that neighbours and jittering clients share
    /// keys: the location rounded to 2 decimals, the radius down to a
    /// bucket and the price bounds inward to buckets
    /// (so every item still matches what was asked); a range that no bucket fits is refused.
    pub async fn community(&self, q: CommunityQuery) -> Result<Cached<RawPage>> {
        within_depth(q.page)?;
        self.feed(snap_community(q)?).await
    }

    async fn feed<Q: FeedQuery>(&self, q: Q) -> Result<Cached<RawPage>> {
        let (key, page) = self.feed_page(&q).await?;
        if page.value.has_more() && within_depth(q.next_page().page()).is_ok() && self.should_prefetch(&key) {
            let next = q.next_page();
            let key = next.key(&self.inner.cache)?;
            let me = self.clone();
            self.inner.tasks.submit(Box::pin(async move {
                if !me.inner.cache.is_fresh(&key).await {
                    if let Err(e) = me.feed_page(&next).await {
                        tracing::debug!(error = %e, "prefetch of the next page failed");
                    }
                }
            }));
        }
        Ok(page)
    }

    /// Whether to check (and maybe prefetch) the page after the one at `key` now: at most once
    /// per [`PREFETCH_RECHECK`] per instance, so hits on a hot page neither re-read the next
    /// one nor build its key.
    fn should_prefetch(&self, key: &livecache_cache::Key) -> bool {
        let now = self.inner.cache.clock().now_ms();
        let recent = |at: &u64| now.saturating_sub(*at) < PREFETCH_RECHECK.as_millis() as u64;
        let mut seen = self.inner.prefetched.lock().unwrap_or_else(|p| p.into_inner());
        if seen.get(key.as_str()).is_some_and(recent) {
            return false;
        }
        if seen.len() >= 10_000 {
            seen.retain(|_, at| recent(at));
        }
        seen.insert(key.as_str().to_string(), now);
        true
    }

    /// The page of `q` and its key.
    async fn feed_page<Q: FeedQuery>(&self, q: &Q) -> Result<(livecache_cache::Key, Cached<RawPage>)> {
        let key = q.key(&self.inner.cache)?;
        let store = self.inner.store.feeds.clone();
        let query = q.clone();
        let me = self.clone();
        let found = self
            .inner
            .cache
            .get_or_load(&key, &feed_policy(), move || async move {
                // A page after the first starts below the last item of the page before when
                // that one is cached (it is, when the client scrolled: it was prefetched), so
                // its load reads one page, not everything above it.
                let page = match me.previous_last_item(&query).await {
                    Some(after) => query.load_after(&*store, &after).await?,
                    None => query.load(&*store).await?,
                };
                RawPage::of(&page)
            })
            .await?;
        Ok((key, Cached::from_lookup(found.value, found.source)))
    }

    /// The last item of the cached page before `q`'s (fresh or stale), if any.
    async fn previous_last_item<Q: FeedQuery>(&self, q: &Q) -> Option<FeedItem> {
        let page = q.page();
        if !q.has_cursor() || page.page <= 1 {
            return None;
        }
        let mut previous = q.next_page();
        previous.set_page(page.page - 1);
        let key = previous.key(&self.inner.cache).ok()?;
        let cached = self.inner.cache.get::<RawPage>(&key).await?;
        if !cached.value.has_more() {
            return None;
        }
        cached.value.items().ok()?.into_iter().last()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str) -> FeedItem {
        serde_json::from_value(serde_json::json!({
            "id": id, "seller_id": "user-1", "title": "A \"quoted\" title ]}", "price": 12.5,
            "currency": "EUR", "condition": "new", "category": "electronics",
            "created_at": "2026-11-21T10:00:00.000Z", "view_count": 3, "seller_live": true
        }))
        .unwrap()
    }

    #[test]
    fn a_page_is_kept_as_its_json_and_checked_by_its_form() {
        for (items, has_more) in [(vec![item("p-1"), item("p-2")], true), (vec![], false)] {
            let page = RawPage::of(&FeedPage { items: items.clone(), has_more }).unwrap();
            let stored = page.to_json().unwrap();
            let back = RawPage::from_json(Cow::Owned(stored.clone())).unwrap();
            assert_eq!(back, page);
            assert_eq!(back.has_more(), has_more);
            assert_eq!(back.items().unwrap(), items);
            // The members splice into any object as valid JSON.
            let answer = [b"{\"page\":1,".as_slice(), back.members(), b"}"].concat();
            let v: serde_json::Value = serde_json::from_slice(&answer).unwrap();
            assert_eq!((v["page"].as_u64(), v["has_more"].as_bool()), (Some(1), Some(has_more)));
            assert_eq!(v["items"].as_array().unwrap().len(), items.len());
        }
        // What this code did not write in this form is refused (the cache treats it as a miss
        // and loads again): another field order (an older release), a cut-off value, not JSON.
        let older = br#"{"items":[],"has_more":false}"#.to_vec();
        for bad in [older, br#"{"has_more":true,"items":[{"id":"#.to_vec(), b"garbage".to_vec()] {
            let err = RawPage::from_json(Cow::Owned(bad.clone())).unwrap_err();
            assert!(matches!(err, CodecError::Form(_)), "{}: {err}", String::from_utf8_lossy(&bad));
        }
    }
}
