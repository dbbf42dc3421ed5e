//! Events through a real EventBridge emulator (moto's server): a rule with an event pattern on
//! a custom bus delivers to an SQS queue. Also the in-process bus the dev server uses.
//!
//! Emulator differences: moto delivers to the queue synchronously on PutEvents, leaves
//! `account` out of the delivered envelope (EventBridge always sends it), accepts events for a
//! bus that does not exist, and never fires schedules; nothing here depends on those.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use livecache_domain::events::{self, OfferExpired, ProductUpdated, StreamStatusChanged};
use livecache_domain::{
    time, DomainEvent, Envelope, EventBridgePublisher, EventHandler, EventPublisher, InProcessBus, StreamStatus,
};
use livecache_testkit::{shared_moto, unique_prefix};

async fn sdk() -> aws_config::SdkConfig {
    livecache_domain::config::emulator_config(&shared_moto().endpoint()).await
}

fn stream_event(i: usize) -> DomainEvent {
    DomainEvent::StreamStatusChanged(StreamStatusChanged {
        stream_id: format!("stream-{i:03}"),
        seller_id: "user-0001".into(),
        from: StreamStatus::Scheduled,
        to: StreamStatus::Live,
        at: time::from_millis(1_763_700_000_000),
    })
}

/// A bus, a rule matching `detail_types` from our source, and a queue the rule targets.
async fn bus_with_queue(conf: &aws_config::SdkConfig, detail_types: &[&str]) -> (String, String) {
    let eb = aws_sdk_eventbridge::Client::new(conf);
    let sqs = aws_sdk_sqs::Client::new(conf);
    let name = unique_prefix("bus");
    eb.create_event_bus().name(&name).send().await.unwrap();
    let queue_url = sqs.create_queue().queue_name(format!("{name}-q")).send().await.unwrap().queue_url.unwrap();
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap();
    let arn = attrs.attributes.unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn].clone();
    let pattern = serde_json::json!({ "source": [events::SOURCE], "detail-type": detail_types });
    eb.put_rule()
        .name(format!("{name}-rule"))
        .event_bus_name(&name)
        .event_pattern(pattern.to_string())
        .send()
        .await
        .unwrap();
    eb.put_targets()
        .rule(format!("{name}-rule"))
        .event_bus_name(&name)
        .targets(aws_sdk_eventbridge::types::Target::builder().id("queue").arn(arn).build().unwrap())
        .send()
        .await
        .unwrap();
    (name, queue_url)
}

async fn drain_queue(conf: &aws_config::SdkConfig, queue_url: &str, expect: usize) -> Vec<serde_json::Value> {
    let sqs = aws_sdk_sqs::Client::new(conf);
    let mut bodies = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while bodies.len() < expect && Instant::now() < deadline {
        let out = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for m in out.messages.unwrap_or_default() {
            bodies.push(serde_json::from_str(m.body().unwrap()).unwrap());
        }
    }
    // Nothing more arrives.
    let out = sqs.receive_message().queue_url(queue_url).max_number_of_messages(10).send().await.unwrap();
    bodies.extend(out.messages.unwrap_or_default().iter().map(|m| serde_json::from_str(m.body().unwrap()).unwrap()));
    bodies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_stream_event_reaches_the_rule_target_with_its_envelope() {
    let conf = sdk().await;
    let (bus, queue) = bus_with_queue(&conf, &[events::STREAM_STATUS_CHANGED]).await;
    let publisher = EventBridgePublisher::new(aws_sdk_eventbridge::Client::new(&conf), &bus);
    let unmatched = DomainEvent::ProductUpdated(ProductUpdated {
        product_id: "prod-1".into(),
        seller_id: None,
        fields: vec![],
        at: None,
    });
    publisher.publish(&[stream_event(7), unmatched]).await.unwrap();
    let got = drain_queue(&conf, &queue, 1).await;
    assert_eq!(got.len(), 1, "only the matching event is delivered: {got:?}");
    let envelope: Envelope = serde_json::from_value(got[0].clone()).unwrap();
    assert_eq!(envelope.source, events::SOURCE);
    assert_eq!(envelope.detail_type, "StreamStatusChanged");
    assert_eq!(envelope.detail["stream_id"], "stream-007");
    assert_eq!(envelope.detail["to"], "LIVE");
    assert_eq!(envelope.detail["at"], "2025-11-21T04:40:00.000Z");
    assert_eq!(envelope.event().unwrap(), stream_event(7), "the delivered envelope parses back into the event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_ten_events_go_out_in_batches() {
    let conf = sdk().await;
    let (bus, queue) = bus_with_queue(&conf, &[events::STREAM_STATUS_CHANGED, events::OFFER_EXPIRED]).await;
    let publisher = EventBridgePublisher::new(aws_sdk_eventbridge::Client::new(&conf), &bus);
    let mut batch: Vec<DomainEvent> = (0..22).map(stream_event).collect();
    batch.push(DomainEvent::OfferExpired(OfferExpired {
        event_id: "offer-expired:offer-1".into(),
        offer_id: "offer-1".into(),
        product_id: "prod-1".into(),
        buyer_id: "user-2".into(),
        expired_at: time::now(),
    }));
    publisher.publish(&batch).await.unwrap();
    let got = drain_queue(&conf, &queue, 23).await;
    assert_eq!(got.len(), 23);
    assert_eq!(got.iter().filter(|e| e["detail-type"] == "OfferExpired").count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_to_a_missing_bus_is_reported_not_swallowed() {
    let conf = sdk().await;
    let publisher = EventBridgePublisher::new(aws_sdk_eventbridge::Client::new(&conf), "no-such-bus-anywhere");
    let result = publisher.publish(&[stream_event(1)]).await;
    // moto accepts entries for unknown buses silently; real EventBridge rejects them per entry.
    // Either way the publisher must not panic, and a rejection must be an error.
    if let Err(e) = result {
        assert!(e.to_string().contains("not accepted") || e.to_string().contains("event bus"), "{e}");
    }
}

struct Recorder(Mutex<Vec<Envelope>>);

#[async_trait]
impl EventHandler for Recorder {
    async fn handle(&self, envelope: &Envelope) {
        self.0.lock().unwrap().push(envelope.clone());
    }
}

#[tokio::test]
async fn the_in_process_bus_routes_envelopes_to_subscribers() {
    let bus = InProcessBus::new();
    let recorder = Arc::new(Recorder(Mutex::new(Vec::new())));
    bus.subscribe(recorder.clone());
    bus.publish(&[stream_event(3)]).await.unwrap();
    let got = recorder.0.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].detail_type, "StreamStatusChanged");
    assert_eq!(got[0].source, events::SOURCE);
    assert_eq!(got[0].event().unwrap(), stream_event(3));
    assert_eq!(bus.published().len(), 1);
}

#[test]
fn malformed_details_and_unknown_types_are_errors() {
    assert!(DomainEvent::parse("StreamStatusChanged", &serde_json::json!({"stream_id": 1})).is_err());
    assert!(DomainEvent::parse("Whatever", &serde_json::json!({})).is_err());
    let ok = DomainEvent::parse("ProductUpdated", &serde_json::json!({"product_id": "p1"})).unwrap();
    assert!(matches!(ok, DomainEvent::ProductUpdated(ProductUpdated { ref product_id, .. }) if product_id == "p1"));
}
