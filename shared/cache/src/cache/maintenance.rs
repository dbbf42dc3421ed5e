//! Keeping the keyspace tidy and observable: entry counts, the sweep, statistics, server info.

use super::*;

impl Cache {
    /// How many keys a namespace holds (SCAN on every node; up to `limit`).
    pub async fn count(&self, ns: &str, limit: usize) -> Result<usize> {
        let pattern = self.inner.keys.pattern(ns, None)?;
        Ok(self.inner.backend.scan(&pattern, limit).await?.len())
    }

    /// Deletes what can never be served again, on every node: keys of other key versions
    /// under this keyspace's prefix, value keys without a TTL, and values stamped with an old
    /// epoch or generation. The engine's own keys and the namespaces in `state` (counters,
    /// indexes: state, not cache) are left alone. SCAN + UNLINK, never KEYS.
    pub async fn sweep(&self, state: &[&str]) -> Result<SweepReport> {
        let keys = &self.inner.keys;
        let backend = &self.inner.backend;
        let mut report = SweepReport::default();
        let mut doomed = Vec::new();
        let mut by_ns: HashMap<String, Vec<String>> = HashMap::new();
        // One SCAN serves all three checks; the key layout is read by `keys.rs` alone.
        for key in backend.scan(&keys.sweep_pattern(), usize::MAX).await? {
            report.scanned += 1;
            let ns = match keys.classify(&key) {
                crate::keys::KeyKind::OtherVersion => {
                    report.old_version += 1;
                    doomed.push(key);
                    continue;
                }
                crate::keys::KeyKind::Foreign | crate::keys::KeyKind::Bookkeeping => continue,
                crate::keys::KeyKind::InNamespace(ns) if state.contains(&ns) => continue,
                crate::keys::KeyKind::InNamespace(ns) => ns.to_string(),
            };
            if backend.ttl(&key).await? == crate::kv::KeyTtl::Persistent {
                report.no_ttl += 1;
                doomed.push(key);
            } else {
                // A live value key: its stamp is checked below, from the same scan.
                by_ns.entry(ns).or_default().push(key);
            }
        }
        // Old generations: read values namespace by namespace, compare stamps (header only).
        for (ns, ks) in by_ns {
            let current = self.current_stamp(&ns).await?;
            for chunk in ks.chunks(500) {
                let values = backend.mget(chunk).await?;
                for (key, value) in chunk.iter().zip(values) {
                    if let Some(Ok(e)) = value.as_deref().map(entry::read) {
                        if e.stamp != current {
                            report.old_generation += 1;
                            doomed.push(key.clone());
                        }
                    }
                }
            }
        }
        for chunk in doomed.chunks(500) {
            backend.delete(chunk).await?;
        }
        self.inner.stats.add(|c| &c.deletes, doomed.len() as u64);
        Ok(report)
    }

    /// This instance's statistics.
    pub fn report(&self) -> StatsReport {
        self.inner.stats.report()
    }

    /// Adds this instance's counters to the shared aggregate.
    pub async fn flush_stats(&self) -> Result<()> {
        let counters: &dyn Counters = &*self.inner.backend;
        self.inner.stats.flush(counters, &self.inner.keys.stats_key()).await
    }

    /// Every instance's statistics, as flushed.
    pub async fn aggregate_stats(&self) -> Result<StatsReport> {
        let counters: &dyn Counters = &*self.inner.backend;
        Stats::aggregate(counters, &self.inner.keys.stats_key()).await
    }

    pub async fn server_info(&self) -> Result<ServerInfo> {
        self.inner.backend.info().await
    }

    // ---- internals ----
}
