//! The Redis expiry index of pending offers, spread over [`OFFER_INDEX_SHARDS`] cluster slots
//! by user: an offer is listed in its buyer's shard and its seller's (one sorted set per shard,
//! by expiry time), so "my offers expiring soon" reads one slot, and no slot takes every new
//! offer. Each shard has its own mark that it was built from DynamoDB: a shard Redis lost (a
//! flush, a restart, a failover) has lost its mark too, and the next reader rebuilds the index.
//! DynamoDB's due-offer index stays the truth (the expiry job reads it); this one serves reads.
//! Nothing outside this module builds or parses these keys.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use livecache_cache::{Backend, Cache, CacheError};

use super::shards::Shards;
use crate::model::market::Offer;

/// How many slots the index is spread over.
pub(crate) const OFFER_INDEX_SHARDS: u16 = 16;

const NS_OFFERS: &str = super::keys::NS_OFFERS;

/// The index, over the cache's backend.
#[derive(Debug, Clone)]
pub struct OfferIndex {
    shards: Shards,
}

impl OfferIndex {
    pub fn new(cache: &Cache) -> Self {
        Self { shards: Shards::new(cache, NS_OFFERS, NS_OFFERS, OFFER_INDEX_SHARDS) }
    }

    fn backend(&self) -> &Arc<dyn Backend> {
        self.shards.backend()
    }

    fn shards(&self) -> u16 {
        self.shards.count()
    }

    /// The shard listing a user's offers.
    pub(crate) fn shard_of(&self, user: &str) -> u16 {
        self.shards.of(user)
    }

    fn index_key(&self, shard: u16) -> Result<String, CacheError> {
        self.shards.key(shard, &["expiry"])
    }

    fn built_key(&self, shard: u16) -> Result<String, CacheError> {
        self.shards.key(shard, &["expiry-built"])
    }

    /// The shards an offer is listed in: its buyer's and its seller's.
    fn shards_of(&self, offer: &Offer) -> Vec<u16> {
        let (a, b) = (self.shard_of(&offer.buyer_id), self.shard_of(&offer.seller_id));
        if a == b {
            vec![a]
        } else {
            vec![a, b]
        }
    }

    /// Lists (or moves) an offer at its expiry time.
    pub async fn track(&self, offer: &Offer) -> Result<(), CacheError> {
        let at = offer.expires_at.timestamp_millis().max(0) as u64;
        for shard in self.shards_of(offer) {
            self.backend().schedule(&self.index_key(shard)?, &offer.id, at).await?;
        }
        Ok(())
    }

    /// Whether the shard holding `user`'s offers was built (and not lost since).
    pub async fn is_built_for(&self, user: &str) -> Result<bool, CacheError> {
        Ok(self.backend().get(&self.built_key(self.shard_of(user))?).await?.is_some())
    }

    /// Ids listed in `user`'s shard due in `[now_ms, now_ms + window]`, soonest first, at most
    /// `limit` (the shard holds other users' offers too: callers filter).
    pub(crate) async fn due_for(
        &self,
        user: &str,
        now_ms: u64,
        window: Duration,
        limit: usize,
    ) -> Result<Vec<String>, CacheError> {
        let key = self.index_key(self.shard_of(user))?;
        Ok(self.backend().due_within(&key, now_ms, window, limit).await?.into_iter().map(|(id, _)| id).collect())
    }

    /// Lists every offer of `pending` (in pages of 500 per shard), then marks every shard built.
    pub async fn rebuild(&self, pending: &[Offer]) -> Result<(), CacheError> {
        let mut per_shard: BTreeMap<u16, Vec<(String, u64)>> = BTreeMap::new();
        for offer in pending {
            let at = offer.expires_at.timestamp_millis().max(0) as u64;
            for shard in self.shards_of(offer) {
                per_shard.entry(shard).or_default().push((offer.id.clone(), at));
            }
        }
        for (shard, entries) in per_shard {
            let key = self.index_key(shard)?;
            for chunk in entries.chunks(500) {
                self.backend().schedule_many(&key, chunk).await?;
            }
        }
        for shard in 0..self.shards() {
            self.backend().set(&self.built_key(shard)?, b"1", None).await?;
        }
        Ok(())
    }

    /// Takes offers off the index (every shard: the caller need not know their users).
    pub(crate) async fn remove(&self, ids: &[String]) -> Result<(), CacheError> {
        if ids.is_empty() {
            return Ok(());
        }
        let removes = (0..self.shards()).map(|s| async move { self.backend().remove(&self.index_key(s)?, ids).await });
        for r in futures::future::join_all(removes).await {
            r?;
        }
        Ok(())
    }

    /// Every listed offer and its expiry time (one read per shard).
    pub async fn entries(&self) -> Result<BTreeMap<String, u64>, CacheError> {
        let mut out = BTreeMap::new();
        for shard in 0..self.shards() {
            out.extend(self.backend().due(&self.index_key(shard)?, u64::MAX, usize::MAX).await?);
        }
        Ok(out)
    }

    /// When an offer is listed to expire, if it is listed.
    pub async fn scheduled_at(&self, id: &str) -> Result<Option<u64>, CacheError> {
        for shard in 0..self.shards() {
            if let Some(at) = self.backend().scheduled_at(&self.index_key(shard)?, id).await? {
                return Ok(Some(at));
            }
        }
        Ok(None)
    }

    /// Drops every shard and its mark, as Redis losing its data would.
    pub async fn forget_all(&self) -> Result<(), CacheError> {
        let mut keys = Vec::new();
        for shard in 0..self.shards() {
            keys.push(self.index_key(shard)?);
            keys.push(self.built_key(shard)?);
        }
        self.backend().delete(&keys).await.map(|_| ())
    }
}
