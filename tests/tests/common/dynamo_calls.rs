//! Counting what a request costs in DynamoDB, as the service sees it: an SDK interceptor on
//! the client that tallies every call sent (per operation), the items each read returned or
//! scanned, and the read capacity they cost (estimated from the item sizes: 0.5 unit per 4 KiB
//! read by a query, 0.5 per 4 KiB item fetched by key — eventually consistent reads).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::{
    AfterDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemOutput;
use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::types::AttributeValue;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Tally {
    /// Calls sent, per operation (`Query`, `BatchGetItem`, …).
    pub calls: BTreeMap<String, u64>,
    /// Items the reads looked at (a query's `ScannedCount`, the items a get returned).
    pub items_read: u64,
    /// Estimated read capacity units.
    pub read_units: f64,
}

impl Tally {
    pub fn total_calls(&self) -> u64 {
        self.calls.values().sum()
    }
}

/// The interceptor; clones share one tally.
#[derive(Debug, Default, Clone)]
pub struct DynamoCalls(Arc<Mutex<Tally>>);

impl DynamoCalls {
    /// The tally so far, and a fresh start.
    pub fn take(&self) -> Tally {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Intercept for DynamoCalls {
    fn name(&self) -> &'static str {
        "count-dynamodb-calls"
    }

    fn read_before_transmit(
        &self,
        ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let target = ctx.request().headers().get("x-amz-target").unwrap_or_default();
        let op = target.rsplit('.').next().unwrap_or(target).to_string();
        *self.0.lock().unwrap().calls.entry(op).or_insert(0) += 1;
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        ctx: &AfterDeserializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Ok(output) = ctx.output_or_error() else { return Ok(()) };
        let (scanned, items): (u64, Vec<&Item>) = if let Some(q) = output.downcast_ref::<QueryOutput>() {
            (q.scanned_count as u64, q.items().iter().collect())
        } else if let Some(b) = output.downcast_ref::<BatchGetItemOutput>() {
            let items: Vec<&Item> = b.responses().into_iter().flat_map(|r| r.values()).flatten().collect();
            (items.len() as u64, items)
        } else if let Some(g) = output.downcast_ref::<GetItemOutput>() {
            (1, g.item().into_iter().collect())
        } else {
            return Ok(());
        };
        let mut t = self.0.lock().unwrap();
        t.items_read += scanned;
        // A query is billed on the total size it read; a get per item (both rounded up to
        // 4 KiB, half a unit each for eventually consistent reads).
        let units = |bytes: usize| (bytes as f64 / 4096.0).ceil().max(1.0) * 0.5;
        if output.downcast_ref::<QueryOutput>().is_some() {
            t.read_units += units(items.iter().map(|i| item_size(i)).sum());
        } else {
            t.read_units += items.iter().map(|i| units(item_size(i))).sum::<f64>();
        }
        Ok(())
    }
}

type Item = std::collections::HashMap<String, AttributeValue>;

/// An item's size as DynamoDB counts it, near enough: names plus values.
fn item_size(item: &Item) -> usize {
    fn value(v: &AttributeValue) -> usize {
        match v {
            AttributeValue::S(s) => s.len(),
            AttributeValue::N(n) => n.len().div_ceil(2) + 1,
            AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
            AttributeValue::L(l) => 3 + l.iter().map(|v| 1 + value(v)).sum::<usize>(),
            AttributeValue::M(m) => 3 + m.iter().map(|(k, v)| 1 + k.len() + value(v)).sum::<usize>(),
            AttributeValue::Ss(l) | AttributeValue::Ns(l) => l.iter().map(String::len).sum(),
            _ => 8,
        }
    }
    item.iter().map(|(k, v)| k.len() + value(v)).sum()
}

/// A DynamoDB client for moto's server that counts through `calls`.
pub async fn counted_client(endpoint: &str, calls: &DynamoCalls) -> aws_sdk_dynamodb::Client {
    let sdk = livecache_domain::config::emulator_config(endpoint).await;
    let conf = aws_sdk_dynamodb::config::Builder::from(&sdk).interceptor(calls.clone()).build();
    aws_sdk_dynamodb::Client::from_conf(conf)
}
