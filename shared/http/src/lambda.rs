//! Running an HTTP function on Lambda: lambda_http for requests, and an internal extension
//! that holds the execution environment open after each response until the post-response
//! work (stale-while-revalidate refreshes, next-page prefetches, the stats flush) is done.
//! Without it that work would be frozen with the environment, maybe for ever.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lambda_extension::{Extension, LambdaEvent, NextEvent};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use livecache_cache::DeferredTasks;
use tokio::sync::{mpsc, Mutex};

use crate::api::{parse_query, ApiRequest, ApiResponse};
use livecache_runtime::after::finish_before;
use livecache_runtime::telemetry::{self, Metrics};

use crate::app::{AdminAuth, App};

pub type Error = lambda_http::Error;

/// Converts an API Gateway (HTTP API, payload 2.0) request.
pub fn to_api_request(req: Request) -> ApiRequest {
    let request_id = req.lambda_context_ref().map(|c| c.request_id.clone()).unwrap_or_default();
    let (claims, iam_principal) = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => {
            let authorizer = ctx.authorizer.as_ref();
            let claims = authorizer.and_then(|a| a.jwt.as_ref()).and_then(|jwt| serde_json::to_value(&jwt.claims).ok());
            let principal = authorizer
                .and_then(|a| a.iam.as_ref())
                .and_then(|iam| iam.user_arn.clone().or_else(|| iam.caller_id.clone()))
                .filter(|arn| !arn.is_empty());
            (claims, principal)
        }
        #[allow(unreachable_patterns)]
        _ => (None, None),
    };
    let (parts, body) = req.into_parts();
    let body = match body {
        Body::Empty => bytes::Bytes::new(),
        Body::Text(s) => bytes::Bytes::from(s),
        Body::Binary(b) => bytes::Bytes::from(b),
        _ => bytes::Bytes::new(),
    };
    ApiRequest {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(parse_query).unwrap_or_default(),
        headers: parts.headers,
        body,
        request_id,
        claims,
        iam_principal,
    }
}

pub fn to_lambda_response(resp: ApiResponse) -> Response<Body> {
    let mut builder = Response::builder().status(resp.status).header(http::header::CONTENT_TYPE, "application/json");
    for (name, value) in resp.headers {
        builder = builder.header(name, value);
    }
    builder.body(Body::Binary(resp.body)).unwrap_or_else(|_| Response::new(Body::Empty))
}

/// Post-response work of one invocation, run by the extension after the handler answered,
/// bounded by the invocation's `deadline` ([`finish_before`]): the queued refreshes and
/// prefetches, the stats flush when one is due (every `app.stats_flush`, not every
/// invocation: a warm hit costs one Redis command), the EMF metrics lines (no Redis).
pub async fn after_response(tasks: &DeferredTasks, app: &App, metrics: &Metrics, function: &str, deadline: Instant) {
    let drained = finish_before(deadline, tasks, app.market.flush_stats_every(app.stats_flush)).await;
    metrics.emit(function, &app.market.cache_report(), app.market.circuit_trips());
    metrics.emit_verify(app.market.verify_counts());
    if drained.ran > 0 {
        tracing::debug!(tasks = drained.ran, "post-response work done");
    }
}

/// The `Instant` of an invocation deadline given in milliseconds since the Unix epoch.
fn deadline_of(epoch_ms: u64) -> Instant {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    Instant::now() + Duration::from_millis(epoch_ms.saturating_sub(now_ms))
}

/// At shutdown, adds the figures since the last flush to the aggregate. Internal extensions
/// cannot register for the SHUTDOWN event, but with one registered (ours) Lambda sends the
/// runtime SIGTERM and waits up to 500 ms before SIGKILL: the flush is one command.
fn flush_at_shutdown(app: Arc<App>) {
    tokio::spawn(async move {
        let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
            return;
        };
        flush_when(term.recv(), &app).await;
        std::process::exit(0);
    });
}

/// Once `signal` fires, flushes the statistics (within 300 ms).
pub async fn flush_when(signal: impl std::future::Future, app: &App) {
    signal.await;
    match tokio::time::timeout(Duration::from_millis(300), app.market.flush_stats()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "stats flush at shutdown failed"),
        Err(_) => tracing::warn!("stats flush at shutdown timed out"),
    }
}

/// The entry point of every HTTP function's `main`.
pub async fn run(function: &'static str) -> Result<(), Error> {
    let started = std::time::Instant::now();
    telemetry::init();
    let (config, deps, timings) = livecache_runtime::init().await?;
    let tasks = Arc::new(DeferredTasks::new());
    let mut app = App::new(&deps, tasks.clone(), AdminAuth::iam(&config.admin_principals), Some(function));
    app.stats_flush = config.stats_flush;
    app.market.set_verify_rate(config.verify_rate);
    let app = Arc::new(app);
    flush_at_shutdown(app.clone());
    let metrics = Arc::new(Metrics::default());
    let (done_tx, done_rx) = mpsc::unbounded_channel::<()>();
    let done_rx = Arc::new(Mutex::new(done_rx));

    let processor = {
        let (tasks, app, metrics) = (tasks.clone(), app.clone(), metrics.clone());
        lambda_extension::service_fn(move |event: LambdaEvent| {
            let (tasks, app, metrics, done_rx) = (tasks.clone(), app.clone(), metrics.clone(), done_rx.clone());
            async move {
                if let NextEvent::Invoke(invoke) = event.next {
                    // Wait for the handler to answer, then finish what it left behind before
                    // the invocation's deadline (the function's Timeout covers this phase).
                    let deadline = deadline_of(invoke.deadline_ms);
                    let _ = done_rx.lock().await.recv().await;
                    after_response(&tasks, &app, &metrics, function, deadline).await;
                }
                Ok::<(), Error>(())
            }
        })
    };
    let registering = std::time::Instant::now();
    let extension = tokio::time::timeout(
        Duration::from_secs(2),
        Extension::new()
            .with_extension_name(function)
            .with_events(&["INVOKE"])
            .with_events_processor(processor)
            .register(),
    )
    .await;
    let extension_ms = registering.elapsed().as_secs_f64() * 1000.0;
    let extension = match extension {
        Ok(Ok(ext)) => Some(ext),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "no extensions API: post-response work runs on a spawned task");
            None
        }
        Err(_) => {
            tracing::warn!("extension registration timed out: post-response work runs on a spawned task");
            None
        }
    };
    let held_open = extension.is_some();
    telemetry::log_init(function, started, timings, Some(extension_ms));
    let handler = lambda_http::service_fn(move |req: Request| {
        let (app, tasks, metrics, done_tx) = (app.clone(), tasks.clone(), metrics.clone(), done_tx.clone());
        async move {
            let deadline = req.lambda_context_ref().map(|c| deadline_of(c.deadline));
            let resp = app.handle(to_api_request(req)).await;
            if held_open {
                let _ = done_tx.send(());
            } else {
                let deadline = deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(10));
                tokio::spawn(async move { after_response(&tasks, &app, &metrics, function, deadline).await });
            }
            Ok::<_, Error>(to_lambda_response(resp))
        }
    });
    match extension {
        Some(ext) => tokio::try_join!(lambda_http::run(handler), ext.run()).map(|_| ()),
        None => lambda_http::run(handler).await,
    }
}
