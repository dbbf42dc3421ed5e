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
        let root = keys.root();
        // Other versions: `[{prefix}:]{version}:...` with another version.
        let (prefix, version) = match root.rsplit_once(':') {
            Some((p, v)) => (format!("{p}:"), v.to_string()),
            None => (String::new(), root.to_string()),
        };
        let mut doomed = Vec::new();
        let mut by_ns: HashMap<String, Vec<String>> = HashMap::new();
        // One SCAN serves all three checks: every `v<n>` version under the prefix, or only this
        // keyspace when its version is not of that form.
        let pattern = if version.starts_with('v') { format!("{prefix}v*:*") } else { format!("{root}:*") };
        for key in backend.scan(&pattern, usize::MAX).await? {
            report.scanned += 1;
            let rest = &key[prefix.len()..];
            let key_version = rest.split(':').next().unwrap_or_default();
            let is_version = key_version.len() > 1
                && key_version.starts_with('v')
                && key_version[1..].bytes().all(|b| b.is_ascii_digit());
            if key_version != version && is_version {
                report.old_version += 1;
                doomed.push(key);
                continue;
            }
            if key_version != version {
                continue;
            }
            let after_root = &key[root.len() + 1..];
            let ns = after_root.split(':').next().unwrap_or_default();
            if ns == crate::keys::META_NS || state.contains(&ns) || after_root.starts_with('{') {
                continue;
            }
            if backend.ttl(&key).await? == crate::kv::KeyTtl::Persistent {
                report.no_ttl += 1;
                doomed.push(key);
            } else {
                // A live value key: its stamp is checked below, from the same scan.
                by_ns.entry(ns.to_string()).or_default().push(key);
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
