//! The live refresh push: which feeds an event makes stale, the message connected clients get
//! (`feed_refresh_required`), the WebSocket connections (kept with a TTL, each subscribed to
//! some feeds) and their delivery through a [`Poster`] — API Gateway's Management API on AWS —
//! in parallel and bounded, dropping connections that are gone (410).

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::model::error::{Result, StoreError};
use crate::model::events::DomainEvent;
use crate::model::market::{string_enum, StreamStatus};
use crate::model::time;
pub use crate::ports::push::{Connection, Connections, Delivery, Poster};

/// The feeds a client can subscribe to.
pub const FEEDS: [&str; 2] = ["discover", "community"];
/// Deliveries in flight at once.
pub(crate) const PUSH_CONCURRENCY: usize = 32;
/// Most entries a subscribe message's `feeds` may hold (repeats are folded).
const MAX_SUBSCRIBE: usize = 8;

string_enum!(
    /// The kind of a message pushed to clients.
    MessageKind { FeedRefreshRequired = "feed_refresh_required" }
);

string_enum!(
    /// Why clients are told to refresh a feed (`missed_messages`: a client that reconnects may
    /// have missed some; the dev server tells it so).
    RefreshReason {
        StreamLive = "stream_live",
        StreamEnded = "stream_ended",
        ProductUpdated = "product_updated",
        MissedMessages = "missed_messages",
    }
);

/// What connected clients are told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedRefresh {
    #[serde(rename = "type")]
    pub kind: MessageKind,
    pub feeds: Vec<String>,
    pub reason: RefreshReason,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_id: Option<String>,
}

impl FeedRefresh {
    /// The message an event calls for (None: nothing to refresh). A go-live or end reorders
    /// both feeds (live sellers first); a product change shows in both.
    pub fn for_event(event: &DomainEvent) -> Option<Self> {
        let feeds = FEEDS.iter().map(|f| f.to_string()).collect();
        let message = |reason: RefreshReason, stream_id: Option<String>, product_id: Option<String>| Self {
            kind: MessageKind::FeedRefreshRequired,
            feeds,
            reason,
            stream_id,
            product_id,
        };
        match event {
            DomainEvent::StreamStatusChanged(e) => {
                let reason =
                    if e.to == StreamStatus::Live { RefreshReason::StreamLive } else { RefreshReason::StreamEnded };
                Some(message(reason, Some(e.stream_id.clone()), None))
            }
            DomainEvent::ProductUpdated(e) => {
                Some(message(RefreshReason::ProductUpdated, None, Some(e.product_id.clone())))
            }
            DomainEvent::OfferExpired(_) => None,
        }
    }

    /// Whether a client subscribed to `feeds` wants it.
    pub fn wanted_by(&self, feeds: &[String]) -> bool {
        self.feeds.iter().any(|f| feeds.contains(f))
    }
}

/// What one push did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PushReport {
    /// Connections subscribed to a feed the message names.
    pub subscribed: usize,
    pub delivered: usize,
    /// Gone, and removed.
    pub gone: usize,
    /// Not delivered for another reason (kept: it may be a passing fault).
    pub failed: usize,
}

/// Sends `message` to every connection subscribed to one of its feeds, `PUSH_CONCURRENCY` at
/// a time; removes those that are gone.
pub async fn push(message: &FeedRefresh, connections: &dyn Connections, poster: &dyn Poster) -> Result<PushReport> {
    let data = serde_json::to_vec(message).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let targets: Vec<Connection> =
        connections.connections().await?.into_iter().filter(|c| message.wanted_by(&c.feeds)).collect();
    let mut report = PushReport { subscribed: targets.len(), ..PushReport::default() };
    // A gone connection is removed right away, within the same bound.
    let outcomes: Vec<std::result::Result<Delivery, String>> = futures::stream::iter(targets)
        .map(|c| {
            let data = &data;
            async move {
                let outcome = poster.post(&c.id, data).await;
                match &outcome {
                    Ok(Delivery::Gone) => {
                        if let Err(e) = connections.disconnect(&c.id).await {
                            tracing::warn!(connection = %c.id, error = %e, "gone connection not removed");
                        }
                    }
                    Err(e) => tracing::warn!(connection = %c.id, error = %e, "refresh not delivered"),
                    Ok(Delivery::Delivered) => {}
                }
                outcome
            }
        })
        .buffer_unordered(PUSH_CONCURRENCY)
        .collect()
        .await;
    for outcome in outcomes {
        match outcome {
            Ok(Delivery::Delivered) => report.delivered += 1,
            Ok(Delivery::Gone) => report.gone += 1,
            Err(_) => report.failed += 1,
        }
    }
    Ok(report)
}

/// The feeds a subscribe message names (`{"action": "subscribe", "feeds": [...]}`), or why it
/// is refused.
pub fn parse_subscribe(body: &str) -> std::result::Result<Vec<String>, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Subscribe {
        #[allow(dead_code)]
        action: String,
        feeds: Vec<String>,
    }
    let msg: Subscribe = serde_json::from_str(body).map_err(|e| format!("invalid subscribe message: {e}"))?;
    if msg.feeds.is_empty() || msg.feeds.len() > MAX_SUBSCRIBE {
        return Err(format!("feeds must hold 1 to {MAX_SUBSCRIBE} of {}", FEEDS.join(", ")));
    }
    let mut feeds: Vec<String> = Vec::new();
    for f in msg.feeds {
        if !FEEDS.contains(&f.as_str()) {
            return Err(format!("unknown feed {f:?}; expected {}", FEEDS.join(", ")));
        }
        if !feeds.contains(&f) {
            feeds.push(f);
        }
    }
    Ok(feeds)
}

/// Handles one API Gateway WebSocket event (`$connect`, `$disconnect`, `subscribe`, anything
/// else): the Lambda proxy response. A new connection listens to every feed until it
/// subscribes to some.
pub async fn handle_socket_event(connections: &dyn Connections, event: &Value) -> Value {
    let ctx = &event["requestContext"];
    let (Some(route), Some(id)) = (ctx["routeKey"].as_str(), ctx["connectionId"].as_str()) else {
        return json!({ "statusCode": 400, "body": "not an API Gateway WebSocket event" });
    };
    let answer = |status: u16, body: Value| json!({ "statusCode": status, "body": body.to_string() });
    let failed = |e: StoreError| {
        tracing::error!(error = %e, connection = id, route, "connection store failed");
        answer(500, json!({ "error": "unavailable", "message": "the connection store did not answer" }))
    };
    match route {
        "$connect" => {
            let c = Connection {
                id: id.into(),
                feeds: FEEDS.iter().map(|f| f.to_string()).collect(),
                connected_at: time::now(),
            };
            match connections.connect(&c).await {
                Ok(()) => answer(200, json!({ "connected": id })),
                Err(e) => failed(e),
            }
        }
        "$disconnect" => match connections.disconnect(id).await {
            Ok(()) => answer(200, json!({ "disconnected": id })),
            Err(e) => failed(e),
        },
        "subscribe" => match parse_subscribe(event["body"].as_str().unwrap_or_default()) {
            Ok(feeds) => match connections.subscribe(id, &feeds).await {
                Ok(true) => answer(200, subscribed(&feeds)),
                Ok(false) => answer(410, json!({ "error": "unknown_connection", "message": "connect again" })),
                Err(e) => failed(e),
            },
            Err(message) => answer(400, invalid_message(&message)),
        },
        _ => answer(400, unknown_action()),
    }
}

/// The WebSocket routes that answer the client, as the template declares them: API Gateway
/// delivers a backend's reply on a route only if the route has a route response, so each of
/// these has one. (`$connect` and `$disconnect` answer API Gateway, not the client.)
pub const ANSWERING_ROUTES: [&str; 2] = ["subscribe", "$default"];

/// The route API Gateway selects for a message (route selection `$request.body.action`): the
/// action when it names a route, else `$default` (also for a body that is not a JSON object).
pub fn route_of(body: &str) -> &'static str {
    let action = serde_json::from_str::<Value>(body).ok().and_then(|v| v.get("action")?.as_str().map(String::from));
    match action.as_deref() {
        Some("subscribe") => "subscribe",
        _ => "$default",
    }
}

/// The acknowledgement of a subscription.
pub fn subscribed(feeds: &[String]) -> Value {
    json!({ "type": "subscribed", "feeds": feeds })
}

/// The answer to a subscribe message that does not parse.
pub fn invalid_message(message: &str) -> Value {
    json!({ "error": "invalid_message", "message": message })
}

/// The answer on the `$default` route: a message with no known action.
pub fn unknown_action() -> Value {
    json!({ "error": "unknown_action", "message": "send {\"action\": \"subscribe\", \"feeds\": [\"discover\", \"community\"]}" })
}
