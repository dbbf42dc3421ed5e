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
    /// What this instance's sampled consistency checks found (`CACHE_VERIFY_RATE`).
    pub verify: super::VerifyReport,
    /// The [`HOT_SLOTS`] busiest cluster slots, where the servers count them.
    pub slots: livecache_cache::SlotReport,
}

/// How many of the busiest slots the detailed statistics list.
pub const HOT_SLOTS: usize = 10;

/// Feed entries in the cache, as the nightly sweep counted them (no request scans the
/// keyspace); zero with no `counted_at` before the first sweep.
#[derive(Debug, Clone, Serialize)]
pub struct FeedEntries {
    pub discover: u64,
    pub community: u64,
    /// When the sweep that counted them finished.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counted_at: Option<String>,
}

/// How long an instance reuses its statistics answer.
pub const STATS_ANSWER_TTL: Duration = Duration::from_secs(5);

/// A scheduled job's status: the last run's fields (outcome, timing, figures) beside its
/// schedule and next run; only `job`, `schedule` and `next_run_at` before the first run.
#[derive(Debug, Clone, Serialize)]
pub struct JobStatus {
    pub job: &'static str,
    /// The EventBridge expression (`rate(1 minute)`, `cron(0 3 * * ? *)`).
    pub schedule: String,
    #[serde(with = "crate::model::time::rfc3339_ms")]
    pub next_run_at: crate::model::time::Timestamp,
    #[serde(flatten)]
    pub last_run: Option<serde_json::Map<String, serde_json::Value>>,
}

/// What an invalidation did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Invalidated {
    Namespace {
        namespace: String,
        generation: u64,
    },
    Pattern {
        pattern: String,
        deleted: u64,
    },
    Version {
        version: u64,
        /// The version's new name, when one was given.
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// The name it had before (the keyspace's configured version if never named).
        #[serde(skip_serializing_if = "Option::is_none")]
        previous: Option<String>,
    },
    User {
        user: String,
        generation: u64,
    },
}

impl Marketplace {
    /// The statistics: one read per aggregate shard
    /// ([`STATS_SHARDS`](livecache_cache::STATS_SHARDS) Redis commands, no write, no
    /// SCAN) and the last sweep's entry counts (one database read); the answer is reused for
    /// [`STATS_ANSWER_TTL`].
    pub async fn cache_stats(&self) -> Result<CacheStatsAnswer> {
        let cache = &self.inner.cache;
        let now = cache.clock().now_ms();
        if let Some((at, answer)) = self.inner.stats_answer.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            if now.saturating_sub(*at) < STATS_ANSWER_TTL.as_millis() as u64 {
                return Ok(answer.clone());
            }
        }
        let aggregate = cache.aggregate_stats().await.unwrap_or_else(|_| cache.report());
        let swept = self.inner.store.jobs.job_runs(&[crate::model::schedule::Job::CacheCleanup.name()]).await?.pop();
        let counted = |ns: &str| swept.as_ref().and_then(|r| r.figures["entries"][ns].as_u64()).unwrap_or(0);
        let feed_entries = FeedEntries {
            discover: counted(NS_FEED_DISCOVER),
            community: counted(NS_FEED_COMMUNITY),
            counted_at: swept.as_ref().map(|r| time::format(&r.finished_at)),
        };
        let answer = CacheStatsAnswer { aggregate, instance: cache.report(), feed_entries };
        *self.inner.stats_answer.lock().unwrap_or_else(|p| p.into_inner()) = Some((now, answer.clone()));
        Ok(answer)
    }

    /// [`cache_stats`](Self::cache_stats) and the cache server's figures (admins only).
    pub async fn cache_stats_details(&self) -> Result<CacheStatsDetails> {
        let stats = self.cache_stats().await?;
        let backend =
            self.inner.cache.server_info().await.map_err(|e| ServiceError::Unavailable(format!("cache: {e}")))?;
        let slots = self
            .inner
            .cache
            .backend()
            .hot_slots(HOT_SLOTS)
            .await
            .unwrap_or_else(|e| livecache_cache::SlotReport::unavailable(format!("cache: {e}")));
        Ok(CacheStatsDetails { stats, backend, verify: self.verify_report(), slots })
    }

    pub async fn job_runs(&self) -> Result<Vec<JobRun>> {
        let names = crate::model::schedule::Job::SCHEDULED.map(|j| j.name());
        Ok(self.inner.store.jobs.job_runs(&names).await?)
    }

    /// Each scheduled job: its schedule, when it runs next, and its last run (the error text
    /// only when `with_errors`: it can name AWS resources).
    pub async fn job_status(&self, with_errors: bool) -> Result<Vec<JobStatus>> {
        let runs = self.job_runs().await?;
        let now = time::now();
        Ok(crate::model::schedule::Job::SCHEDULED
            .iter()
            .filter_map(|job| {
                let schedule = job.schedule()?;
                let last = runs.iter().find(|r| r.job == job.name());
                let last_run = last.and_then(|r| match serde_json::to_value(r) {
                    Ok(serde_json::Value::Object(mut m)) => {
                        m.remove("job");
                        if !with_errors {
                            m.remove("error");
                        }
                        Some(m)
                    }
                    _ => None,
                });
                Some(JobStatus {
                    job: job.name(),
                    schedule: schedule.expression(),
                    next_run_at: schedule.next_run(last.map(|r| r.started_at), now),
                    last_run,
                })
            })
            .collect())
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
        Ok(Invalidated::Version { version: self.inner.cache.bump_version().await?, name: None, previous: None })
    }

    /// Invalidates everything under a new version name (`v2.0`), reporting the one it replaces.
    pub async fn name_version(&self, name: &str) -> Result<Invalidated> {
        let (previous, version) = match self.inner.cache.name_version(name).await {
            Ok(done) => done,
            Err(livecache_cache::CacheError::InvalidKey { part, reason }) => {
                return Err(ServiceError::invalid("invalid_version", format!("{part:?}: {reason}")))
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Invalidated::Version { version, name: Some(name.to_string()), previous: Some(previous) })
    }

    /// Loads the first `pages` pages of the popular feeds (discover, both sorts, 20 per page)
    /// that are not cached.
    pub async fn warm(&self, pages: u32) -> Result<WarmReport> {
        let mut items = Vec::new();
        for sort in [FeedSort::LiveFirst, FeedSort::Newest] {
            for page in 1..=pages {
                let q = DiscoverQuery { page: PageRequest { page, per_page: 20 }, category: None, sort };
                let key = discover_key(&self.inner.cache, &q)?;
                let store = self.inner.store.feeds.clone();
                // Stored as the feed reads it (see `RawPage`).
                items.push((key, async move { RawPage::of(&store.discover(&q).await?) }));
            }
        }
        Ok(self.inner.cache.warm(items, &feed_policy()).await)
    }
}
