//! The view ledger: write-behind view counts, spread over [`VIEW_SHARDS`] cluster slots.
//!
//! Every key lives in its shard's slot (hash tag `{views<s>-<k>}`, the tags spread evenly over
//! the slot space): the pending counters of a kind, each view's once-key beside the counter it
//! guards, the batches view-sync moves aside and the registry listing them. A product's views
//! always go to one shard (chosen from its id), so no slot takes the whole fleet's views, and
//! every command here touches one slot. Nothing outside this module builds or parses these
//! keys.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use livecache_cache::{Backend, Cache, CacheError};

use super::shards::Shards;

/// How many slots the view counters are spread over: at 20,000 views a second the busiest
/// takes ~625 increments a second, and a view-sync drain costs 3 commands per shard.
pub(crate) const VIEW_SHARDS: u16 = 32;

const NS_VIEWS: &str = super::keys::NS_VIEWS;

/// What a view is counted on: each kind has its pending counters and its batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ViewKind {
    Products,
    Streams,
}

impl ViewKind {
    pub const ALL: [ViewKind; 2] = [ViewKind::Products, ViewKind::Streams];

    pub fn as_str(&self) -> &'static str {
        match self {
            ViewKind::Products => "products",
            ViewKind::Streams => "streams",
        }
    }
}

/// The id of one view-sync batch: the pending counters of every shard, moved aside together.
/// Its chunks' ids derive from it, so a batch applied twice is counted once.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct BatchId(String);

impl BatchId {
    /// A new id: the time and a random part (ids sort by when they were made).
    pub(crate) fn fresh() -> Self {
        Self(format!("{}-{:08x}", crate::model::time::now().timestamp_millis(), rand::random::<u32>()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// The view counters in Redis (or the memory backend: same commands, same semantics).
#[derive(Debug, Clone)]
pub struct ViewLedger {
    shards: Shards,
}

impl ViewLedger {
    pub fn new(cache: &Cache) -> Self {
        Self { shards: Shards::new(cache, super::keys::VIEWS_TAG, NS_VIEWS, VIEW_SHARDS) }
    }

    pub fn shards(&self) -> u16 {
        self.shards.count()
    }

    fn backend(&self) -> &Arc<dyn Backend> {
        self.shards.backend()
    }

    /// The shard of an item's views.
    pub fn shard_of(&self, id: &str) -> u16 {
        self.shards.of(id)
    }

    fn key(&self, shard: u16, parts: &[&str]) -> Result<String, CacheError> {
        self.shards.key(shard, parts)
    }

    fn pending_key(&self, kind: ViewKind, shard: u16) -> Result<String, CacheError> {
        self.key(shard, &["pending", kind.as_str()])
    }

    fn batch_key(&self, kind: ViewKind, shard: u16, batch: &BatchId) -> Result<String, CacheError> {
        self.key(shard, &["batch", kind.as_str(), batch.as_str()])
    }

    fn registry_key(&self, kind: ViewKind, shard: u16) -> Result<String, CacheError> {
        self.key(shard, &["batches", kind.as_str()])
    }

    /// Counts one view of `id` at most once per `view` (a random id the caller keeps): a
    /// repeat with the same `view` within `once_ttl` is a no-op, so an increment whose outcome
    /// was unknown can be retried. True when this call applied it.
    pub(crate) async fn count_once(
        &self,
        kind: ViewKind,
        id: &str,
        view: &str,
        once_ttl: Duration,
    ) -> Result<bool, CacheError> {
        let shard = self.shard_of(id);
        let once = self.key(shard, &["once", view])?;
        self.backend().incr_once(&self.pending_key(kind, shard)?, id, 1, &once, once_ttl).await
    }

    /// Adds `by` views of `id` (no once-key: for callers that never retry).
    pub async fn add(&self, kind: ViewKind, id: &str, by: i64) -> Result<(), CacheError> {
        self.backend().incr(&self.pending_key(kind, self.shard_of(id))?, id, by).await.map(|_| ())
    }

    /// Views of `id` counted but not yet synced.
    pub async fn pending(&self, kind: ViewKind, id: &str) -> Result<i64, CacheError> {
        self.backend().field(&self.pending_key(kind, self.shard_of(id))?, id).await
    }

    /// Every pending count of a kind (one read per shard).
    pub async fn pending_all(&self, kind: ViewKind) -> Result<BTreeMap<String, i64>, CacheError> {
        let mut out = BTreeMap::new();
        for shard in 0..self.shards() {
            out.extend(self.backend().fields(&self.pending_key(kind, shard)?).await?);
        }
        Ok(out)
    }

    /// Batches of a kind listed in some shard's registry: moved by a run that did not finish
    /// them. One read per shard.
    pub(crate) async fn left_behind(&self, kind: ViewKind) -> Result<BTreeSet<BatchId>, CacheError> {
        let reads = (0..self.shards()).map(|s| async move {
            let registry = self.registry_key(kind, s)?;
            self.backend().due(&registry, u64::MAX, 1_000).await
        });
        let mut out = BTreeSet::new();
        for listed in futures::future::join_all(reads).await {
            out.extend(listed?.into_iter().map(|(id, _)| BatchId(id)));
        }
        Ok(out)
    }

    /// Moves shard `shard`'s pending counters of `kind` into batch `batch`, listing the batch
    /// in the shard's registry first (so a crash right after the move leaves it findable).
    /// False when there was nothing to move.
    pub(crate) async fn move_shard(&self, kind: ViewKind, shard: u16, batch: &BatchId) -> Result<bool, CacheError> {
        let registry = self.registry_key(kind, shard)?;
        let at = crate::model::time::now().timestamp_millis().max(0) as u64;
        self.backend().schedule(&registry, batch.as_str(), at).await?;
        if self.backend().move_to(&self.pending_key(kind, shard)?, &self.batch_key(kind, shard, batch)?).await? {
            return Ok(true);
        }
        self.backend().remove(&registry, std::slice::from_ref(&batch.0)).await?;
        Ok(false)
    }

    /// The counts of a moved batch, summed over its shards.
    pub(crate) async fn counts(&self, kind: ViewKind, batch: &BatchId) -> Result<BTreeMap<String, i64>, CacheError> {
        let reads = (0..self.shards()).map(|s| async move {
            let key = self.batch_key(kind, s, batch)?;
            self.backend().fields(&key).await
        });
        let mut out = BTreeMap::new();
        for part in futures::future::join_all(reads).await {
            for (id, n) in part? {
                *out.entry(id).or_insert(0) += n;
            }
        }
        Ok(out)
    }

    /// Deletes an applied batch from every shard, then takes it off the registries.
    pub(crate) async fn forget(&self, kind: ViewKind, batch: &BatchId) -> Result<(), CacheError> {
        let deletes = (0..self.shards()).map(|s| async move {
            let key = self.batch_key(kind, s, batch)?;
            self.backend().delete(&[key]).await
        });
        for r in futures::future::join_all(deletes).await {
            r?;
        }
        let removes = (0..self.shards()).map(|s| async move {
            let registry = self.registry_key(kind, s)?;
            self.backend().remove(&registry, std::slice::from_ref(&batch.0)).await
        });
        for r in futures::future::join_all(removes).await {
            r?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_always_lands_in_one_shard_and_the_shards_share_the_items() {
        let cache = Cache::builder(Arc::new(livecache_cache::MemoryBackend::new(1_000))).build();
        let ledger = ViewLedger::new(&cache);
        assert_eq!(ledger.shard_of("prod-00042"), ledger.shard_of("prod-00042"));
        let mut per = vec![0usize; VIEW_SHARDS as usize];
        for i in 0..3_200 {
            per[ledger.shard_of(&format!("prod-{i:05}")) as usize] += 1;
        }
        assert!(per.iter().all(|n| (50..=150).contains(n)), "{per:?}");
        let slots: BTreeSet<u16> =
            (0..VIEW_SHARDS).map(|s| livecache_cache::key_slot(ledger.shards.tag(s).as_bytes())).collect();
        assert_eq!(slots.len(), VIEW_SHARDS as usize, "one slot per shard");
    }
}
