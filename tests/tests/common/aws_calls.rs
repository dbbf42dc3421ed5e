//! What a function asks of AWS, as IAM sees it: an SDK interceptor (any AWS SDK client) that
//! turns every request sent into the IAM actions and resource ARNs it needs — a DynamoDB
//! transaction the per-item actions on each table, a batch its action on each table, a query on
//! an index the index's ARN, PutEvents the bus's ARN, a Management API post the connection's
//! execute-api ARN. moto allows everything; these are what a function's role must allow.

use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use serde_json::Value;

/// The account and region moto answers as.
pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "us-east-1";
/// The WebSocket API id and stage the Management API calls are attributed to.
pub const WS_API: &str = "wsapi";
pub const WS_STAGE: &str = "live";

/// One permission a call needs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Need {
    /// `service:Action`.
    pub action: String,
    pub resource: String,
}

/// The interceptor; clones share one record.
#[derive(Debug, Default, Clone)]
pub struct AwsCalls(Arc<Mutex<Vec<Need>>>);

impl AwsCalls {
    pub fn take(&self) -> Vec<Need> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Intercept for AwsCalls {
    fn name(&self) -> &'static str {
        "record-iam-needs"
    }

    fn read_before_transmit(
        &self,
        ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let req = ctx.request();
        let target = req.headers().get("x-amz-target").unwrap_or_default().to_string();
        let body: Value = req.body().bytes().and_then(|b| serde_json::from_slice(b).ok()).unwrap_or(Value::Null);
        let needs = needs_of(&target, req.method(), req.uri(), &body);
        assert!(!needs.is_empty(), "a call the recorder does not know: {target} {} {}", req.method(), req.uri());
        self.0.lock().unwrap().extend(needs);
        Ok(())
    }
}

fn table_arn(name: &str) -> String {
    if name.starts_with("arn:") {
        name.to_string()
    } else {
        format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}")
    }
}

fn need(action: &str, resource: String) -> Need {
    Need { action: action.to_string(), resource }
}

/// The permissions one request needs.
fn needs_of(target: &str, method: &str, uri: &str, body: &Value) -> Vec<Need> {
    let table = |v: &Value| table_arn(v.as_str().unwrap_or_default());
    if let Some(op) = target.strip_prefix("DynamoDB_20120810.") {
        let action = format!("dynamodb:{op}");
        return match op {
            "Query" | "Scan" => {
                let mut arn = table(&body["TableName"]);
                if let Some(index) = body["IndexName"].as_str() {
                    arn = format!("{arn}/index/{index}");
                }
                vec![need(&action, arn)]
            }
            "BatchGetItem" | "BatchWriteItem" => body["RequestItems"]
                .as_object()
                .map(|m| m.keys().map(|t| need(&action, table_arn(t))).collect())
                .unwrap_or_default(),
            // A transaction needs each item's own action on its table (there is no IAM action
            // for the transaction itself).
            "TransactWriteItems" | "TransactGetItems" => body["TransactItems"]
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|item| item.as_object()?.iter().next())
                        .map(|(kind, spec)| {
                            let per_item = match kind.as_str() {
                                "Put" => "dynamodb:PutItem",
                                "Update" => "dynamodb:UpdateItem",
                                "Delete" => "dynamodb:DeleteItem",
                                "ConditionCheck" => "dynamodb:ConditionCheckItem",
                                _ => "dynamodb:GetItem",
                            };
                            need(per_item, table(&spec["TableName"]))
                        })
                        .collect()
                })
                .unwrap_or_default(),
            "ListTables" => vec![need(&action, "*".into())],
            _ => vec![need(&action, table(&body["TableName"]))],
        };
    }
    if target == "AWSEvents.PutEvents" {
        let mut buses: Vec<String> = body["Entries"]
            .as_array()
            .map(|e| e.iter().map(|x| x["EventBusName"].as_str().unwrap_or("default").to_string()).collect())
            .unwrap_or_default();
        buses.sort();
        buses.dedup();
        return buses
            .into_iter()
            .map(|b| {
                let arn =
                    if b.starts_with("arn:") { b } else { format!("arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{b}") };
                need("events:PutEvents", arn)
            })
            .collect();
    }
    if let Some(at) = uri.find("/@connections/") {
        let path = uri[at..].split('?').next().unwrap_or_default();
        return vec![need(
            "execute-api:ManageConnections",
            format!("arn:aws:execute-api:{REGION}:{ACCOUNT}:{WS_API}/{WS_STAGE}/{method}{path}"),
        )];
    }
    Vec::new()
}

/// IAM's wildcard match (`*` any run of characters, `?` one), as in Action and Resource.
pub fn iam_match(pattern: &str, value: &str) -> bool {
    fn go(p: &[u8], v: &[u8]) -> bool {
        match (p.first(), v.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], v) || (!v.is_empty() && go(p, &v[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &v[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &v[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), value.as_bytes())
}

#[test]
fn iam_wildcards_match_as_iam_does() {
    assert!(iam_match("arn:aws:dynamodb:*:*:table/p/index/*", "arn:aws:dynamodb:r:a:table/p/index/by_gh5"));
    assert!(!iam_match("arn:aws:dynamodb:r:a:table/p/index/*", "arn:aws:dynamodb:r:a:table/p"));
    assert!(iam_match("dynamodb:?etItem", "dynamodb:GetItem"));
}
