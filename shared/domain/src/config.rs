//! The data layer's configuration, from the environment.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `DATA_BACKEND` | `memory` or `dynamodb` | `dynamodb` on Lambda or when an AWS endpoint is set, else `memory` |
//! | `PRODUCTS_TABLE`, `USERS_TABLE`, `STREAMS_TABLE`, `OFFERS_TABLE`, `JOBS_TABLE` | table names | `livecache-products`, … |
//! | `EVENT_BUS_NAME` | EventBridge bus for published events | `livecache` |
//! | `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_EVENTBRIDGE` | the AWS SDK's standard endpoint overrides (an emulator) | AWS |

use std::time::Duration;

use crate::error::{Result, StoreError};
use crate::tables::TableNames;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataBackend {
    Memory,
    DynamoDb,
}

#[derive(Debug, Clone)]
pub struct DataConfig {
    pub backend: DataBackend,
    pub tables: TableNames,
    pub event_bus: String,
}

impl DataConfig {
    pub fn from_env() -> Result<Self> {
        let set = |name: &str| std::env::var(name).map(|v| !v.trim().is_empty()).unwrap_or(false);
        let backend = match std::env::var("DATA_BACKEND").ok().as_deref().map(str::trim) {
            Some("memory") => DataBackend::Memory,
            Some("dynamodb") => DataBackend::DynamoDb,
            Some("") | None => {
                if set("AWS_LAMBDA_FUNCTION_NAME") || set("AWS_ENDPOINT_URL") || set("AWS_ENDPOINT_URL_DYNAMODB") {
                    DataBackend::DynamoDb
                } else {
                    DataBackend::Memory
                }
            }
            Some(other) => {
                return Err(StoreError::Config(format!("DATA_BACKEND = {other:?}: expected memory or dynamodb")));
            }
        };
        let event_bus =
            std::env::var("EVENT_BUS_NAME").ok().filter(|v| !v.trim().is_empty()).unwrap_or("livecache".into());
        if event_bus.len() > 256 || !event_bus.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-:".contains(&b)) {
            return Err(StoreError::Config(format!(
                "EVENT_BUS_NAME = {event_bus:?} is not a valid event bus name or ARN"
            )));
        }
        Ok(Self { backend, tables: TableNames::from_env()?, event_bus })
    }
}

/// Loads the shared AWS SDK configuration once (region, credentials, endpoints from the standard
/// variables) with bounded timeouts on every call.
pub async fn aws_config() -> aws_config::SdkConfig {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(5))
        .operation_timeout(Duration::from_secs(15))
        .build();
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).timeout_config(timeouts);
    if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() && std::env::var_os("AWS_ACCESS_KEY_ID").is_some() {
        // On Lambda the execution role's credentials are in the environment. Reading them from
        // there skips building the SDK's whole default chain (profile files, SSO, web
        // identity, container and instance metadata providers): ~2.3 ms of a ~5.4 ms cold
        // start (`infra/coldstart.sh`, BENCHMARKS.md).
        loader = loader.credentials_provider(aws_config::environment::EnvironmentVariableCredentialsProvider::new());
    }
    loader.load().await
}

/// SDK configuration for an emulator at `endpoint` (moto's server in the tests and local runs):
/// region us-east-1 and dummy credentials, so nothing looks for real ones.
pub async fn emulator_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("testing", "testing", None, None, "emulator"))
        .load()
        .await
}
