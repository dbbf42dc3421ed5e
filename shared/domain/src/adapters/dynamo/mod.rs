//! The DynamoDB adapter (`aws-sdk-dynamodb`). Tables and indexes: [`crate::tables`].
//!
//! * Batch reads: BatchGetItem in chunks of ≤ 100 distinct keys; UnprocessedKeys retried with
//!   exponential backoff; results put back in request order.
//! * Writes that depend on state are conditional (stream transitions, offer expiry and
//!   extension, offer creation), so a wrong transition is a named error, never a silent write.
//! * View counts: each chunk of ≤ 99 `ADD`s goes in one TransactWriteItems with a conditional
//!   put of the chunk's marker, so re-applying a chunk (a retry after a crash) is recognised.
//! * Feeds: a page is read in rank order from an index whose sort key is the rank (`by_feed_*`,
//!   `by_category_*`, and per geohash cell for community), with `Limit`; a go-live or end
//!   rewrites the seller's products' `rank_live`. The order is the one
//!   [`rank_discover`](crate::rules::ranking::rank_discover) and [`rank_community`](crate::rules::ranking::rank_community) define (the contract suite checks).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, Put, PutRequest, ReturnValue, TransactWriteItem, Update, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use futures::{StreamExt, TryStreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::model::error::{Result, StoreError};
use crate::model::market::{FeedItem, JobRun, Offer, OfferStatus, Product, Stream, StreamStatus, User};
use crate::model::time::{self, Timestamp};
use crate::ports::store::{
    extend_conflict, ChunkOutcome, CommunityQuery, DiscoverQuery, ExpireOutcome, FeedPage, FeedSort, FeedStore, JobLog,
    OfferStore, ProductStore, Store, StreamStore, UserStore, ViewChunk, ViewStore,
};
use crate::rules::geo;
use crate::rules::ranking::{community_match, item_rank, newest_first, page_of, rank_live, rank_new};
use crate::tables::TableNames;

/// The partition key (`feed`) every product carries for the feed indexes without a category.
pub(crate) const FEED_PARTITION: &str = "all";

mod connections;
mod feeds;
mod io;
mod job_log;
mod offers;
mod streams;
mod users;
mod views;

use offers::{due_at, due_shard};

type Item = HashMap<String, AttributeValue>;

/// How long view-sync chunk markers are kept (they only need to outlive any retry).
const MARKER_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long settled offers are kept after they expire.
const OFFER_TTL_AFTER_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);
const BATCH_GET_MAX: usize = 100;
const BATCH_WRITE_MAX: usize = 25;
const MAX_ATTEMPTS: u32 = 8;

#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    tables: TableNames,
}

/// An AWS SDK error as the port's [`StoreError::Backend`].
fn sdk_error<E: std::fmt::Debug>(e: E) -> StoreError {
    StoreError::Backend(format!("{e:?}").chars().take(600).collect())
}

/// The partition of a geohash cell's products of one category.
fn category_cell(cell: &str, category: crate::model::market::Category) -> String {
    format!("{cell}#{category}")
}

/// A product's cells at each indexed precision: `(precision, cell, cell with its category)`.
fn product_cells(p: &Product) -> impl Iterator<Item = (usize, String, String)> + '_ {
    geo::INDEXED_PRECISIONS.into_iter().map(|precision| {
        let cell = geo::geohash(p.lat, p.lon, precision);
        let with_category = category_cell(&cell, p.category);
        (precision, cell, with_category)
    })
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn to_item<T: Serialize>(v: &T) -> Result<Item> {
    serde_dynamo::to_item(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn from_item<T: DeserializeOwned>(item: Item) -> Result<T> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn epoch_secs(t: &Timestamp, plus: Duration) -> i64 {
    t.timestamp() + plus.as_secs() as i64
}

async fn backoff(attempt: u32) {
    let ms = (20u64 << attempt.min(6)).min(2_000);
    tokio::time::sleep(Duration::from_millis(ms / 2 + rand::random::<u64>() % (ms / 2 + 1))).await;
}

fn is_conditional_failure<E, R>(e: &SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    e.as_service_error().and_then(|se| se.code()) == Some("ConditionalCheckFailedException")
}

/// Whether a conditional write's condition held (false: nothing was written).
fn condition_held<T, E, R>(result: std::result::Result<T, SdkError<E, R>>) -> Result<bool>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    match result {
        Ok(_) => Ok(true),
        Err(e) if is_conditional_failure(&e) => Ok(false),
        Err(e) => Err(sdk_error(e)),
    }
}

/// A conditional write whose condition not holding is no error (nothing to do).
fn unless_condition_failed<T, E, R>(result: std::result::Result<T, SdkError<E, R>>) -> Result<()>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    condition_held(result).map(|_| ())
}

impl DynamoStore {
    pub fn new(client: Client, tables: TableNames) -> Self {
        Self { client, tables }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn tables(&self) -> &TableNames {
        &self.tables
    }

    /// A product's item with its index keys: the geohash cells (alone and with the category),
    /// and the feed ranks for its seller's live state.
    fn product_item(p: &Product, seller_live: bool) -> Result<Item> {
        let mut item = to_item(p)?;
        for (precision, cell, with_category) in product_cells(p) {
            item.insert(format!("gh{precision}c"), s(with_category));
            item.insert(format!("gh{precision}"), s(cell));
        }
        item.insert("feed".into(), s(FEED_PARTITION));
        item.insert("rank_new".into(), s(rank_new(p)));
        item.insert("rank_live".into(), s(rank_live(p, seller_live)));
        Ok(item)
    }

    /// An offer's item; a PENDING one also carries the due index's keys.
    fn offer_item(o: &Offer) -> Result<Item> {
        let mut item = to_item(o)?;
        item.insert("ttl".into(), n(epoch_secs(&o.expires_at, OFFER_TTL_AFTER_EXPIRY)));
        if o.status == OfferStatus::Pending {
            item.insert("due_shard".into(), s(due_shard(&o.id)));
            item.insert("due_at".into(), s(due_at(&o.expires_at)));
        }
        Ok(item)
    }

    async fn live_sellers(&self) -> Result<HashSet<String>> {
        Ok(self.live_streams().await?.into_iter().map(|s| s.seller_id).collect())
    }

    fn products_of(items: Vec<Item>) -> Result<Vec<Product>> {
        items.into_iter().map(from_item).collect()
    }
}

#[async_trait]
impl ProductStore for DynamoStore {
    async fn get_product(&self, id: &str) -> Result<Option<Product>> {
        self.get(&self.tables.products, id).await
    }

    async fn get_products(&self, ids: &[String]) -> Result<Vec<Option<Product>>> {
        self.batch_get(&self.tables.products, ids).await
    }

    async fn put_products(&self, items: &[Product]) -> Result<()> {
        let live = self.live_sellers().await?;
        let rows =
            items.iter().map(|p| Self::product_item(p, live.contains(&p.seller_id))).collect::<Result<Vec<_>>>()?;
        // The cells' markers go first: a product visible in a cell's index always has its
        // cell marked.
        self.batch_put(&self.tables.products, feeds::cell_markers(items)).await?;
        self.batch_put(&self.tables.products, rows).await
    }
}

impl Store for DynamoStore {
    fn kind(&self) -> &'static str {
        "dynamodb"
    }

    fn changes_logged(&self) -> bool {
        true
    }
}
