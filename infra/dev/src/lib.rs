//! The dev server: mounts every HTTP function's routes on one port. The same [`App`] that
//! answers on Lambda answers here; post-response work runs on spawned tasks (the process keeps
//! running, unlike a Lambda environment).
//!
//! A tour: `lib.rs` (the router over [`App`]), `auth` (the JWT authorizer's emulation; the
//! tokens `livecache-dev token` mints), `ws` (the WebSocket API's emulation at `/ws`),
//! `follow` (following the DynamoDB tables' change log on an emulator, as the change-log
//! function does on AWS), `main.rs` (the command line), `bin/` (the load benchmark's minimal
//! servers: `hello`, and `redis-get`, one Redis GET per request).

use std::future::Future;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::Router;
use http::StatusCode;
use livecache_http::Access;
use livecache_http::{parse_query, ApiError, ApiResponse, MAX_BODY_BYTES};
use livecache_http::{ApiRequest, App};
use tokio::net::TcpListener;

pub mod auth;
pub mod follow;
pub mod ws;

pub use auth::DevAuth;
pub use ws::Refreshes;

#[derive(Clone)]
struct DevState {
    app: Arc<App>,
    auth: DevAuth,
    refreshes: Refreshes,
}

/// Serves `app` on `listener` until `shutdown` completes, verifying JWTs with `auth` on the
/// routes that require a signed-in caller; `GET /ws` is a WebSocket carrying `refreshes`.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    auth: DevAuth,
    refreshes: Refreshes,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = Router::new().route("/ws", axum::routing::get(socket)).fallback(handle).with_state(DevState {
        app,
        auth,
        refreshes,
    });
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}

async fn socket(State(state): State<DevState>, ws: axum::extract::WebSocketUpgrade) -> Response {
    state.refreshes.upgrade(ws)
}

async fn handle(State(DevState { app, auth, .. }): State<DevState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let resp = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Err(_) => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("request bodies are limited to {MAX_BODY_BYTES} bytes"),
        )
        .into_response(),
        Ok(body) => {
            // API Gateway runs the JWT authorizer only on the routes that have it.
            let matched = app.route(&parts.method, parts.uri.path());
            let needs_jwt = matched.as_ref().is_ok_and(|(def, _)| def.access == Access::User);
            let claims = if needs_jwt {
                let header = parts.headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
                match auth.verify(header) {
                    Ok(claims) => Some(claims),
                    Err(why) => {
                        return to_response(
                            ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", why).into_response(),
                        )
                    }
                }
            } else {
                None
            };
            let api = ApiRequest {
                method: parts.method,
                path: parts.uri.path().to_string(),
                query: parts.uri.query().map(parse_query).unwrap_or_default(),
                headers: parts.headers,
                body,
                request_id: format!("dev-{:016x}", rand::random::<u64>()),
                claims,
                iam_principal: None,
            };
            app.handle_matched(api, matched).await
        }
    };
    to_response(resp)
}

fn to_response(resp: ApiResponse) -> Response {
    let mut builder = Response::builder().status(resp.status).header(http::header::CONTENT_TYPE, "application/json");
    for (name, value) in resp.headers {
        builder = builder.header(name, value);
    }
    builder.body(Body::from(resp.body)).unwrap_or_else(|_| Response::new(Body::empty()))
}
