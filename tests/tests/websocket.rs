//! The WebSocket API as API Gateway runs it: a message is routed by `$request.body.action`
//! (another action, or a body that is not JSON, goes to `$default`), and a backend's reply
//! reaches the client only on a route with a route response. The template's routes and route
//! responses are checked against what the `ws` function answers, and the dev server's `/ws`
//! routes and answers the same way.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use futures::SinkExt;
use livecache_domain::push::{handle_socket_event, route_of, ANSWERING_ROUTES};
use livecache_domain::MemoryStore;
use serde_json::{json, Value};
use serde_yaml::Value as Yaml;
use tokio_tungstenite::tungstenite::Message;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn sample(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(root().join(format!("events/ws/{name}.json"))).unwrap()).unwrap()
}

fn resources() -> Vec<(String, Yaml)> {
    let t: Yaml = serde_yaml::from_str(&std::fs::read_to_string(root().join("template.yaml")).unwrap()).unwrap();
    t["Resources"].as_mapping().unwrap().iter().map(|(k, v)| (k.as_str().unwrap().to_string(), v.clone())).collect()
}

fn tag_value(v: &Yaml) -> Option<&str> {
    match v {
        Yaml::Tagged(t) => t.value.as_str(),
        other => other.as_str(),
    }
}

#[test]
fn every_route_that_answers_the_client_has_a_route_response_and_unknown_actions_have_a_route() {
    let all = resources();
    let routes: Vec<(&String, &Yaml)> = all
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::ApiGatewayV2::Route"))
        .map(|(k, r)| (k, r))
        .collect();
    let keys: BTreeSet<&str> = routes.iter().map(|(_, r)| r["Properties"]["RouteKey"].as_str().unwrap()).collect();
    assert_eq!(keys, BTreeSet::from(["$connect", "$disconnect", "subscribe", "$default"]));
    for key in ANSWERING_ROUTES {
        let (id, route) = routes.iter().find(|(_, r)| r["Properties"]["RouteKey"].as_str() == Some(key)).unwrap();
        assert_eq!(
            route["Properties"]["RouteResponseSelectionExpression"].as_str(),
            Some("$default"),
            "{id}: a two-way route needs a route response selection expression"
        );
        let response = all.iter().find(|(_, r)| {
            r["Type"].as_str() == Some("AWS::ApiGatewayV2::RouteResponse")
                && tag_value(&r["Properties"]["RouteId"]) == Some(id.as_str())
        });
        let (_, response) =
            response.unwrap_or_else(|| panic!("{id} ({key}) has no route response: replies are dropped"));
        assert_eq!(response["Properties"]["RouteResponseKey"].as_str(), Some("$default"), "{id}");
    }
    let stage = &all.iter().find(|(k, _)| k == "WebSocketStage").unwrap().1;
    let depends: BTreeSet<&str> =
        stage["DependsOn"].as_sequence().unwrap().iter().map(|d| d.as_str().unwrap()).collect();
    for (id, r) in &all {
        if r["Type"].as_str().is_some_and(|t| t.starts_with("AWS::ApiGatewayV2::Route")) {
            assert!(depends.contains(id.as_str()), "the stage's first deployment must include {id}");
        }
    }
}

#[test]
fn messages_are_routed_by_their_action_as_api_gateway_routes_them() {
    assert_eq!(route_of(r#"{"action": "subscribe", "feeds": ["discover"]}"#), "subscribe");
    for other in [r#"{"action": "ping"}"#, r#"{"feeds": []}"#, "not json", r#"["subscribe"]"#, r#"{"action": 1}"#] {
        assert_eq!(route_of(other), "$default", "{other}");
    }
}

#[tokio::test]
async fn the_ws_function_answers_every_answering_route_with_a_json_body() {
    let store = MemoryStore::new();
    assert_eq!(handle_socket_event(&store, &sample("connect")).await["statusCode"], 200);
    for (name, route) in [("subscribe", "subscribe"), ("default", "$default")] {
        let event = sample(name);
        assert_eq!(event["requestContext"]["routeKey"], route);
        assert_eq!(route_of(event["body"].as_str().unwrap()), route, "{name}: the sample is routed where it says");
        let out = handle_socket_event(&store, &event).await;
        let body: Value = serde_json::from_str(out["body"].as_str().unwrap()).unwrap();
        match route {
            "subscribe" => assert_eq!(body, json!({"type": "subscribed", "feeds": ["discover"]})),
            _ => assert_eq!((out["statusCode"].clone(), body["error"].clone()), (json!(400), json!("unknown_action"))),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dev_servers_socket_routes_and_answers_as_api_gateway_and_the_ws_function_do() {
    let (deps, bus, clock, data) = common::memory_deps("ws-routing").await;
    let api = common::serve(deps, bus, clock, data, Arc::new(livecache_cache::SpawnTasks), None).await;
    let url = api.ws_url();
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let store = MemoryStore::new();
    handle_socket_event(&store, &sample("connect")).await;
    for body in [
        r#"{"action": "ping"}"#,
        "not json",
        r#"{"action":"subscribe","feeds":["nope"]}"#,
        r#"{"action":"subscribe","feeds":["community"]}"#,
    ] {
        ws.send(Message::Text(body.into())).await.unwrap();
        let from_dev = common::next_text(&mut ws).await;
        let mut event = sample("subscribe");
        event["requestContext"]["routeKey"] = route_of(body).into();
        event["body"] = body.into();
        let from_lambda: Value =
            serde_json::from_str(handle_socket_event(&store, &event).await["body"].as_str().unwrap()).unwrap();
        assert_eq!(from_dev, from_lambda, "{body}");
    }
}
