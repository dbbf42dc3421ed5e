//! The live refresh push: a WebSocket client of the dev server is told to refresh its feeds
//! when a stream goes live; the push function, against moto (the connections table in
//! DynamoDB, the API Gateway Management API), delivers to every live connection of 1,000 and
//! drops the gone ones; the `ws` function's routes keep the connections table.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::SinkExt;
use livecache_domain::push::{handle_socket_event, Connection, Connections, FEEDS};
use livecache_domain::tables::{self, TableNames};
use livecache_domain::ManagementApiPoster;
use livecache_domain::{time, DynamoStore, MemoryStore, StreamStatus};
use livecache_testkit::{shared_moto, unique_prefix};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_client_of_the_dev_server_is_told_when_a_stream_goes_live() {
    let (deps, bus, clock, data) = common::memory_deps("ws").await;
    let api = common::serve(deps, bus, clock, data, Arc::new(livecache_cache::SpawnTasks), None).await;
    let url = api.ws_url();
    let (mut everything, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let (mut community, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    community.send(Message::Text(r#"{"action":"subscribe","feeds":["community"]}"#.into())).await.unwrap();
    assert_eq!(common::next_text(&mut community).await, json!({"type": "subscribed", "feeds": ["community"]}));
    community.send(Message::Text(r#"{"action":"subscribe","feeds":["nope"]}"#.into())).await.unwrap();
    assert_eq!(common::next_text(&mut community).await["error"], json!("invalid_message"));

    let stream = api.data.streams.iter().find(|s| s.status == StreamStatus::Scheduled).unwrap();
    let went_live = Instant::now();
    let (s, _) = api.post_as(&stream.seller_id, &format!("/streams/{}/go-live", stream.id), json!({})).await;
    assert_eq!(s, 200);
    let expected = json!({
        "type": "feed_refresh_required", "feeds": ["discover", "community"], "reason": "stream_live", "stream_id": stream.id
    });
    assert_eq!(common::next_text(&mut everything).await, expected);
    println!("feed_refresh_required {:?} after the go-live was sent", went_live.elapsed());
    assert_eq!(common::next_text(&mut community).await, expected, "it names the community feed");
    let (s, _) = api.post_as(&stream.seller_id, &format!("/streams/{}/end", stream.id), json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(common::next_text(&mut everything).await["reason"], json!("stream_ended"));
}

/// The Management API in moto, behind a proxy that answers 410 for the connections the test
/// made gone (moto keeps every connection id alive) and records what reached moto.
#[derive(Clone, Default)]
struct Gateway {
    moto: String,
    gone: Arc<HashSet<String>>,
    delivered: Arc<Mutex<HashMap<String, Vec<Value>>>>,
}

async fn post_to_connection(
    State(gw): State<Gateway>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if gw.gone.contains(&id) {
        let mut resp = (StatusCode::GONE, r#"{"message":"gone"}"#).into_response();
        resp.headers_mut().insert("x-amzn-errortype", "GoneException".parse().unwrap());
        return resp;
    }
    let mut req = reqwest::Client::new().post(format!("{}/@connections/{id}", gw.moto)).body(body.clone());
    for (name, value) in headers.iter() {
        if name != "host" && name != "content-length" {
            req = req.header(name, value);
        }
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    if status == 200 {
        gw.delivered.lock().unwrap().entry(id).or_default().push(serde_json::from_slice(&body).unwrap());
    }
    (StatusCode::from_u16(status).unwrap(), resp.bytes().await.unwrap()).into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_push_function_delivers_to_every_live_connection_and_drops_the_gone_ones() {
    let conf = livecache_domain::config::emulator_config(&shared_moto().endpoint()).await;
    let client = aws_sdk_dynamodb::Client::new(&conf);
    let names = TableNames::prefixed(&unique_prefix("push"));
    tables::create_all(&client, &names).await.unwrap();
    let store = DynamoStore::new(client, names);
    // 1,000 connections: 100 gone, 300 listening to the community feed only.
    let ids: Vec<String> = (0..1000).map(|i| format!("conn-{i:04}=")).collect();
    for (i, id) in ids.iter().enumerate() {
        let feeds = if i % 10 < 3 { vec!["community".to_string()] } else { FEEDS.map(String::from).to_vec() };
        store.connect(&Connection { id: id.clone(), feeds, connected_at: time::now() }).await.unwrap();
    }
    let gone: HashSet<String> = ids.iter().step_by(10).cloned().collect();
    let gw = Gateway { moto: shared_moto().endpoint(), gone: Arc::new(gone.clone()), ..Gateway::default() };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let router =
        axum::Router::new().route("/@connections/{id}", axum::routing::post(post_to_connection)).with_state(gw.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    let poster = ManagementApiPoster::new(&conf, &endpoint);

    let event = json!({
        "version": "0", "id": "e1", "detail-type": "StreamStatusChanged", "source": "livecache.marketplace",
        "account": "123456789012", "time": "2026-11-21T06:00:00Z", "region": "us-east-1", "resources": [],
        "detail": {"stream_id": "stream-007", "seller_id": "user-0007", "from": "SCHEDULED", "to": "LIVE", "at": "2026-11-21T06:00:00.000Z"}
    });
    let out = livecache_runtime::push::push_event(&store, &poster, &event).await.unwrap();
    assert_eq!(out["report"], json!({"subscribed": 1000, "delivered": 900, "gone": 100, "failed": 0}), "{out}");
    let delivered = gw.delivered.lock().unwrap().clone();
    assert_eq!(delivered.len(), 900);
    for id in ids.iter().filter(|id| !gone.contains(*id)) {
        let got = &delivered[id];
        assert_eq!(got.len(), 1, "{id} told once");
        assert_eq!(got[0]["type"], json!("feed_refresh_required"));
        assert_eq!(
            (got[0]["reason"].clone(), got[0]["stream_id"].clone()),
            (json!("stream_live"), json!("stream-007"))
        );
    }
    let left: HashSet<String> = store.connections().await.unwrap().into_iter().map(|c| c.id).collect();
    assert_eq!(left.len(), 900);
    assert!(left.is_disjoint(&gone), "the gone connections were removed");

    // Events that change no feed, and malformed ones, are dropped without a delivery.
    for dropped in [
        json!({"hello": "world"}),
        json!({"version": "0", "id": "x", "detail-type": "OfferExpired", "source": "s", "time": "t", "detail": {}}),
    ] {
        let out = livecache_runtime::push::push_event(&store, &poster, &dropped).await.unwrap();
        assert!(out.get("dropped").is_some(), "{out}");
    }
    assert_eq!(gw.delivered.lock().unwrap().values().map(Vec::len).sum::<usize>(), 900);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ws_function_keeps_the_connections_table() {
    let conf = livecache_domain::config::emulator_config(&shared_moto().endpoint()).await;
    let client = aws_sdk_dynamodb::Client::new(&conf);
    let names = TableNames::prefixed(&unique_prefix("ws-routes"));
    tables::create_all(&client, &names).await.unwrap();
    let dynamo = DynamoStore::new(client, names);
    let memory = MemoryStore::new();
    for store in [&dynamo as &dyn Connections, &memory as &dyn Connections] {
        let event = |route: &str, body: Option<&str>| json!({"requestContext": {"routeKey": route, "connectionId": "abc123="}, "body": body, "isBase64Encoded": false});
        assert_eq!(handle_socket_event(store, &event("$connect", None)).await["statusCode"], json!(200));
        let listed = store.connections().await.unwrap();
        assert_eq!((listed.len(), listed[0].feeds.clone()), (1, vec!["discover".to_string(), "community".to_string()]));
        let out = handle_socket_event(
            store,
            &event("subscribe", Some(r#"{"action":"subscribe","feeds":["discover","discover"]}"#)),
        )
        .await;
        assert_eq!(out["statusCode"], json!(200), "{out}");
        assert_eq!(store.connections().await.unwrap()[0].feeds, vec!["discover".to_string()]);
        for bad in [
            r#"{"action":"subscribe","feeds":[]}"#,
            r#"{"action":"subscribe","feeds":["x"]}"#,
            "nope",
            r#"{"action":"subscribe"}"#,
        ] {
            assert_eq!(
                handle_socket_event(store, &event("subscribe", Some(bad))).await["statusCode"],
                json!(400),
                "{bad}"
            );
        }
        assert_eq!(handle_socket_event(store, &event("shout", Some("{}"))).await["statusCode"], json!(400));
        assert_eq!(handle_socket_event(store, &event("$disconnect", None)).await["statusCode"], json!(200));
        assert!(store.connections().await.unwrap().is_empty());
        let out =
            handle_socket_event(store, &event("subscribe", Some(r#"{"action":"subscribe","feeds":["community"]}"#)))
                .await;
        assert_eq!(out["statusCode"], json!(410), "an unknown connection");
        assert_eq!(handle_socket_event(store, &json!({"hello": 1})).await["statusCode"], json!(400));
    }
}

#[tokio::test]
async fn the_sample_websocket_events_are_answered() {
    let store = MemoryStore::new();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../events/ws");
    for name in ["connect", "subscribe", "disconnect"] {
        let event: Value =
            serde_json::from_str(&std::fs::read_to_string(format!("{dir}/{name}.json")).unwrap()).unwrap();
        let out = handle_socket_event(&store, &event).await;
        assert_eq!(out["statusCode"], json!(200), "{name}: {out}");
        if name == "subscribe" {
            assert_eq!(store.connections().await.unwrap()[0].feeds, vec!["discover".to_string()]);
        }
    }
    assert!(store.connections().await.unwrap().is_empty());
}
