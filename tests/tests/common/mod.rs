//! Starting the API for a test: the dev server's HTTP front on a free port, against a real
//! redis-server and DynamoDB in moto's server (both started by the test kit), with its own
//! key prefix and its own tables, seeded with the small demo data set.

#![allow(dead_code)]

pub mod aws_calls;
pub mod dynamo_calls;

use std::sync::Arc;

use livecache_cache::{
    Backend, Cache, Keyspace, ManualClock, MemoryBackend, RedisBackend, RedisConfig, SpawnTasks, TaskRunner,
};
use livecache_domain::seed::{self, DemoData, SeedSize};
use livecache_domain::tables::{self, TableNames};
use livecache_domain::{DynamoStore, InProcessBus, MemoryStore, Store};
use livecache_http::{AdminAuth, App};
use livecache_runtime::Deps;
use livecache_testkit::{shared_moto, shared_redis, unique_prefix};

/// A job clock that moves only when read or slept on: each reading costs `step`, a sleep
/// passes at once. Runs shaped by it do not depend on how busy the machine is.
pub struct SteppingClock {
    start: std::time::Instant,
    elapsed_us: std::sync::atomic::AtomicU64,
    step: std::time::Duration,
}

impl SteppingClock {
    pub fn new(step: std::time::Duration) -> Self {
        Self { start: std::time::Instant::now(), elapsed_us: Default::default(), step }
    }

    fn advance(&self, d: std::time::Duration) -> std::time::Instant {
        let us = d.as_micros() as u64;
        let was = self.elapsed_us.fetch_add(us, std::sync::atomic::Ordering::SeqCst);
        self.start + std::time::Duration::from_micros(was + us)
    }
}

impl livecache_domain::jobs::RunClock for SteppingClock {
    fn now(&self) -> std::time::Instant {
        self.advance(self.step)
    }

    fn sleep(&self, d: std::time::Duration) -> futures::future::BoxFuture<'static, ()> {
        self.advance(d);
        Box::pin(async {})
    }

    /// Its time passes only when it is read: a wait (a database write, however slow the
    /// machine) is never cut off by it.
    fn timeout(&self, _d: std::time::Duration) -> futures::future::BoxFuture<'static, ()> {
        Box::pin(futures::future::pending())
    }
}

/// The key the test server verifies JWTs with.
pub const TEST_JWT_SECRET: &str = "test-secret";

/// A token the test server accepts for `sub`.
pub fn token(sub: &str) -> String {
    livecache_dev::DevAuth::new(TEST_JWT_SECRET).mint(sub, 600)
}

pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
    pub deps: Deps,
    pub bus: Arc<InProcessBus>,
    pub clock: Arc<ManualClock>,
    pub data: DemoData,
    /// A cache on the same backend and keyspace, to look at what the API stored.
    pub cache: Cache,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Api {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub async fn dynamo_store(name: &str) -> (Arc<dyn Store>, DemoData) {
    let tables = dynamo_tables(name).await;
    (tables.store, tables.data)
}

/// A seeded set of tables in moto, with what reaches them besides the store.
pub struct DynamoTables {
    pub store: Arc<dyn Store>,
    pub data: DemoData,
    pub names: TableNames,
    /// The emulator's SDK configuration and a client on it (writes made straight to a table,
    /// as another service would).
    pub sdk: aws_config::SdkConfig,
    pub client: aws_sdk_dynamodb::Client,
}

/// `n` app instances over `deps`, each with its own connection to the Redis at `url` (and its
/// own circuit breaker), as separate Lambda environments are.
pub async fn instances(n: usize, url: &str, deps: &Deps) -> Vec<livecache_domain::services::Marketplace> {
    let mut out = Vec::new();
    for _ in 0..n {
        let backend: Arc<dyn Backend> =
            Arc::new(RedisBackend::connect(RedisConfig::from_url(url).unwrap()).await.unwrap());
        out.push(Deps { backend, ..deps.clone() }.market(Arc::new(SpawnTasks)));
    }
    out
}

pub async fn dynamo_tables(name: &str) -> DynamoTables {
    let sdk = livecache_domain::config::emulator_config(&shared_moto().endpoint()).await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let names = TableNames::prefixed(&unique_prefix(name));
    tables::create_all(&client, &names).await.unwrap();
    let store: Arc<dyn Store> = Arc::new(DynamoStore::new(client.clone(), names.clone()));
    let data = seed::generate(SeedSize::SMALL, livecache_domain::time::now());
    seed::seed(&*store, &data).await.unwrap();
    DynamoTables { store, data, names, sdk, client }
}

/// Dependencies on real services: Redis and DynamoDB (moto).
pub async fn real_deps(name: &str) -> (Deps, Arc<InProcessBus>, Arc<ManualClock>, DemoData) {
    let backend: Arc<dyn Backend> =
        Arc::new(RedisBackend::connect(RedisConfig::from_url(&shared_redis().url()).unwrap()).await.unwrap());
    let (store, data) = dynamo_store(name).await;
    let (deps, bus, clock, data) = deps_with(name, backend, store, data);
    // moto answers a query in hundreds of milliseconds, and in seconds on a busy machine
    // (DynamoDB: milliseconds): the policies' 3 s would fail loads that are only slow here.
    (Deps { load_timeout: Some(std::time::Duration::from_secs(30)), ..deps }, bus, clock, data)
}

/// Dependencies all in memory, with the small demo data set.
pub async fn memory_deps(name: &str) -> (Deps, Arc<InProcessBus>, Arc<ManualClock>, DemoData) {
    memory_deps_sized(name, SeedSize::SMALL).await
}

/// Dependencies all in memory, with a demo data set of `size`.
pub async fn memory_deps_sized(name: &str, size: SeedSize) -> (Deps, Arc<InProcessBus>, Arc<ManualClock>, DemoData) {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let data = seed::generate(size, livecache_domain::time::now());
    seed::seed(&*store, &data).await.unwrap();
    deps_with(name, Arc::new(MemoryBackend::new(100_000)), store, data)
}

/// Dependencies on `backend` over an in-memory store with the small demo data set.
pub async fn deps_on_backend(
    name: &str,
    backend: Arc<dyn Backend>,
) -> (Deps, Arc<InProcessBus>, Arc<ManualClock>, DemoData) {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let data = seed::generate(SeedSize::SMALL, livecache_domain::time::now());
    seed::seed(&*store, &data).await.unwrap();
    deps_with(name, backend, store, data)
}

/// Dependencies on an in-memory cache over `store` (tests that count the store's calls).
pub fn deps_over(
    name: &str,
    store: Arc<dyn Store>,
    data: DemoData,
) -> (Deps, Arc<InProcessBus>, Arc<ManualClock>, DemoData) {
    deps_with(name, Arc::new(MemoryBackend::new(100_000)), store, data)
}

fn deps_with(
    name: &str,
    backend: Arc<dyn Backend>,
    store: Arc<dyn Store>,
    data: DemoData,
) -> (Deps, Arc<InProcessBus>, Arc<ManualClock>, DemoData) {
    let bus = Arc::new(InProcessBus::new());
    let clock = Arc::new(ManualClock::new());
    let deps = Deps {
        backend,
        keyspace: Keyspace::new(Some(&unique_prefix(name)), "v1").unwrap(),
        store,
        events: bus.clone(),
        bus: Some(bus.clone()),
        clock: clock.clone(),
        load_timeout: None,
        l1_bytes: livecache_runtime::DEFAULT_L1_MB << 20,
        user_ttls: Default::default(),
    };
    (deps, bus, clock, data)
}

/// The API over HTTP on real services, with `admin_token` (None: admin disabled).
pub async fn start(name: &str, admin_token: Option<&str>) -> Api {
    let (deps, bus, clock, data) = real_deps(name).await;
    serve(deps, bus, clock, data, Arc::new(SpawnTasks), admin_token).await
}

pub async fn serve(
    deps: Deps,
    bus: Arc<InProcessBus>,
    clock: Arc<ManualClock>,
    data: DemoData,
    tasks: Arc<dyn TaskRunner>,
    admin_token: Option<&str>,
) -> Api {
    let admin = admin_token.map_or(AdminAuth::Disabled, |t| AdminAuth::Token(t.into()));
    let app = Arc::new(App::new(&deps, tasks, admin, None));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/api/v1", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let refreshes = livecache_dev::Refreshes::new();
    bus.subscribe(Arc::new(refreshes.clone()));
    let auth = livecache_dev::DevAuth::new(TEST_JWT_SECRET);
    tokio::spawn(livecache_dev::serve(listener, app, auth, refreshes, async move {
        let _ = rx.await;
    }));
    let cache = Cache::builder(deps.backend.clone()).keyspace(deps.keyspace.clone()).clock(clock.clone()).build();
    Api { base, http: reqwest::Client::new(), deps, bus, clock, data, cache, shutdown: Some(tx) }
}

impl Api {
    /// The dev server's live refresh WebSocket.
    pub fn ws_url(&self) -> String {
        self.base.replace("http://", "ws://").replace("/api/v1", "/ws")
    }

    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let resp = self.http.get(format!("{}{path}", self.base)).send().await.unwrap();
        Self::read(resp).await
    }

    /// GET with `Authorization: Bearer <bearer>` (a user's JWT or the admin token).
    pub async fn get_with(&self, path: &str, bearer: &str) -> (u16, serde_json::Value) {
        let resp = self.http.get(format!("{}{path}", self.base)).bearer_auth(bearer).send().await.unwrap();
        Self::read(resp).await
    }

    /// GET as the signed-in user `sub`.
    pub async fn get_as(&self, sub: &str, path: &str) -> (u16, serde_json::Value) {
        self.get_with(path, &token(sub)).await
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let resp = self.http.post(format!("{}{path}", self.base)).json(&body).send().await.unwrap();
        Self::read(resp).await
    }

    /// POST as the signed-in user `sub`.
    pub async fn post_as(&self, sub: &str, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let resp =
            self.http.post(format!("{}{path}", self.base)).bearer_auth(token(sub)).json(&body).send().await.unwrap();
        Self::read(resp).await
    }

    /// PATCH as the signed-in user `sub`.
    pub async fn patch_as(&self, sub: &str, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let resp =
            self.http.patch(format!("{}{path}", self.base)).bearer_auth(token(sub)).json(&body).send().await.unwrap();
        Self::read(resp).await
    }

    pub async fn post_raw(&self, path: &str, body: &str, token: Option<&str>) -> (u16, serde_json::Value) {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .body(body.to_string())
            .header("content-type", "application/json");
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        Self::read(req.send().await.unwrap()).await
    }

    async fn read(resp: reqwest::Response) -> (u16, serde_json::Value) {
        let status = resp.status().as_u16();
        assert_eq!(resp.headers().get("content-type").map(|v| v.to_str().unwrap()), Some("application/json"));
        let body = resp.text().await.unwrap();
        (status, serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}")))
    }
}

/// Waits for the next text message of a WebSocket (generously: the push has no timer, the
/// bound only stops a broken test from hanging).
pub async fn next_text<S>(ws: &mut S) -> serde_json::Value
where
    S: futures::Stream<Item = Result<tokio_tungstenite::tungstenite::Message, tokio_tungstenite::tungstenite::Error>>
        + Unpin,
{
    use futures::StreamExt;
    loop {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(30), ws.next())
            .await
            .expect("a message")
            .unwrap()
            .unwrap();
        if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

/// A request as the Lambda glue hands it to the app (no caller: public routes), with a JSON
/// body when given.
pub fn request(
    method: http::Method,
    path_and_query: &str,
    body: Option<serde_json::Value>,
) -> livecache_http::ApiRequest {
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    let mut headers = http::HeaderMap::new();
    if body.is_some() {
        headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    }
    livecache_http::ApiRequest {
        method,
        path: path.to_string(),
        query: livecache_http::parse_query(query),
        headers,
        body: body.map(|b| serde_json::to_vec(&b).unwrap()).unwrap_or_default().into(),
        request_id: String::new(),
        claims: None,
        iam_principal: None,
    }
}
