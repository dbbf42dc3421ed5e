//! The clients a function uses, built once per cold start from the [`Config`].

use std::sync::Arc;
use std::time::Instant;

use livecache_cache::{connect, Backend, Cache, Clock, Codec, Keyspace, SystemClock, TaskRunner};
use livecache_domain::seed::{self, SeedSize};
use livecache_domain::services::Marketplace;
use livecache_domain::{
    config::aws_config, tables, DataBackend, DynamoStore, EventBridgePublisher, EventPublisher, InProcessBus,
    MemoryStore, ProductStore, Store,
};

use crate::config::Config;

/// The store, the event publisher and, when events stay in-process, the bus.
type DataParts = (Arc<dyn Store>, Arc<dyn EventPublisher>, Option<Arc<InProcessBus>>);

/// The clients, built once per cold start.
#[derive(Clone)]
pub struct Deps {
    pub backend: Arc<dyn Backend>,
    pub keyspace: Keyspace,
    pub store: Arc<dyn Store>,
    pub events: Arc<dyn EventPublisher>,
    /// Set when events stay in the process (memory data backend): subscribers attach here.
    pub bus: Option<Arc<InProcessBus>>,
    /// The cache's clock (tests move it).
    pub clock: Arc<dyn Clock>,
    /// How long any cache load may take; None: each policy's own (see
    /// [`Config::load_timeout`]).
    pub load_timeout: Option<std::time::Duration>,
    /// Bytes of L1 copies of large values (see [`Config::l1_bytes`]); 0: off. Not used with
    /// the memory backend (its reads are local already).
    pub l1_bytes: u64,
    /// Lifetimes of user data.
    pub user_ttls: livecache_domain::services::UserTtls,
}

impl std::fmt::Debug for Deps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deps").field("cache", &self.backend.backend()).field("store", &self.store.kind()).finish()
    }
}

/// Where a cold start's time went, in milliseconds (logged once per init as target `init`).
#[derive(Debug, Clone, Copy, Default)]
pub struct InitTimings {
    /// Reading the cache configuration and the bounded first Redis connect.
    pub cache_ms: f64,
    /// The AWS SDK configuration and clients, or building and seeding the memory store.
    pub data_ms: f64,
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// How long a start that creates its tables waits for the database endpoint (an emulator
/// still booting beside it).
const DATABASE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Waits until the database answers (ListTables), at most `bound`, saying once what it waits
/// for; then an error naming the endpoint and the variable that set it.
async fn wait_for_database(
    client: &aws_sdk_dynamodb::Client,
    sdk: &aws_config::SdkConfig,
    bound: std::time::Duration,
) -> anyhow::Result<()> {
    let (endpoint, variable) = match (std::env::var("AWS_ENDPOINT_URL_DYNAMODB"), sdk.endpoint_url()) {
        (Ok(url), _) if !url.trim().is_empty() => (url, "AWS_ENDPOINT_URL_DYNAMODB"),
        (_, Some(url)) => (url.to_string(), "AWS_ENDPOINT_URL"),
        _ => ("DynamoDB's regional endpoint".to_string(), "AWS_REGION"),
    };
    let started = Instant::now();
    let mut said = false;
    loop {
        let attempt =
            tokio::time::timeout(std::time::Duration::from_secs(5), client.list_tables().limit(1).send()).await;
        let error = match attempt {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string(),
            Err(_) => "no answer in 5 s".to_string(),
        };
        if started.elapsed() >= bound {
            anyhow::bail!(
                "the database at {endpoint} (set by {variable}) did not answer within {} s: {error}",
                bound.as_secs()
            );
        }
        if !said {
            eprintln!(
                "waiting up to {} s for the database at {endpoint} (set by {variable}) to answer",
                bound.as_secs()
            );
            said = true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// Creates the event bus when it does not exist (emulators: on AWS the template creates it),
/// so that the events a write publishes reach their rules there too.
async fn ensure_event_bus(client: &aws_sdk_eventbridge::Client, bus: &str) -> anyhow::Result<()> {
    if bus == "default" || bus.starts_with("arn:") {
        return Ok(());
    }
    match client.create_event_bus().name(bus).send().await {
        Ok(_) => Ok(()),
        Err(e) if e.as_service_error().is_some_and(|se| se.is_resource_already_exists_exception()) => Ok(()),
        Err(e) => Err(anyhow::anyhow!(
            "event bus {bus} (EVENT_BUS_NAME) could not be created: {}",
            aws_sdk_eventbridge::error::DisplayErrorContext(e)
        )),
    }
}

impl Deps {
    /// From the environment, read once (see [`Config`]).
    pub async fn from_env() -> anyhow::Result<Self> {
        Ok(Self::build(&Config::from_env()?).await?.0)
    }

    /// The clients `config` names, and where their time went. With the memory data backend the
    /// store is seeded with the demo data; with `create_tables` missing DynamoDB tables are
    /// created (and seeded when empty), for emulators.
    pub async fn build(config: &Config) -> anyhow::Result<(Self, InitTimings)> {
        let t = Instant::now();
        let backend = connect(config.cache.clone()).await?;
        let cache_ms = ms_since(t);
        let t = Instant::now();
        let keyspace = config.keyspace.clone();
        let data = &config.data;
        let (store, events, bus): DataParts = match data.backend {
            DataBackend::Memory => {
                let store = Arc::new(MemoryStore::new());
                seed::seed(&*store, &seed::generate(SeedSize::DEMO, livecache_domain::time::now())).await?;
                let bus = Arc::new(InProcessBus::new());
                (store, bus.clone(), Some(bus))
            }
            DataBackend::DynamoDb => {
                let sdk = aws_config().await;
                let client = aws_sdk_dynamodb::Client::new(&sdk);
                let store = Arc::new(DynamoStore::new(client.clone(), data.tables.clone()));
                if config.create_tables {
                    wait_for_database(&client, &sdk, DATABASE_WAIT).await?;
                    tables::create_all(&client, &data.tables).await?;
                    if store.get_product(&seed::product_id(0)).await?.is_none() {
                        seed::seed(&*store, &seed::generate(SeedSize::DEMO, livecache_domain::time::now())).await?;
                    }
                }
                let eventbridge = aws_sdk_eventbridge::Client::new(&sdk);
                if config.create_tables {
                    ensure_event_bus(&eventbridge, &data.event_bus).await?;
                }
                let events = Arc::new(EventBridgePublisher::new(eventbridge, data.event_bus.clone()));
                (store, events, None)
            }
        };
        let timings = InitTimings { cache_ms, data_ms: ms_since(t) };
        Ok((
            Self {
                backend,
                keyspace,
                store,
                events,
                bus,
                clock: Arc::new(SystemClock),
                load_timeout: config.load_timeout,
                l1_bytes: config.l1_bytes,
                user_ttls: config.user_ttls,
            },
            timings,
        ))
    }

    /// The service over these clients: a cache on the backend (values kept plain in memory,
    /// where compression saves nothing) handing post-response work to `tasks`.
    pub fn market(&self, tasks: Arc<dyn TaskRunner>) -> Marketplace {
        let codec = if self.backend.backend() == "memory" {
            Codec { compress_over: usize::MAX, ..Codec::default() }
        } else {
            Codec::default()
        };
        let mut cache = Cache::builder(self.backend.clone())
            .keyspace(self.keyspace.clone())
            .codec(codec)
            .clock(self.clock.clone())
            .tasks(tasks.clone());
        if let Some(timeout) = self.load_timeout {
            cache = cache.load_timeout(timeout);
        }
        if self.backend.backend() != "memory" {
            cache = cache.l1(self.l1_bytes);
        }
        let cache = cache.build();
        Marketplace::new(cache, self.store.clone(), self.events.clone(), tasks).with_user_ttls(self.user_ttls)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_database_that_never_answers_is_named_with_the_variable_that_set_it() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            // A port nothing listens on.
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let endpoint = format!("http://127.0.0.1:{port}");
            let sdk = livecache_domain::config::emulator_config(&endpoint).await;
            let client = aws_sdk_dynamodb::Client::new(&sdk);
            let e = super::wait_for_database(&client, &sdk, std::time::Duration::from_millis(300)).await.unwrap_err();
            let message = e.to_string();
            assert!(message.contains(&endpoint) && message.contains("AWS_ENDPOINT_URL"), "{message}");
            assert!(message.contains("did not answer within"), "{message}");
        });
    }
}
