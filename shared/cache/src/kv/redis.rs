//! The Redis adapter: single node (`redis://`), TLS (`rediss://`) and cluster mode (several
//! nodes or `?cluster=true`, as ElastiCache Serverless needs) behind one type.
//!
//! * One connection per process, made lazily and reused (a multiplexed `ConnectionManager`,
//!   or the cluster client's connection), reconnecting by itself.
//! * Every command is bounded by `command_timeout`; a dead Redis never costs more than that.
//! * After `breaker.threshold` transport failures in a row the circuit opens and calls fail
//!   at once for `breaker.cooldown`, after which one probe is let through.
//! * Cluster: MGET/DEL/UNLINK are split by slot by the client; pipelines are grouped by slot
//!   here; SCAN runs on every master.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Script, Value};
use tokio::sync::OnceCell;

use super::{Counters, ExpiryIndex, KeyTtl, KvStore, ServerInfo, Swap};
use crate::breaker::{Breaker, BreakerConfig};
use crate::error::{CacheError, Result};
use crate::slot::slot;

/// How to reach Redis.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// Node URLs (`redis://` or `rediss://`); more than one means cluster mode.
    pub nodes: Vec<String>,
    pub cluster: bool,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    pub breaker: BreakerConfig,
    /// A private CA (PEM) that `rediss://` servers' certificates are checked against; `None`:
    /// the system's roots.
    pub ca_cert: Option<Vec<u8>>,
}

impl RedisConfig {
    /// Parses `REDIS_URL`-style text: `redis://host:port`, `rediss://…` for TLS, a
    /// comma-separated list of nodes for a cluster, or `?cluster=true` on one URL to use the
    /// cluster client against a single configuration endpoint (ElastiCache Serverless).
    pub fn from_url(text: &str) -> Result<Self> {
        let mut cluster = false;
        let mut nodes = Vec::new();
        for raw in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (base, query) = raw.split_once('?').unwrap_or((raw, ""));
            for kv in query.split('&').filter(|s| !s.is_empty()) {
                match kv.split_once('=') {
                    Some(("cluster", v)) => cluster |= matches!(v, "true" | "1" | "yes"),
                    _ => {
                        return Err(CacheError::Config(format!(
                            "REDIS_URL: unknown option {kv:?} (only cluster=true is known)"
                        )))
                    }
                }
            }
            if !(base.starts_with("redis://") || base.starts_with("rediss://")) {
                return Err(CacheError::Config(format!("REDIS_URL: {base:?} must start with redis:// or rediss://")));
            }
            nodes.push(base.to_string());
        }
        if nodes.is_empty() {
            return Err(CacheError::Config("REDIS_URL is empty".into()));
        }
        cluster |= nodes.len() > 1;
        Ok(Self {
            nodes,
            cluster,
            connect_timeout: Duration::from_millis(500),
            command_timeout: Duration::from_millis(250),
            breaker: BreakerConfig::default(),
            ca_cert: None,
        })
    }
}

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Redis seen through every port.
pub struct RedisBackend {
    cfg: RedisConfig,
    conn: OnceCell<Conn>,
    breaker: Breaker,
    scripts: Scripts,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("nodes", &self.cfg.nodes.len())
            .field("cluster", &self.cfg.cluster)
            .field("connected", &self.conn.initialized())
            .finish()
    }
}

/// A conditional write (see [`Swap`]): ARGV = expect-present flag, expected prefix, write flag,
/// value, TTL in ms. A matching delete of an absent key succeeds.
const SWAP_SCRIPT: &str = "local v = redis.call('GET', KEYS[1]) \
    if ARGV[1] == '1' then \
      if not v or string.sub(v, 1, #ARGV[2]) ~= ARGV[2] then return 0 end \
    elseif v then return 0 end \
    if ARGV[3] == '1' then redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[5]) \
    elseif v then redis.call('DEL', KEYS[1]) end \
    return 1";

struct Scripts {
    drain: Script,
    incr_once: Script,
    delete_if_equals: Script,
    bump: Script,
    extend: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            drain: Script::new("local v = redis.call('HGETALL', KEYS[1]) redis.call('DEL', KEYS[1]) return v"),
            incr_once: Script::new(
                "if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[3]) then \
                 redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2]) return 1 else return 0 end",
            ),
            delete_if_equals: Script::new(
                "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end",
            ),
            bump: Script::new(
                "local c = tonumber(redis.call('GET', KEYS[1]) or '0') or 0 \
                 local n = math.max(c + 1, tonumber(ARGV[1])) \
                 local s = string.format('%d', n) redis.call('SET', KEYS[1], s) return s",
            ),
            extend: Script::new(
                "if redis.call('ZSCORE', KEYS[1], ARGV[1]) then redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1]) return 1 else return 0 end",
            ),
        }
    }
}

fn is_transport_error(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_unrecoverable_error()
}

/// Error replies of a server that cannot serve commands now: out of memory, a replica or a
/// node still loading its data, a failover or cluster outage in progress, a busy script.
fn is_unserviceable(e: &redis::RedisError) -> bool {
    matches!(
        e.code(),
        Some(
            "OOM"
                | "READONLY"
                | "LOADING"
                | "MASTERDOWN"
                | "CLUSTERDOWN"
                | "TRYAGAIN"
                | "BUSY"
                | "MISCONF"
                | "NOREPLICAS"
        )
    )
}

impl RedisBackend {
    /// Builds the backend and tries to connect once within `connect_timeout`. A Redis that is
    /// down does not fail this: calls fail fast (circuit breaker) and it reconnects later.
    /// Only bad configuration is an error.
    pub async fn connect(cfg: RedisConfig) -> Result<Self> {
        let backend = Self::lazy(cfg)?;
        if let Err(e) = backend.connection().await {
            tracing::warn!(error = %e, "redis not reachable at start-up; serving without it until it is");
        }
        Ok(backend)
    }

    /// Builds the backend without connecting.
    pub fn lazy(cfg: RedisConfig) -> Result<Self> {
        for node in &cfg.nodes {
            redis::Client::open(node.as_str()).map_err(|e| CacheError::Config(format!("REDIS_URL: {e}")))?;
        }
        if cfg.nodes.iter().any(|n| n.starts_with("rediss://")) {
            // rustls picks its crypto provider from crate features, and a binary may link
            // more than one; name it so TLS never depends on what else is linked.
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        }
        if let Some(ca) = &cfg.ca_cert {
            let certs = redis::TlsCertificates { client_tls: None, root_cert: Some(ca.clone()) };
            if let Some(tls) = cfg.nodes.iter().find(|n| n.starts_with("rediss://")) {
                redis::Client::build_with_tls(tls.as_str(), certs)
                    .map_err(|e| CacheError::Config(format!("REDIS_CA_FILE: {e}")))?;
            }
        }
        Ok(Self { breaker: Breaker::new(cfg.breaker), cfg, conn: OnceCell::new(), scripts: Scripts::new() })
    }

    pub fn is_cluster(&self) -> bool {
        self.cfg.cluster
    }

    /// Whether the circuit breaker is currently skipping Redis.
    pub fn circuit_open(&self) -> bool {
        self.breaker.is_open()
    }

    async fn open(&self) -> RedisResult<Conn> {
        if self.cfg.cluster {
            let mut builder = ClusterClientBuilder::new(self.cfg.nodes.clone())
                .connection_timeout(self.cfg.connect_timeout)
                .response_timeout(self.cfg.command_timeout)
                .retries(1);
            if let Some(certs) = self.certificates() {
                builder = builder.certs(certs);
            }
            Ok(Conn::Cluster(builder.build()?.get_async_connection().await?))
        } else {
            let node = self.cfg.nodes[0].as_str();
            let client = match self.certificates() {
                Some(certs) => redis::Client::build_with_tls(node, certs)?,
                None => redis::Client::open(node)?,
            };
            let mgr_cfg = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(self.cfg.connect_timeout))
                .set_response_timeout(Some(self.cfg.command_timeout))
                // No retry inside a connect: a refused connection fails at once (a cold start
                // with Redis down paid ~16 ms of backoff), and the breaker paces reconnects.
                .set_number_of_retries(0)
                .set_min_delay(Duration::from_millis(10))
                .set_max_delay(self.cfg.connect_timeout);
            Ok(Conn::Single(ConnectionManager::new_with_config(client, mgr_cfg).await?))
        }
    }

    /// The private CA, for `rediss://` nodes (plain ones ignore it).
    fn certificates(&self) -> Option<redis::TlsCertificates> {
        let tls = self.cfg.nodes.iter().any(|n| n.starts_with("rediss://"));
        let ca = self.cfg.ca_cert.clone().filter(|_| tls)?;
        Some(redis::TlsCertificates { client_tls: None, root_cert: Some(ca) })
    }

    async fn connection(&self) -> Result<Conn> {
        if let Some(c) = self.conn.get() {
            return Ok(c.clone());
        }
        let conn = self
            .conn
            .get_or_try_init(|| async {
                match tokio::time::timeout(self.cfg.connect_timeout, self.open()).await {
                    Ok(Ok(c)) => Ok(c),
                    Ok(Err(e)) => Err(CacheError::Unavailable(format!("connect: {e}"))),
                    Err(_) => {
                        Err(CacheError::Unavailable(format!("connect timed out after {:?}", self.cfg.connect_timeout)))
                    }
                }
            })
            .await?;
        Ok(conn.clone())
    }

    /// Runs one operation against Redis under the breaker and the command timeout. Transport
    /// failures, timeouts and the replies of a server that cannot serve (OOM, READONLY,
    /// LOADING, …) count against the breaker; other error replies do not.
    async fn run<T, F, Fut>(&self, op: F) -> Result<T>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let Some(permit) = self.breaker.permit() else {
            return Err(CacheError::Unavailable("circuit open".into()));
        };
        let conn = match self.connection().await {
            Ok(c) => c,
            Err(e) => {
                permit.failure();
                return Err(e);
            }
        };
        match tokio::time::timeout(self.cfg.command_timeout, op(conn)).await {
            Ok(Ok(v)) => {
                permit.success();
                Ok(v)
            }
            Ok(Err(e)) => {
                if is_transport_error(&e) || is_unserviceable(&e) {
                    permit.failure();
                } else {
                    permit.success();
                }
                Err(e.into())
            }
            Err(_) => {
                permit.failure();
                Err(CacheError::Timeout(self.cfg.command_timeout))
            }
        }
    }

    async fn query<T: redis::FromRedisValue + Send>(&self, cmd: Cmd) -> Result<T> {
        self.run(|mut c| async move { cmd.query_async(&mut c).await }).await
    }

    /// Master node addresses of the cluster (from CLUSTER SLOTS).
    async fn masters(&self) -> Result<Vec<(String, u16)>> {
        let slots: Value = self.query(redis::cmd("CLUSTER").arg("SLOTS").to_owned()).await?;
        let mut out: Vec<(String, u16)> = Vec::new();
        if let Value::Array(ranges) = slots {
            for range in ranges {
                let Value::Array(parts) = range else { continue };
                let Some(Value::Array(master)) = parts.get(2) else { continue };
                let host: String = master.first().and_then(|v| redis::from_redis_value_ref(v).ok()).unwrap_or_default();
                let port: u16 = master.get(1).and_then(|v| redis::from_redis_value_ref(v).ok()).unwrap_or(0);
                let host = if host.is_empty() { "127.0.0.1".to_string() } else { host };
                if port != 0 && !out.contains(&(host.clone(), port)) {
                    out.push((host, port));
                }
            }
        }
        Ok(out)
    }

    /// Runs `cmd` on one node of the cluster, or on the server when single-node.
    async fn on_node(&self, node: Option<&(String, u16)>, cmd: Cmd) -> Result<Value> {
        match node {
            None => self.query(cmd).await,
            Some((host, port)) => {
                let routing =
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host: host.clone(), port: *port });
                self.run(|c| async move {
                    match c {
                        Conn::Cluster(mut c) => c.route_command(cmd, routing).await,
                        Conn::Single(mut c) => cmd.query_async(&mut c).await,
                    }
                })
                .await
            }
        }
    }

    async fn nodes(&self) -> Result<Vec<Option<(String, u16)>>> {
        if self.cfg.cluster {
            Ok(self.masters().await?.into_iter().map(Some).collect())
        } else {
            Ok(vec![None])
        }
    }

    /// Members of a sorted set with scores in `[min, max]`, lowest first, at most `limit`.
    async fn by_score(&self, index: &str, min: String, max: String, limit: usize) -> Result<Vec<(String, u64)>> {
        // LIMIT takes a signed count; -1 means all.
        let limit = i64::try_from(limit).unwrap_or(-1);
        let cmd = redis::cmd("ZRANGEBYSCORE")
            .arg(index)
            .arg(min)
            .arg(max)
            .arg("WITHSCORES")
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .to_owned();
        let v: Vec<(String, f64)> = self.query(cmd).await?;
        Ok(v.into_iter().map(|(id, s)| (id, s as u64)).collect())
    }

    /// One SCAN step on one node: the next cursor and the matching keys.
    async fn scan_step(
        &self,
        node: Option<&(String, u16)>,
        cursor: &str,
        pattern: &str,
    ) -> Result<(String, Vec<String>)> {
        let cmd = redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(1000).to_owned();
        let v = self.on_node(node, cmd).await?;
        Ok(redis::from_redis_value(v).map_err(redis::RedisError::from)?)
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

fn parse_info(text: &str, info: &mut ServerInfo) {
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
        self.query::<i64>(redis::cmd("ZADD").arg(index).arg(at_ms).arg(id).to_owned()).await.map(|_| ())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_select_single_tls_or_cluster() {
        let c = RedisConfig::from_url("redis://127.0.0.1:6380").unwrap();
        assert!(!c.cluster);
        let c = RedisConfig::from_url("rediss://cache.example:6379?cluster=true").unwrap();
        assert!(c.cluster);
        assert_eq!(c.nodes, vec!["rediss://cache.example:6379"]);
        let c = RedisConfig::from_url("redis://a:1, redis://b:2").unwrap();
        assert!(c.cluster);
        assert_eq!(c.nodes.len(), 2);
        assert!(RedisConfig::from_url("http://x").is_err());
        assert!(RedisConfig::from_url("").is_err());
        assert!(RedisConfig::from_url("redis://x?bogus=1").is_err());
    }

    #[test]
    fn info_is_summed_over_nodes() {
        let mut info = ServerInfo::default();
        let text = "# Server\r\nredis_version:7.0.15\r\nused_memory:100\r\nkeyspace_hits:3\r\ndb0:keys=5,expires=1,avg_ttl=0\r\n";
        parse_info(text, &mut info);
        parse_info(text, &mut info);
        assert_eq!(info.version, "7.0.15");
        assert_eq!(info.used_memory, 200);
        assert_eq!(info.keys, 10);
        assert_eq!(info.keyspace_hits, 6);
    }
}
