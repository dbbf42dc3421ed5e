//! Statistics, job runs, and the admin operations: invalidation and warming.

use super::*;

/// The public statistics: hit rates and counts, nothing about the servers.
#[derive(Debug, Clone, Serialize)]
pub struct CacheStatsAnswer {
    /// Every instance's figures, as flushed to the shared hash.
    pub aggregate: StatsReport,
    /// This instance's figures.
    pub instance: StatsReport,
    pub feed_entries: FeedEntries,
}

/// The admins' statistics: the public ones and the cache server's own figures.
#[derive(Debug, Clone, Serialize)]
pub struct CacheStatsDetails {
    #[serde(flatten)]
    pub stats: CacheStatsAnswer,
    pub backend: ServerInfo,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct FeedEntries {
    pub discover: usize,
    pub community: usize,
}

/// What an invalidation did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Invalidated {
    Namespace { namespace: String, generation: u64 },
    Pattern { pattern: String, deleted: u64 },
    Version { version: u64 },
}

impl Marketplace {
    pub async fn cache_stats(&self) -> Result<CacheStatsAnswer> {
        let cache = &self.inner.cache;
        if let Err(e) = cache.flush_stats().await {
            tracing::warn!(error = %e, "stats flush failed");
        }
        let aggregate = cache.aggregate_stats().await.unwrap_or_else(|_| cache.report());
        let discover = cache.count(NS_FEED_DISCOVER, 1_000_000).await.unwrap_or(0);
        let community = cache.count(NS_FEED_COMMUNITY, 1_000_000).await.unwrap_or(0);
        Ok(CacheStatsAnswer { aggregate, instance: cache.report(), feed_entries: FeedEntries { discover, community } })
    }

    /// [`cache_stats`](Self::cache_stats) and the cache server's figures (admins only).
    pub async fn cache_stats_details(&self) -> Result<CacheStatsDetails> {
        let stats = self.cache_stats().await?;
        let backend =
            self.inner.cache.server_info().await.map_err(|e| ServiceError::Unavailable(format!("cache: {e}")))?;
        Ok(CacheStatsDetails { stats, backend })
    }

    pub async fn job_runs(&self) -> Result<Vec<JobRun>> {
        let names = crate::jobs::Job::SCHEDULED.map(|j| j.name());
        Ok(self.inner.store.job_runs(&names).await?)
    }

    pub async fn invalidate_namespace(&self, ns: &str) -> Result<Invalidated> {
        if !NAMESPACES.contains(&ns) {
            return Err(ServiceError::invalid(
                "unknown_namespace",
                format!("namespace must be one of {}", NAMESPACES.join(", ")),
            ));
        }
        let generation = self.inner.cache.invalidate_namespace(ns).await?;
        Ok(Invalidated::Namespace { namespace: ns.into(), generation })
    }

    /// `pattern` is `<namespace>:<glob>` (glob with `*` and `?`).
    pub async fn invalidate_pattern(&self, pattern: &str) -> Result<Invalidated> {
        let (ns, tail) = pattern.split_once(':').ok_or_else(|| {
            ServiceError::invalid("invalid_pattern", "pattern must look like <namespace>:<glob>, e.g. products:prod-0*")
        })?;
        if !NAMESPACES.contains(&ns) {
            return Err(ServiceError::invalid(
                "unknown_namespace",
                format!("namespace must be one of {}", NAMESPACES.join(", ")),
            ));
        }
        let deleted = match self.inner.cache.invalidate_pattern(ns, tail).await {
            Ok(n) => n,
            Err(livecache_cache::CacheError::InvalidKey { part, reason }) => {
                return Err(ServiceError::invalid("invalid_pattern", format!("{part:?}: {reason}")))
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Invalidated::Pattern { pattern: pattern.into(), deleted })
    }

    pub async fn bump_version(&self) -> Result<Invalidated> {
        Ok(Invalidated::Version { version: self.inner.cache.bump_version().await? })
    }

    /// Loads the first `pages` pages of the popular feeds (discover, both sorts, 20 per page)
    /// that are not cached.
    pub async fn warm(&self, pages: u32) -> Result<WarmReport> {
        let mut items = Vec::new();
        for sort in [FeedSort::LiveFirst, FeedSort::Newest] {
            for page in 1..=pages {
                let q = DiscoverQuery { page: PageRequest { page, per_page: 20 }, category: None, sort };
                let key = discover_key(&self.inner.cache, &q)?;
                let store = self.inner.store.clone();
                items.push((key, async move { store.discover(&q).await }));
            }
        }
        Ok(self.inner.cache.warm(items, &feed_policy()).await)
    }
}
