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
    due_at, due_shard, extend_conflict, ChunkOutcome, CommunityQuery, DiscoverQuery, ExpireOutcome, FeedPage, FeedSort,
    Store, ViewChunk, DUE_SHARDS,
};
use crate::rules::geo;
use crate::rules::ranking::{community_match, item_rank, newest_first, page_of, rank_live, rank_new};
use crate::tables::TableNames;

/// The partition key (`feed`) every product carries for the feed indexes without a category.
pub(crate) const FEED_PARTITION: &str = "all";

mod connections;
mod feeds;
mod io;
mod offers;
mod users;
mod views;

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

fn backend<E: std::fmt::Debug>(e: E) -> StoreError {
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
        Err(e) => Err(backend(e)),
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
impl Store for DynamoStore {
    fn backend(&self) -> &'static str {
        "dynamodb"
    }

    fn changes_logged(&self) -> bool {
        true
    }

    async fn get_product(&self, id: &str) -> Result<Option<Product>> {
        self.get(&self.tables.products, id).await
    }

    async fn get_products(&self, ids: &[String]) -> Result<Vec<Option<Product>>> {
        self.batch_get(&self.tables.products, ids).await
    }

    async fn get_user(&self, id: &str) -> Result<Option<User>> {
        self.get(&self.tables.users, id).await
    }

    async fn get_users(&self, ids: &[String]) -> Result<Vec<Option<User>>> {
        self.batch_get(&self.tables.users, ids).await
    }

    async fn get_stream(&self, id: &str) -> Result<Option<Stream>> {
        self.get(&self.tables.streams, id).await
    }

    async fn get_offer(&self, id: &str) -> Result<Option<Offer>> {
        self.get(&self.tables.offers, id).await
    }

    async fn get_offers(&self, ids: &[String]) -> Result<Vec<Option<Offer>>> {
        self.batch_get(&self.tables.offers, ids).await
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

    async fn put_users(&self, items: &[User]) -> Result<()> {
        let items = items.iter().map(to_item).collect::<Result<Vec<_>>>()?;
        self.batch_put(&self.tables.users, items).await
    }

    async fn put_streams(&self, items: &[Stream]) -> Result<()> {
        let rows = items.iter().map(to_item).collect::<Result<Vec<_>>>()?;
        self.batch_put(&self.tables.streams, rows).await?;
        let live = self.live_sellers().await?;
        let sellers: HashSet<&str> = items.iter().map(|st| st.seller_id.as_str()).collect();
        for seller in sellers {
            self.rerank_seller(seller, live.contains(seller)).await?;
        }
        Ok(())
    }

    async fn put_offers(&self, items: &[Offer]) -> Result<()> {
        let items = items.iter().map(Self::offer_item).collect::<Result<Vec<_>>>()?;
        self.batch_put(&self.tables.offers, items).await
    }

    async fn discover(&self, q: &DiscoverQuery) -> Result<FeedPage> {
        self.discover_impl(q).await
    }

    async fn discover_after(&self, q: &DiscoverQuery, after: &FeedItem) -> Result<FeedPage> {
        self.discover_after_impl(q, after).await
    }

    async fn community(&self, q: &CommunityQuery) -> Result<FeedPage> {
        self.community_impl(q).await
    }

    async fn live_streams(&self) -> Result<Vec<Stream>> {
        let items =
            self.query_index(&self.tables.streams, "by_status", "status", StreamStatus::Live.as_str(), None).await?;
        let mut live: Vec<Stream> = items.into_iter().map(from_item).collect::<Result<_>>()?;
        live.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(a.id.cmp(&b.id)));
        Ok(live)
    }

    async fn transition_stream(&self, id: &str, to: StreamStatus, at: Timestamp) -> Result<Stream> {
        let (from, stamp) = match to {
            StreamStatus::Live => (StreamStatus::Scheduled, "started_at"),
            StreamStatus::Ended => (StreamStatus::Live, "ended_at"),
            StreamStatus::Scheduled => {
                let current =
                    self.get_stream(id).await?.ok_or_else(|| StoreError::NotFound { kind: "stream", id: id.into() })?;
                return Err(StoreError::InvalidTransition { id: id.into(), from: current.status, to });
            }
        };
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.streams)
            .key("id", s(id))
            .update_expression("SET #s = :to, #t = :at")
            .condition_expression("#s = :from")
            .expression_attribute_names("#s", "status")
            .expression_attribute_names("#t", stamp)
            .expression_attribute_values(":to", s(to.as_str()))
            .expression_attribute_values(":from", s(from.as_str()))
            .expression_attribute_values(":at", s(time::format(&at)))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => {
                let stream: Stream = from_item(out.attributes.unwrap_or_default())?;
                // The seller's products move in the live-first ranking (still live if another
                // of their streams is).
                let live = to == StreamStatus::Live || self.live_sellers().await?.contains(&stream.seller_id);
                self.rerank_seller(&stream.seller_id, live).await?;
                Ok(stream)
            }
            Err(e) if is_conditional_failure(&e) => match self.get_stream(id).await? {
                None => Err(StoreError::NotFound { kind: "stream", id: id.into() }),
                Some(current) => Err(StoreError::InvalidTransition { id: id.into(), from: current.status, to }),
            },
            Err(e) => Err(backend(e)),
        }
    }

    async fn create_offer(&self, offer: &Offer) -> Result<()> {
        self.create_offer_impl(offer).await
    }

    async fn expire_offer(&self, id: &str, now: Timestamp) -> Result<ExpireOutcome> {
        self.expire_offer_impl(id, now).await
    }

    async fn extend_offer(&self, id: &str, expires_at: Timestamp, now: Timestamp) -> Result<Offer> {
        self.extend_offer_impl(id, expires_at, now).await
    }

    async fn offers_due_by(&self, until: Timestamp, limit: usize) -> Result<Vec<Offer>> {
        self.offers_due_by_impl(until, limit).await
    }

    async fn offer_announced(&self, id: &str) -> Result<()> {
        self.offer_announced_impl(id).await
    }

    async fn apply_view_chunk(&self, chunk: &ViewChunk) -> Result<ChunkOutcome> {
        self.apply_view_chunk_impl(chunk).await
    }

    async fn record_job_run(&self, run: &JobRun) -> Result<()> {
        let mut item = to_item(run)?;
        item.insert("pk".into(), s(format!("job#{}", run.job)));
        self.client.put_item().table_name(&self.tables.jobs).set_item(Some(item)).send().await.map_err(backend)?;
        Ok(())
    }

    async fn job_runs(&self, jobs: &[&str]) -> Result<Vec<JobRun>> {
        // Point reads of the known jobs: the table also holds many chunk markers, never scan it.
        let keys: Vec<Item> = jobs.iter().map(|j| HashMap::from([("pk".to_string(), s(format!("job#{j}")))])).collect();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let request = KeysAndAttributes::builder().set_keys(Some(keys)).build().map_err(backend)?;
        let out =
            self.client.batch_get_item().request_items(&self.tables.jobs, request).send().await.map_err(backend)?;
        let mut runs = Vec::new();
        for mut item in out.responses.and_then(|mut r| r.remove(&self.tables.jobs)).unwrap_or_default() {
            item.remove("pk");
            runs.push(from_item::<JobRun>(item)?);
        }
        runs.sort_by(|a, b| a.job.cmp(&b.job));
        Ok(runs)
    }

    async fn save_profile(&self, user: &User) -> Result<bool> {
        self.save_profile_impl(user).await
    }

    async fn seller_figures(&self, user: &str) -> Result<crate::model::users::SellerFigures> {
        self.seller_figures_impl(user).await
    }

    async fn award_badge(&self, badge: &crate::model::users::Badge) -> Result<bool> {
        self.award_badge_impl(badge).await
    }

    async fn badges_of(&self, user: &str) -> Result<Vec<crate::model::users::Badge>> {
        self.badges_of_impl(user).await
    }

    async fn recent_badges(&self, limit: usize) -> Result<Vec<crate::model::users::Badge>> {
        self.recent_badges_impl(limit).await
    }

    async fn leaderboard(&self, offset: usize, limit: usize) -> Result<Vec<User>> {
        self.leaderboard_impl(offset, limit).await
    }
}
