//! The `ws` Lambda function: the WebSocket API's `$connect`, `$disconnect` and `subscribe`
//! routes. Connections are kept in DynamoDB with a TTL; the `push` function writes to them.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    livecache_runtime::push::run_socket().await
}
