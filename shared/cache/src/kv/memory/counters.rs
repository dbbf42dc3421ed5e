//! The in-memory [`Counters`] (hashes, once-keys) and [`ExpiryIndex`] (a time-ordered set).

use super::*;

#[async_trait]
impl Counters for MemoryBackend {
    async fn incr(&self, key: &str, field: &str, by: i64) -> Result<i64> {
        let mut st = self.state();
        let v = st.hashes.entry(key.to_string()).or_default().entry(field.to_string()).or_insert(0);
        *v += by;
        Ok(*v)
    }

    async fn incr_once(&self, key: &str, field: &str, by: i64, once: &str, ttl: Duration) -> Result<bool> {
        let now = self.clock.now_ms();
        let mut st = self.state();
        st.once.retain(|_, until| *until > now);
        if st.once.contains_key(once) {
            return Ok(false);
        }
        st.once.insert(once.to_string(), now + ttl.as_millis() as u64);
        *st.hashes.entry(key.to_string()).or_default().entry(field.to_string()).or_insert(0) += by;
        Ok(true)
    }

    async fn incr_many(&self, key: &str, deltas: &[(String, i64)]) -> Result<()> {
        let mut st = self.state();
        let h = st.hashes.entry(key.to_string()).or_default();
        for (field, by) in deltas {
            *h.entry(field.clone()).or_insert(0) += by;
        }
        Ok(())
    }

    async fn add_slots(&self, key: &str, deltas: &[(u32, i64)]) -> Result<()> {
        let mut st = self.state();
        let h = st.hashes.entry(key.to_string()).or_default();
        for (slot, by) in deltas {
            let n = h.entry(format!("#{slot}")).or_insert(0);
            *n = n.wrapping_add(*by);
        }
        Ok(())
    }

    async fn slots(&self, key: &str) -> Result<Vec<i64>> {
        let st = self.state();
        let Some(h) = st.hashes.get(key) else { return Ok(Vec::new()) };
        let at: Vec<(usize, i64)> =
            h.iter().filter_map(|(f, n)| Some((f.strip_prefix('#')?.parse().ok()?, *n))).collect();
        let mut out = vec![0; at.iter().map(|(i, _)| i + 1).max().unwrap_or(0)];
        for (i, n) in at {
            out[i] = n;
        }
        Ok(out)
    }

    async fn field(&self, key: &str, field: &str) -> Result<i64> {
        Ok(self.state().hashes.get(key).and_then(|h| h.get(field)).copied().unwrap_or(0))
    }

    async fn fields(&self, key: &str) -> Result<HashMap<String, i64>> {
        Ok(self.state().hashes.get(key).cloned().unwrap_or_default())
    }

    async fn drain(&self, key: &str) -> Result<HashMap<String, i64>> {
        Ok(self.state().hashes.remove(key).unwrap_or_default())
    }

    async fn move_to(&self, from: &str, to: &str) -> Result<bool> {
        let mut st = self.state();
        if st.hashes.contains_key(to) || !st.hashes.contains_key(from) {
            return Ok(false);
        }
        let h = st.hashes.remove(from).unwrap_or_default();
        st.hashes.insert(to.to_string(), h);
        Ok(true)
    }
}

#[async_trait]
impl ExpiryIndex for MemoryBackend {
    async fn schedule(&self, index: &str, id: &str, at_ms: u64) -> Result<()> {
        self.schedule_many(index, &[(id.to_string(), at_ms)]).await
    }

    async fn schedule_many(&self, index: &str, entries: &[(String, u64)]) -> Result<()> {
        let mut st = self.state();
        let idx = st.indexes.entry(index.to_string()).or_default();
        for (id, at) in entries {
            idx.insert(id, *at);
        }
        Ok(())
    }

    async fn due(&self, index: &str, now_ms: u64, limit: usize) -> Result<Vec<(String, u64)>> {
        let st = self.state();
        Ok(st
            .indexes
            .get(index)
            .map(|i| {
                i.by_time
                    .iter()
                    .take_while(|(at, _)| *at <= now_ms)
                    .take(limit)
                    .map(|(at, id)| (id.clone(), *at))
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn due_within(&self, index: &str, now_ms: u64, window: Duration, limit: usize) -> Result<Vec<(String, u64)>> {
        let end = now_ms + window.as_millis() as u64;
        let st = self.state();
        Ok(st
            .indexes
            .get(index)
            .map(|i| {
                i.by_time
                    .range((now_ms, String::new())..)
                    .take_while(|(at, _)| *at <= end)
                    .take(limit)
                    .map(|(at, id)| (id.clone(), *at))
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn remove(&self, index: &str, ids: &[String]) -> Result<u64> {
        let mut st = self.state();
        let Some(i) = st.indexes.get_mut(index) else { return Ok(0) };
        let n = ids.iter().filter(|id| i.remove(id)).count() as u64;
        if i.by_id.is_empty() {
            st.indexes.remove(index);
        }
        Ok(n)
    }

    async fn extend(&self, index: &str, id: &str, at_ms: u64) -> Result<bool> {
        let mut st = self.state();
        match st.indexes.get_mut(index) {
            Some(i) if i.by_id.contains_key(id) => {
                i.insert(id, at_ms);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn count(&self, index: &str) -> Result<u64> {
        Ok(self.state().indexes.get(index).map(|i| i.by_id.len() as u64).unwrap_or(0))
    }

    async fn scheduled_at(&self, index: &str, id: &str) -> Result<Option<u64>> {
        Ok(self.state().indexes.get(index).and_then(|i| i.by_id.get(id).copied()))
    }
}
