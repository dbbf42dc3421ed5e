//! The live refresh push on Lambda: the `ws` function answers the WebSocket API's routes
//! (`$connect`, `$disconnect`, `subscribe`), the `push` function turns StreamStatusChanged and
//! ProductUpdated events (EventBridge rule) into `feed_refresh_required` messages posted to
//! every subscribed connection through the API Gateway Management API.
//!
//! Their variables are read once, by [`PushConfig`]: `CONNECTIONS_TABLE` (see
//! `livecache_domain::tables`) and, for `push`, `WEBSOCKET_ENDPOINT`.

use std::sync::Arc;

use anyhow::Context;
use lambda_runtime::{service_fn, LambdaEvent};
use livecache_domain::push::{self, Connections, FeedRefresh, Poster, PushReport};
use livecache_domain::ManagementApiPoster;
use livecache_domain::{config::aws_config, DynamoStore, Envelope};
use serde_json::{json, Value};

use crate::config::PushConfig;
use crate::telemetry;

/// What a push invocation did with `event`: the report, or why the event was dropped (a
/// malformed or unrelated event would fail again on every retry).
pub async fn push_event(connections: &dyn Connections, poster: &dyn Poster, event: &Value) -> anyhow::Result<Value> {
    let message = serde_json::from_value::<Envelope>(event.clone())
        .map_err(|e| e.to_string())
        .and_then(|envelope| envelope.event())
        .map(|e| FeedRefresh::for_event(&e));
    match message {
        Ok(Some(message)) => {
            let report: PushReport = push::push(&message, connections, poster).await?;
            Ok(json!({ "message": message, "report": report }))
        }
        Ok(None) => Ok(json!({ "dropped": "not an event that changes a feed" })),
        Err(reason) => {
            tracing::warn!(reason = %reason, event = %event, "malformed event dropped");
            Ok(json!({ "dropped": reason }))
        }
    }
}

async fn connection_store(config: &PushConfig) -> (aws_config::SdkConfig, DynamoStore) {
    let sdk = aws_config().await;
    (sdk.clone(), DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), config.tables.clone()))
}

/// The `ws` function's `main`.
pub async fn run_socket() -> Result<(), lambda_runtime::Error> {
    let started = std::time::Instant::now();
    telemetry::init();
    let config = PushConfig::from_env().inspect_err(|e| tracing::error!(error = %e, "configuration error"))?;
    let (_, store) = connection_store(&config).await;
    let store = Arc::new(store);
    telemetry::log_init("ws", started, Default::default(), None);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let store = store.clone();
        async move { Ok::<Value, lambda_runtime::Error>(push::handle_socket_event(&*store, &event.payload).await) }
    }))
    .await
}

/// The `push` function's `main`.
pub async fn run_push() -> Result<(), lambda_runtime::Error> {
    let started = std::time::Instant::now();
    telemetry::init();
    let built = async {
        let config = PushConfig::from_env()?;
        let endpoint = config.websocket_endpoint.clone().context("WEBSOCKET_ENDPOINT is not set")?;
        let (sdk, store) = connection_store(&config).await;
        anyhow::Ok((store, ManagementApiPoster::new(&sdk, &endpoint)))
    };
    let (store, poster) = built.await.inspect_err(|e| tracing::error!(error = %e, "configuration error"))?;
    let (store, poster) = (Arc::new(store), Arc::new(poster));
    telemetry::log_init("push", started, Default::default(), None);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (store, poster) = (store.clone(), poster.clone());
        async move {
            let out = push_event(&*store, &*poster, &event.payload).await;
            if let Ok(v) = &out {
                tracing::info!(outcome = %v, "push");
            }
            out.map_err(|e| lambda_runtime::Error::from(e.to_string()))
        }
    }))
    .await
}
