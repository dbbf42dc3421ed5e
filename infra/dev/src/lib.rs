//! The dev server: mounts every HTTP function's routes on one port. The same [`App`] that
//! answers on Lambda answers here; post-response work runs on spawned tasks (the process keeps
//! running, unlike a Lambda environment).

use std::future::Future;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::Router;
use http::StatusCode;
use livecache_http::api::{parse_query, ApiError, ApiResponse, MAX_BODY_BYTES};
use livecache_http::{ApiRequest, App};
use tokio::net::TcpListener;

/// Serves `app` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = Router::new().fallback(handle).with_state(app);
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}

async fn handle(State(app): State<Arc<App>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let resp = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Err(_) => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("request bodies are limited to {MAX_BODY_BYTES} bytes"),
        )
        .into_response(),
        Ok(body) => {
            let api = ApiRequest {
                method: parts.method,
                path: parts.uri.path().to_string(),
                query: parts.uri.query().map(parse_query).unwrap_or_default(),
                headers: parts.headers,
                body,
                request_id: format!("dev-{:016x}", rand::random::<u64>()),
                claims: None,
            };
            app.handle(api).await
        }
    };
    to_response(resp)
}

fn to_response(resp: ApiResponse) -> Response {
    Response::builder()
        .status(resp.status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(resp.body))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}
