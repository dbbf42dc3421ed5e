//! The marketplace's cache namespaces, key shapes and policies, in one place.

use std::time::Duration;

use livecache_cache::{filter_hash, round_coord, Cache, CacheError, Key, Policy};

use crate::ports::store::{CommunityQuery, DiscoverQuery};

pub(crate) const NS_PRODUCTS: &str = "products";
/// Badges: each user's (`achievements:user:{id}`) and the recent ones.
pub(crate) const NS_ACHIEVEMENTS: &str = "achievements";
pub(crate) const NS_LEADERBOARD: &str = "leaderboard";
pub(crate) const NS_FEED_DISCOVER: &str = "feed_discover";
pub(crate) const NS_FEED_COMMUNITY: &str = "feed_community";
pub(crate) const NS_LIVE: &str = "live_streams";
/// The prefix of the view ledger's shard tags (`{views<s>-<k>}`, see [`ViewLedger`](super::ViewLedger)).
pub(crate) const VIEWS_TAG: &str = "views";
pub(crate) const NS_VIEWS: &str = "views";
pub(crate) const NS_OFFERS: &str = "offers";

/// Every namespace an admin may invalidate by name (a user's own: `{"user": id}`).
pub(crate) const NAMESPACES: [&str; 6] =
    [NS_PRODUCTS, NS_FEED_DISCOVER, NS_FEED_COMMUNITY, NS_LIVE, NS_ACHIEVEMENTS, NS_LEADERBOARD];

/// Fresh 15 min, then stale-while-revalidate for an hour, kept 6 h to stand in if DynamoDB
/// fails; unknown ids cached 30 s.
pub(crate) fn product_policy() -> Policy {
    Policy::ttl(Duration::from_secs(15 * 60))
        .stale_while_revalidate(Duration::from_secs(3600))
        .fail_safe(Duration::from_secs(6 * 3600))
        .negative(Duration::from_secs(30))
}

/// How long each kind of user data is fresh (configurable, see
/// [`Marketplace::with_user_ttls`](super::Marketplace::with_user_ttls)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserTtls {
    /// Profiles (public, full, the batch cards): 1 hour.
    pub profile: Duration,
    /// A user's badges: 30 minutes.
    pub achievements: Duration,
    /// Leaderboard pages: 15 minutes.
    pub leaderboard: Duration,
    /// The latest badges across the marketplace: 5 minutes.
    pub recent: Duration,
}

impl Default for UserTtls {
    fn default() -> Self {
        Self {
            profile: Duration::from_secs(3600),
            achievements: Duration::from_secs(30 * 60),
            leaderboard: Duration::from_secs(15 * 60),
            recent: Duration::from_secs(5 * 60),
        }
    }
}

/// Profiles: fresh for `ttl`, then served stale for as long while refreshed (an update
/// invalidates them at once, so stale only ever means "older than the TTL"), kept 6 h to stand
/// in if DynamoDB fails; unknown ids cached 30 s.
pub(crate) fn profile_policy(ttl: Duration) -> Policy {
    Policy::ttl(ttl)
        .stale_while_revalidate(ttl)
        .fail_safe(Duration::from_secs(6 * 3600))
        .negative(Duration::from_secs(30))
}

/// Badges and leaderboards: fresh for `ttl` (awards invalidate them), kept an hour to stand in
/// if DynamoDB fails.
pub(crate) fn board_policy(ttl: Duration) -> Policy {
    Policy::ttl(ttl).fail_safe(Duration::from_secs(3600)).negative(Duration::from_secs(30))
}

/// Feed pages: 5 minutes, kept an hour to stand in if DynamoDB fails.
pub(crate) fn feed_policy() -> Policy {
    Policy::ttl(Duration::from_secs(5 * 60)).jitter(0.0).fail_safe(Duration::from_secs(3600))
}

pub(crate) fn live_policy() -> Policy {
    Policy::ttl(Duration::from_secs(60)).jitter(0.0).fail_safe(Duration::from_secs(600))
}

pub(crate) fn product_key(cache: &Cache, id: &str) -> Result<Key, CacheError> {
    cache.key(NS_PRODUCTS, &[id])
}

/// The namespace of everything cached about one user: moving its generation on invalidates
/// all of it in one O(1) step. `user.{id}`; an id too long to fit a namespace name is hashed
/// (a collision would only make two users share invalidations: their keys also hold the id).
pub(crate) fn user_namespace(id: &str) -> String {
    const FITS: usize = livecache_cache::MAX_PART_LEN - "user.".len();
    if id.len() <= FITS {
        format!("user.{id}")
    } else {
        format!("user.={}", filter_hash([("user", Some(id))]))
    }
}

/// `what` of user `id`: `card` (batch reads), `profile` (public, with figures), `me` (full).
pub(crate) fn user_key(cache: &Cache, id: &str, what: &str) -> Result<Key, CacheError> {
    cache.key(&user_namespace(id), &[what, id])
}

pub(crate) fn achievements_key(cache: &Cache, id: &str) -> Result<Key, CacheError> {
    cache.key(NS_ACHIEVEMENTS, &["user", id])
}

pub(crate) fn recent_badges_key(cache: &Cache, limit: usize) -> Result<Key, CacheError> {
    cache.key(NS_ACHIEVEMENTS, &["recent", &format!("n{limit}")])
}

pub(crate) fn leaderboard_key(cache: &Cache, offset: usize, limit: usize) -> Result<Key, CacheError> {
    cache.key(NS_LEADERBOARD, &[&format!("o{offset}"), &format!("n{limit}")])
}

pub(crate) fn live_key(cache: &Cache) -> Result<Key, CacheError> {
    cache.key(NS_LIVE, &["all"])
}

/// One key per page, page size and filter set.
pub fn discover_key(cache: &Cache, q: &DiscoverQuery) -> Result<Key, CacheError> {
    let filters = filter_hash([("category", q.category.map(|c| c.as_str())), ("sort", Some(q.sort.as_str()))]);
    cache.key(NS_FEED_DISCOVER, &[&filters, &format!("p{}", q.page.page), &format!("n{}", q.page.per_page)])
}

/// One key per rounded location, page, page size and filter set (the query is answered for the
/// rounded location, so neighbours share it).
pub(crate) fn community_key(cache: &Cache, q: &CommunityQuery) -> Result<Key, CacheError> {
    let num = |v: Option<f64>| v.map(|v| format!("{v}"));
    let filters = filter_hash([
        ("radius_km", Some(format!("{}", q.radius_km))),
        ("category", q.category.map(|c| c.as_str().to_string())),
        ("min_price", num(q.min_price)),
        ("max_price", num(q.max_price)),
        ("condition", q.condition.map(|c| c.as_str().to_string())),
    ]);
    cache.key(
        NS_FEED_COMMUNITY,
        &[
            &round_coord(q.lat),
            &round_coord(q.lon),
            &filters,
            &format!("p{}", q.page.page),
            &format!("n{}", q.page.per_page),
        ],
    )
}
