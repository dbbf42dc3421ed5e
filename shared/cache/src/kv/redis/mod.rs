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

use super::{Counters, ExpiryIndex, KeyTtl, KvStore, Revalidated, ScanAt, ServerInfo, SlotReport, SlotStat, Swap};
use crate::breaker::Breaker;
use crate::error::{CacheError, Result};
use crate::slot::slot;

mod config;
mod counters;
mod store;

pub use config::RedisConfig;

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
/// `max(current + 1, ARGV[1])` into KEYS[1], returned as text (a generation, an epoch).
const BUMP_SCRIPT: &str = "local c = tonumber(redis.call('GET', KEYS[1]) or '0') or 0 \
     local n = math.max(c + 1, tonumber(ARGV[1])) \
     local s = string.format('%d', n) redis.call('SET', KEYS[1], s) return s";

const SWAP_SCRIPT: &str = "local v = redis.call('GET', KEYS[1]) \
    if ARGV[1] == '1' then \
      if not v or string.sub(v, 1, #ARGV[2]) ~= ARGV[2] then return 0 end \
    elseif v then return 0 end \
    if ARGV[3] == '1' then redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[5]) \
    elseif v then redis.call('DEL', KEYS[1]) end \
    return 1";

/// The values of every key; the last one's is answered `1` instead when it starts with
/// ARGV[1] (read with GETRANGE, so an unchanged value is never copied). Read-only.
const REVALIDATE_SCRIPT: &str = "#!lua flags=no-writes
    local out = {} \
    if #KEYS > 1 then out = redis.call('MGET', unpack(KEYS, 1, #KEYS - 1)) end \
    local last = KEYS[#KEYS] \
    if redis.call('GETRANGE', last, 0, #ARGV[1] - 1) == ARGV[1] then out[#KEYS] = 1 \
    else out[#KEYS] = redis.call('GET', last) end \
    return out";

struct Scripts {
    drain: Script,
    revalidate: Script,
    incr_once: Script,
    delete_if_equals: Script,
    bump: Script,
    extend: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            drain: Script::new("local v = redis.call('HGETALL', KEYS[1]) redis.call('DEL', KEYS[1]) return v"),
            revalidate: Script::new(REVALIDATE_SCRIPT),
            incr_once: Script::new(
                "if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[3]) then \
                 redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2]) return 1 else return 0 end",
            ),
            delete_if_equals: Script::new(
                "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end",
            ),
            bump: Script::new(BUMP_SCRIPT),
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

    /// One single-key command per key (`add` appends key `i`'s), sent as one pipeline per
    /// cluster slot (one pipeline on a single node), the pipelines in parallel; the replies in
    /// the order of `keys`.
    async fn per_key<T>(&self, keys: &[&str], add: impl Fn(&mut Pipeline, usize)) -> Result<Vec<T>>
    where
        T: redis::FromRedisValue + Clone + Send + 'static,
    {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut groups: BTreeMap<u16, (Pipeline, Vec<usize>)> = BTreeMap::new();
        for (i, key) in keys.iter().enumerate() {
            let group = if self.cfg.cluster { slot(key.as_bytes()) } else { 0 };
            let (pipe, at) = groups.entry(group).or_insert_with(|| (redis::pipe(), Vec::new()));
            add(pipe, i);
            at.push(i);
        }
        let n = keys.len();
        self.run(|c| async move {
            let sends = groups.into_values().map(|(p, at)| {
                let mut c = c.clone();
                async move { p.query_async::<Vec<T>>(&mut c).await.map(|r| (at, r)) }
            });
            let mut out: Vec<Option<T>> = vec![None; n];
            for (at, replies) in futures::future::try_join_all(sends).await? {
                for (i, r) in at.into_iter().zip(replies) {
                    out[i] = Some(r);
                }
            }
            Ok(out.into_iter().flatten().collect())
        })
        .await
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

#[cfg(test)]
mod tests;
