//! `GET /ws`: the dev server's stand-in for the WebSocket API and the push function. Every
//! connection gets the `feed_refresh_required` messages the in-process bus's events call for
//! (the same [`FeedRefresh`] the push function posts on AWS), filtered by the feeds it
//! subscribed to (`{"action": "subscribe", "feeds": ["discover"]}`; all feeds until then).

use async_trait::async_trait;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use livecache_domain::push::{self, FeedRefresh, MessageKind, RefreshReason, FEEDS};
use livecache_domain::{Envelope, EventHandler};
use serde_json::json;
use tokio::sync::broadcast;

/// Fans refresh messages out to the connected sockets. Subscribe it to the in-process bus.
#[derive(Clone)]
pub struct Refreshes {
    tx: broadcast::Sender<FeedRefresh>,
}

impl Default for Refreshes {
    fn default() -> Self {
        Self { tx: broadcast::channel(1024).0 }
    }
}

impl Refreshes {
    pub fn new() -> Self {
        Self::default()
    }

    /// Upgrades the request and serves the socket until the client leaves.
    pub fn upgrade(&self, ws: WebSocketUpgrade) -> Response {
        let rx = self.tx.subscribe();
        ws.on_upgrade(move |socket| session(socket, rx))
    }
}

#[async_trait]
impl EventHandler for Refreshes {
    async fn handle(&self, envelope: &Envelope) {
        if let Some(message) = envelope.event().ok().as_ref().and_then(FeedRefresh::for_event) {
            // No receiver: nobody is connected.
            let _ = self.tx.send(message);
        }
    }
}

async fn session(mut socket: WebSocket, mut rx: broadcast::Receiver<FeedRefresh>) {
    let mut feeds: Vec<String> = FEEDS.iter().map(|f| f.to_string()).collect();
    loop {
        let reply = tokio::select! {
            message = rx.recv() => match message {
                Ok(m) if m.wanted_by(&feeds) => serde_json::to_string(&m).ok(),
                Ok(_) => None,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "a slow socket missed refresh messages");
                    Some(json!({ "type": MessageKind::FeedRefreshRequired, "feeds": feeds, "reason": RefreshReason::MissedMessages }).to_string())
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            incoming = socket.recv() => match incoming {
                // Routed as API Gateway routes it (`$request.body.action`), answered as the ws
                // function answers each route.
                Some(Ok(Message::Text(text))) => Some(match push::route_of(text.as_str()) {
                    "subscribe" => match push::parse_subscribe(text.as_str()) {
                        Ok(chosen) => {
                            feeds = chosen;
                            push::subscribed(&feeds).to_string()
                        }
                        Err(message) => push::invalid_message(&message).to_string(),
                    },
                    _ => push::unknown_action().to_string(),
                }),
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => None,
            },
        };
        if let Some(text) = reply {
            if socket.send(Message::Text(text.into())).await.is_err() {
                break;
            }
        }
    }
}
