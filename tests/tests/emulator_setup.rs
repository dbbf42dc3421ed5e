//! The setup the README gives for real services on an emulator (`AWS_ENDPOINT_URL` and
//! `DATA_CREATE_TABLES=true`) creates what the template would: the tables (seeded) and the
//! event bus, so that a write's events are published there as on AWS. A test binary of its own:
//! it sets the process's AWS endpoint variable, which the SDK's configuration reads.

use livecache_domain::events::{DomainEvent, StreamStatusChanged};
use livecache_domain::tables::TableNames;
use livecache_domain::{DataBackend, DataConfig, StreamStatus};
use livecache_runtime::{Config, Deps};
use livecache_testkit::{shared_moto, unique_prefix};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_the_tables_also_creates_the_event_bus_that_writes_publish_to() {
    let endpoint = shared_moto().endpoint();
    std::env::set_var("AWS_ENDPOINT_URL", &endpoint);
    let prefix = unique_prefix("setup");
    let mut config = Config::from_lookup(|_| None).unwrap();
    config.data = DataConfig {
        backend: DataBackend::DynamoDb,
        tables: TableNames::prefixed(&prefix),
        event_bus: format!("{prefix}-bus"),
    };
    config.create_tables = true;
    let (deps, _) = Deps::build(&config).await.unwrap();
    assert!(deps.store.get_product(&livecache_domain::seed::product_id(0)).await.unwrap().is_some(), "seeded");
    let sdk = livecache_domain::config::emulator_config(&endpoint).await;
    let bus = aws_sdk_eventbridge::Client::new(&sdk).describe_event_bus().name(&config.data.event_bus).send().await;
    assert!(bus.is_ok(), "the bus exists: {bus:?}");
    let event = DomainEvent::StreamStatusChanged(StreamStatusChanged {
        stream_id: "stream-001".into(),
        seller_id: "user-0001".into(),
        from: StreamStatus::Scheduled,
        to: StreamStatus::Live,
        at: livecache_domain::time::now(),
    });
    deps.events.publish(&[event]).await.unwrap();
    // A second start finds everything in place.
    Deps::build(&config).await.unwrap();
}
