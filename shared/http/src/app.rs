//! The application: the request entry point shared by every HTTP function and the dev server,
//! over the clients the runtime built ([`Deps`]).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use futures::FutureExt;
use http::StatusCode;
use livecache_cache::TaskRunner;
use livecache_domain::services::Marketplace;
use livecache_runtime::Deps;

use crate::api::{ApiError, ApiRequest, ApiResponse, MAX_BODY_BYTES};
use crate::handlers;
use crate::routes::{match_route, Access, Miss, Params, RouteDef};

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
    /// IAM, restricted to the configured principals (`ADMIN_PRINCIPAL_ARNS`) when any (the
    /// Lambda functions).
    pub fn iam(principals: &[String]) -> Self {
        Self::Iam { principals: principals.to_vec() }
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
    /// How often the post-response step adds the cache statistics to the shared aggregate.
    pub stats_flush: std::time::Duration,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("function", &self.function).field("admin", &self.admin).finish()
    }
}

impl App {
    /// `tasks` receives post-response work (refreshes, prefetches).
    pub fn new(deps: &Deps, tasks: Arc<dyn TaskRunner>, admin: AdminAuth, function: Option<&'static str>) -> Self {
        Self { market: deps.market(tasks), admin, function, stats_flush: livecache_runtime::STATS_FLUSH_DEFAULT }
    }

    /// Answers one request; never panics (a panic in a handler becomes a 500 JSON answer) and
    /// logs one line.
    pub async fn handle(&self, req: ApiRequest) -> ApiResponse {
        let matched = self.route(&req.method, &req.path);
        self.handle_matched(req, matched).await
    }

    /// The route of `method path` among this app's.
    pub fn route(&self, method: &http::Method, path: &str) -> Result<(&'static RouteDef, Params), Miss> {
        match_route(method, path, self.function)
    }

    /// [`Self::handle`] for a request whose route [`Self::route`] matched already (the dev
    /// server matches first, to know whether the route needs a JWT).
    pub async fn handle_matched(
        &self,
        req: ApiRequest,
        matched: Result<(&'static RouteDef, Params), Miss>,
    ) -> ApiResponse {
        let started = Instant::now();
        let (route, resp) = match matched {
            Ok((def, params)) => {
                let resp = if req.body.len() > MAX_BODY_BYTES {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "body_too_large",
                        format!("request bodies are limited to {MAX_BODY_BYTES} bytes"),
                    )
                    .into_response()
                } else {
                    match self.authorize(def.access, &req) {
                        Err(e) => e.into_response(),
                        Ok(caller) => {
                            let handled = handlers::dispatch(&self.market, def, &params, &req, caller);
                            match AssertUnwindSafe(handled).catch_unwind().await {
                                Ok(Ok(resp)) => resp,
                                Ok(Err(e)) => e.into_response(),
                                Err(_) => ApiError::internal("the request could not be handled").into_response(),
                            }
                        }
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

    /// Whether `req` may use a route of `access`; the signed-in caller for a `User` route
    /// (taken once, here, and handed to the handler).
    fn authorize(&self, access: Access, req: &ApiRequest) -> Result<Option<livecache_domain::Id>, ApiError> {
        match access {
            Access::Public => Ok(None),
            // API Gateway's JWT authorizer already refused unsigned requests; this is the
            // second lock, for any path that reaches the handler without one.
            Access::User => crate::handlers::caller(req).map(Some),
            Access::Admin => self.admin.check(req).map(|()| None),
        }
    }
}

/// Compares without an early exit, so the time taken does not tell how much of a guess was
/// right (the length is not secret).
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
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
