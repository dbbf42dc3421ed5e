//! The ports to the marketplace's source of truth, one per area in the domain's words:
//! [`ProductStore`], [`FeedStore`], [`StreamStore`], [`OfferStore`], [`ViewStore`],
//! [`UserStore`], [`JobLog`]; each caller takes only those it uses. [`Store`] is all of them
//! together, as an adapter provides them: [`DynamoStore`](crate::DynamoStore) and
//! [`MemoryStore`](crate::MemoryStore) (in `adapters/`) pass one contract suite
//! (`tests/store_contract.rs`); feed ranking, the same for both, is in
//! [`rules::ranking`](crate::rules::ranking).

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::model::error::{Result, StoreError};
use crate::model::market::{
    Category, Condition, FeedItem, JobRun, Offer, OfferStatus, Product, Stream, StreamStatus, User,
};
use crate::model::time::{self, Timestamp};
use crate::model::users::{Badge, SellerFigures};

/// Most view-count updates in one chunk: with the chunk's marker that makes 100 actions, the
/// TransactWriteItems limit.
pub(crate) const VIEW_CHUNK_MAX: usize = 99;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedSort {
    /// Products of sellers who are live now first, then newest.
    #[default]
    LiveFirst,
    Newest,
}

impl std::str::FromStr for FeedSort {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "live_first" => Ok(Self::LiveFirst),
            "newest" => Ok(Self::Newest),
            other => Err(format!("unknown sort {other:?}; expected live_first or newest")),
        }
    }
}

impl FeedSort {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::LiveFirst => "live_first",
            Self::Newest => "newest",
        }
    }
}

/// One page: `page` counts from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub page: u32,
    pub per_page: u32,
}

impl PageRequest {
    pub(crate) fn offset(&self) -> usize {
        (self.page.max(1) as usize - 1) * self.per_page as usize
    }

    /// How many ranked items it takes to answer this page.
    pub(crate) fn end(&self) -> usize {
        self.offset() + self.per_page as usize
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DiscoverQuery {
    pub page: PageRequest,
    pub category: Option<Category>,
    pub sort: FeedSort,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CommunityQuery {
    pub page: PageRequest,
    pub lat: f64,
    pub lon: f64,
    pub radius_km: f64,
    pub category: Option<Category>,
    pub min_price: Option<f64>,
    pub max_price: Option<f64>,
    pub condition: Option<Condition>,
}

/// A page of a feed and whether more follow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedPage {
    pub items: Vec<FeedItem>,
    pub has_more: bool,
}

/// What marking an offer expired did.
#[derive(Debug, Clone, PartialEq)]
pub enum ExpireOutcome {
    Expired(Offer),
    /// Not due (any more): extended after it was read as due. Nothing written.
    NotDue(Offer),
    /// Settled already (accepted, expired, …): nothing written.
    NotPending(OfferStatus),
    Missing,
}

/// Why an extension was refused: the offer is settled, or already due.
pub(crate) fn extend_conflict(o: &Offer) -> StoreError {
    if o.status != OfferStatus::Pending {
        StoreError::Conflict(format!("offer {} is {}; only a PENDING offer can be extended", o.id, o.status))
    } else {
        StoreError::Conflict(format!(
            "offer {} expired at {}; an offer that is due can no longer be extended",
            o.id,
            time::format(&o.expires_at)
        ))
    }
}

/// A chunk of view-count increments, applied exactly once under its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewChunk {
    /// `{batch}#{index}`: the same batch always splits into the same chunks.
    pub id: String,
    pub products: Vec<(String, i64)>,
    pub streams: Vec<(String, i64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ChunkOutcome {
    /// False when the chunk's marker showed it applied before (a retry after a crash).
    pub applied: bool,
    pub products: usize,
    pub streams: usize,
    pub views: i64,
    /// Increments for items that no longer exist (dropped).
    pub skipped_missing: usize,
}

/// Splits a batch into chunks of at most `VIEW_CHUNK_MAX` updates, deterministically (sorted),
/// so that a retried batch produces the same chunk ids and contents. Zero deltas are dropped.
pub fn view_chunks(
    batch_id: &str,
    products: &BTreeMap<String, i64>,
    streams: &BTreeMap<String, i64>,
) -> Vec<ViewChunk> {
    let all: Vec<(bool, &String, i64)> = products
        .iter()
        .map(|(id, n)| (true, id, *n))
        .chain(streams.iter().map(|(id, n)| (false, id, *n)))
        .filter(|(_, _, n)| *n != 0)
        .collect();
    all.chunks(VIEW_CHUNK_MAX)
        .enumerate()
        .map(|(i, part)| ViewChunk {
            id: format!("{batch_id}#{i}"),
            products: part.iter().filter(|(p, _, _)| *p).map(|(_, id, n)| ((*id).clone(), *n)).collect(),
            streams: part.iter().filter(|(p, _, _)| !*p).map(|(_, id, n)| ((*id).clone(), *n)).collect(),
        })
        .collect()
}

/// The source of truth, whole: every port below, as one adapter implements them, and what a
/// caller needs to know of the adapter itself. Services and jobs take the narrow ports.
pub trait Store:
    ProductStore + FeedStore + StreamStore + OfferStore + ViewStore + UserStore + JobLog + 'static
{
    /// `"dynamodb"` or `"memory"`.
    fn kind(&self) -> &'static str;

    /// Whether every committed write reaches a change log that invalidates what it makes stale
    /// (`jobs::change_log`): the DynamoDB tables carry one (DynamoDB Streams, followed by the
    /// change-log function, or by the dev server on an emulator). A write whose own invalidation
    /// failed is acknowledged only when it does.
    fn changes_logged(&self) -> bool {
        false
    }
}

/// The products, by id.
#[async_trait]
pub trait ProductStore: Send + Sync {
    async fn get_product(&self, id: &str) -> Result<Option<Product>>;
    /// One entry per id, in order (`None` for unknown ids); duplicates allowed.
    async fn get_products(&self, ids: &[String]) -> Result<Vec<Option<Product>>>;
    async fn put_products(&self, items: &[Product]) -> Result<()>;
}

/// The feeds' pages, in the order [`rules::ranking`](crate::rules::ranking) defines.
#[async_trait]
pub trait FeedStore: Send + Sync {
    async fn discover(&self, q: &DiscoverQuery) -> Result<FeedPage>;
    /// The page of `q`'s feed that follows `after` (the last item of the page before, as it
    /// was served): the next `q.page.per_page` items of the ranking after it, whatever
    /// `q.page.page` says. Reads O(page) items however deep the page.
    async fn discover_after(&self, q: &DiscoverQuery, after: &FeedItem) -> Result<FeedPage>;
    async fn community(&self, q: &CommunityQuery) -> Result<FeedPage>;
}

/// The live streams and their transitions.
#[async_trait]
pub trait StreamStore: Send + Sync {
    async fn get_stream(&self, id: &str) -> Result<Option<Stream>>;
    async fn put_streams(&self, items: &[Stream]) -> Result<()>;
    /// Streams that are LIVE, most recently started first.
    async fn live_streams(&self) -> Result<Vec<Stream>>;
    /// SCHEDULED → LIVE (sets `started_at`) or LIVE → ENDED (sets `ended_at`), as a conditional
    /// write: any other transition is [`StoreError::InvalidTransition`](crate::StoreError)
    /// and writes nothing.
    async fn transition_stream(&self, id: &str, to: StreamStatus, at: Timestamp) -> Result<Stream>;
}

/// The offers and the record of when each is due.
#[async_trait]
pub trait OfferStore: Send + Sync {
    async fn get_offer(&self, id: &str) -> Result<Option<Offer>>;
    async fn get_offers(&self, ids: &[String]) -> Result<Vec<Option<Offer>>>;
    async fn put_offers(&self, items: &[Offer]) -> Result<()>;
    /// Fails with `AlreadyExists` if the id is taken.
    async fn create_offer(&self, offer: &Offer) -> Result<()>;
    /// Marks the offer EXPIRED only if it is still PENDING *and* due at `now` (conditional;
    /// repeating it is harmless; an extension that landed first wins: `NotDue`).
    async fn expire_offer(&self, id: &str, now: Timestamp) -> Result<ExpireOutcome>;
    /// Moves a PENDING offer's expiry; `Conflict` if it is settled or already due at `now`,
    /// `NotFound` if unknown.
    async fn extend_offer(&self, id: &str, expires_at: Timestamp, now: Timestamp) -> Result<Offer>;
    /// The due-offer index (sparse: only offers that are PENDING, or EXPIRED and not yet
    /// announced, are in it): those with an expiry at or before `until`, earliest first, at
    /// most `limit`. Reads O(limit) items whatever the table holds.
    async fn offers_due_by(&self, until: Timestamp, limit: usize) -> Result<Vec<Offer>>;
    /// Takes a settled offer out of the due index once its OfferExpired has been published
    /// (conditional: a PENDING offer stays).
    async fn offer_announced(&self, id: &str) -> Result<()>;
}

/// The synced view counts.
#[async_trait]
pub trait ViewStore: Send + Sync {
    /// Adds a chunk's increments (ADD) together with a marker for the chunk in one transaction:
    /// a chunk applied before is recognised and skipped.
    async fn apply_view_chunk(&self, chunk: &ViewChunk) -> Result<ChunkOutcome>;
}

/// The users: profiles, badges and points.
#[async_trait]
pub trait UserStore: Send + Sync {
    async fn get_user(&self, id: &str) -> Result<Option<User>>;
    async fn get_users(&self, ids: &[String]) -> Result<Vec<Option<User>>>;
    async fn put_users(&self, items: &[User]) -> Result<()>;
    /// Writes `user`'s profile fields and preferences (not their points or badges, which
    /// awards keep); false if there is no such user.
    async fn save_profile(&self, user: &User) -> Result<bool>;
    /// Counted from the data: products listed, streams hosted, views synced.
    async fn seller_figures(&self, user: &str) -> Result<SellerFigures>;
    /// Gives `badge` to its user and adds its points, once: false (and nothing written) if the
    /// user holds it already. `NotFound` for an unknown user.
    async fn award_badge(&self, badge: &Badge) -> Result<bool>;
    /// A user's badges, newest first.
    async fn badges_of(&self, user: &str) -> Result<Vec<Badge>>;
    /// The latest badges across the marketplace, newest first ([`Badge::recency`]), at most
    /// `limit`. Reads O(limit) items.
    async fn recent_badges(&self, limit: usize) -> Result<Vec<Badge>>;
    /// Users holding points, most first (`points_rank`), from
    /// `offset`, at most `limit`. Reads O(offset + limit) items.
    async fn leaderboard(&self, offset: usize, limit: usize) -> Result<Vec<User>>;
}

/// The scheduled jobs' last runs.
#[async_trait]
pub trait JobLog: Send + Sync {
    async fn record_job_run(&self, run: &JobRun) -> Result<()>;
    /// The last run of each of `jobs` that has run.
    async fn job_runs(&self, jobs: &[&str]) -> Result<Vec<JobRun>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_deterministic_and_bounded() {
        let products: BTreeMap<String, i64> = (0..150).map(|i| (format!("p{i:03}"), 1)).collect();
        let streams: BTreeMap<String, i64> =
            (0..60).map(|i| (format!("s{i:03}"), 2)).chain([("zero".into(), 0)]).collect();
        let a = view_chunks("b1", &products, &streams);
        let b = view_chunks("b1", &products, &streams);
        assert_eq!(a, b);
        assert_eq!(a.len(), 3);
        assert!(a.iter().all(|c| c.products.len() + c.streams.len() <= VIEW_CHUNK_MAX));
        assert_eq!(a.iter().map(|c| c.products.len()).sum::<usize>(), 150);
        assert_eq!(a.iter().map(|c| c.streams.len()).sum::<usize>(), 60);
        assert_eq!(a[2].id, "b1#2");
    }
}
