//! change-log: what a committed change to a cached table makes stale, applied from the tables'
//! change log (DynamoDB Streams, new and old images). The writer invalidates before it answers
//! (read-your-writes); this is the path that cannot be lost: an invalidation the writer's own
//! attempt lost (Redis frozen, a timeout, a crash after the write) or a write another service
//! made straight to a table is invalidated here, once Redis answers. Invalidations are
//! idempotent, so a record applied twice (a retried batch) costs only a second bump.

use std::collections::{BTreeSet, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;

use super::JobError;
use crate::services::keys::{NS_ACHIEVEMENTS, NS_FEED_COMMUNITY, NS_FEED_DISCOVER, NS_LEADERBOARD, NS_LIVE};
use crate::services::{Marketplace, Stale};
use crate::tables::TableNames;

/// An item as the change log carries it.
pub type Image = HashMap<String, AttributeValue>;

/// The cached tables, whose changes the change log carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangedTable {
    Products,
    Users,
    Streams,
}

impl ChangedTable {
    /// Which cached table `name` is (None: a table whose items nothing caches).
    pub(crate) fn of(name: &str, tables: &TableNames) -> Option<Self> {
        [(&tables.products, Self::Products), (&tables.users, Self::Users), (&tables.streams, Self::Streams)]
            .into_iter()
            .find_map(|(n, t)| (n == name).then_some(t))
    }
}

/// One committed change: the item before (None: created) and after (None: deleted).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub table: ChangedTable,
    /// Its position in the table's log (the record's sequence number).
    pub sequence: String,
    pub old: Option<Image>,
    pub new: Option<Image>,
}

/// Attributes served write-behind: view counts reach the table from view-sync, and cached
/// values show them with that lag by design; a change of these alone makes nothing stale.
const WRITE_BEHIND: [&str; 1] = ["view_count"];

/// What a user's change must also clear from the leaderboard (its rows show these).
const ON_THE_BOARD: [&str; 6] = ["name", "avatar", "points", "badges", "board", "points_rank"];

fn text(image: Option<&Image>, attr: &str) -> Option<String> {
    image?.get(attr)?.as_s().ok().cloned()
}

fn differs(old: Option<&Image>, new: Option<&Image>, attr: &str) -> bool {
    old.and_then(|i| i.get(attr)) != new.and_then(|i| i.get(attr))
}

/// Whether anything besides the write-behind attributes changed.
fn changed_beyond_write_behind(change: &Change) -> bool {
    fn strip(i: Option<&Image>) -> Option<HashMap<&String, &AttributeValue>> {
        i.map(|i| i.iter().filter(|(k, _)| !WRITE_BEHIND.contains(&k.as_str())).collect())
    }
    strip(change.old.as_ref()) != strip(change.new.as_ref())
}

/// What `change` makes stale (nothing when only write-behind attributes changed).
pub fn stale(change: &Change) -> Vec<Stale> {
    if !changed_beyond_write_behind(change) {
        return Vec::new();
    }
    let (old, new) = (change.old.as_ref(), change.new.as_ref());
    let ids = |attr: &str| -> BTreeSet<String> { [text(old, attr), text(new, attr)].into_iter().flatten().collect() };
    let mut out = Vec::new();
    match change.table {
        ChangedTable::Products => {
            out.extend(ids("id").into_iter().map(Stale::Product));
            out.extend([Stale::Namespace(NS_FEED_DISCOVER), Stale::Namespace(NS_FEED_COMMUNITY)]);
            // The seller's figures count the products listed.
            if old.is_none() || new.is_none() || differs(old, new, "seller_id") {
                out.extend(ids("seller_id").into_iter().map(Stale::User));
            }
        }
        ChangedTable::Streams => {
            out.extend([NS_FEED_DISCOVER, NS_FEED_COMMUNITY, NS_LIVE].map(Stale::Namespace));
            // The seller's figures count the streams hosted.
            if differs(old, new, "status") {
                out.extend(ids("seller_id").into_iter().map(Stale::User));
            }
        }
        ChangedTable::Users if ids("owner").is_empty() => {
            out.extend(ids("id").into_iter().map(Stale::User));
            if ON_THE_BOARD.iter().any(|a| differs(old, new, a)) {
                out.push(Stale::Namespace(NS_LEADERBOARD));
            }
        }
        ChangedTable::Users => {
            // A badge: its owner's data, everybody's latest badges, the leaderboard.
            out.extend(ids("owner").into_iter().map(Stale::User));
            out.extend([Stale::Namespace(NS_ACHIEVEMENTS), Stale::Namespace(NS_LEADERBOARD)]);
        }
    }
    out
}

/// What a batch of changes invalidated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ChangeOutcome {
    pub changes: usize,
    /// `products:{id}`, `user:{id}`, or a namespace; each once per batch.
    pub invalidated: Vec<String>,
}

/// Invalidates what `changes` make stale, each target once, trying again while Redis does not
/// answer until `until` (None: until it does). An error leaves the batch to be applied again:
/// nothing is skipped.
pub async fn apply_changes(
    m: &Marketplace,
    changes: &[Change],
    until: Option<std::time::Instant>,
) -> Result<ChangeOutcome, JobError> {
    let invalidated = m.invalidate_retrying(changes.iter().flat_map(stale).collect(), until).await?;
    Ok(ChangeOutcome { changes: changes.len(), invalidated })
}

/// The changes of a Lambda DynamoDB Streams event (`Records[]`), in order; records of tables
/// nothing caches, or that cannot be read, are left out (and logged): they must not block the
/// log behind them.
pub fn changes_of_event(event: &serde_json::Value, tables: &TableNames) -> Vec<Change> {
    records(event)
        .iter()
        .filter_map(|record| match change_of_record(record, tables) {
            Ok(change) => change,
            Err(reason) => {
                tracing::warn!(reason = %reason, record = %record, "change record dropped");
                None
            }
        })
        .collect()
}

/// The sequence numbers of an event's records, in order (a failed batch reports the first).
pub fn sequences_of_event(event: &serde_json::Value) -> Vec<String> {
    records(event)
        .iter()
        .filter_map(|r| r.pointer("/dynamodb/SequenceNumber").and_then(serde_json::Value::as_str).map(str::to_string))
        .collect()
}

/// A Lambda DynamoDB Streams event's `Records` (none when it has none).
fn records(event: &serde_json::Value) -> &[serde_json::Value] {
    event.get("Records").and_then(serde_json::Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

/// `arn:aws:dynamodb:{region}:{account}:table/{name}/stream/{label}` → `name`.
fn table_of_stream_arn(arn: &str) -> Option<&str> {
    arn.split_once(":table/")?.1.split('/').next()
}

fn change_of_record(record: &serde_json::Value, tables: &TableNames) -> Result<Option<Change>, String> {
    let arn = record.get("eventSourceARN").and_then(serde_json::Value::as_str).ok_or("no eventSourceARN")?;
    let name = table_of_stream_arn(arn).ok_or_else(|| format!("{arn} is not a table's stream"))?;
    let Some(table) = ChangedTable::of(name, tables) else { return Ok(None) };
    let body = record.get("dynamodb").ok_or("no dynamodb")?;
    let sequence = body.get("SequenceNumber").and_then(serde_json::Value::as_str).ok_or("no SequenceNumber")?;
    let image = |attr: &str| -> Result<Option<Image>, String> {
        match body.get(attr) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) => {
                let item: serde_dynamo::Item = serde_json::from_value(v.clone()).map_err(|e| format!("{attr}: {e}"))?;
                Ok(Some(item.into()))
            }
        }
    };
    let (old, new) = (image("OldImage")?, image("NewImage")?);
    if old.is_none() && new.is_none() {
        return Err("neither image: the table's stream must carry NEW_AND_OLD_IMAGES".into());
    }
    Ok(Some(Change { table, sequence: sequence.to_string(), old, new }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(pairs: &[(&str, &str)]) -> Image {
        pairs.iter().map(|(k, v)| (k.to_string(), AttributeValue::S(v.to_string()))).collect()
    }

    fn change(table: ChangedTable, old: Option<Image>, new: Option<Image>) -> Change {
        Change { table, sequence: "1".into(), old, new }
    }

    #[test]
    fn a_view_count_alone_makes_nothing_stale() {
        let mut old = image(&[("id", "prod-1"), ("title", "A")]);
        let mut new = old.clone();
        old.insert("view_count".into(), AttributeValue::N("1".into()));
        new.insert("view_count".into(), AttributeValue::N("9".into()));
        assert!(stale(&change(ChangedTable::Products, Some(old.clone()), Some(new.clone()))).is_empty());
        new.insert("title".into(), AttributeValue::S("B".into()));
        let s = stale(&change(ChangedTable::Products, Some(old), Some(new)));
        assert!(s.contains(&Stale::Product("prod-1".into())) && s.contains(&Stale::Namespace(NS_FEED_DISCOVER)));
    }

    #[test]
    fn a_new_product_clears_its_sellers_figures() {
        let new = image(&[("id", "prod-1"), ("seller_id", "user-1")]);
        let s = stale(&change(ChangedTable::Products, None, Some(new)));
        assert!(s.contains(&Stale::User("user-1".into())), "{s:?}");
    }

    #[test]
    fn a_name_change_clears_the_user_and_the_leaderboard_a_bio_change_only_the_user() {
        let old = image(&[("id", "user-1"), ("name", "A"), ("bio", "x")]);
        let renamed = image(&[("id", "user-1"), ("name", "B"), ("bio", "x")]);
        let s = stale(&change(ChangedTable::Users, Some(old.clone()), Some(renamed)));
        assert_eq!(s, vec![Stale::User("user-1".into()), Stale::Namespace(NS_LEADERBOARD)]);
        let rebio = image(&[("id", "user-1"), ("name", "A"), ("bio", "y")]);
        assert_eq!(stale(&change(ChangedTable::Users, Some(old), Some(rebio))), vec![Stale::User("user-1".into())]);
    }

    #[test]
    fn a_badge_clears_its_owner_the_badges_and_the_leaderboard() {
        let badge = image(&[("id", "badge#user-1#first_stream"), ("owner", "user-1")]);
        let s = stale(&change(ChangedTable::Users, None, Some(badge)));
        assert!(s.contains(&Stale::User("user-1".into())) && s.contains(&Stale::Namespace(NS_ACHIEVEMENTS)));
    }

    #[test]
    fn a_transition_clears_the_feeds_the_live_list_and_the_sellers_figures() {
        let old = image(&[("id", "stream-1"), ("seller_id", "user-1"), ("status", "SCHEDULED")]);
        let new = image(&[("id", "stream-1"), ("seller_id", "user-1"), ("status", "LIVE")]);
        let s = stale(&change(ChangedTable::Streams, Some(old), Some(new)));
        assert!(s.contains(&Stale::Namespace(NS_LIVE)) && s.contains(&Stale::User("user-1".into())), "{s:?}");
    }

    #[test]
    fn a_lambda_event_reads_into_changes_and_unknown_tables_are_left_out() {
        let tables = TableNames::defaults();
        let event = serde_json::json!({"Records": [
            {"eventSourceARN": "arn:aws:dynamodb:us-east-1:1:table/livecache-users/stream/2026", "dynamodb": {
                "SequenceNumber": "7", "OldImage": {"id": {"S": "user-1"}, "name": {"S": "A"}},
                "NewImage": {"id": {"S": "user-1"}, "name": {"S": "B"}}}},
            {"eventSourceARN": "arn:aws:dynamodb:us-east-1:1:table/livecache-offers/stream/2026", "dynamodb": {
                "SequenceNumber": "8", "NewImage": {"id": {"S": "offer-1"}}}},
            {"eventSourceARN": "arn:aws:dynamodb:us-east-1:1:table/livecache-users/stream/2026", "dynamodb": {
                "SequenceNumber": "9"}}
        ]});
        let changes = changes_of_event(&event, &tables);
        assert_eq!(changes.len(), 1);
        assert_eq!((changes[0].table, changes[0].sequence.as_str()), (ChangedTable::Users, "7"));
        assert_eq!(text(changes[0].new.as_ref(), "name").as_deref(), Some("B"));
        assert_eq!(sequences_of_event(&event), vec!["7", "8", "9"]);
    }
}
