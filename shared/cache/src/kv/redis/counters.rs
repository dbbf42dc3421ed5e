//! Redis as the [`Counters`] (hashes) and [`ExpiryIndex`] (a sorted set) ports.

use super::*;

fn pairs_to_map(flat: Vec<String>) -> HashMap<String, i64> {
    let mut out = HashMap::with_capacity(flat.len() / 2);
    let mut it = flat.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.insert(k, v.parse().unwrap_or(0));
    }
    out
}

#[async_trait]
impl Counters for RedisBackend {
    async fn incr(&self, key: &str, field: &str, by: i64) -> Result<i64> {
        self.query(redis::cmd("HINCRBY").arg(key).arg(field).arg(by).to_owned()).await
    }

    async fn incr_once(&self, key: &str, field: &str, by: i64, once: &str, ttl: Duration) -> Result<bool> {
        let mut inv = self.scripts.incr_once.key(key);
        inv.key(once).arg(field).arg(by).arg(ttl.as_millis().max(1) as u64);
        let n: i64 = self.run(|mut c| async move { inv.invoke_async(&mut c).await }).await?;
        Ok(n == 1)
    }

    async fn incr_many(&self, key: &str, deltas: &[(String, i64)]) -> Result<()> {
        if deltas.is_empty() {
            return Ok(());
        }
        let mut p = redis::pipe();
        for (field, by) in deltas {
            p.cmd("HINCRBY").arg(key).arg(field).arg(*by).ignore();
        }
        self.run(|mut c| async move { p.query_async::<()>(&mut c).await }).await
    }

    async fn add_slots(&self, key: &str, deltas: &[(u32, i64)]) -> Result<()> {
        if deltas.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("BITFIELD");
        cmd.arg(key).arg("OVERFLOW").arg("WRAP");
        for (slot, by) in deltas {
            cmd.arg("INCRBY").arg("i64").arg(format!("#{slot}")).arg(*by);
        }
        let _: Value = self.query(cmd).await?;
        Ok(())
    }

    async fn slots(&self, key: &str) -> Result<Vec<i64>> {
        let raw: Option<Vec<u8>> = self.query(redis::cmd("GET").arg(key).to_owned()).await?;
        Ok(raw
            .unwrap_or_default()
            .chunks(8)
            .map(|c| {
                let mut b = [0u8; 8];
                b[..c.len()].copy_from_slice(c);
                i64::from_be_bytes(b)
            })
            .collect())
    }

    async fn field(&self, key: &str, field: &str) -> Result<i64> {
        let v: Option<i64> = self.query(redis::cmd("HGET").arg(key).arg(field).to_owned()).await?;
        Ok(v.unwrap_or(0))
    }

    async fn fields(&self, key: &str) -> Result<HashMap<String, i64>> {
        let flat: Vec<String> = self.query(redis::cmd("HGETALL").arg(key).to_owned()).await?;
        Ok(pairs_to_map(flat))
    }

    async fn drain(&self, key: &str) -> Result<HashMap<String, i64>> {
        let inv = self.scripts.drain.key(key);
        let flat: Vec<String> = self.run(|mut c| async move { inv.invoke_async(&mut c).await }).await?;
        Ok(pairs_to_map(flat))
    }

    async fn move_to(&self, from: &str, to: &str) -> Result<bool> {
        if self.cfg.cluster && slot(from.as_bytes()) != slot(to.as_bytes()) {
            return Err(CacheError::InvalidKey {
                part: format!("{from} -> {to}"),
                reason: "keys moved together must share a hash tag",
            });
        }
        match self.query::<i64>(redis::cmd("RENAMENX").arg(from).arg(to).to_owned()).await {
            Ok(n) => Ok(n == 1),
            // "ERR no such key": nothing pending.
            Err(CacheError::Redis(e)) if e.to_string().contains("no such key") => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl ExpiryIndex for RedisBackend {
    async fn schedule(&self, index: &str, id: &str, at_ms: u64) -> Result<()> {
        self.schedule_many(index, &[(id.to_string(), at_ms)]).await
    }

    async fn schedule_many(&self, index: &str, entries: &[(String, u64)]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("ZADD");
        cmd.arg(index);
        for (id, at) in entries {
            cmd.arg(*at).arg(id);
        }
        self.query::<i64>(cmd).await.map(|_| ())
    }

    async fn due(&self, index: &str, now_ms: u64, limit: usize) -> Result<Vec<(String, u64)>> {
        self.by_score(index, "-inf".into(), now_ms.to_string(), limit).await
    }

    async fn due_within(&self, index: &str, now_ms: u64, window: Duration, limit: usize) -> Result<Vec<(String, u64)>> {
        let end = now_ms + window.as_millis() as u64;
        self.by_score(index, now_ms.to_string(), end.to_string(), limit).await
    }

    async fn remove(&self, index: &str, ids: &[String]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        self.query(redis::cmd("ZREM").arg(index).arg(ids).to_owned()).await
    }

    async fn extend(&self, index: &str, id: &str, at_ms: u64) -> Result<bool> {
        let mut inv = self.scripts.extend.key(index);
        inv.arg(id).arg(at_ms);
        let n: i64 = self.run(|mut c| async move { inv.invoke_async(&mut c).await }).await?;
        Ok(n == 1)
    }

    async fn count(&self, index: &str) -> Result<u64> {
        self.query(redis::cmd("ZCARD").arg(index).to_owned()).await
    }

    async fn scheduled_at(&self, index: &str, id: &str) -> Result<Option<u64>> {
        let v: Option<f64> = self.query(redis::cmd("ZSCORE").arg(index).arg(id).to_owned()).await?;
        Ok(v.map(|s| s as u64))
    }
}
