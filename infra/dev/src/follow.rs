//! Follows the cached tables' change log (DynamoDB Streams) and applies it, as the change-log
//! function does on AWS: the dev server on an emulator (moto serves DynamoDB Streams) and the
//! tests run this, so the path an invalidation cannot be lost on is exercised, not just
//! declared.
//!
//! Where it stands is kept in the jobs table (`changelog#{table}#{shard}`: the last sequence
//! number applied), written after a batch is applied: a follower stopped and started again
//! resumes after the last change it applied, and a change applied twice (a stop between
//! applying and keeping) costs only a second invalidation. A batch that Redis does not take is
//! tried again until it does; nothing is skipped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodbstreams::types::{AttributeValue as StreamValue, ShardIteratorType};
use livecache_domain::jobs::{apply_changes, Change, ChangedTable, Image};
use livecache_domain::services::Marketplace;
use livecache_domain::TableNames;

/// How often an idle follower asks for new records (the Lambda event source polls each shard
/// about four times a second).
pub const POLL: Duration = Duration::from_millis(100);

/// At most this many records are applied as one batch (the template's `BatchSize`).
const BATCH: i32 = 100;

/// A running follower; stops when dropped.
#[derive(Debug)]
pub struct Follower {
    task: tokio::task::JoinHandle<()>,
    progress: Arc<Progress>,
}

/// What a follower has done, for those who wait on it.
#[derive(Debug, Default)]
struct Progress {
    /// Records applied since it started.
    applied: AtomicU64,
    /// Rounds over every shard that read each one to its end (and applied what they read).
    rounds_to_end: AtomicU64,
}

impl Follower {
    /// Records applied since it started.
    pub fn applied(&self) -> u64 {
        self.progress.applied.load(Ordering::SeqCst)
    }

    /// Waits until a whole round over every shard, begun after this call, read each one to its
    /// end and applied it: every change committed before the call is applied (while writes go
    /// on, too).
    pub async fn caught_up(&self) {
        let from = self.progress.rounds_to_end.load(Ordering::SeqCst);
        while self.progress.rounds_to_end.load(Ordering::SeqCst) < from + 2 {
            tokio::time::sleep(POLL / 2).await;
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One shard being read: where the next read starts.
struct Shard {
    table: ChangedTable,
    table_name: String,
    stream_arn: String,
    id: String,
    iterator: Option<String>,
}

struct Reader {
    streams: aws_sdk_dynamodbstreams::Client,
    dynamo: aws_sdk_dynamodb::Client,
    jobs_table: String,
}

/// Starts following the change log of every cached table in `tables`, applying it to
/// `market`'s cache. Fails when a cached table has no stream.
pub async fn follow(market: Marketplace, sdk: &aws_config::SdkConfig, tables: &TableNames) -> anyhow::Result<Follower> {
    let reader = Reader {
        streams: aws_sdk_dynamodbstreams::Client::new(sdk),
        dynamo: aws_sdk_dynamodb::Client::new(sdk),
        jobs_table: tables.jobs.clone(),
    };
    let mut shards = Vec::new();
    for (name, table) in [
        (&tables.products, ChangedTable::Products),
        (&tables.users, ChangedTable::Users),
        (&tables.streams, ChangedTable::Streams),
    ] {
        shards.extend(reader.shards(name, table).await?);
    }
    let progress = Arc::new(Progress::default());
    let shared = progress.clone();
    let task = tokio::spawn(async move { reader.run(market, shards, shared).await });
    Ok(Follower { task, progress })
}

impl Reader {
    /// The shards of `name`'s stream.
    async fn shards(&self, name: &str, table: ChangedTable) -> anyhow::Result<Vec<Shard>> {
        let described = self.dynamo.describe_table().table_name(name).send().await?;
        let arn = described
            .table()
            .and_then(|t| t.latest_stream_arn())
            .ok_or_else(|| anyhow::anyhow!("table {name} has no change log (StreamSpecification)"))?
            .to_string();
        let stream = self.streams.describe_stream().stream_arn(&arn).send().await?;
        let shards = stream.stream_description().map(|d| d.shards()).unwrap_or_default();
        Ok(shards
            .iter()
            .filter_map(|s| s.shard_id())
            .map(|id| Shard {
                table,
                table_name: name.to_string(),
                stream_arn: arn.clone(),
                id: id.to_string(),
                iterator: None,
            })
            .collect())
    }

    fn checkpoint_key(shard: &Shard) -> String {
        format!("changelog#{}#{}", shard.table_name, shard.id)
    }

    /// The last sequence number applied from `shard`, if any.
    async fn checkpoint(&self, shard: &Shard) -> anyhow::Result<Option<String>> {
        let item = self
            .dynamo
            .get_item()
            .table_name(&self.jobs_table)
            .key("pk", AttributeValue::S(Self::checkpoint_key(shard)))
            .consistent_read(true)
            .send()
            .await?;
        Ok(item.item().and_then(|i| i.get("sequence")).and_then(|v| v.as_s().ok()).cloned())
    }

    async fn keep(&self, shard: &Shard, sequence: &str) -> anyhow::Result<()> {
        self.dynamo
            .put_item()
            .table_name(&self.jobs_table)
            .item("pk", AttributeValue::S(Self::checkpoint_key(shard)))
            .item("sequence", AttributeValue::S(sequence.to_string()))
            .send()
            .await?;
        Ok(())
    }

    /// An iterator after the last change applied, or from the oldest one kept.
    async fn open(&self, shard: &Shard) -> anyhow::Result<String> {
        let request = self.streams.get_shard_iterator().stream_arn(&shard.stream_arn).shard_id(&shard.id);
        let request = match self.checkpoint(shard).await? {
            Some(sequence) => {
                request.shard_iterator_type(ShardIteratorType::AfterSequenceNumber).sequence_number(sequence)
            }
            None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
        };
        request.send().await?.shard_iterator().map(str::to_string).ok_or_else(|| anyhow::anyhow!("no iterator"))
    }

    async fn run(self, market: Marketplace, mut shards: Vec<Shard>, progress: Arc<Progress>) {
        loop {
            let (mut idle, mut to_end) = (true, true);
            for shard in &mut shards {
                match self.step(&market, shard).await {
                    Ok(0) => {}
                    Ok(n) => {
                        idle = false;
                        // A full batch may have more behind it.
                        to_end &= n < BATCH as u64;
                        progress.applied.fetch_add(n, Ordering::SeqCst);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, table = %shard.table_name, "change log not read; opening it again");
                        shard.iterator = None;
                        (idle, to_end) = (false, false);
                    }
                }
            }
            if to_end {
                progress.rounds_to_end.fetch_add(1, Ordering::SeqCst);
            }
            if idle {
                tokio::time::sleep(POLL).await;
            }
        }
    }

    /// Reads one batch of `shard` and applies it (trying again until Redis takes it); how many
    /// records it held.
    async fn step(&self, market: &Marketplace, shard: &mut Shard) -> anyhow::Result<u64> {
        let iterator = match shard.iterator.take() {
            Some(it) => it,
            None => self.open(shard).await?,
        };
        let out = self.streams.get_records().shard_iterator(iterator).limit(BATCH).send().await?;
        let records = out.records();
        let changes: Vec<Change> = records.iter().filter_map(|r| change_of(shard.table, r)).collect();
        if let Some(last) = records.last().and_then(|r| r.dynamodb()).and_then(|d| d.sequence_number()) {
            // Tried until Redis takes it: nothing is skipped.
            apply_changes(market, &changes, None).await?;
            self.keep(shard, last).await?;
        }
        shard.iterator = out.next_shard_iterator().map(str::to_string);
        Ok(records.len() as u64)
    }
}

fn change_of(table: ChangedTable, record: &aws_sdk_dynamodbstreams::types::Record) -> Option<Change> {
    let body = record.dynamodb()?;
    let image = |i: Option<&HashMap<String, StreamValue>>| -> Option<Image> {
        i.map(|i| i.iter().map(|(k, v)| (k.clone(), value(v))).collect())
    };
    let change = Change {
        table,
        sequence: body.sequence_number()?.to_string(),
        old: image(body.old_image()),
        new: image(body.new_image()),
    };
    (change.old.is_some() || change.new.is_some()).then_some(change)
}

/// A stream's attribute value as the table's client has it.
fn value(v: &StreamValue) -> AttributeValue {
    match v {
        StreamValue::S(s) => AttributeValue::S(s.clone()),
        StreamValue::N(n) => AttributeValue::N(n.clone()),
        StreamValue::Bool(b) => AttributeValue::Bool(*b),
        StreamValue::Null(n) => AttributeValue::Null(*n),
        StreamValue::B(b) => AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(b.as_ref())),
        StreamValue::Ss(s) => AttributeValue::Ss(s.clone()),
        StreamValue::Ns(n) => AttributeValue::Ns(n.clone()),
        StreamValue::Bs(b) => {
            AttributeValue::Bs(b.iter().map(|b| aws_sdk_dynamodb::primitives::Blob::new(b.as_ref())).collect())
        }
        StreamValue::L(l) => AttributeValue::L(l.iter().map(value).collect()),
        StreamValue::M(m) => AttributeValue::M(m.iter().map(|(k, v)| (k.clone(), value(v))).collect()),
        _ => AttributeValue::Null(true),
    }
}
