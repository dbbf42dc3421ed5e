//! Keys spread over several cluster slots by an id: the shape the view ledger and the offer
//! index share. Shard `s` of `n` has the hash tag `{<prefix><s>-<k>}`, whose slot lies in the
//! `s`-th `n`-th of the slot space, so the shards spread evenly over a cluster's masters.

use std::sync::Arc;

use livecache_cache::{spread_tag, stable_hash, Backend, Cache, CacheError};

#[derive(Clone)]
pub(crate) struct Shards {
    cache: Cache,
    ns: &'static str,
    /// Each shard's tag, made once.
    tags: Arc<Vec<String>>,
}

impl std::fmt::Debug for Shards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shards").field("ns", &self.ns).field("shards", &self.tags.len()).finish()
    }
}

impl Shards {
    /// `n` shards (at least 1) of namespace `ns`, tagged `{<prefix>…}`.
    pub(crate) fn new(cache: &Cache, prefix: &str, ns: &'static str, n: u16) -> Self {
        let n = n.max(1);
        let tags = (0..n).map(|s| spread_tag(prefix, s, n)).collect();
        Self { cache: cache.clone(), ns, tags: Arc::new(tags) }
    }

    pub(crate) fn count(&self) -> u16 {
        self.tags.len() as u16
    }

    pub(crate) fn backend(&self) -> &Arc<dyn Backend> {
        self.cache.backend()
    }

    /// The shard of an id (a stable hash, the same on every instance).
    pub(crate) fn of(&self, id: &str) -> u16 {
        (stable_hash(id) % self.tags.len() as u64) as u16
    }

    /// `<root>:{tag of shard}:<ns>:<parts…>`.
    pub(crate) fn key(&self, shard: u16, parts: &[&str]) -> Result<String, CacheError> {
        Ok(self.cache.keys().tagged_key(&self.tags[shard as usize], self.ns, parts)?.to_string())
    }

    #[cfg(test)]
    pub(crate) fn tag(&self, shard: u16) -> &str {
        &self.tags[shard as usize]
    }
}
