//! Redis as the [`KvStore`] port: values, batches, pattern deletes, compare-and-swap, locks,
//! generations, server figures.

use super::*;

#[async_trait]
impl KvStore for RedisBackend {
    fn backend(&self) -> &'static str {
        if self.cfg.cluster {
            "redis-cluster"
        } else {
            "redis"
        }
    }

    fn circuit_trips(&self) -> u64 {
        self.breaker.trips()
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.query(redis::cmd("GET").arg(key).to_owned()).await
    }

    async fn mget(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.query(redis::cmd("MGET").arg(keys).to_owned()).await
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value);
        if let Some(ttl) = ttl {
            cmd.arg("PX").arg(ttl.as_millis().max(1) as u64);
        }
        self.query(cmd).await
    }

    async fn mset_with_ttl(&self, entries: &[(String, Vec<u8>, Duration)]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        // One pipeline per slot on a cluster (a pipeline may not cross slots); one in all on a
        // single node.
        let mut groups: BTreeMap<u16, Pipeline> = BTreeMap::new();
        for (k, v, ttl) in entries {
            let group = if self.cfg.cluster { slot(k.as_bytes()) } else { 0 };
            groups
                .entry(group)
                .or_insert_with(redis::pipe)
                .cmd("SET")
                .arg(k)
                .arg(v.as_slice())
                .arg("PX")
                .arg(ttl.as_millis().max(1) as u64)
                .ignore();
        }
        self.run(|c| async move {
            let sends = groups.into_values().map(|p| {
                let mut c = c.clone();
                async move { p.query_async::<()>(&mut c).await }
            });
            futures::future::try_join_all(sends).await.map(|_| ())
        })
        .await
    }

    async fn delete(&self, keys: &[String]) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        self.query(redis::cmd("UNLINK").arg(keys).to_owned()).await
    }

    async fn scan(&self, pattern: &str, limit: usize) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut scan = ScanCursor::new(self).await?;
        while out.len() < limit {
            match scan.next(self, pattern).await? {
                Some(keys) => out.extend(keys),
                None => break,
            }
        }
        out.truncate(limit);
        Ok(out)
    }

    async fn delete_by_pattern(&self, pattern: &str) -> Result<u64> {
        let mut deleted = 0u64;
        let mut scan = ScanCursor::new(self).await?;
        while let Some(keys) = scan.next(self, pattern).await? {
            deleted += self.delete(&keys).await?;
        }
        Ok(deleted)
    }

    async fn swap(&self, swaps: &[Swap]) -> Result<Vec<bool>> {
        if swaps.is_empty() {
            return Ok(Vec::new());
        }
        // One pipeline per slot on a cluster; EVAL (not EVALSHA) so that no node needs the
        // script loaded first. Results come back per group and are put back in order.
        let mut groups: BTreeMap<u16, (Pipeline, Vec<usize>)> = BTreeMap::new();
        for (i, s) in swaps.iter().enumerate() {
            let group = if self.cfg.cluster { slot(s.key.as_bytes()) } else { 0 };
            let (pipe, at) = groups.entry(group).or_insert_with(|| (redis::pipe(), Vec::new()));
            let (value, ttl) = match &s.value {
                Some((v, ttl)) => (v.as_slice(), ttl.as_millis().max(1) as u64),
                None => (&[][..], 0),
            };
            pipe.cmd("EVAL")
                .arg(SWAP_SCRIPT)
                .arg(1)
                .arg(&s.key)
                .arg(if s.expect.is_some() { "1" } else { "0" })
                .arg(s.expect.as_deref().unwrap_or_default())
                .arg(if s.value.is_some() { "1" } else { "0" })
                .arg(value)
                .arg(ttl);
            at.push(i);
        }
        self.run(|c| async move {
            let sends = groups.into_values().map(|(p, at)| {
                let mut c = c.clone();
                async move { p.query_async::<Vec<i64>>(&mut c).await.map(|r| (at, r)) }
            });
            let mut out = vec![false; swaps.len()];
            for (at, replies) in futures::future::try_join_all(sends).await? {
                for (i, r) in at.into_iter().zip(replies) {
                    out[i] = r == 1;
                }
            }
            Ok(out)
        })
        .await
    }

    async fn set_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool> {
        let reply: Option<String> = self
            .query(
                redis::cmd("SET").arg(key).arg(value).arg("NX").arg("PX").arg(ttl.as_millis().max(1) as u64).to_owned(),
            )
            .await?;
        Ok(reply.is_some())
    }

    async fn delete_if_equals(&self, key: &str, value: &[u8]) -> Result<bool> {
        let mut inv = self.scripts.delete_if_equals.key(key);
        inv.arg(value);
        let n: i64 = self.run(|mut c| async move { inv.invoke_async(&mut c).await }).await?;
        Ok(n == 1)
    }

    async fn bump(&self, key: &str, floor: u64) -> Result<u64> {
        let mut inv = self.scripts.bump.key(key);
        inv.arg(floor);
        let s: String = self.run(|mut c| async move { inv.invoke_async(&mut c).await }).await?;
        s.parse().map_err(|_| CacheError::Unavailable(format!("bump returned {s:?}")))
    }

    async fn ttl(&self, key: &str) -> Result<KeyTtl> {
        let ms: i64 = self.query(redis::cmd("PTTL").arg(key).to_owned()).await?;
        Ok(match ms {
            -2 => KeyTtl::Missing,
            -1 => KeyTtl::Persistent,
            ms => KeyTtl::Expires(Duration::from_millis(ms.max(0) as u64)),
        })
    }

    async fn info(&self) -> Result<ServerInfo> {
        let mut info = ServerInfo { backend: self.backend().into(), ..ServerInfo::default() };
        for node in self.nodes().await? {
            let v = self.on_node(node.as_ref(), redis::cmd("INFO").to_owned()).await?;
            let text: String = redis::from_redis_value(v).map_err(redis::RedisError::from)?;
            parse_info(&text, &mut info);
            info.nodes += 1;
        }
        Ok(info)
    }
}

/// Walks SCAN over every node, a page at a time.
struct ScanCursor {
    nodes: Vec<Option<(String, u16)>>,
    node: usize,
    cursor: String,
}

impl ScanCursor {
    async fn new(backend: &RedisBackend) -> Result<Self> {
        Ok(Self { nodes: backend.nodes().await?, node: 0, cursor: "0".into() })
    }

    /// The next page of keys, or None when every node is done.
    async fn next(&mut self, backend: &RedisBackend, pattern: &str) -> Result<Option<Vec<String>>> {
        while self.node < self.nodes.len() {
            let (next, keys) = backend.scan_step(self.nodes[self.node].as_ref(), &self.cursor, pattern).await?;
            if next == "0" {
                self.node += 1;
                self.cursor = "0".into();
            } else {
                self.cursor = next;
            }
            if !keys.is_empty() {
                return Ok(Some(keys));
            }
        }
        Ok(None)
    }
}

pub(super) fn parse_info(text: &str, info: &mut ServerInfo) {
    for line in text.lines() {
        let Some((k, v)) = line.trim().split_once(':') else { continue };
        let n = || v.trim().parse::<u64>().unwrap_or(0);
        match k {
            "redis_version" | "valkey_version" if info.version.is_empty() => info.version = v.trim().to_string(),
            "used_memory" => info.used_memory += n(),
            "used_memory_peak" => info.used_memory_peak += n(),
            "connected_clients" => info.connected_clients += n(),
            "keyspace_hits" => info.keyspace_hits += n(),
            "keyspace_misses" => info.keyspace_misses += n(),
            "evicted_keys" => info.evicted_keys += n(),
            db if db.starts_with("db") => {
                if let Some(keys) = v.split(',').find_map(|p| p.strip_prefix("keys=")) {
                    info.keys += keys.parse::<u64>().unwrap_or(0);
                }
            }
            _ => {}
        }
    }
}
