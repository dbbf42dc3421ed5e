//! The load benchmark's baseline: the smallest JSON server on the same HTTP stack (hyper via
//! axum, multi-threaded tokio) as `livecache-dev`. `hello [port]`, default 3999.

use axum::Router;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(3999);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let app = Router::new()
        .fallback(|| async { ([(http::header::CONTENT_TYPE, "application/json")], r#"{"hello":"world"}"#) });
    axum::serve(listener, app).await
}
