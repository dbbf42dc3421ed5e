//! The in-memory store: the embedded default for local runs and fast tests.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use crate::model::error::{Result, StoreError};
use crate::model::market::{FeedItem, JobRun, Offer, OfferStatus, Product, Stream, StreamStatus, User};
use crate::model::time::Timestamp;
use crate::model::users::{points_rank, Badge, BadgeCode, SellerFigures};
use crate::ports::push::{Connection, Connections, CONNECTION_TTL};
use crate::ports::store::{
    extend_conflict, ChunkOutcome, CommunityQuery, DiscoverQuery, ExpireOutcome, FeedPage, FeedStore, JobLog,
    OfferStore, ProductStore, Store, StreamStore, UserStore, ViewChunk, ViewStore,
};
use crate::rules::ranking::{rank_community, rank_discover, rank_discover_after};

#[derive(Default)]
struct State {
    products: HashMap<String, Product>,
    users: HashMap<String, User>,
    streams: HashMap<String, Stream>,
    offers: HashMap<String, Offer>,
    /// EXPIRED offers whose OfferExpired is not out yet: with the PENDING ones, the due index.
    unannounced: HashSet<String>,
    markers: HashSet<String>,
    jobs: HashMap<String, JobRun>,
    /// Badges by user, then code.
    badges: HashMap<String, HashMap<BadgeCode, Badge>>,
    /// WebSocket connections and when they expire (ms).
    connections: HashMap<String, (Connection, i64)>,
}

#[derive(Default)]
pub struct MemoryStore {
    // A std Mutex: nothing awaits while it is held.
    state: Mutex<State>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.state();
        f.debug_struct("MemoryStore").field("products", &st.products.len()).field("offers", &st.offers.len()).finish()
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn live_sellers(st: &State) -> HashSet<String> {
        st.streams.values().filter(|s| s.status == StreamStatus::Live).map(|s| s.seller_id.clone()).collect()
    }
}

#[async_trait]
impl ProductStore for MemoryStore {
    async fn get_product(&self, id: &str) -> Result<Option<Product>> {
        Ok(self.state().products.get(id).cloned())
    }

    async fn get_products(&self, ids: &[String]) -> Result<Vec<Option<Product>>> {
        let st = self.state();
        Ok(ids.iter().map(|id| st.products.get(id).cloned()).collect())
    }

    async fn put_products(&self, items: &[Product]) -> Result<()> {
        let mut st = self.state();
        st.products.extend(items.iter().map(|p| (p.id.clone(), p.clone())));
        Ok(())
    }
}

#[async_trait]
impl FeedStore for MemoryStore {
    async fn discover(&self, q: &DiscoverQuery) -> Result<FeedPage> {
        let st = self.state();
        Ok(rank_discover(st.products.values().cloned().collect(), &Self::live_sellers(&st), q))
    }

    async fn discover_after(&self, q: &DiscoverQuery, after: &FeedItem) -> Result<FeedPage> {
        let st = self.state();
        Ok(rank_discover_after(st.products.values().cloned().collect(), &Self::live_sellers(&st), q, after))
    }

    async fn community(&self, q: &CommunityQuery) -> Result<FeedPage> {
        // The same refusal as the DynamoDB adapter's: an area no indexed grid covers in a few cells.
        crate::rules::geo::plan_cells(q.lat, q.lon, q.radius_km).map_err(StoreError::TooBroad)?;
        let st = self.state();
        Ok(rank_community(st.products.values().cloned().collect(), &Self::live_sellers(&st), q))
    }
}

#[async_trait]
impl StreamStore for MemoryStore {
    async fn get_stream(&self, id: &str) -> Result<Option<Stream>> {
        Ok(self.state().streams.get(id).cloned())
    }

    async fn put_streams(&self, items: &[Stream]) -> Result<()> {
        let mut st = self.state();
        st.streams.extend(items.iter().map(|s| (s.id.clone(), s.clone())));
        Ok(())
    }

    async fn live_streams(&self) -> Result<Vec<Stream>> {
        let mut live: Vec<Stream> =
            self.state().streams.values().filter(|s| s.status == StreamStatus::Live).cloned().collect();
        live.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(a.id.cmp(&b.id)));
        Ok(live)
    }

    async fn transition_stream(&self, id: &str, to: StreamStatus, at: Timestamp) -> Result<Stream> {
        let mut st = self.state();
        let s = st.streams.get_mut(id).ok_or_else(|| StoreError::NotFound { kind: "stream", id: id.into() })?;
        match (s.status, to) {
            (StreamStatus::Scheduled, StreamStatus::Live) => s.started_at = Some(at),
            (StreamStatus::Live, StreamStatus::Ended) => s.ended_at = Some(at),
            (from, to) => return Err(StoreError::InvalidTransition { id: id.into(), from, to }),
        }
        s.status = to;
        Ok(s.clone())
    }
}

#[async_trait]
impl OfferStore for MemoryStore {
    async fn get_offer(&self, id: &str) -> Result<Option<Offer>> {
        Ok(self.state().offers.get(id).cloned())
    }

    async fn get_offers(&self, ids: &[String]) -> Result<Vec<Option<Offer>>> {
        let st = self.state();
        Ok(ids.iter().map(|id| st.offers.get(id).cloned()).collect())
    }

    async fn put_offers(&self, items: &[Offer]) -> Result<()> {
        let mut st = self.state();
        for o in items {
            st.unannounced.remove(&o.id);
        }
        st.offers.extend(items.iter().map(|o| (o.id.clone(), o.clone())));
        Ok(())
    }

    async fn create_offer(&self, offer: &Offer) -> Result<()> {
        let mut st = self.state();
        if st.offers.contains_key(&offer.id) {
            return Err(StoreError::AlreadyExists { kind: "offer", id: offer.id.clone() });
        }
        st.offers.insert(offer.id.clone(), offer.clone());
        Ok(())
    }

    async fn expire_offer(&self, id: &str, now: Timestamp) -> Result<ExpireOutcome> {
        let mut st = self.state();
        let outcome = match st.offers.get_mut(id) {
            None => ExpireOutcome::Missing,
            Some(o) if o.status != OfferStatus::Pending => ExpireOutcome::NotPending(o.status),
            Some(o) if o.expires_at > now => ExpireOutcome::NotDue(o.clone()),
            Some(o) => {
                o.status = OfferStatus::Expired;
                ExpireOutcome::Expired(o.clone())
            }
        };
        if matches!(outcome, ExpireOutcome::Expired(_)) {
            st.unannounced.insert(id.to_string());
        }
        Ok(outcome)
    }

    async fn extend_offer(&self, id: &str, expires_at: Timestamp, now: Timestamp) -> Result<Offer> {
        let mut st = self.state();
        let o = st.offers.get_mut(id).ok_or_else(|| StoreError::NotFound { kind: "offer", id: id.into() })?;
        if o.status != OfferStatus::Pending || o.expires_at <= now {
            return Err(extend_conflict(o));
        }
        o.expires_at = expires_at;
        Ok(o.clone())
    }

    async fn offers_due_by(&self, until: Timestamp, limit: usize) -> Result<Vec<Offer>> {
        let st = self.state();
        let mut due: Vec<Offer> = st
            .offers
            .values()
            .filter(|o| o.expires_at <= until)
            .filter(|o| o.status == OfferStatus::Pending || st.unannounced.contains(&o.id))
            .cloned()
            .collect();
        due.sort_by(|a, b| a.expires_at.cmp(&b.expires_at).then_with(|| a.id.cmp(&b.id)));
        due.truncate(limit);
        Ok(due)
    }

    async fn offer_announced(&self, id: &str) -> Result<()> {
        self.state().unannounced.remove(id);
        Ok(())
    }
}

#[async_trait]
impl ViewStore for MemoryStore {
    async fn apply_view_chunk(&self, chunk: &ViewChunk) -> Result<ChunkOutcome> {
        let mut st = self.state();
        if !st.markers.insert(chunk.id.clone()) {
            return Ok(ChunkOutcome::default());
        }
        let mut out = ChunkOutcome { applied: true, ..ChunkOutcome::default() };
        for (id, n) in &chunk.products {
            match st.products.get_mut(id) {
                Some(p) => {
                    p.view_count += n;
                    out.products += 1;
                    out.views += n;
                }
                None => out.skipped_missing += 1,
            }
        }
        for (id, n) in &chunk.streams {
            match st.streams.get_mut(id) {
                Some(s) => {
                    s.view_count += n;
                    out.streams += 1;
                    out.views += n;
                }
                None => out.skipped_missing += 1,
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn get_user(&self, id: &str) -> Result<Option<User>> {
        Ok(self.state().users.get(id).cloned())
    }

    async fn get_users(&self, ids: &[String]) -> Result<Vec<Option<User>>> {
        let st = self.state();
        Ok(ids.iter().map(|id| st.users.get(id).cloned()).collect())
    }

    async fn put_users(&self, items: &[User]) -> Result<()> {
        let mut st = self.state();
        st.users.extend(items.iter().map(|u| (u.id.clone(), u.clone())));
        Ok(())
    }

    async fn save_profile(&self, user: &User) -> Result<bool> {
        let mut st = self.state();
        let Some(u) = st.users.get_mut(&user.id) else { return Ok(false) };
        *u = User { points: u.points, badges: u.badges, ..user.clone() };
        Ok(true)
    }

    async fn seller_figures(&self, user: &str) -> Result<SellerFigures> {
        let st = self.state();
        let products = st.products.values().filter(|p| p.seller_id == user);
        let (products_listed, total_views) = products.fold((0, 0), |(n, v), p| (n + 1, v + p.view_count));
        let streams_hosted =
            st.streams.values().filter(|s| s.seller_id == user && s.status != StreamStatus::Scheduled).count() as u64;
        Ok(SellerFigures { products_listed, streams_hosted, total_views })
    }

    async fn award_badge(&self, badge: &Badge) -> Result<bool> {
        let mut st = self.state();
        if !st.users.contains_key(&badge.user_id) {
            return Err(StoreError::NotFound { kind: "user", id: badge.user_id.clone() });
        }
        let held = st.badges.entry(badge.user_id.clone()).or_default();
        if held.contains_key(&badge.code) {
            return Ok(false);
        }
        held.insert(badge.code, badge.clone());
        let u = st.users.get_mut(&badge.user_id).expect("checked above");
        u.points += badge.points;
        u.badges += 1;
        Ok(true)
    }

    async fn badges_of(&self, user: &str) -> Result<Vec<Badge>> {
        let st = self.state();
        let mut out: Vec<Badge> = st.badges.get(user).map(|b| b.values().cloned().collect()).unwrap_or_default();
        out.sort_by_key(|b| std::cmp::Reverse(b.recency()));
        Ok(out)
    }

    async fn recent_badges(&self, limit: usize) -> Result<Vec<Badge>> {
        let st = self.state();
        let mut out: Vec<Badge> = st.badges.values().flat_map(|b| b.values().cloned()).collect();
        out.sort_by_key(|b| std::cmp::Reverse(b.recency()));
        out.truncate(limit);
        Ok(out)
    }

    async fn leaderboard(&self, offset: usize, limit: usize) -> Result<Vec<User>> {
        let st = self.state();
        let mut ranked: Vec<&User> = st.users.values().filter(|u| u.points > 0).collect();
        ranked.sort_by_key(|u| std::cmp::Reverse(points_rank(u.points, &u.id)));
        Ok(ranked.into_iter().skip(offset).take(limit).cloned().collect())
    }
}

#[async_trait]
impl JobLog for MemoryStore {
    async fn record_job_run(&self, run: &JobRun) -> Result<()> {
        self.state().jobs.insert(run.job.clone(), run.clone());
        Ok(())
    }

    async fn job_runs(&self, jobs: &[&str]) -> Result<Vec<JobRun>> {
        let st = self.state();
        let mut runs: Vec<JobRun> = jobs.iter().filter_map(|j| st.jobs.get(*j).cloned()).collect();
        runs.sort_by(|a, b| a.job.cmp(&b.job));
        Ok(runs)
    }
}

impl Store for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }
}

#[async_trait]
impl Connections for MemoryStore {
    async fn connect(&self, c: &Connection) -> Result<()> {
        let until = crate::model::time::now().timestamp_millis() + CONNECTION_TTL.as_millis() as i64;
        self.state().connections.insert(c.id.clone(), (c.clone(), until));
        Ok(())
    }

    async fn subscribe(&self, id: &str, feeds: &[String]) -> Result<bool> {
        let mut st = self.state();
        let Some((c, _)) = st.connections.get_mut(id) else { return Ok(false) };
        c.feeds = feeds.to_vec();
        Ok(true)
    }

    async fn disconnect(&self, id: &str) -> Result<()> {
        self.state().connections.remove(id);
        Ok(())
    }

    async fn connections(&self) -> Result<Vec<Connection>> {
        let now = crate::model::time::now().timestamp_millis();
        let st = self.state();
        Ok(st.connections.values().filter(|(_, until)| *until > now).map(|(c, _)| c.clone()).collect())
    }
}
