//! The data layer's configuration, from the environment.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `DATA_BACKEND` | `memory` or `dynamodb` | `dynamodb` on Lambda or when an AWS endpoint is set, else `memory` |
//! | `PRODUCTS_TABLE`, `USERS_TABLE`, `STREAMS_TABLE`, `OFFERS_TABLE`, `JOBS_TABLE` | table names | `livecache-products`, … |
//! | `EVENT_BUS_NAME` | EventBridge bus for published events | `livecache` |
//! | `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_EVENTBRIDGE` | the AWS SDK's standard endpoint overrides (an emulator) | AWS |
//! | `AWS_SYSTEM_ROOTS` | `true`: on Lambda, trust the system's CA bundle for AWS calls instead of the Amazon Trust Services roots alone | unset |

use std::time::Duration;

use crate::model::error::{Result, StoreError};
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
        // identity, container and instance metadata providers).
        loader = loader.credentials_provider(aws_config::environment::EnvironmentVariableCredentialsProvider::new());
        if !std::env::var("AWS_SYSTEM_ROOTS").is_ok_and(|v| v == "true") {
            loader = loader.http_client(aws_https_client());
        }
    }
    loader.load().await
}

/// An HTTPS client that trusts the Amazon Trust Services roots only: every AWS service
/// endpoint's certificate chains to them. The SDK's default client parses the whole system
/// bundle at the first client's construction instead — 84 % of the SDK's share of a cold start
/// (callgrind), ~1.9 ms of ~5.2 ms (`infra/coldstart.sh`, BENCHMARKS.md).
fn aws_https_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    use aws_smithy_http_client::tls;
    let roots = tls::TrustStore::empty().with_native_roots(false).with_pem_certificate(AWS_ROOTS.as_bytes());
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc))
        .tls_context(tls::TlsContext::builder().with_trust_store(roots).build().expect("valid trust store"))
        .build_https()
}

/// Amazon Root CA 1–4 and Starfield Services Root CA G2 (PEM).
const AWS_ROOTS: &str = include_str!("aws_roots.pem");

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

#[cfg(test)]
mod tests {
    #[test]
    fn the_aws_roots_make_a_client() {
        // The trust store is parsed when a client is built on it: five roots, no error.
        assert_eq!(super::AWS_ROOTS.matches("BEGIN CERTIFICATE").count(), 5);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let conf = aws_sdk_dynamodb::Config::builder()
                .behavior_version(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new("us-east-1"))
                .http_client(super::aws_https_client())
                .build();
            let _ = aws_sdk_dynamodb::Client::from_conf(conf);
        });
    }
}
