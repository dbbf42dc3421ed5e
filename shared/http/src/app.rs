//! The application: its dependencies, built once per process, and the request entry point
//! shared by every function and the dev server.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use futures::FutureExt;
use http::StatusCode;
use livecache_cache::{connect, Backend, BackendConfig, Cache, Clock, Codec, Keyspace, SystemClock, TaskRunner};
use livecache_domain::seed::{self, SeedSize};
use livecache_domain::services::Marketplace;
use livecache_domain::{
    config::aws_config, tables, DataBackend, DataConfig, DynamoStore, EventBridgePublisher, EventPublisher,
    InProcessBus, MemoryStore, Store,
};

use crate::api::{ApiError, ApiRequest, ApiResponse, MAX_BODY_BYTES};
use crate::handlers;
use crate::routes::{match_route, Access, Miss};

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
}

impl std::fmt::Debug for Deps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deps").field("cache", &self.backend.backend()).field("store", &self.store.backend()).finish()
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

impl Deps {
    /// From the environment (see the README's configuration table). With the memory data
    /// backend the store is seeded with the demo data; with `DATA_CREATE_TABLES=true` missing
    /// DynamoDB tables are created (and seeded when empty), for emulators.
    pub async fn from_env() -> anyhow::Result<Self> {
        Ok(Self::from_env_timed().await?.0)
    }

    /// [`from_env`](Self::from_env), and where its time went.
    pub async fn from_env_timed() -> anyhow::Result<(Self, InitTimings)> {
        let t = Instant::now();
        let backend = connect(BackendConfig::from_env()?).await?;
        let cache_ms = ms_since(t);
        let t = Instant::now();
        let keyspace = Keyspace::new(
            std::env::var("CACHE_KEY_PREFIX").ok().filter(|p| !p.is_empty()).as_deref(),
            &std::env::var("CACHE_KEY_VERSION").unwrap_or_else(|_| "v1".into()),
        )
        .map_err(|e| anyhow::anyhow!("CACHE_KEY_PREFIX / CACHE_KEY_VERSION: {e}"))?;
        let data = DataConfig::from_env()?;
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
                if std::env::var("DATA_CREATE_TABLES").is_ok_and(|v| v == "true") {
                    tables::create_all(&client, &data.tables).await?;
                    if store.get_product(&seed::product_id(0)).await?.is_none() {
                        seed::seed(&*store, &seed::generate(SeedSize::DEMO, livecache_domain::time::now())).await?;
                    }
                }
                let events =
                    Arc::new(EventBridgePublisher::new(aws_sdk_eventbridge::Client::new(&sdk), data.event_bus));
                (store, events, None)
            }
        };
        let timings = InitTimings { cache_ms, data_ms: ms_since(t) };
        Ok((Self { backend, keyspace, store, events, bus, clock: Arc::new(SystemClock) }, timings))
    }
}

/// Who may use the admin routes.
#[derive(Clone, PartialEq, Eq)]
pub enum AdminAuth {
    /// Nobody: admin routes fail closed (403 `admin_disabled`).
    Disabled,
    /// `Authorization: Bearer <token>`, compared in constant time (the dev server).
    Token(String),
    /// API Gateway's IAM authorizer verified the request's SigV4 signature and put the caller's
    /// ARN in the request context; the handler trusts that identity and needs no second
    /// secret. With `principals`, only those ARNs (a trailing `*` matches any rest, e.g.
    /// `arn:aws:sts::123456789012:assumed-role/Ops/*`); empty, any principal IAM let through.
    Iam { principals: Vec<String> },
}

impl std::fmt::Debug for AdminAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Disabled => f.write_str("Disabled"),
            Self::Token(_) => f.write_str("Token(..)"),
            Self::Iam { principals } => f.debug_struct("Iam").field("principals", principals).finish(),
        }
    }
}

impl AdminAuth {
    /// IAM, restricted to the comma-separated ARNs of `ADMIN_PRINCIPAL_ARNS` when set (the
    /// Lambda functions).
    pub fn iam_from_env() -> Self {
        let principals = std::env::var("ADMIN_PRINCIPAL_ARNS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        Self::Iam { principals }
    }

    fn check(&self, req: &ApiRequest) -> Result<(), ApiError> {
        let forbidden = |code, message: &str| Err(ApiError::new(StatusCode::FORBIDDEN, code, message));
        match self {
            Self::Disabled => {
                forbidden("admin_disabled", "admin routes are disabled: no admin credentials are configured")
            }
            Self::Token(expected) => {
                let given = req
                    .headers
                    .get(http::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .unwrap_or("");
                if constant_time_eq(given.as_bytes(), expected.as_bytes()) {
                    Ok(())
                } else {
                    Err(ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "unauthorized",
                        "a valid admin bearer token is required",
                    ))
                }
            }
            Self::Iam { principals } => match req.iam_principal.as_deref() {
                None => {
                    forbidden("iam_required", "admin routes need a request signed with AWS IAM credentials (SigV4)")
                }
                Some(arn) if principals.is_empty() || principals.iter().any(|p| arn_matches(p, arn)) => Ok(()),
                Some(_) => forbidden("principal_not_allowed", "this IAM principal may not use the admin routes"),
            },
        }
    }
}

/// `pattern` equals `arn`, or ends with `*` and `arn` starts with the rest.
fn arn_matches(pattern: &str, arn: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => arn.starts_with(prefix),
        None => pattern == arn,
    }
}

/// Answers requests. One per process; cheap to share behind an `Arc`.
pub struct App {
    pub market: Marketplace,
    admin: AdminAuth,
    /// On Lambda: only this function's routes are served.
    function: Option<&'static str>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("function", &self.function).field("admin", &self.admin).finish()
    }
}

impl App {
    /// `tasks` receives post-response work (refreshes, prefetches).
    pub fn new(deps: &Deps, tasks: Arc<dyn TaskRunner>, admin: AdminAuth, function: Option<&'static str>) -> Self {
        // Compression saves network bytes and Redis memory; an in-process cache has neither to
        // save, so it keeps values plain and spends nothing inflating them.
        let codec = if deps.backend.backend() == "memory" {
            Codec { compress_over: usize::MAX, ..Codec::default() }
        } else {
            Codec::default()
        };
        let cache = Cache::builder(deps.backend.clone())
            .keyspace(deps.keyspace.clone())
            .codec(codec)
            .clock(deps.clock.clone())
            .tasks(tasks.clone())
            .build();
        let market = Marketplace::new(cache, deps.store.clone(), deps.events.clone(), tasks);
        Self { market, admin, function }
    }

    /// Answers one request; never panics (a panic in a handler becomes a 500 JSON answer) and
    /// logs one line.
    pub async fn handle(&self, req: ApiRequest) -> ApiResponse {
        let started = Instant::now();
        let (route, resp) = match match_route(&req.method, &req.path, self.function) {
            Ok((def, params)) => {
                let resp = if req.body.len() > MAX_BODY_BYTES {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "body_too_large",
                        format!("request bodies are limited to {MAX_BODY_BYTES} bytes"),
                    )
                    .into_response()
                } else if let Err(e) = self.authorize(def.access, &req) {
                    e.into_response()
                } else {
                    match AssertUnwindSafe(handlers::dispatch(self, def, &params, &req)).catch_unwind().await {
                        Ok(Ok(resp)) => resp,
                        Ok(Err(e)) => e.into_response(),
                        Err(_) => ApiError::internal("the request could not be handled").into_response(),
                    }
                };
                (def.pattern, resp)
            }
            Err(Miss::NotFound) => (
                "-",
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "route_not_found",
                    format!("no route for {} {}", req.method, req.path),
                )
                .into_response(),
            ),
            Err(Miss::MethodNotAllowed(allowed)) => {
                let allowed: Vec<String> = allowed.iter().map(|m| m.to_string()).collect();
                let msg = format!("{} is not allowed here; allowed: {}", req.method, allowed.join(", "));
                let resp = ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", msg).into_response();
                // RFC 9110: a 405 lists the methods the resource supports.
                ("-", resp.with_header(http::header::ALLOW, allowed.join(", ")))
            }
        };
        tracing::info!(
            target: "request",
            request_id = %req.request_id,
            method = %req.method,
            route,
            path = %req.path,
            status = resp.status.as_u16(),
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
            cache = resp.cache.unwrap_or("-"),
        );
        resp
    }

    fn authorize(&self, access: Access, req: &ApiRequest) -> Result<(), ApiError> {
        match access {
            Access::Public => Ok(()),
            // API Gateway's JWT authorizer already refused unsigned requests; this is the
            // second lock, for any path that reaches the handler without one.
            Access::User => crate::handlers::caller(req).map(|_| ()),
            Access::Admin => self.admin.check(req),
        }
    }
}

/// Compares without an early exit, so the time taken does not tell how much of a guess was
/// right (the length is not secret).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn principal_patterns() {
        assert!(super::arn_matches("arn:aws:iam::1:role/Ops", "arn:aws:iam::1:role/Ops"));
        assert!(!super::arn_matches("arn:aws:iam::1:role/Ops", "arn:aws:iam::1:role/Ops2"));
        assert!(super::arn_matches("arn:aws:sts::1:assumed-role/Ops/*", "arn:aws:sts::1:assumed-role/Ops/alice"));
        assert!(!super::arn_matches("arn:aws:sts::1:assumed-role/Ops/*", "arn:aws:sts::1:assumed-role/Dev/bob"));
    }

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
