//! Keeping the keyspace tidy and observable: entry counts, the sweep, statistics, server info.

use super::*;

impl Cache {
    /// How many keys a namespace holds (SCAN on every node; up to `limit`). Walks the
    /// keyspace: for tests and tools, never a request path.
    pub async fn count(&self, ns: &str, limit: usize) -> Result<usize> {
        let pattern = self.inner.keys.pattern(ns, None)?;
        Ok(self.inner.backend.scan(&pattern, limit).await?.len())
    }

    /// Deletes what can never be served again, on every node: keys of other key versions
    /// under this keyspace's prefix, value keys without a TTL, and values stamped with an old
    /// epoch or generation; counts the live entries per namespace. The engine's own keys and
    /// the namespaces in `state` (counters, indexes: state, not cache) are left alone.
    /// Streams the keyspace: one SCAN page at a time (never KEYS, never the whole keyspace
    /// held), each page's lifetimes and stamps read pipelined.
    pub async fn sweep(&self, state: &[&str]) -> Result<SweepReport> {
        let mut report = SweepReport::default();
        let mut stamps: HashMap<(String, u16), Stamp> = HashMap::new();
        let pattern = self.inner.keys.sweep_pattern();
        let mut at = Some(crate::kv::ScanAt::default());
        let mut deleted = 0u64;
        while let Some(from) = at {
            let (page, next) = self.inner.backend.scan_page(&pattern, &from).await?;
            at = next;
            deleted += self.sweep_page(page, state, &mut stamps, &mut report).await?;
        }
        self.inner.stats.add(|c| &c.deletes, deleted);
        Ok(report)
    }

    /// One SCAN page of [`sweep`](Self::sweep): how many keys it deleted.
    async fn sweep_page(
        &self,
        page: Vec<String>,
        state: &[&str],
        stamps: &mut HashMap<(String, u16), Stamp>,
        report: &mut SweepReport,
    ) -> Result<u64> {
        let (keys, backend) = (&self.inner.keys, &self.inner.backend);
        let mut doomed = Vec::new();
        let mut values: Vec<(String, String)> = Vec::new();
        // The key layout is read by `keys.rs` alone.
        for key in page {
            report.scanned += 1;
            match keys.classify(&key) {
                crate::keys::KeyKind::OtherVersion => {
                    report.old_version += 1;
                    doomed.push(key);
                }
                crate::keys::KeyKind::Foreign | crate::keys::KeyKind::Bookkeeping => {}
                crate::keys::KeyKind::InNamespace(ns) if state.contains(&ns) => {}
                crate::keys::KeyKind::InNamespace(ns) => values.push((ns.to_string(), key)),
            }
        }
        // Value keys: without a TTL they are doomed; the others' stamps are checked.
        let names: Vec<String> = values.iter().map(|(_, k)| k.clone()).collect();
        let ttls = backend.ttls(&names).await?;
        let mut live = Vec::new();
        for ((ns, key), ttl) in values.into_iter().zip(ttls) {
            match ttl {
                crate::kv::KeyTtl::Persistent => {
                    report.no_ttl += 1;
                    doomed.push(key);
                }
                crate::kv::KeyTtl::Missing => {}
                crate::kv::KeyTtl::Expires(_) => live.push((ns, key)),
            }
        }
        for (ns, key) in &live {
            let group = keys.group_of(key);
            if let std::collections::hash_map::Entry::Vacant(slot) = stamps.entry((ns.clone(), group)) {
                slot.insert(self.stamp_in(ns, group).await?);
            }
        }
        let names: Vec<String> = live.iter().map(|(_, k)| k.clone()).collect();
        let read = backend.mget(&names).await?;
        for ((ns, key), value) in live.into_iter().zip(read) {
            let at = (ns, keys.group_of(&key));
            let ns = at.0.clone();
            match value.as_deref().map(entry::read) {
                Some(Ok(e)) if Some(&e.stamp) != stamps.get(&at) => {
                    report.old_generation += 1;
                    doomed.push(key);
                }
                Some(Ok(_)) => *report.entries.entry(ns).or_insert(0) += 1,
                _ => {}
            }
        }
        backend.delete(&doomed).await
    }

    /// This instance's statistics.
    pub fn report(&self) -> StatsReport {
        self.inner.stats.report()
    }

    /// Adds this instance's counters to the shared aggregate (its shard of it).
    pub async fn flush_stats(&self) -> Result<()> {
        let counters: &dyn Counters = &*self.inner.backend;
        self.inner.stats.flush(counters, &self.inner.keys.stats_key(self.inner.stats.shard())).await
    }

    /// [`flush_stats`](Self::flush_stats) if `every` has passed (on the cache's clock) since
    /// the last flush this made; the first call only starts the period. Whether it flushed.
    pub async fn flush_stats_every(&self, every: Duration) -> Result<bool> {
        if !self.inner.stats.flush_due(self.inner.clock.now_ms(), every) {
            return Ok(false);
        }
        self.flush_stats().await.map(|()| true)
    }

    /// Every instance's statistics: as flushed (one read per aggregate shard), plus this
    /// instance's since its last flush.
    pub async fn aggregate_stats(&self) -> Result<StatsReport> {
        let counters: &dyn Counters = &*self.inner.backend;
        let keys: Vec<String> = (0..crate::keys::STATS_SHARDS).map(|s| self.inner.keys.stats_key(s)).collect();
        self.inner.stats.aggregate(counters, &keys).await
    }

    pub async fn server_info(&self) -> Result<ServerInfo> {
        self.inner.backend.info().await
    }

    // ---- internals ----
}
