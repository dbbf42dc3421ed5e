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

    async fn mget_revalidate(&self, keys: &[String], held: &[u8]) -> Result<(Vec<Option<Vec<u8>>>, Revalidated)> {
        let one_slot = keys.windows(2).all(|w| slot(w[0].as_bytes()) == slot(w[1].as_bytes()));
        if keys.is_empty() || held.is_empty() || (self.cfg.cluster && !one_slot) {
            let mut values = self.mget(keys).await?;
            let last = Revalidated::of(values.pop().flatten(), held);
            return Ok((values, last));
        }
        let mut inv = self.scripts.revalidate.prepare_invoke();
        for k in keys {
            inv.key(k);
        }
        inv.arg(held);
        let mut reply: Vec<Value> = self.run(|mut c| async move { inv.invoke_async(&mut c).await }).await?;
        let last = match reply.pop() {
            Some(Value::Int(1)) => Revalidated::Unchanged,
            Some(Value::BulkString(v)) => Revalidated::Changed(Some(v)),
            _ => Revalidated::Changed(None),
        };
        let values = reply
            .into_iter()
            .map(|v| match v {
                Value::BulkString(b) => Some(b),
                _ => None,
            })
            .collect();
        Ok((values, last))
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
        let keys: Vec<&str> = entries.iter().map(|(k, _, _)| k.as_str()).collect();
        self.per_key::<Value>(&keys, |pipe, i| {
            let (k, v, ttl) = &entries[i];
            pipe.cmd("SET").arg(k).arg(v.as_slice()).arg("PX").arg(ttl.as_millis().max(1) as u64);
        })
        .await
        .map(|_| ())
    }

    async fn delete(&self, keys: &[String]) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        self.query(redis::cmd("UNLINK").arg(keys).to_owned()).await
    }

    async fn scan_page(&self, pattern: &str, at: &ScanAt) -> Result<(Vec<String>, Option<ScanAt>)> {
        let nodes = self.nodes().await?;
        let Some(node) = nodes.get(at.node) else { return Ok((Vec::new(), None)) };
        let (next, keys) = self.scan_step(node.as_ref(), &at.cursor.to_string(), pattern).await?;
        let next: u64 = next.parse().unwrap_or(0);
        let more = if next != 0 {
            Some(ScanAt { node: at.node, cursor: next })
        } else if at.node + 1 < nodes.len() {
            Some(ScanAt { node: at.node + 1, cursor: 0 })
        } else {
            None
        };
        Ok((keys, more))
    }

    async fn delete_by_pattern(&self, pattern: &str) -> Result<u64> {
        let mut deleted = 0u64;
        let mut at = Some(ScanAt::default());
        while let Some(from) = at {
            let (keys, next) = self.scan_page(pattern, &from).await?;
            if !keys.is_empty() {
                deleted += self.delete(&keys).await?;
            }
            at = next;
        }
        Ok(deleted)
    }

    async fn swap(&self, swaps: &[Swap]) -> Result<Vec<bool>> {
        if swaps.is_empty() {
            return Ok(Vec::new());
        }
        // One pipeline per slot on a cluster; EVAL (not EVALSHA) so that no node needs the
        // script loaded first.
        let keys: Vec<&str> = swaps.iter().map(|s| s.key.as_str()).collect();
        let replies: Vec<i64> = self
            .per_key(&keys, |pipe, i| {
                let s = &swaps[i];
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
            })
            .await?;
        Ok(replies.into_iter().map(|r| r == 1).collect())
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

    async fn bump_many(&self, keys: &[String], floor: u64) -> Result<Vec<u64>> {
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let replies: Vec<String> = self
            .per_key(&refs, |pipe, i| {
                pipe.cmd("EVAL").arg(BUMP_SCRIPT).arg(1).arg(&keys[i]).arg(floor);
            })
            .await?;
        replies.iter().map(|s| s.parse().map_err(|_| CacheError::Unavailable(format!("bump returned {s:?}")))).collect()
    }

    async fn ttls(&self, keys: &[String]) -> Result<Vec<KeyTtl>> {
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let ms: Vec<i64> = self
            .per_key(&refs, |pipe, i| {
                pipe.cmd("PTTL").arg(&keys[i]);
            })
            .await?;
        Ok(ms
            .into_iter()
            .map(|ms| match ms {
                -2 => KeyTtl::Missing,
                -1 => KeyTtl::Persistent,
                ms => KeyTtl::Expires(Duration::from_millis(ms.max(0) as u64)),
            })
            .collect())
    }

    async fn hot_slots(&self, limit: usize) -> Result<SlotReport> {
        if !self.cfg.cluster {
            return Ok(SlotReport::unavailable("not a cluster: one server holds every slot"));
        }
        let limit = limit.clamp(1, 1000);
        let ask = |metric: &str| {
            redis::cmd("CLUSTER")
                .arg("SLOT-STATS")
                .arg("ORDERBY")
                .arg(metric)
                .arg("LIMIT")
                .arg(limit)
                .arg("DESC")
                .to_owned()
        };
        let mut metric = "cpu-usec";
        let mut slots = Vec::new();
        // An error reply, whether it came as an error or as a value (a routed command's).
        let refused = |reply: &Result<Value>| match reply {
            Err(CacheError::Redis(e)) => Some(e.to_string().to_ascii_lowercase()),
            Ok(Value::ServerError(e)) => Some(redis::RedisError::from(e.clone()).to_string().to_ascii_lowercase()),
            _ => None,
        };
        for node in self.masters().await? {
            let mut reply = self.on_node(Some(&node), ask(metric)).await;
            if metric == "cpu-usec" && refused(&reply).is_some_and(|e| e.contains("sort metric")) {
                // The servers count keys only (`cluster-slot-stats-enabled no`).
                metric = "key-count";
                reply = self.on_node(Some(&node), ask(metric)).await;
            }
            if let Some(e) = refused(&reply) {
                return Ok(SlotReport::unavailable(if e.contains("unknown subcommand") {
                    "the servers do not report slot statistics (CLUSTER SLOT-STATS: Valkey 8+, ElastiCache Serverless, Redis 8.2+)".to_string()
                } else {
                    format!("CLUSTER SLOT-STATS refused: {e}")
                }));
            }
            let reply = reply?;
            slots.extend(parse_slot_stats(&reply, &format!("{}:{}", node.0, node.1)));
        }
        let busy = |s: &SlotStat| if metric == "cpu-usec" { s.cpu_usec.unwrap_or(0) } else { s.key_count };
        slots.sort_by(|a, b| busy(b).cmp(&busy(a)).then(a.slot.cmp(&b.slot)));
        slots.truncate(limit);
        Ok(SlotReport { available: true, reason: None, ordered_by: Some(metric.to_string()), slots })
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

/// `CLUSTER SLOT-STATS`'s reply: `[[slot, [name, value, …]], …]` (a map for the figures under
/// RESP3).
pub(super) fn parse_slot_stats(reply: &Value, node: &str) -> Vec<SlotStat> {
    let Value::Array(entries) = reply else { return Vec::new() };
    let int = |v: &Value| redis::from_redis_value_ref::<u64>(v).ok();
    let text = |v: &Value| redis::from_redis_value_ref::<String>(v).ok();
    entries
        .iter()
        .filter_map(|entry| {
            let Value::Array(parts) = entry else { return None };
            let slot = u16::try_from(int(parts.first()?)?).ok()?;
            let pairs: Vec<(String, u64)> = match parts.get(1)? {
                Value::Array(flat) => flat.chunks(2).filter_map(|kv| Some((text(&kv[0])?, int(kv.get(1)?)?))).collect(),
                Value::Map(map) => map.iter().filter_map(|(k, v)| Some((text(k)?, int(v)?))).collect(),
                _ => return None,
            };
            let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
            Some(SlotStat {
                slot,
                node: node.to_string(),
                key_count: get("key-count").unwrap_or(0),
                cpu_usec: get("cpu-usec"),
                network_bytes_in: get("network-bytes-in"),
                network_bytes_out: get("network-bytes-out"),
            })
        })
        .collect()
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
