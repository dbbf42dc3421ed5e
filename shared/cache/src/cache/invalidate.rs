//! Invalidation: one key, a pattern, a namespace (generation, O(1)) or everything (epoch).

use super::*;

impl Cache {
    /// Deletes one key.
    pub async fn invalidate(&self, key: &Key) -> Result<u64> {
        self.detach_flights(|k| k == key.as_str());
        let n = self
            .inner
            .backend
            .delete(&[key.as_str().to_string()])
            .await
            .inspect_err(|e| self.backend_error("delete", e))?;
        self.inner.stats.add(|c| &c.deletes, n);
        self.inner.stats.incr(|c| &c.invalidations);
        Ok(n)
    }

    /// Invalidates every value of a namespace in O(1) by moving its generation on — every slot
    /// group's copy (an entity's namespace has one), pipelined, all done before it returns;
    /// returns the new generation.
    pub async fn invalidate_namespace(&self, ns: &str) -> Result<u64> {
        crate::keys::validate_part(ns)?;
        let prefix = format!("{}:{ns}:", self.inner.keys.root());
        self.detach_flights(|k| k.starts_with(&prefix));
        let keys: Vec<String> =
            self.inner.keys.groups_of(ns).into_iter().map(|g| self.inner.keys.generation_key(ns, g)).collect();
        let generation = self.bump_all(&keys).await?;
        self.inner.stats.incr(|c| &c.invalidations);
        Ok(generation)
    }

    /// Moves every one of `keys` on (idempotent: each is at least one more than it was);
    /// the highest value.
    async fn bump_all(&self, keys: &[String]) -> Result<u64> {
        let now = self.inner.clock.now_ms();
        let values = self.inner.backend.bump_many(keys, now).await.inspect_err(|e| self.backend_error("bump", e))?;
        Ok(values.into_iter().max().unwrap_or(0))
    }

    /// Deletes the keys of `ns` matching `tail` (a glob with `*` and `?`) on every node;
    /// returns how many.
    pub async fn invalidate_pattern(&self, ns: &str, tail: &str) -> Result<u64> {
        let pattern = self.inner.keys.pattern(ns, Some(tail))?;
        self.detach_flights(|k| crate::kv::memory::glob_match(&pattern, k));
        let n = self
            .inner
            .backend
            .delete_by_pattern(&pattern)
            .await
            .inspect_err(|e| self.backend_error("delete_by_pattern", e))?;
        self.inner.stats.add(|c| &c.deletes, n);
        self.inner.stats.incr(|c| &c.invalidations);
        Ok(n)
    }

    /// Invalidates everything this keyspace holds by moving the epoch on; returns the new one.
    pub async fn bump_version(&self) -> Result<u64> {
        self.detach_flights(|_| true);
        let keys: Vec<String> =
            (0..self.inner.keys.slot_groups()).map(|g| self.inner.keys.epoch_key(g).to_string()).collect();
        let epoch = self.bump_all(&keys).await?;
        self.inner.stats.incr(|c| &c.invalidations);
        Ok(epoch)
    }

    /// Names a new version of everything this keyspace holds (`v2.0`): moves the epoch on, as
    /// [`bump_version`](Self::bump_version) does, and records `name`. Returns the name it had
    /// (never named: the keyspace's configured version) and the new epoch. A name is 1 to 64 letters, digits and `._-`.
    pub async fn name_version(&self, name: &str) -> Result<(String, u64)> {
        if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err(CacheError::InvalidKey {
                part: name.chars().take(72).collect(),
                reason: "a version name is 1 to 64 letters, digits and `._-`",
            });
        }
        let key = self.inner.keys.version_name_key();
        let before = self.inner.backend.get(&key).await.inspect_err(|e| self.backend_error("get", e))?;
        let epoch = self.bump_version().await?;
        self.inner.backend.set(&key, name.as_bytes(), None).await.inspect_err(|e| self.backend_error("set", e))?;
        let before = before.map(|b| String::from_utf8_lossy(&b).into_owned());
        Ok((before.unwrap_or_else(|| self.inner.keys.version().to_string()), epoch))
    }

    /// The current epoch and a namespace's generation, as its first slot group holds them (a
    /// namespace's groups move together).
    pub async fn current_stamp(&self, ns: &str) -> Result<Stamp> {
        let group = self.inner.keys.groups_of(ns)[0];
        self.stamp_in(ns, group).await
    }

    /// The current epoch and `ns`'s generation in slot group `group`.
    pub(super) async fn stamp_in(&self, ns: &str, group: u16) -> Result<Stamp> {
        let keys = [self.inner.keys.epoch_key(group).to_string(), self.inner.keys.generation_key(ns, group)];
        let v = self.inner.backend.mget(&keys).await.inspect_err(|e| self.backend_error("mget", e))?;
        Ok(Stamp { epoch: parse_counter(v[0].as_ref()), generation: parse_counter(v[1].as_ref()) })
    }
}
