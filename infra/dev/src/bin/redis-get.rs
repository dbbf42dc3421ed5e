//! The load benchmark's second baseline: the same HTTP stack as `livecache-dev` answering every
//! request with the bytes of one Redis `GET` through the same Redis adapter — the limit of a
//! cache hit's Redis path. `redis-get <port> <redis-url> <key>`.

use std::sync::Arc;

use axum::extract::State;
use axum::Router;
use livecache_cache::{KvStore, RedisBackend, RedisConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(3998);
    let url = args.next().unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    let key = args.next().unwrap_or_else(|| "loadbench:page".into());
    let backend = Arc::new(RedisBackend::connect(RedisConfig::from_url(&url)?).await?);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let app = Router::new()
        .fallback(|State((backend, key)): State<(Arc<RedisBackend>, Arc<str>)>| async move {
            let body = backend.get(&key).await.ok().flatten().unwrap_or_default();
            ([(http::header::CONTENT_TYPE, "application/json")], body)
        })
        .with_state((backend, Arc::<str>::from(key)));
    axum::serve(listener, app).await?;
    Ok(())
}
